import { assert } from '../base/assert.js'

const MAX_CHUNK_BYTES = 1 << 20

/** The per-entry arrays of a memtable (see Memtable), handed on whole. */
export interface MemtableColumns {
  chunkOf: Uint32Array
  keyStart: Uint32Array
  keyLength: Uint32Array
  valueStart: Uint32Array
  valueLength: Int32Array
  older: Int32Array
  hashes: Int32Array
  seqs: Float64Array
  slots: Int32Array
}

/**
 * Memory a released memtable leaves for the next one: its record-arena
 * chunks and its columns. Without it, each flushed memtable's buffers stayed
 * resident as garbage until V8's next full collection, which a heap holding
 * no per-entry objects rarely needs: in a random-write stream the process held
 * about two memtables' worth of dead buffers (docs/performance.md, "Memory").
 * Recycled, the engine's memtable memory stays at the live memtables: what
 * the recycler keeps counts against the active memtable's share, so the
 * active memtable plus the recycler never hold more than `memtableBytes`
 * (memory beyond that is left to the GC).
 *
 * A memtable is released only when nothing can read it any more (Memtable.unref).
 */
export class Recycler {
  /**
   * A recycler for memtables of `memtableBytes`: arena chunks of 1/32 of it
   * (4 KiB to 1 MiB, so that a chunk is a small part of even a tiny memtable).
   */
  static forMemtableBytes(memtableBytes: number): Recycler {
    let chunk = 4096
    while (chunk < MAX_CHUNK_BYTES && chunk * 32 <= memtableBytes) chunk *= 2
    return new Recycler(chunk, memtableBytes)
  }

  private readonly chunks: SharedArrayBuffer[] = []
  private columns: MemtableColumns | undefined
  private keptBytes = 0
  /** Bytes the active memtable holds (set by the engine). */
  activeBytes: () => number = () => 0

  /** @param maxBytes the active memtable plus what is kept here stay within this. */
  constructor(readonly chunkBytes: number, private readonly maxBytes: number) {}

  /**
   * Bytes of the columns kept for the next memtable. They wait until the
   * active memtable is frozen, so they count toward it being full; kept
   * chunks need not, the active memtable takes them before allocating.
   */
  get heldColumnBytes(): number {
    return this.columns === undefined ? 0 : columnsBytes(this.columns)
  }

  takeChunk(): SharedArrayBuffer | undefined {
    const c = this.chunks.pop()
    if (c !== undefined) this.keptBytes -= c.byteLength
    return c
  }

  giveChunk(chunk: SharedArrayBuffer): void {
    if (chunk.byteLength !== this.chunkBytes || !this.fits(chunk.byteLength)) return
    this.chunks.push(chunk)
    this.keptBytes += chunk.byteLength
  }

  /** Columns of a released memtable (contents are stale; slots are cleared). */
  takeColumns(): MemtableColumns | undefined {
    const c = this.columns
    if (c === undefined) return undefined
    this.columns = undefined
    this.keptBytes -= columnsBytes(c)
    c.slots.fill(0)
    return c
  }

  giveColumns(c: MemtableColumns): void {
    assert(c.seqs.length === c.chunkOf.length, 'columns of unequal length')
    if (this.columns !== undefined || !this.fits(columnsBytes(c))) return
    this.columns = c
    this.keptBytes += columnsBytes(c)
  }

  private fits(bytes: number): boolean {
    return this.activeBytes() + this.keptBytes + bytes <= this.maxBytes
  }
}

function columnsBytes(c: MemtableColumns): number {
  let n = 0
  for (const a of Object.values(c) as ArrayBufferView[]) n += a.byteLength
  return n
}
