import { compareBytes } from '../base/coding.js'
import { EMPTY_VALUE, inRange, type Entry, type Found, type IteratorOptions, type KeyRange, type WriteOp } from '../base/entry.js'
import { StrataError } from '../base/errors.js'
import type { ConflictError } from '../base/errors.js'
import { checkKey, checkValue, type Bytes } from '../base/keys.js'
import { expiryFrom, type ExpiryOptions } from '../base/expiry.js'
import type { DbIterator } from '../iterators/db-iterator.js'
import type { Engine } from '../engine/engine.js'
import type { Condition } from '../engine/write-group.js'
import { encodedOpBytes } from '../wal/wal-record.js'
import { TurnQueue, type Turn } from './transaction-turns.js'

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
  /** Buffers a put; `ttlMs` or `expiresAt` make the value expire (as `db.put`). */
  put(key: Bytes, value: Bytes, options?: ExpiryOptions): void
  delete(key: Bytes): void
  /** Range read (own writes merged over the snapshot); the part actually scanned is validated at commit. */
  iterator(options?: IteratorOptions): AsyncIterableIterator<[Buffer, Buffer]>
}

/** A buffered write: value, or null for a delete; a put's expiry time. */
interface OwnWrite {
  key: Buffer
  value: Buffer | null
  expiresAt: number | undefined
}

const DEFAULT_RETRIES = 10
/**
 * A turn is waited for at most this long, so a turn holder that awaits
 * another transaction (or runs one inside its fn) cannot hang them both; the
 * waiter then runs unturned. (Detecting nesting with AsyncLocalStorage would
 * turn on promise hooks for the whole process: measured 2-3x slower commits.)
 */
const TURN_WAIT_MAX_MS = 250
/** After this many conflicts a transaction escalates: it and all new attempts take the database's turn (FIFO). */
const ESCALATE_AFTER_CONFLICTS = 3
/** Transactions waiting for turns from which the engine defers a group's WAL write (see runTransaction). */
const HOLD_GROUPS_MIN_WAITERS = 16
/** A key stays contended this long after a conflict on it or a wait for its turn. */
const KEY_CONTENDED_MS = 50
/** Contended keys tracked before the first sweep of stale ones. */
const MIN_SWEEP_SIZE = 1024

/**
 * Contention control, per database. Two levels of FIFO turns (turns pass on
 * when a commit is admitted, see TurnQueue):
 *  - per key: a conflict marks its keys contended; a transaction that reads a
 *    contended key first waits for that key's turn (only when it holds no
 *    other turn, so turns cannot deadlock). One hot key then commits at the
 *    speed of the commit path, with no retries, while other keys run free.
 *  - per database: a transaction that conflicted ESCALATE_AFTER_CONFLICTS
 *    times (e.g. on ranges or many keys) escalates; while any escalated
 *    transaction is in flight, every attempt takes the database's turn, so the
 *    oldest struggling one runs alone and commits: no starvation.
 */
export class Contention {
  /** Transactions waiting for any turn of this database. (Exported for tests; not part of the package API.) */
  readonly waiting = { count: 0 }
  readonly database = new TurnQueue(TURN_WAIT_MAX_MS, this.waiting)
  /** Escalated transactions in flight: while any, every attempt takes the database's turn. */
  escalated = 0
  private readonly keys = new Map<string, { turns: TurnQueue; conflictMs: number }>()

  /** Keys tracked as contended (or not yet swept). */
  get trackedKeys(): number {
    return this.keys.size
  }
  /** Sweep stale keys when the map grows past this (amortized: twice what survived the last sweep). */
  private sweepAtSize = MIN_SWEEP_SIZE

  noteConflict(keys: readonly Buffer[]): void {
    for (const k of keys) this.noteContended(k.toString('latin1'))
  }

  /**
   * Key `id` is (still) contended: a conflict on it, or a transaction that had
   * to wait for its turn (in turns, contention no longer shows as conflicts).
   */
  noteContended(id: string): void {
    const now = performance.now()
    const e = this.keys.get(id)
    if (e !== undefined) {
      e.conflictMs = now
      return
    }
    this.keys.set(id, { turns: new TurnQueue(TURN_WAIT_MAX_MS, this.waiting), conflictMs: now })
    if (this.keys.size > this.sweepAtSize) this.sweep(now)
  }

