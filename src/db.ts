import { StrataError } from './base/errors.js'
import { checkKey, checkValue, toBuffer, type Bytes } from './base/keys.js'
import type { DbIterator, KeyRange } from './iterators/db-iterator.js'
import type { Engine } from './engine/engine.js'
import { openEngine } from './engine/recovery.js'
import type { EngineStats } from './engine/stats.js'
import { resolveOptions, type OpenOptions } from './options.js'
import { encodedOpBytes, type WriteOp } from './wal/wal-record.js'

/** Options of a single write. */
export interface WriteOptions {
  /** fsync before resolving, even when the database was opened without `syncWrites`. */
  sync?: boolean
}

/** One operation of an atomic batch. */
export type BatchOp = { type: 'put'; key: Bytes; value: Bytes } | { type: 'del'; key: Bytes }

/** Bounds, direction and limit of a range read. Keys compare bytewise. */
export interface IteratorOptions {
  gt?: Bytes
  gte?: Bytes
  lt?: Bytes
  lte?: Bytes
  /** Walk from the upper bound down. Default false. */
  reverse?: boolean
  /** Stop after this many entries. Default unlimited. */
  limit?: number
}

/** An async iterator of [key, value] pairs; `close()` (or `break`) releases what it holds. */
export interface StrataIterator extends AsyncIterableIterator<[Buffer, Buffer]> {
  close(): void
}

/** A consistent read-only view of the database at one point in time. */
export interface Snapshot {
  /** Sequence number of the newest write the snapshot sees. */
  readonly sequence: number
  get(key: Bytes): Promise<Buffer | undefined>
  getSync(key: Bytes): Buffer | undefined
  iterator(options?: IteratorOptions): StrataIterator
  /** Lets flush and compaction discard versions only this snapshot needed. Idempotent. */
  release(): void
}

/**
 * An open stratadb database. Every public method validates its arguments and
 * the open state first (STRATA_INVALID_ARGUMENT, STRATA_TOO_LARGE,
 * STRATA_NOT_OPEN), so a rejected call never writes anything.
 */
export class Database {
  /** @internal */
  constructor(private readonly engine: Engine) {}

