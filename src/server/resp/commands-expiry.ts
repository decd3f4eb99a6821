/**
 * The expiry (TTL) commands, with Redis 7's replies and errors: SETEX,
 * PSETEX, GETEX, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (with NX, XX, GT,
 * LT), PERSIST, TTL, PTTL, EXPIRETIME, PEXPIRETIME. SET's EX/PX/EXAT/PXAT/
 * KEEPTTL are in commands-strings.ts, the time arithmetic in expire-time.ts.
 *
 * The engine keeps a key's expiry time with its value, so changing a TTL
 * rewrites the value with the new time (the key gets a new version, which
 * aborts a WATCH on it, as a TTL change does in Redis). Such commands are
 * read-modify-writes (kind `rmw`): under the key's lock, committed on the
 * version they read, so a concurrent SET is neither lost nor followed by a
 * stale rewrite; a key that expires between the read and the commit makes
 * the command run again (read-modify-write.ts). Each command reads the clock
 * once, as Redis takes one time snapshot per command.
 */
import { INT64_MAX, INT64_MIN, NOT_INTEGER, lower, parseInteger } from './arguments.js'
import { KEY1, type Call, type DefineCommand } from './command-spec.js'
import { expireTime, invalidExpireTime, parseStringOptions, putUntil } from './expire-time.js'
import { andThen, type MaybePromise } from './maybe.js'
import { ErrorReply, OK, err, type Reply } from './reply.js'
import type { Entry } from '../../index.js'

/** SETEX key seconds value, PSETEX key milliseconds value: a blind write with an expiry (zero or negative: an error). */
function setexCommand(call: Call, unit: 'ex' | 'px'): MaybePromise<Reply> {
  const { args, store } = call
  const now = call.server.clock()
  const when = expireTime({ unit, arg: args[2] }, now, unit === 'ex' ? 'setex' : 'psetex')
  if (when instanceof ErrorReply) return when
  return andThen(putUntil(store, args[1], args[3], when, now), () => OK)
}

/**
 * GETEX key [EX s|PX ms|EXAT t|PXAT t|PERSIST]: the value (nil when
 * missing), and its expiry changed. As Redis, a missing key answers nil
 * before the time is checked, a past EXAT/PXAT deletes the key (the value is
 * still answered), and PERSIST writes only when there was a TTL to remove.
 */
function getexCommand(call: Call): MaybePromise<Reply> {
  const { args, store } = call
  const o = parseStringOptions(args, 'getex')
  if (o instanceof ErrorReply) return o
  const key = args[1]
  return andThen(store.getEntry(key), (entry) => {
    if (entry === undefined) return null
    if (o.expire !== undefined) {
      const now = call.server.clock()
      const when = expireTime(o.expire, now, 'getex')
      if (when instanceof ErrorReply) return when
      return andThen(putUntil(store, key, entry.value, when, now), () => entry.value)
    }
    if (o.persist && entry.expiresAt !== undefined) return andThen(store.put(key, entry.value), () => entry.value)
    return entry.value
  })
}

/** The NX, XX, GT and LT flags of EXPIRE and friends. */
interface ExpireFlags {
  nx: boolean
  xx: boolean
  gt: boolean
  lt: boolean
}

/** Parses args[3..] as Redis 7 (parseExtendedExpireArgumentsOrReply), with its errors. */
function parseExpireFlags(args: Buffer[]): ExpireFlags | ErrorReply {
  const f: ExpireFlags = { nx: false, xx: false, gt: false, lt: false }
  for (let i = 3; i < args.length; i++) {
    const opt = lower(args[i])
    if (opt === 'nx' || opt === 'xx' || opt === 'gt' || opt === 'lt') f[opt] = true
    else return err(`Unsupported option ${args[i].toString('latin1').slice(0, 128)}`)
  }
  if (f.nx && (f.xx || f.gt || f.lt)) return err('NX and XX, GT or LT options at the same time are not compatible')
  if (f.gt && f.lt) return err('GT and LT options at the same time are not compatible')
  return f
}

