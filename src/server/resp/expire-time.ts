/**
 * Expire times of RESP commands, as Redis parses and checks them: the
 * options of SET and GETEX (Redis' "extended string arguments": NX, XX,
 * GET, KEEPTTL, PERSIST, EX, PX, EXAT, PXAT), the time they and SETEX/PSETEX
 * carry, and how a time becomes the engine's `expiresAt`.
 *
 * Times are computed as Redis computes them, in int64 milliseconds (bigint
 * here) from one reading of the server's clock per command (the engine's
 * clock: ServerContext.clock), with Redis' errors on overflow. The engine
 * stores expiry times below 2^53 ms (the year 287,396): a later time is
 * stored as that, which no clock reaches either.
 */
import { INT64_MAX, NOT_INTEGER, lower, parseInteger } from './arguments.js'
import type { MaybePromise } from './maybe.js'
import { ErrorReply, err } from './reply.js'
import type { KvStore } from './store.js'

/** The unit and base of an expire time: relative seconds or ms (EX, PX), or a unix time in seconds or ms (EXAT, PXAT). */
export type ExpireUnit = 'ex' | 'px' | 'exat' | 'pxat'

/** An expire time as given: its option and its argument, not yet checked. */
export interface ExpireArgument {
  unit: ExpireUnit
  arg: Buffer
}

/** The options of SET (or GETEX). */
export interface StringOptions {
  nx: boolean
  xx: boolean
  get: boolean
  keepTtl: boolean
  persist: boolean
  expire: ExpireArgument | undefined
}

/** The largest expiry time the engine stores (src/base/expiry.ts). */
const MAX_EXPIRES_AT = Number.MAX_SAFE_INTEGER

/** `ERR invalid expire time in '<command>' command`, as Redis words it. */
export function invalidExpireTime(command: string): ErrorReply {
  return err(`invalid expire time in '${command}' command`)
}

/**
 * Parses the options of SET (`command` 'set', from args[3]) or GETEX
 * ('getex', from args[2]) as Redis 7 does (parseExtendedStringArgumentsOrReply):
 * an option that conflicts with one already given, one the command does not
 * take, or EX/PX/EXAT/PXAT without an argument is `ERR syntax error`; the
 * same option twice is allowed (the last time counts).
 */
export function parseStringOptions(args: Buffer[], command: 'set' | 'getex'): StringOptions | ErrorReply {
  const o: StringOptions = { nx: false, xx: false, get: false, keepTtl: false, persist: false, expire: undefined }
  const isSet = command === 'set'
  for (let i = isSet ? 3 : 2; i < args.length; i++) {
    const opt = lower(args[i])
    const hasNext = i + 1 < args.length
    const unit = o.expire?.unit
    if (opt === 'nx' && isSet && !o.xx) o.nx = true
    else if (opt === 'xx' && isSet && !o.nx) o.xx = true
    else if (opt === 'get' && isSet) o.get = true
    else if (opt === 'keepttl' && isSet && unit === undefined) o.keepTtl = true
    else if (opt === 'persist' && !isSet && unit === undefined) o.persist = true
    else if ((opt === 'ex' || opt === 'px' || opt === 'exat' || opt === 'pxat') && !o.keepTtl && !o.persist && (unit === undefined || unit === opt) && hasNext) {
      o.expire = { unit: opt, arg: args[++i] }
    } else return err('syntax error')
  }
  return o
}

/**
 * The unix time in ms an EX/PX/EXAT/PXAT argument names, `now` being the
 * clock's reading (Redis' getExpireMillisecondsOrReply): not an integer is
 * `ERR value is not an integer or out of range`; zero, negative or past
 * int64 is `ERR invalid expire time in '<command>' command`. EXAT/PXAT may
 * name a past time (the key is then deleted).
 */
export function expireTime(e: ExpireArgument, now: number, command: string): bigint | ErrorReply {
  const n = parseInteger(e.arg)
  if (n === undefined) return NOT_INTEGER
  const seconds = e.unit === 'ex' || e.unit === 'exat'
  if (n <= 0n || (seconds && n > INT64_MAX / 1000n)) return invalidExpireTime(command)
  let ms = seconds ? n * 1000n : n
  if (e.unit === 'ex' || e.unit === 'px') ms += BigInt(now)
  // Redis detects the int64 overflow of the addition by the result's sign.
  if (ms > INT64_MAX) return invalidExpireTime(command)
  return ms
}

/** The engine's expiresAt for a unix time in ms after the clock's reading (so >= 1): capped at what the engine stores. */
export function toExpiresAt(when: bigint): number {
  return when > BigInt(MAX_EXPIRES_AT) ? MAX_EXPIRES_AT : Number(when)
}

/**
 * Writes `value` under `key` expiring at `when` (undefined: never). A time
 * not after `now` deletes the key instead, as Redis does: the value would
 * be expired already, and a delete leaves nothing to keep until compaction.
 */
export function putUntil(store: KvStore, key: Buffer, value: Buffer, when: bigint | undefined, now: number): MaybePromise<void> {
  if (when === undefined) return store.put(key, value)
  if (when <= BigInt(now)) return store.del(key)
  return store.put(key, value, toExpiresAt(when))
}
