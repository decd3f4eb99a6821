/**
 * The server commands: INFO, CONFIG, TIME, DBSIZE, SAVE, BGSAVE, LASTSAVE, and the versions INFO
 * and HELLO report. DBSIZE counts keys without reading values. SAVE and BGSAVE write a checkpoint
 * (shared/checkpoints.ts) into the checkpoint directory, as POST /v1/admin/checkpoint does.
 */
import { randomBytes } from 'node:crypto'
import * as os from 'node:os'
import type { Database, EngineStats } from '../../index.js'
import { globMatch } from './glob.js'
import { lower } from './arguments.js'
import type { Call, DefineCommand } from './command-spec.js'
import type { RespContext } from './context.js'
import { unsupported } from './commands-unsupported.js'
import { MapReply, OK, SimpleString, err, type Reply } from './reply.js'

async function countKeys(db: Database): Promise<number> {
  let n = 0
  for await (const _ of db.iterator({ values: false })) n++
  return n
}

/** Sections of plain INFO (and `INFO default`), as Redis 7 plus stratadb's own. */
const DEFAULT_SECTIONS = ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cpu', 'cluster', 'strata']
/** Sections of `INFO all` and `INFO everything` (there are no module sections). */
const ALL_SECTIONS = [...DEFAULT_SECTIONS, 'commandstats']

/** Per server: its run id and replication id (random, 40 hex digits, as Redis makes them at start). */
const serverIds = new WeakMap<object, { runId: string; replId: string }>()
function idsOf(server: object): { runId: string; replId: string } {
  let ids = serverIds.get(server)
  if (ids === undefined) {
    ids = { runId: randomBytes(20).toString('hex'), replId: randomBytes(20).toString('hex') }
    serverIds.set(server, ids)
  }
  return ids
}

/** The fields of one INFO section, in order. */
type InfoFields = Array<[string, string | number]>

/**
 * INFO [section …]: no section or `default` gives the default sections,
 * `all` and `everything` add commandstats; section names are
 * case-insensitive, several can be given, unknown ones give nothing (Redis 7).
 */
function infoText(call: Call, sectionArgs: Buffer[]): string {
  const { server } = call
  const wanted = wantedSections(sectionArgs)
  const lines: string[] = []
  const section = (name: string, fields: () => InfoFields): void => {
    if (!wanted.has(name.toLowerCase())) return
    if (lines.length > 0) lines.push('')
    lines.push(`# ${name}`)
    for (const [k, v] of fields()) lines.push(`${k}:${v}`)
  }
  const uptime = Math.floor((performance.now() - server.startedAtMs) / 1000)
  const ids = idsOf(server)
  section('Server', () => serverInfo(server, uptime, ids.runId))
  section('Clients', () => clientsInfo(server))
  section('Memory', () => memoryInfo(server))
  section('Persistence', () => persistenceInfo(server))
  section('Stats', () => statsInfo(server))
  section('Replication', () => replicationInfo(ids.replId))
  section('CPU', cpuInfo)
  section('Commandstats', () =>
    server.metrics.commandStats().map((c) => [
      `cmdstat_${c.command}`,
      `calls=${c.calls},usec=${c.usec},usec_per_call=${(c.calls === 0 ? 0 : c.usec / c.calls).toFixed(2)},rejected_calls=${c.rejected},failed_calls=${c.failed}`,
    ]),
  )
  section('Cluster', () => [['cluster_enabled', 0]])
  const s = wanted.has('strata') && server.db.isOpen ? server.db.stats() : undefined
  if (s !== undefined) section('Strata', () => strataInfo(s))
  return lines.length === 0 ? '' : lines.join('\r\n') + '\r\n'
}

/** The lower-case section names INFO's arguments ask for. */
function wantedSections(sectionArgs: Buffer[]): Set<string> {
  const wanted = new Set<string>()
  for (const a of sectionArgs.length === 0 ? [Buffer.from('default')] : sectionArgs) {
    const name = lower(a)
    if (name === 'default') for (const s of DEFAULT_SECTIONS) wanted.add(s)
    else if (name === 'all' || name === 'everything') for (const s of ALL_SECTIONS) wanted.add(s)
    else wanted.add(name)
  }
  return wanted
}

function serverInfo(server: RespContext, uptime: number, runId: string): InfoFields {
  return [
    ['redis_version', REDIS_COMPAT_VERSION],
    ['strata_version', STRATA_VERSION],
    ['redis_mode', 'standalone'],
    ['os', `${os.type()} ${os.release()} ${os.arch()}`],
    ['arch_bits', process.arch.includes('64') ? 64 : 32],
    ['process_id', process.pid],
    ['run_id', runId],
    ['tcp_port', server.ports.resp ?? 0],
    ['uptime_in_seconds', uptime],
    ['uptime_in_days', Math.floor(uptime / 86400)],
    ['executable', process.argv[1] ?? ''],
  ]
}

