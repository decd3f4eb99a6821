/**
 * The RESP command table: arity, flags and key positions (for COMMAND, key
 * locks and MULTI), the execution class of each command, and the handlers.
 *
 * Handlers are written against `KvStore` (see store.ts) so that one handler
 * serves a command run on its own and inside MULTI/EXEC. Execution classes:
 *
 * - `conn`  connection state and server info; no keys.
 * - `read`  reads keys; runs once the connection's own writes are applied.
 * - `write` blind writes (no read); issued at once unless a key is locked.
 * - `rmw`   read-modify-write; runs under exclusive key locks as a small
 *           optimistic transaction (BufferedStore), so it is atomic.
 * - `tx`    MULTI, EXEC, DISCARD, WATCH, UNWATCH, QUIT, RESET: the
 *           connection handles them itself.
 */
import * as os from 'node:os'
import { ConflictError, type Database } from '../index.js'
import type { ServerContext } from './context.js'
import { globMatch, isLiteral, literalPrefix, prefixEnd } from './glob.js'
import { andThen, type MaybePromise } from './maybe.js'
import { ErrorReply, MapReply, OK, PONG, SimpleString, err, type Protocol, type Reply } from './resp-reply.js'
import type { KvStore } from './store.js'

/** How the connection runs a command; see the file comment. */
export type CommandKind = 'conn' | 'read' | 'write' | 'rmw' | 'tx'

/** What a connection exposes to command handlers. */
export interface ConnectionState {
  readonly id: number
  name: string | null
  protocol: Protocol
  authenticated: boolean
  libName: string | null
  libVersion: string | null
  readonly remoteAddress: string
  readonly createdAtMs: number
  lastCommand: string
}

/** One invocation of a command. `args[0]` is the command name as sent. */
export interface Call {
  readonly args: Buffer[]
  readonly store: KvStore
  readonly conn: ConnectionState
  readonly server: ServerContext
}

/** A command of the table. */
export interface CommandSpec {
  /** Lower-case name. */
  readonly name: string
  /** Redis convention: N = exactly N arguments (with the name), -N = at least N. */
  readonly arity: number
  /** Flags as COMMAND reports them. */
  readonly flags: readonly string[]
  /** Key positions as COMMAND reports them (0 when the command has no keys). */
  readonly firstKey: number
  readonly lastKey: number
  readonly step: number
  /** Execution class, possibly depending on the arguments (SET with NX is rmw, plain SET is write). */
  readonly kind: CommandKind | ((args: Buffer[]) => CommandKind)
  /** The handler. Ignored for `tx` commands, which the connection handles. */
  run(call: Call): MaybePromise<Reply>
}

/** Reply of a command that is known but not supported by stratadb. */
function unsupported(what: string, why: string): ErrorReply {
  return err(`${what} is not supported by stratadb: ${why}`)
}

const NO_EXPIRY = 'keys do not expire (no TTLs yet)'

/** The keys a command touches, from its key positions (MSET: every other argument). */
export function commandKeys(spec: CommandSpec, args: Buffer[]): Buffer[] {
  if (spec.firstKey === 0 || args.length <= spec.firstKey) return []
  const last = spec.lastKey < 0 ? args.length + spec.lastKey : Math.min(spec.lastKey, args.length - 1)
  const keys: Buffer[] = []
  for (let i = spec.firstKey; i <= last; i += spec.step) keys.push(args[i])
  return keys
}

/** The length of the first of the command's keys longer than `maxKeyBytes`, if any (no allocation). */
export function overlongKey(spec: CommandSpec, args: Buffer[], maxKeyBytes: number): number | undefined {
  if (spec.firstKey === 0 || args.length <= spec.firstKey) return undefined
  const last = spec.lastKey < 0 ? args.length + spec.lastKey : Math.min(spec.lastKey, args.length - 1)
  for (let i = spec.firstKey; i <= last; i += spec.step) if (args[i].length > maxKeyBytes) return args[i].length
  return undefined
}

