/**
 * The client workload of the cluster tests: `runWorkload` drives concurrent
 * clients against a set of `strata serve` endpoints (the nodes of a cluster,
 * or one plain server) and records a history for `checkHistory`
 * (linearizability.ts); `readAll` reads the final value of every key through
 * the leader; `lostWrites` finds acknowledged writes the final state cannot
 * explain.
 *
 * ## Clients
 *
 * `clients` (default 10) run concurrently until `durationMs` has passed, each
 * issuing one operation at a time. The first half speak HTTP (global `fetch`,
 * `AbortSignal.timeout(opTimeoutMs)` per request), the rest RESP (ioredis,
 * RESP2 without handshake commands, one connection per endpoint, connected
 * explicitly, no offline queue, no
 * retries by ioredis, `commandTimeout = opTimeoutMs`; a connection that saw
 * any error or timeout is dropped and a fresh one made on next use). Process
 * ids are `h<i>` (HTTP) and `r<i>` (RESP).
 *
 * Operation mix (default 40% GET, 30% PUT, 30% CAS):
 *   - GET: HTTP `GET /v1/kv/{key}` (404 = null) or RESP `GET` → a `read`.
 *   - PUT: HTTP `PUT` or RESP `SET` of a unique value `${process}-${counter}` → a `write`.
 *   - CAS (HTTP only; a RESP client's CAS share becomes a PUT): a GET (recorded
 *     as its own `read`), then `PUT` with `If-Match: "<version>"` (or
 *     `If-None-Match: *` when the key was absent) → a `cas` with `expected` = the
 *     value that GET returned. The server compares versions, the checker values;
 *     since every value is written once, "holds version v" and "holds the value
 *     written at v" are the same thing. 204 → ok; 412 → `fail` (not `rejected`:
 *     the precondition was evaluated and found false, which the checker uses as
 *     a read of "not equal to expected"). When the GET's outcome is unknown, no
 *     PUT is sent.
 *
 * Keys: a run-wide operation counter `n` picks key `${keyPrefix}${floor(n / 200) % keys}`,
 * so all clients hammer the same key for ~200 operations and then move on
 * (`keysInUse` > 1 spreads them over that many keys at a time).
 * `keyPrefix` is random per run, so runs never share keys and every key
 * starts absent.
 *
 * ## Redirects, refusals and indeterminate outcomes
 *
 * Each client starts at a random endpoint (or `startEndpoint`). An attempt
 * that certainly had no effect is retried as the same logical operation:
 *   - HTTP 421 STRATA_NOT_LEADER / RESP `-NOTLEADER host:port epoch`: go to the
 *     named leader (its address matched against `endpoints`; the body's
 *     `error.leader.http` — or a top-level `leader.http` — else the
 *     `Strata-Leader` header) at once; when it names no known endpoint, or the
 *     one just asked, wait 50–100 ms and try the next endpoint.
 *   - HTTP 503 STRATA_NO_LEADER / RESP `-TRYAGAIN`, and a refused connection
 *     (ECONNREFUSED: nothing was sent): wait 50–100 ms, try the next endpoint.
 * Retries go on for at most `retryBudgetMs` (default 10 s) and never past the
 * end of the run; an operation that only ever met refusals is recorded as
 * `fail` + `rejected: true` (dropped by the checker). Its `invokeMs` is that of
 * its last attempt (the earlier ones certainly did nothing).
 *
 * Anything else after the request may have been sent is indeterminate for a
 * write (`unknown`): a timeout, a reset or closed connection, HTTP 503
 * STRATA_OUTCOME_UNKNOWN or any other 5xx, RESP `-OUTCOMEUNKNOWN` or any other
 * error reply. A read that ends like that is recorded `unknown` too (the
 * checker drops it). Every logical operation is recorded exactly once, with
 * its final outcome; times come from `performance.now()`.
 */
import { Redis, ReplyError } from 'ioredis'
import { randomBytes } from 'node:crypto'
import type { HistoryOp, Value } from './linearizability.js'

