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
  private readonly waiters: Waiter[] = []
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

  /** The turn, now or (a promise) once it is this caller's turn or the wait timed out. */
  take(): Turn | Promise<Turn> {
    if (!this.held) {
      this.held = true
      return new Turn(this)
    }
    return new Promise((resolve) => {
      this.waiters.push(new Waiter(resolve, performance.now()))
      this.waiting.count++
      this.timer ??= setInterval(() => this.expire(), this.maxWaitMs / 2).unref()
    })
  }

  /** @internal Called by a Turn's first release: the next waiter gets its turn. */
  passOn(): void {
    const next = this.waiters.shift()
    if (next === undefined) {
      this.held = false
      this.stopTimer()
      return
    }
    this.waiting.count--
    next.resolve(new Turn(this))
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
      this.waiters.shift()!.resolve(new Turn(this))
    }
    if (this.waiters.length === 0) this.stopTimer()
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }
}

/** A turn taken from a TurnQueue; `release` is idempotent. */
export class Turn {
  private released = false

  constructor(private readonly queue: TurnQueue) {}

  release(): void {
    if (this.released) return
    this.released = true
    this.queue.passOn()
  }
}

class Waiter {
  constructor(
    readonly resolve: (turn: Turn) => void,
    readonly sinceMs: number,
  ) {}
}
