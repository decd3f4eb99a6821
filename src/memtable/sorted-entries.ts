import { assert } from '../base/assert.js'
import { KIND_DELETE, KIND_PUT } from '../wal/wal-record.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'

/** An entry as a flush sees it: latin1 key, sequence, value as a buffer range (b null = delete). */
export interface SortableEntry {
  readonly k: string
  /** Where the key bytes lie, when the entry has them at hand (saves rebuilding them from k). */
  readonly kw?: Buffer
  readonly ko?: number
  readonly s: number
  readonly b: Buffer | null
  readonly o: number
  readonly n: number
}

/** Internal-key order on latin1 keys: k ascending, then s descending. */
export function compareEntries(a: { k: string; s: number }, b: { k: string; s: number }): number {
  return a.k < b.k ? -1 : a.k > b.k ? 1 : b.s - a.s
}

const EMPTY = Buffer.alloc(0)

/** Forward walk over a sorted entry array; only seekToFirst and next are supported. */
export class EntryArrayIterator implements InternalIterator {
  private i = 0
  private keyBuf: Buffer | undefined

  constructor(private readonly entries: readonly SortableEntry[]) {
    this.i = entries.length
  }

  valid(): boolean {
    return this.i < this.entries.length
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
    if (this.keyBuf === undefined) {
      const e = this.entries[this.i]
      this.keyBuf = e.kw !== undefined ? e.kw.subarray(e.ko!, e.ko! + e.k.length) : Buffer.from(e.k, 'latin1')
    }
    return this.keyBuf
  }
  sequence(): number {
    return this.entries[this.i].s
  }
  kind(): number {
    return this.entries[this.i].b === null ? KIND_DELETE : KIND_PUT
  }
  value(): Buffer {
    const e = this.entries[this.i]
    return e.b === null ? EMPTY : e.b.subarray(e.o, e.o + e.n)
  }
  close(): void {
    this.i = this.entries.length
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

