/**
 * RESP writes of one event-loop turn, from every connection, committed to
 * the engine as one batch: blind writes (plain SET, MSET) and the commits of
 * read-modify-write commands (INCR, APPEND, SET NX, ..., and MULTI/EXEC).
 *
 * Without this, each connection's writes are issued from their own socket
 * callback or promise chain, and the engine commits (one WAL write(2)) for
 * each: 50 clients sending one SET each cost 50 group commits, and a
 * pipeline of 16 INCRs costs 16, one after the other. Queued here, the
 * writes of one turn go to the engine together at the end of the turn
 * (setImmediate), or earlier when something needs them issued:
 *
 * - when an exclusive holder has taken keys that a queued write may touch
 *   (`KeyLocks.onAcquired` calls `flushIfTouching`; a queued range delete,
 *   FLUSHDB, touches every key), or the whole key space
 *   (`KeyLocks.onAcquiredAll`), before it reads them:
 *   it sees the queued writes and commits after them. Once it holds them
 *   nobody queues more writes on them (blind writes are queued only while
 *   no key is held at all, and a read-modify-write queues its commit while
 *   holding its keys, then releases them);
 * - before any write issued directly (a blind write while some key is held,
 *   DirectStore), so it is ordered after the queued ones;
 * - before a connection runs any other kind of command after a write of its
 *   own was queued (`queuedSince`), so its later commands are ordered after
 *   its writes, as before;
 * - past `MAX_OPS` operations or `MAX_BYTES` bytes the batch is issued at once.
 *
 * Writes that are queued and not yet issued are writes nobody has been told
 * about: other clients' reads (GET, HTTP GET, WATCH) simply see the state
 * before them, as if they came a little later, which they may.
 *
 * A write's promise resolves only when the engine's batch containing it has
 * resolved (it is in the WAL, fsynced in --sync mode), so replies still go
 * out only after the write is durable in the configured mode. The batch is
 * atomic, which is more than each write needs. Writes the engine would
 * refuse outright (empty or oversized key, oversized value) are not queued
 * but refused at once. If the batch still fails (a failed precondition,
 * which only a writer outside the server can cause; an I/O error, after
 * which the database is read-only), nothing of it was written and every
 * write is issued again on its own, in the same order, so each gets its own
 * outcome.
 */
import type { BatchOp, Database, DeleteRangeOp } from '../../index.js'

/** An operation of a queued write: a put, a delete, a check, or a range delete (FLUSHDB). */
export type QueuedOp = BatchOp | DeleteRangeOp

/** Issue the queued batch at once past this many operations... */
export const MAX_OPS = 4096
/** ...or this many key and value bytes. */
export const MAX_BYTES = 1 << 20

/** Bits of the filter of keys touched by queued writes. */
const FILTER_BITS = 1 << 16

interface Queued {
  /** One put (SET, and its expiry time: SET EX, SETEX)... */
  key: Buffer | undefined
  value: Buffer | undefined
  expiresAt: number | undefined
  /** ...or several operations, atomic together (MSET, a read-modify-write's commit, FLUSHDB). */
  ops: QueuedOp[] | undefined
  resolve: () => void
  /** Called with the error (never undefined). */
  reject: (err: unknown) => void
}

/** See the file comment. */
export class WriteBatcher {
  private queue: Queued[] = []
  private ops = 0
  private bytes = 0
  private immediate: NodeJS.Immediate | undefined
  /** Keys of the queued writes, hashed (false positives only cost an early flush). */
  private readonly touched = new Uint32Array(FILTER_BITS / 32)
  /** A queued range delete touches every key. */
  private touchedAll = false
  /** Incremented at every flush: a connection that queued at generation g has nothing queued once it changed. */
  generation = 0
  /** Batches issued and writes they carried (for tests and stats). */
  batches = 0
  batchedWrites = 0

  /**
   * `limits`: the database's key and value limits. A write that breaks them
   * is not queued but handed to the engine at once, which refuses it
   * without ordering anything, so it cannot fail the batch of others.
   */
  constructor(
    private readonly db: Database,
    private readonly limits: { maxKeyBytes: number; maxValueBytes: number },
  ) {}

  /** Writes queued and not yet issued. */
  get pending(): number {
    return this.queue.length
  }

  /** Queues one put (expiring at `expiresAt` when given); resolves once the batch holding it is durable. */
  put(key: Buffer, value: Buffer, expiresAt?: number): Promise<void> {
    return new Promise<void>((resolve, reject) => this.putThen(key, value, expiresAt, resolve, reject))
  }

  /**
   * `put` settled by callbacks instead of a promise (the hottest write, a
   * plain SET, takes no promise of its own): `resolve` once the batch holding
   * it is durable, `reject(error)` if it failed.
   */
  putThen(key: Buffer, value: Buffer, expiresAt: number | undefined, resolve: () => void, reject: (err: unknown) => void): void {
    if (this.invalid(key, value)) {
      putOne(this.db, key, value, expiresAt).then(resolve, reject)
      return
    }
    this.mark(key)
    this.enqueue({ key, value, expiresAt, ops: undefined, resolve, reject }, 1, key.length + value.length)
  }

