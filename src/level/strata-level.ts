import {
  AbstractLevel,
  type AbstractBatchOperation,
  type AbstractBatchOptions,
  type AbstractChainedBatch,
  type AbstractDatabaseOptions,
  type AbstractDelOptions,
  type AbstractOpenOptions,
  type AbstractPutOptions,
} from 'abstract-level'
import { DEFAULT_OPTIONS, open, type BatchOp, type Database, type OpenOptions, type Snapshot, type StrataIterator, type WriteOptions } from '../index.js'
import { StrataLevelError, toLevelError, type SizeLimits } from './errors.js'
import {
  StrataLevelIterator,
  StrataLevelKeyIterator,
  StrataLevelValueIterator,
  type PrivateIteratorOptions,
} from './iterator.js'
import { decodeValue, encodeKey, engineDeleteRange, engineRange, type EngineDeleteRange, type LevelData, type LevelRange } from './keys.js'
import { engineOptions, type ClassicLevelOptions } from './options.js'
import { StrataLevelSnapshot } from './snapshot.js'

/** Options of `new StrataLevel(location, options)` and `db.open(options)`. */
export interface StrataLevelOptions<K, V>
  extends AbstractDatabaseOptions<K, V>,
    Omit<OpenOptions, 'createIfMissing' | 'errorIfExists' | 'compression'>,
    ClassicLevelOptions {}

/** Options of `db.open(options)`. */
export interface StrataLevelOpenOptions extends AbstractOpenOptions, Omit<OpenOptions, 'createIfMissing' | 'errorIfExists' | 'compression'>, ClassicLevelOptions {}

/** Options of the private read methods (`keyEncoding` and `valueEncoding` are formats here). */
interface ReadOptions {
  keyEncoding: string
  valueEncoding?: string
  snapshot?: unknown
}

/** Options of the private write methods; `sync` as in classic-level. */
interface PrivateWriteOptions {
  sync?: boolean
}

interface PrivateBatchOp {
  type: 'put' | 'del'
  key: LevelData
  value?: LevelData
}

/** Keys deleted per batch by a `clear()` that is not one range delete (with a limit or a snapshot). */
const CLEAR_BATCH_KEYS = 1000
/** Keys read by `getMany()` / `hasMany()` between macrotask yields. */
const MANY_KEYS_PER_YIELD = 1000

const SYNC: WriteOptions = Object.freeze({ sync: true })

/**
 * What StrataLevel supports (abstract-level's manifest). Every entry is backed
 * by the private methods below and exercised by abstract-level's test suite.
 */
function manifest(): object {
  return {
    encodings: { buffer: true, view: true, utf8: true },
    implicitSnapshots: true,
    explicitSnapshots: true,
    getSync: true,
    has: true,
    seek: true,
    permanence: true,
    createIfMissing: true,
    errorIfExists: true,
    additionalMethods: { compactRange: true },
  }
}

/** Per-write option of put(), del(), batch() and chainedBatch.write(), as in classic-level. */
export interface StrataLevelWriteOptions {
  /** fsync the log before the write resolves (see stratadb's `syncWrites` for every write). */
  sync?: boolean | undefined
}

/** Typings of the write methods with the `sync` option (the behaviour is AbstractLevel's). */
export interface StrataLevel<KDefault = string, VDefault = string> {
  put(key: KDefault, value: VDefault): Promise<void>
  put<K = KDefault, V = VDefault>(key: K, value: V, options: AbstractPutOptions<K, V> & StrataLevelWriteOptions): Promise<void>
  del(key: KDefault): Promise<void>
  del<K = KDefault>(key: K, options: AbstractDelOptions<K> & StrataLevelWriteOptions): Promise<void>
  batch(operations: Array<AbstractBatchOperation<this, KDefault, VDefault>>): Promise<void>
  batch<K = KDefault, V = VDefault>(
    operations: Array<AbstractBatchOperation<this, K, V>>,
    options: AbstractBatchOptions<K, V> & StrataLevelWriteOptions,
  ): Promise<void>
  batch(): AbstractChainedBatch<this, KDefault, VDefault>
}

