import { compareBytes } from '../base/coding.js'
import { corruption } from '../base/errors.js'
import { BlockIterator } from './block-iterator.js'
import { decodeIndexHandle } from './table-format.js'

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
  /** Bytes every index key starts with. */
  private readonly commonLength: number
  /**
   * Per block: the PREFIX_BYTES key bytes after the common prefix, as a
   * big-endian number (missing bytes as 0). Binary search compares these
   * numbers and only compares bytes on a tie: several times cheaper.
   */
  private readonly prefixes: Float64Array

  constructor(private readonly raw: Buffer, fileName: string, dataEndOffset: number) {
    const starts: number[] = []
    const ends: number[] = []
    const seqs: number[] = []
    const offsets: number[] = []
    const sizes: number[] = []
    const it = new BlockIterator(raw, fileName)
    const handle = { offset: 0, size: 0 }
    for (it.seekToFirst(); it.valid(); it.next()) {
      // Positions, not views: an open decodes one entry per data block.
      const valueStart = it.valueOffset()
      const { offset, size } = decodeIndexHandle(raw, valueStart, it.valueEndOffset(), dataEndOffset, fileName, handle)
      // Index entries are all restart points (interval 1): the key is stored whole just before the value.
      const keyLength = it.keyBytes()
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
    const last = this.count - 1
    let common = 0
    const firstLength = this.keyEnd[0] - this.keyStart[0]
    const lastLength = this.keyEnd[last] - this.keyStart[last]
    while (common < firstLength && common < lastLength && raw[this.keyStart[0] + common] === raw[this.keyStart[last] + common]) common++
    this.commonLength = common
    this.prefixes = new Float64Array(this.count)
    for (let i = 0; i < this.count; i++) this.prefixes[i] = prefixNumber(raw, this.keyStart[i] + common, this.keyEnd[i])
  }

  /** Heap bytes this index holds. */
  get sizeBytes(): number {
    return this.raw.length + this.count * 40
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
    // Keys not starting with the common prefix sort before or after every block.
    const common = this.commonLength
    const start0 = this.keyStart[0]
    const c0 = compareBytes(key, 0, Math.min(common, key.length), this.raw, start0, start0 + Math.min(common, key.length))
    if (c0 < 0 || (c0 === 0 && key.length < common)) return 0
    if (c0 > 0) return this.count
    const target = prefixNumber(key, common, key.length)
    let lo = 0
    let hi = this.count
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const p = this.prefixes[mid]
      let before: boolean
      if (p !== target) {
        before = p < target
      } else {
        const c = compareBytes(this.raw, this.keyStart[mid], this.keyEnd[mid], key, 0, key.length)
        before = c < 0 || (c === 0 && this.seqs[mid] > sequence)
      }
      if (before) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** Key bytes per block packed into a number: 6 bytes fit a double exactly. */
const PREFIX_BYTES = 6

/** Bytes [start, start + PREFIX_BYTES) of buf, stopping at end, as a big-endian number. */
function prefixNumber(buf: Uint8Array, start: number, end: number): number {
  let p = 0
  for (let i = start; i < start + PREFIX_BYTES; i++) p = p * 256 + (i < end ? buf[i] : 0)
  return p
}
