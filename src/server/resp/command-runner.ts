/**
 * Runs the command handlers of one RESP connection: makes the call object
 * and turns what a handler throws into an error reply, logging unexpected
 * failures. The connection, EXEC and the read-modify-write commit path all
 * run handlers through it, and reach the server and the connection's
 * writes through it.
 */
import type { RespContext } from './context.js'
import { isExpected, respErrorLine } from '../shared/errors.js'
import { isPromise, type MaybePromise } from './maybe.js'
import type { Call, CommandSpec, ConnectionState } from './command-spec.js'
import type { ConnectionWrites } from './connection-writes.js'
import type { ReplyBudget } from './reply-budget.js'
import { ErrorReply, type Reply } from './reply.js'
import type { BufferedStore, DirectStore } from './store.js'

/** The handler runner of a connection; see the file comment. */
export class CommandRunner {
  constructor(
    private readonly conn: ConnectionState,
    readonly server: RespContext,
    readonly writes: ConnectionWrites,
  ) {}

  /**
   * Runs a handler, turning a thrown exception into an error reply. A
   * rejected promise is left as it is: the connection's reply queue turns
   * it into the error reply (no extra promise per command on the hot path).
   */
  run(spec: CommandSpec, args: Buffer[], store: DirectStore | BufferedStore, budget?: ReplyBudget): MaybePromise<Reply> {
    const call: Call = { args, store, conn: this.conn, server: this.server, budget }
    try {
      return spec.run(call)
    } catch (e) {
      return this.errorReply(e)
    }
  }

  /** As run(), but a rejection also becomes an error reply (for callers that await the reply). */
  runCaught(spec: CommandSpec, args: Buffer[], store: DirectStore | BufferedStore, budget?: ReplyBudget): MaybePromise<Reply> {
    const r = this.run(spec, args, store, budget)
    return isPromise(r) ? r.catch((e: unknown) => this.errorReply(e)) : r
  }

  /** The error reply for `e`; logged unless it is an expected error. */
  errorReply(e: unknown): ErrorReply {
    if (!isExpected(e)) this.server.log(`RESP: ${this.conn.lastCommand} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
    return new ErrorReply(respErrorLine(e))
  }
}
