/**
 * `strata serve`: command-line options, startup banner (the bound ports, so
 * that `--http 127.0.0.1:0` is usable by scripts and tests), and the signal
 * handling of the process: SIGTERM/SIGINT stop accepting, finish in-flight
 * requests, close the database and exit 0; a second signal exits at once.
 * An unhandled promise rejection is logged and exits 70 (EX_SOFTWARE), so
 * that a supervisor restarts a server whose state is unknown.
 */
import * as path from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { readTokenFile } from './shared/auth.js'
import { DEFAULT_LIMITS, DEFAULT_SERVER_OPTIONS, type ServerLimits, type ServerOptionsInput } from './shared/options.js'
import { startServer, type StrataServer } from './start-server.js'

/** Options of `strata serve` as commander hands them over. */
export interface ServeCliOptions {
  dir: string
  http: string
  resp: string
  sync?: boolean
  checkpointDir?: string
  tokenFile?: string
  maxConnections?: number
  maxValueBytes?: number
  maxKeyBytes?: number
  maxBodyBytes?: number
  maxPendingWrites?: number
  maxWriteStallMs?: number
  shutdownTimeoutMs?: number
  sendTimeoutMs?: number
  clientTimeout?: number
  authTimeout?: number
  clientOutputBufferLimit?: OutputBufferLimit
  maxReplyBytes?: number
  maxmemoryClients?: number
  allowHost?: string[]
  allowOrigin?: string[]
  cluster?: string
  nodeId?: string
  peer?: string
  commitTimeoutMs?: number
  walRetainMib?: number
  memtableMib?: number
  peerVia?: string[]
}

/** Exit code after an unhandled rejection (sysexits EX_SOFTWARE). */
export const EXIT_UNHANDLED_REJECTION = 70

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((v) => v.trim()).filter((v) => v.length > 0)]
}

function nonNegativeInteger(value: string): number {
  const n = Number(value.replaceAll('_', ''))
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer')
  return n
}

/** Redis' `client-output-buffer-limit normal <hard> <soft> <seconds>`, in bytes and ms. */
export interface OutputBufferLimit {
  hardBytes: number
  softBytes: number
  softMs: number
}

/** A Redis memory size: `1k` = 1000, `1kb` = 1024, `m`/`mb`, `g`/`gb`, case-insensitive; a plain number is bytes. */
export function parseRedisBytes(text: string): number | undefined {
  const m = /^(\d+)(k|kb|m|mb|g|gb|b)?$/i.exec(text.trim().replaceAll('_', ''))
  if (m === null) return undefined
  const unit = (m[2] ?? 'b').toLowerCase()
  const scale: Record<string, number> = { b: 1, k: 1e3, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 }
  const n = Number(m[1]) * scale[unit]
  return Number.isSafeInteger(n) ? n : undefined
}

/** Parses a `--maxmemory-clients` value: a Redis memory size (`128mb`, `1gb`, bytes); 0 = no budget. */
export function parseMaxMemoryClients(value: string): number {
  const n = parseRedisBytes(value)
  if (n === undefined) throw new InvalidArgumentError('expected a size such as 128mb, 1gb or a number of bytes (0 = no limit)')
  return n
}

/** Parses `[normal] <hard> <soft> <seconds>` (Redis' client-output-buffer-limit syntax; 0 = no limit). */
export function parseOutputBufferLimit(value: string): OutputBufferLimit {
  const parts = value.trim().split(/\s+/)
  if (parts[0]?.toLowerCase() === 'normal') parts.shift()
  const [hard, soft, seconds] = parts.map((p, i) => (i < 2 ? parseRedisBytes(p) : /^\d+$/.test(p) ? Number(p) : undefined))
  if (parts.length !== 3 || hard === undefined || soft === undefined || seconds === undefined) {
    throw new InvalidArgumentError('expected "<hard> <soft> <seconds>", e.g. "256mb 4mb 60" (0 = no limit)')
  }
  return { hardBytes: hard, softBytes: soft, softMs: seconds * 1000 }
}

