/**
 * A running stratadb server: opens the database, starts the HTTP and RESP
 * listeners, and shuts everything down in order.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { open, type Database } from '../index.js'
import { resolveOptions } from '../options.js'
import { formatAddress, parseListenAddress, type ListenAddress } from './shared/address.js'
import { TokenChecker, checkBoundExposure, checkExposure, checkNamesResolveToLoopback } from './shared/auth.js'
import { Checkpoints } from './shared/checkpoints.js'
import type { RespContext } from './resp/context.js'
import { HttpServer } from './http/server.js'
import { KeyLocks } from './shared/key-locks.js'
import { ServerMetrics } from './shared/metrics.js'
import { resolveServerOptions, type ServerOptions, type ServerOptionsInput } from './shared/options.js'
import { ClientMemory } from './resp/client-memory.js'
import { setStrataVersion } from './resp/commands-server.js'
import { RespServer } from './resp/server.js'
import { ScanCursors } from './resp/scan-cursors.js'
import { WriteBatcher } from './resp/write-batcher.js'
import { WriteGate } from './shared/write-gate.js'
import { ClusterNode } from '../cluster/cluster-node.js'

/** A started server. */
export interface StrataServer {
  /** Bound HTTP address (`host:port`), or null when HTTP is off. */
  readonly http: string | null
  /** Bound RESP address, or null when RESP is off. */
  readonly resp: string | null
  readonly httpPort: number | null
  readonly respPort: number | null
  readonly options: ServerOptions
  readonly db: Database
  /** The cluster node when serving as a replica (`options.cluster`), and its bound peer address. */
  readonly cluster?: ClusterNode
  readonly peer?: string
  /**
   * Graceful shutdown: stop accepting, finish in-flight requests (up to
   * `shutdownTimeoutMs`), close the database. Idempotent.
   */
  close(): Promise<void>
}

/**
 * Validates the options (refusing a non-loopback address without a token),
 * opens the database and starts listening. Throws a readable Error.
 */
export async function startServer(input: ServerOptionsInput = {}): Promise<StrataServer> {
  const options = resolveServerOptions(input)
  const httpAddress = options.http === null ? undefined : parseListenAddress(options.http, '--http')
  const respAddress = options.resp === null ? undefined : parseListenAddress(options.resp, '--resp')
  const addresses: Array<{ name: string; address: ListenAddress }> = []
  if (httpAddress) addresses.push({ name: 'HTTP', address: httpAddress })
  if (respAddress) addresses.push({ name: 'RESP', address: respAddress })
  checkExposure(addresses, options.token)
  await checkNamesResolveToLoopback(addresses, options.token)
  setStrataVersion(ownVersion())

  const cluster = options.cluster === undefined ? undefined : await openClusterNode(options)
  const db = cluster?.db ?? (await openDatabase(options))
  let httpServer: HttpServer | undefined
  let respServer: RespServer | undefined
  const ctx = newContext(db, options, () => ({ http: httpServer?.connectionCount ?? 0, resp: respServer?.connectionCount ?? 0 }), cluster)
  let httpBound: string | null = null
  let respBound: string | null = null
  let httpPort: number | null = null
  let respPort: number | null = null
  try {
    if (httpAddress) {
      httpServer = new HttpServer(ctx)
      const a = await httpServer.listen(httpAddress)
      checkBoundExposure('HTTP', httpAddress, a, options.token)
      httpBound = formatAddress(a.address, a.port)
      httpPort = ctx.ports.http = a.port
    }
    if (respAddress) {
      respServer = new RespServer(ctx)
      const a = await respServer.listen(respAddress)
      checkBoundExposure('RESP', respAddress, a, options.token)
      respBound = formatAddress(a.address, a.port)
      respPort = ctx.ports.resp = a.port
    }
  } catch (e) {
    await Promise.allSettled([httpServer?.close(0), respServer?.close(0)])
    await (cluster ?? db).close()
    throw e
  }
  let peer: string | undefined
  if (cluster !== undefined) {
    const peerAddress = parseListenAddress(options.cluster!.peer, '--peer')
    peer = formatAddress(peerAddress.host, cluster.peerPort)
    cluster.run({ http: httpBound, resp: respBound, peer })
  }

  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= (async () => {
      ctx.shuttingDown = true
      // A checkpoint being written (a BGSAVE runs on after its reply) finishes before the database closes.
      await Promise.all([httpServer?.close(options.shutdownTimeoutMs), respServer?.close(options.shutdownTimeoutMs), ctx.checkpoints.close()])
      ctx.batcher.flush()
      await (cluster ?? db).close()
    })()
    return closing
  }
  return { http: httpBound, resp: respBound, httpPort, respPort, options, db, cluster, peer, close }
}

