import { compareBytes, copyBytes, copyRange, cursor, readU32, readVarint } from '../base/coding.js'
import { corruption } from '../base/errors.js'
import { EXPIRY_BYTES, KIND_BLOB, KIND_BLOB_EXPIRING, KIND_DELETE, KIND_PUT, KIND_PUT_EXPIRING } from '../base/entry.js'

/** The entry kinds a table holds, one bit each. */
const TABLE_KINDS = (1 << KIND_DELETE) | (1 << KIND_PUT) | (1 << KIND_BLOB) | (1 << KIND_PUT_EXPIRING) | (1 << KIND_BLOB_EXPIRING)
import type { InternalIterator } from '../iterators/internal-iterator.js'
import { HASH_BUCKET_BYTES, HASH_EMPTY, HASH_INDEX_FLAG, hashBucket, hashFingerprint } from './block-hash-index.js'

/**
 * Reads one block (the layout written by BlockBuilder). Seeks binary-search the
 * restart array, then scan forward; `prev` rescans from the previous restart.
 * Point reads (`seekPoint`) go through the block's hash index when it has one.
 * Keys are rebuilt into a scratch buffer, so `key()` is only valid until the
 * next move. Every decode is bounded by the entry area; overruns are corruption.
 */
export class BlockIterator implements InternalIterator {
  /** The buffer holding the block, which starts at `base` in it (0 unless it is a cache slab). */
  private block: Buffer
  private base = 0
  private restartsOffset = 0
  private restartCount = 0
  /** Hash index buckets (0 when the block has none) and where they start. */
  private bucketCount = 0
  private bucketsOffset = 0
  /** Sink for loads issued only to bring cache lines in early. */
  private touched = 0
  /** Start of the current entry; === restartsOffset when exhausted forward. */
  private current: number
  private nextOffset: number
  private ok = false
  private keyBuf = Buffer.allocUnsafe(64)
  private keyLength = 0
  private keyView: Buffer | undefined
  private seq = 0
  private entryKind = 0
  private valueStart = 0
  private valueEnd = 0

  /** @param onClose called once, at the first close (releases the block's pin). */
  constructor(
    block: Buffer,
    private readonly fileName: string,
    private onClose?: () => void,
  ) {
    this.block = block
    this.current = this.nextOffset = 0
    this.reset(block)
  }

  /** Re-targets this iterator at another block of the same file (not valid until a seek). */
  reset(block: Buffer): void {
    this.resetAt(block, 0, block.length)
  }

  /**
   * Like reset, for a block stored at bytes [base, base + length) of `buffer`
   * (a slab of the block cache): reading it there needs no Buffer object of
   * its own, whose load would be one more cache miss before the block's bytes.
   * Offsets inside the iterator are positions in `buffer`.
   */
  resetAt(buffer: Buffer, base: number, length: number): void {
    if (length < 4) throw corruption('block shorter than its restart count', this.fileName)
    let end = base + length - 4
    const tail = readU32(buffer, end)
    let bucketCount = 0
    if (tail >= HASH_INDEX_FLAG) {
      if (end - base < 2) throw corruption('block shorter than its hash index', this.fileName)
      bucketCount = buffer[end - 2] | (buffer[end - 1] << 8)
      end -= 2 + bucketCount * HASH_BUCKET_BYTES
      if (bucketCount === 0 || end < base) throw corruption('bad hash index in block', this.fileName)
    }
    const restartCount = tail >= HASH_INDEX_FLAG ? tail - HASH_INDEX_FLAG : tail
    if (restartCount === 0 || restartCount * 4 > end - base) {
      throw corruption('bad restart count in block', this.fileName)
    }
    this.block = buffer
    this.base = base
    this.restartCount = restartCount
    this.bucketCount = bucketCount
    this.bucketsOffset = end
    this.restartsOffset = end - restartCount * 4
    this.current = this.nextOffset = this.restartsOffset
    this.ok = false
  }

  valid(): boolean {
    return this.ok
  }

  key(): Buffer {
    if (this.keyView === undefined) this.keyView = this.keyBuf.subarray(0, this.keyLength)
    return this.keyView
  }

  /** True when the current key equals `key`, without materializing a view. */
  keyEquals(key: Uint8Array): boolean {
    return compareBytes(this.keyBuf, 0, this.keyLength, key, 0, key.length) === 0
  }

  sequence(): number {
    return this.seq
  }

  kind(): number {
    return this.entryKind
  }

  value(): Buffer {
    return this.block.subarray(this.valueStart, this.valueEnd)
  }

