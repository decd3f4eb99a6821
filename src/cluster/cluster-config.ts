/**
 * A cluster's address and its etcd-held configuration (docs/replication.md,
 * "Roles and etcd keys"):
 *
 * - `parseClusterUrl('etcd://h1:2379,h2:2379/prod')`: the etcd endpoints and
 *   the cluster name, the form `--cluster` takes on the command line;
 * - the `config` key, `{ replicas, ack, leaseTtlSeconds }`, written once by
 *   `initCluster` (a txn that creates it only if absent) and never changed
 *   by it afterwards;
 * - the `members/<id>` keys, `{ http, resp, peer }`, each written by a node
 *   under its lease;
 * - `readClusterState`: config, members and leader key in one txn (one
 *   revision), for `strata cluster status`.
 *
 * Bad input throws StrataError `STRATA_INVALID_ARGUMENT`; a malformed value
 * found in etcd throws EtcdError `protocol` (like `parseLeader`); a failed
 * etcd call throws the client's EtcdError.
 */
import * as net from 'node:net'
import { StrataError } from '../base/errors.js'
import { NODE_ID } from '../engine/replica-state.js'
import type { EtcdClient } from './etcd/etcd-client.js'
import { EtcdError } from './etcd/errors.js'
import { parseLeader, type LeaderRecord } from './etcd/election.js'
import type { CallOptions } from './etcd/gateway.js'
import { clusterKeys, type ClusterKeys } from './etcd/keys.js'
import type { KeyValue } from './etcd/kv.js'

export interface ClusterAddress {
  /** etcd client URLs, `http://host:port` (IPv6 as `http://[addr]:port`). */
  endpoints: string[]
  cluster: string
}

/** etcd's client port, when a host of a cluster URL has none. */
export const DEFAULT_ETCD_PORT = 2379
/** A cluster name: 1-64 of A-Z a-z 0-9 . _ - (not "." or ".."). */
export const CLUSTER_NAME = /^[A-Za-z0-9._-]{1,64}$/
/** Limits of `replicas` in a config. */
export const MAX_REPLICAS = 7
/** Limits of `leaseTtlSeconds` in a config. */
export const MIN_LEASE_TTL_SECONDS = 1
export const MAX_LEASE_TTL_SECONDS = 60

const URL_FORM = 'etcd://host[:port][,host[:port]…]/<cluster>'
const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/

function invalid(message: string): StrataError {
  return new StrataError('STRATA_INVALID_ARGUMENT', message)
}

/** Whether `name` is a valid cluster name (CLUSTER_NAME, and not "." or ".."). */
export function isClusterName(name: string): boolean {
  return CLUSTER_NAME.test(name) && name !== '.' && name !== '..'
}

function parsePort(text: string, fail: (why: string) => StrataError): number {
  if (!/^\d{1,5}$/.test(text)) throw fail(`port ${JSON.stringify(text)} is not a number`)
  const port = Number(text)
  if (port < 1 || port > 65535) throw fail(`port ${port} is out of range 1-65535`)
  return port
}

function parseHost(item: string, fail: (why: string) => StrataError): string {
  if (item === '') throw fail('empty host (two commas in a row, or a comma at an end?)')
  let host: string
  let portText: string | undefined
  if (item.startsWith('[')) {
    const close = item.indexOf(']')
    if (close < 0) throw fail(`${JSON.stringify(item)}: "[" without "]"`)
    const address = item.slice(1, close)
    if (!net.isIPv6(address) || address.includes('%')) throw fail(`${JSON.stringify(address)} is not an IPv6 address (zones are not supported)`)
    const rest = item.slice(close + 1)
    if (rest !== '' && !rest.startsWith(':')) throw fail(`${JSON.stringify(item)}: expected ":port" after "]"`)
    host = `[${address.toLowerCase()}]`
    portText = rest === '' ? undefined : rest.slice(1)
  } else {
    const parts = item.split(':')
    if (parts.length > 2) throw fail(`${JSON.stringify(item)}: an IPv6 address goes in brackets, as [::1]:2379`)
    host = parts[0] as string
    portText = parts[1]
    if (host === '') throw fail(`${JSON.stringify(item)}: no host name`)
    if (host.length > 253 || !host.split('.').every((label) => HOST_LABEL.test(label))) throw fail(`${JSON.stringify(host)} is not a host name or IPv4 address`)
    host = host.toLowerCase()
  }
  const port = portText === undefined ? DEFAULT_ETCD_PORT : parsePort(portText, fail)
  return `http://${host}:${port}`
}

