import { PerformanceObserver, performance } from 'node:perf_hooks'

/** Interval of the event-loop probe timer. */
const PROBE_MS = 10
/** A block or a GC pause at least this long is counted (the bound on a put). */
const LONG_MS = 50

/** What held the main thread during a phase: event-loop blocks and GC pauses. */
export interface LoopReport {
  /** Times the probe timer fired at least LONG_MS late, and the longest delay (ms) and when (ms into the phase). */
  blocksOver50Ms: number
  longestBlockMs: number
  longestBlockAtMs: number
  /** GC pauses of the main thread: count, total, longest and how many reached LONG_MS. */
  gcPauses: number
  gcTotalMs: number
  longestGcMs: number
  gcOver50Ms: number
}

/**
 * Watches the main thread while a phase runs, to tell a slow put's cause
 * when the engine's own wait counters (stats().writes.waits) show none: a
 * timer every PROBE_MS measures how late it fires (time the event loop was
 * blocked: synchronous work or a GC pause), and a PerformanceObserver
 * collects the GC pauses.
 */
export class LoopWatch {
  private readonly startedMs = performance.now()
  private lastMs = this.startedMs
  private readonly timer: NodeJS.Timeout
  private readonly gc: PerformanceObserver
  private readonly report: LoopReport = { blocksOver50Ms: 0, longestBlockMs: 0, longestBlockAtMs: 0, gcPauses: 0, gcTotalMs: 0, longestGcMs: 0, gcOver50Ms: 0 }

  constructor() {
    this.timer = setInterval(() => this.probe(), PROBE_MS)
    this.timer.unref()
    this.gc = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const r = this.report
        r.gcPauses++
        r.gcTotalMs += entry.duration
        if (entry.duration > r.longestGcMs) r.longestGcMs = entry.duration
        if (entry.duration >= LONG_MS) r.gcOver50Ms++
      }
    })
    this.gc.observe({ entryTypes: ['gc'] })
  }

  /** Stops watching and returns what was seen. */
  stop(): LoopReport {
    this.probe()
    clearInterval(this.timer)
    this.gc.disconnect()
    return { ...this.report }
  }

  private probe(): void {
    const now = performance.now()
    const lateMs = now - this.lastMs - PROBE_MS
    this.lastMs = now
    const r = this.report
    if (lateMs >= LONG_MS) r.blocksOver50Ms++
    if (lateMs > r.longestBlockMs) {
      r.longestBlockMs = lateMs
      r.longestBlockAtMs = now - lateMs - this.startedMs
    }
  }
}