/** The kind of this invocation. */
export function commandKind(spec: CommandSpec, args: Buffer[]): CommandKind {
  return typeof spec.kind === 'function' ? spec.kind(args) : spec.kind
}

/** True when the arity of `args` fits `spec`. */
export function arityOk(spec: CommandSpec, args: Buffer[]): boolean {
  return spec.arity >= 0 ? args.length === spec.arity : args.length >= -spec.arity
}

// ---- argument parsing -------------------------------------------------------

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n

/** Parses a Redis integer (string2ll rules: optional '-', no '+', no leading zeros, int64). */
export function parseInteger(b: Buffer): bigint | undefined {
  if (b.length === 0 || b.length > 20) return undefined
  const s = b.toString('latin1')
  if (!/^(0|-?[1-9]\d*)$/.test(s)) return undefined
  const n = BigInt(s)
  return n < INT64_MIN || n > INT64_MAX ? undefined : n
}

const NOT_INTEGER = err('value is not an integer or out of range')

function lower(b: Buffer): string {
  return b.toString('latin1').toLowerCase()
}

function safeNumber(n: bigint): number | bigint {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n
}

// ---- handlers -----------------------------------------------------------------

function setCommand(call: Call): MaybePromise<Reply> {
  const { args, store } = call
  if (args.length === 3) return andThen(store.put(args[1], args[2]), () => OK)
  const o = parseSetOptions(args)
  if (o instanceof ErrorReply) return o
  const [, key, value] = args
  if (!o.nx && !o.xx && !o.get) return andThen(store.put(key, value), () => OK)
  return andThen(store.getEntry(key), (old) => {
    const exists = old !== undefined
    const previous = o.get ? (old?.value ?? null) : null
    if ((o.nx && exists) || (o.xx && !exists)) return previous
    return andThen(store.put(key, value), () => (o.get ? previous : OK))
  })
}

interface SetOptions {
  nx: boolean
  xx: boolean
  get: boolean
}

function parseSetOptions(args: Buffer[]): SetOptions | ErrorReply {
  const o: SetOptions = { nx: false, xx: false, get: false }
  for (let i = 3; i < args.length; i++) {
    const opt = lower(args[i])
    if (opt === 'nx') o.nx = true
    else if (opt === 'xx') o.xx = true
    else if (opt === 'get') o.get = true
    else if (opt === 'keepttl') continue // no key has a TTL: keeping it is what happens anyway
    else if (opt === 'ex' || opt === 'px' || opt === 'exat' || opt === 'pxat') return unsupported(`SET ${opt.toUpperCase()}`, NO_EXPIRY)
    else return err('syntax error')
  }
  if (o.nx && o.xx) return err('syntax error')
  return o
}

function setKind(args: Buffer[]): CommandKind {
  return args.length > 3 ? 'rmw' : 'write'
}

function incrBy(call: Call, delta: bigint | undefined): MaybePromise<Reply> {
  if (delta === undefined) return NOT_INTEGER
  const { store } = call
  const key = call.args[1]
  return andThen(store.get(key), (old) => {
    const current = old === undefined ? 0n : parseInteger(old)
    if (current === undefined) return NOT_INTEGER
    const next = current + delta
    if (next < INT64_MIN || next > INT64_MAX) return err('increment or decrement would overflow')
    return andThen(store.put(key, Buffer.from(next.toString(), 'latin1')), () => safeNumber(next))
  })
}

function getRange(value: Buffer | undefined, startArg: Buffer, endArg: Buffer): Reply {
  const s = parseInteger(startArg)
  const e = parseInteger(endArg)
  if (s === undefined || e === undefined) return NOT_INTEGER
  const len = BigInt(value?.length ?? 0)
  let start = s
  let end = e
  if (start < 0n && end < 0n && start > end) return ''
  if (start < 0n) start = len + start
  if (end < 0n) end = len + end
  if (start < 0n) start = 0n
  if (end < 0n) end = 0n
  if (end >= len) end = len - 1n
  if (value === undefined || len === 0n || start > end) return ''
  return value.subarray(Number(start), Number(end) + 1)
}

