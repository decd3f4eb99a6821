/**
 * Options of `strata serve` and `startServer()`: where to listen, the data
 * directory, and every limit the server enforces. Sizes carry their unit in
 * the name (…Bytes), durations too (…Ms).
 */
import { isIPv6 } from 'node:net'
import * as path from 'node:path'
import type { OpenOptions } from '../../index.js'

/** Limits the HTTP and RESP front ends enforce before anything reaches the engine. */
export interface ServerLimits {
  /** Largest key accepted (HTTP path, JSON batch, RESP argument). Default 16 KiB; the engine's maxKeyBytes also applies. */
  maxKeyBytes: number
  /** Largest value accepted. Default 16 MiB (the engine default). */
  maxValueBytes: number
  /** Largest HTTP request body (PUT value or JSON batch). Default 32 MiB. */
  maxBodyBytes: number
  /** Largest HTTP request line target (path and query). Default 32 KiB; longer gets 414. */
  maxUrlBytes: number
  /** Largest HTTP request head (request line plus headers). Default 64 KiB; larger gets 431. */
  maxHeaderBytes: number
  /** Operations in one POST /v1/batch. Default 10,000. */
  maxBatchOps: number
  /** Open connections per protocol; more are answered with an error and closed. Default 1024. */
  maxConnections: number
  /** Largest RESP bulk string (one argument). Default 16 MiB + 64 KiB. */
  maxBulkBytes: number
  /** Most arguments in one RESP command. Default 65,536. */
  maxArgs: number
  /** Longest RESP inline command line. Default 64 KiB (as in Redis). */
  maxInlineBytes: number
  /** Most bytes of arguments in one RESP command. Default 64 MiB. */
  maxCommandBytes: number
  /** Replies one RESP connection may have outstanding before its input is paused. Default 1024. */
  maxPendingReplies: number
  /** Unsent output one connection may buffer before its input is paused. Default 4 MiB. */
  maxOutputBufferBytes: number
  /** Most keys KEYS returns before answering an error (use SCAN). Default 100,000. */
  maxKeysReply: number
  /** Writes in flight in the engine (all connections) before new writes are refused (503 / -BUSY). Default 10,000. */
  maxPendingWrites: number
  /** Writes are refused (503 / -BUSY) while writes are pending and none completed for this long. Default 2,000 ms. */
  maxWriteStallMs: number
  /** Bytes of keys remembered for SCAN cursors (oldest forgotten first). Default 8 MiB. */
  maxScanCursorBytes: number
  /**
   * RESP before AUTH (only with a token): most arguments of one command. Default 10, as Redis
   * (CVE-2021-32675); more is `-ERR Protocol error: unauthenticated multibulk length` and a close.
   */
  maxPreAuthArgs: number
  /** RESP before AUTH (only with a token): largest bulk string. Default 16 KiB, as Redis; more is `…unauthenticated bulk length` and a close. */
  maxPreAuthBulkBytes: number
  /**
   * Largest reply of one RESP command with many parts (MGET, EXEC, KEYS, SCAN), checked while the
   * reply is built: over it the command answers `-ERR reply exceeds maxReplyBytes (N bytes)`
   * instead. Default 64 MiB.
   */
  maxReplyBytes: number
  /**
   * Redis' `client-output-buffer-limit normal <hard> <soft> <seconds>` for RESP connections: a
   * connection whose unsent output exceeds the hard limit is closed at once; one whose output stays
   * above the soft limit for `outputSoftLimitMs` is closed (a client that does not read). 0 = no
   * limit. Defaults: 256 MiB hard, 4 MiB soft for 60,000 ms.
   */
  outputHardLimitBytes: number
  outputSoftLimitBytes: number
  outputSoftLimitMs: number
  /**
   * Redis 7's `maxmemory-clients`: a budget for the memory all RESP connections hold together
   * (unsent output plus input not yet parsed). Over it, the connections holding the most are
   * closed until the total is back under it (client eviction, INFO `evicted_clients`); a client
   * that reads its replies holds next to nothing and is not chosen. 0 = no budget. Default
   * `defaultMaxMemoryClientsBytes(limits)`: `maxReplyBytes + 2 × maxOutputBufferBytes` (72 MiB).
   */
  maxMemoryClientsBytes: number
}

