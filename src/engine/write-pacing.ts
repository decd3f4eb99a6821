import { pendingCompactionBytes } from '../compaction/picker.js'
import type { TableVersion } from '../manifest/table-version.js'
import type { Memtable } from '../memtable/memtable.js'
import type { ResolvedOptions } from '../options.js'
import { assert } from '../base/assert.js'
import type { StrataError } from '../base/errors.js'
import type { EngineStats, WaitCause } from './stats.js'

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
 * stop threshold (docs/performance.md, "Compaction" under the design choices).
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

/** What write pacing reads of the engine. */
export interface PacingHost {
  readonly options: ResolvedOptions
  currentTableVersion(): TableVersion
  activeMemtable(): Memtable
  frozenMemtables(): readonly Memtable[]
  /** Resolves at the next flush or compaction that finishes (or fails). */
  backgroundProgress(): Promise<void>
  readonly failure: StrataError | undefined
  readonly isOpen: boolean
}

/** The wait counters of `stats().writes`. */
export type WaitCounters = Pick<EngineStats['writes'], 'stalls' | 'stallMs' | 'slowdowns' | 'slowdownMs' | 'waits'>

/**
 * The write path's pacing (docs/design.md, "Write pacing"): whether writes
 * must queue to be paced, how long the next group waits for compaction debt
 * and for the running flush, the rate it is charged at, and the count of
 * every wait by cause.
 */
export class WriteThrottle {
  /** Compaction debt of `debtTableVersion` (recomputed when the table version changes). */
  private debtTableVersion: TableVersion | undefined
  private debt = 0
  /** Whether L0 files (else pending compaction bytes) are the larger measure of `debt`: the cause its waits count under. */
  private debtByL0 = true
  private readonly pacer = new WritePacer()
  /** When the running flush should end (flush pacing). */
  private readonly flushClock = new FlushEstimator()
  /** Whether the group let through last was paced for a flush (it does not measure the unpaced rate); cleared when it commits. */
  private flushPaced = false
  /** When the active memtable became the active one. */
  private activeSinceMs = performance.now()

  constructor(
    private readonly host: PacingHost,
    private readonly counters: WaitCounters,
  ) {}

  /** True when writes must queue: compaction debt or flush pacing slows them. */
  holdsWrites(): boolean {
    return this.currentDebt() !== 0 || this.flushPaceRate() !== Infinity
  }

  /** A new active memtable. */
  memtableSwitched(): void {
    this.activeSinceMs = performance.now()
  }

  /** A flush started now (the engine's flush loop). */
  flushStarted(nowMs: number): void {
    this.flushClock.started(nowMs)
  }

  /** A flush of `memtableBytes` took `durationMs` and is installed. */
  flushFinished(memtableBytes: number, durationMs: number): void {
    this.flushClock.finished(memtableBytes, durationMs)
  }

  /** The running flush ended, successfully or not. */
  flushEnded(): void {
    this.flushClock.ended()
  }

  /**
   * Waits as compaction debt and flush pacing ask before the next group
   * (throws the engine's failure when a stop ends in one); returns the rate
   * (bytes per ms) to `charge` the group at, Infinity when it is not paced.
   */
  async paceNextGroup(): Promise<number> {
    const debt = this.currentDebt() > 0 ? await this.paceForDebt() : 0
    const flushRate = await this.paceForFlush()
    this.flushPaced = flushRate !== Infinity
    // The slower of the two paces asked for.
    return Math.min(debt > 0 ? this.pacer.allowedBytesPerMs(debt) : Infinity, flushRate)
  }

  /** Charges the group of `bytes` just let through at `rate` (from paceNextGroup). */
  charge(bytes: number, rate: number): void {
    if (rate !== Infinity) this.pacer.chargeAtRate(bytes, rate, performance.now())
  }

  /** A group of `bytes` committed: unpaced groups measure the unpaced rate. */
  groupCommitted(bytes: number): void {
    this.pacer.record(bytes, this.currentDebt() > 0 || this.flushPaced, performance.now())
    // The flag was the group's just paced; writes applied at once after it are not paced.
    this.flushPaced = false
  }

