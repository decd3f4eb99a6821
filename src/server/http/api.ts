/**
 * The HTTP/1.1 API: routing, authentication and the handlers.
 *
 *   GET|HEAD /v1/kv/{key}    value, ETag "<version>", Strata-Expires-At; 404 when absent
 *   PUT      /v1/kv/{key}    raw body; 204 + ETag; If-Match / If-None-Match → 412; ?ttlMs= / ?expiresAt= (expiry.ts)
 *   DELETE   /v1/kv/{key}    204; same preconditions
 *   POST     /v1/batch       JSON ops, atomic (batch-ops.ts); 409 naming the conflicting keys
 *   GET      /v1/range       NDJSON stream with a resume cursor (range.ts)
 *   DELETE   /v1/range       one range delete of [gte, lt) (range-delete.ts)
 *   POST     /v1/admin/checkpoint  writes a checkpoint (shared/checkpoints.ts); 409 while one is written
 *   GET      /v1/stats       engine and server figures
 *   GET      /metrics        Prometheus text
 *   GET      /healthz        liveness (no authentication)
 *
 * Every request first passes the Host/Origin checks (origin.ts), then
 * authentication. Every error is JSON `{ "code": "STRATA_…", "message": … }`. Keys are the
 * percent-decoded bytes of the path after /v1/kv/. Writes take the key lock
 * (shared/key-locks.ts) so the ETag returned is the version this request produced.
 */
import type * as http from 'node:http'
import { ConflictError, type BatchOp, type Entry } from '../../index.js'
import { checkKey, parseBatch } from './batch-ops.js'
import { checkpointNameError, type CheckpointFigures } from '../shared/checkpoints.js'
import type { ServerContext } from '../shared/context.js'
import { etagOf, jsonBytes, parseEtagList, parseFlag, parseQuery, percentDecode, readJsonBytes } from './encoding.js'
import { HttpError, isExpected, toHttpError } from '../shared/errors.js'
import { readBody } from './body.js'
import { expiresAtOf, expiryHeader, expiryOfRequest } from './expiry.js'
import { OriginPolicy, isJsonContentType } from './origin.js'
import { parseRangeQuery, streamRange } from './range.js'
import { deleteRange } from './range-delete.js'
import { keyId } from '../shared/key-locks.js'

const KV_PREFIX = '/v1/kv/'
/** Largest body of POST /v1/admin/checkpoint (`{"name": …}`). */
const CHECKPOINT_BODY_BYTES = 4096
/** Re-reads after a lost race on a conditional write before answering 412. */
const MAX_CONDITIONAL_ATTEMPTS = 8

/** Route names used in metrics. */
export type RouteName = 'kv' | 'batch' | 'range' | 'checkpoint' | 'stats' | 'metrics' | 'healthz' | 'cluster' | 'other'

/** The route of a request path (for metrics and body limits). */
export function routeOf(path: string): RouteName {
  if (path.startsWith(KV_PREFIX)) return 'kv'
  if (path === '/v1/batch') return 'batch'
  if (path === '/v1/range') return 'range'
  if (path === '/v1/admin/checkpoint') return 'checkpoint'
  if (path === '/v1/stats') return 'stats'
  if (path === '/metrics') return 'metrics'
  if (path === '/healthz') return 'healthz'
  if (path === '/v1/cluster') return 'cluster'
  return 'other'
}

/** Body limit of a route (0 = no body expected). */
export function bodyLimitOf(ctx: ServerContext, route: RouteName): number {
  const l = ctx.options.limits
  if (route === 'kv') return Math.min(l.maxBodyBytes, l.maxValueBytes)
  if (route === 'batch') return l.maxBodyBytes
  if (route === 'checkpoint') return CHECKPOINT_BODY_BYTES
  return 0
}

/** Preconditions of a request (If-Match / If-None-Match). */
interface Preconditions {
  ifMatch?: '*' | number[]
  ifNoneMatch?: '*' | number[]
}

