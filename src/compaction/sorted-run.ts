import { assert } from '../base/assert.js'
import { compareBytes } from '../base/coding.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'
import { KIND_DELETE, KIND_PUT } from '../wal/wal-record.js'

/** Key bytes per digit of a small-run comparison (exact as a number). */
const DIGIT_BYTES = 4
/** Positions take the low 21 bits of a packed 64-bit sort key, key bits the other 43. */
const PACKED_MAX_ENTRIES = 1 << 21
const POSITION_MASK = PACKED_MAX_ENTRIES - 1
/** Key bytes a packed sort key decides fully (43 bits: 5 bytes and 3 bits of the sixth). */
const RADIX_BYTES = 5
/** Runs this short are insertion-sorted. */
const TINY_RUN = 8
/** Runs this short are sorted by comparison (a native sort per run costs more below it). */
const SMALL_RUN = 256
/** Past this many bytes after the common prefix, runs are sorted by comparison. */
const MAX_RADIX_BYTES = 64

/**
 * A flush's entries in internal-key order, held in typed arrays: per entry the
 * record buffer it lies in, key and value ranges, sequence, and a numeric sort
 * prefix. A flush sorts a whole memtable (hundreds of thousands of entries);
 * one JS object per entry made the flush worker's heap grow to 100-150 MiB
 * for a 64 MiB memtable (docs/performance.md, "Memory"), these arrays take
 * ~40 bytes per entry and leave no garbage.
 *
 * Use: `add` every entry (any order), then `sort`, then iterate.
 */
export class SortedRun {
  private readonly buffers: Buffer[] = []
  private bufferOf = new Uint32Array(1024)
  private keyStart = new Uint32Array(1024)
  private keyEnd = new Uint32Array(1024)
  /** -1 for a delete. */
  private valueStart = new Int32Array(1024)
  private valueEnd = new Int32Array(1024)
  private seq = new Float64Array(1024)
  private count = 0
  private order: Uint32Array | undefined
  /** Scratch for small runs: a digit per entry number. */
  private digits: Float64Array | undefined

  /** @param packedMaxEntries most entries sorted by packed keys (tests lower it to reach the other path). */
  constructor(private readonly packedMaxEntries = PACKED_MAX_ENTRIES) {
    assert(packedMaxEntries <= PACKED_MAX_ENTRIES, 'packed sort keys hold at most 2^21 entry numbers')
  }

  get length(): number {
    return this.count
  }

  /** Registers a buffer entries lie in; returns its id for `add`. */
  addBuffer(buf: Buffer): number {
    this.buffers.push(buf)
    return this.buffers.length - 1
  }

  /** One entry: key bytes [ks, ke) of buffer `id`, value [vs, ve) (vs < 0: a delete). */
  add(id: number, sequence: number, ks: number, ke: number, vs: number, ve: number): void {
    assert(this.order === undefined, 'add to a sorted run')
    if (this.count === this.seq.length) this.grow()
    const i = this.count++
    this.bufferOf[i] = id
    this.keyStart[i] = ks
    this.keyEnd[i] = ke
    this.valueStart[i] = vs
    this.valueEnd[i] = ve
    this.seq[i] = sequence
  }

  /**
   * Sorts into internal-key order (key ascending, sequence descending), like
   * an MSD radix sort with 4-byte digits: entries get the 4 key bytes after
   * the prefix all keys share, as a number (missing bytes count as 0), packed
   * with their position into one float64 (32 + 21 bits, exact), and a native
   * numeric sort orders them with no comparator call. Runs that share those
   * 4 bytes are sorted the same way on the next 4, down to runs of a few
   * entries or keys with no bytes left, which compare bytes. A comparator
   * sort on a 6-byte numeric prefix took ~350 ms for a 64 MiB memtable of
   * random keys; this takes ~70 ms (docs/performance.md).
   */
  sort(): void {
    const n = this.count
    const order = new Uint32Array(n)
    this.order = order
    for (let i = 0; i < n; i++) order[i] = i
    if (n < 2) return
    const common = this.commonPrefixLength()
    this.sortRange(order, 0, n, common, common)
    this.digits = undefined
  }