/** One history entry, exactly the checker's type. */
export type Operation = HistoryOp

export interface Endpoint {
  /** host:port of the node's HTTP API. */
  http: string
  /** host:port of the node's RESP port. */
  resp: string
}

export interface WorkloadMix {
  get: number
  put: number
  cas: number
}

export interface WorkloadOptions {
  endpoints: Endpoint[]
  /** Concurrent clients (default 10): the first half HTTP, the rest RESP. */
  clients?: number
  /** How long clients keep starting operations. */
  durationMs: number
  /** Distinct keys cycled through (default 1000): key = floor(opIndex / opsPerKey) % keys. */
  keys?: number
  /** Operations per key before moving on (default 200). */
  opsPerKey?: number
  /** Deadline of one attempt (request + answer), default 1000 ms. */
  opTimeoutMs?: number
  /** How long one logical operation is retried after refusals/redirects (default 10 000 ms). */
  retryBudgetMs?: number
  /** Relative weights (default { get: 0.4, put: 0.3, cas: 0.3 }). */
  mix?: WorkloadMix
  /** Prefix of every key (default `w<random hex>-`). */
  keyPrefix?: string
  /**
   * Keys in use at once (default 1): op n goes to key `floor(n / (opsPerKey * keysInUse)) * keysInUse + n % keysInUse`
   * (mod `keys`), so each key still gets ~opsPerKey ops. With 10 clients on a single key a CAS's GET→PUT
   * window sees ~5 other writes, so only ~1% of CASes succeed; spreading the clients raises that.
   */
  keysInUse?: number
  /** Index into `endpoints` where every client starts (default: a random one per client). */
  startEndpoint?: number
  /** Stops the run early when aborted (operations in flight finish). */
  signal?: AbortSignal
}

export interface WorkloadCounts {
  /** Operations recorded ok. */
  ok: number
  /** Operations recorded fail (412 CAS, and rejected ones). */
  fail: number
  /** Of `fail`: operations that only met refusals (`rejected: true`). */
  rejected: number
  /** Operations recorded unknown. */
  unknown: number
  /** Attempts answered NOT_LEADER (HTTP 421, RESP -NOTLEADER) and retried elsewhere. */
  redirects: number
  /** Attempts refused otherwise (NO_LEADER, TRYAGAIN, connection refused) and retried. */
  refusals: number
}

export interface WorkloadResult {
  history: Operation[]
  counts: WorkloadCounts
  /** Every key the run touched, in first-use order. */
  keys: string[]
  /** Wall time of the run, ms. */
  elapsedMs: number
}

const DEFAULT_MIX: WorkloadMix = { get: 0.4, put: 0.3, cas: 0.3 }

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const backoff = (): Promise<void> => sleep(50 + Math.random() * 50)

/** `host:port` of an address given as host:port or URL. */
export function normalizeAddress(a: string): string {
  return a
    .trim()
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/+$/, '')
    .toLowerCase()
}

/** The outcome of one attempt. */
type Attempt<T> =
  | { kind: 'done'; value: T }
  /** Certainly not applied, go to `leader` (host:port, null = unknown). */
  | { kind: 'redirect'; leader: string | null }
  /** Certainly not applied, try elsewhere after a pause. */
  | { kind: 'refused'; why: string }
  /** May or may not have been applied. */
  | { kind: 'unknown'; why: string }

type Final<T> = { kind: 'done'; value: T } | { kind: 'unknown'; why: string } | { kind: 'rejected'; why: string }

// ---- HTTP ---------------------------------------------------------------------

interface HttpAnswer {
  status: number
  body: string
  etag: string | null
}

