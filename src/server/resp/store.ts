/**
 * The key-value view RESP command handlers work against, in two flavours:
 *
 * - `DirectStore`: reads and blind writes straight on the database. Reads are
 *   synchronous: the connection only runs them once its own earlier writes
 *   are applied, so a read sees exactly what came before it in the pipeline.
 * - `BufferedStore`: a small optimistic transaction for read-modify-write
 *   commands and MULTI/EXEC. Reads record the version they saw, writes are
 *   buffered, and `commit()` applies everything as one conditional batch
 *   (STRATA_CONFLICT if any key read has changed since).
 *
 * Handlers are written once against `KvStore` and run in either.
 *
 * `deleteAll` (FLUSHDB) is one range delete of every key: the direct stores
 * issue it, only ever at a moment no key is locked (KeyLocks.whenAllFree);
 * a BufferedStore (EXEC, which then holds the whole key space) records it,
 * reads every key as absent from then on, and commits it as one `delRange`
 * op before the writes that followed it.
 *
 * Expiry: a put may carry `expiresAt` (ms since the epoch, by the database's
 * clock); without it the value does not expire (a put clears any TTL, as a
 * Redis SET does). Reads see expired keys as absent, and `getEntry` reports
 * the expiry of a value that has one.
 */
import type { Database, Entry } from '../../index.js'
import { keyId } from '../shared/key-locks.js'
import type { QueuedOp, WriteBatcher } from './write-batcher.js'
import type { MaybePromise } from './maybe.js'
import type { ReplyBudget } from './reply-budget.js'

/** Reads and writes of command handlers. Keys and values are bytes. */
export interface KvStore {
  get(key: Buffer): MaybePromise<Buffer | undefined>
  getEntry(key: Buffer): MaybePromise<Entry | undefined>
  /**
   * Several keys read at one point in time. With a budget, each value is charged to it as it is
   * read, and undefined is returned as soon as the values no longer fit (reply-budget.ts).
   */
  getMany(keys: readonly Buffer[], budget?: ReplyBudget): MaybePromise<Array<Buffer | undefined> | undefined>
  /** Resolves when durable (direct) or immediately (buffered: at commit). With `expiresAt` the value expires then. */
  put(key: Buffer, value: Buffer, expiresAt?: number): MaybePromise<void>
  del(key: Buffer): MaybePromise<void>
  /** Several puts, atomically. */
  putMany(pairs: ReadonlyArray<readonly [Buffer, Buffer]>): MaybePromise<void>
  /** Deletes every key: one range delete (FLUSHDB). */
  deleteAll(): MaybePromise<void>
}

/** The range delete of every key: from the empty key, no end. */
const EVERY_KEY = Object.freeze({ type: 'delRange', gte: Buffer.alloc(0) }) satisfies QueuedOp

/** Reports each write handed to the engine (the connection counts them, the write gate too). */
export type WriteTracker = (write: Promise<void>) => Promise<void>

/** Direct reads and writes; see the file comment. */
export class DirectStore implements KvStore {
  /**
   * `batcher`: the server's write batcher, whose queued writes are issued
   * before every direct write so that the direct write is ordered after them.
   */
  constructor(
    protected readonly db: Database,
    protected readonly track: WriteTracker,
    protected readonly batcher?: WriteBatcher,
  ) {}

  get(key: Buffer): Buffer | undefined {
    return this.db.getSync(key)
  }

  getEntry(key: Buffer): Promise<Entry | undefined> {
    return this.db.getEntry(key)
  }

  getMany(keys: readonly Buffer[], budget?: ReplyBudget): Array<Buffer | undefined> | undefined {
    // Synchronous: no write can be applied in between, so this is one point in time.
    const values = new Array<Buffer | undefined>(keys.length)
    for (let i = 0; i < keys.length; i++) {
      const v = this.db.getSync(keys[i])
      if (budget !== undefined && !budget.bulk(v === undefined ? 0 : v.length)) return undefined
      values[i] = v
    }
    return values
  }

  put(key: Buffer, value: Buffer, expiresAt?: number): Promise<void> {
    this.batcher?.flush()
    return this.track(expiresAt === undefined ? this.db.put(key, value) : this.db.put(key, value, { expiresAt }))
  }

  del(key: Buffer): Promise<void> {
    this.batcher?.flush()
    return this.track(this.db.delete(key))
  }

  putMany(pairs: ReadonlyArray<readonly [Buffer, Buffer]>): Promise<void> {
    this.batcher?.flush()
    return this.track(this.db.batch(pairs.map(([key, value]) => ({ type: 'put', key, value }))))
  }

  deleteAll(): Promise<void> {
    this.batcher?.flush()
    return this.track(this.db.deleteRange(EVERY_KEY.gte))
  }
}

/**
 * A DirectStore whose writes join the turn's batch (write-batcher.ts). Only
 * for blind writes parsed while no key is exclusively held.
 */
export class BatchingStore extends DirectStore {
  constructor(
    db: Database,
    track: WriteTracker,
    private readonly queue: WriteBatcher,
  ) {
    super(db, track, queue)
  }