  /** Counts a wait that began at `started` (a stall or a slowdown) under its cause. */
  countWait(kind: 'stall' | 'slowdown', cause: WaitCause, started: number): void {
    const ms = performance.now() - started
    const c = this.counters
    if (kind === 'stall') (c.stalls++, (c.stallMs += ms))
    else (c.slowdowns++, (c.slowdownMs += ms))
    const w = c.waits[cause]
    w.count++
    w.ms += ms
    if (ms > w.maxMs) w.maxMs = ms
    if (ms >= 50) w.over50Ms++
  }

  /** Compaction debt of the current table version (0 without automatic compaction); cached per table version. */
  private currentDebt(): number {
    if (!this.host.options.autoCompaction) return 0
    const tableVersion = this.host.currentTableVersion()
    if (tableVersion !== this.debtTableVersion) {
      this.debtTableVersion = tableVersion
      const { byFiles, byBytes } = compactionDebtParts(tableVersion, this.host.options)
      this.debt = Math.max(byFiles, byBytes)
      this.debtByL0 = byFiles >= byBytes
    }
    return this.debt
  }

  /**
   * Paces writes by compaction debt: between the soft and hard thresholds the
   * write rate is limited to a share of the unpaced rate that shrinks with the
   * debt (WritePacer); at the hard threshold writes wait for compaction
   * progress. Gradual, so throughput and latency change smoothly instead of
   * falling off a cliff. Returns the debt the next group is paced at.
   */
  private async paceForDebt(): Promise<number> {
    let debt = this.currentDebt()
    if (debt >= 1) {
      const cause = this.debtByL0 ? 'l0Stop' : 'pendingCompactionStop'
      const started = performance.now()
      // While closing no new compaction starts: let the queued writes through instead of waiting.
      while (debt >= 1 && !this.host.failure && this.host.isOpen) {
        await this.host.backgroundProgress()
        debt = this.currentDebt()
      }
      this.countWait('stall', cause, started)
      const failure = this.host.failure
      if (failure) throw failure
    }
    if (debt > 0) await this.waitForBucket(this.debtByL0 ? 'l0Slowdown' : 'pendingCompactionSlowdown')
    return debt
  }

  /**
   * Flush pacing: the write rate (bytes per ms) at which the active memtable
   * fills just as the running flush is expected to end, when every frozen
   * slot is taken (so a full memtable would have to wait for that flush) and
   * writes at their unpaced rate (before one is measured: the rate this
   * memtable filled at so far) would fill it sooner; Infinity otherwise.
   * Spreads what would be one stall of the whole stream (a `flushSlot` wait
   * of up to several hundred ms) over many short waits.
   */
  private flushPaceRate(): number {
    const frozen = this.host.frozenMemtables()
    if (frozen.length === 0 || frozen.length < this.host.options.maxImmutableMemtables) return Infinity
    const nowMs = performance.now()
    const remainingMs = this.flushClock.remainingMs(frozen[0].approximateBytes, nowMs)
    if (remainingMs === 0) return Infinity
    const usedBytes = this.host.activeMemtable().approximateBytes
    const roomBytes = this.host.options.memtableBytes - usedBytes
    const unpaced = this.pacer.unpacedRate > 0 ? this.pacer.unpacedRate : usedBytes / Math.max(1, nowMs - this.activeSinceMs)
    if (roomBytes <= 0 || roomBytes >= unpaced * remainingMs) return Infinity
    return roomBytes / remainingMs
  }

  /** Waits as flush pacing asks; returns the rate the group is to be charged at (Infinity: not paced). */
  private async paceForFlush(): Promise<number> {
    const rate = this.flushPaceRate()
    if (rate !== Infinity) await this.waitForBucket('flushSlowdown')
    return rate
  }

  /** Waits until the token bucket lets the next group through; counted as a slowdown of `cause`. */
  private async waitForBucket(cause: WaitCause): Promise<void> {
    const started = performance.now()
    const waitMs = this.pacer.waitMs(started)
    // Timers have millisecond resolution: shorter waits are carried by the bucket.
    if (waitMs >= 1) await new Promise<void>((resolve) => setTimeout(resolve, waitMs))
    this.countWait('slowdown', cause, started)
  }
}
