/**
 * The follower's end of the peer protocol: a TCP server that hands each
 * request to a handler and writes back its reply.
 *
 * Per connection, requests are handed to the handler in arrival order, each
 * as soon as it is decoded, WITHOUT waiting for the previous one's reply: the
 * leader pipelines appends, and the handler (the follower's log) relies on
 * seeing them in order to append them in order. Replies are written in
 * request order (the client matches them FIFO): a reply that is ready early
 * is held until every earlier one has been written.
 *
 * A handler that throws or rejects answers `{ type: 'error', code, message }`
 * (code: the error's string `code`, else 'internal'); the connection stays
 * up. A connection that sends a damaged frame, a malformed message or a reply
 * type is closed: nothing after it can be trusted.
 *
 * No backpressure on replies: they are small (bounded by the requests) except
 * `fetched`, whose size the request's maxBytes bounds.
 */
import * as net from 'node:net'
import { initChecksum } from '../../base/checksum.js'
import { DEFAULT_MAX_FRAME_BYTES, FrameReader } from './frame-reader.js'
import { decodeMessage, frameMessage, isPeerReply, isPeerRequest, type PeerReply, type PeerRequest } from './messages.js'
import { withAddress } from './peer-error.js'

/** The connection a request came on: `remote` is `host:port`; `id` is unique within the server. */
export interface PeerConnectionInfo {
  readonly remote: string
  readonly id: number
}

export type PeerHandler = (request: PeerRequest, connection: PeerConnectionInfo) => Promise<PeerReply> | PeerReply

export interface PeerServerOptions {
  handler: PeerHandler
  /** Largest frame payload accepted; a larger one closes the connection. Default 256 MiB. */
  maxFrameBytes?: number
  /** Diagnostics (connections closed for a reason, handler failures). */
  log?: (line: string) => void
  onConnectionClosed?: (connection: PeerConnectionInfo) => void
}

export class PeerServer {
  private readonly server: net.Server
  private readonly connections = new Set<PeerConnection>()
  private readonly maxFrameBytes: number
  private nextId = 1

  constructor(private readonly options: PeerServerOptions) {
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    new FrameReader(this.maxFrameBytes) // validates the limit now rather than on the first connection
    this.server = net.createServer((socket) => this.accept(socket))
  }

  /** Starts listening (port 0: any free port); returns the address bound. */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    await initChecksum()
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    const address = this.server.address() as net.AddressInfo
    return { host: address.address, port: address.port }
  }

  /**
   * Stops listening and destroys every open connection (their pending
   * replies are dropped). Resolves once every connection's close was seen
   * (`onConnectionClosed` called, `connectionCount` 0): net.Server's own
   * close callback can come before its sockets' 'close' events.
   */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    await Promise.all([...this.connections].map((c) => c.destroy()))
    await closed
  }

  get connectionCount(): number {
    return this.connections.size
  }

  private accept(socket: net.Socket): void {
    const info: PeerConnectionInfo = Object.freeze({ remote: `${socket.remoteAddress}:${socket.remotePort}`, id: this.nextId++ })
    const connection = new PeerConnection(socket, info, this.options, this.maxFrameBytes, () => {
      this.connections.delete(connection)
      this.options.onConnectionClosed?.(info)
    })
    this.connections.add(connection)
  }
}

/** A reply slot: filled with the framed reply once the handler settles. */
interface Slot {
  frame: Buffer | null
}

/** One accepted connection: decodes requests, runs the handler, writes replies in order. */
class PeerConnection {
  private readonly reader: FrameReader
  /** Replies not yet written, in request order; `head` indexes the oldest (no O(n) shift per reply). */
  private slots: Slot[] = []
  private head = 0
  private closed = false
  private readonly socketClosed: Promise<void>

  constructor(
    private readonly socket: net.Socket,
    private readonly info: PeerConnectionInfo,
    private readonly options: PeerServerOptions,
    maxFrameBytes: number,
    private readonly onClosed: () => void,
  ) {
    this.reader = new FrameReader(maxFrameBytes)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.received(chunk))
    socket.on('error', (err) => this.log(`connection error: ${err.message}`))
    this.socketClosed = new Promise<void>((resolve) => {
      socket.on('close', () => {
        this.closed = true
        this.slots = []
        this.onClosed()
        resolve()
      })
    })
  }

  /** Destroys the socket; resolves after its 'close' was handled. */
  destroy(): Promise<void> {
    this.closed = true
    this.socket.destroy()
    return this.socketClosed
  }

  private received(chunk: Buffer): void {
    if (this.closed) return
    let requests: PeerRequest[]
    try {
      requests = this.reader.push(chunk).map((payload) => {
        const m = decodeMessage(payload)
        if (!isPeerRequest(m)) throw withAddress(new Error(`a '${m.type}' reply sent as a request`), this.info.remote)
        return m
      })
    } catch (err) {
      // Requests decoded before the bad frame are dropped too: the connection is going away.
      this.log(`closing: ${withAddress(err, this.info.remote).message}`)
      void this.destroy()
      return
    }
    for (const request of requests) this.dispatch(request)
  }

  /** Calls the handler now (in arrival order) and queues its reply behind the earlier ones. */
  private dispatch(request: PeerRequest): void {
    const slot: Slot = { frame: null }
    this.slots.push(slot)
    let result: Promise<PeerReply> | PeerReply
    try {
      result = this.options.handler(request, this.info)
    } catch (err) {
      result = Promise.reject(err)
    }
    Promise.resolve(result).then(
      (reply) => this.settle(slot, request, reply),
      (err: unknown) => this.settle(slot, request, errorReply(err)),
    )
  }

  private settle(slot: Slot, request: PeerRequest, reply: PeerReply): void {
    if (this.closed) return
    slot.frame = this.frame(request, reply)
    this.flush()
  }

  /** The reply framed; a reply the codec refuses (wrong type, bad field) becomes an 'error' reply, and is logged. */
  private frame(request: PeerRequest, reply: PeerReply): Buffer {
    let problem: string
    try {
      if (typeof reply === 'object' && reply !== null && isPeerReply(reply)) return frameMessage(reply)
      problem = `handler answered '${request.type}' with a non-reply ${JSON.stringify((reply as { type?: unknown } | null)?.type)}`
    } catch (err) {
      problem = `handler's reply to '${request.type}' cannot be encoded: ${err instanceof Error ? err.message : String(err)}`
    }
    this.log(problem)
    return frameMessage({ type: 'error', code: 'internal', message: problem })
  }

  /** Writes every reply that is ready and has no unwritten reply before it. */
  private flush(): void {
    while (this.head < this.slots.length) {
      const slot = this.slots[this.head] as Slot
      if (slot.frame === null) break
      this.socket.write(slot.frame)
      slot.frame = null
      this.head++
    }
    if (this.head === this.slots.length) {
      this.slots = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.slots.length) {
      this.slots = this.slots.slice(this.head)
      this.head = 0
    }
  }

  private log(line: string): void {
    this.options.log?.(`peer server, connection ${this.info.id} from ${this.info.remote}: ${line}`)
  }
}

/** The reply for a handler that threw or rejected. */
function errorReply(err: unknown): PeerReply {
  const code = (err as { code?: unknown } | null)?.code
  return {
    type: 'error',
    code: typeof code === 'string' ? code : 'internal',
    message: err instanceof Error ? err.message : String(err),
  }
}
