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
 * Recycled, the engine's memtable memory stays at the live memtables.
 *
 * A memtable is released only when nothing can read it any more (Memtable.unref).
 */
export class Recycler {
  /**
   * A recycler for memtables of `memtableBytes`: arena chunks of 1/16 of it
   * (4 KiB to 1 MiB, so that a chunk is a small part of even a tiny memtable),
   * keeping at most one memtable's worth.
   */
  static forMemtableBytes(memtableBytes: number): Recycler {
    let chunk = 4096
    while (chunk < MAX_CHUNK_BYTES && chunk * 32 <= memtableBytes) chunk *= 2
    return new Recycler(chunk, memtableBytes)
  }

  private readonly chunks: SharedArrayBuffer[] = []
  private columns: MemtableColumns | undefined

  /** @param maxChunkBytes chunks kept at most (about one memtable's worth); the rest go to the GC. */
  constructor(readonly chunkBytes: number, private readonly maxChunkBytes: number) {}

  takeChunk(): SharedArrayBuffer | undefined {
    return this.chunks.pop()
  }

  giveChunk(chunk: SharedArrayBuffer): void {
    if (chunk.byteLength !== this.chunkBytes) return
    if ((this.chunks.length + 1) * this.chunkBytes > this.maxChunkBytes) return
    this.chunks.push(chunk)
  }

  /** Columns of a released memtable (contents are stale; slots are cleared). */
  takeColumns(): MemtableColumns | undefined {
    const c = this.columns
    this.columns = undefined
    c?.slots.fill(0)
    return c
  }

  giveColumns(c: MemtableColumns): void {
    assert(c.seqs.length === c.chunkOf.length, 'columns of unequal length')
    if (this.columns === undefined || this.columns.seqs.length < c.seqs.length) this.columns = c
  }
}
