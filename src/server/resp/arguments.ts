/** Argument parsing shared by the RESP command handlers. */
import { err } from './reply.js'

/** The range of Redis integers (int64). */
export const INT64_MIN = -(2n ** 63n)
export const INT64_MAX = 2n ** 63n - 1n

/** Parses a Redis integer (string2ll rules: optional '-', no '+', no leading zeros, int64). */
export function parseInteger(b: Buffer): bigint | undefined {
  if (b.length === 0 || b.length > 20) return undefined
  const s = b.toString('latin1')
  if (!/^(0|-?[1-9]\d*)$/.test(s)) return undefined
  const n = BigInt(s)
  return n < INT64_MIN || n > INT64_MAX ? undefined : n
}

/** Reply to an argument that is not an integer. */
export const NOT_INTEGER = err('value is not an integer or out of range')

/** An option or subcommand name, in lower case. */
export function lower(b: Buffer): string {
  return b.toString('latin1').toLowerCase()
}