/**
 * Parses `etcd://host[:port][,host[:port]…]/<cluster>`: the etcd endpoints (port 2379 when
 * omitted; IPv6 addresses in brackets) and the cluster name, which must be the URL's one path
 * segment. Throws STRATA_INVALID_ARGUMENT saying what is wrong.
 */
export function parseClusterUrl(url: string): ClusterAddress {
  const fail = (why: string) => invalid(`cluster URL ${JSON.stringify(url)}: ${why}; expected ${URL_FORM}`)
  if (typeof url !== 'string') throw invalid(`cluster URL must be a string, got ${typeof url}`)
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(url)
  if (m === null) throw fail('no scheme')
  const scheme = (m[1] as string).toLowerCase()
  if (scheme !== 'etcd') throw fail(`scheme must be etcd://, not ${scheme}://`)
  const rest = m[2] as string
  if (/\s/.test(rest)) throw fail('contains white space')
  if (/[?#]/.test(rest)) throw fail('a query or fragment is not allowed')
  const slash = rest.indexOf('/')
  if (slash < 0) throw fail('no cluster name (the path)')
  const authority = rest.slice(0, slash)
  const path = rest.slice(slash + 1)
  if (authority.includes('@')) throw fail('user names and passwords are not supported')
  if (authority === '') throw fail('no etcd host')
  if (path === '') throw fail('no cluster name (the path)')
  if (path.includes('/')) throw fail(`the path must be exactly one segment, the cluster name, not ${JSON.stringify(path)}`)
  if (!isClusterName(path)) throw fail(`cluster name ${JSON.stringify(path)} must be 1-64 of A-Z a-z 0-9 . _ - (and not "." or "..")`)
  const endpoints = authority.split(',').map((item) => parseHost(item, fail))
  const seen = new Set<string>()
  for (const e of endpoints) {
    if (seen.has(e)) throw fail(`${e} is listed twice`)
    seen.add(e)
  }
  return { endpoints, cluster: path }
}

/** The cluster URL for an address (the inverse of parseClusterUrl, default ports spelled out). */
export function formatClusterUrl(address: ClusterAddress): string {
  return `etcd://${address.endpoints.map((e) => e.replace(/^https?:\/\//, '')).join(',')}/${address.cluster}`
}

export type AckMode = 'majority' | 'async'
export const ACK_MODES: readonly AckMode[] = ['majority', 'async']

export interface ClusterConfig {
  /** The node ids of the replica group (1-7, unique, each a NODE_ID). */
  replicas: string[]
  ack: AckMode
  /** TTL of each node's etcd lease (an integer, 1-60). */
  leaseTtlSeconds: number
}

const CONFIG_FIELDS = ['replicas', 'ack', 'leaseTtlSeconds'] as const

/**
 * Checks a cluster config and returns a fresh copy of it (fields in a fixed order). Throws
 * STRATA_INVALID_ARGUMENT: not an object, an unknown field (a typo, or a config written by a
 * newer version that this one would misread), replicas not 1-7 unique node ids, an ack mode
 * other than 'majority' or 'async', a lease TTL that is not an integer 1-60. An even number of
 * replicas is allowed (it tolerates no more failures than one fewer).
 */
export function validateClusterConfig(value: unknown): ClusterConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`cluster config must be an object { replicas, ack, leaseTtlSeconds }, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`)
  const v = value as Record<string, unknown>
  const unknown = Object.keys(v).filter((k) => !(CONFIG_FIELDS as readonly string[]).includes(k))
  if (unknown.length > 0) throw invalid(`cluster config: unknown field(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}; expected ${CONFIG_FIELDS.join(', ')}`)
  const { replicas, ack, leaseTtlSeconds } = v
  if (!Array.isArray(replicas)) throw invalid('cluster config: replicas must be an array of node ids')
  if (replicas.length < 1 || replicas.length > MAX_REPLICAS) throw invalid(`cluster config: replicas must list 1-${MAX_REPLICAS} node ids, got ${replicas.length}`)
  const ids: string[] = []
  for (const id of replicas as unknown[]) {
    if (typeof id !== 'string' || !NODE_ID.test(id)) throw invalid(`cluster config: replica id ${JSON.stringify(id)} is not 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit`)
    if (ids.includes(id)) throw invalid(`cluster config: replica id ${JSON.stringify(id)} is listed twice`)
    ids.push(id)
  }
  if (typeof ack !== 'string' || !(ACK_MODES as readonly string[]).includes(ack)) throw invalid(`cluster config: ack must be ${ACK_MODES.map((a) => `'${a}'`).join(' or ')}, got ${JSON.stringify(ack) ?? 'nothing'}`)
  if (typeof leaseTtlSeconds !== 'number' || !Number.isInteger(leaseTtlSeconds) || leaseTtlSeconds < MIN_LEASE_TTL_SECONDS || leaseTtlSeconds > MAX_LEASE_TTL_SECONDS) {
    throw invalid(`cluster config: leaseTtlSeconds must be an integer ${MIN_LEASE_TTL_SECONDS}-${MAX_LEASE_TTL_SECONDS}, got ${JSON.stringify(leaseTtlSeconds) ?? 'nothing'}`)
  }
  return { replicas: ids, ack: ack as AckMode, leaseTtlSeconds }
}

