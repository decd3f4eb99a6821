/**
 * The HTTP side of etcd's JSON gateway (etcd 3.4 serves grpc-gateway on its
 * client URL under /v3/): `POST <endpoint>/v3/<service>/<method>` with the
 * request message as JSON, the response message as JSON; gRPC errors come
 * back as a non-200 status with `{ error, message, code }` (code = the gRPC
 * status code).
 *
 * Server streams (watch) answer 200 with newline-delimited JSON, one
 * `{ "result": <message> }` per line, or `{ "error": { grpc_code, message, … } }`.
 * Over HTTP/1.1 the gateway sends nothing of a bidirectional stream back
 * until the request body has ended (measured on 3.4.23: keepalive requests
 * written 500 ms apart on one open body each renewed the lease when written,
 * but the response headers and all the answers came only after the body
 * ended), so every stream here sends one
 * request message and ends its body: a watch is one create request, a lease
 * keepalive is one unary exchange per renewal (lease.ts).
 *
 * Unary calls use Node's `fetch` (undici, pooled keep-alive connections);
 * streams use `node:http` on a connection of their own, because undici ends
 * a response body that is silent for 300 s (its default `bodyTimeout`),
 * which a watch on a quiet key is.
 *
 * Every call has a deadline (`timeoutMs`) and an optional AbortSignal; there
 * are no retries unless a call asks for them (`retries`), and no circuit
 * breaker: a call after a failure goes out at once. With several endpoints a
 * call moves to the next one when connecting fails (refused, unreachable:
 * nothing was sent, so nothing can have been applied), within the same
 * deadline; the endpoint that answered is used first from then on.
 */
import * as http from 'node:http'
import * as https from 'node:https'
import { EtcdError, fromGrpcStatus } from './errors.js'
import { asObject, protocolError } from './encoding.js'

export interface CallOptions {
  /** This call's deadline in ms, from the call to its answer (default: the client's `timeoutMs`). */
  timeoutMs?: number
  /** Cancels the call (EtcdError `canceled`). */
  signal?: AbortSignal
  /**
   * Further attempts after an `unavailable` failure that was not the deadline, inside the same
   * deadline (default 0: fail fast). Only for calls that are safe to repeat.
   */
  retries?: number
  /** Pause before a retry (default 50 ms). */
  retryDelayMs?: number
}

export interface GatewayOptions {
  /** `http://host:port` of etcd's client URLs; one or several. */
  endpoints: string | readonly string[]
  /** The default deadline of a call in ms (default 1000). */
  timeoutMs?: number
}

export type JsonObject = Record<string, unknown>

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL'])

/** Whether fetch failed before anything was sent (so another endpoint may be tried). */
function connectFailed(err: unknown): boolean {
  const own = (err as { code?: unknown } | null)?.code // node:http's errors carry the code themselves
  if (typeof own === 'string' && CONNECT_ERRORS.has(own)) return true
  const cause = (err as { cause?: unknown } | null)?.cause as { code?: unknown; errors?: unknown[] } | undefined
  if (cause === undefined || cause === null) return false
  if (typeof cause.code === 'string' && CONNECT_ERRORS.has(cause.code)) return true
  if (Array.isArray(cause.errors) && cause.errors.length > 0) return cause.errors.every((e) => CONNECT_ERRORS.has(String((e as { code?: unknown }).code)))
  return false
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const cause = (err as { cause?: unknown }).cause
  const causeText = cause instanceof Error ? `: ${(cause as NodeJS.ErrnoException).code ?? cause.message}` : ''
  const code = (err as NodeJS.ErrnoException).code
  return `${err.message}${causeText}${code !== undefined && !err.message.includes(code) ? ` (${code})` : ''}`
}

/** A call's deadline and cancellation as one AbortSignal. */
class CallScope {
  readonly controller = new AbortController()
  readonly startedAt = performance.now()
  private timer: NodeJS.Timeout | null
  private timedOut = false
  private canceled = false
  private readonly unlink: () => void

  constructor(
    readonly timeoutMs: number,
    signal: AbortSignal | undefined,
  ) {
    this.timer = setTimeout(() => {
      this.timedOut = true
      this.controller.abort()
    }, timeoutMs)
    const onAbort = () => {
      this.canceled = true
      this.controller.abort()
    }
    if (signal?.aborted === true) onAbort()
    signal?.addEventListener('abort', onAbort, { once: true })
    this.unlink = () => signal?.removeEventListener('abort', onAbort)
  }

  get signal(): AbortSignal {
    return this.controller.signal
  }

  remainingMs(): number {
    return this.timeoutMs - (performance.now() - this.startedAt)
  }

