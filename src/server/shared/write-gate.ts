/**
 * Admission control for writes. The server counts the writes it has handed
 * to the engine and not yet seen settle; past a bound, or while the engine
 * has made no progress for too long (a write stall: compaction far behind,
 * a slow disk), new writes are refused at once (HTTP 503, RESP -BUSY) instead
 * of piling up in unbounded queues. Reads are never refused.
 */

/** Why a write was refused. */
export interface BusyReason {
  message: string
}

/** Counts in-flight engine writes and decides whether another may start. */
export class WriteGate {
  private inFlight = 0
  /** When a write last settled, or the gate went from idle to busy. */
  private lastProgressMs = 0
  /** Writes refused so far. */
  refused = 0

  constructor(
    private readonly maxPendingWrites: number,
    private readonly maxWriteStallMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Writes handed to the engine and not yet settled. */
  get pending(): number {
    return this.inFlight
  }

  /** How long pending writes have gone without any completing (0 when none are pending). */
  stalledMs(): number {
    return this.inFlight === 0 ? 0 : Math.max(0, this.now() - this.lastProgressMs)
  }

  /** undefined when a new write may start now; else why not (and counts a refusal). */
  admit(): BusyReason | undefined {
    if (this.inFlight >= this.maxPendingWrites) {
      this.refused++
      return { message: `${this.inFlight} writes are already in flight` }
    }
    const stalled = this.stalledMs()
    if (stalled > this.maxWriteStallMs) {
      this.refused++
      return { message: `writes are stalled (none completed for ${Math.round(stalled)} ms)` }
    }
    return undefined
  }

  /** Counts `write` as in flight until it settles; returns it unchanged. */
  track<T>(write: Promise<T>): Promise<T> {
    this.begin()
    write.then(this.settled, this.settled)
    return write
  }

  /** Counts one write as in flight; the caller calls `end()` exactly once when it settles. */
  begin(): void {
    if (this.inFlight++ === 0) this.lastProgressMs = this.now()
  }

  /** One write counted by `begin()` has settled. */
  end(): void {
    this.inFlight--
    this.lastProgressMs = this.now()
  }

  private readonly settled = (): void => this.end()
}
