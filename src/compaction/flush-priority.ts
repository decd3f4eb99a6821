/**
 * Flushes go before compactions on a shared thread. Where jobs run on the
 * main thread (a non-default file system, or no compiled worker script;
 * background-runner.ts) flushes and compactions interleave at every await;
 * a flush then got about half the thread while a compaction ran, and a full
 * memtable waited for it (the `flushSlot` waits of `stats().writes.waits`).
 * A compaction therefore pauses at its next output chunk while a flush of the
 * same thread runs. With worker threads each has its own, and this never
 * pauses anything. Per thread: module state, as each worker (and the main
 * thread) has its own.
 */
let flushesRunning = 0
let waiters: Array<() => void> = []

export function flushStarted(): void {
  flushesRunning++
}

export function flushEnded(): void {
  if (--flushesRunning > 0) return
  const wake = waiters
  waiters = []
  for (const w of wake) w()
}

/** Resolves when no flush of this thread runs; undefined when none does now. */
export function flushesDone(): Promise<void> | undefined {
  return flushesRunning === 0 ? undefined : new Promise<void>((resolve) => waiters.push(resolve))
}