  /** Forgets keys no longer contended (a key conflicted on once and never read again would stay forever). */
  private sweep(now: number): void {
    for (const [id, e] of this.keys) if (!e.turns.busy && now - e.conflictMs >= KEY_CONTENDED_MS) this.keys.delete(id)
    this.sweepAtSize = Math.max(MIN_SWEEP_SIZE, 2 * this.keys.size)
  }

  /**
   * The turn of key `id` when it is contended (now, or a promise of it), noting
   * that the key is still contended when someone holds or waits for it;
   * undefined when it is not contended.
   */
  takeKeyTurn(id: string): Turn | Promise<Turn> | undefined {
    const turns = this.keyTurns(id)
    if (turns === undefined) return undefined
    if (turns.busy) this.noteContended(id)
    return turns.take()
  }

  /** The turns of key `id` while it is contended; undefined (and forgotten) otherwise. */
  keyTurns(id: string): TurnQueue | undefined {
    if (this.keys.size === 0) return undefined
    const e = this.keys.get(id)
    if (e === undefined) return undefined
    if (e.turns.busy || performance.now() - e.conflictMs < KEY_CONTENDED_MS) return e.turns
    this.keys.delete(id)
    return undefined
  }
}

/**
 * The transactions of one database (`db.transaction`), run on the engine the
 * database holds at the time: `resume()` replaces it, but never while an
 * attempt is running (an attempt pins a sequence, and a resume gives up while
 * anything is pinned), so an attempt uses one engine from start to end.
 */
export class TransactionRunner {
  /** Made at the first transaction. */
  private contention: Contention | undefined

  constructor(private readonly currentEngine: () => Engine) {}

  run<T>(fn: (tx: Transaction) => Promise<T> | T, options: TransactionOptions | undefined): Promise<T> {
    return runTransaction(this, fn, options)
  }

  /** The contention state, made (and the engine told about it) at the first call. */
  contentionState(): Contention {
    if (this.contention !== undefined) return this.contention
    const c = (this.contention = new Contention())
    // While a long chain of transactions waits for turns (a hot key), let it
    // run to the end of the event-loop turn so its commits share one WAL
    // write. Not for a few waiters: over 1,000 keys the deferral cost more
    // than it saved (docs/performance.md, "Transactions" under the design choices).
    this.currentEngine().holdWriteGroupsWhile(() => c.waiting.count >= HOLD_GROUPS_MIN_WAITERS)
    return c
  }

  engine(): Engine {
    return this.currentEngine()
  }
}

async function runTransaction<T>(
  runner: TransactionRunner,
  fn: (tx: Transaction) => Promise<T> | T,
  options: TransactionOptions | undefined,
): Promise<T> {
  if (typeof fn !== 'function') throw new StrataError('STRATA_INVALID_ARGUMENT', 'transaction expects a function')
  const retries = options?.retries ?? DEFAULT_RETRIES
  if (!(retries === Infinity || (Number.isInteger(retries) && retries >= 0))) {
    throw new StrataError('STRATA_INVALID_ARGUMENT', 'retries must be a non-negative integer or Infinity')
  }
  const contention = runner.contentionState()
  let conflicted: readonly Buffer[] = []
  for (let attempt = 0; ; attempt++) {
    const escalated = attempt >= ESCALATE_AFTER_CONFLICTS
    if (escalated) contention.escalated++
    let tx: TransactionState | undefined
    try {
      const turn = escalated || contention.escalated > 0 ? await contention.database.take() : undefined
      // A retry waits for the turn of a key it conflicted on (when still contended) before it reads anything.
      let keyTurn: Turn | undefined
      if (turn === undefined) {
        for (const k of conflicted) {
          const t = contention.takeKeyTurn(k.toString('latin1'))
          if (t === undefined) continue
          keyTurn = await t
          break
        }
      }
      tx = new TransactionState(runner.engine(), contention, turn, keyTurn)
      const result = await fn(tx.handle)
      await tx.commit()
      return result
    } catch (err) {
      if ((err as StrataError).code !== 'STRATA_CONFLICT') throw err
      conflicted = (err as ConflictError).keys ?? []
      contention.noteConflict(conflicted)
      if (attempt >= retries) throw err
    } finally {
      tx?.end()
      if (escalated) contention.escalated--
    }
  }
}