  /**
   * Sorts order[start, end), whose keys share bytes [common, offset) (read
   * as 0 past a key's end), by the bytes from `offset` on.
   */
  private sortRange(order: Uint32Array, start: number, end: number, common: number, offset: number): void {
    const n = end - start
    if (n < 2) return
    if (n <= TINY_RUN) {
      // Insertion sort on this digit (a number), bytes on ties: runs of a
      // handful of entries are the common case below the first digit.
      const digits = (this.digits ??= new Float64Array(this.count))
      for (let k = start; k < end; k++) digits[order[k]] = this.digitAt(order[k], offset)
      for (let k = start + 1; k < end; k++) {
        const x = order[k]
        let j = k - 1
        while (j >= start && (digits[order[j]] - digits[x] || this.compareEntries(order[j], x)) > 0) {
          order[j + 1] = order[j]
          j--
        }
        order[j + 1] = x
      }
      return
    }
    const byKey = (a: number, b: number): number => this.compareEntries(a, b)
    if (n > this.packedMaxEntries || offset - common >= MAX_RADIX_BYTES) {
      order.subarray(start, end).sort(byKey)
      return
    }
    if (n <= SMALL_RUN) {
      // Few entries: a comparison sort, on this digit first (a number) and bytes on ties.
      const digits = (this.digits ??= new Float64Array(this.count))
      for (let k = start; k < end; k++) digits[order[k]] = this.digitAt(order[k], offset)
      order.subarray(start, end).sort((a, b) => digits[a] - digits[b] || byKey(a, b))
      return
    }
    // One 64-bit sort key per entry: the 43 key bits from `offset` on (then 0
    // past the key's end) above 21 bits of position, written as two 32-bit
    // halves (no BigInt per entry) and sorted natively as a BigUint64Array.
    const packed = new BigUint64Array(n)
    const halves = new Uint32Array(packed.buffer)
    let longer = false
    for (let k = 0; k < n; k++) {
      const i = order[start + k]
      const b = this.buffers[this.bufferOf[i]]
      const from = this.keyStart[i] + offset
      const keyEnd = this.keyEnd[i]
      let hi: number
      let lo: number
      if (from + 6 <= keyEnd) {
        hi = (b[from] << 24) | (b[from + 1] << 16) | (b[from + 2] << 8) | b[from + 3]
        lo = (b[from + 4] << 24) | (b[from + 5] << 16)
      } else {
        hi = lo = 0
        for (let j = 0; j < 6 && from + j < keyEnd; j++) {
          if (j < 4) hi |= b[from + j] << (24 - 8 * j)
          else lo |= b[from + j] << (56 - 8 * j)
        }
      }
      halves[2 * k + 1] = hi >>> 0
      halves[2 * k] = (lo & ~POSITION_MASK) | k
      if (keyEnd - from > RADIX_BYTES) longer = true
    }
    packed.sort()
    const before = order.slice(start, end)
    for (let k = 0; k < n; k++) order[start + k] = before[halves[2 * k] & POSITION_MASK]
    const sameDigit = (x: number, y: number): boolean =>
      halves[2 * x + 1] === halves[2 * y + 1] && (halves[2 * x] & ~POSITION_MASK) === (halves[2 * y] & ~POSITION_MASK)
    for (let s = 0; s < n; ) {
      let e = s + 1
      while (e < n && sameDigit(e, s)) e++
      if (e - s > 1) {
        // No key has bytes past this digit: what is left to order is length (0 padding) and sequence.
        if (longer) this.sortRange(order, start + s, start + e, common, offset + RADIX_BYTES)
        else order.subarray(start + s, start + e).sort(byKey)
      }
      s = e
    }
  }

  /** Key bytes [offset, offset + 4) of entry `i`, big-endian (missing bytes are 0). */
  private digitAt(i: number, offset: number): number {
    const b = this.buffers[this.bufferOf[i]]
    const start = this.keyStart[i] + offset
    const end = this.keyEnd[i]
    let p = 0
    for (let j = start; j < start + DIGIT_BYTES; j++) p = p * 256 + (j < end ? b[j] : 0)
    return p
  }

