import type { Entry, IteratorOptions, KeyRange, WriteOp } from './base/entry.js'
import { StrataError } from './base/errors.js'
import { expiryFrom, type ExpiryOptions } from './base/expiry.js'
import { checkKey, checkValue, toBuffer, type Bytes } from './base/keys.js'
import type { DbIterator } from './iterators/db-iterator.js'
import type { Engine } from './engine/engine.js'
import { openEngine, recoverEngine } from './engine/recovery.js'
import { loadReadOnlyView, openReadOnlyEngine } from './engine/read-only.js'
import type { EngineStats } from './engine/stats.js'
import { ChangeCursor, type WalRecordItem } from './engine/change-cursor.js'
import type { CheckpointResult } from './engine/checkpoint.js'
import { resolveOptions, type OpenOptions } from './options.js'
import { encodedOpBytes } from './wal/wal-record.js'
import type { Condition } from './engine/write-group.js'
import { TransactionRunner, type Transaction, type TransactionOptions } from './txn/transaction.js'

export type { Entry, IteratorOptions } from './base/entry.js'
export type { ChangeBatch, ChangeOp } from './engine/change-cursor.js'
export type { CheckpointResult } from './engine/checkpoint.js'
import type { ChangeBatch } from './engine/change-cursor.js'

/** Options of `changes()`. */
export interface ChangesOptions {
  /**
   * Hand out the batches committed after this sequence number (a
   * `batch.sequence` already seen, or a checkpoint's `sequence`). Default 0:
   * everything the retained WALs still hold.
   */
  since?: number
  /** At the end, wait for new commits instead of ending. Default false. */
  live?: boolean
}

/** The change stream: an async iterator of committed batches; `close()` (or `break`) ends it. */
export interface ChangeStream extends AsyncIterableIterator<ChangeBatch> {
  close(): void
}

/** Options of a single write. */
export interface WriteOptions {
  /** fsync before resolving, even when the database was opened without `syncWrites`. */
  sync?: boolean
}

/** Options of a put: those of any write, and when the value expires (at most one of ttlMs, expiresAt). */
export interface PutOptions extends WriteOptions, ExpiryOptions {}

/**
 * One operation of an atomic batch. `ifVersion` makes the whole batch
 * conditional: the key's current version (the sequence number of the write
 * that produced its value; 0 = absent) must equal it, else nothing is written
 * and the batch rejects with STRATA_CONFLICT naming the keys. `check` only
 * states a precondition.
 */
export type BatchOp =
  | { type: 'put'; key: Bytes; value: Bytes; ifVersion?: number; ttlMs?: number; expiresAt?: number }
  | { type: 'del'; key: Bytes; ifVersion?: number }
  | { type: 'check'; key: Bytes; ifVersion: number }

/** A range delete inside a batch: every key in [gte, lt) (`lt` absent: to the end), as `deleteRange`. */
export interface DeleteRangeOp {
  type: 'delRange'
  gte: Bytes
  lt?: Bytes
}

/** An async iterator of [key, value] pairs; `close()` (or `break`) releases what it holds. */
export interface StrataIterator extends AsyncIterableIterator<[Buffer, Buffer]> {
  /** The next entry synchronously, or undefined at the end. */
  nextSync(): [Buffer, Buffer] | undefined
  /** Moves to the first key >= target (reverse: <= target) within the bounds, at the same point in time. */
  seek(target: Bytes): void
  close(): void
}

/** A consistent read-only view of the database at one point in time. */
export interface Snapshot {
  /** Sequence number of the newest write the snapshot sees. */
  readonly sequence: number
  get(key: Bytes): Promise<Buffer | undefined>
  getSync(key: Bytes): Buffer | undefined
  getEntry(key: Bytes): Promise<Entry | undefined>
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
  /** The running engine; replaced by a successful `resume()`. */
  protected engine: Engine
  protected resuming: Promise<boolean> | undefined
  /** The replication hooks (setReplication), carried over to the engine a resume builds. */
  private replication: { commitGate: ((sequence: number) => Promise<void>) | undefined; freezeLimit: number; epoch: number; refuseWrites: (() => Error) | undefined } | undefined
  /** Read-only views a refresh replaced that iterators or snapshots still read; close() retires them. */
  private readonly replacedViews = new Set<Engine>()
  /** The engine each snapshot was taken on (a refresh replaces a read-only view's engine). */
  private readonly snapshotEngines = new WeakMap<Snapshot, Engine>()
  /** Runs `transaction()` on the engine of the moment. */
  private readonly transactions = new TransactionRunner(() => this.engine)

