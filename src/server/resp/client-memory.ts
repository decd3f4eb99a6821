/**
 * Client eviction (Redis 7's `maxmemory-clients`): a server-wide budget for
 * the memory RESP connections hold, their unsent output (socket buffer plus
 * encoded replies) and their input not yet parsed into commands.
 *
 * Each connection reports what it holds at the few points where that
 * changes in bulk (end of a parse pump, a flush, 'drain', close, and the
 * periodic sweep), as a difference against what it reported last: the total
 * is a running sum, so the command path never looks at other connections.
 * When the total goes over the budget an eviction run is scheduled (once per
 * event-loop turn at most): the server re-measures every connection and
 * closes the ones holding the most until the total is back under the budget
 * (server.ts). A client that reads its replies holds next to nothing
 * and is never chosen while a client that does not read holds megabytes.
 */

/** The running total and the budget; see the file comment. */
export class ClientMemory {
  /** Bytes the RESP connections hold, as last reported. */
  used = 0
  /** Connections closed because the total was over the budget (INFO `evicted_clients`). */
  evicted = 0
  private scheduled = false
  /** The eviction run (set by the RESP server): closes the largest holders until `used <= budget`. */
  evictor: (() => void) | undefined

  /** `budget` in bytes; 0 = no budget (nothing is evicted). */
  constructor(readonly budget: number) {}

  /** A connection now holds `delta` bytes more (or less). */
  add(delta: number): void {
    this.used += delta
    if (delta > 0 && this.budget > 0 && this.used > this.budget && !this.scheduled && this.evictor !== undefined) {
      this.scheduled = true
      // After the replies of this turn were encoded and handed over (their flushes are setImmediates too).
      setImmediate(() => {
        this.scheduled = false
        if (this.used > this.budget) this.evictor?.()
      })
    }
  }
}