/** Iterator bounds for keys matching `pattern` (its literal prefix), resuming after `after`. */
function patternRange(pattern: Buffer | undefined, after: Buffer | null): { gt?: Buffer; gte?: Buffer; lt?: Buffer } {
  const range: { gt?: Buffer; gte?: Buffer; lt?: Buffer } = {}
  const prefix = pattern === undefined ? Buffer.alloc(0) : literalPrefix(pattern)
  if (prefix.length > 0) {
    range.gte = prefix
    const end = prefixEnd(prefix)
    if (end !== undefined) range.lt = end
  }
  if (after !== null && (range.gte === undefined || Buffer.compare(after, range.gte) >= 0)) {
    delete range.gte
    range.gt = after
  }
  return range
}

function scanCommand(call: Call): MaybePromise<Reply> {
  const { args, server } = call
  const cursorText = args[1].toString('latin1')
  const after = server.cursors.load(cursorText)
  if (after === undefined) return err('invalid cursor')
  let pattern: Buffer | undefined
  let count = 10
  let typeOk = true
  for (let i = 2; i < args.length; i++) {
    const opt = lower(args[i])
    if (i + 1 >= args.length) return err('syntax error')
    const v = args[++i]
    if (opt === 'match') pattern = v
    else if (opt === 'count') {
      const n = parseInteger(v)
      if (n === undefined) return NOT_INTEGER
      if (n < 1n) return err('syntax error')
      count = Number(n > 100_000n ? 100_000n : n)
    } else if (opt === 'type') typeOk = lower(v) === 'string'
    else return err('syntax error')
  }
  if (pattern !== undefined && (pattern.length === 1 && pattern[0] === 0x2a)) pattern = undefined
  const it = server.db.iterator({ ...patternRange(pattern, after), limit: count + 1 })
  const keys: Buffer[] = []
  let last: Buffer | undefined
  let examined = 0
  let more = false
  try {
    for (let e = it.nextSync(); e !== undefined; e = it.nextSync()) {
      if (examined === count) {
        more = true
        break
      }
      examined++
      last = e[0]
      if (typeOk && (pattern === undefined || globMatch(pattern, e[0]))) keys.push(e[0])
    }
  } finally {
    it.close()
  }
  const next = more && last !== undefined ? server.cursors.save(last) : '0'
  return [next, keys]
}

async function keysCommand(call: Call): Promise<Reply> {
  const { args, server } = call
  const pattern = args[1]
  const max = server.options.limits.maxKeysReply
  if (isLiteral(pattern)) {
    const key = literalPrefix(pattern)
    return key.length > 0 && server.db.getSync(key) !== undefined ? [key] : []
  }
  const all = pattern.length === 1 && pattern[0] === 0x2a
  const keys: Buffer[] = []
  for await (const [k] of server.db.iterator(patternRange(pattern, null))) {
    if (all || globMatch(pattern, k)) {
      if (keys.length >= max) return err(`KEYS would return more than ${max} keys; use SCAN`)
      keys.push(k)
    }
  }
  return keys
}

async function countKeys(db: Database): Promise<number> {
  let n = 0
  for await (const _ of db.iterator()) n++
  return n
}

