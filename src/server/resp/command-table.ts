/**
 * The RESP command table: every command by name, in the order COMMAND lists
 * them, the lookup the connection runs for every command, and the error
 * for a name that is not in the table. The commands
 * come from their families (commands-*.ts); the table itself adds
 * COMMAND, which reports it, and the commands the connection handles itself
 * (kind `tx`). See command-spec.ts for what a command is.
 */
import { GlobMatcher, MAX_GLOB_PATTERN_BYTES } from './glob.js'
import { lower } from './arguments.js'
import { ALL_KEYS, type Call, type CommandSpec, type SpecInput } from './command-spec.js'
import { defineConnectionCommands } from './commands-connection.js'
import { defineExpiryCommands } from './commands-expiry.js'
import { defineFlushCommands, defineKeyspaceCommands } from './commands-keyspace.js'
import { defineServerCommands } from './commands-server.js'
import { defineStringCommands } from './commands-strings.js'
import { MapReply, OK, SimpleString, err, type Reply } from './reply.js'

/** Every command, by lower-case name. */
export const COMMANDS = new Map<string, CommandSpec>()

/** Commands by a hash of their lower-case name, so that lookups need no string (see lookupCommand). */
const BY_NAME_HASH = new Map<number, CommandSpec[]>()
/** Longest command name. */
let longestName = 0