  /** Where the current value lies in the block's buffer: [valueOffset(), valueEndOffset()). */
  valueOffset(): number {
    return this.valueStart
  }

  valueEndOffset(): number {
    return this.valueEnd
  }

  /** Length of the current key (no view is made). */
  keyBytes(): number {
    return this.keyLength
  }

  /** A copy of the current value, the caller's to keep (no view is made on the way). */
  copyValue(): Buffer {
    return copyBytes(this.block, this.valueStart, this.valueEnd)
  }

  close(): void {
    this.ok = false
    const done = this.onClose
    this.onClose = undefined
    done?.()
  }

  seekToFirst(): void {
    this.seekToRestart(0)
    this.parseNext()
  }

  seekToLast(): void {
    this.seekToRestart(this.restartCount - 1)
    while (this.parseNext() && this.nextOffset < this.restartsOffset) {
      /* advance to the last entry */
    }
  }

  next(): void {
    this.parseNext()
  }

  prev(): void {
    const original = this.current
    // Find the last restart point strictly before the current entry.
    let r = this.restartCount - 1
    while (r >= 0 && this.restartPoint(r) >= original) r--
    if (r < 0) {
      this.ok = false
      this.current = this.nextOffset = this.restartsOffset
      return
    }
    this.seekToRestart(r)
    while (this.parseNext() && this.nextOffset < original) {
      /* advance to the entry just before `original` */
    }
  }

  seekGE(target: Buffer): void {
    this.seekUser(target, false)
  }

  seekGT(target: Buffer): void {
    this.seekUser(target, true)
  }

  seekLE(target: Buffer): void {
    this.seekUser(target, true)
    this.stepBackFromSeek()
  }

  seekLT(target: Buffer): void {
    this.seekUser(target, false)
    this.stepBackFromSeek()
  }

  /**
   * Positions at the first entry >= (target, sequence) in internal order: the
   * newest version of `target` not newer than `sequence`, or a larger key.
   */
  seekInternal(target: Uint8Array, sequence: number): void {
    this.seekToRestartBefore(target)
    while (this.parseNext()) {
      const c = compareBytes(this.keyBuf, 0, this.keyLength, target, 0, target.length)
      if (c > 0 || (c === 0 && this.seq <= sequence)) return
    }
  }

  /**
   * Like seekInternal for a point read: positions at the newest version of
   * `target` not newer than `sequence` when the block holds one; otherwise the
   * iterator is left invalid or at another key (callers check keyEquals).
   * `hash` is the key's filterHash. Without a hash index this is seekInternal.
   */
  seekPoint(target: Uint8Array, sequence: number, hash: number): void {
    const count = this.bucketCount
    if (count === 0) return this.seekInternal(target, sequence)
    const b = this.block
    const fingerprint = hashFingerprint(hash)
    let bucket = hashBucket(hash, count)
    for (let probes = 0; probes < count; probes++) {
      const p = this.bucketsOffset + bucket * HASH_BUCKET_BYTES
      const offset = b[p + 1] | (b[p + 2] << 8)
      if (offset === HASH_EMPTY) break
      if (b[p] === fingerprint) {
        this.seekToEntry(this.base + offset)
        if (this.keyEquals(target)) {
          while (this.seq > sequence && this.parseNext() && this.keyEquals(target)) {
            /* older versions follow the newest */
          }
          return
        }
      }
      bucket = bucket + 1 === count ? 0 : bucket + 1
    }
    this.ok = false
    this.current = this.nextOffset = this.restartsOffset
  }

