import { OrderedMap, type OrderedMapIterator } from '@js-sdsl/ordered-map'
import { KIND_DELETE, KIND_PUT } from '../wal/wal-record.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'

/**
 * The sorted in-memory table of recent writes, over @js-sdsl/ordered-map (the
 * one importer of it). Keys are internal keys {k, s}: the user key as a latin1
 * string (one char per byte, so string order is bytewise order and comparison
 * stays in V8's fast path) and the sequence number, ordered k ascending, s
 * descending. Values are the value bytes, or null for a delete.
 *
 * Entries are never removed: a memtable only grows until it is frozen and
 * flushed, which is also why js-sdsl iterators stay valid while writes go on
 * (insertion relinks nodes, it never moves them).
 */
export interface MemKey {
  readonly k: string
  readonly s: number
}

/** Sequence numbers stay below 2^53; this sorts before every real entry of a key. */
const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER

function compareMemKeys(a: MemKey, b: MemKey): number {
  return a.k < b.k ? -1 : a.k > b.k ? 1 : b.s - a.s
}

/** Estimated heap bytes per entry beyond key and value bytes (tree node, key object, Buffer). */
export const MEMTABLE_ENTRY_OVERHEAD_BYTES = 160

/** The result of a point lookup: where a version was found and what it holds. */
export interface Found {
  /** Sequence of the version found. */
  sequence: number
  /** Value bytes, or null for a delete. */
  value: Buffer | null
}

export class Memtable {
  private readonly map = new OrderedMap<MemKey, Buffer | null>([], compareMemKeys)
  private bytes = 0
  private count = 0

  /** The WAL file this memtable's writes started in; it and later WALs back it. */
  constructor(readonly firstWalNumber: number) {}

  /** Approximate memory used, including per-entry overhead. */
  get approximateBytes(): number {
    return this.bytes
  }

  get entryCount(): number {
    return this.count
  }

  /** Inserts one version. REQUIRES: `sequence` not present yet. */
  add(key: Buffer, sequence: number, value: Buffer | null): void {
    this.map.setElement({ k: key.toString('latin1'), s: sequence }, value)
    this.count++
    this.bytes += key.length + (value === null ? 0 : value.length) + MEMTABLE_ENTRY_OVERHEAD_BYTES
  }

  /**
   * Newest version of `key` (latin1) with sequence <= `sequence`, or undefined
   * when this memtable has none.
   */
  get(key: string, sequence: number): Found | undefined {
    const it = this.map.lowerBound({ k: key, s: sequence })
    if (it.equals(this.map.end())) return undefined
    const p = it.pointer
    const found = p[0]
    if (found.k !== key) return undefined
    return { sequence: found.s, value: p[1] }
  }

  iterator(): InternalIterator {
    return new MemtableIterator(this.map)
  }
}

/** Walks a memtable in internal-key order; survives concurrent inserts. */
class MemtableIterator implements InternalIterator {
  private it: OrderedMapIterator<MemKey, Buffer | null>
  private ok = false
  private currentKey: Buffer = Buffer.alloc(0)
  private currentSeq = 0
  private currentValue: Buffer | null = null

  constructor(private readonly map: OrderedMap<MemKey, Buffer | null>) {
    this.it = map.end()
  }

  private load(): void {
    this.ok = !this.it.equals(this.map.end())
    if (!this.ok) return
    const p = this.it.pointer
    const k = p[0]
    this.currentKey = Buffer.from(k.k, 'latin1')
    this.currentSeq = k.s
    this.currentValue = p[1]
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
    this.it = this.map.lowerBound({ k: key.toString('latin1'), s: MAX_SEQUENCE })
    this.load()
  }
  seekGT(key: Buffer): void {
    this.it = this.map.lowerBound({ k: key.toString('latin1'), s: -1 })
    this.load()
  }
  seekLE(key: Buffer): void {
    this.it = this.map.reverseLowerBound({ k: key.toString('latin1'), s: -1 })
    this.load()
  }
  seekLT(key: Buffer): void {
    this.it = this.map.reverseLowerBound({ k: key.toString('latin1'), s: MAX_SEQUENCE })
    // reverseLowerBound is <= (key, MAX): equal only if that exact entry exists, which it cannot.
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
    return this.currentKey
  }
  sequence(): number {
    return this.currentSeq
  }
  kind(): number {
    return this.currentValue === null ? KIND_DELETE : KIND_PUT
  }
  value(): Buffer {
    return this.currentValue ?? EMPTY
  }
  close(): void {
    this.ok = false
  }
}

const EMPTY = Buffer.alloc(0)
