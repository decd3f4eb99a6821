/**
 * Per-key locks of the server, which is the only writer of its database.
 *
 * Two kinds of writers exist:
 *
 * - *Exclusive* holders run read-modify-write sequences (INCR, APPEND, SET
 *   NX/XX/GET, DEL, EXEC, and every HTTP write, which must report the version
 *   it produced): they read, write, and may read back their own version, and
 *   nothing else may write their keys in between. They take the lock, await
 *   whatever they need, and release it.
 * - *Blind* writers (SET, MSET) never read: they only must not land inside an
 *   exclusive holder's critical section. `whenFree` runs them synchronously at
 *   a moment none of their keys is held, so they hold nothing and never wait
 *   for each other; group commit in the engine stays intact on hot keys.
 *
 * Multi-key exclusive acquisition goes in one global order (sorted key ids),
 * and blind writers hold nothing while they wait, so there is no deadlock.
 * Waiters of one key are served first-come first-served.
 *
 * Writes that touch every key (a range delete: RESP FLUSHDB, HTTP DELETE
 * /v1/range, EXEC or an HTTP batch holding one) need the whole key space:
 * `whenAllFree` runs a blind one at a moment no key is held, `acquireAll`
 * holds every key (nothing else is granted until it releases). While one
 * of them waits, new exclusive acquisitions wait behind it (so a stream of
 * read-modify-writes cannot starve it); those already queued on a key go
 * first. The holders of keys never wait for the key space while holding
 * them, so this adds no deadlock.
 */

type Waiter = { exclusive: true; grant: () => void } | { exclusive: false; grant: () => void }

interface KeyState {
  /** False only while release() hands the key to waiting blind writers. */
  locked: boolean
  waiters: Waiter[]
}

/** The id of a key in lock tables and maps: its bytes as a latin1 string. */
export function keyId(key: Buffer): string {
  return key.toString('latin1')
}

/** Exclusive per-key locks plus a "run when free" for blind writers. */
export class KeyLocks {
  private readonly states = new Map<string, KeyState>()
  /** Writers of the whole key space waiting for no key to be held, in arrival order. */
  private readonly allWaiters: Array<() => void> = []
  /** The whole key space is held (acquireAll). */
  private allHeld = false
  /** Acquisitions and blind writes waiting for the whole key space to be free again. */
  private gated: Array<() => void> = []
  /**
   * Called synchronously by `acquire` once it holds all its ids, before it
   * resolves: the server issues the writes it has queued that may touch
   * them (resp/write-batcher.ts), so the holder reads them and commits after
   * them. (Not before taking them: a writer holding them could still queue.)
   */
  onAcquired: ((ids: readonly string[]) => void) | undefined
  /** As onAcquired, when a writer of the whole key space gets it (acquireAll, whenAllFree). */
  onAcquiredAll: (() => void) | undefined

  /** Keys currently held or waited for, plus one while the whole key space is held (for stats and tests). */
  get heldCount(): number {
    return this.states.size + (this.allHeld ? 1 : 0)
  }

  /** True when `id` is exclusively held right now. */
  isLocked(id: string): boolean {
    if (this.allHeld) return true
    const s = this.states.get(id)
    return s !== undefined && s.locked
  }

  /**
   * Calls `fn` synchronously as soon as none of `ids` is exclusively held:
   * right now (returning fn's result) or later (returning a promise of it).
   * `fn` must issue its writes synchronously.
   */
  whenFree<T>(ids: readonly string[], fn: () => T): T | Promise<T> {
    if (this.allHeld) return this.afterGate(() => this.whenFree(ids, fn))
    const blocked = this.firstLocked(ids)
    if (blocked === undefined) return fn()
    return new Promise<T>((resolve, reject) => {
      this.enqueueBlind(blocked, ids, fn, resolve, reject)
    })
  }

  /**
   * Calls `fn` synchronously at a moment no key is held (a write of the
   * whole key space that reads nothing: FLUSHDB, a range delete): right now
   * (returning fn's result) or later (a promise of it). `onAcquiredAll` runs
   * just before. `fn` must issue its writes synchronously.
   */
  whenAllFree<T>(fn: () => T): T | Promise<T> {
    const run = (): T => {
      this.onAcquiredAll?.()
      return fn()
    }
    if (this.allFree()) return run()
    return new Promise<T>((resolve, reject) => {
      this.allWaiters.push(() => {
        try {
          resolve(run())
        } catch (err) {
          reject(err)
        }
      })
    })
  }

