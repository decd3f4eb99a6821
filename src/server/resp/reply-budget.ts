/**
 * Reply budgets: a RESP command whose reply has many parts (MGET, EXEC, KEYS,
 * SCAN) charges each part while it builds the reply, and answers an error
 * instead once the reply would exceed `maxReplyBytes`, so that a tiny command
 * (`MGET big big big …`) cannot make the server build a huge reply. The
 * output buffer limits (connection.ts) only see a reply once it is built;
 * this bounds what is built.
 *
 * Usage in a handler: `const budget = replyBudget(call)` (command-spec.ts), then
 * `if (!budget.bulk(value.length)) return budget.error()` for each part. EXEC
 * passes one budget to all its queued commands (`call.budget`), so the EXEC
 * reply as a whole stays within it.
 */
import { ErrorReply, MapReply, SimpleString, err, type Reply } from './reply.js'

/** Bytes charged per part on top of its payload: the RESP header and CRLF (`$<len>\r\n…\r\n`). */
export const PART_OVERHEAD_BYTES = 16

/** The reply bytes a command may still produce; see the file comment. */
export class ReplyBudget {
  private left: number

  constructor(readonly limitBytes: number) {
    this.left = limitBytes
  }

  /** Bytes charged so far. */
  get usedBytes(): number {
    return this.limitBytes - this.left
  }

  /** Charges `bytes`; false when the reply no longer fits (and from then on). */
  charge(bytes: number): boolean {
    this.left -= bytes
    return this.left >= 0
  }

  /** Charges a bulk string (or null) of `length` bytes; false when it no longer fits. */
  bulk(length: number): boolean {
    this.left -= length + PART_OVERHEAD_BYTES
    return this.left >= 0
  }

  /** Forgets what was charged after `usedBytes` was `used` (a part that was not kept). */
  rollBack(used: number): void {
    this.left = this.limitBytes - used
  }

  /** Whether everything charged so far fits. */
  get ok(): boolean {
    return this.left >= 0
  }

  /** The error reply of a command whose reply does not fit. */
  error(): ErrorReply {
    return replyTooLarge(this.limitBytes)
  }
}

/** `-ERR reply exceeds maxReplyBytes (N bytes)`. */
export function replyTooLarge(limitBytes: number): ErrorReply {
  return err(`reply exceeds maxReplyBytes (${limitBytes} bytes)`)
}

/**
 * About how many bytes `reply` takes encoded (for replies built without a
 * budget, e.g. GET inside EXEC). Exact for bulk strings, close for the rest.
 */
export function replyBytes(reply: Reply): number {
  if (reply === null) return 5
  if (Buffer.isBuffer(reply)) return reply.length + PART_OVERHEAD_BYTES
  if (typeof reply === 'string') return reply.length * 3 + PART_OVERHEAD_BYTES
  if (Array.isArray(reply)) {
    let n = PART_OVERHEAD_BYTES
    for (const r of reply as readonly Reply[]) n += replyBytes(r)
    return n
  }
  if (reply instanceof MapReply) {
    let n = PART_OVERHEAD_BYTES
    for (const [k, v] of reply.entries) n += replyBytes(k) + replyBytes(v)
    return n
  }
  if (reply instanceof ErrorReply) return reply.message.length + 3
  if (reply instanceof SimpleString) return reply.value.length + 3
  return 24
}
