import { StrataError } from './errors.js'

/** What the public API accepts as a key or value: bytes, or a string stored as UTF-8. */
export type Bytes = Uint8Array | string

/**
 * Converts a key or value to a Buffer without copying Uint8Array input (the
 * write path copies into the WAL record before anything is kept). Throws
 * STRATA_INVALID_ARGUMENT for other types.
 */
export function toBuffer(input: unknown, what: string): Buffer {
  if (typeof input === 'string') return Buffer.from(input, 'utf8')
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

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v
}
