import { StrataError } from './errors.js'

/** The expiry options of a put (`put`, a batch's put, a transaction's put). */
export interface ExpiryOptions {
  /** The value expires this many milliseconds from now (by the database's `clock`): an integer >= 1. */
  ttlMs?: number
  /** The value expires at this time, in milliseconds since the epoch (an integer >= 1; a past time writes a value already expired). */
  expiresAt?: number
}

/** The largest expiry time stored (u64 fields stay below 2^53). */
const MAX_EXPIRES_AT = Number.MAX_SAFE_INTEGER

/**
 * The expiry time `options` ask for (ms since the epoch), or undefined for
 * none; `clock` (ms since the epoch) is read only for a ttlMs.
 * STRATA_INVALID_ARGUMENT for a bad value or both options at once; `what`
 * names the write in the message.
 */
export function expiryFrom(options: ExpiryOptions | undefined, clock: () => number, what: string): number | undefined {
  if (options === undefined) return undefined
  const { ttlMs, expiresAt } = options
  if (ttlMs === undefined && expiresAt === undefined) return undefined
  if (ttlMs !== undefined && expiresAt !== undefined) throw invalid(`${what}: give ttlMs or expiresAt, not both`)
  if (ttlMs !== undefined) {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) throw invalid(`${what}: ttlMs must be an integer >= 1`)
    return Math.min(MAX_EXPIRES_AT, clock() + ttlMs)
  }
  if (!Number.isSafeInteger(expiresAt) || (expiresAt as number) < 1) throw invalid(`${what}: expiresAt must be an integer >= 1 (ms since the epoch)`)
  return expiresAt
}

function invalid(message: string): StrataError {
  return new StrataError('STRATA_INVALID_ARGUMENT', message)
}