/** Handles one HTTP request. */
export class HttpApi {
  /** Host, Origin and CORS rules; told the bound address once listening (server.ts). */
  readonly policy: OriginPolicy

  constructor(private readonly ctx: ServerContext) {
    this.policy = new OriginPolicy(ctx.options.allowHosts, ctx.options.allowOrigins)
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = performance.now()
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q < 0 ? url : url.slice(0, q)
    const query = q < 0 ? '' : url.slice(q + 1)
    const route = routeOf(path)
    res.once('finish', () => this.ctx.metrics.httpRequest(req.method ?? '?', route, res.statusCode, (performance.now() - started) / 1000))
    try {
      if (this.ctx.shuttingDown) res.setHeader('Connection', 'close')
      // Before anything else (authentication included): browsers must not reach the API from other sites.
      const corsOrigin = this.policy.check(req)
      if (this.policy.corsEnabled) res.setHeader('Vary', 'Origin')
      if (corsOrigin !== undefined) {
        if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
          // A preflight carries no credentials: answered before authentication.
          res.writeHead(204, { ...this.policy.preflightHeaders(req, corsOrigin), ...this.closeHeader() })
          res.end()
          return
        }
        for (const [name, value] of Object.entries(this.policy.corsHeaders(corsOrigin))) res.setHeader(name, value)
      }
      if (Buffer.byteLength(url, 'latin1') > this.ctx.options.limits.maxUrlBytes) {
        throw new HttpError(414, 'STRATA_URI_TOO_LONG', `request target longer than ${this.ctx.options.limits.maxUrlBytes} bytes`, undefined, { Connection: 'close' })
      }
      if (route !== 'healthz' && this.ctx.auth !== undefined && !this.ctx.auth.matchesBearer(req.headers.authorization)) {
        throw new HttpError(401, 'STRATA_UNAUTHORIZED', 'missing or wrong bearer token', undefined, { 'WWW-Authenticate': 'Bearer realm="strata"' })
      }
      let params: Map<string, Buffer>
      try {
        params = parseQuery(query)
      } catch (e) {
        throw new HttpError(400, 'STRATA_BAD_REQUEST', (e as Error).message)
      }
      if (this.ctx.cluster !== undefined && (route === 'kv' || route === 'batch' || route === 'range')) await this.admit(req, route)
      switch (route) {
        case 'kv':
          return await this.kv(req, res, path.slice(KV_PREFIX.length), params)
        case 'batch':
          this.method(req, ['POST'])
          this.requireJson(req, path)
          return await this.batch(req, res, params)
        case 'checkpoint':
          this.method(req, ['POST'])
          // Also without a body: a browser cannot send this content type cross-site without a preflight.
          this.requireJson(req, path)
          if (params.size > 0) throw new HttpError(400, 'STRATA_INVALID_ARGUMENT', 'POST /v1/admin/checkpoint takes no query parameters (the name goes in the JSON body)')
          return await this.checkpoint(req, res)
        case 'range':
          this.method(req, ['GET', 'DELETE'])
          if (req.method === 'DELETE') return await deleteRange(this.ctx, params, res, this.closeHeader())
          return await streamRange(this.ctx, parseRangeQuery(params, this.ctx.options.limits.maxKeyBytes), res, this.closeHeader())
        case 'stats':
          this.method(req, ['GET', 'HEAD'])
          return this.json(res, 200, this.stats(), req.method === 'HEAD')
        case 'metrics': {
          this.method(req, ['GET', 'HEAD'])
          const m = await this.ctx.metrics.scrape()
          res.writeHead(200, { 'Content-Type': m.contentType, 'Content-Length': Buffer.byteLength(m.body), ...this.closeHeader() })
          res.end(req.method === 'HEAD' ? undefined : m.body)
          return
        }
        case 'healthz':
          this.method(req, ['GET', 'HEAD'])
          return this.health(req, res)
        case 'cluster':
          this.method(req, ['GET', 'HEAD'])
          if (this.ctx.cluster === undefined) throw new HttpError(404, 'STRATA_ROUTE_NOT_FOUND', 'this server is not a cluster replica (no --cluster)')
          return this.json(res, 200, this.ctx.cluster.info(), req.method === 'HEAD')
        default:
          throw new HttpError(404, 'STRATA_ROUTE_NOT_FOUND', `no route ${req.method} ${path.slice(0, 200)}`)
      }
    } catch (e) {
      this.fail(req, res, e)
    }
  }

  /**
   * A replica serves data only as the serving leader (else 421 / 503, see
   * shared/errors.ts); reads, batches (they may hold conditions) and
   * conditional writes first wait for a read-index round, so what they
   * read or compare is no older than any acknowledged write.
   */
  private admit(req: http.IncomingMessage, route: RouteName): Promise<void> {
    const blindWrite =
      (route === 'kv' && (req.method === 'PUT' || req.method === 'DELETE') && req.headers['if-match'] === undefined && req.headers['if-none-match'] === undefined) ||
      (route === 'range' && req.method === 'DELETE')
    return this.ctx.cluster!.admit(blindWrite ? 'write' : 'read')
  }

  /** Answers an error as JSON (or just closes when a response is already under way). */
  fail(req: http.IncomingMessage, res: http.ServerResponse, e: unknown): void {
    const h = toHttpError(e)
    if (!isExpected(e)) this.ctx.log(`HTTP ${req.method} ${(req.url ?? '').slice(0, 200)} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
    if (res.headersSent) {
      res.destroy()
      return
    }
    const body = JSON.stringify({ code: h.code, message: h.message, ...h.details })
    res.writeHead(h.status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
      ...h.headers,
      ...this.closeHeader(),
    })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  private closeHeader(): Record<string, string> {
    return this.ctx.shuttingDown ? { Connection: 'close' } : {}
  }

  private method(req: http.IncomingMessage, allowed: string[]): void {
    if (!allowed.includes(req.method ?? '')) {
      throw new HttpError(405, 'STRATA_METHOD_NOT_ALLOWED', `method ${req.method} not allowed here; use ${allowed.join(', ')}`, undefined, {
        Allow: allowed.join(', '),
      })
    }
  }

  /** 415 unless the request says `Content-Type: application/json` (a cross-site page cannot send that without a preflight). */
  private requireJson(req: http.IncomingMessage, path: string): void {
    if (isJsonContentType(req.headers['content-type'])) return
    const got = req.headers['content-type'] === undefined ? 'none' : JSON.stringify(req.headers['content-type'].slice(0, 100))
    throw new HttpError(415, 'STRATA_UNSUPPORTED_MEDIA_TYPE', `POST ${path} needs Content-Type: application/json (got ${got})`, undefined, { 'Accept-Post': 'application/json' })
  }

  private json(res: http.ServerResponse, status: number, value: unknown, headOnly = false, headers: Record<string, string> = {}): void {
    const body = JSON.stringify(value)
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers, ...this.closeHeader() })
    res.end(headOnly ? undefined : body)
  }

  private health(req: http.IncomingMessage, res: http.ServerResponse): void {
    let status = 'ok'
    if (this.ctx.shuttingDown || !this.ctx.db.isOpen) status = 'shutting down'
    else if (this.ctx.db.stats().backgroundError !== undefined) status = 'read-only'
    this.json(res, status === 'ok' ? 200 : 503, { status }, req.method === 'HEAD')
  }

  private stats(): unknown {
    const c = this.ctx.connectionCount()
    return {
      engine: this.ctx.db.isOpen ? this.ctx.db.stats() : null,
      server: {
        uptimeSeconds: Math.round((performance.now() - this.ctx.startedAtMs) / 1000),
        connections: c,
        pendingWrites: this.ctx.gate.pending,
        writeStalledMs: Math.round(this.ctx.gate.stalledMs()),
        busyRefusals: this.ctx.gate.refused,
        lockedKeys: this.ctx.locks.heldCount,
        scanCursors: this.ctx.cursors.size,
        syncWrites: this.ctx.options.sync,
        memory: processMemory(),
        checkpoints: checkpointStats(this.ctx.checkpoints.figures()),
      },
    }
  }

  // ---- /v1/admin/checkpoint ------------------------------------------------------

  /**
   * Writes a checkpoint into a new subdirectory of the checkpoint directory:
   * the body's `name`, else a generated one. 200 with what was written; 400
   * for a bad body or name, 409 when the name exists (STRATA_EXISTS) or a
   * checkpoint is being written (STRATA_CHECKPOINT_IN_PROGRESS: not queued).
   */
  private async checkpoint(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { checkpoints } = this.ctx
    const refused = checkpoints.refusal(req.socket.remoteAddress)
    if (refused !== undefined) throw new HttpError(403, 'STRATA_FORBIDDEN', refused)
    const body = await readBody(req, CHECKPOINT_BODY_BYTES, 'checkpoint body')
    const bad = (m: string): HttpError => new HttpError(400, 'STRATA_INVALID_ARGUMENT', m)
    let name: string | undefined
    if (body.toString('utf8').trim().length > 0) {
      let parsed: unknown
      try {
        parsed = JSON.parse(body.toString('utf8'))
      } catch (e) {
        throw new HttpError(400, 'STRATA_BAD_REQUEST', `checkpoint body is not JSON: ${(e as Error).message}`)
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('checkpoint body must be a JSON object: {} or { "name": "…" }')
      const o = parsed as Record<string, unknown>
      for (const k of Object.keys(o)) if (k !== 'name') throw bad(`unknown checkpoint field ${JSON.stringify(k.slice(0, 64))} (only "name")`)
      if (o.name !== undefined) {
        const problem = checkpointNameError(o.name)
        if (problem !== undefined) throw bad(problem)
        name = o.name as string
      }
    }
    const run = checkpoints.start('HTTP', name)
    if (run === undefined) {
      throw new HttpError(409, 'STRATA_CHECKPOINT_IN_PROGRESS', 'a checkpoint is being written; try again once it is done', undefined, { 'Retry-After': '1' })
    }
    const done = await run
    this.json(res, 200, {
      sequence: done.sequence,
      bytes: done.bytes,
      files: done.files,
      copiedBytes: done.copiedBytes,
      dir: done.dir,
      name: done.name,
      durationMs: done.durationMs,
    })
  }

  // ---- /v1/kv/{key} -------------------------------------------------------------

  private decodeKey(raw: string): Buffer {
    const key = percentDecode(raw, false)
    if (key === undefined) throw new HttpError(400, 'STRATA_BAD_REQUEST', 'malformed percent-encoding in key')
    checkKey(key, 'key', this.ctx.options.limits.maxKeyBytes)
    return key
  }


  private preconditions(req: http.IncomingMessage): Preconditions {
    const p: Preconditions = {}
    const im = req.headers['if-match']
    const inm = req.headers['if-none-match']
    if (im !== undefined) {
      p.ifMatch = parseEtagList(im, false)
      if (p.ifMatch === undefined) throw new HttpError(400, 'STRATA_BAD_REQUEST', 'malformed If-Match')
    }
    if (inm !== undefined) {
      p.ifNoneMatch = parseEtagList(inm, true)
      if (p.ifNoneMatch === undefined) throw new HttpError(400, 'STRATA_BAD_REQUEST', 'malformed If-None-Match')
    }
    return p
  }

  private async kv(req: http.IncomingMessage, res: http.ServerResponse, rawKey: string, params: Map<string, Buffer>): Promise<void> {
    this.method(req, ['GET', 'HEAD', 'PUT', 'DELETE'])
    const key = this.decodeKey(rawKey)
    const pre = this.preconditions(req)
    const expiry = expiryOfRequest(req.method, params)
    if (req.method === 'GET' || req.method === 'HEAD') return this.read(req, res, key, pre)
    let sync: boolean
    try {
      sync = parseFlag(params.get('sync'), 'sync')
    } catch (e) {
      throw new HttpError(400, 'STRATA_INVALID_ARGUMENT', (e as Error).message)
    }
    this.admitWrite()
    const value = req.method === 'PUT' ? await readBody(req, bodyLimitOf(this.ctx, 'kv'), 'value') : null
    if (value !== null && value.length > this.ctx.options.limits.maxValueBytes) {
      throw new HttpError(413, 'STRATA_TOO_LARGE', `value exceeds maxValueBytes (${this.ctx.options.limits.maxValueBytes})`)
    }
    const expiresAt = expiresAtOf(expiry, this.ctx.clock())
    const version = await this.write(key, value, pre, sync, expiresAt)
    res.writeHead(204, version > 0 ? { ETag: etagOf(version), ...expiryHeader(expiresAt), ...this.closeHeader() } : { ...expiryHeader(expiresAt), ...this.closeHeader() })
    res.end()
  }

  private async read(req: http.IncomingMessage, res: http.ServerResponse, key: Buffer, pre: Preconditions): Promise<void> {
    // A snapshot read sees every acknowledged write without waiting for writes still queued
    // (db.getEntry would wait for them, and so hang in a write stall).
    const snapshot = this.ctx.db.snapshot()
    let entry: Entry | undefined
    try {
      entry = await snapshot.getEntry(key)
    } finally {
      snapshot.release()
    }
    if (pre.ifMatch !== undefined && !matchesIfMatch(pre.ifMatch, entry)) {
      throw new HttpError(412, 'STRATA_PRECONDITION_FAILED', 'If-Match does not match the current version', { version: entry?.version ?? 0 })
    }
    if (entry === undefined) throw new HttpError(404, 'STRATA_NOT_FOUND', 'no such key')
    const etag = etagOf(entry.version)
    if (pre.ifNoneMatch !== undefined && !passesIfNoneMatch(pre.ifNoneMatch, entry)) {
      res.writeHead(304, { ETag: etag, ...expiryHeader(entry.expiresAt), ...this.closeHeader() })
      res.end()
      return
    }
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': entry.value.length,
      ETag: etag,
      ...expiryHeader(entry.expiresAt),
      ...this.closeHeader(),
    })
    res.end(req.method === 'HEAD' ? undefined : entry.value)
  }

  private admitWrite(): void {
    const busy = this.ctx.gate.admit()
    if (busy !== undefined) throw new HttpError(503, 'STRATA_BUSY', `server busy, try again: ${busy.message}`, undefined, { 'Retry-After': '1' })
  }

  /**
   * Puts (or deletes, value null) under the key lock, checking preconditions
   * against the current version atomically; returns the new version (0 for a
   * delete, and for a put whose `expiresAt` has already passed). Throws 412
   * when a precondition fails.
   */
  private async write(key: Buffer, value: Buffer | null, pre: Preconditions, sync: boolean, expiresAt: number | undefined): Promise<number> {
    const { db, gate, locks } = this.ctx
    const release = await locks.acquire([keyId(key)])
    try {
      const conditional = pre.ifMatch !== undefined || pre.ifNoneMatch !== undefined
      for (let attempt = 1; ; attempt++) {
        let ifVersion: number | undefined
        if (conditional) {
          const current = await db.getEntry(key)
          if (
            (pre.ifMatch !== undefined && !matchesIfMatch(pre.ifMatch, current)) ||
            (pre.ifNoneMatch !== undefined && !passesIfNoneMatch(pre.ifNoneMatch, current))
          ) {
            throw new HttpError(412, 'STRATA_PRECONDITION_FAILED', 'precondition failed: the key has another version', { version: current?.version ?? 0 })
          }
          ifVersion = current?.version ?? 0
        }
        const op: BatchOp = value === null ? { type: 'del', key, ifVersion } : { type: 'put', key, value, ifVersion, expiresAt }
        try {
          await gate.track(ifVersion === undefined ? (value === null ? db.delete(key, { sync }) : db.put(key, value, { sync, expiresAt })) : db.batch([op], { sync }))
        } catch (e) {
          // Only a writer outside this server can race us under the key lock; re-evaluate.
          if (e instanceof ConflictError && attempt < MAX_CONDITIONAL_ATTEMPTS) continue
          throw e
        }
        if (value === null) return 0
        // Under the key lock nothing else wrote the key since: this is our version.
        return (await db.getEntry(key))?.version ?? 0
      }
    } finally {
      release()
    }
  }

  // ---- /v1/batch ------------------------------------------------------------------

  private async batch(req: http.IncomingMessage, res: http.ServerResponse, params: Map<string, Buffer>): Promise<void> {
    this.admitWrite()
    const body = await readBody(req, this.ctx.options.limits.maxBodyBytes, 'batch body')
    let parsed: unknown
    try {
      parsed = JSON.parse(body.toString('utf8'))
    } catch (e) {
      throw new HttpError(400, 'STRATA_BAD_REQUEST', `batch body is not JSON: ${(e as Error).message}`)
    }
    const { ops, sync } = parseBatch(parsed, params, this.ctx.options.limits)
    const { db, gate, locks } = this.ctx
    // A range delete touches every key of its range: hold the whole key space.
    const keyed = ops.filter((o): o is BatchOp => o.type !== 'delRange')
    const release = await (keyed.length < ops.length ? locks.acquireAll() : locks.acquire(keyed.map((o) => keyId(o.key as Buffer))))
    try {
      try {
        await gate.track(db.batch(ops, { sync }))
      } catch (e) {
        if (e instanceof ConflictError) {
          throw new HttpError(409, 'STRATA_CONFLICT', e.message, { keys: e.keys.map((k) => jsonBytes('key', k)) })
        }
        throw e
      }
      const versions: number[] = []
      for (const op of ops) {
        if (op.type === 'put') versions.push((await db.getEntry(op.key))?.version ?? 0)
        else if (op.type === 'del' || op.type === 'delRange') versions.push(0)
        else versions.push(op.ifVersion)
      }
      this.json(res, 200, { versions })
    } finally {
      release()
    }
  }
}

/** The checkpoint figures of /v1/stats. */
function checkpointStats(c: CheckpointFigures): unknown {
  return {
    dir: c.dir,
    inProgress: c.inProgress,
    scheduled: c.scheduled,
    completed: c.completed,
    failed: c.failed,
    lastStatus: c.lastStatus,
    lastError: c.lastError ?? null,
    lastDurationMs: c.lastDurationMs < 0 ? null : Math.round(c.lastDurationMs),
    changesSinceLast: c.changesSinceLast,
    last:
      c.last === undefined
        ? null
        : { dir: c.last.dir, name: c.last.name, sequence: c.last.sequence, bytes: c.last.bytes, files: c.last.files, copiedBytes: c.last.copiedBytes, durationMs: c.last.durationMs, at: new Date(c.last.finishedAtMs).toISOString() },
  }
}

function processMemory(): { rssBytes: number; heapUsedBytes: number; externalBytes: number } {
  const m = process.memoryUsage()
  return { rssBytes: m.rss, heapUsedBytes: m.heapUsed, externalBytes: m.external }
}

function matchesIfMatch(tags: '*' | number[], entry: Entry | undefined): boolean {
  if (entry === undefined) return false
  return tags === '*' || tags.includes(entry.version)
}

function passesIfNoneMatch(tags: '*' | number[], entry: Entry | undefined): boolean {
  if (entry === undefined) return true
  return tags !== '*' && !tags.includes(entry.version)
}
