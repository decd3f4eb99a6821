import { OrderedMap, type OrderedMapIterator } from '@js-sdsl/ordered-map'
import { assert } from '../base/assert.js'
import { compareBytes } from '../base/coding.js'
import { RecordArena } from '../wal/record-arena.js'
import { KIND_DELETE, KIND_PUT } from '../wal/wal-record.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'
import type { MemtableColumns, Recycler } from './recycler.js'

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

/** A version found by a point lookup. */
export interface Found {
  /** Sequence of the version found. */
  readonly s: number
  /** Value bytes (a view), or null for a delete. */
  readonly v: Buffer | null
}

/** Sequence numbers stay below 2^53; this sorts before every real entry of a key. */
const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER

/** The tree's search key (never inserted): compares as the probe fields. */
const PROBE = -1

const INITIAL_ENTRIES = 64
const COLUMN_BYTES_PER_ENTRY = 4 * 7 + 8
const SLOT_BYTES = 4

/** 32-bit FNV-1a of bytes [start, end). */
function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i], 0x01000193)
  return h | 0
}

export class Memtable {
  /** Buffers entries lie in (arena chunks, replayed WAL files), by id. */
  private readonly chunks: Buffer[] = []
  private readonly chunkIds = new Map<ArrayBufferLike, number>()
  private chunkBytes = 0
  private lastChunk: ArrayBufferLike | undefined
  private lastChunkId = 0

  // Columns, one element per entry.
  private chunkOf: Uint32Array = new Uint32Array(INITIAL_ENTRIES)
  private keyStart: Uint32Array = new Uint32Array(INITIAL_ENTRIES)
  private keyLength: Uint32Array = new Uint32Array(INITIAL_ENTRIES)
  private valueStart: Uint32Array = new Uint32Array(INITIAL_ENTRIES)
  /** -1 for a delete. */
  private valueLength: Int32Array = new Int32Array(INITIAL_ENTRIES)
  /** Next older entry of the same key, -1 for none. */
  private older: Int32Array = new Int32Array(INITIAL_ENTRIES)
  private hashes: Int32Array = new Int32Array(INITIAL_ENTRIES)
  private seqs: Float64Array = new Float64Array(INITIAL_ENTRIES)
  private count = 0

  /** Hash table: entry number + 1 of each key's newest entry, 0 = empty. Load <= 1/2. */
  private slots: Int32Array = new Int32Array(INITIAL_ENTRIES * 2)
  private keys = 0

