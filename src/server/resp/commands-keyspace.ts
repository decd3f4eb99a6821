/**
 * The key space commands: SCAN, KEYS, and FLUSHDB/FLUSHALL (one range
 * delete of every key; see flushCommand). SCAN and KEYS read keys only (no values) and
 * match with one GlobMatcher per command, whose step budget bounds the
 * command's matching work (see docs/server.md, "Key space scans"):
 *
 * - SCAN examines at most COUNT keys (capped at SCAN_MAX_COUNT) and spends
 *   at most SCAN_MATCH_STEPS steps matching; when the steps run out it
 *   returns early with a cursor at the key it could not decide, so the
 *   client simply continues. A pattern that cannot decide even one key
 *   within the budget is an error.
 * - KEYS spends at most KEYS_MATCH_STEPS steps in all (else an error: use
 *   SCAN) and lets the event loop run every KEYS_SLICE_STEPS steps or
 *   KEYS_SLICE_KEYS keys.
 *
 * Patterns longer than MAX_GLOB_PATTERN_BYTES are refused.
 */
import { GlobMatcher, MAX_GLOB_PATTERN_BYTES, isLiteral, literalPrefix, prefixEnd } from './glob.js'
import { andThen, type MaybePromise } from './maybe.js'
import { NOT_INTEGER, lower, parseInteger } from './arguments.js'
import type { Call, DefineCommand } from './command-spec.js'
import { OK, err, type Reply } from './reply.js'

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

/** Largest COUNT SCAN honours (a larger one is taken as this; COUNT is a hint). */
export const SCAN_MAX_COUNT = 10_000
/** Matching steps one SCAN may spend (about 10 ms). */
export const SCAN_MATCH_STEPS = 1_000_000
/** Matching steps one KEYS may spend in all. */
export const KEYS_MATCH_STEPS = 100_000_000
/** KEYS yields to the event loop after this many matching steps… */
const KEYS_SLICE_STEPS = 200_000
/** …or this many keys. */
const KEYS_SLICE_KEYS = 1024

function patternTooLong(pattern: Buffer): Reply | undefined {
  return pattern.length > MAX_GLOB_PATTERN_BYTES ? err(`pattern is longer than ${MAX_GLOB_PATTERN_BYTES} bytes`) : undefined
}

function tooComplex(steps: number): Reply {
  return err(`pattern too complex: matching needs more than ${steps} steps`)
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
      count = Number(n > BigInt(SCAN_MAX_COUNT) ? BigInt(SCAN_MAX_COUNT) : n)
    } else if (opt === 'type') typeOk = lower(v) === 'string'
    else return err('syntax error')
  }
  if (pattern !== undefined && (pattern.length === 1 && pattern[0] === 0x2a)) pattern = undefined
  if (pattern !== undefined) {
    const refused = patternTooLong(pattern)
    if (refused !== undefined) return refused
  }
  const matcher = pattern !== undefined && typeOk ? new GlobMatcher(pattern, SCAN_MATCH_STEPS) : undefined
  const it = server.db.iterator({ ...patternRange(pattern, after), limit: count + 1, values: false })
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
      const key = e[0]
      const matched = matcher === undefined || matcher.match(key)
      if (matcher?.exhausted === true) {
        // Undecided: resume at this key next time, with a fresh budget.
        if (examined === 0) return tooComplex(SCAN_MATCH_STEPS)
        more = true
        break
      }
      examined++
      last = key
      if (typeOk && matched) keys.push(key)
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
  const refused = patternTooLong(pattern)
  if (refused !== undefined) return refused
  if (isLiteral(pattern)) {
    const key = literalPrefix(pattern)
    return key.length > 0 && server.db.getSync(key) !== undefined ? [key] : []
  }
  const all = pattern.length === 1 && pattern[0] === 0x2a
  const matcher = all ? undefined : new GlobMatcher(pattern, KEYS_MATCH_STEPS)
  const keys: Buffer[] = []
  const it = server.db.iterator({ ...patternRange(pattern, null), values: false })
  try {
    let sliceKeys = 0
    let sliceSteps = 0
    for (let e = it.nextSync(); e !== undefined; e = it.nextSync()) {
      const k = e[0]
      if (matcher === undefined || matcher.match(k)) {
        if (keys.length >= max) return err(`KEYS would return more than ${max} keys; use SCAN`)
        keys.push(k)
      } else if (matcher.exhausted) {
        return tooComplex(KEYS_MATCH_STEPS)
      }
      if (++sliceKeys >= KEYS_SLICE_KEYS || (matcher !== undefined && matcher.steps - sliceSteps >= KEYS_SLICE_STEPS)) {
        await new Promise<void>((resolve) => setImmediate(resolve))
        sliceKeys = 0
        sliceSteps = matcher?.steps ?? 0
      }
    }
  } finally {
    it.close()
  }
  return keys
}

/**
 * FLUSHDB / FLUSHALL [ASYNC | SYNC] (one database: the same): deletes every
 * key with one range delete (an O(1) write, atomic), answering once it is
 * in the WAL (fsynced with --sync). ASYNC and SYNC change nothing (nothing
 * is freed in the foreground either way); anything else is Redis' syntax
 * error. A `write` whose `allKeys` makes the connection issue it only at a
 * moment no key is locked (KeyLocks.whenAllFree), or, inside EXEC, under a
 * hold of the whole key space; it is ordered after the connection's earlier
 * writes and before its later commands like any write. Watched keys that
 * existed change version (to absent), so their EXEC aborts, as in Redis.
 */
function flushCommand(call: Call): MaybePromise<Reply> {
  const { args, store } = call
  if (args.length > 2) return err('syntax error')
  if (args.length === 2) {
    const mode = lower(args[1])
    if (mode !== 'async' && mode !== 'sync') return err('syntax error')
  }
  return andThen(store.deleteAll(), () => OK)
}

/** Adds FLUSHDB and FLUSHALL to the table. */
export function defineFlushCommands(def: DefineCommand): void {
  for (const name of ['flushdb', 'flushall']) def({ name, arity: -1, kind: 'write', flags: ['write'], allKeys: true, run: flushCommand })
}

/** Adds the key space commands to the table, in order. */
export function defineKeyspaceCommands(def: DefineCommand): void {
  def({ name: 'scan', arity: -2, kind: 'read', flags: ['readonly'], run: scanCommand })
  def({ name: 'keys', arity: 2, kind: 'read', flags: ['readonly'], run: keysCommand })
}