/** The error code and leader of a JSON error body, accepting `{ error: { code, leader } }` and `{ code, leader }`. */
function parseErrorBody(text: string): { code: string | null; leaderHttp: string | null } {
  try {
    const o = JSON.parse(text) as Record<string, unknown>
    const e = (typeof o.error === 'object' && o.error !== null ? o.error : o) as Record<string, unknown>
    const code = typeof e.code === 'string' ? e.code : null
    const leader = (e.leader ?? o.leader) as Record<string, unknown> | undefined
    const leaderHttp = typeof leader === 'object' && leader !== null && typeof leader.http === 'string' ? leader.http : null
    return { code, leaderHttp }
  } catch {
    return { code: null, leaderHttp: null }
  }
}

/** The `code` of an error or of its causes (fetch wraps socket errors in `cause`, sometimes an AggregateError). */
function errorCodes(err: unknown, depth = 0): string[] {
  if (depth > 5 || typeof err !== 'object' || err === null) return []
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown }
  const codes = typeof e.code === 'string' ? [e.code] : []
  codes.push(...errorCodes(e.cause, depth + 1))
  if (Array.isArray(e.errors)) for (const x of e.errors) codes.push(...errorCodes(x, depth + 1))
  return codes
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const codes = errorCodes(err)
  return `${err.name}: ${err.message}${codes.length > 0 ? ` (${codes.join(', ')})` : ''}`
}

/** Whether a failed fetch/connect certainly sent nothing: the connection was refused. */
function isRefusal(err: unknown): boolean {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return false
  const codes = errorCodes(err)
  return codes.includes('ECONNREFUSED')
}

/**
 * One HTTP request. Redirect/refusal answers are classified here; every other
 * answer is `done` with its status for the caller to judge.
 */
async function httpAttempt(endpoint: string, method: 'GET' | 'PUT', key: string, body: string | undefined, headers: Record<string, string>, timeoutMs: number): Promise<Attempt<HttpAnswer>> {
  const url = `http://${endpoint}/v1/kv/${encodeURIComponent(key)}`
  let res: Response
  let text: string
  try {
    res = await fetch(url, { method, body, headers, signal: AbortSignal.timeout(timeoutMs) })
    text = await res.text()
  } catch (err) {
    if (isRefusal(err)) return { kind: 'refused', why: describeError(err) }
    return { kind: 'unknown', why: describeError(err) }
  }
  if (res.status === 421) {
    const { code, leaderHttp } = parseErrorBody(text)
    if (code === null || code === 'STRATA_NOT_LEADER') {
      const header = res.headers.get('strata-leader')
      return { kind: 'redirect', leader: leaderHttp ?? header }
    }
    return { kind: 'unknown', why: `HTTP 421 ${text.slice(0, 200)}` }
  }
  if (res.status === 503) {
    const { code } = parseErrorBody(text)
    if (code === 'STRATA_NO_LEADER') return { kind: 'refused', why: 'HTTP 503 STRATA_NO_LEADER' }
    return { kind: 'unknown', why: `HTTP 503 ${code ?? text.slice(0, 200)}` }
  }
  if (res.status >= 500) return { kind: 'unknown', why: `HTTP ${res.status} ${text.slice(0, 200)}` }
  return { kind: 'done', value: { status: res.status, body: text, etag: res.headers.get('etag') } }
}

// ---- RESP ---------------------------------------------------------------------

/** One ioredis connection per endpoint, replaced after any error. */
class RespConnections {
  private readonly open = new Map<string, Redis>()

  constructor(private readonly timeoutMs: number) {}

  /** A ready connection, or the error of connecting. */
  async get(endpoint: string): Promise<Redis> {
    const have = this.open.get(endpoint)
    if (have !== undefined && have.status === 'ready') return have
    if (have !== undefined) this.drop(endpoint)
    const [host, port] = splitHostPort(endpoint)
    const r = new Redis({
      host,
      port,
      lazyConnect: true,
      enableOfflineQueue: false,
      enableReadyCheck: false,
      // RESP2 and no CLIENT SETINFO: the connection sends nothing but our commands.
      protocol: 2,
      disableClientInfo: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      reconnectOnError: () => false,
      autoResubscribe: false,
      commandTimeout: this.timeoutMs,
      connectTimeout: this.timeoutMs,
    })
    r.on('error', () => {})
    try {
      await r.connect()
    } catch (err) {
      r.disconnect()
      throw err
    }
    this.open.set(endpoint, r)
    return r
  }

