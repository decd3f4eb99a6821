import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks'
import { activeProgress } from './progress.js'
import { Timeline } from './timeline.js'

/**
 * Latency histograms. Node's built-in `perf_hooks` histogram is an
 * HdrHistogram (C, 3 significant digits) whose `record` costs ~20 ns, which
 * matters next to ~1 µs synchronous gets; values are nanoseconds.
 */

/** Percentiles of one histogram, in nanoseconds. */
export interface LatencySummaryNs {
  count: number
  mean: number
  min: number
  p50: number
  p99: number
  p999: number
  max: number
}

/**
 * Collects operation latencies in nanoseconds, and with them the per-second
 * timeline (for the chart) and the progress bar's count.
 */
export class LatencyRecorder {
  readonly histogram: RecordableHistogram = createHistogram()
  /** Per-second throughput and latency; `windowOps` > 0 also keeps windows of that many operations. */
  readonly timeline: Timeline

  constructor(windowOps = 0) {
    this.timeline = new Timeline(windowOps)
  }

  /** Marks the start of timing (drivers call it; the first call counts). */
  start(nowMs: number = performance.now()): void {
    this.timeline.start(nowMs)
  }

  /** Marks the end of timing. */
  finish(nowMs: number = performance.now()): void {
    this.timeline.finish(nowMs)
  }

  /** Records the time since `startMs`, a `performance.now()` reading taken when the operation was issued. */
  recordSince(startMs: number): void {
    const now = performance.now()
    let ns = Math.round((now - startMs) * 1e6)
    if (ns < 1) ns = 1
    this.histogram.record(ns)
    this.timeline.record(now, ns)
    activeProgress().advance()
  }

  /** Records one duration given in milliseconds (no timeline: for single events such as an open). */
  recordMs(durationMs: number): void {
    const ns = Math.round(durationMs * 1e6)
    this.histogram.record(ns < 1 ? 1 : ns)
  }

  get count(): number {
    return this.histogram.count
  }
}

/** The summary of a histogram, or undefined when it holds no value. */
export function summarize(histogram: RecordableHistogram): LatencySummaryNs | undefined {
  if (histogram.count === 0) return undefined
  return {
    count: histogram.count,
    mean: histogram.mean,
    min: histogram.min,
    p50: histogram.percentile(50),
    p99: histogram.percentile(99),
    p999: histogram.percentile(99.9),
    max: histogram.max,
  }
}

/** One histogram holding every value of `histograms`. */
export function mergeHistograms(histograms: readonly RecordableHistogram[]): RecordableHistogram {
  const merged = createHistogram()
  for (const h of histograms) merged.add(h)
  return merged
}
