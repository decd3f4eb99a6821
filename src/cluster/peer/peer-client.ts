/**
 * The leader's end of the peer protocol: one TCP connection to a follower,
 * requests pipelined over it, replies matched to requests first-in first-out
 * (the server answers in request order; nothing on the wire names a request).
 *
 * Because matching is by position, any doubt about the stream ends the
 * connection: a request that times out (its reply may still come and would
 * be taken for the next request's), a damaged frame, a reply nobody asked
 * for or a message of a request type. Every pending request is then rejected
 * (the timed-out one with 'timeout', the others with 'closed'; on a protocol
 * fault all with 'protocol'), `onClose` is called once, and the client stays
 * closed: the caller connects again. The same happens when the socket errors
 * or the server closes it ('closed').
 *
 * Writes are not held back: a caller pipelining large appends should bound
 * what it has in flight itself (`pending`).
 */
import * as net from 'node:net'
import { initChecksum } from '../../base/checksum.js'
import { DEFAULT_MAX_FRAME_BYTES, FrameReader } from './frame-reader.js'
import { decodeMessage, frameMessage, isPeerReply, isPeerRequest, type PeerReply, type PeerRequest } from './messages.js'
import { PeerError, withAddress } from './peer-error.js'

export interface PeerClientOptions {
  /** Give up connecting after this long (PeerError 'connect'). Default 1000. */
  connectTimeoutMs?: number
  /** Largest reply payload accepted; a larger one closes the connection. Default 256 MiB. */
  maxFrameBytes?: number
}

export interface PeerRequestOptions {
  /** Reject with PeerError 'timeout' (and close the connection) when no reply came in this long. Default 2000. */
  timeoutMs?: number
}

const DEFAULT_CONNECT_TIMEOUT_MS = 1000
const DEFAULT_REQUEST_TIMEOUT_MS = 2000

interface Pending {
  resolve: (reply: PeerReply) => void
  reject: (err: PeerError) => void
  timer: NodeJS.Timeout
}

export class PeerClient {
  /** Called once when the connection closes for any reason other than `close()`, with that reason. */
  onClose: ((err: PeerError) => void) | undefined = undefined

  private readonly reader: FrameReader
  /** Requests awaiting a reply, oldest at `head` (no O(n) shift per reply). */
  private queue: Pending[] = []
  private head = 0
  private closedBy: PeerError | null = null

  private constructor(
    private readonly socket: net.Socket,
    /** `host:port`, for error messages. */
    readonly address: string,
    maxFrameBytes: number,
  ) {
    this.reader = new FrameReader(maxFrameBytes)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.received(chunk))
    socket.on('error', (err) => this.shutDown(new PeerError('closed', `connection failed: ${err.message}`, { address, cause: err })))
    socket.on('end', () => this.shutDown(new PeerError('closed', 'connection closed by the peer', { address })))
    socket.on('close', () => this.shutDown(new PeerError('closed', 'connection closed', { address })))
  }

  /** Connects to a peer server. Rejects with PeerError 'connect' when refused, unreachable or slower than connectTimeoutMs. */
  static async connect(address: { host: string; port: number }, options: PeerClientOptions = {}): Promise<PeerClient> {
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    new FrameReader(maxFrameBytes) // validates the limit before any socket exists
    const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS
    const name = `${address.host}:${address.port}`
    await initChecksum()
    return new Promise<PeerClient>((resolve, reject) => {
      const s = net.connect({ host: address.host, port: address.port })
      const timer = setTimeout(() => {
        s.destroy()
        reject(new PeerError('connect', `no connection within ${connectTimeoutMs} ms`, { address: name }))
      }, connectTimeoutMs)
      s.once('error', (err) => {
        clearTimeout(timer)
        reject(new PeerError('connect', `cannot connect: ${err.message}`, { address: name, cause: err }))
      })
      s.once('connect', () => {
        clearTimeout(timer)
        s.removeAllListeners('error')
        resolve(new PeerClient(s, name, maxFrameBytes))
      })
    })
  }

  /**
   * Sends `request` and resolves with its reply. Rejects with PeerError
   * 'timeout' (the connection is then closed), 'closed' or 'protocol' (see
   * the file's comment), and with TypeError on a message that is not a valid
   * request (the connection stays up).
   */
  request(request: PeerRequest, options: PeerRequestOptions = {}): Promise<PeerReply> {
    if (this.closedBy !== null) return Promise.reject(new PeerError('closed', `connection is closed (${this.closedBy.message})`, { address: this.address }))
    let frame: Buffer
    try {
      if (!isPeerRequest(request)) throw new TypeError(`not a peer request type: ${JSON.stringify((request as { type?: unknown }).type)}`)
      frame = frameMessage(request)
    } catch (err) {
      return Promise.reject(err)
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
    return new Promise<PeerReply>((resolve, reject) => {
      const pending: Pending = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.shutDown(new PeerError('timeout', `no reply to '${request.type}' within ${timeoutMs} ms`, { address: this.address }), pending)
        }, timeoutMs),
      }
      this.queue.push(pending)
      this.socket.write(frame)
    })
  }

  /** Closes the connection; pending requests are rejected with 'closed'. `onClose` is not called. */
  close(): void {
    this.onClose = undefined
    this.shutDown(new PeerError('closed', 'connection closed by this side', { address: this.address }))
  }

  get isOpen(): boolean {
    return this.closedBy === null
  }

  /** Requests sent and not yet answered. */
  get pending(): number {
    return this.queue.length - this.head
  }

  private received(chunk: Buffer): void {
    if (this.closedBy !== null) return
    try {
      for (const payload of this.reader.push(chunk)) {
        const m = decodeMessage(payload)
        if (!isPeerReply(m)) throw new PeerError('protocol', `a '${m.type}' request received as a reply`)
        const pending = this.queue[this.head]
        if (pending === undefined) throw new PeerError('protocol', `a '${m.type}' reply to no request`)
        this.queue[this.head++] = undefined as unknown as Pending // release it
        if (this.head === this.queue.length) {
          this.queue = []
          this.head = 0
        } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue = this.queue.slice(this.head)
          this.head = 0
        }
        clearTimeout(pending.timer)
        pending.resolve(m)
      }
    } catch (err) {
      this.shutDown(withAddress(err, this.address))
    }
  }

  /**
   * Closes for good (once): destroys the socket and rejects every pending
   * request, `culprit` (the request that timed out) with `reason` and the
   * others with 'closed' unless the reason is a protocol fault.
   */
  private shutDown(reason: PeerError, culprit?: Pending): void {
    if (this.closedBy !== null) return
    this.closedBy = reason
    this.socket.destroy()
    const pending = this.queue.slice(this.head)
    this.queue = []
    this.head = 0
    const others = reason.code === 'timeout' ? new PeerError('closed', 'connection closed because a request timed out', { address: this.address, cause: reason }) : reason
    for (const p of pending) {
      clearTimeout(p.timer)
      p.reject(p === culprit ? reason : others)
    }
    const onClose = this.onClose
    this.onClose = undefined
    onClose?.(reason)
  }
}