/**
 * EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT key time [NX|XX|GT|LT], as Redis 7
 * (expireGenericCommand): 1 when the expiry was set, 0 for a missing key or
 * when a flag's condition does not hold (no TTL counts as an infinite one
 * for GT and LT). The time may be negative; one not after now deletes the
 * key (1). Errors, in Redis' order: a bad flag, a time that is not an
 * integer, a time that overflows int64 ms.
 */
function expireCommand(call: Call, name: string, seconds: boolean, relative: boolean): MaybePromise<Reply> {
  const { args, store } = call
  const flags = parseExpireFlags(args)
  if (flags instanceof ErrorReply) return flags
  let when = parseInteger(args[2])
  if (when === undefined) return NOT_INTEGER
  if (seconds) {
    if (when > INT64_MAX / 1000n || when < INT64_MIN / 1000n) return invalidExpireTime(name)
    when *= 1000n
  }
  const now = call.server.clock()
  const base = relative ? BigInt(now) : 0n
  if (when > INT64_MAX - base) return invalidExpireTime(name)
  when += base
  const at = when
  const key = args[1]
  return andThen(store.getEntry(key), (entry) => {
    if (entry === undefined) return 0
    const current = entry.expiresAt === undefined ? undefined : BigInt(entry.expiresAt)
    if (flags.nx && current !== undefined) return 0
    if (flags.xx && current === undefined) return 0
    if (flags.gt && (current === undefined || at <= current)) return 0
    if (flags.lt && current !== undefined && at >= current) return 0
    return andThen(putUntil(store, key, entry.value, at, now), () => 1)
  })
}

/** PERSIST key: 1 when a TTL was removed, 0 for a missing key or one without TTL. */
function persistCommand({ args, store }: Call): MaybePromise<Reply> {
  return andThen(store.getEntry(args[1]), (entry) => {
    if (entry === undefined || entry.expiresAt === undefined) return 0
    return andThen(store.put(args[1], entry.value), () => 1)
  })
}

/**
 * TTL (s), PTTL (ms), EXPIRETIME (unix s), PEXPIRETIME (unix ms), as Redis
 * (ttlGenericCommand): -2 for a missing key, -1 without expiry; seconds are
 * rounded ((ms + 500) / 1000), a remaining time is at least 0.
 */
function ttlReply(entry: Entry | undefined, now: number, ms: boolean, absolute: boolean): number {
  if (entry === undefined) return -2
  if (entry.expiresAt === undefined) return -1
  const ttl = Math.max(0, absolute ? entry.expiresAt : entry.expiresAt - now)
  return ms ? ttl : Math.floor((ttl + 500) / 1000)
}

/** Adds the expiry commands to the table, in order. */
export function defineExpiryCommands(def: DefineCommand): void {
  def({ name: 'setex', arity: 4, kind: 'write', flags: ['write', 'denyoom'], keys: KEY1, run: (c) => setexCommand(c, 'ex') })
  def({ name: 'psetex', arity: 4, kind: 'write', flags: ['write', 'denyoom'], keys: KEY1, run: (c) => setexCommand(c, 'px') })
  // Without options GETEX is a GET.
  def({ name: 'getex', arity: -2, kind: (args) => (args.length === 2 ? 'read' : 'rmw'), flags: ['write', 'fast'], keys: KEY1, run: getexCommand })
  const expires = [
    ['expire', true, true],
    ['pexpire', false, true],
    ['expireat', true, false],
    ['pexpireat', false, false],
  ] as const
  for (const [name, seconds, relative] of expires) {
    def({ name, arity: -3, kind: 'rmw', flags: ['write', 'fast'], keys: KEY1, run: (c) => expireCommand(c, name, seconds, relative) })
  }
  def({ name: 'persist', arity: 2, kind: 'rmw', flags: ['write', 'fast'], keys: KEY1, run: persistCommand })
  const ttls = [
    ['ttl', false, false],
    ['pttl', true, false],
    ['expiretime', false, true],
    ['pexpiretime', true, true],
  ] as const
  for (const [name, ms, absolute] of ttls) {
    def({
      name,
      arity: 2,
      kind: 'read',
      flags: ['readonly', 'fast'],
      keys: KEY1,
      run: ({ args, store, server }) => andThen(store.getEntry(args[1]), (entry) => ttlReply(entry, server.clock(), ms, absolute)),
    })
  }
}