/**
 * stratadb as an abstract-level database: a drop-in for classic-level.
 *
 *   const db = new StrataLevel('./db', { valueEncoding: 'json' })
 *
 * abstract-level handles encodings, deferred open, sublevels, hooks and
 * events; the private methods here map its encoded calls onto the engine.
 * Keys are stored behind a one-byte prefix (see keys.ts) so the empty key
 * works.
 */
export class StrataLevel<KDefault = string, VDefault = string> extends AbstractLevel<
  string | Buffer | Uint8Array,
  KDefault,
  VDefault
> {
  readonly #location: string
  #db: Database | undefined
  #limits: SizeLimits | undefined
  /** The engine's maxKeyBytes (the Level limit plus the prefix byte). */
  #engineMaxKeyBytes = 0
  /** Operations that span several engine calls (clear, long getMany): close() waits for them. */
  readonly #inFlight = new Set<Promise<unknown>>()

  constructor(location: string, options?: StrataLevelOptions<KDefault, VDefault>) {
    if (typeof location !== 'string' || location === '') {
      throw new TypeError("The first argument 'location' must be a non-empty string")
    }
    super(manifest(), options)
    this.#location = location
  }

  /** The directory of the database. */
  get location(): string {
    return this.#location
  }

  async _open(options: Record<string, unknown>): Promise<void> {
    let resolved
    try {
      resolved = engineOptions(options)
      this.#db = await open(this.#location, resolved.open)
    } catch (err) {
      throw toLevelError(err)
    }
    this.#limits = resolved.limits
    this.#engineMaxKeyBytes = resolved.open.maxKeyBytes ?? DEFAULT_OPTIONS.maxKeyBytes
  }

  async _close(): Promise<void> {
    const db = this.#db
    if (db === undefined) return
    // abstract-level stops new operations first; let the ones underway finish, as classic-level does.
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight])
    try {
      await db.close()
    } catch (err) {
      throw toLevelError(err)
    }
    this.#db = undefined
  }

  async _get(key: LevelData, options: ReadOptions): Promise<LevelData | undefined> {
    return this._getSync(key, options)
  }

  /**
   * Reads synchronously, so the implicit snapshot is the moment of the call:
   * every write whose promise resolved is visible, none issued later.
   */
  _getSync(key: LevelData, options: ReadOptions): LevelData | undefined {
    const source = this.#readSource(options.snapshot)
    let value: Buffer | undefined
    try {
      value = source.getSync(encodeKey(key))
    } catch (err) {
      throw this.#error(err, [[key, undefined]])
    }
    return value === undefined ? undefined : decodeValue(value, options.valueEncoding ?? 'utf8')
  }

  async _getMany(keys: LevelData[], options: ReadOptions): Promise<Array<LevelData | undefined>> {
    const format = options.valueEncoding ?? 'utf8'
    return this.#readMany(keys, options.snapshot, (v) => (v === undefined ? undefined : decodeValue(v, format)))
  }

  async _has(key: LevelData, options: ReadOptions): Promise<boolean> {
    const source = this.#readSource(options.snapshot)
    try {
      return source.getSync(encodeKey(key)) !== undefined
    } catch (err) {
      throw this.#error(err, [[key, undefined]])
    }
  }

  async _hasMany(keys: LevelData[], options: ReadOptions): Promise<boolean[]> {
    return this.#readMany(keys, options.snapshot, (v) => v !== undefined)
  }

  async _put(key: LevelData, value: LevelData, options: PrivateWriteOptions): Promise<void> {
    try {
      await this.#native().put(encodeKey(key), value, writeOptions(options))
    } catch (err) {
      throw this.#error(err, [[key, value]])
    }
  }

  async _del(key: LevelData, options: PrivateWriteOptions): Promise<void> {
    try {
      await this.#native().delete(encodeKey(key), writeOptions(options))
    } catch (err) {
      throw this.#error(err, [[key, undefined]])
    }
  }

  async _batch(operations: PrivateBatchOp[], options: PrivateWriteOptions): Promise<void> {
    const ops: BatchOp[] = new Array(operations.length)
    for (let i = 0; i < operations.length; i++) {
      const op = operations[i]!
      ops[i] =
        op.type === 'put'
          ? { type: 'put', key: encodeKey(op.key), value: op.value! }
          : { type: 'del', key: encodeKey(op.key) }
    }
    try {
      await this.#native().batch(ops, writeOptions(options))
    } catch (err) {
      throw this.#error(
        err,
        operations.map((op) => [op.key, op.value]),
      )
    }
  }

  _iterator(options: PrivateIteratorOptions): StrataLevelIterator {
    return new StrataLevelIterator(this, options, this.#engineIterator(options, options.values !== false))
  }

  _keys(options: PrivateIteratorOptions): StrataLevelKeyIterator {
    return new StrataLevelKeyIterator(this, options, this.#engineIterator(options, false))
  }

  _values(options: PrivateIteratorOptions): StrataLevelValueIterator {
    return new StrataLevelValueIterator(this, options, this.#engineIterator(options))
  }

  /**
   * One atomic range delete (`deleteRange`: one write of a range tombstone,
   * whatever the number of keys) of the Level range mapped onto the engine's
   * keys (engineDeleteRange). Readers see the range whole or cleared, never
   * in part; writes issued after clear() are kept. It cannot be one range
   * delete with a `limit` (which keys count depends on the data), with an
   * explicit `snapshot` (only keys present in it are deleted, as
   * abstract-level specifies) or with a bound too long for the engine
   * (over maxKeyBytes): then the range is walked at the point in time of
   * the call (or the snapshot) and deleted in batches of CLEAR_BATCH_KEYS
   * keys, so memory stays bounded. That path is not atomic, like
   * classic-level's clear(): a concurrent reader may see the range partly
   * cleared, and a key that existed when clear() started is deleted even
   * if rewritten meanwhile.
   */
  async _clear(options: LevelRange & PrivateWriteOptions & { snapshot?: unknown }): Promise<void> {
    const db = this.#native()
    if (options.snapshot == null && !(options.limit !== undefined && options.limit >= 0)) {
      const range = engineDeleteRange(options, this.#engineMaxKeyBytes)
      if (range === 'empty') return
      if (range !== undefined) return this.#track(this.#deleteRange(db, range, writeOptions(options)))
    }
    const it = this.#engineIterator(options, false)
    return this.#track(this.#clearRange(db, it))
  }

  async #deleteRange(db: Database, range: EngineDeleteRange, options: WriteOptions | undefined): Promise<void> {
    try {
      await db.deleteRange(range.gte, range.lt, options)
    } catch (err) {
      throw toLevelError(err)
    }
  }

  async #clearRange(db: Database, it: StrataIterator): Promise<void> {
    try {
      let ops: BatchOp[] = []
      for (;;) {
        const entry = it.nextSync()
        if (entry !== undefined) ops.push({ type: 'del', key: entry[0] })
        if (ops.length === CLEAR_BATCH_KEYS || (entry === undefined && ops.length > 0)) {
          await db.batch(ops)
          ops = []
        }
        if (entry === undefined) return
      }
    } catch (err) {
      throw toLevelError(err)
    } finally {
      it.close()
    }
  }

  _snapshot(options: { owner: unknown }): StrataLevelSnapshot {
    let native: Snapshot
    try {
      native = this.#native().snapshot()
    } catch (err) {
      throw toLevelError(err)
    }
    try {
      return new StrataLevelSnapshot(options, this, native)
    } catch (err) {
      native.release()
      throw err
    }
  }

  /**
   * Compacts the tables overlapping [start, end] (both inclusive; undefined
   * = unbounded), as classic-level's `compactRange()`: flushes the memtable
   * and rewrites the range into the deepest level, dropping deleted and
   * overwritten versions no snapshot needs.
   */
  async compactRange(start?: KDefault, end?: KDefault, options?: { keyEncoding?: string }): Promise<void> {
    if (this.status === 'opening') {
      return this.deferAsync(() => this.compactRange(start, end, options))
    }
    if (this.status !== 'open') {
      throw new StrataLevelError('Database is not open: cannot call compactRange()', 'LEVEL_DATABASE_NOT_OPEN')
    }
    const keyEncoding = (this.keyEncoding as unknown as (name?: string) => { encode(key: unknown): LevelData })(
      options?.keyEncoding,
    )
    const range = engineRange({
      gte: start === undefined ? undefined : keyEncoding.encode(start),
      lte: end === undefined ? undefined : keyEncoding.encode(end),
    })
    try {
      await this.#native().compactRange(range.gte, range.lte ?? range.lt)
    } catch (err) {
      throw toLevelError(err)
    }
  }

  #native(): Database {
    const db = this.#db
    if (db === undefined) throw new StrataLevelError('Database is not open', 'LEVEL_DATABASE_NOT_OPEN')
    return db
  }

  /** The engine snapshot behind an explicit snapshot option, or undefined for an implicit one. */
  #nativeSnapshot(snapshot: unknown): Snapshot | undefined {
    if (snapshot == null) return undefined
    if (!(snapshot instanceof StrataLevelSnapshot) || snapshot.root !== this) {
      throw new TypeError('The snapshot option must be a snapshot of this database (or of one of its sublevels)')
    }
    return snapshot.native
  }

  #readSource(snapshot: unknown): Database | Snapshot {
    return this.#nativeSnapshot(snapshot) ?? this.#native()
  }

  /** A seekable engine iterator at the point in time of the call (or of the explicit snapshot). */
  /** `values` false: keys only (no value copied; db.keys(), clear, iterator with values: false). */
  #engineIterator(options: LevelRange & { snapshot?: unknown }, values = true): StrataIterator {
    const snapshot = this.#nativeSnapshot(options.snapshot)
    try {
      return this.#native().seekableIterator({ ...engineRange(options), values }, snapshot)
    } catch (err) {
      throw toLevelError(err)
    }
  }

  /**
   * Reads many keys at one point in time. A short list is read synchronously;
   * a long one through an engine snapshot, yielding to the event loop every
   * MANY_KEYS_PER_YIELD keys.
   */
  async #readMany<T>(keys: LevelData[], snapshot: unknown, map: (value: Buffer | undefined) => T): Promise<T[]> {
    const explicit = this.#nativeSnapshot(snapshot)
    const db = this.#native()
    if (keys.length <= MANY_KEYS_PER_YIELD) return this.#readChunk(explicit ?? db, keys, 0, keys.length, new Array(keys.length), map)
    const source = explicit ?? db.snapshot()
    const read = async (): Promise<T[]> => {
      const out: T[] = new Array(keys.length)
      try {
        for (let i = 0; i < keys.length; i += MANY_KEYS_PER_YIELD) {
          if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve))
          this.#readChunk(source, keys, i, Math.min(i + MANY_KEYS_PER_YIELD, keys.length), out, map)
        }
      } finally {
        if (explicit === undefined) source.release()
      }
      return out
    }
    return this.#track(read())
  }

  #readChunk<T>(
    source: Database | Snapshot,
    keys: LevelData[],
    from: number,
    to: number,
    out: T[],
    map: (value: Buffer | undefined) => T,
  ): T[] {
    let i = from
    try {
      for (; i < to; i++) out[i] = map(source.getSync(encodeKey(keys[i]!)))
    } catch (err) {
      throw this.#error(err, [[keys[i], undefined]])
    }
    return out
  }

  /** Registers an operation close() must wait for. */
  #track<T>(operation: Promise<T>): Promise<T> {
    this.#inFlight.add(operation)
    const done = (): void => void this.#inFlight.delete(operation)
    operation.then(done, done)
    return operation
  }

  #error(err: unknown, suspects: Iterable<[LevelData | undefined, LevelData | undefined]>): unknown {
    return toLevelError(err, this.#limits, suspects)
  }
}

function writeOptions(options: PrivateWriteOptions | undefined): WriteOptions | undefined {
  return options?.sync === true ? SYNC : undefined
}
