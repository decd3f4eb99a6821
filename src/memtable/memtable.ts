import { OrderedMap, type OrderedMapIterator } from '@js-sdsl/ordered-map'
import { assert } from '../base/assert.js'
import { compareBytes, copyBytes } from '../base/coding.js'
import { RecordArena } from '../wal/record-arena.js'
import { EXPIRY_BYTES, KIND_DELETE, KIND_PUT, KIND_PUT_EXPIRING, KIND_RANGE_DELETE, VALUE_NOT_READ, expiryOf, type Found } from '../base/entry.js'
import { RangeTombstoneIndex, type RangeTombstone } from '../base/range-tombstones.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'
import { MIN_INITIAL_SLOTS, type Recycler } from './recycler.js'

/**
 * The in-memory table of recent writes.
 *
 * An entry is a version of a key: its sequence number and where its key and
 * value bytes lie. The bytes are never copied into the memtable: they stay in
 * the WAL record they were written in (the record arena) or, for a memtable
 * recovered at open, in the WAL file's buffer. The memtable keeps per entry
 * only numbers, in typed arrays (columns), 44 bytes with the hash slots: no
 * JS object per entry, so a memtable neither grows the V8 heap nor leaves
 * garbage for the collector (one object per entry made heap garbage the
 * largest part of a random-write stream's memory; docs/performance.md).
 *
 * Two indexes over the same entries:
 *  - a hash table (open addressing over key bytes) from key to its newest
 *    entry; each entry links to the next older version of its key. Point
 *    reads at any sequence use it.
 *  - `sorted`, a @js-sdsl/ordered-map (its one importer) whose keys are entry
 *    numbers ordered by internal key (key bytes ascending, sequence
 *    descending). It is built lazily: entries [indexed, count) wait until an
 *    iterator needs order. Inserting into the tree costs a few µs per entry
 *    and was the largest cost of a random-write stream; a write-only workload
 *    never pays it (flushes sort the records on a worker thread).
 *
 * Entries are never removed: a memtable only grows until it is frozen and
 * flushed. js-sdsl iterators stay valid while entries are inserted (insertion
 * relinks nodes, it never moves them), so iterators survive later indexing.
 *
 * Lifetime: the engine holds one reference, each open iterator another. When
 * the last goes (the memtable is flushed and every iterator closed), its
 * record chunks and columns go back to the recycler for the next memtable.
 */

/** Sequence numbers stay below 2^53; this sorts before every real entry of a key. */
const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER

/** The tree's search key (never inserted): compares as the probe fields. */
const PROBE = -1

/**
 * An entry is 10 32-bit words of a page: chunk id, key offset, key length,
 * value offset, value length (NONE for a delete), next older entry of the
 * same key (NONE for none), key hash, kind, then the sequence as a float64.
 * The value of an expiring put (KIND_PUT_EXPIRING) starts with its expiry time.
 */
const WORDS = 10
const W_CHUNK = 0
const W_KEY = 1
const W_KEY_LENGTH = 2
const W_VALUE = 3
const W_VALUE_LENGTH = 4
const W_OLDER = 5
const W_HASH = 6
const W_KIND = 7
/** Float64 index of the sequence within an entry (words 8-9). */
const F_SEQUENCE = 4
const NONE = 0xffffffff
export const ENTRY_BYTES = WORDS * 4
const DEFAULT_PAGE_ENTRIES = 1024

/** 32-bit FNV-1a of bytes [start, end), unsigned. */
function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i], 0x01000193)
  return h >>> 0
}

/** One page of entries: two views over the same buffer. */
interface Page {
  u32: Uint32Array
  f64: Float64Array
}

export class Memtable {
  /** Buffers entries lie in (arena chunks, replayed WAL files), by id. */
  private readonly chunks: Buffer[] = []
  private readonly chunkIds = new Map<ArrayBufferLike, number>()
  private chunkBytes = 0
  private lastChunk: ArrayBufferLike | undefined
  private lastChunkId = 0

  /** Entries, in pages of `pageEntries` (from the recycler: no buffer is ever grown by copying). */
  private readonly pages: Page[] = []
  private readonly pageShift: number
  private readonly pageMask: number
  private readonly pageBytes: number
  private count = 0

