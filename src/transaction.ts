import { StrataError } from './base/errors.js'
import type { Bytes } from './base/keys.js'
import type { BatchOp, Database, Entry, IteratorOptions, Snapshot } from './db.js'
import { inRange, type KeyRange } from './iterators/db-iterator.js'
import type { Condition } from './engine/write-group.js'

/** Options of `db.transaction`. */
export interface TransactionOptions {
  /** Re-runs after a conflict before giving up with STRATA_CONFLICT. Default 10; Infinity retries until it commits. */
  retries?: number
}

/**
 * The handle `fn` receives. Reads see the transaction's own writes on top of
 * a snapshot taken when the attempt started; writes are buffered until commit.
 * Point reads and range reads are both validated at commit: a key read must
 * still have the version it had, and no key may have been written into a
 * scanned range since the snapshot (phantoms conflict).
 */
export interface Transaction {
  get(key: Bytes): Promise<Buffer | undefined>
  getEntry(key: Bytes): Promise<Entry | undefined>
  put(key: Bytes, value: Bytes): void
  delete(key: Bytes): void
  /** Range read (own writes merged over the snapshot); the part actually scanned is validated at commit. */
  iterator(options?: IteratorOptions): AsyncIterableIterator<[Buffer, Buffer]>
}

const DEFAULT_RETRIES = 10
/**
 * An attempt waits at most this long for its turn, so a turn holder that
 * awaits another transaction (or runs one inside its fn) cannot hang them
 * both; it then runs unturned. (Detecting nesting with AsyncLocalStorage would
 * turn on promise hooks for the whole process: measured 2-3x slower commits.)
 */
const TURN_WAIT_MAX_MS = 250
/** After this many conflicts a transaction escalates: it and all new attempts take turns (FIFO). */
const ESCALATE_AFTER_CONFLICTS = 3

/**
 * Per-database FIFO turn for transactions under contention. While any
 * escalated transaction waits or runs, every attempt takes a turn, so the
 * oldest struggling transaction runs with no other transaction racing it and
 * commits: no starvation, and no hang (a turn is released in `finally`).
 * Only escalated transactions keep the database in turns: when the last one
 * is done, new attempts run concurrently again even if turn takers are still
 * queued. (Counting every queued taker kept 512 tasks over 1,000 keys in
 * turns for good after the first escalation: one commit per WAL write,
 * 69k commits/s; now 141k/s. docs/performance.md.)
 */
class Turns {
  private tail: Promise<void> = Promise.resolve()
  /** Escalated transactions waiting for or holding a turn: while any, every attempt takes a turn. */
  escalated = 0

  async take(escalated: boolean): Promise<() => void> {
    if (escalated) this.escalated++
    let release!: () => void
    const mine = new Promise<void>((resolve) => (release = resolve))
    const before = this.tail
    this.tail = before.then(() => mine)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([before, new Promise<void>((resolve) => (timer = setTimeout(resolve, TURN_WAIT_MAX_MS)))])
    clearTimeout(timer)
    return () => {
      if (escalated) this.escalated--
      release()
    }
  }
}

const turnsByDb = new WeakMap<Database, Turns>()

export async function runTransaction<T>(
  db: Database,
  fn: (tx: Transaction) => Promise<T> | T,
  options: TransactionOptions | undefined,
): Promise<T> {
  if (typeof fn !== 'function') throw new StrataError('STRATA_INVALID_ARGUMENT', 'transaction expects a function')
  const retries = options?.retries ?? DEFAULT_RETRIES
  if (!(retries === Infinity || (Number.isInteger(retries) && retries >= 0))) {
    throw new StrataError('STRATA_INVALID_ARGUMENT', 'retries must be a non-negative integer or Infinity')
  }
  let turns = turnsByDb.get(db)
  if (turns === undefined) turnsByDb.set(db, (turns = new Turns()))
  for (let attempt = 0; ; attempt++) {
    const escalated = attempt >= ESCALATE_AFTER_CONFLICTS
    const release = escalated || turns.escalated > 0 ? await turns.take(escalated) : undefined
    const tx = new TransactionState(db, db.snapshot())
    try {
      const result = await fn(tx.handle)
      await tx.commit()
      return result
    } catch (err) {
      if ((err as StrataError).code !== 'STRATA_CONFLICT' || attempt >= retries) throw err
    } finally {
      tx.snapshot.release()
      release?.()
    }
  }
}

class TransactionState {
  /** Buffered writes by latin1 key: value, or null for a delete. */
  private readonly writes = new Map<string, { key: Buffer; value: Buffer | null }>()
  /** Versions read from the snapshot, by latin1 key (0 = absent). */
  private readonly reads = new Map<string, { key: Buffer; version: number }>()
  private readonly ranges: KeyRange[] = []
  private done = false
  readonly handle: Transaction

