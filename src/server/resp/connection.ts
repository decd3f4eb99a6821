/**
 * One RESP client connection: parsing, in-order execution with pipelining,
 * MULTI/EXEC/WATCH (transaction.ts), backpressure, and orderly closing.
 *
 * Ordering. Commands of one connection take effect in the order they were
 * sent, as in Redis, while independent commands still overlap so that
 * pipelined writes share the engine's group commit:
 *
 * - a blind write (SET, MSET) parsed while no key of the server is
 *   exclusively locked joins the server's batch of this event-loop turn
 *   (write-batcher.ts: every connection's writes of the turn become one
 *   engine batch, issued before an exclusive holder takes a key they touch,
 *   before any direct write, and before this connection's next command of
 *   another kind); while some key is locked it is issued at once unless one
 *   of its own keys is locked, in which case later commands wait until it
 *   has been issued;
 * - a read runs synchronously once this connection's earlier writes have
 *   been applied (later commands wait for it);
 * - read-modify-write commands, EXEC and WATCH are barriers: later commands
 *   wait until they completed (read-modify-writes and EXEC: until their
 *   commit is queued in the write batcher, see read-modify-write.ts).
 *
 * Replies are queued in command order; each is encoded when it and all
 * before it are ready, and flushed once per event-loop turn
 * (reply-queue.ts).
 *
 * Backpressure. Input is paused while `maxPendingReplies` replies are
 * outstanding, while more than `maxOutputBufferBytes` wait to be sent (a
 * client that does not read), and while a barrier is pending.
 *
 * Limits against clients that hold resources (docs/server.md, "Limits"):
 * before AUTH (with a token) the parser takes at most `maxPreAuthArgs`
 * arguments of `maxPreAuthBulkBytes` each, as Redis; the output buffer
 * limits close a connection whose unsent output is over the hard limit, or
 * over the soft one for `outputSoftLimitMs`; idle connections are closed
 * after `respIdleTimeoutMs` (authenticated) or `respAuthTimeoutMs` (not yet
 * authenticated). Timeouts and the soft limit are checked by the server's
 * periodic sweep (server.ts calls sweep()), which costs the hot path
 * nothing: activity is seen from the socket's byte counters. What the
 * connection holds (unsent output, unparsed input) is reported to the
 * server's client memory total (client-memory.ts) at the end of each
 * pump, after each flush, on 'drain' and on close; over `maxMemoryClientsBytes`
 * the server evicts the connections holding the most (evict()).
 *
 * Closing. Once closing (QUIT, a protocol error, the client's end, shutdown)
 * and every reply is written, the socket is ended, and then destroyed as
 * soon as the client has closed its side or after CLOSE_LINGER_MS (as
 * Redis, which closes at once): input is read and dropped meanwhile, so a
 * client that keeps writing sees the close rather than blocking on a socket
 * nobody reads, and the close is a FIN, not a reset that could lose the
 * last replies.
 */
import type * as net from 'node:net'
import type { RespContext } from './context.js'
import { keyId } from '../shared/key-locks.js'
import { isPromise, type MaybePromise } from './maybe.js'
import { CommandRunner } from './command-runner.js'
import { arityOk, overlongKey, commandKeys, commandKind, type CommandKind, type CommandSpec, type ConnectionState } from './command-spec.js'
import { COMMANDS, NO_AUTH_COMMANDS, lookupCommand, unknownCommandMessage } from './command-table.js'
import { ConnectionWrites } from './connection-writes.js'
import { RespParser, RespProtocolError, type RespParserLimits } from './parser.js'
import { readModifyWrite } from './read-modify-write.js'
import { ErrorReply, OK, QUEUED, SimpleString, err, type Protocol, type Reply } from './reply.js'
import { PendingReply, ReplyQueue } from './reply-queue.js'
import { Transaction, exec } from './transaction.js'
import { BatchingStore, DirectStore } from './store.js'

/** GET, served directly on the hot path (same result as its handler). */
const GET = COMMANDS.get('get')
const SET = COMMANDS.get('set')

/** After the socket is ended (and its output flushed), how long to wait for the client to close its side. */
const CLOSE_LINGER_MS = 1_000
/** An ended connection whose output makes no progress for this long is destroyed (a client that neither reads nor closes). */
const CLOSE_STALL_MS = 10_000

