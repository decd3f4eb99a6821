/**
 * `strata cluster init` and `strata cluster status` (docs/cli.md,
 * docs/replication.md): create a replicated cluster's config key in etcd,
 * and show the cluster as etcd and its nodes see it.
 *
 * `--cluster etcd://host[:port][,host[:port]…]/<name>` names etcd and the
 * cluster (src/cluster/cluster-config.ts). Exit codes: 0 done (init: created,
 * or the same config was already there; status: a leader key exists and a
 * majority of the configured replicas answered), 1 failed (etcd unreachable,
 * a different config already there, an unhealthy cluster), 2 usage.
 */
import type { Command } from 'commander'
import { StrataError } from '../../base/errors.js'
import {
  ACK_MODES,
  DEFAULT_ETCD_PORT,
  MAX_LEASE_TTL_SECONDS,
  MIN_LEASE_TTL_SECONDS,
  initCluster,
  keysOf,
  parseClusterUrl,
  readClusterState,
  sameClusterConfig,
  validateClusterConfig,
  type ClusterAddress,
  type ClusterConfig,
  type MemberRecord,
} from '../../cluster/cluster-config.js'
import { EtcdClient } from '../../cluster/etcd/etcd-client.js'
import { EtcdError } from '../../cluster/etcd/errors.js'
import { EXIT_PROBLEMS, UsageError } from '../tools/output.js'

/** Deadline of each etcd call the commands make. */
export const ETCD_TIMEOUT_MS = 3000
/** Default deadline of each node's `GET /v1/cluster` in `status`. */
export const NODE_TIMEOUT_MS = 1000

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
}

/** A StrataError about an argument as a UsageError (exit 2). */
function usage<T>(f: () => T): T {
  try {
    return f()
  } catch (err) {
    if (err instanceof StrataError && err.code === 'STRATA_INVALID_ARGUMENT') throw new UsageError(err.message)
    throw err
  }
}

function parseAddress(url: string): ClusterAddress {
  return usage(() => parseClusterUrl(url))
}

/** An EtcdError as a message that says what the command could not do, and where. */
function etcdFailure(err: unknown, address: ClusterAddress, doing: string): Error {
  if (!(err instanceof EtcdError)) return err instanceof Error ? err : new Error(String(err))
  const where = address.endpoints.join(',')
  if (err.code === 'unavailable') return new Error(`cannot ${doing}: etcd at ${where} is unreachable or did not answer (${err.message})`, { cause: err })
  if (err.code === 'protocol') return new Error(`cannot ${doing}: unexpected data in etcd at ${where}: ${err.message}`, { cause: err })
  return new Error(`cannot ${doing}: etcd at ${where}: ${err.message} (${err.code})`, { cause: err })
}

async function withClient<T>(address: ClusterAddress, doing: string, use: (client: EtcdClient) => Promise<T>): Promise<T> {
  const client = new EtcdClient({ endpoints: address.endpoints, timeoutMs: ETCD_TIMEOUT_MS })
  try {
    return await use(client)
  } catch (err) {
    throw etcdFailure(err, address, doing)
  } finally {
    client.close()
  }
}

function positiveInteger(what: string, text: string): number {
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1) throw new UsageError(`${what} must be a positive integer, got ${JSON.stringify(text)}`)
  return Number(text)
}

/** `replicas n1, n2, n3; ack majority; lease TTL 2 s` */
export function describeConfig(c: ClusterConfig): string {
  return `replicas ${c.replicas.join(', ')}; ack ${c.ack}; lease TTL ${c.leaseTtlSeconds} s`
}

// ---- status

/** What a node answers at `GET /v1/cluster`. */
export interface NodeClusterAnswer {
  nodeId: string
  role: 'leader' | 'follower' | 'candidate' | 'stopped'
  epoch: bigint
  lastSequence: bigint
  commitSequence: bigint
}

const NODE_ROLES = ['leader', 'follower', 'candidate', 'stopped'] as const

/**
 * A row's role: the node's own answer; `unreachable` (no answer in time, connection refused);
 * `invalid` (it answered, but not a valid /v1/cluster answer, or as another node); `down` (a
 * configured replica without a members key); `unknown` (a member without an HTTP address to ask).
 */
export type StatusRole = NodeClusterAnswer['role'] | 'unreachable' | 'invalid' | 'down' | 'unknown'