  override put(key: Buffer, value: Buffer, expiresAt?: number): Promise<void> {
    return this.track(this.queue.put(key, value, expiresAt))
  }

  override putMany(pairs: ReadonlyArray<readonly [Buffer, Buffer]>): Promise<void> {
    return this.track(this.queue.batch(pairs.map(([key, value]) => ({ type: 'put', key, value }))))
  }

  override deleteAll(): Promise<void> {
    return this.track(this.queue.batch([EVERY_KEY]))
  }
}

/** An optimistic read-modify-write unit; see the file comment. */
export class BufferedStore implements KvStore {
  /** Versions read (0 = absent), by key id. */
  private readonly reads = new Map<string, { key: Buffer; version: number }>()
  /** Buffered writes (null = delete), by key id, in first-write order. */
  private readonly writes = new Map<string, { key: Buffer; value: Buffer | null; expiresAt: number | undefined }>()
  private sawExpiring = false
  /** deleteAll() was called: every key not written since reads as absent; committed as one range delete before the writes. */
  private deletedAll = false

  /** `clock`: the database's clock, for the expiry of this unit's own writes. */
  constructor(
    private readonly db: Database,
    private readonly clock: () => number,
  ) {}

  /** Whether anything was written. */
  get hasWrites(): boolean {
    return this.writes.size > 0 || this.deletedAll
  }

  /**
   * Whether a value read has an expiry. Such a key may expire between the
   * read and the commit, which then fails its version check though nobody
   * wrote the key (read-modify-write.ts runs the unit again).
   */
  get readExpiring(): boolean {
    return this.sawExpiring
  }

  async getEntry(key: Buffer): Promise<Entry | undefined> {
    const id = keyId(key)
    const own = this.writes.get(id)
    // An own write has no version before commit: reported as 0. One that has expired since reads as absent, as it will once committed.
    if (own !== undefined) {
      if (own.value === null) return undefined
      if (own.expiresAt === undefined) return { value: own.value, version: 0 }
      return own.expiresAt <= this.clock() ? undefined : { value: own.value, version: 0, expiresAt: own.expiresAt }
    }
    // After deleteAll() the key is absent whatever the database holds: nothing to check at commit.
    if (this.deletedAll) return undefined
    const entry = await this.db.getEntry(key)
    if (entry?.expiresAt !== undefined) this.sawExpiring = true
    if (!this.reads.has(id)) this.reads.set(id, { key, version: entry?.version ?? 0 })
    return entry
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    return (await this.getEntry(key))?.value
  }

  async getMany(keys: readonly Buffer[], budget?: ReplyBudget): Promise<Array<Buffer | undefined> | undefined> {
    // One key at a time, so that a reply over budget stops the reads (the keys are locked: one point in time).
    const values = new Array<Buffer | undefined>(keys.length)
    for (let i = 0; i < keys.length; i++) {
      const v = await this.get(keys[i])
      if (budget !== undefined && !budget.bulk(v === undefined ? 0 : v.length)) return undefined
      values[i] = v
    }
    return values
  }

  /** Requires `key` to still have `version` at commit (WATCH). */
  expect(key: Buffer, version: number): void {
    const id = keyId(key)
    if (!this.reads.has(id)) this.reads.set(id, { key, version })
  }

  put(key: Buffer, value: Buffer, expiresAt?: number): void {
    this.writes.set(keyId(key), { key, value, expiresAt })
  }

  del(key: Buffer): void {
    this.writes.set(keyId(key), { key, value: null, expiresAt: undefined })
  }

  putMany(pairs: ReadonlyArray<readonly [Buffer, Buffer]>): void {
    for (const [key, value] of pairs) this.put(key, value)
  }

  /** Only under a hold of the whole key space (KeyLocks.acquireAll): the commit deletes every key. */
  deleteAll(): void {
    this.writes.clear()
    this.deletedAll = true
  }

  /**
   * Applies the buffered writes if every key read still has the version read;
   * rejects with STRATA_CONFLICT (nothing written) otherwise. Returns
   * undefined when there is nothing to apply or check. `submit` issues the
   * batch (default db.batch; the connection passes the write batcher's).
   */
  commit(track: WriteTracker, submit: (ops: QueuedOp[]) => Promise<void> = (ops) => this.db.batch(ops)): Promise<void> | undefined {
    // A single read and no write is trivially consistent.
    if (!this.hasWrites && this.reads.size <= 1) return undefined
    const ops: QueuedOp[] = []
    for (const r of this.reads.values()) ops.push({ type: 'check', key: r.key, ifVersion: r.version })
    if (this.deletedAll) ops.push(EVERY_KEY)
    for (const w of this.writes.values()) {
      if (w.value === null) ops.push({ type: 'del', key: w.key })
      else if (w.expiresAt === undefined) ops.push({ type: 'put', key: w.key, value: w.value })
      else ops.push({ type: 'put', key: w.key, value: w.value, expiresAt: w.expiresAt })
    }
    if (!this.hasWrites) return this.db.batch(ops)
    return track(submit(ops))
  }
}
