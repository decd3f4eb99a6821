import { OrderedMap, type OrderedMapIterator } from '@js-sdsl/ordered-map'
import { assert } from '../base/assert.js'
import { RecordArena } from '../wal/record-arena.js'
import { KIND_DELETE, KIND_PUT } from '../wal/wal-record.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'

/**
 * The in-memory table of recent writes.
 *
 * Every version is a MemEntry {k, s, v}: the user key as a latin1 string (one
 * char per byte, so string order is bytewise order and comparison stays in
 * V8's fast path), the sequence number, and the value (null for a delete).
 *
 * Two indexes over the same entries:
 *  - `latest`, a hash map from key to its newest entry, each entry linking to
 *    the next older version of the key. Point reads at any sequence use it.
 *  - `sorted`, a @js-sdsl/ordered-map (its one importer) keyed by the entries
 *    themselves in internal-key order (k ascending, s descending). It is
 *    built lazily: entries wait in `unsorted` until an iterator needs order.
 *    Inserting into the tree costs ~2 µs per entry and was the largest cost of
 *    a random-write stream (docs/performance.md); a write-only workload never
 *    pays it (flushes rebuild the sorted run from the WAL on a worker thread).
 *
 * Entries are never removed: a memtable only grows until it is frozen and
 * flushed. js-sdsl iterators stay valid while entries are inserted (insertion
 * relinks nodes, it never moves them), so iterators survive later indexing.
 */
export interface MemEntry {
  readonly k: string
  readonly s: number
  /**
   * Where the value bytes live: a range of a larger buffer (the WAL record it
   * was written in, or the WAL file it was replayed from), shared by many
   * entries, so that an entry costs no Buffer object of its own. null for a delete.
   */
  readonly b: Buffer | null
  readonly o: number
  readonly n: number
  /** The next older version of the same key, if any. */
  readonly older: MemEntry | undefined
}

/** The value bytes of an entry (a view), or null for a delete. */
export function entryValue(e: { b: Buffer | null; o: number; n: number }): Buffer | null {
  return e.b === null ? null : e.b.subarray(e.o, e.o + e.n)
}

/** Internal-key order on latin1 keys: k ascending, then s descending. */
function compareEntries(a: MemEntry, b: MemEntry): number {
  return a.k < b.k ? -1 : a.k > b.k ? 1 : b.s - a.s
}

/** Sequence numbers stay below 2^53; this sorts before every real entry of a key. */
const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER

/**
 * Estimated bytes per entry beyond key and value bytes: entry object, hash map
 * slot, latin1 key string, array slot, WAL record framing, and the tree node
 * once indexed. Calibrated so that accounted bytes track the RSS a memtable
 * adds (docs/design.md, "Memory").
 */
export const MEMTABLE_ENTRY_OVERHEAD_BYTES = 200

/** A version found by a point lookup. */
export interface Found {
  /** Sequence of the version found. */
  readonly s: number
  /** Value bytes, or null for a delete. */
  readonly v: Buffer | null
}

export class Memtable {
  private readonly latest = new Map<string, MemEntry>()
  private readonly sorted = new OrderedMap<MemEntry, null>([], compareEntries)
  private unsorted: MemEntry[] = []
  private bytes = 0
  private count = 0

  /**
   * The WAL files holding exactly this memtable's entries, oldest first. A
   * recovered memtable spans the replayed WALs and the fresh one.
   */
  /** Where this memtable's own writes keep their WAL records (shared with the flush worker). */
  readonly arena = new RecordArena()
  /** True when entries were replayed from WAL files at open (they are not in the arena). */
  replayed = false

  constructor(readonly walNumbers: number[]) {
    assert(walNumbers.length > 0, 'a memtable is backed by at least one WAL')
  }

  /** The oldest WAL this memtable needs; older WALs are not needed by it. */
  get firstWalNumber(): number {
    return this.walNumbers[0]
  }

  /** Approximate memory used, including per-entry overhead. */
  get approximateBytes(): number {
    return this.bytes
  }

  get entryCount(): number {
    return this.count
  }

  /** Inserts one version; keeps a reference to `value`'s underlying buffer. */
  add(key: Buffer, sequence: number, value: Buffer | null): void {
    const k = key.toString('latin1')
    if (value === null) this.addRange(k, sequence, null, 0, 0)
    else this.addRange(k, sequence, value, 0, value.length)
  }

  /**
   * Inserts one version of key `k` (latin1: one char per byte) whose value is
   * bytes [offset, offset + length) of `backing` (null for a delete).
   * REQUIRES: `sequence` greater than every sequence already here, and the
   * bytes never change afterwards.
   */
  addRange(k: string, sequence: number, backing: Buffer | null, offset: number, length: number): void {
    const older = this.latest.get(k)
    const entry: MemEntry = { k, s: sequence, b: backing, o: offset, n: length, older }
    this.latest.set(k, entry)
    this.unsorted.push(entry)
    this.count++
    this.bytes += k.length + length + MEMTABLE_ENTRY_OVERHEAD_BYTES
  }

  /**
   * Newest version of `key` (latin1) with sequence <= `sequence`, or undefined
   * when this memtable has none.
   */
  get(key: string, sequence: number): Found | undefined {
    let e = this.latest.get(key)
    while (e !== undefined && e.s > sequence) e = e.older
    return e === undefined ? undefined : { s: e.s, v: entryValue(e) }
  }

  iterator(): InternalIterator {
    this.index()
    return new MemtableIterator(this.sorted)
  }

  /** Moves waiting entries into the ordered map. */
  private index(): void {
    if (this.unsorted.length === 0) return
    for (const e of this.unsorted) this.sorted.setElement(e, null)
    this.unsorted = []
    assert(this.sorted.size() === this.count, 'memtable tree lost entries')
  }
}

/** Walks the ordered map in internal-key order; survives concurrent inserts. */
class MemtableIterator implements InternalIterator {
  private it: OrderedMapIterator<MemEntry, null>
  private ok = false
  private entry: MemEntry | undefined
  private keyBuf: Buffer | undefined

  constructor(private readonly map: OrderedMap<MemEntry, null>) {
    this.it = map.end()
  }

  private load(): void {
    this.ok = !this.it.equals(this.map.end())
    this.entry = this.ok ? this.it.pointer[0] : undefined
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
    this.it = this.map.lowerBound(probe(key, MAX_SEQUENCE))
    this.load()
  }
  seekGT(key: Buffer): void {
    this.it = this.map.lowerBound(probe(key, -1))
    this.load()
  }
  seekLE(key: Buffer): void {
    this.it = this.map.reverseLowerBound(probe(key, -1))
    this.load()
  }
  seekLT(key: Buffer): void {
    // <= (key, MAX) is < key: no entry has sequence MAX.
    this.it = this.map.reverseLowerBound(probe(key, MAX_SEQUENCE))
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
    this.keyBuf ??= Buffer.from(this.entry!.k, 'latin1')
    return this.keyBuf
  }
  sequence(): number {
    return this.entry!.s
  }
  kind(): number {
    return this.entry!.b === null ? KIND_DELETE : KIND_PUT
  }
  value(): Buffer {
    const e = this.entry!
    return e.b === null ? EMPTY : e.b.subarray(e.o, e.o + e.n)
  }
  close(): void {
    this.ok = false
  }
}

/** A search key for the tree (never inserted). */
function probe(key: Buffer, s: number): MemEntry {
  return { k: key.toString('latin1'), s, b: null, o: 0, n: 0, older: undefined }
}

const EMPTY = Buffer.alloc(0)