/** What `fn` receives: a thin face over the attempt's state (no closures per attempt). */
class TransactionHandle implements Transaction {
  constructor(private readonly state: TransactionState) {}
  get(key: Bytes): Promise<Buffer | undefined> {
    return this.state.read(key, false) as Promise<Buffer | undefined>
  }
  getEntry(key: Bytes): Promise<Entry | undefined> {
    return this.state.read(key, true) as Promise<Entry | undefined>
  }
  put(key: Bytes, value: Bytes, options?: ExpiryOptions): void {
    this.state.write(key, value, options)
  }
  delete(key: Bytes): void {
    this.state.write(key, null)
  }
  iterator(options?: IteratorOptions): AsyncIterableIterator<[Buffer, Buffer]> {
    return this.state.iterate(options ?? {})
  }
}

class TransactionState {
  /** Buffered writes: value, or null for a delete. One per key (a later write replaces it). */
  private readonly writes = new KeyedList<OwnWrite>()
  /** Versions read (0 = absent), one per key: the first read's. */
  private readonly reads = new KeyedList<{ key: Buffer; version: number }>()
  private readonly ranges: KeyRange[] = []
  /** The last key argument and its validated bytes: an increment names its key twice. */
  private lastKeyInput: unknown
  private lastKey: Buffer | undefined
  private done = false
  private ended = false
  /** An iterator was opened: the read point is fixed from then on. */
  private iterated = false
  /** Sequence of the applied state this attempt reads (pinned like a snapshot until `end`). */
  private sequence: number
  readonly handle: Transaction

  constructor(
    /** The engine of the attempt (it cannot change while the attempt pins a sequence; see TransactionRunner). */
    private readonly engine: Engine,
    private readonly contention: Contention,
    /** The database's turn, when this attempt took it. */
    private turn: Turn | undefined,
    /** A contended key's turn: taken before the attempt or at the first read of that key; held until the commit is admitted. */
    private keyTurn: Turn | undefined,
  ) {
    this.sequence = this.pinAppliedSequence()
    this.handle = new TransactionHandle(this)
  }

  /**
   * Pins the applied state (like a snapshot, see unpinSequence) and returns
   * its sequence: it also holds writes admitted but not yet durable
   * (WritePath.write). Transactions read it; they resolve only after every
   * write they read is durable.
   */
  private pinAppliedSequence(): number {
    this.checkOpen()
    const sequence = this.engine.lastSequence
    this.engine.snapshots.add(sequence)
    return sequence
  }

  /** Releases a sequence pinned by pinAppliedSequence. */
  private unpinSequence(sequence: number): void {
    if (this.engine.isOpen) this.engine.releaseSnapshot(sequence)
  }

  private checkOpen(): void {
    if (!this.engine.isOpen) throw new StrataError('STRATA_NOT_OPEN', 'database is not open')
  }

  /** Moves the read point to the applied state as it is now. */
  private repin(): void {
    const sequence = this.pinAppliedSequence()
    this.unpinSequence(this.sequence)
    this.sequence = sequence
  }

  /** Gives back the turns (if the commit did not already) and the pinned sequence. Idempotent. */
  end(): void {
    this.releaseTurns()
    if (this.ended) return
    this.ended = true
    this.unpinSequence(this.sequence)
  }

  private releaseTurns(): void {
    this.keyTurn?.release()
    this.keyTurn = undefined
    this.turn?.release()
    this.turn = undefined
  }

  /** Validates a key argument; a string key repeated (get, then put) is encoded once. */
  private checkedKey(key: Bytes): Buffer {
    if (typeof key === 'string' && key === this.lastKeyInput) return this.lastKey!
    const k = this.validKey(key)
    this.lastKeyInput = key
    this.lastKey = k
    return k
  }

  /** Validates a key the way every public method does; returns bytes the caller cannot change. */
  private validKey(key: unknown): Buffer {
    return ownBytes(checkKey(key, this.engine.options.maxKeyBytes), key)
  }