  /** Queues operations, atomic together; resolves once the batch holding them is durable (rejects as db.batch would). */
  batch(ops: QueuedOp[]): Promise<void> {
    for (const op of ops) {
      if (op.type === 'delRange' ? this.invalidRange(op) : this.invalid(op.key as Buffer, op.type === 'put' ? (op.value as Buffer) : undefined)) return this.db.batch(ops)
    }
    let bytes = 0
    for (const op of ops) {
      if (op.type === 'delRange') {
        this.touchedAll = true
        bytes += op.gte.length + (op.lt?.length ?? 0)
        continue
      }
      const key = op.key as Buffer
      this.mark(key)
      bytes += key.length + (op.type === 'put' ? (op.value as Buffer).length : 0)
    }
    return new Promise<void>((resolve, reject) => this.enqueue({ key: undefined, value: undefined, expiresAt: undefined, ops, resolve, reject }, ops.length, bytes))
  }

  /** Whether writes queued at `generation` are still waiting (see `generation`). */
  queuedSince(generation: number): boolean {
    return this.generation === generation && this.queue.length > 0
  }

  /** Issues the queue if a queued write may touch one of `ids` (key ids: the keys' bytes as latin1 strings). */
  flushIfTouching(ids: Iterable<string>): void {
    if (this.queue.length === 0) return
    if (this.touchedAll) {
      this.flush()
      return
    }
    for (const id of ids) {
      const h = hashString(id)
      if ((this.touched[h >>> 5] & (1 << (h & 31))) !== 0) {
        this.flush()
        return
      }
    }
  }

  /** Issues everything queued, now, in queue order. */
  flush(): void {
    if (this.immediate !== undefined) {
      clearImmediate(this.immediate)
      this.immediate = undefined
    }
    const queue = this.queue
    if (queue.length === 0) return
    this.queue = []
    this.ops = 0
    this.bytes = 0
    this.touched.fill(0)
    this.touchedAll = false
    this.generation++
    this.batches++
    this.batchedWrites += queue.length
    if (queue.length === 1) {
      issueOne(this.db, queue[0])
      return
    }
    const ops: QueuedOp[] = []
    for (const q of queue) {
      if (q.ops === undefined) ops.push(q.expiresAt === undefined ? { type: 'put', key: q.key!, value: q.value! } : { type: 'put', key: q.key!, value: q.value!, expiresAt: q.expiresAt })
      else for (const op of q.ops) ops.push(op)
    }
    this.db.batch(ops).then(
      () => {
        for (const q of queue) q.resolve()
      },
      () => {
        // Nothing of the batch was written: give every write its own outcome, in order.
        for (const q of queue) issueOne(this.db, q)
      },
    )
  }

  private enqueue(q: Queued, ops: number, bytes: number): void {
    this.queue.push(q)
    this.ops += ops
    this.bytes += bytes
    if (this.ops >= MAX_OPS || this.bytes >= MAX_BYTES) this.flush()
    else this.immediate ??= setImmediate(this.onImmediate)
  }

  /** What the engine refuses outright (src/base/keys.ts checkKey, checkValue). */
  private invalid(key: Buffer, value: Buffer | undefined): boolean {
    return key.length === 0 || key.length > this.limits.maxKeyBytes || (value !== undefined && value.length > this.limits.maxValueBytes)
  }

  /** A range delete the engine refuses outright (bounds over the key limit, gte >= lt). */
  private invalidRange(op: DeleteRangeOp): boolean {
    const gte = op.gte as Buffer
    const lt = op.lt as Buffer | undefined
    return gte.length > this.limits.maxKeyBytes || (lt !== undefined && (lt.length > this.limits.maxKeyBytes + 1 || Buffer.compare(gte, lt) >= 0))
  }

  private mark(key: Buffer): void {
    const h = hashBytes(key)
    this.touched[h >>> 5] |= 1 << (h & 31)
  }

  private readonly onImmediate = (): void => {
    this.immediate = undefined
    this.flush()
  }
}

function issueOne(db: Database, q: Queued): void {
  const write = q.ops === undefined ? putOne(db, q.key!, q.value!, q.expiresAt) : db.batch(q.ops)
  write.then(q.resolve, q.reject)
}

function putOne(db: Database, key: Buffer, value: Buffer, expiresAt: number | undefined): Promise<void> {
  return expiresAt === undefined ? db.put(key, value) : db.put(key, value, { expiresAt })
}

// FNV-1a over at most the first and last 32 bytes and the length; the same value for a key's
// bytes and for its id (the bytes as a latin1 string).
const EDGE = 32

function hashBytes(b: Buffer): number {
  const n = b.length
  let h = 0x811c9dc5 ^ n
  if (n <= 2 * EDGE) {
    for (let i = 0; i < n; i++) h = Math.imul(h ^ b[i], 0x01000193)
  } else {
    for (let i = 0; i < EDGE; i++) h = Math.imul(h ^ b[i], 0x01000193)
    for (let i = n - EDGE; i < n; i++) h = Math.imul(h ^ b[i], 0x01000193)
  }
  return (h ^ (h >>> 16)) & (FILTER_BITS - 1)
}

function hashString(s: string): number {
  const n = s.length
  let h = 0x811c9dc5 ^ n
  if (n <= 2 * EDGE) {
    for (let i = 0; i < n; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  } else {
    for (let i = 0; i < EDGE; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
    for (let i = n - EDGE; i < n; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  }
  return (h ^ (h >>> 16)) & (FILTER_BITS - 1)
}
