/**
 * The replies of one RESP connection, in command order. A reply is encoded
 * when it and all before it are ready (one ready at once with nothing ahead
 * of it: at once), and what is encoded is handed to the socket once per
 * event-loop turn.
 */
import type * as net from 'node:net'
import { isPromise, type MaybePromise } from './maybe.js'
import type { ServerMetrics } from '../shared/metrics.js'
import type { CommandSpec } from './command-spec.js'
import { ErrorReply, OutputBuffer, type Protocol, type Reply } from './reply.js'

/**
 * A reply that a callback settles later, instead of a promise: the hottest
 * write (a plain SET joining the turn's batch) takes one of these, so that
 * its reply costs no promise and no reaction of its own.
 */
export class PendingReply {
  private queue: ReplyQueue | undefined
  private slot: Slot | undefined
  private settled = false
  private error: unknown = undefined
  private reply: Reply = null

  /** Settles with `reply`, or with `error` when it is not undefined (answered as for a failed command). Once. */
  settle(error: unknown, reply: Reply): void {
    if (this.settled) return
    this.settled = true
    this.error = error
    this.reply = reply
    this.deliver()
  }

  /** The queue slot the reply goes to (ReplyQueue.push). */
  attach(queue: ReplyQueue, slot: Slot): void {
    this.queue = queue
    this.slot = slot
    this.deliver()
  }

  private deliver(): void {
    const queue = this.queue
    if (!this.settled || queue === undefined) return
    this.queue = undefined
    queue.settlePending(this.slot!, this.error, this.reply)
  }
}

export interface Slot {
  done: boolean
  reply: Reply
  protocol: Protocol
  /** The command, for its metrics (undefined: not counted, e.g. QUEUED or a refusal before running). */
  spec: CommandSpec | undefined
  /** performance.now() when the command started. */
  started: number
}

/** The reply queue of a connection; see the file comment. */
export class ReplyQueue {
  private readonly out = new OutputBuffer()
  private readonly slots: Slot[] = []
  private slotHead = 0
  private flushScheduled = false

  /**
   * `errorReply`: the reply to a command whose reply promise rejected.
   * `flush`: runs in the turn after replies were encoded; it calls writeOut().
   */
  constructor(
    private readonly socket: net.Socket,
    private readonly metrics: ServerMetrics,
    private readonly errorReply: (e: unknown) => ErrorReply,
    private readonly flush: () => void,
  ) {}

  /** Replies queued and not yet encoded. */
  get pending(): number {
    return this.slots.length - this.slotHead
  }

  /** Bytes encoded and not yet handed to the socket. */
  get size(): number {
    return this.out.size
  }

  /**
   * Queues a reply in command order, encoded for `protocol`; `spec` and
   * `started` are for the command's metrics, `now` is when a reply that is
   * ready at once was made.
   */
  push(reply: MaybePromise<Reply> | PendingReply, protocol: Protocol, spec: CommandSpec | undefined, started: number, now: number): void {
    if (reply instanceof PendingReply) {
      const slot: Slot = { done: false, reply: null, protocol, spec, started }
      this.slots.push(slot)
      reply.attach(this, slot)
      return
    }
    if (!isPromise(reply)) {
      if (spec !== undefined) this.metrics.respCommand(spec.name, (now - started) / 1000, reply instanceof ErrorReply)
      if (this.pending === 0) {
        this.out.reply(reply, protocol)
        return
      }
      this.slots.push({ done: true, reply, protocol, spec: undefined, started })
      return
    }
    const slot: Slot = { done: false, reply: null, protocol, spec, started }
    this.slots.push(slot)
    reply.then(
      (r) => this.settleSlot(slot, r),
      (e: unknown) => this.settleSlot(slot, this.errorReply(e)),
    )
  }

  /** A PendingReply settled: `error` (when not undefined) is answered as a rejected command's. */
  settlePending(slot: Slot, error: unknown, reply: Reply): void {
    this.settleSlot(slot, error === undefined ? reply : this.errorReply(error))
  }

  private settleSlot(slot: Slot, reply: Reply): void {
    if (slot.spec !== undefined) this.metrics.respCommand(slot.spec.name, (performance.now() - slot.started) / 1000, reply instanceof ErrorReply)
    slot.done = true
    slot.reply = reply
    this.drainSlots()
  }

  private drainSlots(): void {
    let encoded = false
    while (this.slotHead < this.slots.length && this.slots[this.slotHead].done) {
      const s = this.slots[this.slotHead++]
      this.out.reply(s.reply, s.protocol)
      encoded = true
    }
    if (this.slotHead === this.slots.length) {
      this.slots.length = 0
      this.slotHead = 0
    } else if (this.slotHead > 1024) {
      this.slots.splice(0, this.slotHead)
      this.slotHead = 0
    }
    if (encoded) this.scheduleFlush()
  }

  /** Has `flush` run in the next turn (setImmediate) if anything is encoded. */
  scheduleFlush(): void {
    if (this.flushScheduled || this.out.size === 0) return
    this.flushScheduled = true
    setImmediate(() => {
      this.flushScheduled = false
      this.flush()
    })
  }

  /** Hands everything encoded so far to the socket (one write, or several corked together). */
  writeOut(): void {
    if (this.out.size === 0) return
    const chunks = this.out.take()
    if (chunks.length === 1) this.socket.write(chunks[0])
    else if (chunks.length > 1) {
      this.socket.cork()
      for (const c of chunks) this.socket.write(c)
      this.socket.uncork()
    }
  }
}
