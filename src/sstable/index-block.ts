import { compareBytes, cursor, readVarint } from '../base/coding.js'
import { corruption } from '../base/errors.js'
import { BlockIterator } from './block-iterator.js'
import { BLOCK_TRAILER_BYTES } from './table-format.js'

/**
 * A table's index block, decoded once at open into typed arrays over the raw
 * block: for data block i, where its last key lies in the raw bytes, that key's
 * sequence, and the block's handle. No per-entry objects, so an open table
 * costs about two bytes of heap per byte of index (see docs/design.md,
 * "Memory"). Every handle is validated against the data area at decode time.
 */
export class IndexBlock {
  readonly count: number
  private readonly keyStart: Uint32Array
  private readonly keyEnd: Uint32Array
  private readonly seqs: Float64Array
  private readonly offsets: Float64Array
  private readonly sizes: Uint32Array

  constructor(private readonly raw: Buffer, fileName: string, dataEndOffset: number) {
    const starts: number[] = []
    const ends: number[] = []
    const seqs: number[] = []
    const offsets: number[] = []
    const sizes: number[] = []
    const it = new BlockIterator(raw, fileName)
    for (it.seekToFirst(); it.valid(); it.next()) {
      const v = it.value()
      readVarint(v, 0, v.length)
      const offset = cursor.value
      readVarint(v, cursor.offset, v.length)
      const size = cursor.value
      if (offset + size + BLOCK_TRAILER_BYTES > dataEndOffset) throw corruption('index entry points past the data', fileName)
      // Index entries are all restart points (interval 1): the key is stored whole just before the value.
      const valueStart = v.byteOffset - raw.byteOffset
      const keyLength = it.key().length
      starts.push(valueStart - keyLength)
      ends.push(valueStart)
      seqs.push(it.sequence())
      offsets.push(offset)
      sizes.push(size)
    }
    if (starts.length === 0) throw corruption('table has an empty index', fileName)
    this.count = starts.length
    this.keyStart = Uint32Array.from(starts)
    this.keyEnd = Uint32Array.from(ends)
    this.seqs = Float64Array.from(seqs)
    this.offsets = Float64Array.from(offsets)
    this.sizes = Uint32Array.from(sizes)
  }

  /** Heap bytes this index holds. */
  get sizeBytes(): number {
    return this.raw.length + this.count * 32
  }

  /** Compares the last user key of data block i with `key`. */
  compareLastKey(i: number, key: Uint8Array): number {
    return compareBytes(this.raw, this.keyStart[i], this.keyEnd[i], key, 0, key.length)
  }

  /** Last user key of data block i (a view). */
  lastKey(i: number): Buffer {
    return this.raw.subarray(this.keyStart[i], this.keyEnd[i])
  }

  blockOffset(i: number): number {
    return this.offsets[i]
  }

  blockSize(i: number): number {
    return this.sizes[i]
  }

  /** First block whose last internal key is >= (key, sequence); count when none. */
  findInternal(key: Uint8Array, sequence: number): number {
    let lo = 0
    let hi = this.count
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const c = compareBytes(this.raw, this.keyStart[mid], this.keyEnd[mid], key, 0, key.length)
      if (c < 0 || (c === 0 && this.seqs[mid] > sequence)) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
