/**
 * The string commands (GET, SET, INCR, APPEND, ...) and the generic key
 * commands on strings (DEL, EXISTS, TYPE): stratadb's values are all strings.
 * The expiry commands (SETEX, GETEX, EXPIRE, TTL, ...) are in
 * commands-expiry.ts; SET's expiry options are parsed in expire-time.ts.
 *
 * TTLs follow Redis: a command that replaces the value (SET without
 * KEEPTTL, GETSET, MSET, SETNX, MSETNX) drops the key's TTL; one that
 * modifies it (INCR and friends, APPEND) keeps it.
 */
import { andThen, isPromise, type MaybePromise } from './maybe.js'
import { INT64_MAX, INT64_MIN, NOT_INTEGER, lower, parseInteger } from './arguments.js'
import { ALL_KEYS, KEY1, replyBudget, type Call, type CommandKind, type DefineCommand } from './command-spec.js'
import { expireTime, parseStringOptions, putUntil } from './expire-time.js'
import { ErrorReply, OK, SimpleString, err, type Reply } from './reply.js'
import type { KvStore } from './store.js'

function safeNumber(n: bigint): number | bigint {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n
}

/**
 * SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL], as Redis 7:
 * the expire time is checked first (its errors win over everything but a
 * syntax error), a time in the past deletes the key (the reply is still OK),
 * and without KEEPTTL the key's TTL is dropped.
 */
function setCommand(call: Call): MaybePromise<Reply> {
  const { args, store } = call
  if (args.length === 3) return andThen(store.put(args[1], args[2]), () => OK)
  const o = parseStringOptions(args, 'set')
  if (o instanceof ErrorReply) return o
  const now = call.server.clock()
  let when: bigint | undefined
  if (o.expire !== undefined) {
    const t = expireTime(o.expire, now, 'set')
    if (t instanceof ErrorReply) return t
    when = t
  }
  const [, key, value] = args
  if (!o.nx && !o.xx && !o.get && !o.keepTtl) return andThen(putUntil(store, key, value, when, now), () => OK)
  return andThen(store.getEntry(key), (old) => {
    const exists = old !== undefined
    const previous = o.get ? (old?.value ?? null) : null
    if ((o.nx && exists) || (o.xx && !exists)) return previous
    const write = o.keepTtl && old?.expiresAt !== undefined ? store.put(key, value, old.expiresAt) : putUntil(store, key, value, when, now)
    return andThen(write, () => (o.get ? previous : OK))
  })
}

/** Options that make SET read the key first: then it is a read-modify-write, else a blind write (with or without an expire time). */
const SET_READS = new Set(['nx', 'xx', 'get', 'keepttl'])

function setKind(args: Buffer[]): CommandKind {
  // Conservative: an option's argument that spells one of these (SET k v EX get) only costs the lock.
  for (let i = 3; i < args.length; i++) if (args[i].length <= 7 && SET_READS.has(lower(args[i]))) return 'rmw'
  return 'write'
}

