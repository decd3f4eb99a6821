/**
 * The RESP command table: every command by name, in the order COMMAND lists
 * them, the lookup the connection runs for every command, and the error
 * for a name that is not in the table. The commands
 * come from their families (resp-commands-*.ts); the table itself adds
 * COMMAND, which reports it, and the commands the connection handles itself
 * (kind `tx`). See resp-command-spec.ts for what a command is.
 */
import { lower } from './resp-arguments.js'
import { ALL_KEYS, type Call, type CommandSpec, type SpecInput } from './resp-command-spec.js'
import { defineConnectionCommands } from './resp-commands-connection.js'
import { defineKeyspaceCommands } from './resp-commands-keyspace.js'
import { defineServerCommands } from './resp-commands-server.js'
import { defineStringCommands } from './resp-commands-strings.js'
import { defineUnsupportedCommands } from './resp-commands-unsupported.js'
import { MapReply, OK, SimpleString, err, type Reply } from './resp-reply.js'

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

// Connection and server.
defineConnectionCommands(def)
def({ name: 'command', arity: -1, kind: 'conn', flags: ['loading', 'stale'], run: commandCommand })
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

// Known commands stratadb does not do (yet): a clear error instead of "unknown command".
defineUnsupportedCommands(def)

/** Commands allowed before AUTH when a token is configured. */
export const NO_AUTH_COMMANDS = new Set(['auth', 'hello', 'quit', 'reset'])
