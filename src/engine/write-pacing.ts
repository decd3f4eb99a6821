import { pendingCompactionBytes } from '../compaction/picker.js'
import type { TableVersion } from '../manifest/table-version.js'
import type { ResolvedOptions } from '../options.js'
import { assert } from '../base/assert.js'

/** Near the hard threshold writes still get this fraction of their unpaced rate. */
const MIN_RATE_FRACTION = 0.05
/** Unpaced rate assumed before one was measured (bytes per ms, ~4 MB/s). */
const DEFAULT_UNPACED_BYTES_PER_MS = 4096
/** The unpaced write rate is measured over windows of at least this long. */
const RATE_SAMPLE_MS = 200

/**
 * Compaction debt of a table version: 0 when writes may go at full speed; in (0, 1)
 * when they should be slowed in proportion; >= 1 when they must wait for
 * compaction. The larger of the L0-file and pending-bytes measures. Table
 * versions are immutable: the write path computes it once per table version.
 */
export function compactionDebt(tableVersion: TableVersion, o: ResolvedOptions): number {
  const { byFiles, byBytes } = compactionDebtParts(tableVersion, o)
  return Math.max(byFiles, byBytes)
}

/** The two measures of compaction debt: by L0 files and by pending compaction bytes. */
export function compactionDebtParts(tableVersion: TableVersion, o: ResolvedOptions): { byFiles: number; byBytes: number } {
  const l0 = tableVersion.levels[0].length
  const pending = pendingCompactionBytes(tableVersion, o)
  const byFiles = l0 < o.l0SlowdownTrigger ? 0 : (l0 - o.l0SlowdownTrigger + 1) / (o.l0StopTrigger - o.l0SlowdownTrigger + 1)
  const byBytes =
    pending < o.softPendingCompactionBytes
      ? 0
      : (pending - o.softPendingCompactionBytes + 1) / (o.hardPendingCompactionBytes - o.softPendingCompactionBytes + 1)
  return { byFiles, byBytes }
}

/**
 * Slows writes to a rate, not by a fixed delay: while compaction debt is in
 * (0, 1) the allowed write rate falls from the rate measured while writes
 * were not paced (debt 0) to 5% of it near the hard threshold, linearly in
 * the debt. Groups pass through a token bucket: a group waits until the bytes
 * before it have had their time at the allowed rate. A fixed 1-20 ms delay
 * per group (the first version) cut a 300k puts/s stream to ~60k at the
 * slightest debt: the windows dropped to a fifth of the median long before the
 * stop threshold (docs/performance.md, "Pacing").
 */
export class WritePacer {
  private unpacedBytesPerMs = 0
  private sampleStartMs = -1
  private sampleBytes = 0
  /** When the next paced group may be written. */
  private nextGroupMs = 0

  /** Records a group of `bytes` written at `nowMs`; only unpaced groups measure the unpaced rate. */
  record(bytes: number, paced: boolean, nowMs: number): void {
    if (paced) {
      this.sampleStartMs = -1
      return
    }
    if (this.sampleStartMs < 0) {
      this.sampleStartMs = nowMs
      this.sampleBytes = 0
      return
    }
    this.sampleBytes += bytes
    const elapsedMs = nowMs - this.sampleStartMs
    if (elapsedMs < RATE_SAMPLE_MS) return
    const rate = this.sampleBytes / elapsedMs
    this.unpacedBytesPerMs = this.unpacedBytesPerMs === 0 ? rate : 0.7 * this.unpacedBytesPerMs + 0.3 * rate
    this.sampleStartMs = nowMs
    this.sampleBytes = 0
  }

  /** The write rate measured while writes were not paced (bytes per ms); 0 before one was measured. */
  get unpacedRate(): number {
    return this.unpacedBytesPerMs
  }

  /** Bytes per ms allowed at `debt` (in (0, 1)). */
  allowedBytesPerMs(debt: number): number {
    const unpaced = this.unpacedBytesPerMs > 0 ? this.unpacedBytesPerMs : DEFAULT_UNPACED_BYTES_PER_MS
    return unpaced * Math.max(MIN_RATE_FRACTION, 1 - debt)
  }

  /** How long the next paced group waits, from `nowMs`. */
  waitMs(nowMs: number): number {
    return Math.max(0, this.nextGroupMs - nowMs)
  }

  /** Charges a paced group of `bytes` sent at `nowMs` at the rate allowed at `debt`. */
  charge(bytes: number, debt: number, nowMs: number): void {
    this.chargeAtRate(bytes, this.allowedBytesPerMs(debt), nowMs)
  }

  /** Charges a paced group of `bytes` sent at `nowMs` at `bytesPerMs`. */
  chargeAtRate(bytes: number, bytesPerMs: number, nowMs: number): void {
    assert(bytesPerMs > 0, 'a paced rate must be positive')
    this.nextGroupMs = Math.max(this.nextGroupMs, nowMs) + bytes / bytesPerMs
  }
}

/** Weight of the newest flush in the smoothed flush rate. */
const FLUSH_RATE_WEIGHT = 0.5
/** A late flush is assumed to need this share of the time it has run, still. */
const LATE_REMAINING_SHARE = 0.5

/**
 * Predicts when the running flush ends, from the rate of the flushes before it
 * (memtable bytes per ms, smoothed), so that writes can be slowed while the
 * active memtable still has room, rather than stopped once it is full and the
 * flush before it has not finished (a `flushSlot` stall: the longest put
 * waits of a random-write stream, docs/performance.md).
 */
export class FlushEstimator {
  private bytesPerMs = 0
  private startedMs = -1

  /** A flush started at `nowMs`. */
  started(nowMs: number): void {
    this.startedMs = nowMs
  }

  /** A flush of `bytes` memtable bytes took `durationMs`: updates the rate. */
  finished(bytes: number, durationMs: number): void {
    if (bytes <= 0 || durationMs <= 0) return
    const rate = bytes / durationMs
    this.bytesPerMs = this.bytesPerMs === 0 ? rate : (1 - FLUSH_RATE_WEIGHT) * this.bytesPerMs + FLUSH_RATE_WEIGHT * rate
  }

  /** No flush runs (it ended, successfully or not). */
  ended(): void {
    this.startedMs = -1
  }

  /**
   * Milliseconds until the running flush of `bytes` memtable bytes is
   * expected to end; 0 when no flush runs. A flush running late (from two
   * thirds of its expected time on) is assumed to need half as long again as
   * it has run: the later it is, the slower writes go, so the room left
   * shrinks smoothly instead of running out (one flush slower than predicted
   * stopped bigdata's stream for 352 ms when a late flush was assumed to
   * need a tenth of its expected time). The first flush, with no rate
   * measured yet, counts as late from its start: unpaced, it was the one
   * flushSlot wait left in bigdata runs (58 and 149 ms); paced, none is left.
   */
  remainingMs(bytes: number, nowMs: number): number {
    if (this.startedMs < 0) return 0
    const elapsedMs = nowMs - this.startedMs
    const expectedMs = this.bytesPerMs === 0 ? 0 : bytes / this.bytesPerMs
    return Math.max(expectedMs - elapsedMs, LATE_REMAINING_SHARE * elapsedMs)
  }
}