  /**
   * Decodes the entry at `offset` (from the hash index): its run's restart key
   * first, since keys share their prefix with the restart key heading their run.
   */
  private seekToEntry(offset: number): void {
    if (offset >= this.restartsOffset) throw corruption('hash index points past the entries', this.fileName)
    // Touch the entry and the lines after it (its value) now: these loads do not
    // wait on the head's decode below, so the cache misses overlap.
    const b = this.block
    const last = this.restartsOffset - 1
    this.touched = b[offset] + b[Math.min(offset + 64, last)] + b[Math.min(offset + 128, last)]
    let lo = 0
    let hi = this.restartCount - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (this.restartPoint(mid) <= offset) lo = mid
      else hi = mid - 1
    }
    this.seekToRestart(lo)
    this.parseNext()
    if (this.current === offset) return
    if (offset < this.nextOffset) throw corruption('hash index points inside an entry', this.fileName)
    this.nextOffset = offset
    this.parseNext()
  }

  /** After a forward seek: step to the entry before it, or to the last one when exhausted. */
  private stepBackFromSeek(): void {
    if (this.ok) this.prev()
    else this.seekToLast()
  }

  /** First entry whose user key is > target (strict) or >= target. */
  private seekUser(target: Uint8Array, strict: boolean): void {
    this.seekToRestartBefore(target)
    while (this.parseNext()) {
      const c = compareBytes(this.keyBuf, 0, this.keyLength, target, 0, target.length)
      if (strict ? c > 0 : c >= 0) return
    }
  }

  /**
   * Binary search: moves to the last restart whose key is < target (or the
   * first restart), so every version of target is still ahead.
   */
  private seekToRestartBefore(target: Uint8Array): void {
    let lo = 0
    let hi = this.restartCount - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (this.compareRestartKey(mid, target) < 0) lo = mid
      else hi = mid - 1
    }
    this.seekToRestart(lo)
  }

  /** Position of restart i in `block` (the stored offsets are relative to the block's start). */
  private restartPoint(i: number): number {
    return this.base + readU32(this.block, this.restartsOffset + i * 4)
  }

  private seekToRestart(i: number): void {
    const offset = this.restartPoint(i)
    if (offset >= this.restartsOffset && !(i === 0 && offset === this.restartsOffset)) {
      throw corruption('restart point out of range', this.fileName)
    }
    this.keyLength = 0
    this.current = this.nextOffset = offset
  }

  /** Compares the fully stored key at restart `i` with `target`. */
  private compareRestartKey(i: number, target: Uint8Array): number {
    const end = this.restartsOffset
    const b = this.block
    let o = this.restartPoint(i)
    let unshared: number
    if (b[o] === 0 && (b[o + 1] | b[o + 2]) < 0x80 && o + 4 < end) {
      unshared = b[o + 1] // the common case: one-byte varints
      o += 4
    } else {
      readVarint(b, o, end)
      if (cursor.value !== 0) throw corruption('restart entry has a shared prefix', this.fileName)
      readVarint(b, cursor.offset, end)
      unshared = cursor.value
      readVarint(b, cursor.offset, end) // value length
      o = cursor.offset + 1
    }
    readVarint(b, o, end) // sequence
    const keyStart = cursor.offset
    if (keyStart + unshared > end) throw corruption('restart key runs past its block', this.fileName)
    return compareBytes(b, keyStart, keyStart + unshared, target, 0, target.length)
  }

  /** Decodes the entry at nextOffset; returns false (and invalidates) at the end. */
  private parseNext(): boolean {
    const end = this.restartsOffset
    const b = this.block
    this.current = this.nextOffset
    if (this.current >= end) {
      this.ok = false
      this.current = this.nextOffset = end
      return false
    }
    let o = this.current
    let shared = b[o]
    let unshared = b[o + 1]
    let valueLength = b[o + 2]
    if ((shared | unshared | valueLength) < 0x80 && o + 3 < end) {
      o += 3 // the common case: three one-byte varints
    } else {
      readVarint(b, o, end)
      shared = cursor.value
      readVarint(b, cursor.offset, end)
      unshared = cursor.value
      readVarint(b, cursor.offset, end)
      valueLength = cursor.value
      o = cursor.offset
      if (o >= end) throw corruption('block entry truncated', this.fileName)
    }
    const kind = b[o++]
    if (kind > KIND_BLOB_EXPIRING || ((TABLE_KINDS >>> kind) & 1) === 0) throw corruption(`unknown entry kind ${kind}`, this.fileName)
    if (valueLength < EXPIRY_BYTES && (kind === KIND_PUT_EXPIRING || kind === KIND_BLOB_EXPIRING)) throw corruption('expiring entry shorter than its expiry time', this.fileName)
    readVarint(b, o, end)
    this.seq = cursor.value
    o = cursor.offset
    if (shared > this.keyLength || o + unshared + valueLength > end) {
      throw corruption('block entry out of bounds', this.fileName)
    }
    const keyLength = shared + unshared
    if (keyLength > this.keyBuf.length) {
      const grown = Buffer.allocUnsafe(keyLength * 2)
      this.keyBuf.copy(grown, 0, 0, shared)
      this.keyBuf = grown
    }
    copyRange(this.keyBuf, shared, b, o, o + unshared)
    this.keyLength = keyLength
    this.keyView = undefined
    this.entryKind = kind
    this.valueStart = o + unshared
    this.valueEnd = this.valueStart + valueLength
    this.nextOffset = this.valueEnd
    this.ok = true
    return true
  }
}