/** Opens the replica of `options.cluster` (reads the cluster's config from etcd, opens the database and the peer listener). */
async function openClusterNode(options: ServerOptions): Promise<ClusterNode> {
  const c = options.cluster!
  const peer = parseListenAddress(c.peer, '--peer')
  // The peer protocol has no authentication of its own yet: it is refused on anything but loopback.
  checkExposure([{ name: 'peer', address: peer }], undefined)
  const node = await ClusterNode.open({
    clusterUrl: c.url,
    nodeId: c.nodeId,
    dir: options.dir,
    dbOptions: {
      ...options.dbOptions,
      syncWrites: options.sync,
      // WAL is kept for replicas that are behind, up to the byte bound, however old (docs/replication.md, "Catch-up").
      walRetentionBytes: c.walRetainBytes ?? 1 << 30,
      walRetentionMs: 365 * 24 * 3600 * 1000,
      onBackgroundError: (info) => options.log(`${info.readOnly ? 'database is read-only: ' : ''}${info.where} failed: ${info.error.message}`),
    },
    sync: options.sync,
    peer: { host: peer.host, port: peer.port },
    commitTimeoutMs: c.commitTimeoutMs,
    peerVia: new Map(Object.entries(c.peerVia ?? {}).map(([id, a]) => [id, parseListenAddress(a, `--peer-via ${id}`)])),
    logLine: options.log,
  })
  for (const warning of node.db.stats().recovery.warnings) options.log(`recovery: ${warning}`)
  return node
}

/** Opens the database of `options`, logging background errors and recovery warnings. */
async function openDatabase(options: ServerOptions): Promise<Database> {
  const db = await open(options.dir, {
    ...options.dbOptions,
    syncWrites: options.sync,
    onBackgroundError: (info) => {
      options.log(`${info.readOnly ? 'database is read-only: ' : ''}${info.where} failed${info.errno ? ` (${info.errno})` : ''}: ${info.error.message}`)
      options.dbOptions?.onBackgroundError?.(info)
    },
  })
  for (const warning of db.stats().recovery.warnings) options.log(`recovery: ${warning}`)
  return db
}

/** The state both front ends share, and RESP's own; `connections` counts the open connections per protocol. */
function newContext(db: Database, options: ServerOptions, connections: () => { http: number; resp: number }, cluster: ClusterNode | undefined): RespContext {
  const gate = new WriteGate(options.limits.maxPendingWrites, options.limits.maxWriteStallMs)
  const dbOptions = resolveOptions(options.dbOptions)
  const batcher = new WriteBatcher(db, { maxKeyBytes: dbOptions.maxKeyBytes, maxValueBytes: dbOptions.maxValueBytes })
  const locks = new KeyLocks()
  const clientMemory = new ClientMemory(options.limits.maxMemoryClientsBytes)
  const checkpoints = new Checkpoints(db, options.checkpointDir, options.token !== undefined, options.log)
  // Queued writes touching a key go to the engine once an exclusive holder has taken it, before it reads (resp/write-batcher.ts).
  locks.onAcquired = (ids) => batcher.flushIfTouching(ids)
  // A writer of the whole key space (FLUSHDB, a range delete) goes after every queued write.
  locks.onAcquiredAll = () => batcher.flush()
  return {
    db,
    cluster,
    options,
    locks,
    gate,
    batcher,
    cursors: new ScanCursors(options.limits.maxScanCursorBytes),
    clientMemory,
    checkpoints,
    auth: options.token === undefined ? undefined : new TokenChecker(options.token),
    startedAtMs: performance.now(),
    clock: dbOptions.clock,
    shuttingDown: false,
    ports: { http: null, resp: null },
    log: options.log,
    connectionCount: connections,
    metrics: new ServerMetrics({
      engineStats: () => (db.isOpen ? db.stats() : undefined),
      connections,
      pendingWrites: () => gate.pending,
      writeStalledMs: () => gate.stalledMs(),
      busyRefusals: () => gate.refused,
      clientMemory: () => clientMemory,
      checkpoints: () => checkpoints.figures(),
    }),
  }
}

/** The version in package.json, or 0.0.0 when it cannot be read. */
export function ownVersion(): string {
  try {
    const here = path.dirname(fileURLToPath(import.meta.url))
    const pkg = JSON.parse(fs.readFileSync(path.join(here, '..', '..', 'package.json'), 'utf8')) as { version?: string }
    return pkg.version ?? '0.0.0'
  } catch {
    return '0.0.0'
  }
}