/** Adds the `serve` subcommand to a commander program (the `strata` CLI). */
export function registerServeCommand(program: Command): Command {
  const d = DEFAULT_SERVER_OPTIONS
  return program
    .command('serve')
    .description('serve a data directory over HTTP and the Redis protocol (RESP)')
    .option('--dir <path>', 'data directory (created when missing)', d.dir)
    .option('--http <host:port>', 'HTTP listen address; port 0 = ephemeral; "off" disables', d.http)
    .option('--resp <host:port>', 'RESP (Redis protocol) listen address; port 0 = ephemeral; "off" disables', d.resp)
    .option('--sync', 'fsync every write before acknowledging it (survives power loss, not only kill -9)')
    .option('--checkpoint-dir <path>', 'where POST /v1/admin/checkpoint, SAVE and BGSAVE write checkpoints, each in a new subdirectory (default: <dir>.checkpoints, next to the data directory)')
    .option('--token-file <file>', 'file holding the shared token (HTTP "Authorization: Bearer", RESP AUTH); required for non-loopback addresses')
    .option('--max-connections <n>', `connections per protocol (default ${DEFAULT_LIMITS.maxConnections})`, nonNegativeInteger)
    .option('--max-key-bytes <n>', `largest key (default ${DEFAULT_LIMITS.maxKeyBytes})`, nonNegativeInteger)
    .option('--max-value-bytes <n>', `largest value (default ${DEFAULT_LIMITS.maxValueBytes})`, nonNegativeInteger)
    .option('--max-body-bytes <n>', `largest HTTP body (default ${DEFAULT_LIMITS.maxBodyBytes})`, nonNegativeInteger)
    .option('--max-pending-writes <n>', `writes in flight before 503 / -BUSY (default ${DEFAULT_LIMITS.maxPendingWrites})`, nonNegativeInteger)
    .option('--max-write-stall-ms <n>', `write stall before 503 / -BUSY (default ${DEFAULT_LIMITS.maxWriteStallMs})`, nonNegativeInteger)
    .option('--shutdown-timeout-ms <n>', `graceful shutdown bound (default ${d.shutdownTimeoutMs})`, nonNegativeInteger)
    .option('--send-timeout-ms <n>', `HTTP: cut off a response whose client reads nothing for this long; 0 = never (default ${d.sendTimeoutMs})`, nonNegativeInteger)
    .option('--client-timeout <seconds>', `RESP: close a client idle this long; 0 = never, as Redis' timeout (default ${d.respIdleTimeoutMs / 1000})`, nonNegativeInteger)
    .option('--auth-timeout <seconds>', `RESP with --token-file: close a client that has not authenticated and is idle this long; 0 = never (default ${d.respAuthTimeoutMs / 1000})`, nonNegativeInteger)
    .option(
      '--client-output-buffer-limit <"hard soft seconds">',
      `RESP: close a client whose unsent output exceeds <hard>, or <soft> for <seconds> (Redis syntax, e.g. "256mb 4mb 60"; 0 = no limit) (default "${DEFAULT_LIMITS.outputHardLimitBytes / 1024 ** 2}mb ${DEFAULT_LIMITS.outputSoftLimitBytes / 1024 ** 2}mb ${DEFAULT_LIMITS.outputSoftLimitMs / 1000}")`,
      parseOutputBufferLimit,
    )
    .option(
      '--maxmemory-clients <size>',
      `RESP: budget for the memory all clients hold (unsent replies, unparsed input); over it the clients holding the most are disconnected (Redis' maxmemory-clients, e.g. 128mb; 0 = no limit) (default ${DEFAULT_LIMITS.maxMemoryClientsBytes / 1024 ** 2}mb: max-reply-bytes plus twice the 4 MiB output pause)`,
      parseMaxMemoryClients,
    )
    .option('--max-reply-bytes <n>', `RESP: largest reply of MGET, EXEC, KEYS, SCAN; larger ones answer an error (default ${DEFAULT_LIMITS.maxReplyBytes})`, nonNegativeInteger)
    .option('--allow-host <name>', 'HTTP: also accept this Host name (repeatable or comma-separated; *.example.com, * for any); loopback names and the bound address are always accepted', collect)
    .option('--allow-origin <origin>', 'HTTP: let browser pages of this origin (scheme://host[:port]) call the API, with CORS (repeatable or comma-separated)', collect)
    .option('--cluster <etcd://host:port[,host:port]/name>', 'run as a replica of this cluster (etcd endpoints and cluster name; strata cluster init first; docs/replication.md)')
    .option('--node-id <id>', 'with --cluster: this replica\'s id, one of the cluster\'s replicas (stored in the data directory)')
    .option('--peer <host:port>', 'with --cluster: replication listen address (other replicas connect here)')
    .option('--peer-via <id=host:port>', 'with --cluster: reach replica <id> at this address instead of the one it registered (a tunnel or proxy; repeatable or comma-separated)', collect)
    .option('--wal-retain-mib <n>', 'with --cluster: WAL kept for replicas that are behind (past it, a replica catches up by a checkpoint) (default 1024)', nonNegativeInteger)
    .option('--memtable-mib <n>', 'memtable size in MiB (default 64)', nonNegativeInteger)
    .option('--commit-timeout-ms <n>', 'with --cluster: a leader that gets no majority for a write this long steps down (default 5000)', nonNegativeInteger)
    .action(async (options: ServeCliOptions) => {
      await serve(options)
    })
}