let nextConnectionId = 1

/** A RESP connection; see the file comment. */
export class RespConnection implements ConnectionState {
  readonly id = nextConnectionId++
  name: string | null = null
  protocol: Protocol = 2
  libName: string | null = null
  libVersion: string | null = null
  readonly remoteAddress: string
  readonly createdAtMs = performance.now()
  lastCommand = 'NULL'

  private readonly parser: RespParser
  private readonly replies: ReplyQueue
  private readonly direct: DirectStore
  /** Blind writes through the server's write batcher (write-batcher.ts). */
  private readonly batching: BatchingStore
  /** This connection's writes in flight and queued in the batcher (connection-writes.ts). */
  private readonly writes: ConnectionWrites
  /** Runs handlers for this connection (command-runner.ts). */
  private readonly runner: CommandRunner
  private barrier = false
  /** MULTI/EXEC/WATCH state (transaction.ts). */
  private readonly tx = new Transaction()
  private inputPaused = false
  /** No further commands are taken; the socket ends once every reply is sent. */
  private closing = false
  /** The socket was ended (finish()): input is dropped, the socket is destroyed soon. */
  private ended = false
  closed = false
  private isAuthenticated: boolean
  /** Parser limits before and after AUTH. */
  private readonly preAuthLimits: RespParserLimits
  private readonly normalLimits: RespParserLimits
  /** The sweep's view of the socket: bytes read and written at its last look, and when they last changed. */
  private seenBytesRead = 0
  private seenBytesSent = 0
  private lastActiveMs = performance.now()
  /** performance.now() since when the unsent output has been over the soft limit; 0 = it is not. */
  private overSoftSinceMs = 0
  /** performance.now() at the end of the previous command of this pump (the start of the next). */
  private clock = 0
  /** Bytes this connection holds as last reported to the server's client memory total (accountMemory()). */
  memoryBytes = 0