  /** Hash table: entry number + 1 of each key's newest entry, 0 = empty. Load <= 1/2. */
  private slots: Int32Array
  private keys = 0

  private readonly sorted = new OrderedMap<number, null>([], (a, b) => this.compareEntries(a, b))
  private indexed = 0
  private probeKey: Uint8Array = EMPTY
  private probeSequence = 0

  /** Range deletes written into this memtable (their own copies of the bounds), in sequence order. */
  private readonly tombstones: RangeTombstone[] = []
  private tombstoneIndex: RangeTombstoneIndex | undefined

  /** Where this memtable's own writes keep their WAL records (shared with the flush worker). */
  readonly arena: RecordArena
  /** True when entries were replayed from WAL files at open (they are not in the arena). */
  replayed = false
  /** The engine's reference plus one per open iterator; at 0 the memory is recycled. */
  private refs = 1

  /**
   * @param walNumbers the WAL files holding exactly this memtable's entries,
   * oldest first. A recovered memtable spans the replayed WALs and the fresh one.
   * @param recycler where memory comes from and goes back to when released.
   */
  constructor(readonly walNumbers: number[], private readonly recycler?: Recycler) {
    assert(walNumbers.length > 0, 'a memtable is backed by at least one WAL')
    this.arena = new RecordArena(recycler)
    const pageEntries = recycler?.pageEntries ?? DEFAULT_PAGE_ENTRIES
    this.pageShift = Math.log2(pageEntries)
    this.pageMask = pageEntries - 1
    this.pageBytes = pageEntries * ENTRY_BYTES
    const initialSlots = recycler?.initialSlots ?? MIN_INITIAL_SLOTS
    this.slots = recycler?.takeSlots(initialSlots) ?? new Int32Array(initialSlots)
  }

  /** The oldest WAL this memtable needs; older WALs are not needed by it. */
  get firstWalNumber(): number {
    return this.walNumbers[0]
  }

  /** Memory held: the buffers entries lie in, the entry pages and the hash table. */
  get approximateBytes(): number {
    return this.chunkBytes + this.pages.length * this.pageBytes + this.slots.byteLength
  }

  /** Point entries (puts and deletes); range deletes are counted apart (rangeTombstones). */
  get entryCount(): number {
    return this.count
  }

  /** True when nothing was written into this memtable. */
  get isEmpty(): boolean {
    return this.count === 0 && this.tombstones.length === 0
  }

  /** The range deletes written into this memtable. */
  get rangeTombstones(): readonly RangeTombstone[] {
    return this.tombstones
  }

  /** The range deletes as an index (rebuilt after a new one arrived); undefined when there are none. */
  rangeIndex(): RangeTombstoneIndex | undefined {
    if (this.tombstones.length === 0) return undefined
    this.tombstoneIndex ??= new RangeTombstoneIndex(this.tombstones)
    return this.tombstoneIndex
  }

  /** Takes a reference (an iterator reading this memtable). */
  ref(): void {
    assert(this.refs > 0, 'ref of a released memtable')
    this.refs++
  }

  /**
   * Drops a reference. At zero nothing reads the memtable any more (the engine
   * dropped it after its flush, every iterator is closed): its record chunks,
   * pages and hash table go back to the recycler for the next memtable, and
   * any later read of this one fails loudly instead of seeing reused bytes.
   */
  unref(): void {
    assert(this.refs > 0, 'memtable released twice')
    if (--this.refs > 0) return
    if (this.recycler !== undefined) {
      for (const p of this.pages) this.recycler.givePage(p.u32.buffer as ArrayBuffer)
      this.recycler.giveSlots(this.slots)
    }
    this.arena.recycle()
    this.pages.length = 0
    this.slots = new Int32Array(0)
    this.chunks.length = 0
    this.chunkIds.clear()
    this.lastChunk = undefined
    this.count = 0
    this.keys = 0
  }

