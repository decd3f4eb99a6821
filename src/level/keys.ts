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

/** Engine bounds of a range delete: every engine key in [gte, lt). */
export interface EngineDeleteRange {
  gte: Buffer
  lt: Buffer
}

/**
 * The engine range delete that deletes exactly the Level keys of `options`
 * (gt/gte/lt/lte; gte over gt and lte over lt, as engineRange), within the
 * data namespace [0x01, 0x02): gt k → gte 0x01 ++ k ++ 0x00, lte k → lt
 * 0x01 ++ k ++ 0x00, a missing bound → the namespace's edge (reserved keys
 * stay). 'empty' when no key can be in the range (gte >= lt); undefined
 * when a bound is too long for the engine (`engineMaxKeyBytes`, the prefix
 * counted: a gte of at most that many bytes, an lt of one more): the caller
 * deletes key by key instead.
 */
export function engineDeleteRange(options: LevelRange, engineMaxKeyBytes: number): EngineDeleteRange | 'empty' | undefined {
  let gte: Buffer
  if (options.gte != null) gte = prefixed(options.gte, false)
  else if (options.gt != null) gte = prefixed(options.gt, true)
  else gte = DATA_START
  let lt: Buffer
  if (options.lte != null) lt = prefixed(options.lte, true)
  else if (options.lt != null) lt = prefixed(options.lt, false)
  else lt = DATA_END
  if (gte.length > engineMaxKeyBytes || lt.length > engineMaxKeyBytes + 1) return undefined
  return Buffer.compare(gte, lt) >= 0 ? 'empty' : { gte, lt }
}

/** 0x01 ++ `key` (++ 0x00 with `successor`: the first key after `key`). */
function prefixed(key: LevelData, successor: boolean): Buffer {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key
  const out = Buffer.alloc(bytes.byteLength + (successor ? 2 : 1))
  out[0] = DATA_PREFIX
  out.set(bytes, 1)
  return out
}