  /** Ends the deadline (the call is answered, or a stream is established); cancellation stays linked. */
  disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }

  dispose(): void {
    this.disarm()
    this.unlink()
  }

  /** Aborts without reason (a stream closed by its owner). */
  abort(): void {
    this.canceled = true
    this.controller.abort()
  }

  /** The error for a failure: the deadline's, the caller's cancellation, or the network's. */
  errorFor(err: unknown, endpoint: string, what: string): EtcdError {
    if (err instanceof EtcdError) return err
    if (this.timedOut) return new EtcdError('unavailable', `etcd ${what} at ${endpoint}: no answer within ${this.timeoutMs} ms`, { endpoint, timedOut: true, cause: err })
    if (this.canceled) return new EtcdError('canceled', `etcd ${what} at ${endpoint}: canceled`, { endpoint, cause: err })
    return new EtcdError('unavailable', `etcd ${what} at ${endpoint}: ${describe(err)}`, { endpoint, cause: err })
  }
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms)
    function done() {
      clearTimeout(t)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })

/** Parses the gateway's answer for a non-200 status. */
function errorFromBody(status: number, text: string, endpoint: string, path: string): EtcdError {
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown; error?: unknown }
    if (typeof body.code === 'number') return fromGrpcStatus(body.code, String(body.message ?? body.error ?? ''), { httpStatus: status, endpoint })
  } catch {
    // not JSON: below
  }
  const code = status === 404 ? 'unimplemented' : status === 503 ? 'unavailable' : status >= 500 ? 'internal' : 'invalid-argument'
  return new EtcdError(code, `etcd gateway ${path} at ${endpoint}: HTTP ${status} ${text.slice(0, 200)}`, { httpStatus: status, endpoint })
}

/** A line-delimited JSON answer of a server stream; `next()` gives each message's `result`. */
export class JsonStream {
  private readonly chunks: AsyncIterator<Buffer>
  private readonly decoder = new TextDecoder()
  private buffer = ''
  private first = true
  private closed = false