  constructor(
    private readonly socket: net.Socket,
    private readonly server: RespContext,
    private readonly onClose: (c: RespConnection) => void,
  ) {
    const l = server.options.limits
    this.normalLimits = { maxBulkBytes: l.maxBulkBytes, maxArgs: l.maxArgs, maxInlineBytes: l.maxInlineBytes, maxCommandBytes: l.maxCommandBytes }
    const preArgs = Math.min(l.maxPreAuthArgs, l.maxArgs)
    const preBulk = Math.min(l.maxPreAuthBulkBytes, l.maxBulkBytes)
    this.preAuthLimits = {
      maxBulkBytes: preBulk,
      maxArgs: preArgs,
      maxInlineBytes: Math.min(l.maxInlineBytes, preBulk),
      maxCommandBytes: Math.min(l.maxCommandBytes, preArgs * preBulk),
      preAuth: true,
    }
    this.isAuthenticated = server.auth === undefined
    this.parser = new RespParser(this.isAuthenticated ? this.normalLimits : this.preAuthLimits)
    this.replies = new ReplyQueue(socket, server.metrics, (e) => this.runner.errorReply(e), () => this.flush())
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`
    this.writes = new ConnectionWrites(server.gate, server.batcher)
    this.runner = new CommandRunner(this, server, this.writes)
    this.direct = new DirectStore(server.db, this.writes.track, server.batcher)
    this.batching = new BatchingStore(server.db, this.writes.track, server.batcher)
    socket.setNoDelay(true)
    socket.setKeepAlive(true, 60_000)
    socket.on('data', (chunk: Buffer) => {
      if (this.ended) return // closing: input is dropped
      this.parser.push(chunk)
      this.pump()
    })
    socket.on('drain', () => {
      this.overSoftSinceMs = 0
      this.maybeResume()
      this.accountMemory()
    })
    socket.on('error', () => socket.destroy())
    socket.on('close', () => {
      this.closed = true
      this.accountMemory()
      this.onClose(this)
    })
    socket.on('end', () => {
      // The client is done sending: answer what it sent, then close.
      this.closing = true
      this.maybeEnd()
    })
  }

  /** Stops taking commands, answers those in progress, then closes (graceful shutdown). */
  shutdown(): void {
    this.closing = true
    this.pauseInput()
    this.maybeEnd()
  }

  /** Closes at once (shutdown timeout). */
  destroy(): void {
    this.socket.destroy()
  }

  /** Whether the client has authenticated (always, without a token). AUTH, HELLO and RESET set it. */
  get authenticated(): boolean {
    return this.isAuthenticated
  }

  set authenticated(value: boolean) {
    if (value === this.isAuthenticated) return
    this.isAuthenticated = value
    // Takes effect from the next command on: commands are parsed one at a time (RespParser.next).
    this.parser.setLimits(value ? this.normalLimits : this.preAuthLimits)
  }

  /**
   * The periodic check of server.ts: closes the connection when it has
   * been idle too long (nothing read, no output sent, no command running) or
   * its output has been over the soft limit too long. Returns the reason
   * when it closed the connection.
   */
  sweep(now: number): 'idle' | 'unauthenticated' | 'output' | 'closing' | undefined {
    if (this.closed) return undefined
    // Output the kernel took without a 'drain' (writes that never filled the socket buffer).
    this.accountMemory()
    const socket = this.socket
    const read = socket.bytesRead
    // Bytes the kernel has taken (bytesWritten counts what is still buffered too).
    const sent = (socket.bytesWritten ?? 0) - socket.writableLength
    if (read !== this.seenBytesRead || sent !== this.seenBytesSent) {
      this.seenBytesRead = read
      this.seenBytesSent = sent
      this.lastActiveMs = now
    }
    const o = this.server.options
    const idleMs = now - this.lastActiveMs
    if (this.ended) {
      if (idleMs >= CLOSE_STALL_MS) return this.kill('closing')
      return undefined
    }
    const l = o.limits
    if (l.outputSoftLimitBytes > 0 && l.outputSoftLimitMs > 0) {
      if (socket.writableLength + this.replies.size <= l.outputSoftLimitBytes) this.overSoftSinceMs = 0
      else if (this.overSoftSinceMs === 0) this.overSoftSinceMs = now
      else if (now - this.overSoftSinceMs >= l.outputSoftLimitMs) return this.kill('output')
    }
    const timeout = this.isAuthenticated ? o.respIdleTimeoutMs : o.respAuthTimeoutMs
    // A command still running (a stalled write, EXEC waiting for locks) is not idleness.
    if (timeout > 0 && idleMs >= timeout && this.replies.pending === 0) return this.kill(this.isAuthenticated ? 'idle' : 'unauthenticated')
    return undefined
  }

  /** Destroys the socket (what the connection holds is dropped with it); returns `reason`. */
  private kill<R extends string>(reason: R): R {
    this.closing = true
    this.socket.destroy()
    this.accountMemory()
    return reason
  }

  /**
   * Measures what the connection holds now (unsent output: socket buffer and
   * encoded replies; input not yet parsed, or the buffer it is kept in) and
   * updates the server's client memory total by the difference. 0 once the
   * socket is destroyed. A few property reads: called per pump and flush.
   */
  accountMemory(): number {
    const socket = this.socket
    const parser = this.parser
    const now = socket.destroyed ? 0 : socket.writableLength + this.replies.size + Math.max(parser.allocatedBytes, parser.bufferedBytes)
    const delta = now - this.memoryBytes
    if (delta !== 0) {
      this.memoryBytes = now
      this.server.clientMemory.add(delta)
    }
    return now
  }

  /** Client eviction (the server is over `maxMemoryClientsBytes`): closes at once, dropping what the connection holds. */
  evict(): void {
    this.kill('evicted')
  }

  /**
   * The output buffer limits, checked once per flush (not per command):
   * over the hard limit the connection is closed at once; over the soft
   * limit the time is noted (sweep() closes it if it stays there).
   */
  private checkOutput(): boolean {
    const l = this.server.options.limits
    const out = this.socket.writableLength + this.replies.size
    if (l.outputHardLimitBytes > 0 && out > l.outputHardLimitBytes) {
      this.server.log(`RESP: closing ${this.remoteAddress}: ${out} bytes of unsent output exceed the hard limit (${l.outputHardLimitBytes})`)
      this.kill('output')
      return false
    }
    if (l.outputSoftLimitBytes > 0 && out > l.outputSoftLimitBytes) {
      if (this.overSoftSinceMs === 0) this.overSoftSinceMs = performance.now()
    } else {
      this.overSoftSinceMs = 0
    }
    return true
  }

  // ---- input -------------------------------------------------------------------

  private pump(): void {
    const limits = this.server.options.limits
    this.clock = performance.now()
    while (!this.closing && !this.closed && !this.barrier) {
      if (this.replies.pending >= limits.maxPendingReplies || this.socket.writableLength + this.replies.size > limits.maxOutputBufferBytes) {
        this.pauseInput()
        break
      }
      let args: Buffer[] | undefined
      try {
        args = this.parser.next()
      } catch (e) {
        if (!(e instanceof RespProtocolError)) throw e
        this.server.metrics.protocolError('resp')
        this.pushReply(err(e.message), undefined, 0)
        this.closing = true
        break
      }
      if (args === undefined) {
        this.resumeInput()
        break
      }
      this.dispatch(args)
    }
    if (this.barrier || this.closing) this.pauseInput()
    // Replies go out once per event-loop turn (setImmediate), after every connection's input of
    // this turn was handled: writing at once from here measured ~10% slower on pipelined GETs.
    this.replies.scheduleFlush()
    this.accountMemory()
    this.maybeEnd()
  }

  private pauseInput(): void {
    if (!this.inputPaused) {
      this.inputPaused = true
      this.socket.pause()
    }
  }

  private resumeInput(): void {
    if (this.inputPaused && !this.closing) {
      this.inputPaused = false
      this.socket.resume()
    }
  }

  /** Called when replies were sent or a barrier cleared: take more commands if there is room. */
  private maybeResume(): void {
    if (this.closed || this.closing || this.barrier) return
    const limits = this.server.options.limits
    if (this.replies.pending >= limits.maxPendingReplies || this.socket.writableLength > limits.maxOutputBufferBytes) return
    this.pump()
  }

  // ---- dispatch ----------------------------------------------------------------

  private dispatch(args: Buffer[]): void {
    const spec = lookupCommand(args[0])
    if (spec === undefined) {
      this.dispatchUnknown(args)
      return
    }
    this.lastCommand = spec.name
    if (!this.authenticated && !NO_AUTH_COMMANDS.has(spec.name)) {
      this.server.metrics.respRejected(spec.name)
      this.pushReply(new ErrorReply('NOAUTH Authentication required.'), undefined, 0)
      return
    }
    if (!arityOk(spec, args)) {
      this.server.metrics.respRejected(spec.name)
      this.tx.fail()
      this.pushReply(err(`wrong number of arguments for '${spec.name}' command`), undefined, 0)
      return
    }
    const longKey = overlongKey(spec, args, this.server.options.limits.maxKeyBytes)
    if (longKey !== undefined) {
      this.server.metrics.respRejected(spec.name)
      this.tx.fail()
      this.pushReply(err(`key of ${longKey} bytes exceeds maxKeyBytes (${this.server.options.limits.maxKeyBytes})`), undefined, 0)
      return
    }
    if (this.tx.active && spec.flags.includes('no_multi')) {
      // As Redis: refused (SAVE, BGSAVE), and EXEC will abort.
      this.server.metrics.respRejected(spec.name)
      this.tx.fail()
      this.pushReply(err('Command not allowed inside a transaction'), undefined, 0)
      return
    }
    if (this.tx.enqueue(spec, args)) {
      this.pushReply(QUEUED, undefined, 0)
      return
    }
    const started = this.clock
    const reply = this.execute(spec, args)
    this.clock = performance.now()
    this.pushReply(reply, spec, started)
  }

  /** A command name that is not in the table (or an HTTP request on the RESP port). */
  private dispatchUnknown(args: Buffer[]): void {
    const name = args[0].toString('latin1').toLowerCase()
    if (name === 'post' || name === 'host:') {
      // Someone talks HTTP to the RESP port (maybe a browser used for cross-protocol attacks): close silently, as Redis.
      logCrossProtocol(this.server, this.remoteAddress)
      this.server.metrics.protocolError('resp')
      this.closing = true
      this.socket.destroy()
      return
    }
    this.lastCommand = name.slice(0, 32)
    if (!this.authenticated && !NO_AUTH_COMMANDS.has(name)) {
      this.pushReply(new ErrorReply('NOAUTH Authentication required.'), undefined, 0)
      return
    }
    this.tx.fail()
    this.pushReply(err(unknownCommandMessage(args)), undefined, 0)
  }

  private execute(spec: CommandSpec, args: Buffer[]): MaybePromise<Reply> | PendingReply {
    const kind = commandKind(spec, args)
    if (kind === 'conn') return this.runner.run(spec, args, this.direct)
    if (this.server.cluster !== undefined) return this.executeOnReplica(spec, args, kind)
    return this.executeKind(spec, args, kind)
  }

  /**
   * A replica runs data commands only as the serving leader (else
   * -NOTLEADER / -TRYAGAIN, shared/errors.ts); anything but a blind write
   * (reads, read-modify-writes, EXEC) first waits for a read-index round
   * (docs/replication.md), holding the connection's later commands behind it.
   */
  private executeOnReplica(spec: CommandSpec, args: Buffer[], kind: CommandKind): MaybePromise<Reply> | PendingReply {
    const cluster = this.server.cluster!
    if (kind === 'write') {
      const refused = cluster.admitNow()
      return refused === undefined ? this.executeKind(spec, args, kind) : this.runner.errorReply(refused)
    }
    if (kind === 'tx' && spec.name !== 'exec') return this.executeOrdered(spec, args, kind)
    return this.hold(
      cluster.admit('read').then(
        () => this.executeOrdered(spec, args, kind),
        (e: unknown) => this.runner.errorReply(e),
      ),
    )
  }

  private executeKind(spec: CommandSpec, args: Buffer[], kind: CommandKind): MaybePromise<Reply> | PendingReply {
    if (kind === 'write') {
      const busy = this.writes.busy()
      if (busy !== undefined) return busy
      if (this.server.locks.heldCount === 0) {
        // No key is exclusively held (the usual case): join this turn's batch.
        if (spec === SET && args.length === 3) {
          // The hottest write, a plain SET: its reply is settled by callback (no promise).
          const pending = new PendingReply()
          this.writes.put(args[1], args[2], pending)
          return pending
        }
        this.writes.noteQueued()
        return this.runner.run(spec, args, this.batching)
      }
    }
    return this.executeOrdered(spec, args, kind)
  }

  /** A command that is not a blind write joining the turn's batch. */
  private executeOrdered(spec: CommandSpec, args: Buffer[], kind: CommandKind): MaybePromise<Reply> {
    // Ordered after this connection's queued writes: issue them first.
    this.writes.flushQueued()
    switch (kind) {
      case 'read':
        if (this.writes.inFlight === 0) {
          if (spec === GET) {
            // The hottest command, without the handler's call object and closures.
            try {
              return this.server.db.getSync(args[1]) ?? null
            } catch (e) {
              return this.runner.errorReply(e)
            }
          }
          return this.runner.run(spec, args, this.direct)
        }
        return this.hold(this.writes.applied().then(() => this.runner.run(spec, args, this.direct)))
      case 'write': {
        // Some key is held: issue at once when none of ours is, else wait (later commands too).
        const run = (): { reply: MaybePromise<Reply> } => ({ reply: this.runner.run(spec, args, this.direct) })
        const issued = spec.allKeys === true ? this.server.locks.whenAllFree(run) : this.server.locks.whenFree(commandKeys(spec, args).map(keyId), run)
        if (!isPromise(issued)) return issued.reply
        this.hold(issued)
        return issued.then((i) => i.reply)
      }
      case 'rmw': {
        const busy = this.writes.busy()
        if (busy !== undefined) return busy
        return this.holdUntilIssued((issued) => readModifyWrite(this.runner, spec, args, issued))
      }
      case 'tx':
        return this.transactionCommand(spec, args)
      case 'conn':
        return this.runner.run(spec, args, this.direct)
    }
  }

  /** Makes later commands wait until `p` settles. */
  private hold<T>(p: Promise<T>): Promise<T> {
    this.barrier = true
    const release = (): void => {
      this.barrier = false
      if (!this.closed) queueMicrotask(() => this.maybeResumeAfterBarrier())
    }
    p.then(release, release)
    return p
  }

  private maybeResumeAfterBarrier(): void {
    if (this.barrier || this.closed) return
    if (this.closing) {
      this.maybeEnd()
      return
    }
    this.pump()
  }

  /**
   * Runs `body`, holding later commands back until it calls `issued()` (its
   * write is queued in the engine, so anything issued later is ordered after
   * it) or finishes. Resolves with its reply.
   */
  private holdUntilIssued(body: (issued: () => void) => Promise<Reply>): Promise<Reply> {
    let markIssued!: () => void
    const issued = new Promise<void>((resolve) => (markIssued = resolve))
    const reply = body(markIssued)
    reply.then(markIssued, markIssued)
    this.hold(issued)
    return reply
  }

  // ---- MULTI / EXEC / WATCH, QUIT, RESET -------------------------------------------

  private transactionCommand(spec: CommandSpec, args: Buffer[]): MaybePromise<Reply> {
    switch (spec.name) {
      case 'multi':
        return this.tx.begin()
      case 'discard':
        return this.tx.discard()
      case 'unwatch':
        return this.tx.unwatch()
      case 'watch': {
        const watching = this.tx.watch(this.server.db, args.slice(1))
        return watching instanceof ErrorReply ? watching : this.hold(watching)
      }
      case 'exec': {
        const unit = this.tx.end()
        if (unit instanceof ErrorReply) return unit
        return this.holdUntilIssued((issued) => exec(this.runner, unit, issued))
      }
      case 'quit':
        this.closing = true
        return OK
      case 'reset':
        this.tx.reset()
        this.protocol = 2
        this.name = null
        this.authenticated = this.server.auth === undefined
        return new SimpleString('RESET')
      default:
        return err(`unexpected command ${spec.name}`)
    }
  }

  // ---- output ------------------------------------------------------------------

  /** Queues a reply in command order; `spec` and `started` are for the command's metrics. */
  private pushReply(reply: MaybePromise<Reply> | PendingReply, spec: CommandSpec | undefined, started: number): void {
    this.replies.push(reply, this.protocol, spec, started, this.clock)
  }

  /** The reply queue's flush: sends what is encoded, then ends the socket or takes more commands. */
  private flush(): void {
    if (this.closed) return
    if (!this.checkOutput()) return
    this.replies.writeOut()
    this.maybeEnd()
    this.maybeResume()
    this.accountMemory()
  }

  /** Ends the socket once closing and every reply has been written. */
  private maybeEnd(): void {
    if (!this.closing || this.closed || this.barrier) return
    if (this.replies.pending > 0 || this.replies.size > 0) {
      this.replies.scheduleFlush()
      return
    }
    this.finish()
  }

  /** Ends the socket and destroys it once the client closed its side or after CLOSE_LINGER_MS (see the file comment). */
  private finish(): void {
    if (this.ended) return
    this.ended = true
    const socket = this.socket
    if (!socket.writable) {
      socket.destroy()
      return
    }
    socket.end(() => {
      // Everything is written: give the client a moment to close its side, then close.
      const linger = setTimeout(() => socket.destroy(), CLOSE_LINGER_MS)
      linger.unref()
      socket.once('close', () => clearTimeout(linger))
    })
    // Read and drop what the client still sends (the 'data' handler ignores it), so it is not blocked.
    this.inputPaused = false
    socket.resume()
  }
}

/** At most one log line per minute about HTTP requests on the RESP port (an attack could flood the log). */
let crossProtocolLoggedAtMs = -Infinity
let crossProtocolSuppressed = 0
function logCrossProtocol(server: RespContext, from: string): void {
  const now = performance.now()
  if (now - crossProtocolLoggedAtMs < 60_000) {
    crossProtocolSuppressed++
    return
  }
  const more = crossProtocolSuppressed > 0 ? ` (and ${crossProtocolSuppressed} more since the last report)` : ''
  server.log(`RESP: HTTP request on the RESP port from ${from}, connection closed${more}`)
  crossProtocolLoggedAtMs = now
  crossProtocolSuppressed = 0
}