export interface NodeStatus {
  id: string
  /** Listed in the config's replicas. */
  replica: boolean
  /** Has a members key (is up, as far as etcd knows). */
  member: boolean
  role: StatusRole
  http: string | null
  resp: string | null
  peer: string | null
  epoch: bigint | null
  lastSequence: bigint | null
  commitSequence: bigint | null
  /** The leader's lastSequence minus this node's; null when either is unknown. */
  lag: bigint | null
  /** Why the role is unreachable/invalid/unknown, or a remark (not in the config, …). */
  note: string | null
}

export interface ClusterStatus {
  cluster: string
  endpoints: string[]
  revision: bigint
  config: ClusterConfig | null
  leader: { id: string; epoch: bigint; info: Record<string, unknown> } | null
  nodes: NodeStatus[]
  /** Configured replicas that answered /v1/cluster validly. */
  replicasReachable: number
  /** Replicas needed for a majority (0 without a config). */
  majority: number
  /** A leader key exists and a majority of the configured replicas answered. */
  healthy: boolean
  /** Why not healthy (empty when healthy). */
  problems: string[]
}

function readBig(v: unknown): bigint | null {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v)
  if (typeof v === 'string' && /^\d{1,20}$/.test(v)) return BigInt(v)
  return null
}

/** The URL of a node's /v1/cluster from its members-key `http` address (host:port, or a full http(s) URL). */
export function nodeClusterUrl(http: string): string {
  const base = /^https?:\/\//i.test(http) ? http : `http://${http}`
  return `${base.replace(/\/+$/, '')}/v1/cluster`
}

/** Asks one node for its view; never throws. */
async function askNode(id: string, http: string, timeoutMs: number): Promise<{ answer: NodeClusterAnswer } | { role: 'unreachable' | 'invalid'; error: string }> {
  let url: string
  try {
    url = new URL(nodeClusterUrl(http)).href
  } catch {
    return { role: 'invalid', error: `http address ${JSON.stringify(http)} is not host:port` }
  }
  let res: Response
  let text: string
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } })
    text = await res.text()
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } }
    const why = e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message)
    return { role: 'unreachable', error: `GET ${url}: ${why}` }
  }
  if (res.status !== 200) return { role: 'invalid', error: `GET ${url}: HTTP ${res.status} ${text.slice(0, 100)}` }
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return { role: 'invalid', error: `GET ${url}: not JSON: ${text.slice(0, 100)}` }
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>
  const epoch = readBig(o.epoch)
  const lastSequence = readBig(o.lastSequence)
  const commitSequence = readBig(o.commitSequence)
  const role = o.role as NodeClusterAnswer['role']
  if (typeof o.nodeId !== 'string' || !NODE_ROLES.includes(role) || epoch === null || lastSequence === null || commitSequence === null) {
    return { role: 'invalid', error: `GET ${url}: expected { nodeId, role, epoch, lastSequence, commitSequence }, got ${text.slice(0, 200)}` }
  }
  if (o.nodeId !== id) return { role: 'invalid', error: `GET ${url}: answered as node ${JSON.stringify(o.nodeId)}, not ${JSON.stringify(id)}` }
  return { answer: { nodeId: o.nodeId, role, epoch, lastSequence, commitSequence } }
}

