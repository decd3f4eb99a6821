/**
 * What a RESP command is: its arity, flags and key positions (for COMMAND,
 * key locks and MULTI), and the execution class the connection runs it in.
 * The commands themselves are in the commands-*.ts families, gathered
 * by command-table.ts.
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
import type { RespContext } from './context.js'
import type { MaybePromise } from './maybe.js'
import { ReplyBudget } from './reply-budget.js'
import type { Protocol, Reply } from './reply.js'
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
  /** Set once the connection is gone: a long command (KEYS) may stop early, its reply is dropped. */
  readonly closed: boolean
}

/** One invocation of a command. `args[0]` is the command name as sent. */
export interface Call {
  readonly args: Buffer[]
  readonly store: KvStore
  readonly conn: ConnectionState
  readonly server: RespContext
  /** The reply budget shared by EXEC's commands; undefined: the command gets its own (reply-budget.ts). */
  readonly budget?: ReplyBudget
}

/** The budget a handler charges: EXEC's shared one, else a fresh one of `maxReplyBytes` (reply-budget.ts). */
export function replyBudget(call: Call): ReplyBudget {
  return call.budget ?? new ReplyBudget(call.server.options.limits.maxReplyBytes)
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
  /**
   * Writes every key (FLUSHDB): issued only while no key is locked
   * (KeyLocks.whenAllFree); EXEC holding one takes the whole key space
   * (KeyLocks.acquireAll). Such a command names no keys.
   */
  readonly allKeys?: boolean
  /** The handler. Ignored for `tx` commands, which the connection handles. */
  run(call: Call): MaybePromise<Reply>
  /** Subcommands of a container command (CLIENT LIST…), as COMMAND reports them (`client|list`); the handler dispatches them. */
  readonly subcommands: readonly SubcommandSpec[]
}

/** A subcommand as COMMAND reports it. */
export interface SubcommandSpec {
  /** Lower-case name without the container (`list` of `client|list`). */
  readonly name: string
  /** Counted from the container's name, as Redis does (CLIENT LIST: -2). */
  readonly arity: number
  readonly flags: readonly string[]
}

/** A command as its family declares it: no flags, no keys and no subcommands unless given. */
export type SpecInput = Omit<CommandSpec, 'firstKey' | 'lastKey' | 'step' | 'flags' | 'subcommands'> & {
  flags?: readonly string[]
  keys?: readonly [number, number, number]
  subcommands?: readonly SubcommandSpec[]
}

/** Key positions: the first argument only (KEY1), every argument after the name (ALL_KEYS). */
export const KEY1 = [1, 1, 1] as const
export const ALL_KEYS = [1, -1, 1] as const

/** Adds a command to the table (command-table.ts); each family passes its commands to it in order. */
export type DefineCommand = (s: SpecInput) => void

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
