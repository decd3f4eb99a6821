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
  /**
   * Called synchronously by `acquire` once it holds all its ids, before it
   * resolves: the server issues the writes it has queued that may touch
   * them (resp/write-batcher.ts), so the holder reads them and commits after
   * them. (Not before taking them: a writer holding them could still queue.)
   */
  onAcquired: ((ids: readonly string[]) => void) | undefined

  /** Keys currently held (for stats and tests). */
  get heldCount(): number {
    return this.states.size
  }

  /** True when `id` is exclusively held right now. */
  isLocked(id: string): boolean {
    const s = this.states.get(id)
    return s !== undefined && s.locked
  }

  /**
   * Calls `fn` synchronously as soon as none of `ids` is exclusively held:
   * right now (returning fn's result) or later (returning a promise of it).
   * `fn` must issue its writes synchronously.
   */
  whenFree<T>(ids: readonly string[], fn: () => T): T | Promise<T> {
    const blocked = this.firstLocked(ids)
    if (blocked === undefined) return fn()
    return new Promise<T>((resolve, reject) => {
      this.enqueueBlind(blocked, ids, fn, resolve, reject)
    })
  }

  /**
   * Takes exclusive locks on `ids` (any order, duplicates allowed); resolves
   * with the function that releases them all. Always release, also on error.
   */
  async acquire(ids: Iterable<string>): Promise<() => void> {
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
    for (const id of ids) if (this.states.has(id)) return undefined
    const taken = ids.length === 1 ? [ids[0]] : [...new Set(ids)]
    for (const id of taken) this.states.set(id, { locked: true, waiters: [] })
    this.onAcquired?.(taken)
    return this.releaser(taken)
  }

  private firstLocked(ids: readonly string[]): string | undefined {
    for (const id of ids) if (this.isLocked(id)) return id
    return undefined
  }

  private enqueueBlind<T>(id: string, ids: readonly string[], fn: () => T, resolve: (v: T | Promise<T>) => void, reject: (e: unknown) => void): void {
    this.states.get(id)!.waiters.push({
      exclusive: false,
      grant: () => {
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