  /** Stores `value` under `key`. Resolves once the write is in the WAL (fsynced with `sync`). */
  put(key: Bytes, value: Bytes, options?: WriteOptions): Promise<void> {
    try {
      this.checkOpen()
      const op: WriteOp = { key: this.key(key, true), value: this.value(value) }
      return this.engine.write([op], encodedOpBytes(op), syncOption(options))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Deletes `key` (a no-op for a missing key, still ordered with other writes). */
  delete(key: Bytes, options?: WriteOptions): Promise<void> {
    try {
      this.checkOpen()
      const op: WriteOp = { key: this.key(key, true), value: null }
      return this.engine.write([op], encodedOpBytes(op), syncOption(options))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Applies all operations atomically, also across a crash: after recovery all or none are visible. */
  batch(ops: readonly BatchOp[], options?: WriteOptions): Promise<void> {
    try {
      this.checkOpen()
      if (!Array.isArray(ops)) throw invalid('batch expects an array of operations')
      const writeOps: WriteOp[] = new Array(ops.length)
      let bytes = 0
      for (let i = 0; i < ops.length; i++) {
        const op = ops[i] as unknown
        if (typeof op !== 'object' || op === null) throw invalid(`batch operation ${i} is not an object`)
        const { type, key, value } = op as { type?: unknown; key?: unknown; value?: unknown }
        let w: WriteOp
        if (type === 'put') w = { key: this.key(key, true), value: this.value(value) }
        else if (type === 'del') w = { key: this.key(key, true), value: null }
        else throw invalid(`batch operation ${i} has type ${String(type)}; expected 'put' or 'del'`)
        writeOps[i] = w
        bytes += encodedOpBytes(w)
      }
      if (bytes > this.engine.options.maxBatchBytes) {
        throw new StrataError('STRATA_TOO_LARGE', `batch of ${bytes} bytes exceeds maxBatchBytes (${this.engine.options.maxBatchBytes})`)
      }
      if (writeOps.length === 0) return Promise.resolve()
      return this.engine.write(writeOps, bytes, syncOption(options))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** The value of `key`, or undefined. Sees every write issued before this call. */
  async get(key: Bytes): Promise<Buffer | undefined> {
    this.checkOpen()
    const k = this.key(key, false)
    const pending = this.engine.writesBefore()
    if (pending !== undefined) await pending
    return this.read(k, this.engine.lastSequence)
  }

  /** Synchronous get: sees every write whose promise has resolved. */
  getSync(key: Bytes): Buffer | undefined {
    this.checkOpen()
    return this.read(this.key(key, false), this.engine.lastSequence)
  }

  /** Iterates [key, value] pairs in bytewise key order, at the point in time of this call. */
  iterator(options?: IteratorOptions): StrataIterator {
    this.checkOpen()
    return this.openIterator(options, this.engine.lastSequence)
  }

  /** Pins the current point in time for consistent reads until `release()`. */
  snapshot(): Snapshot {
    this.checkOpen()
    const engine = this.engine
    const sequence = engine.lastSequence
    engine.snapshots.add(sequence)
    let released = false
    const check = (): void => {
      if (released) throw new StrataError('STRATA_NOT_OPEN', 'snapshot was released')
      this.checkOpen()
    }
    return {
      sequence,
      get: async (key) => {
        check()
        return this.read(this.key(key, false), sequence)
      },
      getSync: (key) => {
        check()
        return this.read(this.key(key, false), sequence)
      },
      iterator: (options) => {
        check()
        return this.openIterator(options, sequence)
      },
      release: () => {
        if (released) return
        released = true
        if (engine.isOpen) engine.snapshots.remove(sequence)
      },
    }
  }

  /**
   * Flushes the memtable and compacts every table overlapping [start, end]
   * (both optional, inclusive) down to the deepest populated level, where
   * deletes and overwritten versions no snapshot needs are dropped.
   */
  async compactRange(start?: Bytes, end?: Bytes): Promise<void> {
    this.checkOpen()
    const lo = start === undefined ? undefined : toBuffer(start, 'start')
    const hi = end === undefined ? undefined : toBuffer(end, 'end')
    await this.engine.compactRange(lo, hi)
  }

  /** Counters and sizes for monitoring. */
  stats(): EngineStats {
    this.checkOpen()
    return this.engine.stats()
  }

  /** Waits for queued writes and running flushes, then releases the directory. Idempotent. */
  close(): Promise<void> {
    return this.engine.close()
  }

  get isOpen(): boolean {
    return this.engine.isOpen
  }

  private read(key: Buffer, sequence: number): Buffer | undefined {
    const found = this.engine.get(key, sequence)
    return found === undefined || found.v === null ? undefined : Buffer.from(found.v)
  }

  private openIterator(options: IteratorOptions | undefined, sequence: number): StrataIterator {
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw invalid('iterator options must be an object')
    }
    const o = options ?? {}
    const range: KeyRange = {}
    for (const bound of ['gt', 'gte', 'lt', 'lte'] as const) {
      if (o[bound] !== undefined) range[bound] = toBuffer(o[bound], bound)
    }
    if (o.reverse !== undefined && typeof o.reverse !== 'boolean') throw invalid('reverse must be a boolean')
    let limit = Infinity
    if (o.limit !== undefined && o.limit !== Infinity && o.limit !== -1) {
      if (!Number.isInteger(o.limit) || o.limit < 0) throw invalid('limit must be a non-negative integer')
      limit = o.limit
    }
    const it: DbIterator = this.engine.iterator(range, o.reverse === true, limit, sequence)
    return it
  }

  private key(input: unknown, copy: boolean): Buffer {
    const k = checkKey(input, this.engine.options.maxKeyBytes)
    // Writes are applied after the call returns: own the bytes so later mutation by the caller cannot leak in.
    return copy && typeof input !== 'string' ? Buffer.from(k) : k
  }

  private value(input: unknown): Buffer {
    const v = checkValue(input, this.engine.options.maxValueBytes)
    return typeof input !== 'string' ? Buffer.from(v) : v
  }

  private checkOpen(): void {
    if (!this.engine.isOpen) throw new StrataError('STRATA_NOT_OPEN', 'database is not open')
  }
}

function invalid(message: string): StrataError {
  return new StrataError('STRATA_INVALID_ARGUMENT', message)
}

function syncOption(options: WriteOptions | undefined): boolean {
  if (options === undefined) return false
  if (typeof options !== 'object' || options === null) throw invalid('write options must be an object')
  if (options.sync !== undefined && typeof options.sync !== 'boolean') throw invalid('sync must be a boolean')
  return options.sync === true
}

/** Opens (creating by default) the database in `dir`. */
export async function open(dir: string, options?: OpenOptions): Promise<Database> {
  if (typeof dir !== 'string' || dir.length === 0) throw invalid('dir must be a non-empty string')
  const resolved = resolveOptions(options)
  return new Database(await openEngine(dir, resolved))
}