/**
 * The default client memory budget: room for one client receiving the largest reply
 * (`maxReplyBytes`) with a paused pipeline behind it (`maxOutputBufferBytes`) and as much again
 * for everyone else, 72 MiB with the default limits. A client that reads holds next to nothing, so
 * the budget only has to cover clients that do not read, and each of those holds about
 * `maxOutputBufferBytes`: more budget only lets more of them stay. (`strata serve` under the
 * issue #16 attack: peak RSS ~220 MiB with 64 MiB, ~260 MiB with 96 MiB, ~285 MiB with 128 MiB:
 * the process's own ~75 MiB plus the budget plus ~70 MiB of allocator and heap slack.)
 */
export function defaultMaxMemoryClientsBytes(limits: Pick<ServerLimits, 'maxReplyBytes' | 'maxOutputBufferBytes'>): number {
  return limits.maxReplyBytes + 2 * limits.maxOutputBufferBytes
}

/** Everything `startServer()` needs. */
export interface ServerOptions {
  /** Data directory, created when missing. Default ./strata-data. */
  dir: string
  /** HTTP listen address `host:port` (port 0 = ephemeral), or null for no HTTP. Default 127.0.0.1:7070. */
  http: string | null
  /** RESP listen address `host:port`, or null for no RESP. Default 127.0.0.1:6380. */
  resp: string | null
  /** fsync every write before acknowledging it (engine `syncWrites`). Default false: acknowledged writes survive kill -9 but not power loss. */
  sync: boolean
  /**
   * Where checkpoints (HTTP `POST /v1/admin/checkpoint`, RESP `SAVE`/`BGSAVE`) are written, each
   * in a new subdirectory; created when first needed. Must not be the data directory or inside it.
   * Default: the data directory's sibling `<dir>.checkpoints` (resolved to an absolute path).
   */
  checkpointDir: string
  /** Shared secret for HTTP `Authorization: Bearer` and RESP `AUTH`; required to bind a non-loopback address. */
  token?: string
  /**
   * Extra engine options (tests use small memtables, and a `clock` they move by hand: the server
   * computes TTLs and relative expiries from the engine's clock). `syncWrites` comes from `sync`.
   */
  dbOptions?: OpenOptions
  /**
   * Run as one replica of a cluster coordinated by etcd (docs/replication.md): `url` is
   * `etcd://host:port[,…]/<cluster>`, `nodeId` this replica's id (stored in the data directory),
   * `peer` the replication listen address, `commitTimeoutMs` how long a leader waits for a
   * majority before it steps down (default 5,000), `walRetainBytes` how much WAL a leader keeps
   * for replicas that are behind (default 1 GiB; past it they get a checkpoint), `peerVia` where to
   * reach some replicas instead of their registered peer address (id → host:port). Undefined: a
   * single node.
   */
  cluster?: { url: string; nodeId: string; peer: string; commitTimeoutMs?: number; walRetainBytes?: number; peerVia?: Record<string, string> }
  /** How long a graceful shutdown waits for in-flight requests before closing connections. Default 10,000 ms. */
  shutdownTimeoutMs: number
  /** HTTP: time to receive a request head. Default 20,000 ms. */
  headersTimeoutMs: number
  /** HTTP: time to receive a whole request (head and body). Default 120,000 ms. */
  requestTimeoutMs: number
  /** Idle keep-alive HTTP connections are closed after this long. Default 5,000 ms. */
  httpIdleTimeoutMs: number
  /**
   * Authenticated RESP connections idle this long (nothing received, no output sent) are closed;
   * 0 = never (Redis' `timeout`, CLI `--client-timeout <seconds>`). Default 0.
   */
  respIdleTimeoutMs: number
  /** With a token: RESP connections not yet authenticated are closed after this long idle. 0 = never. Default 10,000 ms. */
  respAuthTimeoutMs: number
  /**
   * HTTP: a response whose client reads nothing for this long (a range stream waiting for the
   * socket to drain, or a large value not yet flushed) is destroyed, releasing what it pinned
   * (iterator, tables, memtables). 0 = never. Default 30,000 ms.
   */
  sendTimeoutMs: number
  /**
   * HTTP `Host` names accepted besides loopback names (`localhost`, `*.localhost`), loopback
   * addresses and the bound address: exact names, `*.example.com` for subdomains, `*` for any.
   * Defends against DNS rebinding. Default none.
   */
  allowHosts: string[]
  /**
   * Browser origins (`http://host:port`) allowed to send cross-site requests; CORS (preflight
   * included) is answered for them. Every other cross-site request is refused (403). Default none.
   */
  allowOrigins: string[]
  limits: ServerLimits
  /** Where diagnostics go. Default: stderr. */
  log: (line: string) => void
}