/** Turns CLI options into server options (reads the token file). */
export function serverOptionsFromCli(o: ServeCliOptions): ServerOptionsInput {
  // `off` (or none/no/false) disables a listener.
  const off = (v: string): string | null => (['off', 'none', 'no', 'false', ''].includes(v.trim().toLowerCase()) ? null : v)
  const limits: Partial<ServerLimits> = {
    maxConnections: o.maxConnections,
    maxKeyBytes: o.maxKeyBytes,
    maxValueBytes: o.maxValueBytes,
    maxBodyBytes: o.maxBodyBytes,
    maxPendingWrites: o.maxPendingWrites,
    maxWriteStallMs: o.maxWriteStallMs,
    maxReplyBytes: o.maxReplyBytes,
    maxMemoryClientsBytes: o.maxmemoryClients,
    outputHardLimitBytes: o.clientOutputBufferLimit?.hardBytes,
    outputSoftLimitBytes: o.clientOutputBufferLimit?.softBytes,
    outputSoftLimitMs: o.clientOutputBufferLimit?.softMs,
  }
  return {
    dir: path.resolve(o.dir),
    http: off(o.http),
    resp: off(o.resp),
    sync: o.sync === true,
    checkpointDir: o.checkpointDir === undefined ? undefined : path.resolve(o.checkpointDir),
    token: o.tokenFile === undefined ? undefined : readTokenFile(o.tokenFile),
    shutdownTimeoutMs: o.shutdownTimeoutMs,
    sendTimeoutMs: o.sendTimeoutMs,
    respIdleTimeoutMs: o.clientTimeout === undefined ? undefined : o.clientTimeout * 1000,
    respAuthTimeoutMs: o.authTimeout === undefined ? undefined : o.authTimeout * 1000,
    allowHosts: o.allowHost,
    allowOrigins: o.allowOrigin,
    limits,
    cluster: clusterFromCli(o),
    dbOptions: o.memtableMib === undefined ? undefined : { memtableBytes: o.memtableMib * 1024 * 1024 },
  }
}