  drop(endpoint: string): void {
    const r = this.open.get(endpoint)
    this.open.delete(endpoint)
    r?.disconnect()
  }

  closeAll(): void {
    for (const endpoint of [...this.open.keys()]) this.drop(endpoint)
  }
}

function splitHostPort(a: string): [string, number] {
  const i = a.lastIndexOf(':')
  return [a.slice(0, i).replace(/^\[|\]$/g, ''), Number(a.slice(i + 1))]
}

/** An error reply of the server (ioredis types ReplyError as `any`). */
function isReplyError(err: unknown): err is Error {
  return err instanceof (ReplyError as new () => Error)
}

async function respAttempt<T>(conns: RespConnections, endpoint: string, run: (r: Redis) => Promise<T>): Promise<Attempt<T>> {
  let r: Redis
  try {
    r = await conns.get(endpoint)
  } catch (err) {
    // Not connected: nothing was sent. A refusal is retried elsewhere; a connect timeout also sent nothing.
    return { kind: 'refused', why: `connect ${endpoint}: ${describeError(err)}` }
  }
  try {
    return { kind: 'done', value: await run(r) }
  } catch (err) {
    if (isReplyError(err)) {
      const m = /^(\S+)\s*(.*)$/.exec(err.message)
      const word = m?.[1] ?? ''
      if (word === 'NOTLEADER') return { kind: 'redirect', leader: (m?.[2] ?? '').split(/\s+/)[0] || null }
      if (word === 'TRYAGAIN') return { kind: 'refused', why: err.message }
      // The connection itself is fine after an error reply.
      return { kind: 'unknown', why: err.message }
    }
    conns.drop(endpoint)
    return { kind: 'unknown', why: describeError(err) }
  }
}

// ---- the run ----------------------------------------------------------------------

interface Shared {
  endpoints: Endpoint[]
  httpIndex: Map<string, number>
  respIndex: Map<string, number>
  opTimeoutMs: number
  retryBudgetMs: number
  endAt: number
  counts: WorkloadCounts
  history: Operation[]
  nextOpIndex: number
  nextId: number
  keyOf: (opIndex: number) => string
  keysSeen: Set<string>
  stopped: () => boolean
}

class Client {
  current: number
  private counter = 0

  constructor(
    readonly name: string,
    readonly protocol: 'http' | 'resp',
    private readonly s: Shared,
    start: number,
    private readonly resp: RespConnections | null,
  ) {
    this.current = start
  }

  nextValue(): string {
    return `${this.name}-${++this.counter}`
  }

  /**
   * Runs `attempt` against the current endpoint until it is done or unknown, following redirects and
   * retrying refusals; returns the final outcome with the last attempt's invocation time.
   */
  async retrying<T>(attempt: (endpoint: Endpoint) => Promise<Attempt<T>>): Promise<{ final: Final<T>; invokeMs: number; completeMs: number }> {
    const s = this.s
    const deadline = performance.now() + s.retryBudgetMs
    for (;;) {
      const endpoint = s.endpoints[this.current] as Endpoint
      const invokeMs = performance.now()
      const a = await attempt(endpoint)
      const completeMs = performance.now()
      if (a.kind === 'done' || a.kind === 'unknown') return { final: a, invokeMs, completeMs }
      const giveUp = completeMs > deadline || completeMs > s.endAt || s.stopped()
      if (a.kind === 'redirect') {
        s.counts.redirects++
        const index = a.leader === null ? undefined : (this.protocol === 'http' ? s.httpIndex : s.respIndex).get(normalizeAddress(a.leader))
        if (giveUp) return { final: { kind: 'rejected', why: `redirected to ${a.leader ?? '?'}` }, invokeMs, completeMs }
        if (index !== undefined && index !== this.current) {
          this.current = index
          continue
        }
      } else {
        s.counts.refusals++
        if (giveUp) return { final: { kind: 'rejected', why: a.why }, invokeMs, completeMs }
      }
      await backoff()
      this.current = (this.current + 1) % s.endpoints.length
    }
  }

