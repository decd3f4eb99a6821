import { performance } from 'node:perf_hooks'
import type { LatencyRecorder } from './latency.js'
import { activeProgress } from './progress.js'

/**
 * How operations are issued and timed. Latency is the time from issuing an
 * operation to its return (synchronous) or resolution (asynchronous), so for
 * concurrent operations it includes the time spent queued behind the others.
 */

/**
 * Issues operations 0..count-1 in order, keeping `concurrency` of them in
 * flight. Stops issuing at the first failure, waits for the operations in
 * flight, then throws that failure.
 * @returns the elapsed wall-clock time in milliseconds.
 */
export async function runConcurrent(
  count: number,
  concurrency: number,
  issue: (op: number) => Promise<unknown>,
  latency: LatencyRecorder,
): Promise<number> {
  let next = 0
  let failed = false
  let failure: unknown
  const worker = async (): Promise<void> => {
    while (!failed && next < count) {
      const op = next++
      const startMs = performance.now()
      try {
        await issue(op)
      } catch (err) {
        if (!failed) {
          failed = true
          failure = err
        }
        return
      }
      latency.recordSince(startMs)
    }
  }
  activeProgress().phase(count)
  const startMs = performance.now()
  latency.start(startMs)
  const workers: Array<Promise<void>> = []
  for (let i = 0; i < Math.min(concurrency, count); i++) workers.push(worker())
  await Promise.all(workers)
  const endMs = performance.now()
  latency.finish(endMs)
  const elapsedMs = endMs - startMs
  if (failed) throw failure
  return elapsedMs
}

/**
 * Runs synchronous operations 0..count-1 back to back on the main thread.
 * @returns the elapsed wall-clock time in milliseconds.
 */
export function runSync(count: number, run: (op: number) => void, latency: LatencyRecorder): number {
  activeProgress().phase(count)
  const startMs = performance.now()
  latency.start(startMs)
  for (let op = 0; op < count; op++) {
    const opStartMs = performance.now()
    run(op)
    latency.recordSince(opStartMs)
  }
  const endMs = performance.now()
  latency.finish(endMs)
  return endMs - startMs
}