  /** Inserts one version, copying key and value (tests; writes use addRange). */
  add(key: Buffer, sequence: number, value: Buffer | null, expiresAt?: number): void {
    if (value !== null && expiresAt !== undefined) {
      const expiry = Buffer.alloc(EXPIRY_BYTES)
      expiry.writeBigUInt64LE(BigInt(expiresAt))
      value = Buffer.concat([expiry, value])
    }
    const buf = Buffer.concat(value === null ? [key] : [key, value])
    this.addRange(buf, sequence, 0, key.length, value === null ? -1 : key.length, buf.length, expiresAt === undefined ? KIND_PUT : KIND_PUT_EXPIRING)
  }

  /**
   * Inserts one version whose key is bytes [ks, ke) of `buf` and whose value
   * is [vs, ve) (vs < 0: a delete, whatever `kind` says). `kind`
   * KIND_PUT_EXPIRING: the value bytes start with the expiry time. The
   * memtable keeps `buf`'s whole ArrayBuffer. REQUIRES: `sequence` greater
   * than every sequence already here, and the bytes never change afterwards.
   */
  addRange(buf: Buffer, sequence: number, ks: number, ke: number, vs: number, ve: number, kind = KIND_PUT): void {
    assert(this.count === 0 || sequence > this.sequenceAt(this.count - 1), 'memtable sequences must ascend')
    if (kind === KIND_RANGE_DELETE) {
      // Copied: the bounds outlive the arena (the flush moves them into the manifest).
      this.tombstones.push({ start: Buffer.from(buf.subarray(ks, ke)), end: ve > vs ? Buffer.from(buf.subarray(vs, ve)) : undefined, seq: sequence })
      this.tombstoneIndex = undefined
      return
    }
    const i = this.count
    if ((i & this.pageMask) === 0) this.addPage()
    this.count++
    const page = this.pages[i >>> this.pageShift]
    const u = page.u32
    const w = (i & this.pageMask) * WORDS
    const base = buf.byteOffset
    const h = hashBytes(buf, ks, ke)
    u[w + W_CHUNK] = this.chunkIdOf(buf)
    u[w + W_KEY] = base + ks
    u[w + W_KEY_LENGTH] = ke - ks
    u[w + W_VALUE] = vs < 0 ? 0 : base + vs
    u[w + W_VALUE_LENGTH] = vs < 0 ? NONE : ve - vs
    u[w + W_HASH] = h
    u[w + W_KIND] = vs < 0 ? KIND_DELETE : kind
    page.f64[(w >>> 1) + F_SEQUENCE] = sequence
    const slot = this.findSlot(buf, ks, ke, h)
    const newest = this.slots[slot] - 1
    u[w + W_OLDER] = newest < 0 ? NONE : newest
    this.slots[slot] = i + 1
    if (newest < 0 && ++this.keys * 2 > this.slots.length) this.growSlots()
  }

  /**
   * Newest version of `key` with sequence <= `sequence`, or undefined when
   * this memtable has none.
   */
  get(key: Buffer, sequence: number, wantValue = true): Found | undefined {
    assert(this.refs > 0, 'read of a released memtable')
    if (this.count === 0) return undefined // e.g. after a reopen: no hash to compute
    let i = this.slots[this.findSlot(key, 0, key.length, hashBytes(key, 0, key.length))] - 1
    while (i >= 0) {
      const page = this.pages[i >>> this.pageShift]
      const w = (i & this.pageMask) * WORDS
      if (page.f64[(w >>> 1) + F_SEQUENCE] <= sequence) break
      const older = page.u32[w + W_OLDER]
      i = older === NONE ? -1 : older
    }
    if (i < 0) return undefined
    const page = this.pages[i >>> this.pageShift]
    const w = (i & this.pageMask) * WORDS
    if (page.u32[w + W_KIND] !== KIND_PUT_EXPIRING) {
      return { s: this.sequenceAt(i), v: wantValue || this.isDeleteAt(i) ? this.valueAt(i, true) : VALUE_NOT_READ, e: 0 }
    }
    const s = page.u32[w + W_VALUE]
    const chunk = this.chunks[page.u32[w + W_CHUNK]]
    const value = wantValue ? copyBytes(chunk, s + EXPIRY_BYTES, s + page.u32[w + W_VALUE_LENGTH]) : VALUE_NOT_READ
    return { s: this.sequenceAt(i), v: value, e: expiryOf(chunk, s) }
  }

