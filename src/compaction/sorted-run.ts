import { assert } from '../base/assert.js'
import { compareBytes } from '../base/coding.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'
import { KIND_DELETE, KIND_PUT } from '../wal/wal-record.js'

/** Bytes of each key, after the prefix all keys share, packed into a number that orders like them. */
const SORT_PREFIX_BYTES = 4
/** Entry numbers take the low 21 bits of a packed sort key (4 prefix bytes + 21 bits = 53 bits). */
const PACKED_MAX_ENTRIES = 1 << 21

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
   * Sorts into internal-key order (key ascending, sequence descending).
   *
   * Each entry gets the 4 key bytes after the prefix common to all keys, as
   * a number (missing bytes count as 0), packed with its entry number into
   * one float64 (32 + 21 bits, exact): a native numeric sort of those orders
   * all entries whose 4 bytes differ, with no comparator call; only runs that
   * share the 4 bytes (repeated keys, long shared prefixes) are then sorted by
   * comparing bytes. For random keys this cut the sort of a 64 MiB memtable
   * from ~350 ms (comparator sort on a 6-byte prefix) to ~60 ms
   * (docs/performance.md). Runs of more than 2^21 entries use the comparator.
   */
  sort(): void {
    const n = this.count
    const order = new Uint32Array(n)
    this.order = order
    for (let i = 0; i < n; i++) order[i] = i
    if (n < 2) return
    const common = this.commonPrefixLength()
    const prefix = new Float64Array(n)
    for (let i = 0; i < n; i++) prefix[i] = this.prefixAt(i, common)
    const byKey = (a: number, b: number): number => this.compareKeys(a, b) || this.seq[b] - this.seq[a]
    if (n > this.packedMaxEntries) {
      order.sort((a, b) => prefix[a] - prefix[b] || byKey(a, b))
      return
    }
    const packed = new Float64Array(n)
    for (let i = 0; i < n; i++) packed[i] = prefix[i] * PACKED_MAX_ENTRIES + i
    packed.sort()
    for (let i = 0; i < n; i++) order[i] = packed[i] % PACKED_MAX_ENTRIES
    // Entries sharing their 4 prefix bytes are adjacent; order each such run by the full comparison.
    for (let start = 0; start < n; ) {
      let end = start + 1
      while (end < n && prefix[order[end]] === prefix[order[start]]) end++
      if (end - start > 1) order.subarray(start, end).sort(byKey)
      start = end
    }
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

  /** The SORT_PREFIX_BYTES key bytes of entry `i` after `common`, big-endian (missing bytes are 0). */
  private prefixAt(i: number, common: number): number {
    const b = this.buffers[this.bufferOf[i]]
    const start = this.keyStart[i] + common
    const end = this.keyEnd[i]
    let p = 0
    for (let j = start; j < start + SORT_PREFIX_BYTES; j++) p = p * 256 + (j < end ? b[j] : 0)
    return p
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