function clusterFromCli(o: ServeCliOptions): ServerOptionsInput['cluster'] {
  if (o.cluster === undefined) {
    if (o.nodeId !== undefined || o.peer !== undefined || o.commitTimeoutMs !== undefined || o.walRetainMib !== undefined || o.peerVia !== undefined) {
      throw new InvalidArgumentError('--node-id, --peer, --peer-via, --commit-timeout-ms and --wal-retain-mib need --cluster')
    }
    return undefined
  }
  if (o.nodeId === undefined || o.peer === undefined) throw new InvalidArgumentError('--cluster needs --node-id and --peer')
  const peerVia: Record<string, string> = {}
  for (const route of o.peerVia ?? []) {
    const m = /^([^=]+)=(.+)$/.exec(route)
    if (m === null) throw new InvalidArgumentError(`--peer-via ${route}: expected <id>=<host:port>`)
    peerVia[m[1]] = m[2]
  }
  return {
    url: o.cluster,
    nodeId: o.nodeId,
    peer: o.peer,
    commitTimeoutMs: o.commitTimeoutMs,
    walRetainBytes: o.walRetainMib === undefined ? undefined : o.walRetainMib * 1024 * 1024,
    peerVia,
  }
}

/**
 * Starts the server, prints where it listens, and runs until SIGTERM or
 * SIGINT; resolves after the graceful shutdown (the caller exits 0).
 * The signal handlers are installed before anything else, so a signal sent
 * as soon as the ready line is read (or during startup) is never missed.
 */
export async function serve(o: ServeCliOptions, out: (line: string) => void = (l) => process.stdout.write(l + '\n')): Promise<void> {
  let signalled: NodeJS.Signals | undefined
  let server: StrataServer | undefined
  let stop: (() => void) | undefined
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled !== undefined) {
      out(`strata serve: second ${signal}, exiting now`)
      process.exit(130)
    }
    signalled = signal
    if (server !== undefined) out(`strata serve: ${signal}: finishing in-flight requests, closing the database`)
    stop?.()
  }
  // Ahead of any other listener (the strata CLI's only warns): log, then exit non-zero.
  const onUnhandledRejection = (reason: unknown): void => {
    const text = reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)
    process.stderr.write(`strata serve: fatal: unhandled promise rejection: ${text}\nstrata serve: exiting with code ${EXIT_UNHANDLED_REJECTION} (acknowledged writes are in the WAL and are recovered on restart)\n`)
    process.exit(EXIT_UNHANDLED_REJECTION)
  }
  process.prependListener('unhandledRejection', onUnhandledRejection)
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  try {
    server = await startServer(serverOptionsFromCli(o))
    if (signalled === undefined) {
      announce(server, out)
      await new Promise<void>((resolve) => (stop = resolve))
    } else {
      out(`strata serve: ${signalled} during startup, closing the database`)
    }
    await server.close()
    out('strata serve: stopped')
  } finally {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    process.off('unhandledRejection', onUnhandledRejection)
  }
}

function announce(server: StrataServer, out: (line: string) => void): void {
  out(`strata serve: data directory ${server.options.dir} (${server.options.sync ? 'fsync on every write' : 'writes survive kill -9; --sync for power loss'})`)
  out(`strata serve: checkpoints (POST /v1/admin/checkpoint, SAVE, BGSAVE) go to ${server.options.checkpointDir}`)
  if (server.http !== null) out(`strata serve: HTTP listening on http://${server.http}`)
  if (server.resp !== null) out(`strata serve: RESP listening on redis://${server.resp}`)
  if (server.cluster !== undefined) out(`strata serve: replica ${server.cluster.options.nodeId} of ${server.cluster.options.clusterUrl}, peer listening on ${server.peer}`)
  out(`strata serve: ready http=${server.http ?? 'off'} resp=${server.resp ?? 'off'} pid=${process.pid}`)
}

/**
 * Runs `strata serve` from an argument list (without `node` and the script),
 * for a standalone entry point: `runServe(process.argv.slice(2))`.
 */
export async function runServe(argv: string[]): Promise<void> {
  const program = new Command('strata').exitOverride()
  registerServeCommand(program)
  await program.parseAsync(['serve', ...argv], { from: 'user' })
}