  record(op: Omit<Operation, 'id' | 'process'>): Operation {
    const full = { id: this.s.nextId++, process: this.name, ...op } as Operation
    if (full.outcome === 'unknown') delete full.completeMs
    this.s.history.push(full)
    if (full.outcome === 'ok') this.s.counts.ok++
    else if (full.outcome === 'unknown') this.s.counts.unknown++
    else {
      this.s.counts.fail++
      if (full.rejected === true) this.s.counts.rejected++
    }
    return full
  }

  private outcomeOf<T>(final: Final<T>): Pick<Operation, 'outcome' | 'rejected'> {
    if (final.kind === 'done') return { outcome: 'ok' }
    if (final.kind === 'unknown') return { outcome: 'unknown' }
    return { outcome: 'fail', rejected: true }
  }

  /** A read; returns the value and ETag it saw (null, null when absent), or undefined when it did not complete. */
  async read(key: string): Promise<{ value: Value; etag: string | null } | undefined> {
    if (this.protocol === 'http') {
      const t = this.s.opTimeoutMs
      const r = await this.retrying((e) => httpAttempt(e.http, 'GET', key, undefined, {}, t))
      let final: Final<{ value: Value; etag: string | null }>
      if (r.final.kind === 'done') {
        const a = r.final.value
        if (a.status === 200) final = { kind: 'done', value: { value: a.body, etag: a.etag } }
        else if (a.status === 404) final = { kind: 'done', value: { value: null, etag: null } }
        else final = { kind: 'unknown', why: `HTTP ${a.status} ${a.body.slice(0, 200)}` }
      } else final = r.final
      this.record({ key, kind: 'read', invokeMs: r.invokeMs, completeMs: r.completeMs, ...this.outcomeOf(final), ...(final.kind === 'done' ? { result: final.value.value } : {}) })
      return final.kind === 'done' ? final.value : undefined
    }
    const r = await this.retrying((e) => respAttempt(this.resp!, e.resp, (c) => c.get(key)))
    const final: Final<Value> = r.final.kind === 'done' ? { kind: 'done', value: r.final.value ?? null } : r.final
    this.record({ key, kind: 'read', invokeMs: r.invokeMs, completeMs: r.completeMs, ...this.outcomeOf(final), ...(final.kind === 'done' ? { result: final.value } : {}) })
    return final.kind === 'done' ? { value: final.value, etag: null } : undefined
  }

  async write(key: string): Promise<void> {
    const value = this.nextValue()
    let final: Final<unknown>
    let times: { invokeMs: number; completeMs: number }
    if (this.protocol === 'http') {
      const t = this.s.opTimeoutMs
      const r = await this.retrying((e) => httpAttempt(e.http, 'PUT', key, value, { 'content-type': 'application/octet-stream' }, t))
      times = r
      final = r.final.kind === 'done' && r.final.value.status !== 204 ? { kind: 'unknown', why: `HTTP ${r.final.value.status} ${r.final.value.body.slice(0, 200)}` } : r.final
    } else {
      const r = await this.retrying((e) => respAttempt(this.resp!, e.resp, (c) => c.set(key, value)))
      times = r
      final = r.final.kind === 'done' && r.final.value !== 'OK' ? { kind: 'unknown', why: `SET answered ${String(r.final.value)}` } : r.final
    }
    this.record({ key, kind: 'write', value, invokeMs: times.invokeMs, completeMs: times.completeMs, ...this.outcomeOf(final) })
  }