function clientsInfo(server: RespContext): InfoFields {
  const counts = server.connectionCount()
  return [
    ['connected_clients', counts.resp],
    ['connected_http_clients', counts.http],
    ['maxclients', server.options.limits.maxConnections],
    ['maxmemory_clients', server.options.limits.maxMemoryClientsBytes],
    ['blocked_clients', 0],
  ]
}

function memoryInfo(server: RespContext): InfoFields {
  const mem = process.memoryUsage()
  return [
    ['used_memory', mem.heapUsed + mem.external],
    ['used_memory_rss', mem.rss],
    ['used_memory_human', `${((mem.heapUsed + mem.external) / 2 ** 20).toFixed(2)}M`],
    ['maxmemory', 0],
    ['mem_clients_normal', server.clientMemory.used],
  ]
}

/** Redis' persistence fields, its RDB saves being stratadb's checkpoints (SAVE, BGSAVE, POST /v1/admin/checkpoint). */
function persistenceInfo(server: RespContext): InfoFields {
  const c = server.checkpoints.figures()
  const seconds = (ms: number): number => (ms < 0 ? -1 : Math.round(ms / 1000))
  return [
    ['loading', 0],
    ['async_loading', 0],
    ['rdb_changes_since_last_save', c.changesSinceLast],
    ['rdb_bgsave_in_progress', c.inProgress ? 1 : 0],
    ['rdb_last_save_time', Math.floor(c.lastSaveMs / 1000)],
    ['rdb_last_bgsave_status', c.lastStatus],
    ['rdb_last_bgsave_time_sec', seconds(c.lastDurationMs)],
    ['rdb_current_bgsave_time_sec', seconds(c.currentMs)],
    ['rdb_saves', c.completed],
    ['aof_enabled', 0],
    ['strata_sync_writes', server.options.sync ? 1 : 0],
    ['strata_dir', server.options.dir],
    ['strata_checkpoint_dir', c.dir],
    ['strata_last_checkpoint_dir', c.last?.dir ?? ''],
    ['strata_last_checkpoint_sequence', c.last?.sequence ?? -1],
    ['strata_checkpoints_failed', c.failed],
  ]
}

function statsInfo(server: RespContext): InfoFields {
  let total = 0
  for (const c of server.metrics.commandStats()) total += c.calls
  return [
    ['total_commands_processed', total],
    ['rejected_connections', server.metrics.rejectedConnections],
    ['evicted_clients', server.clientMemory.evicted],
    ['strata_pending_writes', server.gate.pending],
    ['strata_busy_refusals', server.gate.refused],
    ['strata_write_stalled_ms', Math.round(server.gate.stalledMs())],
  ]
}

function replicationInfo(replId: string): InfoFields {
  return [
    ['role', 'master'],
    ['connected_slaves', 0],
    ['master_failover_state', 'no-failover'],
    ['master_replid', replId],
    ['master_replid2', '0'.repeat(40)],
    ['master_repl_offset', 0],
    ['second_repl_offset', -1],
    ['repl_backlog_active', 0],
    ['repl_backlog_size', 0],
    ['repl_backlog_first_byte_offset', 0],
    ['repl_backlog_histlen', 0],
  ]
}

function cpuInfo(): InfoFields {
  // Node has no per-thread figure: the main-thread lines repeat the process's.
  const cpu = process.cpuUsage()
  const sec = (us: number): string => (us / 1e6).toFixed(6)
  return [
    ['used_cpu_sys', sec(cpu.system)],
    ['used_cpu_user', sec(cpu.user)],
    ['used_cpu_sys_children', '0.000000'],
    ['used_cpu_user_children', '0.000000'],
    ['used_cpu_sys_main_thread', sec(cpu.system)],
    ['used_cpu_user_main_thread', sec(cpu.user)],
  ]
}

function strataInfo(s: EngineStats): InfoFields {
  return [
    ['last_sequence', s.lastSequence],
    ['levels', s.levels.map((l) => `L${l.level}=${l.tables}/${l.bytes}`).join(',')],
    ['memtable_bytes', s.memtable.activeBytes],
    ['pending_compaction_bytes', s.pendingCompactionBytes],
    ['write_stalls', s.writes.stalls],
    ['write_stall_ms', Math.round(s.writes.stallMs)],
    ['write_amplification', s.writeAmplification.toFixed(2)],
  ]
}

/** The version INFO and HELLO report as `redis_version`/`version`: the Redis API level implemented. */
export const REDIS_COMPAT_VERSION = '7.0.0'
/** stratadb's own version, set by the server at start. */
export let STRATA_VERSION = '0.0.0'
export function setStrataVersion(v: string): void {
  STRATA_VERSION = v
}

