/**
 * The HTTP listener around `HttpApi`: Node's HTTP/1.1 server with the
 * configured limits (head size → 431, connections → 503, timeouts → 408),
 * JSON answers to malformed requests, `Expect: 100-continue` refused early
 * for oversized bodies (or a refused Host/Origin), a send deadline for
 * responses whose client stops reading, and graceful shutdown.
 */
import * as http from 'node:http'
import type * as net from 'node:net'
import type { ListenAddress } from '../shared/address.js'
import type { ServerContext } from '../shared/context.js'
import { HttpError } from '../shared/errors.js'
import { declaredLength } from './body.js'
import { HttpApi, bodyLimitOf, routeOf } from './api.js'

const REJECTED = Symbol('strata.rejected')
const QUEUE = Symbol('strata.requestQueue')

/** Requests of one connection, handled one after the other (pipelining). */
interface RequestQueue {
  pending: number
  tail: Promise<void>
}

/** A listening HTTP server. */
export class HttpServer {
  private readonly server: http.Server
  private readonly api: HttpApi
  private readonly sockets = new Set<net.Socket>()
  private accepted = 0
  /** Connections over maxConnections still open to be answered 503. */
  private rejectedOpen = 0

  constructor(private readonly ctx: ServerContext) {
    this.api = new HttpApi(ctx)
    const o = ctx.options
    this.server = http.createServer({
      maxHeaderSize: o.limits.maxHeaderBytes,
      headersTimeout: o.headersTimeoutMs,
      requestTimeout: o.requestTimeoutMs,
      keepAliveTimeout: o.httpIdleTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(o.headersTimeoutMs / 4))),
      noDelay: true,
      requireHostHeader: false,
    })
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.request(req, res))
    this.server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => this.checkContinue(req, res))
    this.server.on('clientError', (e: NodeJS.ErrnoException, socket: net.Socket) => this.clientError(e, socket))
    this.server.on('connection', (socket: net.Socket) => this.connection(socket))
    this.server.on('error', (e) => ctx.log(`HTTP listener error: ${e.message}`))
  }

  /** Open connections (rejected ones included until they close). */
  get connectionCount(): number {
    return this.accepted
  }

  /** Starts listening; resolves with the bound address. */
  listen(address: ListenAddress): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(new Error(`cannot listen for HTTP on ${address.host}:${address.port}: ${e.message}`))
      this.server.once('error', onError)
      this.server.listen({ host: address.host, port: address.port, backlog: 511 }, () => {
        this.server.off('error', onError)
        const bound = this.server.address() as net.AddressInfo
        this.api.policy.setBoundAddress(bound.address)
        resolve(bound)
      })
    })
  }

  /**
   * Stops accepting; requests in progress finish (their responses close the
   * connection), idle keep-alive connections close; after `timeoutMs` every
   * connection is closed. Resolves when none is left.
   */
  async close(timeoutMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    const deadline = performance.now() + timeoutMs
    while (this.sockets.size > 0) {
      this.server.closeIdleConnections()
      if (performance.now() > deadline) {
        this.server.closeAllConnections()
        for (const s of this.sockets) s.destroy()
      }
      await new Promise((r) => setTimeout(r, 20))
    }
    await closed
  }

  private connection(socket: net.Socket): void {
    this.sockets.add(socket)
    socket.once('close', () => {
      this.sockets.delete(socket)
      if (!(socket as unknown as Record<symbol, boolean>)[REJECTED]) this.accepted--
      else this.rejectedOpen--
    })
    if (this.accepted >= this.ctx.options.limits.maxConnections) {
      // Answered with 503 on its first request, then closed; never kept long.
      ;(socket as unknown as Record<symbol, boolean>)[REJECTED] = true
      this.rejectedOpen++
      this.ctx.metrics.connectionRejected('http')
      // A flood of connections is not answered one by one: beyond as many again, close at once.
      if (this.rejectedOpen > this.ctx.options.limits.maxConnections) socket.destroy()
      else setTimeout(() => socket.destroy(), 2000).unref()
      return
    }
    this.accepted++
  }

  private request(req: http.IncomingMessage, res: http.ServerResponse): void {
    if ((req.socket as unknown as Record<symbol, boolean>)[REJECTED]) {
      this.api.fail(req, res, new HttpError(503, 'STRATA_TOO_MANY_CONNECTIONS', `too many connections (maxConnections ${this.ctx.options.limits.maxConnections})`, undefined, { Connection: 'close', 'Retry-After': '1' }))
      return
    }
    if (this.ctx.shuttingDown) res.shouldKeepAlive = false
    // Node hands over pipelined requests of a connection as soon as they are parsed. HTTP
    // allows parallel handling only of safe methods, and a GET pipelined after a PUT must
    // see it: run them one after the other (responses go out in order anyway).
    const socket = req.socket as unknown as Record<symbol, RequestQueue | undefined>
    const queue = (socket[QUEUE] ??= { pending: 0, tail: Promise.resolve() })
    const finished = new Promise<void>((resolve) => {
      res.once('finish', resolve)
      res.once('close', resolve)
    })
    void finished.then(() => queue.pending--)
    const run = (): Promise<void> => {
      this.api
        .handle(req, res)
        .catch((e: unknown) => this.api.fail(req, res, e))
        .then(() => this.sendDeadline(res))
      return finished
    }
    if (queue.pending++ === 0) queue.tail = run()
    else queue.tail = queue.tail.then(run)
  }

  /**
   * A response the handler has ended but the client has not taken (a large
   * value it does not read) is destroyed after sendTimeoutMs. Range streams
   * apply the same deadline to each wait for the socket (range.ts).
   */
  private sendDeadline(res: http.ServerResponse): void {
    const ms = this.ctx.options.sendTimeoutMs
    if (ms === 0 || res.writableFinished || res.destroyed) return
    const timer = setTimeout(() => res.destroy(), ms)
    const clear = (): void => clearTimeout(timer)
    res.once('finish', clear)
    res.once('close', clear)
  }

  private checkContinue(req: http.IncomingMessage, res: http.ServerResponse): void {
    // Refuse a foreign Host or Origin, or an oversized body, before the client sends the body.
    try {
      if (!(req.socket as unknown as Record<symbol, boolean>)[REJECTED]) this.api.policy.check(req)
      const path = (req.url ?? '/').split('?', 1)[0]
      const limit = bodyLimitOf(this.ctx, routeOf(path))
      const declared = declaredLength(req)
      if (limit > 0 && declared !== undefined && declared > limit) {
        throw new HttpError(413, 'STRATA_TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${limit} bytes`, { limitBytes: limit }, { Connection: 'close' })
      }
    } catch (e) {
      this.api.fail(req, res, e)
      return
    }
    res.writeContinue()
    this.request(req, res)
  }

  private clientError(e: NodeJS.ErrnoException, socket: net.Socket): void {
    this.ctx.metrics.protocolError('http')
    const busy = (socket as unknown as { _httpMessage?: unknown })._httpMessage
    if (e.code === 'ECONNRESET' || !socket.writable || busy) {
      socket.destroy()
      return
    }
    let status = 400
    let code = 'STRATA_BAD_REQUEST'
    let message = `malformed HTTP request (${e.code ?? e.message})`
    if (e.code === 'HPE_HEADER_OVERFLOW') {
      status = 431
      code = 'STRATA_HEADERS_TOO_LARGE'
      message = `request head larger than ${this.ctx.options.limits.maxHeaderBytes} bytes`
    } else if (e.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408
      code = 'STRATA_REQUEST_TIMEOUT'
      message = 'request not received in time'
    }
    const body = JSON.stringify({ code, message })
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
    setTimeout(() => socket.destroy(), 1000).unref()
  }
}