  /**
   * Holds the whole key space: resolves, once no key is held, with the
   * function that releases it; until then nothing else is granted. Always
   * release, also on error.
   */
  acquireAll(): Promise<() => void> {
    const take = (): (() => void) => {
      this.allHeld = true
      this.onAcquiredAll?.()
      let released = false
      return () => {
        if (released) return
        released = true
        this.allHeld = false
        this.drain()
      }
    }
    if (this.allFree()) return Promise.resolve(take())
    return new Promise((resolve) => this.allWaiters.push(() => resolve(take())))
  }

  /**
   * Takes exclusive locks on `ids` (any order, duplicates allowed); resolves
   * with the function that releases them all. Always release, also on error.
   */
  async acquire(ids: Iterable<string>): Promise<() => void> {
    while (this.gateClosed()) await this.afterGate(() => undefined)
    const sorted = [...new Set(ids)].sort()
    const taken: string[] = []
    try {
      for (const id of sorted) {
        const wait = this.acquireOne(id)
        taken.push(id)
        if (wait !== undefined) await wait
      }
    } catch (err) {
      for (const id of taken) this.releaseOne(id)
      throw err
    }
    this.onAcquired?.(sorted)
    return this.releaser(taken)
  }

  /**
   * Takes exclusive locks on `ids` at once if none of them is held or waited
   * for (returns the release function, as `acquire` resolves with); else
   * takes nothing and returns undefined (then use `acquire`).
   */
  tryAcquire(ids: readonly string[]): (() => void) | undefined {
    if (this.gateClosed()) return undefined
    for (const id of ids) if (this.states.has(id)) return undefined
    const taken = ids.length === 1 ? [ids[0]] : [...new Set(ids)]
    for (const id of taken) this.states.set(id, { locked: true, waiters: [] })
    this.onAcquired?.(taken)
    return this.releaser(taken)
  }

  /** Nothing held or waited for: a writer of the whole key space may go now. */
  private allFree(): boolean {
    return !this.allHeld && this.states.size === 0 && this.allWaiters.length === 0
  }

  /** New exclusive acquisitions wait: the whole key space is held or waited for. */
  private gateClosed(): boolean {
    return this.allHeld || this.allWaiters.length > 0
  }

  /** Runs `fn` once the whole key space is neither held nor waited for (a promise of its result). */
  private afterGate<T>(fn: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.gated.push(() => {
        try {
          resolve(fn())
        } catch (err) {
          reject(err)
        }
      })
    })
  }

  /**
   * No key is held any more, or the whole key space was released: the
   * writers of the whole key space waiting go, in order (until one holds
   * it), then, once none waits, what the gate held back.
   */
  private drain(): void {
    while (!this.allHeld && this.states.size === 0 && this.allWaiters.length > 0) this.allWaiters.shift()!()
    if (this.gateClosed() || this.gated.length === 0) return
    const gated = this.gated
    this.gated = []
    for (const g of gated) g()
  }

  private firstLocked(ids: readonly string[]): string | undefined {
    for (const id of ids) if (this.isLocked(id)) return id
    return undefined
  }

  private enqueueBlind<T>(id: string, ids: readonly string[], fn: () => T, resolve: (v: T | Promise<T>) => void, reject: (e: unknown) => void): void {
    this.states.get(id)!.waiters.push({
      exclusive: false,
      grant: () => {
        // (Not expected: the whole key space is only held while no key is.)
        if (this.allHeld) return void this.afterGate(() => this.whenFree(ids, fn)).then(resolve, reject)
        const blocked = this.firstLocked(ids)
        if (blocked !== undefined) {
          this.enqueueBlind(blocked, ids, fn, resolve, reject)
          return
        }
        try {
          resolve(fn())
        } catch (err) {
          reject(err)
        }
      },
    })
  }

  /** Takes `id` now (undefined) or queues for it (a promise resolved once held). */
  private acquireOne(id: string): Promise<void> | undefined {
    const s = this.states.get(id)
    if (s === undefined) {
      this.states.set(id, { locked: true, waiters: [] })
      return undefined
    }
    return new Promise<void>((resolve) => s.waiters.push({ exclusive: true, grant: resolve }))
  }

  /** Releases `taken` on its first call; later calls do nothing. */
  private releaser(taken: readonly string[]): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      for (const id of taken) this.releaseOne(id)
    }
  }

  private releaseOne(id: string): void {
    const s = this.states.get(id)
    if (s === undefined) return
    for (;;) {
      const w = s.waiters.shift()
      if (w === undefined) {
        this.states.delete(id)
        if (this.states.size === 0 && (this.allWaiters.length > 0 || this.gated.length > 0)) this.drain()
        return
      }
      if (w.exclusive) {
        // Ownership passes straight on: the key never looks free in between.
        s.locked = true
        w.grant()
        return
      }
      s.locked = false
      w.grant()
      s.locked = true
    }
  }
}