function configCommand(call: Call): Reply {
  const { args, server } = call
  const sub = lower(args[1])
  if (sub === 'get') {
    if (args.length < 3) return err(`wrong number of arguments for 'config|get' command`)
    const params: Array<[string, string]> = [
      ['save', ''],
      ['appendonly', 'no'],
      ['appendfsync', server.options.sync ? 'always' : 'no'],
      ['databases', '1'],
      ['maxmemory', '0'],
      ['maxclients', String(server.options.limits.maxConnections)],
      ['maxmemory-clients', String(server.options.limits.maxMemoryClientsBytes)],
      ['proto-max-bulk-len', String(server.options.limits.maxBulkBytes)],
      ['timeout', String(Math.round(server.options.respIdleTimeoutMs / 1000))],
    ]
    const out: Array<[Reply, Reply]> = []
    for (const [name, value] of params) {
      if (args.slice(2).some((p) => globMatch(Buffer.from(lower(p), 'latin1'), Buffer.from(name, 'latin1')))) out.push([name, value])
    }
    return new MapReply(out)
  }
  if (sub === 'resetstat') return OK
  return unsupported(`CONFIG ${args[1].toString('latin1').toUpperCase().slice(0, 32)}`, 'configure the server with command-line options')
}

/** Redis' reply while a checkpoint is being written. */
const SAVE_IN_PROGRESS = 'Background save already in progress'

/** BGSAVE [SCHEDULE]: starts a checkpoint and answers at once; its outcome is in INFO persistence and LASTSAVE. */
function bgsaveCommand(call: Call): Reply {
  const { args, server, conn } = call
  if (args.length > 2 || (args.length === 2 && lower(args[1]) !== 'schedule')) return err('syntax error')
  const refused = server.checkpoints.refusal(hostOf(conn.remoteAddress))
  if (refused !== undefined) return err(refused)
  switch (server.checkpoints.background(args.length === 2)) {
    case 'started':
      return new SimpleString('Background saving started')
    case 'scheduled':
      return new SimpleString('Background saving scheduled')
    case 'in-progress':
      return err(SAVE_IN_PROGRESS)
    case 'closed':
      return err('server is shutting down')
  }
}

/** SAVE: writes a checkpoint, +OK once it is written (other clients are served meanwhile). */
async function saveCommand(call: Call): Promise<Reply> {
  const { server, conn } = call
  const refused = server.checkpoints.refusal(hostOf(conn.remoteAddress))
  if (refused !== undefined) return err(refused)
  const run = server.checkpoints.start('SAVE')
  if (run === undefined) return err(SAVE_IN_PROGRESS)
  try {
    await run
    return OK
  } catch (e) {
    // Already logged by the checkpoints.
    return err(`checkpoint failed: ${e instanceof Error ? e.message : String(e)}`)
  }
}

/** The address of `host:port` (IPv6 without brackets, as the socket gives it). */
function hostOf(remoteAddress: string): string {
  const colon = remoteAddress.lastIndexOf(':')
  return colon < 0 ? remoteAddress : remoteAddress.slice(0, colon)
}

/** Adds the server commands to the table, in order. */
export function defineServerCommands(def: DefineCommand): void {
  def({ name: 'info', arity: -1, kind: 'conn', flags: ['loading', 'stale'], run: (c) => infoText(c, c.args.slice(1)) })
  def({
    name: 'config',
    arity: -2,
    kind: 'conn',
    flags: ['admin', 'noscript', 'loading', 'stale'],
    run: configCommand,
    subcommands: [
      { name: 'get', arity: -3, flags: ['admin', 'noscript', 'loading', 'stale'] },
      { name: 'resetstat', arity: 2, flags: ['admin', 'noscript', 'loading', 'stale'] },
    ],
  })
  def({
    name: 'time',
    arity: 1,
    kind: 'conn',
    flags: ['loading', 'stale', 'fast'],
    run: () => {
      const us = BigInt(Date.now()) * 1000n + BigInt(Math.floor((performance.now() % 1) * 1000))
      return [String(us / 1_000_000n), String(us % 1_000_000n)]
    },
  })
  def({ name: 'dbsize', arity: 1, kind: 'read', flags: ['readonly'], run: ({ server }) => countKeys(server.db) })
  // Kind `read`: they run once this connection's earlier writes are applied, so the checkpoint holds
  // them (a pipelined SET then BGSAVE). Refused inside MULTI (no_multi): in EXEC the transaction's own
  // writes would not be in it yet (Redis allows BGSAVE there, scheduling it after EXEC).
  def({ name: 'save', arity: 1, kind: 'read', flags: ['admin', 'noscript', 'no_async_loading', 'no_multi'], run: saveCommand })
  def({ name: 'bgsave', arity: -1, kind: 'read', flags: ['admin', 'noscript', 'no_async_loading', 'no_multi'], run: bgsaveCommand })
  def({ name: 'lastsave', arity: 1, kind: 'conn', flags: ['loading', 'stale', 'fast'], run: ({ server }) => Math.floor(server.checkpoints.figures().lastSaveMs / 1000) })
}