  /** @internal `replicated`: a ReplicatedDatabase (replayed WAL entries are not flushed at open or resume). */
  constructor(
    engine: Engine,
    protected readonly replicated = false,
  ) {
    this.engine = engine
  }

  /**
   * Stores `value` under `key`. Resolves once the write is in the WAL
   * (fsynced with `sync`). With `ttlMs` or `expiresAt` the value expires:
   * from then on every read sees the key as absent (docs/design.md, "Expiry").
   */
  put(key: Bytes, value: Bytes, options?: PutOptions): Promise<void> {
    try {
      this.checkOpen()
      const expiresAt = options === undefined ? undefined : this.expiry(options, 'put')
      const op: WriteOp = expiresAt === undefined ? { key: this.key(key), value: this.value(value) } : { key: this.key(key), value: this.value(value), expiresAt }
      return this.engine.write([op], encodedOpBytes(op), syncOption(options))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Deletes `key` (a no-op for a missing key, still ordered with other writes). */
  delete(key: Bytes, options?: WriteOptions): Promise<void> {
    try {
      this.checkOpen()
      const op: WriteOp = { key: this.key(key), value: null }
      return this.engine.write([op], encodedOpBytes(op), syncOption(options))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Deletes every key in [gte, lt) (`lt` absent: to the end) with one write
   * of a range tombstone, whatever the number of keys: O(1) to write. Reads
   * from then on see none of them; snapshots taken before keep seeing them.
   * Compaction drops what it covers once no snapshot needs it
   * (docs/design.md, "Range deletes").
   */
  deleteRange(gte: Bytes, lt?: Bytes, options?: WriteOptions): Promise<void> {
    try {
      this.checkOpen()
      const op = this.rangeDeleteOp(gte, lt, 'deleteRange')
      return this.engine.write([op], encodedOpBytes(op), syncOption(options))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Applies all operations atomically, also across a crash: after recovery all
   * or none are visible. Preconditions (`ifVersion`, `check`) are evaluated in
   * the commit path, in call order with every other write, so two conditional
   * writes on one key can never both succeed.
   */
  batch(ops: ReadonlyArray<BatchOp | DeleteRangeOp>, options?: WriteOptions): Promise<void> {
    try {
      this.checkOpen()
      if (!Array.isArray(ops)) throw invalid('batch expects an array of operations')
      const writeOps: WriteOp[] = []
      let conditions: Condition[] | undefined
      let bytes = 0
      for (let i = 0; i < ops.length; i++) {
        const op = ops[i] as unknown
        if (typeof op !== 'object' || op === null) throw invalid(`batch operation ${i} is not an object`)
        const { type, key, value, ifVersion, ttlMs, expiresAt } = op as { type?: unknown; key?: unknown; value?: unknown; ifVersion?: unknown; ttlMs?: unknown; expiresAt?: unknown }
        if (ifVersion !== undefined && (!Number.isSafeInteger(ifVersion) || (ifVersion as number) < 0)) {
          throw invalid(`batch operation ${i}: ifVersion must be a non-negative integer`)
        }
        let w: WriteOp | undefined
        if (type === 'put') {
          const expiry = ttlMs === undefined && expiresAt === undefined ? undefined : this.expiry({ ttlMs, expiresAt } as ExpiryOptions, `batch operation ${i}`)
          w = expiry === undefined ? { key: this.key(key), value: this.value(value) } : { key: this.key(key), value: this.value(value), expiresAt: expiry }
        } else if (ttlMs !== undefined || expiresAt !== undefined) throw invalid(`batch operation ${i}: only a put takes ttlMs or expiresAt`)
        else if (type === 'delRange') {
          if (ifVersion !== undefined) throw invalid(`batch operation ${i}: delRange takes no ifVersion`)
          const { gte, lt } = op as { gte?: unknown; lt?: unknown }
          w = this.rangeDeleteOp(gte, lt, `batch operation ${i}`)
        } else if (type === 'del') w = { key: this.key(key), value: null }
        else if (type !== 'check') throw invalid(`batch operation ${i} has type ${String(type)}; expected 'put', 'del', 'delRange' or 'check'`)
        else if (ifVersion === undefined) throw invalid(`batch operation ${i}: check needs ifVersion`)
        if (ifVersion !== undefined) {
          conditions ??= []
          conditions.push({ type: 'key', key: w?.key ?? this.key(key), version: ifVersion as number })
        }
        if (w !== undefined) {
          writeOps.push(w)
          bytes += encodedOpBytes(w)
        }
      }
      if (bytes > this.engine.options.maxBatchBytes) {
        throw new StrataError('STRATA_TOO_LARGE', `batch of ${bytes} bytes exceeds maxBatchBytes (${this.engine.options.maxBatchBytes})`)
      }
      if (writeOps.length === 0 && conditions === undefined) return Promise.resolve()
      return this.engine.write(writeOps, bytes, syncOption(options), conditions)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** The value of `key` with its version, or undefined, at the point in time of the call (as `get`). */
  async getEntry(key: Bytes): Promise<Entry | undefined> {
    this.checkOpen()
    const k = this.key(key)
    const pending = this.engine.writesBefore()
    return this.readEntry(k, pending === undefined ? this.engine.visibleSequence : await pending)
  }

  /**
   * Runs `fn` as an optimistic transaction: its reads come from a snapshot and
   * are recorded with their versions, its writes are buffered, and it commits
   * as one conditional batch. On conflict `fn` runs again, up to `retries`
   * times (default 10; Infinity allowed), then the last STRATA_CONFLICT is
   * thrown. Resolves with what `fn` returned.
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T> | T, options?: TransactionOptions): Promise<T> {
    return this.transactions.run(fn, options)
  }

  /**
   * The value of `key`, or undefined. Reads at the point in time of the call:
   * every write issued before it (even if not yet resolved), none after.
   */
  get(key: Bytes): Promise<Buffer | undefined> {
    // Not an async function: with no write in flight this is getSync and one
    // resolved promise, without the frame an async function allocates per call.
    try {
      this.checkOpen()
      const k = this.key(key)
      const pending = this.engine.writesBefore()
      if (pending === undefined) return Promise.resolve(this.read(k, this.engine.visibleSequence))
      return pending.then((sequence) => this.read(k, sequence))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Synchronous get: sees every write whose promise has resolved. */
  getSync(key: Bytes): Buffer | undefined {
    this.checkOpen()
    return this.read(this.key(key), this.engine.visibleSequence)
  }

  /** Iterates [key, value] pairs in bytewise key order, at the point in time of this call. */
  iterator(options?: IteratorOptions): StrataIterator {
    this.checkOpen()
    return this.openIterator(options, this.engine.visibleSequence)
  }

  /**
   * @internal An iterator that stays open at its end (so `seek` can continue)
   * until `close()`; optionally at a snapshot's sequence. Used by adapters.
   */
  seekableIterator(options: IteratorOptions | undefined, snapshot?: Snapshot): StrataIterator {
    this.checkOpen()
    const engine = snapshot === undefined ? this.engine : (this.snapshotEngines.get(snapshot) ?? this.engine)
    return this.openIterator(options, snapshot?.sequence ?? this.engine.visibleSequence, false, engine)
  }

  /**
   * Every batch committed after `since`, in sequence order, exactly as
   * committed (one item per put, delete, batch or transaction commit), read
   * from the WAL files: those still live and those kept after a flush
   * (`walRetentionBytes`, `walRetentionMs`). With `live`, the stream then
   * waits for new commits and hands each out once it resolved (durable as
   * the write asked). It holds one read chunk of memory, whatever the
   * consumer's pace. Ends at `close()` (or when the database closes); throws
   * STRATA_CHANGES_TRUNCATED when the changes it needs are no longer kept
   * (resync from a checkpoint), STRATA_CORRUPTION on a damaged WAL.
   *
   * An op's `key` and `value` are views into the read chunk (up to 1 MiB)
   * its batch came from: keeping one keeps that chunk. Copy what you keep
   * for long (`Buffer.from(op.value)`).
   */
  changes(options?: ChangesOptions): ChangeStream {
    this.checkWritable()
    const { since, live } = this.changesOptions(options)
    return new ChangeCursor(() => this.engine, this.engine.changeCursors, since, live)
  }

  /**
   * Writes a consistent, openable copy of the database into `dir` (which must
   * not exist) while writes go on: tables and complete WALs hard-linked
   * (copied across file systems), the committed part of the active WAL
   * copied, a manifest naming exactly the live tables; everything fsynced.
   * Opening it gives the state at the returned `sequence`, and
   * `changes({ since: sequence })` on this database continues from there.
   * A crash or error midway leaves a directory that open() refuses as an
   * incomplete checkpoint; the source is never written.
   */
  async checkpoint(dir: string): Promise<CheckpointResult> {
    this.checkWritable()
    if (typeof dir !== 'string' || dir.length === 0) throw invalid('checkpoint dir must be a non-empty string')
    return this.engine.checkpoint(dir)
  }

  /**
   * @internal Whole WAL records committed after `since` (a record boundary:
   * a checkpoint's sequence, or the last sequence of a log that appended
   * whole records), exactly as they are on disk, epochs and NOOPs included:
   * what replication ships for a follower to append verbatim. Same reading,
   * retention and errors as `changes()`.
   */
  walRecords(options?: ChangesOptions): AsyncIterableIterator<WalRecordItem> & { close(): void } {
    this.checkWritable()
    const { since, live } = this.changesOptions(options, this.engine.writtenWal().sequence)
    return new ChangeCursor<WalRecordItem>(() => this.engine, this.engine.changeCursors, since, live, 'records')
  }

  /** @internal The sequence this database's WAL holds up to (written, committed or not): what replication may ship. */
  get writtenSequence(): number {
    this.checkOpen()
    return this.engine.writtenWal().sequence
  }

  /**
   * @internal Appends a WAL record payload another node wrote (what
   * `walRecords()` hands out) verbatim: same sequences, same epoch, NOOPs
   * included, so versions are the same on every node. In call order with
   * every other write; resolves once it is in this node's WAL (fsynced with
   * `sync`). STRATA_INVALID_ARGUMENT, writing nothing, unless the record
   * parses and starts right after this database's last sequence.
   */
  appendRecord(payload: Uint8Array, options?: WriteOptions): Promise<void> {
    try {
      this.checkOpen()
      if (!(payload instanceof Uint8Array) || payload.length < 13) throw invalid('appendRecord expects a WAL record payload')
      return this.engine.writeRecord(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), syncOption(options))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * @internal Replication (docs/replication.md). `commitGate`: on a leader,
   * resolves once the writes up to a sequence, already in this WAL, are in a
   * majority's; writes resolve (become visible) only then, and a rejection
   * makes the database read-only (where: 'replication'). `freezeLimit`: on
   * a follower, the highest sequence known committed; memtables holding
   * anything above it are not flushed. `refuseWrites`: on a follower, the
   * error its own writes get (appendRecord still appends). Pass `{}` to go
   * back to a single node.
   */
  setReplication(hooks: { commitGate?: (sequence: number) => Promise<void>; freezeLimit?: number; epoch?: number; refuseWrites?: () => Error }): void {
    this.checkWritable()
    const epoch = hooks.epoch ?? 0
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw invalid('epoch must be a non-negative integer')
    this.replication = { commitGate: hooks.commitGate, freezeLimit: hooks.freezeLimit ?? Infinity, epoch, refuseWrites: hooks.refuseWrites }
    this.applyReplication(this.engine)
  }

  protected applyReplication(engine: Engine): void {
    if (this.replication === undefined) return
    engine.commitGate = this.replication.commitGate
    engine.refuseWrites = this.replication.refuseWrites
    engine.setFreezeLimit(this.replication.freezeLimit)
    engine.setEpoch(this.replication.epoch)
  }

  /**
   * @internal Writes a NOOP entry (docs/format.md): one sequence, nothing
   * else; what a new leader writes in its epoch to commit it. Resolves with
   * its sequence once written (and committed, with a commit gate).
   */
  writeNoop(options?: WriteOptions): Promise<number> {
    try {
      this.checkOpen()
      return this.engine.writeNoop(syncOption(options))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  private changesOptions(options: ChangesOptions | undefined, newest = this.engine.visibleSequence): { since: number; live: boolean } {
    if (options !== undefined && (typeof options !== 'object' || options === null)) throw invalid('changes options must be an object')
    const since = options?.since === undefined ? 0 : options.since
    if (!Number.isSafeInteger(since) || since < 0) throw invalid('since must be a non-negative integer')
    if (since > newest) {
      throw invalid(`since ${since} is past the newest committed sequence ${newest}`)
    }
    const live = options?.live === undefined ? false : options.live
    if (typeof live !== 'boolean') throw invalid('live must be a boolean')
    return { since, live }
  }

  /** Pins the current point in time for consistent reads until `release()`. */
  snapshot(): Snapshot {
    this.checkOpen()
    return this.snapshotAt(this.engine.visibleSequence)
  }

  private snapshotAt(sequence: number): Snapshot {
    const engine = this.engine
    engine.snapshots.add(sequence)
    let released = false
    const check = (): void => {
      if (released) throw new StrataError('STRATA_NOT_OPEN', 'snapshot was released')
      this.checkOpen()
    }
    const snapshot: Snapshot = {
      sequence,
      // Through the engine it was taken on: a refreshed read-only view keeps it readable.
      get: async (key) => {
        check()
        return this.read(this.key(key), sequence, engine)
      },
      getSync: (key) => {
        check()
        return this.read(this.key(key), sequence, engine)
      },
      getEntry: async (key) => {
        check()
        return this.readEntry(this.key(key), sequence, engine)
      },
      iterator: (options) => {
        check()
        return this.openIterator(options, sequence, true, engine)
      },
      release: () => {
        if (released) return
        released = true
        if (engine.isOpen) engine.releaseSnapshot(sequence)
      },
    }
    this.snapshotEngines.set(snapshot, engine)
    return snapshot
  }

  /**
   * Read-only opens only: moves the view forward to the directory's state
   * now (RocksDB's secondary-instance catch-up), the tables it needs opened
   * up front as at the open. Iterators and snapshots opened before keep
   * reading the state they started on; the old view's files are let go when
   * the last of them is released. Resolves with the view's new sequence.
   */
  async refresh(): Promise<number> {
    this.checkOpen()
    const old = this.engine
    const options = old.readOnlyOptions
    if (options === undefined) throw invalid('refresh() is for databases opened with readOnly')
    const next = loadReadOnlyView(old.dir, options)
    if (this.engine !== old || !old.isOpen) {
      // Closed (or refreshed) while loading: keep what is there.
      await next.close()
      this.checkOpen()
      return this.engine.visibleSequence
    }
    this.engine = next
    old.retireWhenReleased()
    if (old.isOpen) this.replacedViews.add(old)
    for (const view of this.replacedViews) if (!view.isOpen) this.replacedViews.delete(view)
    return next.visibleSequence
  }

  /**
   * Flushes the memtable and compacts every table overlapping [start, end]
   * (both optional, inclusive) down to the deepest populated level, where
   * deletes and overwritten versions no snapshot needs are dropped.
   */
  async compactRange(start?: Bytes, end?: Bytes): Promise<void> {
    this.checkWritable()
    const lo = start === undefined ? undefined : toBuffer(start, 'start')
    const hi = end === undefined ? undefined : toBuffer(end, 'end')
    await this.engine.compactRange(lo, hi)
  }

  /** Counters and sizes for monitoring. */
  stats(): EngineStats {
    this.checkOpen()
    return this.engine.stats()
  }

  /**
   * Tries to leave the read-only state a failed write, fsync, flush or
   * compaction put the database in (`stats().failure` says which). Resolves
   * true when the database takes writes again (also when it never failed),
   * false when it could not: the cause is still there (the disk still full:
   * `stats().failure` is then the resume's own failure), or iterators,
   * snapshots or transactions are open (close them first).
   *
   * A resume rebuilds the engine from the directory exactly as a reopen
   * would, keeping the lock: it replays the WALs (a torn tail the failure
   * left is dropped and reported in `stats().recovery`), starts a new WAL,
   * writes a new manifest, flushes what was replayed and retries the
   * compactions. A write that failed may turn out to be applied (its record
   * reached the WAL); one that resolved is never lost.
   */
  resume(): Promise<boolean> {
    try {
      this.checkOpen()
    } catch (err) {
      return Promise.reject(err)
    }
    this.resuming ??= this.resumeOnce().finally(() => (this.resuming = undefined))
    return this.resuming
  }

  private async resumeOnce(): Promise<boolean> {
    const old = this.engine
    if (old.failure === undefined) return true
    if (old.pinsState) return false
    await old.stopBackgroundWork()
    if (!old.isOpen || old.pinsState) return false
    let next: Engine
    try {
      next = recoverEngine(old.dir, { ...old.options, createIfMissing: false, errorIfExists: false }, old.releaseLock, old.changeCursors, this.replicated)
    } catch (err) {
      old.noteResumeFailure(err)
      return false
    }
    old.retire()
    this.engine = next
    this.applyReplication(next)
    return true
  }

  /** Waits for queued writes and running flushes, then releases the directory. Idempotent. */
  async close(): Promise<void> {
    if (this.resuming !== undefined) await this.resuming.catch(() => undefined)
    // Views a refresh replaced go too, as a writable database's close frees what its snapshots held.
    for (const view of this.replacedViews) if (view.isOpen) view.retire()
    this.replacedViews.clear()
    return this.engine.close()
  }

  get isOpen(): boolean {
    return this.engine.isOpen
  }

  private readEntry(key: Buffer, sequence: number, engine = this.engine): Entry | undefined {
    const found = engine.get(key, sequence)
    if (found === undefined || found.v === null) return undefined
    return found.e === 0 ? { value: found.v, version: found.s } : { value: found.v, version: found.s, expiresAt: found.e }
  }

  /**
   * The op of a range delete of [gte, lt), validated: gte may be empty (from
   * the first key); lt absent means no end, else gte < lt. An end may be one
   * byte longer than the longest key, so that "up to and including k" is
   * expressible as lt = k ‖ 0x00.
   */
  private rangeDeleteOp(gte: unknown, lt: unknown, what: string): WriteOp {
    const max = this.engine.options.maxKeyBytes
    const start = toBuffer(gte, 'gte')
    if (start.length > max) throw new StrataError('STRATA_TOO_LARGE', `${what}: gte of ${start.length} bytes exceeds maxKeyBytes (${max})`)
    if (lt === undefined) return { key: start, value: EMPTY_BOUND, rangeDelete: true }
    const end = toBuffer(lt, 'lt')
    if (end.length > max + 1) throw new StrataError('STRATA_TOO_LARGE', `${what}: lt of ${end.length} bytes exceeds maxKeyBytes + 1 (${max + 1})`)
    if (Buffer.compare(start, end) >= 0) throw invalid(`${what}: needs gte < lt`)
    return { key: start, value: end, rangeDelete: true }
  }

  /** The expiry time a write's options ask for (validated; a ttlMs counts from the database's clock). */
  private expiry(options: ExpiryOptions, what: string): number | undefined {
    if (typeof options !== 'object' || options === null) throw invalid('write options must be an object')
    return expiryFrom(options, this.engine.options.clock, what)
  }

  private read(key: Buffer, sequence: number, engine = this.engine): Buffer | undefined {
    const found = engine.get(key, sequence)
    return found === undefined || found.v === null ? undefined : found.v
  }

  private openIterator(options: IteratorOptions | undefined, sequence: number, closeAtEnd = true, engine = this.engine): StrataIterator {
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw invalid('iterator options must be an object')
    }
    const o = options ?? {}
    const range: KeyRange = {}
    for (const bound of ['gt', 'gte', 'lt', 'lte'] as const) {
      if (o[bound] !== undefined) range[bound] = toBuffer(o[bound], bound)
    }
    if (o.reverse !== undefined && typeof o.reverse !== 'boolean') throw invalid('reverse must be a boolean')
    if (o.values !== undefined && typeof o.values !== 'boolean') throw invalid('values must be a boolean')
    let limit = Infinity
    if (o.limit !== undefined && o.limit !== Infinity && o.limit !== -1) {
      if (!Number.isInteger(o.limit) || o.limit < 0) throw invalid('limit must be a non-negative integer')
      limit = o.limit
    }
    const it: DbIterator = engine.iterator(range, o.reverse === true, limit, sequence, closeAtEnd, o.values !== false)
    return {
      next: () => it.next(),
      return: () => it.return(),
      nextSync: () => it.nextSync(),
      seek: (target: Bytes) => it.seek(toBuffer(target, 'target')),
      close: () => it.close(),
      [Symbol.asyncIterator]() {
        return this
      },
    }
  }

  /**
   * Validates a key. Not copied: a write copies its bytes into the WAL record
   * before the call returns, or into a queued copy (WritePath.write).
   */
  private key(input: unknown): Buffer {
    return checkKey(input, this.engine.options.maxKeyBytes)
  }

  private value(input: unknown): Buffer {
    return checkValue(input, this.engine.options.maxValueBytes)
  }

  protected checkOpen(): void {
    if (!this.engine.isOpen) throw new StrataError('STRATA_NOT_OPEN', 'database is not open')
  }

  /** For what only the process that owns the directory can do (a read-only view writes nothing and sees no commits). */
  private checkWritable(): void {
    this.checkOpen()
    if (this.engine.readOnly) throw new StrataError('STRATA_READ_ONLY', `database ${this.engine.dir} is open read-only`)
  }
}

/** The end of a range delete without one. */
const EMPTY_BOUND = Buffer.alloc(0)

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
  return new Database(await (resolved.readOnly ? openReadOnlyEngine(dir, resolved) : openEngine(dir, resolved)))
}
