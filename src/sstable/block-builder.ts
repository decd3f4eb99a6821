import { assert } from '../base/assert.js'
import { writeU32, writeVarint } from '../base/coding.js'
import { HASH_BUCKET_BYTES, HASH_EMPTY, HASH_INDEX_FLAG, MAX_HASHED_ENTRY_BYTES, hashBucket, hashBucketCount, hashFingerprint } from './block-hash-index.js'

/**
 * Builds one block: entries with prefix-compressed user keys, a restart point
 * (a fully stored key) every `restartInterval` entries, the restart array and,
 * for data blocks, a hash index from user key to entry (docs/format.md,
 * "Block"). Entries must arrive in internal-key order.
 *
 *   entry: varint shared | varint unshared | varint valueLength | u8 kind | varint sequence
 *          | unshared key bytes | value bytes
 *   tail: u32 restartOffset × n | [hash buckets (u8 fingerprint, u16 offset) × m | u16 m] | u32 n (| 1 << 31 with buckets)
 *
 * A key shares its prefix with the restart key that heads its run, not with the
 * previous key: so a point read can decode any entry from its run's head alone.
 */
export class BlockBuilder {
  private buf = Buffer.allocUnsafe(8192)
  private used = 0
  private restarts: number[] = [0]
  private sinceRestart = 0
  /** Key of the restart entry heading the current run. */
  private readonly head = new KeyScratch()
  private entries = 0
  /** Per distinct user key: its filter hash and the offset of its first (newest) entry. */
  private keyHashes: number[] = []
  private keyOffsets: number[] = []

  /** @param hashIndex whether finish() appends a hash index (data blocks; not the index block). */
  constructor(
    private readonly restartInterval: number,
    private readonly hashIndex = false,
  ) {
    assert(restartInterval >= 1, 'restart interval must be >= 1')
  }

  get isEmpty(): boolean {
    return this.entries === 0
  }

  /** Size of the finished block if it were finished now. */
  get estimatedBytes(): number {
    const hashBytes = this.hashIndex ? hashBucketCount(this.keyHashes.length) * HASH_BUCKET_BYTES + 2 : 0
    return this.used + this.restarts.length * 4 + 4 + hashBytes
  }

  /**
   * Appends an entry. `keyHash` is the user key's filter hash (filterHash), used
   * by the hash index; `newUserKey` is false for a further version of the previous key.
   */
  add(key: Uint8Array, sequence: number, kind: number, value: Uint8Array, keyHash = 0, newUserKey = true): void {
    let shared = 0
    if (this.entries === 0 || this.sinceRestart >= this.restartInterval) {
      if (this.entries > 0) this.restarts.push(this.used)
      this.sinceRestart = 0
      this.head.set(key)
    } else {
      const n = Math.min(this.head.length, key.length)
      const head = this.head.bytes
      while (shared < n && head[shared] === key[shared]) shared++
    }
    if (this.hashIndex && (newUserKey || this.entries === 0)) {
      this.keyHashes.push(keyHash)
      this.keyOffsets.push(this.used)
    }
    const unshared = key.length - shared
    // Upper bound: 8 bytes per varint; reserving a little more is cheaper than measuring.
    this.reserve(4 * 8 + 1 + unshared + value.length)
    const buf = this.buf
    let o = this.used
    if ((shared | unshared | value.length) < 0x80) {
      buf[o++] = shared
      buf[o++] = unshared
      buf[o++] = value.length
    } else {
      o = writeVarint(buf, o, shared)
      o = writeVarint(buf, o, unshared)
      o = writeVarint(buf, o, value.length)
    }
    buf[o++] = kind
    o = writeVarint(buf, o, sequence)
    for (let i = shared; i < key.length; i++) buf[o++] = key[i]
    if (value.length <= 64) for (let i = 0; i < value.length; i++) buf[o++] = value[i]
    else {
      buf.set(value, o)
      o += value.length
    }
    this.used = o
    this.sinceRestart++
    this.entries++
  }

  /** Returns the block contents (a Buffer of its own) and resets the builder. */
  finish(): Buffer {
    return Buffer.from(this.finishView())
  }

  /**
   * Returns the block contents as a view of a buffer the builder reuses (valid
   * until its next add) and resets the builder: for a caller that copies them
   * anyway (the table builder's trailer or compression), which saves
   * allocating a block-sized Buffer per block.
   */
  finishView(): Buffer {
    // Offsets must fit the buckets' u16 (0xffff means empty); a block with a big value goes without.
    const hashed = this.hashIndex && this.used <= MAX_HASHED_ENTRY_BYTES
    const bucketCount = hashed ? hashBucketCount(this.keyHashes.length) : 0
    // Entries take >= 5 bytes, so <= 13,107 keys fit 0xfffe bytes: their buckets fit the u16 count.
    assert(bucketCount <= 0xffff, 'hash index bucket count overflows u16')
    const size = this.used + this.restarts.length * 4 + 4 + (hashed ? bucketCount * HASH_BUCKET_BYTES + 2 : 0)
    // The tail goes after the entries in `buf` itself: no copy of the entries.
    this.reserve(size - this.used)
    const out = this.buf.subarray(0, size)
    let o = this.used
    for (const r of this.restarts) {
      writeU32(out, o, r)
      o += 4
    }
    if (hashed) {
      // All ones: every offset reads HASH_EMPTY (and no uninitialized memory reaches the file).
      const buckets = out.subarray(o, o + bucketCount * HASH_BUCKET_BYTES).fill(0xff)
      for (let k = 0; k < this.keyHashes.length; k++) {
        // Linear probing; there are more buckets than keys, so a free one exists.
        let b = hashBucket(this.keyHashes[k], bucketCount)
        while ((buckets[b * HASH_BUCKET_BYTES + 1] | (buckets[b * HASH_BUCKET_BYTES + 2] << 8)) !== HASH_EMPTY) {
          b = b + 1 === bucketCount ? 0 : b + 1
        }
        const p = b * HASH_BUCKET_BYTES
        buckets[p] = hashFingerprint(this.keyHashes[k])
        buckets[p + 1] = this.keyOffsets[k] & 0xff
        buckets[p + 2] = this.keyOffsets[k] >>> 8
      }
      o += buckets.length
      out.writeUInt16LE(bucketCount, o)
      o += 2
    }
    writeU32(out, o, (this.restarts.length | (hashed ? HASH_INDEX_FLAG : 0)) >>> 0)
    assert(o + 4 === out.length, 'block size miscounted')
    this.used = 0
    this.restarts = [0]
    this.sinceRestart = 0
    this.head.length = 0
    this.entries = 0
    this.keyHashes = []
    this.keyOffsets = []
    return out
  }

  private reserve(extra: number): void {
    if (this.used + extra <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + extra))
    this.buf.copy(next, 0, 0, this.used)
    this.buf = next
  }
}

/** A growable copy of one key. */
class KeyScratch {
  bytes = Buffer.allocUnsafe(256)
  length = 0

  set(key: Uint8Array): void {
    if (key.length > this.bytes.length) this.bytes = Buffer.allocUnsafe(key.length * 2)
    this.bytes.set(key, 0)
    this.length = key.length
  }
}