  constructor(
    private readonly response: http.IncomingMessage,
    private readonly request: http.ClientRequest,
    private readonly scope: CallScope,
    readonly endpoint: string,
    private readonly path: string,
  ) {
    this.chunks = response[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  }

  /**
   * The next message (`result` of the next line), or null once the owner closed the stream. Rejects
   * with `unavailable` when the stream breaks or ends without being closed, and with the status of
   * an `error` line. The first message is still under the call's deadline.
   */
  async next(): Promise<JsonObject | null> {
    for (;;) {
      const nl = this.buffer.indexOf('\n')
      if (nl >= 0) {
        const line = this.buffer.slice(0, nl).trim()
        this.buffer = this.buffer.slice(nl + 1)
        if (line === '') continue
        return this.message(line)
      }
      if (this.closed) return null
      let chunk: IteratorResult<Buffer>
      try {
        chunk = await this.chunks.next()
      } catch (err) {
        if (this.closed) return null
        this.scope.dispose()
        throw this.scope.errorFor(err, this.endpoint, `stream ${this.path}`)
      }
      if (this.closed) return null
      if (chunk.done === true) {
        const rest = this.buffer.trim()
        this.buffer = ''
        if (rest !== '') return this.message(rest)
        this.scope.dispose()
        // An abort by the deadline or the caller's signal also ends the body: say which.
        if (this.scope.signal.aborted) throw this.scope.errorFor(new Error('aborted'), this.endpoint, `stream ${this.path}`)
        throw new EtcdError('unavailable', `etcd stream ${this.path} at ${this.endpoint}: ended by the server`, { endpoint: this.endpoint })
      }
      this.buffer += this.decoder.decode(chunk.value, { stream: true })
    }
  }

  private message(line: string): JsonObject {
    let parsed: unknown
    try {
      parsed = JSON.parse(line)
    } catch (err) {
      throw protocolError(`stream ${this.path}: not JSON: ${line.slice(0, 200)}`, err)
    }
    const obj = asObject(parsed, `stream ${this.path}`)
    if (obj.error !== undefined) {
      const e = asObject(obj.error, 'stream error') as { grpc_code?: unknown; message?: unknown; http_code?: unknown }
      throw fromGrpcStatus(Number(e.grpc_code ?? 2), String(e.message ?? ''), { endpoint: this.endpoint, httpStatus: typeof e.http_code === 'number' ? e.http_code : undefined })
    }
    if (this.first) {
      this.first = false
      this.scope.disarm()
    }
    return asObject(obj.result, `stream ${this.path} result`)
  }

  /** Ends the stream (its connection is closed); `next()` then gives null. Idempotent. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.scope.abort()
    this.scope.dispose()
    this.request.destroy()
    this.response.destroy()
  }
}

export class Gateway {
  readonly endpoints: readonly string[]
  readonly timeoutMs: number
  /** Index of the endpoint tried first. */
  private preferred = 0

  constructor(options: GatewayOptions) {
    const list = typeof options.endpoints === 'string' ? [options.endpoints] : [...options.endpoints]
    if (list.length === 0) throw new EtcdError('invalid-argument', 'etcd client: no endpoints')
    this.endpoints = list.map((e) => {
      const url = new URL(e)
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new EtcdError('invalid-argument', `etcd endpoint must be http(s)://host:port, got ${e}`)
      return url.origin
    })
    this.timeoutMs = options.timeoutMs ?? 1000
    if (!(this.timeoutMs > 0)) throw new EtcdError('invalid-argument', `timeoutMs must be > 0, got ${this.timeoutMs}`)
  }

  /** The endpoint calls go to first. */
  get endpoint(): string {
    return this.endpoints[this.preferred] as string
  }

  /** One unary call: POST `path` with `body`, the answer's JSON object. */
  async call(path: string, body: unknown, options: CallOptions = {}): Promise<JsonObject> {
    const scope = new CallScope(options.timeoutMs ?? this.timeoutMs, options.signal)
    let retries = options.retries ?? 0
    try {
      for (;;) {
        try {
          const { response, endpoint } = await this.send(path, body, scope)
          let text: string
          try {
            text = await response.text()
          } catch (err) {
            throw scope.errorFor(err, endpoint, path)
          }
          if (response.status !== 200) throw errorFromBody(response.status, text, endpoint, path)
          try {
            return asObject(JSON.parse(text), path)
          } catch (err) {
            throw err instanceof EtcdError ? err : protocolError(`${path}: not JSON: ${text.slice(0, 200)}`, err)
          }
        } catch (err) {
          const e = err as EtcdError
          if (retries <= 0 || e.code !== 'unavailable' || e.timedOut || scope.signal.aborted) throw e
          retries--
          await sleep(Math.min(options.retryDelayMs ?? 50, Math.max(0, scope.remainingMs())), scope.signal)
          if (scope.signal.aborted) throw scope.errorFor(new Error('aborted while waiting to retry', { cause: err }), e.endpoint ?? this.endpoint, path)
        }
      }
    } finally {
      scope.dispose()
    }
  }

  /**
   * Opens a server stream: POST `path` with one request message and the body ended, on a
   * connection of its own (node:http). The deadline covers the answer's headers and the first
   * message; after that only `close()` or the caller's signal end it.
   */
  async stream(path: string, body: unknown, options: CallOptions = {}): Promise<JsonStream> {
    const scope = new CallScope(options.timeoutMs ?? this.timeoutMs, options.signal)
    const json = Buffer.from(JSON.stringify(body))
    try {
      return await this.eachEndpoint(scope, path, async (endpoint) => {
        const { request, response } = await new Promise<{ request: http.ClientRequest; response: http.IncomingMessage }>((resolve, reject) => {
          const url = new URL(endpoint + path)
          const request = (url.protocol === 'https:' ? https : http).request(url, {
            method: 'POST',
            agent: false,
            headers: { 'content-type': 'application/json', 'content-length': json.length },
            signal: scope.signal,
          })
          request.once('error', reject)
          request.once('response', (response) => resolve({ request, response }))
          request.end(json)
        })
        request.on('error', () => undefined) // later errors reach the reader through the response
        response.on('error', () => undefined)
        if (response.statusCode !== 200) {
          let text = ''
          try {
            for await (const chunk of response) text += String(chunk)
          } catch (err) {
            throw scope.errorFor(err, endpoint, path)
          }
          throw errorFromBody(response.statusCode ?? 0, text, endpoint, path)
        }
        return new JsonStream(response, request, scope, endpoint, path)
      })
    } catch (err) {
      scope.dispose()
      throw err
    }
  }

  /** Runs `attempt` on the endpoints in turn, moving on only when connecting fails. */
  private async eachEndpoint<T>(scope: CallScope, path: string, attempt: (endpoint: string) => Promise<T>): Promise<T> {
    const n = this.endpoints.length
    const first = this.preferred
    for (let i = 0; ; i++) {
      const index = (first + i) % n
      const endpoint = this.endpoints[index] as string
      try {
        const result = await attempt(endpoint)
        this.preferred = index
        return result
      } catch (err) {
        if (err instanceof EtcdError) {
          if (err.httpStatus !== undefined) this.preferred = index // it answered
          throw err
        }
        if (connectFailed(err) && !scope.signal.aborted && i + 1 < n) continue
        const e = scope.errorFor(err, endpoint, path)
        // The next call starts with the next endpoint (this one refused, reset or hung).
        if (e.code !== 'canceled') this.preferred = (index + 1) % n
        throw e
      }
    }
  }

  /** fetch, moving on to the next endpoint when connecting fails. */
  private send(path: string, body: unknown, scope: CallScope): Promise<{ response: Response; endpoint: string }> {
    const json = JSON.stringify(body)
    return this.eachEndpoint(scope, path, async (endpoint) => {
      const response = await fetch(endpoint + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: json,
        signal: scope.signal,
      })
      return { response, endpoint }
    })
  }
}
