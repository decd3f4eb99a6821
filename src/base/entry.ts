import { readU64 } from './coding.js'
import type { Bytes } from './keys.js'

/**
 * The entry vocabulary every layer shares (LevelDB keeps its equivalent in
 * dbformat.h): entry kinds, a write, a version found by a lookup, key ranges
 * and the internal-key order; and the two public shapes built on them (Entry,
 * IteratorOptions). Nothing here knows how entries are stored: the WAL
 * payload codec is wal/wal-record.ts, the table format sstable/table-format.ts.
 *
 * An internal entry is (user key, sequence, kind, value). Internal order is
 * user key ascending (bytewise), then sequence descending, so the newest
 * version of a key comes first; sequences are unique, so no two entries tie.
 */

/** Kind of an internal entry; the values are part of the on-disk format (WAL records and tables). */
export const KIND_DELETE = 0
export const KIND_PUT = 1
/**
 * A put whose value lives in a blob file: the entry's value bytes are a blob
 * reference (src/blob/blob-reference.ts). Tables only: WAL records and
 * memtables hold values inline, and reads resolve the reference before a
 * value leaves the engine.
 */
export const KIND_BLOB = 3

/**
 * Reads the value a blob reference (the value bytes of a KIND_BLOB entry)
 * names: a new Buffer, verified; `where` names the table in errors. Given to
 * table readers and iterators by the engine (src/blob/blob-file-cache.ts).
 */
export type BlobResolver = (reference: Uint8Array, where: string) => Buffer

/**
 * A put that expires: its value bytes are `u64 expiresAt` (milliseconds
 * since the epoch, little-endian) followed by the value. WAL records,
 * memtables and tables. Reads treat it as a delete from `expiresAt` on.
 */
export const KIND_PUT_EXPIRING = 4
/** KIND_BLOB that expires: `u64 expiresAt` then the blob reference. Tables only. */
export const KIND_BLOB_EXPIRING = 5
/**
 * A range delete: the entry's key is the range's start, its value the end
 * (exclusive; empty: no end). WAL records and memtables only: a flush moves
 * range tombstones into the manifest (src/base/range-tombstones.ts).
 */
export const KIND_RANGE_DELETE = 6
/** Bytes of the expiry time in front of an expiring entry's value. */
export const EXPIRY_BYTES = 8

/** True for the kinds that hold a value (a put, inline or separated, expiring or not). */
export function isPutKind(kind: number): boolean {
  return kind === KIND_PUT || kind === KIND_BLOB || kind === KIND_PUT_EXPIRING || kind === KIND_BLOB_EXPIRING
}

/** True for the kinds whose value starts with an expiry time. */
export function isExpiringKind(kind: number): boolean {
  return kind === KIND_PUT_EXPIRING || kind === KIND_BLOB_EXPIRING
}

/** The expiry time in front of an expiring entry's value bytes (which start at `offset`). */
export function expiryOf(value: Uint8Array, offset = 0): number {
  return readU64(value, offset)
}

/** `bytes` behind the expiry time that `expiring` (an expiring entry's value) starts with: a new Buffer. */
export function withExpiry(expiring: Uint8Array, bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(EXPIRY_BYTES + bytes.length)
  out.set(expiring.subarray(0, EXPIRY_BYTES), 0)
  out.set(bytes, EXPIRY_BYTES)
  return out
}

/** True when an entry of `kind` whose value bytes are `value` has expired at `nowMs`. */
export function hasExpired(kind: number, value: Uint8Array, nowMs: number): boolean {
  return (kind === KIND_PUT_EXPIRING || kind === KIND_BLOB_EXPIRING) && expiryOf(value) <= nowMs
}

/**
 * One write of a group: a put (value set) or a delete (value null). A put
 * with `expiresAt` (ms since the epoch, > 0) expires then (KIND_PUT_EXPIRING);
 * `rangeDelete` makes it a range delete.
 */
export interface WriteOp {
  key: Buffer
  value: Buffer | null
  expiresAt?: number
  /** A range delete (KIND_RANGE_DELETE): `key` is the start, `value` the end (empty: no end). */
  rangeDelete?: true
}

/** A version found by a point lookup. */
export interface Found {
  /** Sequence of the version found. */
  readonly s: number
  /** Value bytes (a copy, the reader's to keep), or null for a delete. */
  readonly v: Buffer | null
  /** When the put expires (ms since the epoch), 0 for never (and for a delete). */
  readonly e: number
}

/** Found.v of a put read without its value (`wantValue` false): only its version was wanted. */
export const VALUE_NOT_READ = Buffer.alloc(0)

/** The value of every entry of a keys-only iterator (length 0, shared: nothing to own or change). */
export const EMPTY_VALUE: Buffer = Buffer.alloc(0)

/** Orders internal keys: user key ascending, then sequence descending. */
export function compareInternal(aKey: Buffer, aSeq: number, bKey: Buffer, bSeq: number): number {
  const c = Buffer.compare(aKey, bKey)
  return c !== 0 ? c : bSeq - aSeq
}

/** Key bounds of a range read, already converted to bytes. */
export interface KeyRange {
  gt?: Buffer
  gte?: Buffer
  lt?: Buffer
  lte?: Buffer
}

/** True when `key` lies within every bound of `r`. */
export function inRange(key: Buffer, r: KeyRange): boolean {
  if (r.gt !== undefined && Buffer.compare(key, r.gt) <= 0) return false
  if (r.gte !== undefined && Buffer.compare(key, r.gte) < 0) return false
  if (r.lt !== undefined && Buffer.compare(key, r.lt) >= 0) return false
  if (r.lte !== undefined && Buffer.compare(key, r.lte) > 0) return false
  return true
}

/**
 * Keeps the stricter of gt/gte and of lt/lte, so that every bound given is
 * applied (the range is their intersection) whichever direction walks it.
 */
export function tightestBounds(r: KeyRange): KeyRange {
  const out: KeyRange = {}
  if (r.gt !== undefined && (r.gte === undefined || Buffer.compare(r.gt, r.gte) >= 0)) out.gt = r.gt
  else if (r.gte !== undefined) out.gte = r.gte
  if (r.lt !== undefined && (r.lte === undefined || Buffer.compare(r.lt, r.lte) <= 0)) out.lt = r.lt
  else if (r.lte !== undefined) out.lte = r.lte
  return out
}

// Public (exported by index.ts through db.ts).

/** A value with its version: the sequence number of the write that produced it. */
export interface Entry {
  value: Buffer
  version: number
  /** When the value expires (ms since the epoch); absent when it never does. */
  expiresAt?: number
}

/** Bounds, direction and limit of a range read. Keys compare bytewise. */
export interface IteratorOptions {
  gt?: Bytes
  gte?: Bytes
  lt?: Bytes
  lte?: Bytes
  /** Walk from the upper bound down. Default false. */
  reverse?: boolean
  /** Stop after this many entries. Default unlimited. */
  limit?: number
  /**
   * `false`: keys only. Entries are still `[key, value]` pairs, but every
   * value is the same empty (zero-length) Buffer, and no value is copied
   * (nor, once values live apart from keys, read): for listing or counting
   * keys. Default true.
   */
  values?: boolean
}
