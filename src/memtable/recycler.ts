import { assert } from '../base/assert.js'

const MIN_CHUNK_BYTES = 4 << 10
const MAX_CHUNK_BYTES = 1 << 20
/** Fewest hash slots a memtable starts with (also without a recycler). */
export const MIN_INITIAL_SLOTS = 64
/**
 * Memtable bytes per key assumed when sizing a new memtable's hash table: a
 * 16-byte key with a 100-byte value takes ~165 (record, entry columns, slot),
 * so such keys fill a memtable without the table doubling.
 */
const EXPECTED_BYTES_PER_KEY = 128

/**
 * Memory a released memtable leaves for the next ones: its record-arena
 * chunks, its entry pages and its hash table. Every large buffer a memtable
 * uses comes from here and goes back here, so a stream of writes allocates
 * memtable memory once and then reuses it.
 *
 * Why: a memtable holds no JS objects, so V8 seldom needs a full collection,
 * and buffers dropped by flushed memtables stayed resident as garbage; the
 * process also grew by malloc fragmentation from freeing and reallocating
 * megabyte buffers (glibc raises its mmap threshold after such frees). Both
 * were measured in docs/performance.md ("Memory").
 *
 * Bound: the active memtable takes kept buffers before allocating new ones,
 * so buffers are allocated only while nothing is kept, and the active plus
 * the frozen memtables plus what is kept never exceed what the live
 * memtables can hold at once ((1 + maxImmutableMemtables) × memtableBytes).
 * `maxKeptBytes` caps what is kept as a backstop.
 *
 * A memtable is released only when nothing can read it any more (Memtable.unref).
 */
export class Recycler {
  /**
   * A recycler for memtables of `memtableBytes`, `liveMemtables` of which can
   * be live at once: arena chunks and entry pages of about 1/32 of it (chunks
   * 4 KiB to 1 MiB), so that one is a small part of even a tiny memtable.
   */
  static forMemtables(memtableBytes: number, liveMemtables: number): Recycler {
    let chunk = MIN_CHUNK_BYTES
    while (chunk < MAX_CHUNK_BYTES && chunk * 32 <= memtableBytes) chunk *= 2
    // A doubling rehashes every key on the main thread (26-70 ms at 256k keys, docs/performance.md): sized to need none.
    let slots = MIN_INITIAL_SLOTS
    while (slots < (2 * memtableBytes) / EXPECTED_BYTES_PER_KEY) slots *= 2
    return new Recycler(chunk, chunk / 64, liveMemtables * memtableBytes, slots)
  }

  private readonly chunks: SharedArrayBuffer[] = []
  private readonly pages: ArrayBuffer[] = []
  private slots: Int32Array | undefined
  private keptBytes = 0

  /**
   * @param chunkBytes size of a record-arena chunk
   * @param pageEntries entries per page (a power of two)
   * @param maxKeptBytes most bytes kept; more is left to the GC
   * @param initialSlots hash slots a new memtable starts with (a power of two)
   */
  constructor(
    readonly chunkBytes: number,
    readonly pageEntries: number,
    private readonly maxKeptBytes: number,
    readonly initialSlots = MIN_INITIAL_SLOTS,
  ) {
    assert(initialSlots > 0 && (initialSlots & (initialSlots - 1)) === 0, 'initial slots must be a power of two')
    assert(pageEntries > 0 && (pageEntries & (pageEntries - 1)) === 0, 'page entries must be a power of two')
  }

  /** Bytes kept for reuse. */
  get heldBytes(): number {
    return this.keptBytes
  }

  /**
   * A kept chunk of at least `minBytes`: the last one given back when it is
   * large enough (the common case: every chunk has the standard size), else
   * the smallest large enough.
   */
  takeChunk(minBytes: number): SharedArrayBuffer | undefined {
    const chunks = this.chunks
    let at = chunks.length - 1
    if (at < 0) return undefined
    if (chunks[at].byteLength < minBytes) {
      at = -1
      for (let i = 0; i < chunks.length; i++) {
        if (chunks[i].byteLength >= minBytes && (at < 0 || chunks[i].byteLength < chunks[at].byteLength)) at = i
      }
      if (at < 0) return undefined
    }
    const c = chunks[at]
    chunks[at] = chunks[chunks.length - 1]
    chunks.pop()
    this.keptBytes -= c.byteLength
    return c
  }

  /** Keeps a chunk for reuse: standard ones and the larger ones of large records (whole multiples of the standard size). */
  giveChunk(chunk: SharedArrayBuffer): void {
    if (chunk.byteLength % this.chunkBytes !== 0 || !this.fits(chunk.byteLength)) return
    this.chunks.push(chunk)
    this.keptBytes += chunk.byteLength
  }

  /** A page's buffer (stale contents), or undefined when none is kept. */
  takePage(): ArrayBuffer | undefined {
    const p = this.pages.pop()
    if (p !== undefined) this.keptBytes -= p.byteLength
    return p
  }

  givePage(page: ArrayBuffer): void {
    if (!this.fits(page.byteLength)) return
    this.pages.push(page)
    this.keptBytes += page.byteLength
  }

  /** A cleared hash table of at least `minLength` slots, if one is kept. */
  takeSlots(minLength: number): Int32Array | undefined {
    const s = this.slots
    if (s === undefined || s.length < minLength) return undefined
    this.slots = undefined
    this.keptBytes -= s.byteLength
    s.fill(0)
    return s
  }

  giveSlots(slots: Int32Array): void {
    if (this.slots !== undefined && this.slots.length >= slots.length) return
    if (this.slots !== undefined) this.keptBytes -= this.slots.byteLength
    this.slots = undefined
    if (!this.fits(slots.byteLength)) return
    this.slots = slots
    this.keptBytes += slots.byteLength
  }

  /** Drops everything kept (to the GC). */
  clear(): void {
    this.chunks.length = 0
    this.pages.length = 0
    this.slots = undefined
    this.keptBytes = 0
  }

  private fits(bytes: number): boolean {
    return this.keptBytes + bytes <= this.maxKeptBytes
  }
}