/** INCR and friends: the key's TTL is kept (Redis modifies the value in place). */
function incrBy(call: Call, delta: bigint | undefined): MaybePromise<Reply> {
  if (delta === undefined) return NOT_INTEGER
  const { store } = call
  const key = call.args[1]
  return andThen(store.getEntry(key), (old) => {
    const current = old === undefined ? 0n : parseInteger(old.value)
    if (current === undefined) return NOT_INTEGER
    const next = current + delta
    if (next < INT64_MIN || next > INT64_MAX) return err('increment or decrement would overflow')
    return andThen(store.put(key, Buffer.from(next.toString(), 'latin1'), old?.expiresAt), () => safeNumber(next))
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

/** Adds the string commands to the table, in order. */
export function defineStringCommands(def: DefineCommand): void {
  defineGetAndSet(def)
  defineDelAndExists(def)
  defineMultiKey(def)
  defineCounters(def)
  defineValueCommands(def)
  def({ name: 'type', arity: 2, kind: 'read', flags: ['readonly', 'fast'], keys: KEY1, run: ({ args, store }) => andThen(store.get(args[1]), (v) => new SimpleString(v === undefined ? 'none' : 'string')) })
}

/** GET, SET, SETNX, GETSET, GETDEL. */
function defineGetAndSet(def: DefineCommand): void {
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
}

/** DEL, UNLINK, EXISTS. */
function defineDelAndExists(def: DefineCommand): void {
  for (const name of ['del', 'unlink']) {
    def({
      name,
      arity: -2,
      kind: 'rmw',
      flags: ['write'],
      keys: ALL_KEYS,
      run: ({ args, store }) => deleteKeys(store, args),
    })
  }
  def({
    name: 'exists',
    arity: -2,
    kind: 'read',
    flags: ['readonly', 'fast'],
    keys: ALL_KEYS,
    run: ({ args, store }) => countExisting(store, args),
  })
}

/** MGET, MSET, MSETNX. */
function defineMultiKey(def: DefineCommand): void {
  def({ name: 'mget', arity: -2, kind: 'read', flags: ['readonly', 'fast'], keys: ALL_KEYS, run: mget })
  def({
    name: 'mset',
    arity: -3,
    kind: 'write',
    flags: ['write', 'denyoom'],
    keys: [1, -1, 2],
    run: ({ args, store }) => {
      const pairs = keyValuePairs(args)
      if (pairs === undefined) return err("wrong number of arguments for 'mset' command")
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
      const pairs = keyValuePairs(args)
      if (pairs === undefined) return err("wrong number of arguments for 'msetnx' command")
      // One key at a time, stopping at the first that exists (no value is kept).
      for (const [key] of pairs) if ((await store.get(key)) !== undefined) return 0
      await store.putMany(pairs)
      return 1
    },
  })
}

/** INCR, DECR, INCRBY, DECRBY. */
function defineCounters(def: DefineCommand): void {
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
}

/** APPEND, STRLEN, GETRANGE, SUBSTR. */
function defineValueCommands(def: DefineCommand): void {
  def({
    name: 'append',
    arity: 3,
    kind: 'rmw',
    flags: ['write', 'denyoom', 'fast'],
    keys: KEY1,
    // The key's TTL is kept, as INCR's.
    run: ({ args, store }) =>
      andThen(store.getEntry(args[1]), (old) => {
        const next = old === undefined ? args[2] : Buffer.concat([old.value, args[2]])
        return andThen(store.put(args[1], next, old?.expiresAt), () => next.length)
      }),
  })
  def({ name: 'strlen', arity: 2, kind: 'read', flags: ['readonly', 'fast'], keys: KEY1, run: ({ args, store }) => andThen(store.get(args[1]), (v) => v?.length ?? 0) })
  for (const name of ['getrange', 'substr']) {
    def({ name, arity: 4, kind: 'read', flags: ['readonly'], keys: KEY1, run: ({ args, store }) => andThen(store.get(args[1]), (v) => getRange(v, args[2], args[3])) })
  }
}

/** DEL and UNLINK: deletes the keys of args[1..] that exist (each once), and counts them. */
async function deleteKeys(store: KvStore, args: Buffer[]): Promise<number> {
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
}

/** MGET: the values are charged to the reply budget as they are read; over it, an error and no reply is built. */
function mget(call: Call): MaybePromise<Reply> {
  const budget = replyBudget(call)
  return andThen(call.store.getMany(call.args.slice(1), budget), (values) => {
    if (values === undefined) return budget.error()
    const reply = new Array<Buffer | null>(values.length)
    for (let i = 0; i < values.length; i++) reply[i] = values[i] ?? null
    return reply
  })
}

/** EXISTS: counts the keys of args[1..] that exist, reading one at a time and keeping no value. */
function countExisting(store: KvStore, args: Buffer[]): MaybePromise<number> {
  let n = 0
  for (let i = 1; i < args.length; i++) {
    const v = store.get(args[i])
    if (isPromise(v)) {
      return (async () => {
        if ((await v) !== undefined) n++
        for (let j = i + 1; j < args.length; j++) if ((await store.get(args[j])) !== undefined) n++
        return n
      })()
    }
    if (v !== undefined) n++
  }
  return n
}

/** The key/value pairs of MSET-style arguments (after the command name), or undefined when they do not pair up. */
function keyValuePairs(args: readonly Buffer[]): Array<[Buffer, Buffer]> | undefined {
  if (args.length % 2 !== 1) return undefined
  const pairs: Array<[Buffer, Buffer]> = []
  for (let i = 1; i < args.length; i += 2) pairs.push([args[i], args[i + 1]])
  return pairs
}
