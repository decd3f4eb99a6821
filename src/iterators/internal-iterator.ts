/**
 * The one iterator contract every internal view of data implements: memtables,
 * blocks, tables, levels and the merge of them all.
 *
 * Entries are ordered by internal key (base/entry.ts): user key ascending (bytewise), then
 * sequence number descending, so the newest version of a key comes first.
 * Sequence numbers are unique across the database, so no two entries tie.
 *
 * States: after construction the iterator is not valid until a seek. Every seek
 * and move leaves it either valid (positioned on an entry) or not valid
 * (exhausted). `key()` and `value()` return views that are valid only until the
 * next seek or move; callers copy what they keep. Reading corrupt data throws
 * STRATA_CORRUPTION from the seek or move that met it.
 */
export interface InternalIterator {
  valid(): boolean
  seekToFirst(): void
  seekToLast(): void
  /** Positions at the first entry whose user key is >= `key`. */
  seekGE(key: Buffer): void
  /** Positions at the first entry whose user key is > `key`. */
  seekGT(key: Buffer): void
  /** Positions at the last entry whose user key is <= `key`. */
  seekLE(key: Buffer): void
  /** Positions at the last entry whose user key is < `key`. */
  seekLT(key: Buffer): void
  /** REQUIRES: valid(). */
  next(): void
  /** REQUIRES: valid(). */
  prev(): void
  /** REQUIRES: valid(). User key of the current entry. */
  key(): Buffer
  /** REQUIRES: valid(). */
  sequence(): number
  /** REQUIRES: valid(). KIND_PUT, KIND_DELETE, or (table entries only) KIND_BLOB: value() is then a blob reference. */
  kind(): number
  /** REQUIRES: valid(). Empty for a delete. */
  value(): Buffer
  /** Releases what the iterator holds; idempotent. */
  close(): void
}