function infoText(call: Call, sectionArgs: Buffer[]): string {
  const { server } = call
  const wanted = new Set(sectionArgs.map(lower))
  const all = wanted.size === 0 || wanted.has('all') || wanted.has('everything') || wanted.has('default')
  const want = (s: string): boolean => all || wanted.has(s)
  const lines: string[] = []
  const section = (name: string, fields: Array<[string, string | number]>): void => {
    if (!want(name.toLowerCase())) return
    if (lines.length > 0) lines.push('')
    lines.push(`# ${name}`)
    for (const [k, v] of fields) lines.push(`${k}:${v}`)
  }
  const uptime = Math.floor((performance.now() - server.startedAtMs) / 1000)
  section('Server', [
    ['redis_version', REDIS_COMPAT_VERSION],
    ['strata_version', STRATA_VERSION],
    ['redis_mode', 'standalone'],
    ['os', `${os.type()} ${os.release()} ${os.arch()}`],
    ['arch_bits', process.arch.includes('64') ? 64 : 32],
    ['process_id', process.pid],
    ['tcp_port', server.ports.resp ?? 0],
    ['uptime_in_seconds', uptime],
    ['uptime_in_days', Math.floor(uptime / 86400)],
    ['executable', process.argv[1] ?? ''],
  ])
  const counts = server.connectionCount()
  section('Clients', [
    ['connected_clients', counts.resp],
    ['connected_http_clients', counts.http],
    ['maxclients', server.options.limits.maxConnections],
    ['blocked_clients', 0],
  ])
  const mem = process.memoryUsage()
  section('Memory', [
    ['used_memory', mem.heapUsed + mem.external],
    ['used_memory_rss', mem.rss],
    ['used_memory_human', `${((mem.heapUsed + mem.external) / 2 ** 20).toFixed(2)}M`],
    ['maxmemory', 0],
  ])
  section('Persistence', [
    ['loading', 0],
    ['aof_enabled', 0],
    ['strata_sync_writes', server.options.sync ? 1 : 0],
    ['strata_dir', server.options.dir],
  ])
  section('Stats', [
    ['strata_pending_writes', server.gate.pending],
    ['strata_busy_refusals', server.gate.refused],
    ['strata_write_stalled_ms', Math.round(server.gate.stalledMs())],
  ])
  section('Replication', [
    ['role', 'master'],
    ['connected_slaves', 0],
  ])
  if (want('strata')) {
    const s = server.db.isOpen ? server.db.stats() : undefined
    if (s !== undefined) {
      section('Strata', [
        ['last_sequence', s.lastSequence],
        ['levels', s.levels.map((l) => `L${l.level}=${l.tables}/${l.bytes}`).join(',')],
        ['memtable_bytes', s.memtable.activeBytes],
        ['pending_compaction_bytes', s.pendingCompactionBytes],
        ['write_stalls', s.writes.stalls],
        ['write_stall_ms', Math.round(s.writes.stallMs)],
        ['write_amplification', s.writeAmplification.toFixed(2)],
      ])
    }
  }
  return lines.join('\r\n') + '\r\n'
}

/** The version INFO and HELLO report as `redis_version`/`version`: the Redis API level implemented. */
export const REDIS_COMPAT_VERSION = '7.0.0'
/** stratadb's own version, set by the server at start. */
export let STRATA_VERSION = '0.0.0'
export function setStrataVersion(v: string): void {
  STRATA_VERSION = v
}

const CLIENT_NAME_OK = /^[!-~]*$/

function clientCommand(call: Call): Reply {
  const { args, conn } = call
  const sub = lower(args[1])
  switch (sub) {
    case 'setname': {
      if (args.length !== 3) return err(`wrong number of arguments for 'client|setname' command`)
      const name = args[2].toString('latin1')
      if (!CLIENT_NAME_OK.test(name)) return err('Client names cannot contain spaces, newlines or special characters.')
      conn.name = name.length === 0 ? null : name
      return OK
    }
    case 'getname':
      return conn.name
    case 'id':
      return conn.id
    case 'setinfo': {
      if (args.length !== 4) return err(`wrong number of arguments for 'client|setinfo' command`)
      const attr = lower(args[2])
      const value = args[3].toString('latin1')
      if (!CLIENT_NAME_OK.test(value)) return err(`${attr} cannot contain spaces, newlines or special characters.`)
      if (attr === 'lib-name') conn.libName = value
      else if (attr === 'lib-ver') conn.libVersion = value
      else return err(`Unrecognized option '${args[2].toString('latin1')}'`)
      return OK
    }
    case 'info':
      return clientInfoLine(conn) + '\n'
    case 'list':
      return clientInfoLine(conn) + '\n'
    case 'no-evict':
    case 'no-touch':
      return OK
    case 'reply':
      return args.length === 3 && lower(args[2]) === 'on' ? OK : unsupported('CLIENT REPLY OFF/SKIP', 'every command is answered')
    default:
      return err(`unknown subcommand '${args[1].toString('latin1').slice(0, 64)}'. Try CLIENT HELP.`)
  }
}

