/**
 * FIFO turns that keep contending optimistic transactions from wasting their
 * work on conflicts. A turn passes to the next waiter as soon as the holder's
 * commit is admitted (not once it is durable: the next transaction reads the
 * applied state, see WritePath.write), so a chain of turns runs at the speed of
 * the commit path, not of the WAL.
 *
 * A waiter waits at most `maxWaitMs`, then runs unturned: a turn holder that
 * awaits another transaction (or runs one inside its own) cannot hang both.
 * One timer per queue checks the waiters' ages (a timer per wait cost more
 * than the rest of a hot-key increment).
 */
export class TurnQueue {
  private held = false
  private readonly waiters: Array<{ grant: () => void; sinceMs: number }> = []
  private timer: NodeJS.Timeout | undefined

  /**
   * @param waiting shared count of waiters across the queues of one database
   *   (the engine defers a group's WAL write while a chain of turns goes on).
   */
  constructor(
    private readonly maxWaitMs: number,
    private readonly waiting: { count: number },
  ) {}

  /** True while a turn is held or waited for. */
  get busy(): boolean {
    return this.held || this.waiters.length > 0
  }

  /** Resolves with the turn's release (idempotent) once it is this caller's turn or the wait timed out. */
  take(): Promise<() => void> | (() => void) {
    if (!this.held) {
      this.held = true
      return this.releaser()
    }
    return new Promise((resolve) => {
      this.waiters.push({ grant: () => resolve(this.releaser()), sinceMs: performance.now() })
      this.waiting.count++
      this.timer ??= setInterval(() => this.expire(), this.maxWaitMs / 2).unref()
    })
  }

  private releaser(): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      this.passOn()
    }
  }

  private passOn(): void {
    const next = this.waiters.shift()
    if (next === undefined) {
      this.held = false
      this.stopTimer()
      return
    }
    this.waiting.count--
    next.grant()
  }

  /**
   * Lets every waiter that waited too long run alongside the holder. Its
   * release passes a turn on like any holder's, so each timeout adds at most
   * one concurrent runner; correctness never depended on turns (commits are
   * validated), only throughput.
   */
  private expire(): void {
    const now = performance.now()
    while (this.waiters.length > 0 && now - this.waiters[0].sinceMs >= this.maxWaitMs) {
      this.waiting.count--
      this.waiters.shift()!.grant()
    }
    if (this.waiters.length === 0) this.stopTimer()
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }
}
