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

/** One write of a group: a put (value set) or a delete (value null). */
export interface WriteOp {
  key: Buffer
  value: Buffer | null
}

/** A version found by a point lookup. */
export interface Found {
  /** Sequence of the version found. */
  readonly s: number
  /** Value bytes (a copy, the reader's to keep), or null for a delete. */
  readonly v: Buffer | null
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
