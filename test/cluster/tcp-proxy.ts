/**
 * A loopback TCP proxy for injecting faults on one link (a replication peer
 * link, or a client's link to etcd): `startProxy(host, port)` listens on
 * 127.0.0.1 and forwards every accepted connection to host:port. The mode can
 * be switched at any time and applies to the connections already open too:
 *
 * - `'pass'`: forward both ways.
 * - `'blackhole'`: a partition. Bytes are still read from both sides but
 *   forwarded in neither direction, so open connections stall (no error, no
 *   FIN: only the endpoints' own timeouts notice). A connection accepted
 *   while blackholed is not connected upstream until the link heals. Held
 *   bytes are delivered, in order, once the mode allows it again (as TCP
 *   retransmission would after a partition heals), so a stream is never
 *   corrupted; past `holdLimit` bytes held per direction the proxy stops
 *   reading that side (like a full TCP window).
 * - `'reset'`: every open connection is destroyed with a TCP RST on both
 *   sides, and new ones are accepted and reset at once.
 * - `delay(ms)` (`{ delay: ms }`): each chunk is forwarded `ms` after it was
 *   read (order kept; chunks held by an earlier blackhole go out as soon as
 *   they are `ms` old).
 */
import * as net from 'node:net'

export type ProxyMode = 'pass' | 'blackhole' | 'reset' | { delay: number }

/** The `delay(ms)` mode. */
export function delay(ms: number): ProxyMode {
  if (!(ms >= 0)) throw new RangeError(`delay must be >= 0, got ${ms}`)
  return { delay: ms }
}

export interface ProxyOptions {
  /** Bytes held per direction (blackhole, delay) before reading from that side pauses. Default 1 MiB. */
  holdLimit?: number
  /** Initial mode (default 'pass'). */
  mode?: ProxyMode
}

export interface TcpProxy {
  /** The port the proxy listens on, on 127.0.0.1. */
  port: number
  /** `127.0.0.1:<port>`. */
  address: string
  mode(): ProxyMode
  setMode(mode: ProxyMode): void
  /** Connections currently open through the proxy. */
  connections(): number
  /** Connections accepted so far. */
  accepted(): number
  /** Stops listening and destroys every connection. */
  close(): Promise<void>
}

const END = Symbol('end')

interface Held {
  data: Buffer | typeof END
  at: number
}

/** One direction of one connection: reads `src`, writes `dst` (when there is one). */
class Direction {
  private readonly queue: Held[] = []
  private heldBytes = 0
  private timer: NodeJS.Timeout | null = null
  private blocked = false // dst.write returned false: wait for 'drain'
  private ended = false

  private dst: net.Socket | null = null

  constructor(
    private readonly src: net.Socket,
    private readonly proxy: Proxy,
  ) {
    src.on('data', (chunk: Buffer) => {
      this.queue.push({ data: chunk, at: performance.now() })
      this.heldBytes += chunk.length
      if (this.heldBytes > this.proxy.holdLimit) src.pause()
      this.pump()
    })
    src.on('end', () => {
      this.queue.push({ data: END, at: performance.now() })
      this.pump()
    })
  }

  attach(dst: net.Socket): void {
    this.dst = dst
    dst.on('drain', () => {
      this.blocked = false
      this.pump()
    })
    this.pump()
  }

  /** Forwards what the current mode lets through now, and sets a timer for the rest. */
  pump(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer)
      this.timer = null
    }
    const dst = this.dst
    const mode = this.proxy.currentMode
    if (dst === null || dst.destroyed || mode === 'blackhole' || mode === 'reset') return
    const wait = mode === 'pass' ? 0 : mode.delay
    while (this.queue.length > 0 && !this.blocked) {
      const head = this.queue[0] as Held
      const due = head.at + wait
      const now = performance.now()
      if (due > now) {
        this.timer = setTimeout(() => this.pump(), Math.ceil(due - now))
        break
      }
      this.queue.shift()
      if (head.data === END) {
        this.ended = true
        dst.end()
        continue
      }
      this.heldBytes -= head.data.length
      if (!dst.write(head.data)) this.blocked = true
    }
    if (this.heldBytes <= this.proxy.holdLimit && this.src.isPaused() && !this.ended) this.src.resume()
  }

  dispose(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.queue.length = 0
  }
}

/** Closes a socket with a TCP RST. */
function rst(s: net.Socket): void {
  if (s.destroyed) return
  try {
    s.resetAndDestroy()
  } catch {
    s.destroy()
  }
}

class Conn {
  upstream: net.Socket | null = null
  private readonly toUpstream: Direction
  private toClient: Direction | null = null
  private closed = false