  constructor(
    private readonly db: Database,
    readonly snapshot: Snapshot,
  ) {
    this.handle = {
      get: async (key) => (await this.getEntry(key))?.value,
      getEntry: (key) => this.getEntry(key),
      put: (key, value) => this.write(key, value),
      delete: (key) => this.write(key, null),
      iterator: (o) => this.iterate(o ?? {}),
    }
  }

  private async getEntry(key: Bytes): Promise<Entry | undefined> {
    this.checkActive()
    const k = this.db.checkedKey(key)
    const id = k.toString('latin1')
    const own = this.writes.get(id)
    // The transaction's own write has no version until it commits: reported as 0.
    if (own !== undefined) return own.value === null ? undefined : { value: Buffer.from(own.value), version: 0 }
    const entry = await this.snapshot.getEntry(k)
    if (!this.reads.has(id)) this.reads.set(id, { key: k, version: entry?.version ?? 0 })
    return entry
  }

  private write(key: Bytes, value: Bytes | null): void {
    this.checkActive()
    const k = this.db.checkedKey(key)
    this.writes.set(k.toString('latin1'), { key: k, value: value === null ? null : this.db.checkedValue(value) })
  }

  /**
   * Merges own writes in range over the snapshot's iterator. What the snapshot
   * iterator has read so far is recorded for validation as it goes (from the
   * start bound to the last key read; the whole range once exhausted), so an
   * iterator dropped half-way is validated for the part it read.
   */
  private async *iterate(o: IteratorOptions): AsyncIterableIterator<[Buffer, Buffer]> {
    this.checkActive()
    const reverse = o.reverse === true
    let limit = Infinity
    if (o.limit !== undefined && o.limit !== Infinity && o.limit !== -1) {
      if (!Number.isInteger(o.limit) || o.limit < 0) throw new StrataError('STRATA_INVALID_ARGUMENT', 'limit must be a non-negative integer')
      limit = o.limit
    }
    if (limit === 0) return
    const range: KeyRange = {}
    for (const b of ['gt', 'gte', 'lt', 'lte'] as const) if (o[b] !== undefined) range[b] = this.db.checkedKey(o[b])
    const own = [...this.writes.values()].filter((w) => inRange(w.key, range))
    own.sort((a, b) => (reverse ? -1 : 1) * Buffer.compare(a.key, b.key))
    const base = this.snapshot.iterator({ ...range, reverse })
    // Validated: from the start bound to the last key handed out; the whole range once exhausted.
    let covered: KeyRange | undefined
    const cover = (upTo: Buffer | undefined): void => {
      if (covered === undefined) this.ranges.push((covered = {}))
      for (const b of ['gt', 'gte', 'lt', 'lte'] as const) delete covered[b]
      Object.assign(covered, range)
      if (upTo === undefined) return
      if (reverse) {
        delete covered.gt
        covered.gte = upTo
      } else {
        delete covered.lt
        covered.lte = upTo
      }
    }
    let yielded = 0
    let i = 0
    let next = await base.next()
    try {
      while (yielded < limit) {
        const fromBase = next.done ? undefined : next.value
        const mine = i < own.length ? own[i] : undefined
        if (fromBase === undefined && mine === undefined) {
          cover(undefined)
          break
        }
        const c = fromBase === undefined ? 1 : mine === undefined ? -1 : (reverse ? -1 : 1) * Buffer.compare(fromBase[0], mine.key)
        if (c < 0) {
          next = await base.next()
          yielded++
          cover(fromBase![0])
          yield fromBase!
        } else {
          if (c === 0) next = await base.next()
          i++
          cover(mine!.key)
          if (mine!.value !== null) {
            yielded++
            yield [Buffer.from(mine!.key), Buffer.from(mine!.value)]
          }
        }
      }
    } finally {
      base.close()
    }
  }

  async commit(): Promise<void> {
    this.checkActive()
    this.done = true
    const ops: BatchOp[] = []
    for (const w of this.writes.values()) {
      ops.push(w.value === null ? { type: 'del', key: w.key } : { type: 'put', key: w.key, value: w.value })
    }
    for (const r of this.reads.values()) ops.push({ type: 'check', key: r.key, ifVersion: r.version })
    // A read-only transaction read one consistent snapshot: nothing to validate.
    if (this.writes.size === 0) return
    const extra: Condition[] = this.ranges.map((range) => ({ type: 'range', range, sinceSequence: this.snapshot.sequence }))
    await this.db.conditionalBatch(ops, undefined, extra.length > 0 ? extra : undefined)
  }

  private checkActive(): void {
    if (this.done) throw new StrataError('STRATA_INVALID_ARGUMENT', 'transaction already committed')
  }
}
