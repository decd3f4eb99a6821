/**
 * Blind RESP writes (plain SET, MSET) of one event-loop turn, from every
 * connection, committed to the engine as one batch.
 *
 * Without this, each connection's commands are issued from their own socket
 * callback, and the engine commits (one WAL write(2)) after each callback:
 * 50 clients sending one SET each cost 50 group commits. Queued here, the
 * writes read in one turn go to the engine together at the end of the turn
 * (setImmediate), or earlier when something needs them issued:
 *
 * - `KeyLocks.acquire` flushes first (the server wires `beforeExclusive`),
 *   so a queued blind write never lands inside an exclusive holder's critical
 *   section, exactly as if it had been issued when it was parsed (no key was
 *   held then: only writes parsed while no key is held are queued);
 * - a connection flushes before running any other kind of command after a
 *   write of its own was queued (`queuedSince`), so its later reads and
 *   read-modify-writes are ordered after its writes, as before;
 * - past `MAX_OPS` operations or `MAX_BYTES` bytes the batch is issued at once.
 *
 * A write's promise resolves only when the engine's batch containing it has
 * resolved (it is in the WAL, fsynced in --sync mode), so replies still go
 * out only after the write is durable in the configured mode. The batch is
 * atomic, which is more than each write needs; if it fails (an invalid key,
 * an I/O error), nothing of it was written and every write is issued again
 * on its own, in the same order, so each gets its own outcome.
 */
import type { BatchOp, Database } from '../index.js'

/** Issue the queued batch at once past this many operations... */
export const MAX_OPS = 4096
/** ...or this many key and value bytes. */
export const MAX_BYTES = 1 << 20

interface Queued {
  /** One put (SET)... */
  key: Buffer | undefined
  value: Buffer | undefined
  /** ...or several, atomic together (MSET). */
  pairs: ReadonlyArray<readonly [Buffer, Buffer]> | undefined
  resolve: () => void
  reject: (err: unknown) => void
}

/** See the file comment. */
export class WriteBatcher {
  private queue: Queued[] = []
  private ops = 0
  private bytes = 0
  private immediate: NodeJS.Immediate | undefined
  /** Incremented at every flush: a connection that queued at generation g has nothing queued once it changed. */
  generation = 0
  /** Batches issued and writes they carried (for tests and stats). */
  batches = 0
  batchedWrites = 0

  constructor(private readonly db: Database) {}

  /** Writes queued and not yet issued. */
  get pending(): number {
    return this.queue.length
  }

  /** Queues one put; resolves once the batch holding it is durable. */
  put(key: Buffer, value: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => this.enqueue({ key, value, pairs: undefined, resolve, reject }, 1, key.length + value.length))
  }

  /** Queues puts, atomic together (one MSET); resolves once the batch holding them is durable. */
  putMany(pairs: ReadonlyArray<readonly [Buffer, Buffer]>): Promise<void> {
    let bytes = 0
    for (const [k, v] of pairs) bytes += k.length + v.length
    return new Promise<void>((resolve, reject) => this.enqueue({ key: undefined, value: undefined, pairs, resolve, reject }, pairs.length, bytes))
  }

  private enqueue(q: Queued, ops: number, bytes: number): void {
    this.queue.push(q)
    this.ops += ops
    this.bytes += bytes
    if (this.ops >= MAX_OPS || this.bytes >= MAX_BYTES) this.flush()
    else this.immediate ??= setImmediate(this.onImmediate)
  }

  /** Whether writes queued at `generation` are still waiting (see `generation`). */
  queuedSince(generation: number): boolean {
    return this.generation === generation && this.queue.length > 0
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
    this.generation++
    this.batches++
    this.batchedWrites += queue.length
    if (queue.length === 1) {
      issueOne(this.db, queue[0])
      return
    }
    const ops: BatchOp[] = []
    for (const q of queue) {
      if (q.pairs === undefined) ops.push({ type: 'put', key: q.key!, value: q.value! })
      else for (const [key, value] of q.pairs) ops.push({ type: 'put', key, value })
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

  private readonly onImmediate = (): void => {
    this.immediate = undefined
    this.flush()
  }
}

function issueOne(db: Database, q: Queued): void {
  const write = q.pairs === undefined ? db.put(q.key!, q.value!) : db.batch(q.pairs.map(([key, value]) => ({ type: 'put' as const, key, value })))
  write.then(q.resolve, q.reject)
}
