/**
 * The hash index at the tail of a data block (docs/format.md, "Block"): open
 * addressing with linear probing, one bucket per 0.75 distinct user keys,
 * each bucket a one-byte fingerprint and the u16 offset of the key's first
 * (newest) entry in the block. A point read finds its entry in the tail's few
 * cache lines instead of binary-searching restart keys across the block.
 */

/** Bucket size: u8 fingerprint, u16 little-endian entry offset. */
export const HASH_BUCKET_BYTES = 3
/** Entry offset of an empty bucket. */
export const HASH_EMPTY = 0xffff
/** Entry areas larger than this carry no hash index (offsets must stay below HASH_EMPTY). */
export const MAX_HASHED_ENTRY_BYTES = 0xfffe
/** Set in the block's last u32 (beside the restart count) when a hash index is present. */
export const HASH_INDEX_FLAG = 0x8000_0000

/** Buckets for `keys` distinct user keys: load factor 0.75, and always one empty bucket. */
export function hashBucketCount(keys: number): number {
  return Math.max(keys + 1, Math.ceil((keys * 4) / 3))
}

/** First bucket probed for a key whose filter hash is `hash`. */
export function hashBucket(hash: number, bucketCount: number): number {
  return (Math.imul(hash, 0x9e37_79b1) >>> 0) % bucketCount
}

/** The byte kept beside the offset, so most probes skip keys without reading their entry. */
export function hashFingerprint(hash: number): number {
  return hash >>> 24
}