  constructor(
    readonly client: net.Socket,
    private readonly proxy: Proxy,
  ) {
    client.setNoDelay(true)
    this.toUpstream = new Direction(client, proxy)
    client.on('error', () => undefined) // handled on 'close'
    client.on('close', () => this.afterClose(client))
    if (proxy.currentMode !== 'blackhole') this.connectUpstream()
  }

  connectUpstream(): void {
    if (this.upstream !== null || this.closed) return
    const up = net.connect({ host: this.proxy.targetHost, port: this.proxy.targetPort, allowHalfOpen: true })
    this.upstream = up
    up.setNoDelay(true)
    up.on('error', () => undefined) // refused or reset: handled on 'close'
    up.on('close', () => this.afterClose(up))
    up.once('connect', () => {
      this.toClient = new Direction(up, this.proxy)
      this.toClient.attach(this.client)
      this.toUpstream.attach(up)
    })
  }

  /**
   * A socket closed. A clean close had its FIN queued and forwarded like data; an abrupt one (error, RST,
   * refused) resets the other side, once the link is up (during a partition the other side learns nothing).
   */
  private afterClose(which: net.Socket): void {
    const other = which === this.client ? this.upstream : this.client
    if (other === null || other.destroyed) {
      this.destroy()
      return
    }
    if (this.proxy.currentMode === 'blackhole') return
    if (which.errored !== null || !which.readableEnded) this.reset()
  }

  modeChanged(): void {
    if (this.closed) return
    const mode = this.proxy.currentMode
    if (mode === 'reset') {
      this.reset()
      return
    }
    if (mode !== 'blackhole') {
      if (this.client.destroyed && (this.upstream?.destroyed ?? true)) {
        this.destroy()
        return
      }
      // A side that failed while the link was down: reset the other now.
      for (const s of [this.client, this.upstream]) {
        if (s !== null && s.destroyed && (s.errored !== null || !s.readableEnded)) {
          this.reset()
          return
        }
      }
      if (this.upstream === null) this.connectUpstream()
    }
    this.toUpstream.pump()
    this.toClient?.pump()
  }

  /** RST both sides. */
  reset(): void {
    if (this.closed) return
    for (const s of [this.client, this.upstream]) if (s !== null) rst(s)
    this.destroy()
  }

  destroy(): void {
    if (this.closed) return
    this.closed = true
    this.toUpstream.dispose()
    this.toClient?.dispose()
    this.client.destroy()
    this.upstream?.destroy()
    this.proxy.conns.delete(this)
  }
}

class Proxy implements TcpProxy {
  port = 0
  address = ''
  currentMode: ProxyMode
  readonly holdLimit: number
  readonly conns = new Set<Conn>()
  private acceptedCount = 0
  readonly server: net.Server

  constructor(
    readonly targetHost: string,
    readonly targetPort: number,
    options: ProxyOptions,
  ) {
    this.currentMode = options.mode ?? 'pass'
    this.holdLimit = options.holdLimit ?? 1024 * 1024
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket))
  }

  private accept(socket: net.Socket): void {
    this.acceptedCount++
    if (this.currentMode === 'reset') {
      socket.on('error', () => undefined)
      rst(socket)
      return
    }
    this.conns.add(new Conn(socket, this))
  }

  mode(): ProxyMode {
    return this.currentMode
  }

  setMode(mode: ProxyMode): void {
    if (typeof mode === 'object') delay(mode.delay) // validates
    else if (mode !== 'pass' && mode !== 'blackhole' && mode !== 'reset') throw new TypeError(`unknown proxy mode ${String(mode)}`)
    this.currentMode = typeof mode === 'object' ? { delay: mode.delay } : mode
    for (const c of [...this.conns]) c.modeChanged()
  }

  connections(): number {
    return this.conns.size
  }

  accepted(): number {
    return this.acceptedCount
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const c of [...this.conns]) c.destroy()
    await closed
  }
}

/** Starts a proxy on 127.0.0.1 (a free port) to targetHost:targetPort. */
export async function startProxy(targetHost: string, targetPort: number, options: ProxyOptions = {}): Promise<TcpProxy> {
  const proxy = new Proxy(targetHost, targetPort, options)
  await new Promise<void>((resolve, reject) => {
    proxy.server.once('error', reject)
    proxy.server.listen(0, '127.0.0.1', () => {
      proxy.server.off('error', reject)
      resolve()
    })
  })
  proxy.port = (proxy.server.address() as net.AddressInfo).port
  proxy.address = `127.0.0.1:${proxy.port}`
  return proxy
}