  private readonly sorted = new OrderedMap<number, null>([], (a, b) => this.compareEntries(a, b))
  private indexed = 0
  private probeKey: Uint8Array = EMPTY
  private probeSequence = 0

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
    const c = recycler?.takeColumns()
    if (c !== undefined) this.useColumns(c)
  }

  /** The oldest WAL this memtable needs; older WALs are not needed by it. */
  get firstWalNumber(): number {
    return this.walNumbers[0]
  }

  /** Memory held: the buffers entries lie in, the columns and the hash table. */
  get approximateBytes(): number {
    return this.chunkBytes + this.seqs.length * COLUMN_BYTES_PER_ENTRY + this.slots.length * SLOT_BYTES
  }

  get entryCount(): number {
    return this.count
  }

  /** Takes a reference (an iterator reading this memtable). */
  ref(): void {
    assert(this.refs > 0, 'ref of a released memtable')
    this.refs++
  }

  /**
   * Drops a reference. At zero nothing reads the memtable any more (the engine
   * dropped it after its flush, every iterator is closed): its record chunks
   * and columns go back to the recycler for the next memtable, and any later
   * read of this one fails loudly instead of seeing reused bytes.
   */
  unref(): void {
    assert(this.refs > 0, 'memtable released twice')
    if (--this.refs > 0) return
    // Columns first: a memtable that has to grow its own leaves more garbage than one missing chunks.
    this.recycler?.giveColumns(this.takeColumns())
    this.useColumns(EMPTY_COLUMNS)
    this.arena.recycle()
    this.chunks.length = 0
    this.chunkIds.clear()
    this.lastChunk = undefined
    this.count = 0
    this.keys = 0
  }

  /** Inserts one version, copying key and value (tests; writes use addRange). */
  add(key: Buffer, sequence: number, value: Buffer | null): void {
    const buf = Buffer.concat(value === null ? [key] : [key, value])
    this.addRange(buf, sequence, 0, key.length, value === null ? -1 : key.length, buf.length)
  }

  /**
   * Inserts one version whose key is bytes [ks, ke) of `buf` and whose value
   * is [vs, ve) (vs < 0: a delete). The memtable keeps `buf`'s whole
   * ArrayBuffer. REQUIRES: `sequence` greater than every sequence already
   * here, and the bytes never change afterwards.
   */
  addRange(buf: Buffer, sequence: number, ks: number, ke: number, vs: number, ve: number): void {
    assert(this.count === 0 || sequence > this.seqs[this.count - 1], 'memtable sequences must ascend')
    if (this.count === this.seqs.length) this.growColumns()
    const i = this.count++
    const chunk = this.chunkIdOf(buf)
    const base = buf.byteOffset
    this.chunkOf[i] = chunk
    this.keyStart[i] = base + ks
    this.keyLength[i] = ke - ks
    this.valueStart[i] = vs < 0 ? 0 : base + vs
    this.valueLength[i] = vs < 0 ? -1 : ve - vs
    this.seqs[i] = sequence
    const h = hashBytes(buf, ks, ke)
    this.hashes[i] = h
    const slot = this.findSlot(buf, ks, ke, h)
    const newest = this.slots[slot] - 1
    this.older[i] = newest
    this.slots[slot] = i + 1
    if (newest < 0 && ++this.keys * 2 > this.slots.length) this.growSlots()
  }

  /**
   * Newest version of `key` with sequence <= `sequence`, or undefined when
   * this memtable has none.
   */
  get(key: Buffer, sequence: number): Found | undefined {
    assert(this.refs > 0, 'read of a released memtable')
    let i = this.slots[this.findSlot(key, 0, key.length, hashBytes(key, 0, key.length))] - 1
    while (i >= 0 && this.seqs[i] > sequence) i = this.older[i]
    return i < 0 ? undefined : { s: this.seqs[i], v: this.valueAt(i) }
  }

  /** An iterator in internal-key order; it holds a reference until closed. */
  iterator(): InternalIterator {
    this.ref()
    this.index()
    return new MemtableIterator(this, this.sorted)
  }

  /** @internal for the iterator: the key bytes of entry `i` (a view). */
  keyAt(i: number): Buffer {
    const s = this.keyStart[i]
    return this.chunks[this.chunkOf[i]].subarray(s, s + this.keyLength[i])
  }
  /** @internal */
  sequenceAt(i: number): number {
    return this.seqs[i]
  }
  /** @internal */
  isDeleteAt(i: number): boolean {
    return this.valueLength[i] < 0
  }
  /** @internal Value bytes of entry `i` (a view), null for a delete. */
  valueAt(i: number): Buffer | null {
    const n = this.valueLength[i]
    if (n < 0) return null
    const s = this.valueStart[i]
    return this.chunks[this.chunkOf[i]].subarray(s, s + n)
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
    let c: number
    if (a === PROBE) {
      const bs = this.keyStart[b]
      c = compareBytes(this.probeKey, 0, this.probeKey.length, this.chunks[this.chunkOf[b]], bs, bs + this.keyLength[b])
      return c !== 0 ? c : this.seqs[b] - this.probeSequence
    }
    if (b === PROBE) return -this.compareEntries(b, a)
    const as = this.keyStart[a]
    const bs = this.keyStart[b]
    c = compareBytes(this.chunks[this.chunkOf[a]], as, as + this.keyLength[a], this.chunks[this.chunkOf[b]], bs, bs + this.keyLength[b])
    return c !== 0 ? c : this.seqs[b] - this.seqs[a]
  }

  /** The slot holding `key`'s newest entry, or the empty slot where it would go. */
  private findSlot(key: Uint8Array, ks: number, ke: number, h: number): number {
    const slots = this.slots
    const mask = slots.length - 1
    const n = ke - ks
    for (let p = h & mask; ; p = (p + 1) & mask) {
      const e = slots[p] - 1
      if (e < 0) return p
      if (this.hashes[e] !== h || this.keyLength[e] !== n) continue
      const chunk = this.chunks[this.chunkOf[e]]
      const s = this.keyStart[e]
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

  private useColumns(c: MemtableColumns): void {
    this.chunkOf = c.chunkOf
    this.keyStart = c.keyStart
    this.keyLength = c.keyLength
    this.valueStart = c.valueStart
    this.valueLength = c.valueLength
    this.older = c.older
    this.hashes = c.hashes
    this.seqs = c.seqs
    this.slots = c.slots
  }

  private takeColumns(): MemtableColumns {
    const { chunkOf, keyStart, keyLength, valueStart, valueLength, older, hashes, seqs, slots } = this
    return { chunkOf, keyStart, keyLength, valueStart, valueLength, older, hashes, seqs, slots }
  }

  private growColumns(): void {
    const size = this.seqs.length * 2
    this.chunkOf = grown(this.chunkOf, new Uint32Array(size))
    this.keyStart = grown(this.keyStart, new Uint32Array(size))
    this.keyLength = grown(this.keyLength, new Uint32Array(size))
    this.valueStart = grown(this.valueStart, new Uint32Array(size))
    this.valueLength = grown(this.valueLength, new Int32Array(size))
    this.older = grown(this.older, new Int32Array(size))
    this.hashes = grown(this.hashes, new Int32Array(size))
    this.seqs = grown(this.seqs, new Float64Array(size))
  }

  /** Doubles the hash table; each key's newest entry moves, its older chain follows. */
  private growSlots(): void {
    const slots = new Int32Array(this.slots.length * 2)
    const mask = slots.length - 1
    for (const v of this.slots) {
      if (v === 0) continue
      let p = this.hashes[v - 1] & mask
      while (slots[p] !== 0) p = (p + 1) & mask
      slots[p] = v
    }
    this.slots = slots
  }

  /** Moves waiting entries into the ordered map. */
  private index(): void {
    for (; this.indexed < this.count; this.indexed++) this.sorted.setElement(this.indexed, null)
    assert(this.sorted.size() === this.count, 'memtable tree lost entries')
  }
}

const EMPTY = Buffer.alloc(0)

const EMPTY_COLUMNS: MemtableColumns = {
  chunkOf: new Uint32Array(0),
  keyStart: new Uint32Array(0),
  keyLength: new Uint32Array(0),
  valueStart: new Uint32Array(0),
  valueLength: new Int32Array(0),
  older: new Int32Array(0),
  hashes: new Int32Array(0),
  seqs: new Float64Array(0),
  slots: new Int32Array(0),
}

function grown<T extends Uint32Array | Int32Array | Float64Array>(from: T, to: T): T {
  to.set(from)
  return to
}

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
    return this.mem.isDeleteAt(this.entry) ? KIND_DELETE : KIND_PUT
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