  async cas(key: string): Promise<void> {
    const seen = await this.read(key)
    if (seen === undefined) return // the GET did not complete: no expected value to compare with
    if (seen.value !== null && seen.etag === null) throw new Error(`GET ${key} answered 200 without an ETag`)
    const value = this.nextValue()
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
    if (seen.etag === null) headers['if-none-match'] = '*'
    else headers['if-match'] = seen.etag
    const t = this.s.opTimeoutMs
    const r = await this.retrying((e) => httpAttempt(e.http, 'PUT', key, value, headers, t))
    let outcome: Pick<Operation, 'outcome' | 'rejected'>
    if (r.final.kind === 'done') {
      const st = r.final.value.status
      outcome = st === 204 ? { outcome: 'ok' } : st === 412 ? { outcome: 'fail' } : { outcome: 'unknown' }
    } else outcome = this.outcomeOf(r.final)
    this.record({ key, kind: 'cas', value, expected: seen.value, invokeMs: r.invokeMs, completeMs: r.completeMs, ...outcome })
  }
}

/** Runs the workload; see the file comment. Resolves once every client has finished its last operation. */
export async function runWorkload(options: WorkloadOptions): Promise<WorkloadResult> {
  const { endpoints } = options
  if (endpoints.length === 0) throw new Error('runWorkload: no endpoints')
  const nClients = options.clients ?? 10
  const nKeys = options.keys ?? 1000
  const opsPerKey = options.opsPerKey ?? 200
  const inUse = Math.max(1, Math.floor(options.keysInUse ?? 1))
  const mix = options.mix ?? DEFAULT_MIX
  const mixTotal = mix.get + mix.put + mix.cas
  if (!(mixTotal > 0)) throw new Error('runWorkload: the mix has no weight')
  const prefix = options.keyPrefix ?? `w${randomBytes(4).toString('hex')}-`
  const t0 = performance.now()
  const s: Shared = {
    endpoints,
    httpIndex: new Map(endpoints.map((e, i) => [normalizeAddress(e.http), i])),
    respIndex: new Map(endpoints.map((e, i) => [normalizeAddress(e.resp), i])),
    opTimeoutMs: options.opTimeoutMs ?? 1000,
    retryBudgetMs: options.retryBudgetMs ?? 10_000,
    endAt: t0 + options.durationMs,
    counts: { ok: 0, fail: 0, rejected: 0, unknown: 0, redirects: 0, refusals: 0 },
    history: [],
    nextOpIndex: 0,
    nextId: 0,
    keyOf: (n) => `${prefix}${(Math.floor(n / (opsPerKey * inUse)) * inUse + (n % inUse)) % nKeys}`,
    keysSeen: new Set(),
    stopped: () => options.signal?.aborted === true,
  }
  const nHttp = Math.ceil(nClients / 2)
  const resps: RespConnections[] = []
  const clients: Client[] = []
  for (let i = 0; i < nClients; i++) {
    const start = options.startEndpoint ?? Math.floor(Math.random() * endpoints.length)
    if (i < nHttp) clients.push(new Client(`h${i}`, 'http', s, start, null))
    else {
      const conns = new RespConnections(s.opTimeoutMs)
      resps.push(conns)
      clients.push(new Client(`r${i - nHttp}`, 'resp', s, start, conns))
    }
  }
  const loop = async (c: Client): Promise<void> => {
    while (performance.now() < s.endAt && !s.stopped()) {
      const key = s.keyOf(s.nextOpIndex++)
      s.keysSeen.add(key)
      const x = Math.random() * mixTotal
      if (x < mix.get) await c.read(key)
      else if (x < mix.get + mix.put || c.protocol === 'resp') await c.write(key)
      else await c.cas(key)
    }
  }
  try {
    await Promise.all(clients.map(loop))
  } finally {
    for (const r of resps) r.closeAll()
  }
  return { history: s.history, counts: s.counts, keys: [...s.keysSeen], elapsedMs: performance.now() - t0 }
}

// ---- final state ------------------------------------------------------------------

