/**
 * The RESP (Redis protocol) listener: accepts connections up to
 * `maxConnections` (beyond that, an error reply and close, as Redis), and
 * shuts down gracefully: stop accepting, let every connection answer the
 * commands it already took, close. A periodic sweep closes idle
 * connections and those over the soft output buffer limit
 * (RespConnection.sweep). Client eviction (`maxMemoryClientsBytes`, Redis'
 * `maxmemory-clients`): when the memory all connections hold goes over the
 * budget, the connections holding the most are closed until it is back
 * under (evictClients; the running total is in client-memory.ts).
 */
import * as net from 'node:net'
import type { RespContext } from './context.js'
import type { ListenAddress } from '../shared/address.js'
import { RespConnection } from './connection.js'

/** A listening RESP server. */
export class RespServer {
  private readonly server: net.Server
  private readonly connections = new Set<RespConnection>()
  private readonly sockets = new Set<net.Socket>()
  private readonly sweeper: NodeJS.Timeout | undefined

  constructor(private readonly ctx: RespContext) {
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket))
    this.server.on('error', (e) => ctx.log(`RESP listener error: ${e.message}`))
    const o = ctx.options
    // Often enough for the shortest deadline to be kept within about a quarter of it (at most every second).
    const deadlines = [o.respIdleTimeoutMs, ctx.auth === undefined ? 0 : o.respAuthTimeoutMs, o.limits.outputSoftLimitBytes > 0 ? o.limits.outputSoftLimitMs : 0].filter((ms) => ms > 0)
    const every = Math.max(10, Math.min(1000, ...deadlines.map((ms) => Math.floor(ms / 4))))
    this.sweeper = setInterval(() => this.sweep(), every)
    this.sweeper.unref()
    ctx.clientMemory.evictor = () => this.evictClients()
  }

  /**
   * Over the client memory budget: re-measures every connection (the total
   * may be stale, e.g. output the kernel took without a 'drain'), then closes
   * the connections holding the most, largest first, until the total is
   * under the budget. Runs only when the total went over it, never per
   * command. One log line per run.
   */
  private evictClients(): void {
    const mem = this.ctx.clientMemory
    for (const c of this.connections) c.accountMemory()
    if (mem.budget <= 0 || mem.used <= mem.budget) return
    const before = mem.used
    const holders = [...this.connections].filter((c) => c.memoryBytes > 0).sort((a, b) => b.memoryBytes - a.memoryBytes)
    let evicted = 0
    let largest = 0
    for (const c of holders) {
      if (mem.used <= mem.budget) break
      largest = Math.max(largest, c.memoryBytes)
      c.evict()
      evicted++
    }
    mem.evicted += evicted
    if (evicted > 0) {
      this.ctx.log(`RESP: evicted ${evicted} client${evicted === 1 ? '' : 's'} (the largest held ${largest} bytes): client memory ${before} bytes over maxmemory-clients (${mem.budget}), now ${mem.used}`)
    }
  }

  private sweep(): void {
    const now = performance.now()
    for (const c of this.connections) {
      if (c.sweep(now) === 'output') {
        const l = this.ctx.options.limits
        this.ctx.log(`RESP: closed ${c.remoteAddress}: unsent output over the soft limit (${l.outputSoftLimitBytes} bytes) for ${l.outputSoftLimitMs} ms (a client that does not read)`)
      }
    }
  }

  /** Open client connections. */
  get connectionCount(): number {
    return this.connections.size
  }

  /** Starts listening; resolves with the bound address (port 0 gets an ephemeral port). */
  listen(address: ListenAddress): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(new Error(`cannot listen for RESP on ${address.host}:${address.port}: ${e.message}`))
      this.server.once('error', onError)
      this.server.listen({ host: address.host, port: address.port, backlog: 511 }, () => {
        this.server.off('error', onError)
        resolve(this.server.address() as net.AddressInfo)
      })
    })
  }

  /**
   * Stops accepting, asks every connection to finish the commands it took and
   * close; after `timeoutMs` closes the rest. Resolves when all are closed.
   */
  async close(timeoutMs: number): Promise<void> {
    clearInterval(this.sweeper)
    const listenerClosed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const c of this.connections) c.shutdown()
    const deadline = setTimeout(() => {
      for (const c of this.connections) c.destroy()
      for (const s of this.sockets) s.destroy()
    }, timeoutMs)
    deadline.unref()
    while (this.sockets.size > 0) await new Promise((r) => setTimeout(r, 10))
    clearTimeout(deadline)
    await listenerClosed
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket)
    socket.on('close', () => this.sockets.delete(socket))
    if (this.ctx.shuttingDown) {
      socket.destroy()
      return
    }
    if (this.connections.size >= this.ctx.options.limits.maxConnections) {
      this.ctx.metrics.connectionRejected('resp')
      socket.on('error', () => socket.destroy())
      socket.end('-ERR max number of clients reached\r\n')
      setTimeout(() => socket.destroy(), 1000).unref()
      return
    }
    const conn = new RespConnection(socket, this.ctx, (c) => this.connections.delete(c))
    this.connections.add(conn)
  }
}