/** Reads the cluster from etcd, asks every member with an HTTP address (in parallel), and sums up. */
export async function clusterStatus(client: EtcdClient, address: ClusterAddress, nodeTimeoutMs: number = NODE_TIMEOUT_MS): Promise<ClusterStatus> {
  const state = await readClusterState(client, address.cluster)
  const byId = new Map<string, MemberRecord>(state.members.map((m) => [m.id, m]))
  const replicas = state.config?.replicas ?? []
  const ids = [...replicas, ...state.members.map((m) => m.id).filter((id) => !replicas.includes(id))]
  const nodes: NodeStatus[] = await Promise.all(
    ids.map(async (id): Promise<NodeStatus> => {
      const m = byId.get(id)
      const replica = replicas.includes(id)
      const base: NodeStatus = {
        id,
        replica,
        member: m !== undefined,
        role: 'down',
        http: m?.http ?? null,
        resp: m?.resp ?? null,
        peer: m?.peer ?? null,
        epoch: null,
        lastSequence: null,
        commitSequence: null,
        lag: null,
        note: state.config !== null && !replica ? 'not a replica in the config' : null,
      }
      if (m === undefined) return { ...base, note: 'no members key (the node is not running, or lost its etcd lease)' }
      if (m.http === null) return { ...base, role: 'unknown', note: joinNotes(base.note, 'no HTTP address to ask') }
      const r = await askNode(id, m.http, nodeTimeoutMs)
      if ('answer' in r) return { ...base, role: r.answer.role, epoch: r.answer.epoch, lastSequence: r.answer.lastSequence, commitSequence: r.answer.commitSequence }
      return { ...base, role: r.role, note: joinNotes(base.note, r.error) }
    }),
  )
  const leaderNode = state.leader === null ? undefined : nodes.find((n) => n.id === state.leader?.id)
  const leaderSeq = leaderNode?.lastSequence ?? null
  for (const n of nodes) {
    if (leaderSeq !== null && n.lastSequence !== null) n.lag = leaderSeq - n.lastSequence
    if (n.role === 'leader' && state.leader !== null && n.id !== state.leader.id) n.note = joinNotes(n.note, `says it leads (epoch ${n.epoch}), but the leader key names ${state.leader.id}`)
  }
  const replicasReachable = nodes.filter((n) => n.replica && n.lastSequence !== null).length
  const majority = replicas.length === 0 ? 0 : Math.floor(replicas.length / 2) + 1
  const problems: string[] = []
  if (state.config === null) problems.push(`cluster ${address.cluster} has no config (run strata cluster init)`)
  if (state.leader === null) problems.push('no leader')
  if (state.config !== null && replicasReachable < majority) problems.push(`only ${replicasReachable} of ${replicas.length} replicas reachable, a majority is ${majority}`)
  return {
    cluster: address.cluster,
    endpoints: address.endpoints,
    revision: state.revision,
    config: state.config,
    leader: state.leader === null ? null : { id: state.leader.id, epoch: state.leader.epoch, info: state.leader.info },
    nodes,
    replicasReachable,
    majority,
    healthy: problems.length === 0,
    problems,
  }
}

function joinNotes(a: string | null, b: string): string {
  return a === null ? b : `${a}; ${b}`
}

/** A bigint for JSON: a number when exact, else a decimal string. */
function jsonInt(v: bigint | null): number | string | null {
  if (v === null) return null
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString()
}