/**
 * Reads every key over HTTP from `endpoint` (host:port, or an Endpoint), following 421 redirects to
 * the leader named (also outside any endpoint list) and retrying NO_LEADER/refused connections for up
 * to `timeoutMs` (default 15 000) per key. Throws when a key cannot be read.
 */
export async function readAll(endpoint: string | Pick<Endpoint, 'http'>, keys: Iterable<string>, options: { timeoutMs?: number; concurrency?: number } = {}): Promise<Map<string, Value>> {
  let current = normalizeAddress(typeof endpoint === 'string' ? endpoint : endpoint.http)
  const timeoutMs = options.timeoutMs ?? 15_000
  const out = new Map<string, Value>()
  const queue = [...keys]
  const readOne = async (key: string): Promise<void> => {
    const deadline = performance.now() + timeoutMs
    let last = ''
    while (performance.now() < deadline) {
      const a = await httpAttempt(current, 'GET', key, undefined, {}, 2000)
      if (a.kind === 'done') {
        if (a.value.status === 200) return void out.set(key, a.value.body)
        if (a.value.status === 404) return void out.set(key, null)
        last = `HTTP ${a.value.status} ${a.value.body.slice(0, 200)}`
      } else if (a.kind === 'redirect') {
        last = `redirected to ${a.leader ?? '?'}`
        if (a.leader !== null && normalizeAddress(a.leader) !== current) {
          current = normalizeAddress(a.leader)
          continue
        }
      } else last = a.why
      await backoff()
    }
    throw new Error(`readAll: could not read ${JSON.stringify(key)} via ${current} within ${timeoutMs} ms: ${last}`)
  }
  const worker = async (): Promise<void> => {
    for (let key = queue.shift(); key !== undefined; key = queue.shift()) await readOne(key)
  }
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 8) }, worker))
  return out
}

export interface LostWrite {
  key: string
  /** The acknowledged write (or successful CAS) that is missing. */
  op: Operation
  /** What the key held in the end. */
  final: Value
}

/**
 * Acknowledged writes the final state cannot explain. Assumes what runWorkload guarantees: every
 * value is written at most once, nothing deletes, every key starts absent and nobody else writes.
 *
 * Rule, per key present in `finalValues` with final value F: an ok `write` or ok `cas` W with
 * value ≠ F is lost unless some write that may have taken effect after W wrote F. The candidates
 * are the other `write`/`cas` ops of that key with outcome `ok` or `unknown` (never `fail`, never
 * `rejected`) and value F, except an ok one that completed before W was invoked (real time orders
 * it before W). An unknown op counts whatever its times (its effect has no upper time bound).
 *
 * Sound: W took effect; if the only op writing F took effect before W, then after W the key never
 * held F again (F is written once) and no delete exists, so F cannot be final. F = null, or a value
 * no op wrote, is never explained. It misses losses hidden behind an indeterminate write of the
 * final value; the linearizability check covers the rest.
 */
export function lostWrites(history: readonly Operation[], finalValues: ReadonlyMap<string, Value>): LostWrite[] {
  const writesByKey = new Map<string, Operation[]>()
  for (const op of history) {
    if (op.kind !== 'write' && op.kind !== 'cas') continue
    if (op.rejected === true || op.outcome === 'fail') continue
    let list = writesByKey.get(op.key)
    if (list === undefined) writesByKey.set(op.key, (list = []))
    list.push(op)
  }
  const lost: LostWrite[] = []
  for (const [key, writes] of writesByKey) {
    if (!finalValues.has(key)) continue
    const final = finalValues.get(key) ?? null
    const writersOfFinal = final === null ? [] : writes.filter((w) => w.value === final)
    for (const w of writes) {
      if (w.outcome !== 'ok' || w.value === final) continue
      const explained = writersOfFinal.some((x) => x !== w && !(x.outcome === 'ok' && (x.completeMs as number) < w.invokeMs))
      if (!explained) lost.push({ key, op: w, final })
    }
  }
  return lost
}