/** Whether two configs mean the same: the same replicas (in any order), ack mode and lease TTL. */
export function sameClusterConfig(a: ClusterConfig, b: ClusterConfig): boolean {
  const sa = [...a.replicas].sort()
  const sb = [...b.replicas].sort()
  return a.ack === b.ack && a.leaseTtlSeconds === b.leaseTtlSeconds && sa.length === sb.length && sa.every((id, i) => id === sb[i])
}

/** The etcd keys of a cluster, after checking its name (STRATA_INVALID_ARGUMENT). */
export function keysOf(cluster: string): ClusterKeys {
  if (typeof cluster !== 'string' || !isClusterName(cluster)) throw invalid(`cluster name ${JSON.stringify(cluster)} must be 1-64 of A-Z a-z 0-9 . _ - (and not "." or "..")`)
  return clusterKeys(cluster)
}

/** The config key's value, parsed and validated; a malformed one is an EtcdError `protocol`. */
export function parseClusterConfig(kv: KeyValue): ClusterConfig {
  const where = `config key ${kv.key.toString()}`
  let v: unknown
  try {
    v = JSON.parse(kv.value.toString('utf8'))
  } catch (err) {
    throw new EtcdError('protocol', `${where}: not JSON: ${kv.value.toString('utf8').slice(0, 200)}`, { cause: err })
  }
  try {
    return validateClusterConfig(v)
  } catch (err) {
    throw new EtcdError('protocol', `${where}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Creates the cluster's config key if it is absent, in one txn (compare create_revision == 0).
 * `created: true` and the config written; or `created: false` and the config stored before,
 * unchanged (whether or not it equals `config`: see sameClusterConfig).
 */
export async function initCluster(client: EtcdClient, cluster: string, config: ClusterConfig, options: CallOptions = {}): Promise<{ created: boolean; existing: ClusterConfig }> {
  const keys = keysOf(cluster)
  const checked = validateClusterConfig(config)
  const r = await client.txn(
    {
      compare: [{ key: keys.config, target: 'create', op: '==', value: 0 }],
      success: [{ put: { key: keys.config, value: JSON.stringify(checked) } }],
      failure: [{ range: { key: keys.config } }],
    },
    options,
  )
  if (r.succeeded) return { created: true, existing: checked }
  const kv = r.responses[0]?.range?.kvs[0]
  // Only a delete between the compare and the range could do this, and a txn is atomic.
  if (kv === undefined) throw new EtcdError('protocol', `init cluster ${cluster}: the config key exists but the txn read none`)
  return { created: false, existing: parseClusterConfig(kv) }
}

/** The cluster's config, or null when it has none (not initialized). */
export async function readClusterConfig(client: EtcdClient, cluster: string, options: CallOptions = {}): Promise<ClusterConfig | null> {
  const keys = keysOf(cluster)
  const r = await client.range(keys.config, options)
  const kv = r.kvs[0]
  return kv === undefined ? null : parseClusterConfig(kv)
}

export interface MemberRecord {
  id: string
  /** host:port of the node's HTTP API, null when it serves none. */
  http: string | null
  /** host:port of its RESP listener, null when it serves none. */
  resp: string | null
  /** host:port of its peer (replication) listener. */
  peer: string
}

/** A `members/<id>` key, parsed: `{ http, resp, peer }` (absent http/resp read as null; other fields ignored). */
export function parseMember(kv: KeyValue, membersPrefix: string): MemberRecord {
  const key = kv.key.toString()
  const where = `member key ${key}`
  const id = key.startsWith(membersPrefix) ? key.slice(membersPrefix.length) : ''
  if (!NODE_ID.test(id)) throw new EtcdError('protocol', `${where}: ${JSON.stringify(id)} is not a node id`)
  let v: unknown
  try {
    v = JSON.parse(kv.value.toString('utf8'))
  } catch (err) {
    throw new EtcdError('protocol', `${where}: not JSON: ${kv.value.toString('utf8').slice(0, 200)}`, { cause: err })
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new EtcdError('protocol', `${where}: expected { http, resp, peer }, got ${kv.value.toString('utf8').slice(0, 200)}`)
  const o = v as Record<string, unknown>
  const address = (name: 'http' | 'resp'): string | null => {
    const a = o[name]
    if (a === undefined || a === null) return null
    if (typeof a !== 'string' || a === '') throw new EtcdError('protocol', `${where}: ${name} must be "host:port" or null, got ${JSON.stringify(a)}`)
    return a
  }
  if (typeof o.peer !== 'string' || o.peer === '') throw new EtcdError('protocol', `${where}: peer must be "host:port", got ${JSON.stringify(o.peer) ?? 'nothing'}`)
  return { id, http: address('http'), resp: address('resp'), peer: o.peer }
}

/** The cluster's member keys, sorted by id. */
export async function readMembers(client: EtcdClient, cluster: string, options: CallOptions = {}): Promise<MemberRecord[]> {
  const keys = keysOf(cluster)
  const r = await client.range(keys.membersPrefix, { ...options, prefix: true, sortTarget: 'key', sortOrder: 'ascend' })
  return r.kvs.map((kv) => parseMember(kv, keys.membersPrefix))
}

export interface ClusterState {
  /** The etcd revision all three were read at. */
  revision: bigint
  config: ClusterConfig | null
  members: MemberRecord[]
  leader: LeaderRecord | null
}

/** Config, members and leader key in one txn, i.e. at one revision. */
export async function readClusterState(client: EtcdClient, cluster: string, options: CallOptions = {}): Promise<ClusterState> {
  const keys = keysOf(cluster)
  const r = await client.txn(
    {
      success: [
        { range: { key: keys.config } },
        { range: { key: keys.membersPrefix, prefix: true, sortTarget: 'key', sortOrder: 'ascend' } },
        { range: { key: keys.leader } },
      ],
    },
    options,
  )
  const ranges = r.responses.map((x) => x.range)
  if (ranges.length !== 3 || ranges.some((x) => x === undefined)) throw new EtcdError('protocol', `read cluster ${cluster}: the txn answered ${r.responses.length} ranges, expected 3`)
  const [config, members, leader] = ranges as [NonNullable<(typeof ranges)[0]>, NonNullable<(typeof ranges)[0]>, NonNullable<(typeof ranges)[0]>]
  const configKv = config.kvs[0]
  const leaderKv = leader.kvs[0]
  return {
    revision: r.header.revision,
    config: configKv === undefined ? null : parseClusterConfig(configKv),
    members: members.kvs.map((kv) => parseMember(kv, keys.membersPrefix)),
    leader: leaderKv === undefined ? null : parseLeader(leaderKv),
  }
}