/** The status as the JSON `--json` prints. */
export function statusJson(s: ClusterStatus): Record<string, unknown> {
  return {
    cluster: s.cluster,
    endpoints: s.endpoints,
    revision: jsonInt(s.revision),
    config: s.config,
    leader: s.leader === null ? null : { ...s.leader.info, id: s.leader.id, epoch: jsonInt(s.leader.epoch) },
    nodes: s.nodes.map((n) => ({
      id: n.id,
      replica: n.replica,
      member: n.member,
      role: n.role,
      http: n.http,
      resp: n.resp,
      peer: n.peer,
      epoch: jsonInt(n.epoch),
      lastSequence: jsonInt(n.lastSequence),
      commitSequence: jsonInt(n.commitSequence),
      lag: jsonInt(n.lag),
      note: n.note,
    })),
    replicasReachable: s.replicasReachable,
    majority: s.majority,
    healthy: s.healthy,
    problems: s.problems,
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n')
}

/** The status as text (what `strata cluster status` prints). */
export function formatStatus(s: ClusterStatus): string {
  const lines: string[] = []
  lines.push(`cluster ${s.cluster} at ${s.endpoints.join(',')} (etcd revision ${s.revision})`)
  lines.push(s.config === null ? 'config: none (run strata cluster init)' : `config: ${describeConfig(s.config)}`)
  if (s.leader === null) lines.push('leader: no leader')
  else lines.push(`leader: ${s.leader.id}, epoch ${s.leader.epoch}`)
  lines.push('')
  const rows = [['ID', 'ROLE', 'HTTP', 'RESP', 'PEER', 'LAST SEQ', 'LAG']]
  for (const n of s.nodes) rows.push([n.id, n.role, n.http ?? '-', n.resp ?? '-', n.peer ?? '-', n.lastSequence?.toString() ?? '', n.lag?.toString() ?? ''])
  lines.push(table(rows))
  const notes = s.nodes.filter((n) => n.note !== null)
  if (notes.length > 0) {
    lines.push('')
    for (const n of notes) lines.push(`${n.id}: ${n.note}`)
  }
  lines.push('')
  const reach = s.config === null ? `${s.replicasReachable} replicas reachable` : `${s.replicasReachable} of ${s.config.replicas.length} replicas reachable (majority ${s.majority})`
  lines.push(s.healthy ? `healthy: leader ${s.leader?.id}, ${reach}` : `unhealthy: ${s.problems.join('; ')}`)
  return lines.join('\n')
}

// ---- commands

interface InitOptions {
  cluster: string
  replicas: string
  ack: string
  leaseTtl: string
}

interface StatusOptions {
  cluster: string
  json?: boolean
  timeoutMs: string
}

export function registerClusterCommands(program: Command): void {
  const cluster = program
    .command('cluster')
    .description('create and inspect a replicated cluster coordinated by etcd (docs/replication.md)')
    .addHelpText('after', `\n--cluster takes etcd://host[:port][,host[:port]…]/<name> (port ${DEFAULT_ETCD_PORT} by default, IPv6 in brackets).`)

  cluster
    .command('init')
    .description("create the cluster's config in etcd (only if it has none: init never changes an existing config)")
    .requiredOption('--cluster <url>', 'etcd://host[:port][,…]/<cluster name>')
    .requiredOption('--replicas <ids>', 'the replicas\' node ids, comma-separated (1-7)')
    .option('--ack <mode>', `when a write is acknowledged: ${ACK_MODES.join(' or ')}`, 'majority')
    .option('--lease-ttl <seconds>', `TTL of each node's etcd lease, ${MIN_LEASE_TTL_SECONDS}-${MAX_LEASE_TTL_SECONDS}`, '2')
    .addHelpText('after', '\nExit codes: 0 created, or the same config was already there; 1 a different config is already there, or etcd failed; 2 usage.')
    .action(async (o: InitOptions) => {
      const address = parseAddress(o.cluster)
      const ttl = positiveInteger('--lease-ttl', o.leaseTtl)
      const replicas = o.replicas.split(',').map((s) => s.trim())
      const config = usage(() => validateClusterConfig({ replicas, ack: o.ack, leaseTtlSeconds: ttl }))
      const key = keysOf(address.cluster).config
      const r = await withClient(address, `initialize cluster ${address.cluster}`, (client) => initCluster(client, address.cluster, config))
      if (r.created) {
        out(`created cluster ${address.cluster}: ${key} = ${describeConfig(r.existing)}`)
      } else if (sameClusterConfig(r.existing, config)) {
        out(`cluster ${address.cluster} already has this config, unchanged: ${key} = ${describeConfig(r.existing)}`)
      } else {
        process.stderr.write(
          `strata cluster init: cluster ${address.cluster} already has a different config (init never changes it):\n` +
            `  stored:    ${describeConfig(r.existing)}\n` +
            `  requested: ${describeConfig(config)}\n`,
        )
        process.exitCode = EXIT_PROBLEMS
      }
    })

  cluster
    .command('status')
    .description("show the cluster: its config, the leader, and each node's role, sequence and lag (asking each node's GET /v1/cluster)")
    .requiredOption('--cluster <url>', 'etcd://host[:port][,…]/<cluster name>')
    .option('--json', 'print one JSON object')
    .option('--timeout-ms <ms>', "deadline of each node's answer", String(NODE_TIMEOUT_MS))
    .addHelpText(
      'after',
      '\nRoles: leader, follower, candidate, stopped (as the node says); unreachable (no answer);' +
        '\ninvalid (a bad answer); down (a replica without a members key); unknown (no HTTP address).' +
        '\nLag: the leader\'s last sequence minus the node\'s (blank when either is unknown).' +
        '\nExit codes: 0 a leader exists and a majority of the replicas answered; 1 not so, or etcd failed; 2 usage.',
    )
    .action(async (o: StatusOptions) => {
      const address = parseAddress(o.cluster)
      const timeoutMs = positiveInteger('--timeout-ms', o.timeoutMs)
      const s = await withClient(address, `read cluster ${address.cluster}`, (client) => clusterStatus(client, address, timeoutMs))
      out(o.json === true ? JSON.stringify(statusJson(s), null, 2) : formatStatus(s))
      if (!s.healthy) process.exitCode = EXIT_PROBLEMS
    })
}
