import { createHistogram } from 'node:perf_hooks'

/**
 * Throughput and latency over the course of one timed workload: per second
 * (for the chart, so stalls and cliffs show) and, optionally, per window of a
 * fixed number of operations (bigdata's "throughput per 1M-key window").
 * Operations are counted when they complete.
 */

/** One second of a workload. */
export interface SeriesPoint {
  /** Start of the interval, in seconds since timing started. */
  t: number
  /** Length of the interval in seconds (the last one is usually shorter). */
  seconds: number
  /** Operations completed in the interval. */
  ops: number
  opsPerSec: number
  /** Latency percentiles of the operations completed in the interval (absent when none completed). */
  p50Ns?: number
  p99Ns?: number
  maxNs?: number
  /** Largest resident set size sampled in the interval (bigdata only), bytes. */
  rssBytes?: number
}

/** One window of `windowOps` completed operations. */
export interface WindowPoint {
  /** Operations completed at the end of the window. */
  endOps: number
  ops: number
  seconds: number
  opsPerSec: number
  /** The last window, cut short by the end of the workload. */
  partial?: boolean
}

/** Interval of the per-second series, in milliseconds. */
export const SERIES_INTERVAL_MS = 1000

export class Timeline {
  readonly series: SeriesPoint[] = []
  readonly windows: WindowPoint[] = []
  private startMs = -1
  private bucket = 0
  private bucketOps = 0
  private readonly bucketHistogram = createHistogram()
  private completed = 0
  private lastWindowEndMs = 0
  private lastWindowEndOps = 0
  private finished = false

  /** `windowOps` 0 keeps no windows. */
  constructor(private readonly windowOps = 0) {}

  get started(): boolean {
    return this.startMs >= 0
  }

  /** Marks the start of timing (the first call counts). */
  start(nowMs: number): void {
    if (this.startMs >= 0) return
    this.startMs = nowMs
    this.lastWindowEndMs = nowMs
  }

  /** Records one completed operation and its latency. */
  record(nowMs: number, latencyNs: number): void {
    if (this.startMs < 0) this.start(nowMs)
    const index = Math.floor((nowMs - this.startMs) / SERIES_INTERVAL_MS)
    if (index !== this.bucket) this.advance(index)
    this.bucketOps++
    this.bucketHistogram.record(latencyNs < 1 ? 1 : Math.round(latencyNs))
    this.completed++
    if (this.windowOps > 0 && this.completed - this.lastWindowEndOps >= this.windowOps) this.closeWindow(nowMs, false)
  }

  /** Closes the last interval and window at `nowMs` (the end of timing). Idempotent. */
  finish(nowMs: number): void {
    if (this.finished || this.startMs < 0) return
    this.finished = true
    const elapsed = nowMs - this.startMs
    const index = Math.floor(elapsed / SERIES_INTERVAL_MS)
    if (index > this.bucket) this.advance(index)
    const seconds = (elapsed - this.bucket * SERIES_INTERVAL_MS) / 1000
    if (this.bucketOps > 0 || seconds > 0.05) this.pushBucket(seconds)
    if (this.windowOps > 0 && this.completed > this.lastWindowEndOps) this.closeWindow(nowMs, true)
  }

  /** Closes the current interval and any empty ones up to `index` (a stall shows as zeros). */
  private advance(index: number): void {
    this.pushBucket(SERIES_INTERVAL_MS / 1000)
    for (let empty = this.bucket + 1; empty < index; empty++) {
      this.series.push({ t: (empty * SERIES_INTERVAL_MS) / 1000, seconds: SERIES_INTERVAL_MS / 1000, ops: 0, opsPerSec: 0 })
    }
    this.bucket = index
  }

  private pushBucket(seconds: number): void {
    const point: SeriesPoint = {
      t: (this.bucket * SERIES_INTERVAL_MS) / 1000,
      seconds,
      ops: this.bucketOps,
      opsPerSec: seconds > 0 ? this.bucketOps / seconds : 0,
    }
    if (this.bucketOps > 0) {
      point.p50Ns = this.bucketHistogram.percentile(50)
      point.p99Ns = this.bucketHistogram.percentile(99)
      point.maxNs = this.bucketHistogram.max
    }
    this.series.push(point)
    this.bucketOps = 0
    this.bucketHistogram.reset()
  }

  private closeWindow(nowMs: number, partial: boolean): void {
    const ops = this.completed - this.lastWindowEndOps
    const seconds = (nowMs - this.lastWindowEndMs) / 1000
    const point: WindowPoint = { endOps: this.completed, ops, seconds, opsPerSec: seconds > 0 ? ops / seconds : 0 }
    if (partial) point.partial = true
    this.windows.push(point)
    this.lastWindowEndMs = nowMs
    this.lastWindowEndOps = this.completed
  }
}

/** min and median of the full windows' throughput (the partial last window counts only when it is the only one). */
export function windowStats(windows: readonly WindowPoint[]): { min: number; median: number; minOverMedian: number } | undefined {
  const full = windows.filter((w) => !w.partial)
  const use = full.length > 0 ? full : windows
  if (use.length === 0) return undefined
  const rates = use.map((w) => w.opsPerSec).sort((a, b) => a - b)
  const mid = rates.length >> 1
  const median = rates.length % 2 === 1 ? rates[mid] : (rates[mid - 1] + rates[mid]) / 2
  return { min: rates[0], median, minOverMedian: median > 0 ? rates[0] / median : 0 }
}