function clientInfoLine(conn: ConnectionState): string {
  const age = Math.floor((performance.now() - conn.createdAtMs) / 1000)
  return (
    `id=${conn.id} addr=${conn.remoteAddress} name=${conn.name ?? ''} age=${age} db=0 ` +
    `resp=${conn.protocol} lib-name=${conn.libName ?? ''} lib-ver=${conn.libVersion ?? ''} cmd=${conn.lastCommand}`
  )
}

function helloCommand(call: Call): Reply {
  const { args, conn, server } = call
  let protocol: Protocol = conn.protocol
  let i = 1
  if (args.length > 1) {
    const v = parseInteger(args[1])
    if (v === undefined) return err('Protocol version is not an integer or out of range')
    if (v !== 2n && v !== 3n) return new ErrorReply('NOPROTO unsupported protocol version')
    protocol = Number(v) as Protocol
    i = 2
  }
  let authenticated = conn.authenticated
  let name: string | undefined
  for (; i < args.length; i++) {
    const opt = lower(args[i])
    if (opt === 'auth' && i + 2 < args.length) {
      const r = checkAuth(server, args[i + 1], args[i + 2])
      if (r !== undefined) return r
      authenticated = true
      i += 2
    } else if (opt === 'setname' && i + 1 < args.length) {
      const n = args[++i].toString('latin1')
      if (!CLIENT_NAME_OK.test(n)) return err('Client names cannot contain spaces, newlines or special characters.')
      name = n
    } else {
      return err(`Syntax error in HELLO option '${args[i].toString('latin1').slice(0, 64)}'`)
    }
  }
  if (!authenticated) {
    return new ErrorReply(
      'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
    )
  }
  conn.authenticated = true
  conn.protocol = protocol
  if (name !== undefined) conn.name = name.length === 0 ? null : name
  return new MapReply([
    ['server', 'redis'],
    ['version', REDIS_COMPAT_VERSION],
    ['proto', protocol],
    ['id', conn.id],
    ['mode', 'standalone'],
    ['role', 'master'],
    ['modules', []],
    ['strata', STRATA_VERSION],
  ])
}

/** undefined when `password` (for `user`) is right; else the error reply. */
function checkAuth(server: ServerContext, user: Buffer | undefined, password: Buffer): ErrorReply | undefined {
  if (server.auth === undefined) {
    return err('AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?')
  }
  const userOk = user === undefined || user.toString('latin1') === 'default'
  // Always compare, so timing does not reveal whether the user name was right.
  const passOk = server.auth.matches(password)
  if (!userOk || !passOk) return new ErrorReply('WRONGPASS invalid username-password pair or user is disabled.')
  return undefined
}