  /** An iterator in internal-key order; it holds a reference until closed. */
  iterator(): InternalIterator {
    this.ref()
    this.index()
    return new MemtableIterator(this, this.sorted)
  }

  /** @internal for the iterator: the key bytes of entry `i` (a view). */
  keyAt(i: number): Buffer {
    const u = this.pages[i >>> this.pageShift].u32
    const w = (i & this.pageMask) * WORDS
    const s = u[w + W_KEY]
    return this.chunks[u[w + W_CHUNK]].subarray(s, s + u[w + W_KEY_LENGTH])
  }
  /** @internal */
  sequenceAt(i: number): number {
    return this.pages[i >>> this.pageShift].f64[(((i & this.pageMask) * WORDS) >>> 1) + F_SEQUENCE]
  }
  /** @internal KIND_PUT, KIND_DELETE or KIND_PUT_EXPIRING. */
  kindAt(i: number): number {
    return this.pages[i >>> this.pageShift].u32[(i & this.pageMask) * WORDS + W_KIND]
  }
  /** @internal */
  isDeleteAt(i: number): boolean {
    return this.pages[i >>> this.pageShift].u32[(i & this.pageMask) * WORDS + W_VALUE_LENGTH] === NONE
  }
  /**
   * @internal Value bytes of entry `i`, null for a delete: a view into the
   * arena, or with `copy` a copy the caller may keep (the arena is recycled).
   */
  valueAt(i: number, copy = false): Buffer | null {
    const u = this.pages[i >>> this.pageShift].u32
    const w = (i & this.pageMask) * WORDS
    const n = u[w + W_VALUE_LENGTH]
    if (n === NONE) return null
    const s = u[w + W_VALUE]
    const chunk = this.chunks[u[w + W_CHUNK]]
    return copy ? copyBytes(chunk, s, s + n) : chunk.subarray(s, s + n)
  }
  /** @internal The tree position of the first entry >= (key, sequence) in internal-key order. */
  lowerBound(key: Uint8Array, sequence: number): OrderedMapIterator<number, null> {
    this.setProbe(key, sequence)
    return this.sorted.lowerBound(PROBE)
  }
  /** @internal The tree position of the last entry <= (key, sequence). */
  reverseLowerBound(key: Uint8Array, sequence: number): OrderedMapIterator<number, null> {
    this.setProbe(key, sequence)
    return this.sorted.reverseLowerBound(PROBE)
  }

  private setProbe(key: Uint8Array, sequence: number): void {
    this.probeKey = key
    this.probeSequence = sequence
  }

  /** Internal-key order of entry numbers (PROBE: the probe fields). */
  private compareEntries(a: number, b: number): number {
    if (b === PROBE) return -this.compareEntries(b, a)
    const ub = this.pages[b >>> this.pageShift].u32
    const wb = (b & this.pageMask) * WORDS
    const bs = ub[wb + W_KEY]
    const bChunk = this.chunks[ub[wb + W_CHUNK]]
    const bEnd = bs + ub[wb + W_KEY_LENGTH]
    let c: number
    if (a === PROBE) {
      c = compareBytes(this.probeKey, 0, this.probeKey.length, bChunk, bs, bEnd)
      return c !== 0 ? c : this.sequenceAt(b) - this.probeSequence
    }
    const ua = this.pages[a >>> this.pageShift].u32
    const wa = (a & this.pageMask) * WORDS
    const as = ua[wa + W_KEY]
    c = compareBytes(this.chunks[ua[wa + W_CHUNK]], as, as + ua[wa + W_KEY_LENGTH], bChunk, bs, bEnd)
    return c !== 0 ? c : this.sequenceAt(b) - this.sequenceAt(a)
  }

  /** The slot holding `key`'s newest entry, or the empty slot where it would go. */
  private findSlot(key: Uint8Array, ks: number, ke: number, h: number): number {
    const slots = this.slots
    const mask = slots.length - 1
    const n = ke - ks
    for (let p = h & mask; ; p = (p + 1) & mask) {
      const e = slots[p] - 1
      if (e < 0) return p
      const u = this.pages[e >>> this.pageShift].u32
      const w = (e & this.pageMask) * WORDS
      if (u[w + W_HASH] !== h || u[w + W_KEY_LENGTH] !== n) continue
      const chunk = this.chunks[u[w + W_CHUNK]]
      const s = u[w + W_KEY]
      let j = 0
      while (j < n && chunk[s + j] === key[ks + j]) j++
      if (j === n) return p
    }
  }

