/**
 * Expiry (TTL) over HTTP. Like `sync`, the expiry of a write is a write
 * option, so it goes in the query string, named as the engine's options:
 *
 *   PUT /v1/kv/{key}?ttlMs=<n>       the value expires n ms after the write (server clock), n >= 1
 *   PUT /v1/kv/{key}?expiresAt=<t>   the value expires at t, ms since the epoch (t >= 1; a past t
 *                                    writes a value that is already expired)
 *   batch put operations             "ttlMs": n or "expiresAt": t, the same
 *
 * A PUT without either stores a value that does not expire (it drops any
 * earlier TTL). The expiry of a value is answered in the `Strata-Expires-At`
 * response header (ms since the epoch) of GET, HEAD, 304 and of the PUT
 * that set it; the header is absent for a value that does not expire.
 */
import { HttpError } from '../shared/errors.js'

/** The response header carrying a value's expiry time (ms since the epoch). */
export const EXPIRES_AT_HEADER = 'Strata-Expires-At'

/** The largest expiry time the engine stores (src/base/expiry.ts). */
const MAX_EXPIRES_AT = Number.MAX_SAFE_INTEGER

function bad(message: string): HttpError {
  return new HttpError(400, 'STRATA_INVALID_ARGUMENT', message)
}

/** A query parameter as an integer from 1 to 2^53 - 1, or a 400 naming it. */
function positiveInteger(value: Buffer, name: string, meaning: string): number {
  const s = value.toString('latin1')
  const n = /^[0-9]{1,16}$/.test(s) ? Number(s) : NaN
  if (!Number.isSafeInteger(n) || n < 1) throw bad(`${name} must be an integer from 1 to ${MAX_EXPIRES_AT} (${meaning}), got ${JSON.stringify(s.slice(0, 64))}`)
  return n
}

/** What a PUT asks: a time to live (from the write) or an expiry time. */
export type ExpiryRequest = { ttlMs: number } | { expiresAt: number }

/**
 * The expiry the query of a `method` request on /v1/kv/{key} asks for,
 * undefined for none. 400 for a malformed value, for both parameters at
 * once, and for either on anything but PUT (a TTL belongs to a value).
 */
export function expiryOfRequest(method: string | undefined, params: Map<string, Buffer>): ExpiryRequest | undefined {
  const ttl = params.get('ttlMs')
  const at = params.get('expiresAt')
  if (ttl === undefined && at === undefined) return undefined
  if (method !== 'PUT') throw bad(`ttlMs and expiresAt apply to PUT only, not ${method}`)
  if (ttl !== undefined && at !== undefined) throw bad('give ttlMs or expiresAt, not both')
  if (at !== undefined) return { expiresAt: positiveInteger(at, 'expiresAt', 'ms since the epoch') }
  return { ttlMs: positiveInteger(ttl!, 'ttlMs', 'milliseconds') }
}

/**
 * The expiry time (ms since the epoch) of `e`, `now` being the server's
 * clock (the engine's) when the write is issued, so that a slow upload does
 * not eat into the TTL; the server computes it to answer it in the header.
 */
export function expiresAtOf(e: ExpiryRequest | undefined, now: number): number | undefined {
  if (e === undefined) return undefined
  return 'expiresAt' in e ? e.expiresAt : Math.min(MAX_EXPIRES_AT, now + e.ttlMs)
}

/** The `Strata-Expires-At` header of a value expiring at `expiresAt` (none when undefined). */
export function expiryHeader(expiresAt: number | undefined): Record<string, string> {
  return expiresAt === undefined ? {} : { [EXPIRES_AT_HEADER]: String(expiresAt) }
}

/**
 * The `ttlMs` / `expiresAt` fields of batch operation `i` (a JSON object),
 * checked: integers from 1 to 2^53 - 1, at most one of them, on a put only.
 * Passed on to the engine as they are (a ttlMs counts from its clock).
 */
export function batchExpiry(o: Record<string, unknown>, i: number): { ttlMs?: number; expiresAt?: number } {
  const { ttlMs, expiresAt } = o
  if (ttlMs === undefined && expiresAt === undefined) return {}
  if (o.type !== 'put') throw bad(`operation ${i}: only a put takes ttlMs or expiresAt`)
  if (ttlMs !== undefined && expiresAt !== undefined) throw bad(`operation ${i}: give ttlMs or expiresAt, not both`)
  for (const [name, v] of [['ttlMs', ttlMs], ['expiresAt', expiresAt]] as const) {
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)) throw bad(`operation ${i}: ${name} must be an integer from 1 to ${MAX_EXPIRES_AT}`)
  }
  return ttlMs !== undefined ? { ttlMs: ttlMs as number } : { expiresAt: expiresAt as number }
}