function authCommand(call: Call): Reply {
  const { args, conn, server } = call
  if (args.length > 3) return new ErrorReply('ERR syntax error')
  const r = args.length === 3 ? checkAuth(server, args[1], args[2]) : checkAuth(server, undefined, args[1])
  if (r !== undefined) return r
  conn.authenticated = true
  return OK
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

function commandInfo(spec: CommandSpec): Reply {
  return [spec.name, spec.arity, spec.flags.map((f) => new SimpleString(f)), spec.firstKey, spec.lastKey, spec.step, [], [], [], []]
}

function commandCommand(call: Call): Reply {
  const { args } = call
  if (args.length === 1) return [...COMMANDS.values()].map(commandInfo)
  const sub = lower(args[1])
  switch (sub) {
    case 'count':
      return COMMANDS.size
    case 'list':
      return [...COMMANDS.keys()]
    case 'info':
      return args.slice(2).map((a) => {
        const spec = COMMANDS.get(lower(a))
        return spec === undefined ? null : commandInfo(spec)
      })
    case 'docs':
      return new MapReply([])
    default:
      return err(`unknown subcommand '${args[1].toString('latin1').slice(0, 64)}'. Try COMMAND HELP.`)
  }
}

// ---- the table ----------------------------------------------------------------

type SpecInput = Omit<CommandSpec, 'firstKey' | 'lastKey' | 'step' | 'flags'> & {
  flags?: readonly string[]
  keys?: readonly [number, number, number]
}

/** Every command, by lower-case name. */
export const COMMANDS = new Map<string, CommandSpec>()

/** Commands by a hash of their lower-case name, so that lookups need no string (see lookupCommand). */
const BY_NAME_HASH = new Map<number, CommandSpec[]>()
/** Longest command name. */
let longestName = 0

function def(s: SpecInput): void {
  const [firstKey, lastKey, step] = s.keys ?? [0, 0, 0]
  const spec: CommandSpec = { ...s, firstKey, lastKey, step, flags: s.flags ?? [] }
  COMMANDS.set(s.name, spec)
  const bytes = Buffer.from(s.name, 'latin1')
  const h = nameHash(bytes)
  const bucket = BY_NAME_HASH.get(h)
  if (bucket === undefined) BY_NAME_HASH.set(h, [spec])
  else bucket.push(spec)
  longestName = Math.max(longestName, bytes.length)
}

/** ASCII lower case of a byte. */
function lowerByte(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c
}

function nameHash(b: Buffer): number {
  let h = b.length
  for (let i = 0; i < b.length; i++) h = (Math.imul(h, 31) + lowerByte(b[i])) | 0
  return h
}

/**
 * The command named by `name` (ASCII case-insensitive), as COMMANDS.get(name
 * in lower case) but without making a string: this runs for every command.
 */
export function lookupCommand(name: Buffer): CommandSpec | undefined {
  if (name.length === 0 || name.length > longestName) return undefined
  const bucket = BY_NAME_HASH.get(nameHash(name))
  if (bucket === undefined) return undefined
  for (const spec of bucket) {
    const n = spec.name
    if (n.length !== name.length) continue
    let same = true
    for (let i = 0; i < n.length; i++) {
      if (n.charCodeAt(i) !== lowerByte(name[i])) {
        same = false
        break
      }
    }
    if (same) return spec
  }
  return undefined
}

const KEY1 = [1, 1, 1] as const
const ALL_KEYS = [1, -1, 1] as const

// Connection and server.
def({ name: 'ping', arity: -1, kind: 'conn', flags: ['fast'], run: ({ args }) => (args.length > 2 ? err("wrong number of arguments for 'ping' command") : args.length === 2 ? args[1] : PONG) })
def({ name: 'echo', arity: 2, kind: 'conn', flags: ['fast'], run: ({ args }) => args[1] })
def({ name: 'auth', arity: -2, kind: 'conn', flags: ['noscript', 'loading', 'stale', 'fast', 'no-auth'], run: authCommand })
def({ name: 'hello', arity: -1, kind: 'conn', flags: ['noscript', 'loading', 'stale', 'fast', 'no-auth'], run: helloCommand })
def({ name: 'select', arity: 2, kind: 'conn', flags: ['loading', 'stale', 'fast'], run: ({ args }) => (parseInteger(args[1]) === undefined ? NOT_INTEGER : parseInteger(args[1]) === 0n ? OK : err('DB index is out of range')) })
def({ name: 'client', arity: -2, kind: 'conn', flags: ['admin', 'noscript', 'loading', 'stale'], run: clientCommand })
def({ name: 'command', arity: -1, kind: 'conn', flags: ['loading', 'stale'], run: commandCommand })
def({ name: 'info', arity: -1, kind: 'conn', flags: ['loading', 'stale'], run: (c) => infoText(c, c.args.slice(1)) })
def({ name: 'config', arity: -2, kind: 'conn', flags: ['admin', 'noscript', 'loading', 'stale'], run: configCommand })
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
def({ name: 'quit', arity: -1, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'fast', 'no-auth'], run: () => OK })
def({ name: 'reset', arity: 1, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'fast', 'no-auth'], run: () => new SimpleString('RESET') })