  /** Length of the prefix all keys share: that of the smallest and the largest key. */
  private commonPrefixLength(): number {
    const { buffers, bufferOf, keyStart, keyEnd } = this
    let min = 0
    let max = 0
    for (let i = 1; i < this.count; i++) {
      if (this.compareKeys(i, min) < 0) min = i
      else if (this.compareKeys(i, max) > 0) max = i
    }
    const minBuf = buffers[bufferOf[min]]
    const maxBuf = buffers[bufferOf[max]]
    const minLen = keyEnd[min] - keyStart[min]
    const maxLen = keyEnd[max] - keyStart[max]
    let common = 0
    while (common < minLen && common < maxLen && minBuf[keyStart[min] + common] === maxBuf[keyStart[max] + common]) common++
    return common
  }

  /** A forward iterator over the sorted entries. REQUIRES: sorted. */
  iterator(): InternalIterator {
    assert(this.order !== undefined, 'iterate an unsorted run')
    return new SortedRunIterator(this, this.order)
  }

  /** @internal for the iterator */
  keyAt(i: number): Buffer {
    return this.buffers[this.bufferOf[i]].subarray(this.keyStart[i], this.keyEnd[i])
  }
  /** @internal */
  sequenceAt(i: number): number {
    return this.seq[i]
  }
  /** @internal */
  isDeleteAt(i: number): boolean {
    return this.valueStart[i] < 0
  }
  /** @internal */
  valueAt(i: number): Buffer {
    const vs = this.valueStart[i]
    return vs < 0 ? EMPTY : this.buffers[this.bufferOf[i]].subarray(vs, this.valueEnd[i])
  }

  /** Internal-key order of entries a and b: key bytes, then sequence descending. */
  private compareEntries(a: number, b: number): number {
    return this.compareKeys(a, b) || this.seq[b] - this.seq[a]
  }

  private compareKeys(a: number, b: number): number {
    return compareBytes(
      this.buffers[this.bufferOf[a]], this.keyStart[a], this.keyEnd[a],
      this.buffers[this.bufferOf[b]], this.keyStart[b], this.keyEnd[b],
    )
  }

  private grow(): void {
    const size = this.seq.length * 2
    const bigger = <T extends Uint32Array | Int32Array | Float64Array>(a: T, make: new (n: number) => T): T => {
      const b = new make(size)
      b.set(a)
      return b
    }
    this.bufferOf = bigger(this.bufferOf, Uint32Array)
    this.keyStart = bigger(this.keyStart, Uint32Array)
    this.keyEnd = bigger(this.keyEnd, Uint32Array)
    this.valueStart = bigger(this.valueStart, Int32Array)
    this.valueEnd = bigger(this.valueEnd, Int32Array)
    this.seq = bigger(this.seq, Float64Array)
  }
}

const EMPTY = Buffer.alloc(0)

/** Forward walk over a sorted run; only seekToFirst and next are supported. */
class SortedRunIterator implements InternalIterator {
  private i: number
  private keyBuf: Buffer | undefined

  constructor(private readonly run: SortedRun, private readonly order: Uint32Array) {
    this.i = order.length
  }

  valid(): boolean {
    return this.i < this.order.length
  }
  seekToFirst(): void {
    this.i = 0
    this.keyBuf = undefined
  }
  next(): void {
    this.i++
    this.keyBuf = undefined
  }
  key(): Buffer {
    this.keyBuf ??= this.run.keyAt(this.order[this.i])
    return this.keyBuf
  }
  sequence(): number {
    return this.run.sequenceAt(this.order[this.i])
  }
  kind(): number {
    return this.run.isDeleteAt(this.order[this.i]) ? KIND_DELETE : KIND_PUT
  }
  value(): Buffer {
    return this.run.valueAt(this.order[this.i])
  }
  close(): void {
    this.i = this.order.length
  }
  seekToLast(): void {
    unsupported()
  }
  seekGE(): void {
    unsupported()
  }
  seekGT(): void {
    unsupported()
  }
  seekLE(): void {
    unsupported()
  }
  seekLT(): void {
    unsupported()
  }
  prev(): void {
    unsupported()
  }
}

function unsupported(): never {
  assert(false, 'a flush iterator only walks forward from the first entry')
}
