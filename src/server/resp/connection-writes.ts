/**
 * The writes of one RESP connection: those handed to the engine and not yet
 * settled (the write gate counts them too), and whether some of its blind
 * writes still wait in the server's write batcher. The connection orders its
 * later commands after them (see connection.ts).
 */
import { ErrorReply, OK } from './reply.js'
import type { PendingReply } from './reply-queue.js'
import type { WriteTracker } from './store.js'
import type { QueuedOp, WriteBatcher } from './write-batcher.js'
import type { WriteGate } from '../shared/write-gate.js'

/** The writes of a connection; see the file comment. */
export class ConnectionWrites {
  /** The batcher's generation when this connection last queued a write (-1: never). */
  private queuedAt = -1
  /** Writes of this connection handed to the engine and not yet settled. */
  private writesInFlight = 0
  private writesIdle: Array<() => void> = []

  constructor(
    private readonly gate: WriteGate,
    private readonly batcher: WriteBatcher,
  ) {}

  /** Counts a write handed to the engine until it settles (the stores report each write here). */
  readonly track: WriteTracker = (write) => {
    this.writeBegun()
    write.then(this.writeSettled, this.writeSettled)
    return write
  }

  /**
   * A plain SET joining the turn's batch, its reply settled by callback
   * (`pending`: OK, or the error): the bookkeeping of `track` without a
   * promise per command.
   */
  put(key: Buffer, value: Buffer, pending: PendingReply): void {
    this.noteQueued()
    this.writeBegun()
    const settled = (error?: unknown): void => {
      this.writeSettled()
      pending.settle(error, OK)
    }
    try {
      this.batcher.putThen(key, value, undefined, settled, settled)
    } catch (e) {
      // Not expected (the database refuses by rejecting): answered as the handler's exception would be.
      this.writeSettled()
      pending.settle(e, OK)
    }
  }

  /** Commits of read-modify-writes and EXEC join the turn's batch (write-batcher.ts). */
  readonly submitBatch = (ops: QueuedOp[]): Promise<void> => {
    this.queuedAt = this.batcher.generation
    return this.batcher.batch(ops)
  }

  private writeBegun(): void {
    this.writesInFlight++
    this.gate.begin()
  }

  /** One reaction per write does this connection's and the write gate's bookkeeping. */
  private readonly writeSettled = (): void => {
    this.gate.end()
    if (--this.writesInFlight === 0) {
      const waiters = this.writesIdle
      this.writesIdle = []
      for (const w of waiters) w()
    }
  }

  /** Writes handed to the engine and not yet settled. */
  get inFlight(): number {
    return this.writesInFlight
  }

  /** Resolves once every write this connection issued so far has settled. */
  applied(): Promise<void> {
    if (this.writesInFlight === 0) return Promise.resolve()
    return new Promise((resolve) => this.writesIdle.push(resolve))
  }

  /** Notes that this connection queues a blind write in the turn's batch (BatchingStore). */
  noteQueued(): void {
    this.queuedAt = this.batcher.generation
  }

  /** Issues the batcher's queued writes if some of this connection's are among them. */
  flushQueued(): void {
    if (this.batcher.queuedSince(this.queuedAt)) this.batcher.flush()
  }

  /** The -BUSY reply while the write gate refuses writes, else undefined. */
  busy(): ErrorReply | undefined {
    const reason = this.gate.admit()
    return reason === undefined ? undefined : new ErrorReply(`BUSY try again later: ${reason.message}`)
  }
}
