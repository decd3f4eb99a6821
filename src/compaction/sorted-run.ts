import { assert } from '../base/assert.js'
import { compareBytes, copyRange } from '../base/coding.js'
import { ForwardOnlyIterator } from '../iterators/forward-iterator.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'
import { KIND_DELETE, KIND_PUT } from '../base/entry.js'

/** Int32 words per entry (see SortedRun's fields). */
const WORDS = 8
const W_BUFFER = 0
const W_KEY_START = 1
const W_KEY_END = 2
const W_VALUE_START = 3
const W_VALUE_END = 4
const W_KIND = 5
/** Float64 index of the sequence within an entry's words / 2. */
const F_SEQUENCE = 3

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
/** Keys with at most this many bytes after the common prefix are sorted by the LSD path. */
const LSD_MAX_BYTES = 8
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
  /**
   * Entry i is words [8i, 8i + 8) of one array (32 bytes, half a cache line):
   * buffer id, key start, key end, value start (-1 for a delete), value end,
   * kind, and the sequence as the float64 at index 4i + 3. The sort
   * leaves entries in place and the writer visits them in key order, i.e. at
   * random: one array keeps that to one cache miss per entry where six
   * parallel arrays cost six (~35% of a flush's table build, docs/performance.md).
   */
  private i32 = new Int32Array(1024 * WORDS)
  private f64 = new Float64Array(this.i32.buffer)
  private capacity = 1024
  private count = 0
  /** Entries were added in ascending sequence order (a memtable's are): lets sort use the LSD path. */
  private ascending = true
  private lastAdded = -Infinity
  private order: Uint32Array | undefined
  /** The order array's storage, kept by `clear` for the next sort. */
  private orderStore: Uint32Array | undefined
  /** Scratch for small runs: a digit per entry number. */
  private digits: Float64Array | undefined

  /** @param packedMaxEntries most entries sorted by packed keys (tests lower it to reach the other path). */
  constructor(private readonly packedMaxEntries = PACKED_MAX_ENTRIES) {
    assert(packedMaxEntries <= PACKED_MAX_ENTRIES, 'packed sort keys hold at most 2^21 entry numbers')
  }

  get length(): number {
    return this.count
  }

  /**
   * Empties the run for another flush, keeping its arrays (a worker thread's
   * flushes reuse one run: arrays of ~40 bytes per entry, allocated anew per
   * flush, lived long enough to reach V8's old generation and stayed there,
   * dead, until a full collection; docs/performance.md, "A thread for
   * flushes"). Iterators over the run must be closed.
   */
  clear(): void {
    this.buffers.length = 0
    this.count = 0
    this.order = undefined
    this.digits = undefined
    this.ascending = true
    this.lastAdded = -Infinity
  }

  /** Makes room for `entries` in all, at once (a flush knows its count: no doubling and copying as entries arrive). */
  reserve(entries: number): void {
    if (entries <= this.capacity) return
    this.resize(entries)
  }

  /** Registers a buffer entries lie in; returns its id for `add`. */
  addBuffer(buf: Buffer): number {
    this.buffers.push(buf)
    return this.buffers.length - 1
  }

  /** One entry: key bytes [ks, ke) of buffer `id`, value [vs, ve) (vs < 0: a delete, whatever `kind` says). */
  add(id: number, sequence: number, ks: number, ke: number, vs: number, ve: number, kind = KIND_PUT): void {
    assert(this.order === undefined, 'add to a sorted run')
    if (this.count === this.capacity) this.grow()
    const i = this.count++
    const w = i * WORDS
    const a = this.i32
    a[w + W_BUFFER] = id
    a[w + W_KEY_START] = ks
    a[w + W_KEY_END] = ke
    a[w + W_VALUE_START] = vs
    a[w + W_VALUE_END] = ve
    a[w + W_KIND] = vs < 0 ? KIND_DELETE : kind
    this.f64[(w >>> 1) + F_SEQUENCE] = sequence
    if (sequence <= this.lastAdded) this.ascending = false
    this.lastAdded = sequence
  }

  /**
   * Sorts into internal-key order (key ascending, sequence descending).
   * Keys that differ in at most LSD_MAX_BYTES bytes after the prefix all keys
   * share go through an LSD radix sort (sortLsd). Others, like an MSD radix
   * sort: each entry gets the 43 key bits after the shared prefix (missing
   * bytes count as 0) packed with its position into a 64-bit number, and a
   * native sort of a BigUint64Array orders them with no comparator call.
   * Runs that share those bits are sorted the same way on the next bytes,
   * down to short runs, which compare a 4-byte digit and then bytes. A
   * comparator sort took ~350 ms for a 64 MiB memtable of random keys; this
   * takes ~55 ms (docs/performance.md).
   */
  sort(): void {
    const n = this.count
    if (this.orderStore === undefined || this.orderStore.length < n) this.orderStore = new Uint32Array(this.capacity)
    const order = this.orderStore.subarray(0, n)
    this.order = order
    for (let i = 0; i < n; i++) order[i] = i
    if (n < 2) return
    const common = this.commonPrefixLength()
    let rest = 0
    for (let w = 0; w < n * WORDS; w += WORDS) rest = Math.max(rest, this.i32[w + W_KEY_END] - this.i32[w + W_KEY_START] - common)
    if (this.ascending && rest <= LSD_MAX_BYTES && n <= this.packedMaxEntries) this.sortLsd(order, common, rest)
    else this.sortRange(order, 0, n, common, common)
    this.digits = undefined
  }

  /**
   * LSD radix sort for keys that differ only in a few bytes after their common
   * prefix (e.g. fixed-width decimal keys, where the packed 43-bit digits of
   * the MSD path hold only 5 of the varying bytes and leave ~100k tiny runs
   * to sort in JavaScript: ~160 ms for a 64 MiB memtable, this ~30 ms,
   * docs/performance.md). The varying bytes are first copied, in entry order
   * (a sequential read of the records), into one small array; then one stable
   * counting-sort pass per byte, last byte first, then by length (a shorter
   * key sorts first among keys equal up to its end). Passes where every entry
   * has the same byte are skipped. Entries were added in ascending sequence
   * order, so starting from the reverse order leaves the newest version of a
   * key first (stability keeps it there).
   */
  private sortLsd(order: Uint32Array, common: number, width: number): void {
    const n = this.count
    const a = this.i32
    const bytes = new Uint8Array(n * width)
    const lengths = new Uint8Array(n)
    for (let i = 0, w = 0; i < n; i++, w += WORDS) {
      const b = this.buffers[a[w + W_BUFFER]]
      const from = a[w + W_KEY_START] + common
      const len = a[w + W_KEY_END] - from
      lengths[i] = len
      const o = i * width
      for (let j = 0; j < len; j++) bytes[o + j] = b[from + j]
    }
    for (let k = 0; k < n; k++) order[k] = n - 1 - k
    let from: Uint32Array = order
    let to: Uint32Array = new Uint32Array(n)
    const counts = new Uint32Array(257)
    // Least significant first: each byte position from the last, then the length.
    for (let p = width; p >= 0; p--) {
      counts.fill(0)
      if (p === width) for (let i = 0; i < n; i++) counts[lengths[i] + 1]++
      else for (let i = 0; i < n; i++) counts[bytes[i * width + p] + 1]++
      let single = false
      for (let c = 1; c <= 256; c++) if (counts[c] === n) single = true
      if (single) continue
      for (let c = 1; c <= 256; c++) counts[c] += counts[c - 1]
      if (p === width) {
        for (let k = 0; k < n; k++) {
          const i = from[k]
          to[counts[lengths[i]]++] = i
        }
      } else {
        for (let k = 0; k < n; k++) {
          const i = from[k]
          to[counts[bytes[i * width + p]]++] = i
        }
      }
      const t = from
      from = to
      to = t
    }
    if (from !== order) order.set(from)
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
    const a = this.i32
    for (let k = 0; k < n; k++) {
      const w = order[start + k] * WORDS
      const b = this.buffers[a[w + W_BUFFER]]
      const from = a[w + W_KEY_START] + offset
      const keyEnd = a[w + W_KEY_END]
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
    const w = i * WORDS
    const b = this.buffers[this.i32[w + W_BUFFER]]
    const start = this.i32[w + W_KEY_START] + offset
    const end = this.i32[w + W_KEY_END]
    let p = 0
    for (let j = start; j < start + DIGIT_BYTES; j++) p = p * 256 + (j < end ? b[j] : 0)
    return p
  }

  /** Length of the prefix all keys share: that of the smallest and the largest key. */
  private commonPrefixLength(): number {
    const { buffers, i32: a } = this
    let min = 0
    let max = 0
    for (let i = 1; i < this.count; i++) {
      if (this.compareKeys(i, min) < 0) min = i
      else if (this.compareKeys(i, max) > 0) max = i
    }
    const minBuf = buffers[a[min * WORDS + W_BUFFER]]
    const maxBuf = buffers[a[max * WORDS + W_BUFFER]]
    const minStart = a[min * WORDS + W_KEY_START]
    const maxStart = a[max * WORDS + W_KEY_START]
    const minLen = a[min * WORDS + W_KEY_END] - minStart
    const maxLen = a[max * WORDS + W_KEY_END] - maxStart
    let common = 0
    while (common < minLen && common < maxLen && minBuf[minStart + common] === maxBuf[maxStart + common]) common++
    return common
  }

  /** A forward iterator over the sorted entries. REQUIRES: sorted. */
  iterator(): InternalIterator {
    assert(this.order !== undefined, 'iterate an unsorted run')
    return new SortedRunIterator(this, this.order)
  }

  /** @internal Entry `i`'s key length. */
  keyLengthAt(i: number): number {
    const w = i * WORDS
    return this.i32[w + W_KEY_END] - this.i32[w + W_KEY_START]
  }
  /** @internal Copies entry `i`'s key into `out` (exactly its length). */
  copyKeyInto(i: number, out: Buffer): void {
    const w = i * WORDS
    copyRange(out, 0, this.buffers[this.i32[w + W_BUFFER]], this.i32[w + W_KEY_START], this.i32[w + W_KEY_END])
  }
  /**
   * @internal Reads entry `i`'s words and first key and value bytes so the
   * CPU starts fetching them; the result means nothing (see SortedRunIterator).
   */
  touchRecord(i: number): number {
    return this.i32[i * WORDS + W_KEY_START]
  }
  /** @internal */
  touchBytes(i: number): number {
    const w = i * WORDS
    const b = this.buffers[this.i32[w + W_BUFFER]]
    return b[this.i32[w + W_KEY_START]] ^ b[this.i32[w + W_VALUE_END] - 1]
  }
  /** @internal */
  sequenceAt(i: number): number {
    return this.f64[i * (WORDS >>> 1) + F_SEQUENCE]
  }
  /** @internal */
  kindAt(i: number): number {
    return this.i32[i * WORDS + W_KIND]
  }
  /** @internal */
  isDeleteAt(i: number): boolean {
    return this.i32[i * WORDS + W_VALUE_START] < 0
  }
  /** @internal */
  valueAt(i: number): Buffer {
    const w = i * WORDS
    const vs = this.i32[w + W_VALUE_START]
    return vs < 0 ? EMPTY : this.buffers[this.i32[w + W_BUFFER]].subarray(vs, this.i32[w + W_VALUE_END])
  }

  /** Internal-key order of entries a and b: key bytes, then sequence descending. */
  private compareEntries(a: number, b: number): number {
    return this.compareKeys(a, b) || this.sequenceAt(b) - this.sequenceAt(a)
  }

  private compareKeys(a: number, b: number): number {
    const x = this.i32
    const wa = a * WORDS
    const wb = b * WORDS
    return compareBytes(
      this.buffers[x[wa + W_BUFFER]], x[wa + W_KEY_START], x[wa + W_KEY_END],
      this.buffers[x[wb + W_BUFFER]], x[wb + W_KEY_START], x[wb + W_KEY_END],
    )
  }

  private grow(): void {
    this.resize(this.capacity * 2)
  }

  private resize(capacity: number): void {
    this.capacity = capacity
    const next = new Int32Array(capacity * WORDS)
    next.set(this.i32.subarray(0, this.count * WORDS))
    this.i32 = next
    this.f64 = new Float64Array(next.buffer)
  }
}