/** Defaults of every limit. */
export const DEFAULT_LIMITS: Readonly<ServerLimits> = Object.freeze({
  maxKeyBytes: 16 * 1024,
  maxValueBytes: 16 * 1024 * 1024,
  maxBodyBytes: 32 * 1024 * 1024,
  maxUrlBytes: 32 * 1024,
  maxHeaderBytes: 64 * 1024,
  maxBatchOps: 10_000,
  maxConnections: 1024,
  maxBulkBytes: 16 * 1024 * 1024 + 64 * 1024,
  maxArgs: 65_536,
  maxInlineBytes: 64 * 1024,
  maxCommandBytes: 64 * 1024 * 1024,
  maxPendingReplies: 1024,
  maxOutputBufferBytes: 4 * 1024 * 1024,
  maxKeysReply: 100_000,
  maxPendingWrites: 10_000,
  maxWriteStallMs: 2_000,
  maxScanCursorBytes: 8 * 1024 * 1024,
  maxPreAuthArgs: 10,
  maxPreAuthBulkBytes: 16 * 1024,
  maxReplyBytes: 64 * 1024 * 1024,
  outputHardLimitBytes: 256 * 1024 * 1024,
  outputSoftLimitBytes: 4 * 1024 * 1024,
  outputSoftLimitMs: 60_000,
  maxMemoryClientsBytes: 64 * 1024 * 1024 + 2 * 4 * 1024 * 1024, // defaultMaxMemoryClientsBytes(DEFAULT_LIMITS)
})

/** Defaults of `ServerOptions` (limits apart). */
export const DEFAULT_SERVER_OPTIONS = Object.freeze({
  dir: './strata-data',
  http: '127.0.0.1:7070',
  resp: '127.0.0.1:6380',
  sync: false,
  shutdownTimeoutMs: 10_000,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 120_000,
  httpIdleTimeoutMs: 5_000,
  respIdleTimeoutMs: 0,
  respAuthTimeoutMs: 10_000,
  sendTimeoutMs: 30_000,
})

/** What callers may pass: everything optional, limits partially. */
export type ServerOptionsInput = Partial<Omit<ServerOptions, 'limits'>> & { limits?: Partial<ServerLimits> }