function def(s: SpecInput): void {
  const [firstKey, lastKey, step] = s.keys ?? [0, 0, 0]
  const spec: CommandSpec = { ...s, firstKey, lastKey, step, flags: s.flags ?? [], subcommands: s.subcommands ?? [] }
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

/** The error message for a command name lookupCommand does not know, as Redis words it. */
export function unknownCommandMessage(args: Buffer[]): string {
  const show = (b: Buffer): string => b.toString('latin1').slice(0, 128).replace(/[^\x20-\x7e]/g, '?')
  const rest = args
    .slice(1)
    .slice(0, 8)
    .map((a) => `'${show(a)}' `)
    .join('')
  return `unknown command '${show(args[0])}', with args beginning with: ${rest}`
}

/** ACL categories beyond those the flags give (read, write, admin, dangerous, fast, slow), by command. */
const FAMILY_CATEGORIES: Record<string, readonly string[]> = {
  connection: ['ping', 'echo', 'auth', 'hello', 'select', 'client', 'command', 'quit', 'reset'],
  transaction: ['multi', 'exec', 'discard', 'watch', 'unwatch'],
  keyspace: ['dbsize', 'del', 'unlink', 'exists', 'type', 'ttl', 'pttl', 'expiretime', 'pexpiretime', 'scan', 'keys', 'expire', 'pexpire', 'expireat', 'pexpireat', 'persist', 'flushdb', 'flushall'],
  dangerous: ['info', 'keys', 'flushdb', 'flushall', 'lastsave'],
  // Admin without the admin flag (Redis 7: LASTSAVE is @admin @fast @dangerous).
  admin: ['lastsave'],
}

/** The ACL categories of a command (without `@`), as Redis 7 derives them from flags plus its family. */
function categories(name: string, flags: readonly string[], parent?: string): string[] {
  const out = new Set<string>()
  if (flags.includes('write')) out.add('write')
  if (flags.includes('readonly')) out.add('read')
  if (flags.includes('admin')) {
    out.add('admin')
    out.add('dangerous')
  }
  out.add(flags.includes('fast') ? 'fast' : 'slow')
  const family = parent ?? name
  for (const [cat, names] of Object.entries(FAMILY_CATEGORIES)) if (names.includes(family)) out.add(cat)
  if ((out.has('read') || out.has('write')) && !out.has('keyspace')) out.add('string')
  return [...out]
}

/** One entry of COMMAND LIST / INFO: a command, or a subcommand named `parent|name`. */
interface Listed {
  fullName: string
  arity: number
  flags: readonly string[]
  keys: readonly [number, number, number]
  categories: string[]
  subcommands: Listed[]
}

function listed(spec: CommandSpec): Listed {
  return {
    fullName: spec.name,
    arity: spec.arity,
    flags: spec.flags,
    keys: [spec.firstKey, spec.lastKey, spec.step],
    categories: categories(spec.name, spec.flags),
    subcommands: spec.subcommands.map((sub) => ({
      fullName: `${spec.name}|${sub.name}`,
      arity: sub.arity,
      flags: sub.flags,
      keys: [0, 0, 0] as const,
      categories: categories(sub.name, sub.flags, spec.name),
      subcommands: [],
    })),
  }
}

/** COMMAND INFO's reply for one command (Redis 7: ten fields, subcommands nested in the last). */
function commandInfo(c: Listed): Reply {
  return [
    c.fullName,
    c.arity,
    c.flags.map((f) => new SimpleString(f)),
    c.keys[0],
    c.keys[1],
    c.keys[2],
    c.categories.map((cat) => new SimpleString(`@${cat}`)),
    [],
    [],
    c.subcommands.map(commandInfo),
  ]
}

/** Every command, then its subcommands, in table order. */
function everyListed(): Listed[] {
  const out: Listed[] = []
  for (const spec of COMMANDS.values()) {
    const c = listed(spec)
    out.push(c, ...c.subcommands)
  }
  return out
}

/** A command or subcommand by name (`client|list`), any case. */
function findListed(name: string): Listed | undefined {
  const [parent, sub, extra] = name.toLowerCase().split('|')
  const spec = COMMANDS.get(parent)
  if (spec === undefined || extra !== undefined) return undefined
  const c = listed(spec)
  return sub === undefined ? c : c.subcommands.find((s) => s.fullName === `${parent}|${sub}`)
}

/** COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern], as Redis 7 (subcommands listed as `client|list`). */
function commandList(args: Buffer[]): Reply {
  let filter: ((c: Listed) => boolean) | undefined
  for (let i = 2; i < args.length; i++) {
    if (lower(args[i]) !== 'filterby' || args.length - 1 - i !== 2) return err('syntax error')
    const type = lower(args[i + 1])
    const arg = args[i + 2]
    if (type === 'module') {
      filter = () => false // no modules
    } else if (type === 'aclcat') {
      const cat = lower(arg)
      filter = (c) => c.categories.includes(cat)
    } else if (type === 'pattern') {
      if (arg.length > MAX_GLOB_PATTERN_BYTES) return []
      // Case-insensitive, as Redis; one step budget for the whole listing.
      const matcher = new GlobMatcher(Buffer.from(lower(arg), 'latin1'), 1_000_000)
      filter = (c) => matcher.match(Buffer.from(c.fullName, 'latin1'))
    } else {
      return err('syntax error')
    }
    i += 2
  }
  const all = everyListed()
  return (filter === undefined ? all : all.filter(filter)).map((c) => c.fullName)
}

/** Arity of COMMAND's own subcommands (counted from COMMAND), as Redis 7. */
const COMMAND_SUBCOMMANDS = [
  { name: 'count', arity: 2, flags: ['loading', 'stale'] },
  { name: 'docs', arity: -2, flags: ['loading', 'stale'] },
  { name: 'info', arity: -2, flags: ['loading', 'stale'] },
  { name: 'list', arity: -2, flags: ['loading', 'stale'] },
] as const

function commandCommand(call: Call): Reply {
  const { args } = call
  if (args.length === 1) return [...COMMANDS.values()].map((s) => commandInfo(listed(s)))
  const sub = lower(args[1])
  const known = COMMAND_SUBCOMMANDS.find((s) => s.name === sub)
  if (known === undefined) return err(`unknown subcommand '${args[1].toString('latin1').slice(0, 64)}'. Try COMMAND HELP.`)
  if (known.arity >= 0 ? args.length !== known.arity : args.length < -known.arity) return err(`wrong number of arguments for 'command|${sub}' command`)
  switch (sub) {
    case 'count':
      return COMMANDS.size
    case 'list':
      return commandList(args)
    case 'info': {
      if (args.length === 2) return [...COMMANDS.values()].map((s) => commandInfo(listed(s)))
      return args.slice(2).map((a) => {
        const c = findListed(a.toString('latin1'))
        return c === undefined ? null : commandInfo(c)
      })
    }
    default:
      return new MapReply([])
  }
}

// Connection and server.
defineConnectionCommands(def)
def({ name: 'command', arity: -1, kind: 'conn', flags: ['loading', 'stale'], run: commandCommand, subcommands: COMMAND_SUBCOMMANDS })
defineServerCommands(def)
def({ name: 'quit', arity: -1, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'fast', 'no-auth'], run: () => OK })
def({ name: 'reset', arity: 1, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'fast', 'no-auth'], run: () => new SimpleString('RESET') })

// Transactions (handled by the connection).
def({ name: 'multi', arity: 1, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'fast'], run: () => OK })
def({ name: 'exec', arity: 1, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'skip_slowlog'], run: () => OK })
def({ name: 'discard', arity: 1, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'fast'], run: () => OK })
def({ name: 'watch', arity: -2, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'fast'], keys: ALL_KEYS, run: () => OK })
def({ name: 'unwatch', arity: 1, kind: 'tx', flags: ['noscript', 'loading', 'stale', 'fast'], run: () => OK })

// Strings.
defineStringCommands(def)

// Key space.
defineKeyspaceCommands(def)

// Expiry (TTL): SETEX, GETEX, EXPIRE..., TTL...
defineExpiryCommands(def)

// FLUSHDB, FLUSHALL: one range delete of every key.
defineFlushCommands(def)

/** Commands allowed before AUTH when a token is configured. */
export const NO_AUTH_COMMANDS = new Set(['auth', 'hello', 'quit', 'reset'])