const EMPTY = Buffer.alloc(0)

/** Forward walk over a sorted run; only seekToFirst and next are supported. */
/** Entries ahead of the iterator whose bytes it touches, and twice that for their words. */
const PREFETCH_DISTANCE = 8

class SortedRunIterator extends ForwardOnlyIterator {
  private i: number
  /** Whether keyCopy holds the current entry's key. */
  private keyCopied = false
  /**
   * The current key, copied: a Buffer reused while key lengths repeat, since
   * a view per entry cost ~5-10% of writing a flush's table (bench/flush-probe.mjs;
   * docs/performance.md, "Compaction"). Valid until the next move, as the
   * InternalIterator contract allows.
   */
  private keyCopy = EMPTY
  /**
   * Entries lie in the record buffers in arrival order, so a walk in key order
   * reads them at random: every entry costs cache misses on its words, key and
   * value. Reading entries a little ahead (a loaded byte is kept here so the
   * compiler cannot drop the load) lets those misses overlap with the work on
   * the current entry.
   */
  private touched = 0

  constructor(private readonly run: SortedRun, private readonly order: Uint32Array) {
    super()
    this.i = order.length
  }

  valid(): boolean {
    return this.i < this.order.length
  }
  seekToFirst(): void {
    this.i = 0
    this.keyCopied = false
  }
  next(): void {
    const i = ++this.i
    this.keyCopied = false
    const order = this.order
    if (i + 2 * PREFETCH_DISTANCE < order.length) this.touched ^= this.run.touchRecord(order[i + 2 * PREFETCH_DISTANCE])
    if (i + PREFETCH_DISTANCE < order.length) this.touched ^= this.run.touchBytes(order[i + PREFETCH_DISTANCE])
  }
  key(): Buffer {
    if (this.keyCopied) return this.keyCopy
    const entry = this.order[this.i]
    const length = this.run.keyLengthAt(entry)
    if (this.keyCopy.length !== length) this.keyCopy = Buffer.allocUnsafeSlow(length)
    this.run.copyKeyInto(entry, this.keyCopy)
    this.keyCopied = true
    return this.keyCopy
  }
  sequence(): number {
    return this.run.sequenceAt(this.order[this.i])
  }
  kind(): number {
    return this.run.kindAt(this.order[this.i])
  }
  value(): Buffer {
    return this.run.valueAt(this.order[this.i])
  }
  close(): void {
    this.i = this.order.length
  }
}