  private chunkIdOf(buf: Buffer): number {
    const ab = buf.buffer
    if (ab === this.lastChunk) return this.lastChunkId
    let id = this.chunkIds.get(ab)
    if (id === undefined) {
      id = this.chunks.length
      this.chunks.push(Buffer.from(ab))
      this.chunkIds.set(ab, id)
      this.chunkBytes += ab.byteLength
    }
    this.lastChunk = ab
    this.lastChunkId = id
    return id
  }

  private addPage(): void {
    const buffer = this.recycler?.takePage() ?? new ArrayBuffer(this.pageBytes)
    assert(buffer.byteLength === this.pageBytes, 'recycled page of another size')
    this.pages.push({ u32: new Uint32Array(buffer), f64: new Float64Array(buffer) })
  }

  /** Doubles the hash table (a kept larger one if the recycler has it). */
  private growSlots(): void {
    const old = this.slots
    const slots = this.recycler?.takeSlots(old.length * 2) ?? new Int32Array(old.length * 2)
    const mask = slots.length - 1
    for (const v of old) {
      if (v === 0) continue
      const e = v - 1
      let p = this.pages[e >>> this.pageShift].u32[(e & this.pageMask) * WORDS + W_HASH] & mask
      while (slots[p] !== 0) p = (p + 1) & mask
      slots[p] = v
    }
    this.slots = slots
    this.recycler?.giveSlots(old)
  }

  /** Moves waiting entries into the ordered map. */
  private index(): void {
    for (; this.indexed < this.count; this.indexed++) this.sorted.setElement(this.indexed, null)
    assert(this.sorted.size() === this.count, 'memtable tree lost entries')
  }
}

const EMPTY = Buffer.alloc(0)

/** Walks the ordered map in internal-key order; survives concurrent inserts. */
class MemtableIterator implements InternalIterator {
  private it: OrderedMapIterator<number, null>
  private ok = false
  private entry = -1
  private keyBuf: Buffer | undefined
  private closed = false

  constructor(private readonly mem: Memtable, private readonly map: OrderedMap<number, null>) {
    this.it = map.end()
  }

  private load(): void {
    this.ok = !this.it.equals(this.map.end())
    this.entry = this.ok ? this.it.pointer[0] : -1
    this.keyBuf = undefined
  }

  valid(): boolean {
    return this.ok
  }
  seekToFirst(): void {
    this.it = this.map.begin()
    this.load()
  }
  seekToLast(): void {
    this.it = this.map.end()
    this.prev()
  }
  seekGE(key: Buffer): void {
    this.it = this.mem.lowerBound(key, MAX_SEQUENCE)
    this.load()
  }
  seekGT(key: Buffer): void {
    this.it = this.mem.lowerBound(key, -1)
    this.load()
  }
  seekLE(key: Buffer): void {
    this.it = this.mem.reverseLowerBound(key, -1)
    this.load()
  }
  seekLT(key: Buffer): void {
    // <= (key, MAX) is < key: no entry has sequence MAX.
    this.it = this.mem.reverseLowerBound(key, MAX_SEQUENCE)
    this.load()
  }
  next(): void {
    this.it.next()
    this.load()
  }
  prev(): void {
    if (this.map.size() === 0 || this.it.equals(this.map.begin())) {
      this.ok = false
      return
    }
    this.it.pre()
    this.load()
  }
  key(): Buffer {
    this.keyBuf ??= this.mem.keyAt(this.entry)
    return this.keyBuf
  }
  sequence(): number {
    return this.mem.sequenceAt(this.entry)
  }
  kind(): number {
    return this.mem.kindAt(this.entry)
  }
  value(): Buffer {
    return this.mem.valueAt(this.entry) ?? EMPTY
  }
  close(): void {
    this.ok = false
    if (this.closed) return
    this.closed = true
    this.mem.unref()
  }
}