// Transactions (handled by the connection).
def({ name: 'multi', arity: 1, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'fast'], run: () => OK })
def({ name: 'exec', arity: 1, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'skip_slowlog'], run: () => OK })
def({ name: 'discard', arity: 1, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'fast'], run: () => OK })
def({ name: 'watch', arity: -2, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'fast'], keys: ALL_KEYS, run: () => OK })
def({ name: 'unwatch', arity: 1, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'fast'], run: () => OK })

// Strings.
def({ name: 'get', arity: 2, kind: 'read', flags: ['readonly', 'fast'], keys: KEY1, run: ({ args, store }) => andThen(store.get(args[1]), (v) => v ?? null) })
def({ name: 'set', arity: -3, kind: setKind, flags: ['write', 'denyoom'], keys: KEY1, run: setCommand })
def({
  name: 'setnx',
  arity: 3,
  kind: 'rmw',
  flags: ['write', 'denyoom', 'fast'],
  keys: KEY1,
  run: ({ args, store }) => andThen(store.getEntry(args[1]), (old) => (old !== undefined ? 0 : andThen(store.put(args[1], args[2]), () => 1))),
})
def({
  name: 'getset',
  arity: 3,
  kind: 'rmw',
  flags: ['write', 'denyoom', 'fast'],
  keys: KEY1,
  run: ({ args, store }) => andThen(store.get(args[1]), (old) => andThen(store.put(args[1], args[2]), () => old ?? null)),
})
def({
  name: 'getdel',
  arity: 2,
  kind: 'rmw',
  flags: ['write', 'fast'],
  keys: KEY1,
  run: ({ args, store }) => andThen(store.get(args[1]), (old) => (old === undefined ? null : andThen(store.del(args[1]), () => old))),
})
for (const name of ['del', 'unlink']) {
  def({
    name,
    arity: -2,
    kind: 'rmw',
    flags: ['write'],
    keys: ALL_KEYS,
    run: async ({ args, store }) => {
      let n = 0
      const seen = new Set<string>()
      for (const key of args.slice(1)) {
        const id = key.toString('latin1')
        if (seen.has(id)) continue
        seen.add(id)
        if ((await store.getEntry(key)) !== undefined) {
          await store.del(key)
          n++
        }
      }
      return n
    },
  })
}
def({
  name: 'exists',
  arity: -2,
  kind: 'read',
  flags: ['readonly', 'fast'],
  keys: ALL_KEYS,
  run: ({ args, store }) => andThen(store.getMany(args.slice(1)), (values) => values.filter((v) => v !== undefined).length),
})
def({ name: 'mget', arity: -2, kind: 'read', flags: ['readonly', 'fast'], keys: ALL_KEYS, run: ({ args, store }) => andThen(store.getMany(args.slice(1)), (values) => values.map((v) => v ?? null)) })
def({
  name: 'mset',
  arity: -3,
  kind: 'write',
  flags: ['write', 'denyoom'],
  keys: [1, -1, 2],
  run: ({ args, store }) => {
    if (args.length % 2 !== 1) return err("wrong number of arguments for 'mset' command")
    const pairs: Array<[Buffer, Buffer]> = []
    for (let i = 1; i < args.length; i += 2) pairs.push([args[i], args[i + 1]])
    return andThen(store.putMany(pairs), () => OK)
  },
})
def({
  name: 'msetnx',
  arity: -3,
  kind: 'rmw',
  flags: ['write', 'denyoom'],
  keys: [1, -1, 2],
  run: async ({ args, store }) => {
    if (args.length % 2 !== 1) return err("wrong number of arguments for 'msetnx' command")
    const pairs: Array<[Buffer, Buffer]> = []
    for (let i = 1; i < args.length; i += 2) pairs.push([args[i], args[i + 1]])
    const existing = await store.getMany(pairs.map((p) => p[0]))
    if (existing.some((v) => v !== undefined)) return 0
    await store.putMany(pairs)
    return 1
  },
})
def({ name: 'incr', arity: 2, kind: 'rmw', flags: ['write', 'denyoom', 'fast'], keys: KEY1, run: (c) => incrBy(c, 1n) })
def({ name: 'decr', arity: 2, kind: 'rmw', flags: ['write', 'denyoom', 'fast'], keys: KEY1, run: (c) => incrBy(c, -1n) })
def({ name: 'incrby', arity: 3, kind: 'rmw', flags: ['write', 'denyoom', 'fast'], keys: KEY1, run: (c) => incrBy(c, parseInteger(c.args[2])) })
def({
  name: 'decrby',
  arity: 3,
  kind: 'rmw',
  flags: ['write', 'denyoom', 'fast'],
  keys: KEY1,
  run: (c) => {
    const d = parseInteger(c.args[2])
    if (d === INT64_MIN) return err('decrement would overflow')
    return incrBy(c, d === undefined ? undefined : -d)
  },
})
def({
  name: 'append',
  arity: 3,
  kind: 'rmw',
  flags: ['write', 'denyoom', 'fast'],
  keys: KEY1,
  run: ({ args, store }) =>
    andThen(store.get(args[1]), (old) => {
      const next = old === undefined ? args[2] : Buffer.concat([old, args[2]])
      return andThen(store.put(args[1], next), () => next.length)
    }),
})
def({ name: 'strlen', arity: 2, kind: 'read', flags: ['readonly', 'fast'], keys: KEY1, run: ({ args, store }) => andThen(store.get(args[1]), (v) => v?.length ?? 0) })
for (const name of ['getrange', 'substr']) {
  def({ name, arity: 4, kind: 'read', flags: ['readonly'], keys: KEY1, run: ({ args, store }) => andThen(store.get(args[1]), (v) => getRange(v, args[2], args[3])) })
}
def({ name: 'type', arity: 2, kind: 'read', flags: ['readonly', 'fast'], keys: KEY1, run: ({ args, store }) => andThen(store.get(args[1]), (v) => new SimpleString(v === undefined ? 'none' : 'string')) })
for (const name of ['ttl', 'pttl']) {
  def({ name, arity: 2, kind: 'read', flags: ['readonly', 'fast'], keys: KEY1, run: ({ args, store }) => andThen(store.get(args[1]), (v) => (v === undefined ? -2 : -1)) })
}

