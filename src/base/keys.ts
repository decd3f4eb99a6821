import { StrataError } from './errors.js'

/** What the public API accepts as a key or value: bytes, or a string stored as UTF-8. */
export type Bytes = Uint8Array | string

/**
 * Converts a key or value to a Buffer without copying Uint8Array input (the
 * write path copies into the WAL record before anything is kept). Throws
 * STRATA_INVALID_ARGUMENT for other types, and for a string that is not
 * well-formed UTF-16 (a lone surrogate): UTF-8 encoding would turn every lone
 * surrogate into U+FFFD, so two different strings would address one entry.
 */
export function toBuffer(input: unknown, what: string): Buffer {
  if (typeof input === 'string') {
    if (!(input as WellFormedCheck).isWellFormed()) throw illFormed(input, what)
    return Buffer.from(input, 'utf8')
  }
  if (Buffer.isBuffer(input)) return input
  if (input instanceof Uint8Array) return Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  throw new StrataError('STRATA_INVALID_ARGUMENT', `${what} must be a string or Uint8Array, got ${describe(input)}`)
}

/** Validates a key: bytes, non-empty, at most `maxKeyBytes`. */
export function checkKey(input: unknown, maxKeyBytes: number): Buffer {
  const key = toBuffer(input, 'key')
  if (key.length === 0) throw new StrataError('STRATA_INVALID_ARGUMENT', 'key must not be empty')
  if (key.length > maxKeyBytes) {
    throw new StrataError('STRATA_TOO_LARGE', `key of ${key.length} bytes exceeds maxKeyBytes (${maxKeyBytes})`)
  }
  return key
}

/** Validates a value: bytes, at most `maxValueBytes`. */
export function checkValue(input: unknown, maxValueBytes: number): Buffer {
  const value = toBuffer(input, 'value')
  if (value.length > maxValueBytes) {
    throw new StrataError('STRATA_TOO_LARGE', `value of ${value.length} bytes exceeds maxValueBytes (${maxValueBytes})`)
  }
  return value
}

/** `String.prototype.isWellFormed` (ES2024, Node 20), not in the ES2022 lib this project compiles against. */
type WellFormedCheck = string & { isWellFormed(): boolean }

function illFormed(input: string, what: string): StrataError {
  let at = 0
  while (at < input.length) {
    const c = input.charCodeAt(at)
    if (c >= 0xd800 && c <= 0xdbff && at + 1 < input.length && (input.charCodeAt(at + 1) & 0xfc00) === 0xdc00) at += 2
    else if (c >= 0xd800 && c <= 0xdfff) break
    else at++
  }
  return new StrataError(
    'STRATA_INVALID_ARGUMENT',
    `${what} is not a well-formed string: lone surrogate U+${input.charCodeAt(at).toString(16).toUpperCase()} at index ${at} (it would be stored as U+FFFD); pass bytes to store arbitrary data`,
  )
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v
}