  /**
   * The value of `key` (or its Entry, when `asEntry`), recording the version
   * read. Waits first for the key's turn when the key is contended. Not an
   * async function: one of those allocates its whole register file per call,
   * and most reads need no await.
   */
  read(key: Bytes, asEntry: boolean): Promise<Entry | Buffer | undefined> {
    try {
      this.checkActive()
      const k = this.checkedKey(key)
      const own = this.writes.find(k)
      // The transaction's own write has no version until it commits: reported as 0.
      if (own !== undefined) {
        if (own.value === null || this.expired(own)) return Promise.resolve(undefined)
        const value = Buffer.from(own.value)
        if (!asEntry) return Promise.resolve(value)
        return Promise.resolve(own.expiresAt === undefined ? { value, version: 0 } : { value, version: 0, expiresAt: own.expiresAt })
      }
      // (No latin1 key string while no key is contended.)
      if (this.turn === undefined && this.keyTurn === undefined && this.contention.trackedKeys > 0) {
        const t = this.contention.takeKeyTurn(k.toString('latin1'))
        if (t instanceof Promise) return this.readAfterTurn(t, k, asEntry)
        if (t !== undefined) this.tookKeyTurn(t)
      }
      return Promise.resolve(this.readRecorded(k, asEntry))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  private async readAfterTurn(turn: Promise<Turn>, k: Buffer, asEntry: boolean): Promise<Entry | Buffer | undefined> {
    this.tookKeyTurn(await turn)
    return this.readRecorded(k, asEntry)
  }

  private tookKeyTurn(turn: Turn): void {
    this.keyTurn = turn
    this.checkActive()
    // Nothing read yet: the attempt may as well have started now, after
    // the commits it waited for (its blind writes do not depend on when).
    if (this.reads.length === 0 && !this.iterated) this.repin()
  }

  /** Reads `k` at the attempt's sequence and records the version read (the first read of a key counts). */
  private readRecorded(k: Buffer, asEntry: boolean): Entry | Buffer | undefined {
    const found = this.readAt(k, this.sequence)
    const present = found !== undefined && found.v !== null
    if (this.reads.find(k) === undefined) this.reads.add({ key: k, version: present ? found.s : 0 })
    if (!present) return undefined
    if (!asEntry) return found.v!
    return found.e === 0 ? { value: found.v!, version: found.s } : { value: found.v!, version: found.s, expiresAt: found.e }
  }

  /** What `key` (validated) holds at a pinned `sequence`: the engine's version and value (null: deleted). */
  private readAt(key: Buffer, sequence: number): Found | undefined {
    this.checkOpen()
    return this.engine.get(key, sequence)
  }

  write(key: Bytes, value: Bytes | null, options?: ExpiryOptions): void {
    this.checkActive()
    if (options !== undefined && (typeof options !== 'object' || options === null)) throw new StrataError('STRATA_INVALID_ARGUMENT', 'put options must be an object')
    const expiresAt = expiryFrom(options, this.engine.options.clock, 'transaction put')
    const k = this.checkedKey(key)
    const v = value === null ? null : ownBytes(checkValue(value, this.engine.options.maxValueBytes), value)
    const own = this.writes.find(k)
    if (own !== undefined) (own.value = v), (own.expiresAt = expiresAt)
    else this.writes.add({ key: k, value: v, expiresAt })
  }

  /** True when an own put's expiry time has passed. */
  private expired(own: OwnWrite): boolean {
    return own.expiresAt !== undefined && own.expiresAt <= this.engine.options.clock()
  }

  /**
   * Merges own writes in range over the snapshot's iterator. What the snapshot
   * iterator has read so far is recorded for validation as it goes (from the
   * start bound to the last key read; the whole range once exhausted), so an
   * iterator dropped half-way is validated for the part it read.
   */
  async *iterate(o: IteratorOptions): AsyncIterableIterator<[Buffer, Buffer]> {
    this.checkActive()
    const reverse = o.reverse === true
    if (o.values !== undefined && typeof o.values !== 'boolean') throw new StrataError('STRATA_INVALID_ARGUMENT', 'values must be a boolean')
    const values = o.values !== false
    let limit = Infinity
    if (o.limit !== undefined && o.limit !== Infinity && o.limit !== -1) {
      if (!Number.isInteger(o.limit) || o.limit < 0) throw new StrataError('STRATA_INVALID_ARGUMENT', 'limit must be a non-negative integer')
      limit = o.limit
    }
    if (limit === 0) return
    const range: KeyRange = {}
    for (const b of ['gt', 'gte', 'lt', 'lte'] as const) if (o[b] !== undefined) range[b] = this.validKey(o[b])
    const own = this.writes.items.filter((w) => inRange(w.key, range))
    own.sort((a, b) => (reverse ? -1 : 1) * Buffer.compare(a.key, b.key))
    this.iterated = true
    const base = this.iteratorAt(range, reverse, values, this.sequence)
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
          if (mine!.value !== null && !this.expired(mine!)) {
            yielded++
            yield [Buffer.from(mine!.key), values ? Buffer.from(mine!.value) : EMPTY_VALUE]
          }
        }
      }
    } finally {
      base.close()
    }
  }

  /** An iterator at a pinned `sequence` over `range` (keys already validated). */
  private iteratorAt(range: KeyRange, reverse: boolean, values: boolean, sequence: number): DbIterator {
    this.checkOpen()
    return this.engine.iterator({ ...range }, reverse, Infinity, sequence, true, values)
  }

  /**
   * Commits as one conditional write. The turns pass on as soon as it is
   * admitted (or rejected), before it is durable.
   */
  commit(): Promise<void> {
    try {
      this.checkActive()
    } catch (err) {
      return Promise.reject(err)
    }
    this.done = true
    if (this.writes.length === 0) {
      // A read-only transaction read one consistent state: nothing to
      // validate, but what it read must be durable before it resolves.
      this.releaseTurns()
      return this.durableThrough(this.sequence)
    }
    // Arrays of their final size: a pushed-to empty array reserves 17 slots.
    const writes = this.writes.items
    const ops = new Array<WriteOp>(writes.length)
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i]
      ops[i] = w.expiresAt === undefined || w.value === null ? { key: w.key, value: w.value } : { key: w.key, value: w.value, expiresAt: w.expiresAt }
    }
    const reads = this.reads.items
    const conditions = new Array<Condition>(reads.length + this.ranges.length)
    for (let i = 0; i < reads.length; i++) conditions[i] = { type: 'key', key: reads[i].key, version: reads[i].version }
    for (let i = 0; i < this.ranges.length; i++) {
      conditions[reads.length + i] = { type: 'range', range: this.ranges[i], sinceSequence: this.sequence }
    }
    return this.conditionalWrite(ops, conditions, () => this.releaseTurns())
  }

  /**
   * Writes `ops` (keys and values already validated) if all `conditions`
   * hold; `onAdmitted` runs once the write is admitted or rejected, before it
   * is durable (WritePath.write).
   */
  private conditionalWrite(ops: WriteOp[], conditions: Condition[], onAdmitted: () => void): Promise<void> {
    try {
      this.checkOpen()
      let bytes = 0
      for (const op of ops) bytes += encodedOpBytes(op)
      if (bytes > this.engine.options.maxBatchBytes) {
        throw new StrataError('STRATA_TOO_LARGE', `transaction of ${bytes} bytes exceeds maxBatchBytes (${this.engine.options.maxBatchBytes})`)
      }
      return this.engine.write(ops, bytes, false, conditions, onAdmitted)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Resolves once every write up to `sequence` is durable, or rejects when
   * one of them failed (the database is then read-only).
   */
  private async durableThrough(sequence: number): Promise<void> {
    const pending = this.engine.writesBefore()
    if (pending !== undefined) await pending
    if (this.engine.visibleSequence < sequence) throw this.engine.failure ?? new StrataError('STRATA_READ_ONLY', 'writes read by this transaction failed')
  }

  private checkActive(): void {
    if (this.done) throw new StrataError('STRATA_INVALID_ARGUMENT', 'transaction already committed')
  }
}

/** Key bytes in a linear list: most transactions touch a few keys. */
const LINEAR_KEYS = 8

/**
 * Items with a `key`, at most one per key: a list searched linearly while
 * short (no Map and no latin1 key string per access), indexed by latin1 key
 * once it grows past LINEAR_KEYS.
 */
class KeyedList<T extends { key: Buffer }> {
  /** Starts as a one-slot array at the first add (a pushed-to empty array reserves 17). */
  items: T[] = []
  private index: Map<string, T> | undefined

  get length(): number {
    return this.items.length
  }

  find(key: Buffer): T | undefined {
    if (this.index !== undefined) return this.index.get(key.toString('latin1'))
    for (const item of this.items) if (compareBytes(item.key, 0, item.key.length, key, 0, key.length) === 0) return item
    return undefined
  }

  /** REQUIRES: find(item.key) is undefined. */
  add(item: T): void {
    if (this.items.length === 0) this.items = [item]
    else this.items.push(item)
    if (this.index !== undefined) this.index.set(item.key.toString('latin1'), item)
    else if (this.items.length > LINEAR_KEYS) this.index = new Map(this.items.map((i) => [i.key.toString('latin1'), i]))
  }
}

/** `bytes` (validated from `input`), copied unless they are already a new Buffer made from a string. */
function ownBytes(bytes: Buffer, input: unknown): Buffer {
  return typeof input === 'string' ? bytes : Buffer.from(bytes)
}