// Key space.
def({ name: 'scan', arity: -2, kind: 'read', flags: ['readonly'], run: scanCommand })
def({ name: 'keys', arity: 2, kind: 'read', flags: ['readonly'], run: keysCommand })

// Known commands stratadb does not do (yet): a clear error instead of "unknown command".
for (const [name, arity] of [['expire', -3], ['pexpire', -3], ['expireat', -3], ['pexpireat', -3], ['setex', 4], ['psetex', 4], ['getex', -2], ['persist', 2]] as const) {
  def({ name, arity, kind: 'conn', flags: ['write'], run: () => unsupported(name.toUpperCase(), NO_EXPIRY) })
}
for (const name of ['flushdb', 'flushall']) {
  def({ name, arity: -1, kind: 'conn', flags: ['write'], run: () => unsupported(name.toUpperCase(), 'delete keys with DEL, or remove the data directory') })
}

/** Commands allowed before AUTH when a token is configured. */
export const NO_AUTH_COMMANDS = new Set(['auth', 'hello', 'quit', 'reset'])

/** True when a conflict error names one of `ids` (latin1 key ids). */
export function conflictTouches(e: unknown, ids: ReadonlySet<string>): boolean {
  return e instanceof ConflictError && e.keys.some((k) => ids.has(k.toString('latin1')))
}