/** Merges `input` over the defaults and validates it; throws a plain Error with a readable message. */
export function resolveServerOptions(input: ServerOptionsInput = {}): ServerOptions {
  const limits: ServerLimits = { ...DEFAULT_LIMITS }
  for (const [name, value] of Object.entries(input.limits ?? {})) {
    if (value === undefined) continue
    if (!(name in DEFAULT_LIMITS)) throw new Error(`unknown server limit ${name}`)
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new Error(`server limit ${name} must be a non-negative integer`)
    }
    ;(limits as unknown as Record<string, number>)[name] = value
  }
  // Unless given, the client memory budget follows maxReplyBytes and maxOutputBufferBytes.
  if (input.limits?.maxMemoryClientsBytes === undefined) limits.maxMemoryClientsBytes = defaultMaxMemoryClientsBytes(limits)
  for (const name of ['maxKeyBytes', 'maxConnections', 'maxArgs', 'maxInlineBytes', 'maxPendingReplies', 'maxPendingWrites', 'maxBatchOps', 'maxPreAuthArgs', 'maxPreAuthBulkBytes', 'maxReplyBytes'] as const) {
    if (limits[name] < 1) throw new Error(`server limit ${name} must be at least 1`)
  }
  const out: ServerOptions = {
    dir: input.dir ?? DEFAULT_SERVER_OPTIONS.dir,
    http: input.http === undefined ? DEFAULT_SERVER_OPTIONS.http : input.http,
    resp: input.resp === undefined ? DEFAULT_SERVER_OPTIONS.resp : input.resp,
    sync: input.sync ?? DEFAULT_SERVER_OPTIONS.sync,
    checkpointDir: '',
    token: input.token,
    dbOptions: input.dbOptions,
    cluster: input.cluster,
    shutdownTimeoutMs: input.shutdownTimeoutMs ?? DEFAULT_SERVER_OPTIONS.shutdownTimeoutMs,
    headersTimeoutMs: input.headersTimeoutMs ?? DEFAULT_SERVER_OPTIONS.headersTimeoutMs,
    requestTimeoutMs: input.requestTimeoutMs ?? DEFAULT_SERVER_OPTIONS.requestTimeoutMs,
    httpIdleTimeoutMs: input.httpIdleTimeoutMs ?? DEFAULT_SERVER_OPTIONS.httpIdleTimeoutMs,
    respIdleTimeoutMs: input.respIdleTimeoutMs ?? DEFAULT_SERVER_OPTIONS.respIdleTimeoutMs,
    respAuthTimeoutMs: input.respAuthTimeoutMs ?? DEFAULT_SERVER_OPTIONS.respAuthTimeoutMs,
    sendTimeoutMs: input.sendTimeoutMs ?? DEFAULT_SERVER_OPTIONS.sendTimeoutMs,
    allowHosts: normalizeAllowedHosts(input.allowHosts ?? []),
    allowOrigins: normalizeAllowedOrigins(input.allowOrigins ?? []),
    limits,
    log: input.log ?? ((line) => process.stderr.write(`strata serve: ${line}\n`)),
  }
  if (typeof out.dir !== 'string' || out.dir.length === 0) throw new Error('dir must be a non-empty path')
  out.checkpointDir = resolveCheckpointDir(out.dir, input.checkpointDir)
  if (out.http === null && out.resp === null) throw new Error('nothing to serve: both HTTP and RESP are disabled')
  for (const name of ['shutdownTimeoutMs', 'headersTimeoutMs', 'requestTimeoutMs', 'httpIdleTimeoutMs', 'respIdleTimeoutMs', 'respAuthTimeoutMs', 'sendTimeoutMs'] as const) {
    const v = out[name]
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer`)
  }
  if (out.token !== undefined && (typeof out.token !== 'string' || out.token.length === 0)) throw new Error('token must be a non-empty string')
  if (limits.maxHeaderBytes < limits.maxUrlBytes + 1024) limits.maxHeaderBytes = limits.maxUrlBytes + 1024
  return out
}

/** The checkpoint directory, absolute: `given`, else `<dir>.checkpoints`; refuses the data directory and anything inside it. */
export function resolveCheckpointDir(dir: string, given: string | undefined): string {
  if (given !== undefined && (typeof given !== 'string' || given.length === 0)) throw new Error('checkpointDir must be a non-empty path')
  const data = path.resolve(dir)
  const out = given === undefined ? defaultCheckpointDir(data) : path.resolve(given)
  const rel = path.relative(data, out)
  const outside = rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)
  if (!outside) {
    throw new Error(`--checkpoint-dir ${out} is inside the data directory ${data}: give a directory outside it (default ${defaultCheckpointDir(data)})`)
  }
  return out
}

/** `<dir>.checkpoints`, next to the data directory. */
export function defaultCheckpointDir(dir: string): string {
  return `${path.resolve(dir)}.checkpoints`
}

/** Lower-cased host names without a trailing dot; `*.example.com` and `*` are kept as patterns. */
export function normalizeAllowedHosts(hosts: readonly string[]): string[] {
  if (!Array.isArray(hosts)) throw new Error('allowHosts must be an array of host names')
  return hosts.map((h) => {
    if (typeof h !== 'string') throw new Error('allowHosts must be an array of host names')
    let n = h.trim().toLowerCase()
    if (n.startsWith('[') && n.endsWith(']')) n = n.slice(1, -1)
    if (n.endsWith('.')) n = n.slice(0, -1)
    if (n.length === 0 || /[\s/@?#]/.test(n) || (n.includes(':') && !isIPv6(n)) || (n.includes('*') && n !== '*' && !(n.startsWith('*.') && !n.slice(2).includes('*')))) {
      throw new Error(`--allow-host: invalid host name ${JSON.stringify(h)} (give a name such as db.example.com, *.example.com or *, without port)`)
    }
    return n
  })
}

/** Origins as browsers send them: `scheme://host[:port]`, lower-cased, default ports dropped. */
export function normalizeAllowedOrigins(origins: readonly string[]): string[] {
  if (!Array.isArray(origins)) throw new Error('allowOrigins must be an array of origins')
  return origins.map((o) => {
    if (typeof o !== 'string') throw new Error('allowOrigins must be an array of origins')
    let url: URL | undefined
    try {
      url = new URL(o.trim())
    } catch {
      url = undefined
    }
    const bad = url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== ''
    if (url === undefined || bad) {
      throw new Error(`--allow-origin: invalid origin ${JSON.stringify(o)} (give scheme://host[:port], e.g. http://localhost:3000)`)
    }
    return url.origin
  })
}
