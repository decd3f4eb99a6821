import type { IteratorOptions } from '../index.js'

/**
 * Key layout of a StrataLevel database.
 *
 * abstract-level allows the empty key (and its test suite requires it); the
 * engine rejects it. So every Level key is stored behind one prefix byte,
 * 0x01: engine key = 0x01 ++ level key. The mapping preserves bytewise order,
 * and the empty Level key becomes the one-byte engine key 0x01. All Level
 * data lives in [0x01, 0x02); engine keys outside it (starting with 0x00 or
 * 0x02..0xff) are reserved for the adapter's own future use (e.g. a format
 * marker) and are never visible through StrataLevel.
 */
export const DATA_PREFIX = 0x01
const PREFIX_STRING = '\x01'
const DATA_START = Buffer.from([DATA_PREFIX])
const DATA_END = Buffer.from([DATA_PREFIX + 1])

/** A key or value in one of the formats of the private abstract-level API. */
export type LevelData = string | Uint8Array

/** The three formats declared in the manifest: what private methods receive and must return. */
export type Format = 'utf8' | 'buffer' | 'view'

/** Engine key of a Level key (a string stays a string: the engine encodes it as UTF-8 once). */
export function encodeKey(key: LevelData): string | Buffer {
  if (typeof key === 'string') return PREFIX_STRING + key
  const out = Buffer.allocUnsafe(key.byteLength + 1)
  out[0] = DATA_PREFIX
  out.set(key, 1)
  return out
}

/** Level key of an engine key (a fresh Buffer the caller owns), in `format`. */
export function decodeKey(raw: Buffer, format: string): LevelData {
  return format === 'utf8' ? raw.toString('utf8', 1) : raw.subarray(1)
}

/** A value (a fresh Buffer the caller owns) in `format`; 'buffer' and 'view' both accept a Buffer. */
export function decodeValue(raw: Buffer, format: string): LevelData {
  return format === 'utf8' ? raw.toString('utf8') : raw
}

/** Range options of the private API, already encoded by abstract-level. */
export interface LevelRange {
  gt?: LevelData
  gte?: LevelData
  lt?: LevelData
  lte?: LevelData
  reverse?: boolean
  limit?: number
}

/**
 * Engine iterator options for a Level range. As abstract-level specifies,
 * gte takes precedence over gt and lte over lt; a missing bound becomes the
 * edge of the data namespace, so reserved keys never show.
 */
export function engineRange(options: LevelRange): IteratorOptions {
  const range: IteratorOptions = {}
  if (options.gte != null) range.gte = encodeKey(options.gte)
  else if (options.gt != null) range.gt = encodeKey(options.gt)
  else range.gte = DATA_START
  if (options.lte != null) range.lte = encodeKey(options.lte)
  else if (options.lt != null) range.lt = encodeKey(options.lt)
  else range.lt = DATA_END
  if (options.reverse === true) range.reverse = true
  if (options.limit !== undefined && options.limit >= 0) range.limit = options.limit
  return range
}
