/** The key space commands: SCAN and KEYS. */
import { globMatch, isLiteral, literalPrefix, prefixEnd } from './glob.js'
import type { MaybePromise } from './maybe.js'
import { NOT_INTEGER, lower, parseInteger } from './resp-arguments.js'
import type { Call, DefineCommand } from './resp-command-spec.js'
import { err, type Reply } from './resp-reply.js'

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

/** Adds the key space commands to the table, in order. */
export function defineKeyspaceCommands(def: DefineCommand): void {
  def({ name: 'scan', arity: -2, kind: 'read', flags: ['readonly'], run: scanCommand })
  def({ name: 'keys', arity: 2, kind: 'read', flags: ['readonly'], run: keysCommand })
}
