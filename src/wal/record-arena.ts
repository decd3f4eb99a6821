import { assert } from '../base/assert.js'

const DEFAULT_CHUNK_BYTES = 64 << 10

/** Where a run of whole framed records lies: bytes [0, end) of a shared buffer. */
export interface RecordSegment {
  buffer: SharedArrayBuffer
  end: number
}

/** Where an arena gets chunks and gives them back when its memtable is released. */
export interface ChunkSource {
  /** Records are carved from chunks of this size (a larger record gets a chunk of its own, a multiple of it). */
  readonly chunkBytes: number
  /** A kept chunk of at least `minBytes`, if any. */
  takeChunk(minBytes: number): SharedArrayBuffer | undefined
  giveChunk(chunk: SharedArrayBuffer): void
}

/**
 * Memory for a memtable's WAL records, in SharedArrayBuffer chunks. Each
 * record is written here once and serves three readers without a copy: the
 * WAL append, the memtable (its values stay in place), and the flush worker,
 * which receives the chunks (shared, not cloned) and sorts their entries.
 * Before, the worker re-read the WAL file: a second copy of the whole
 * memtable in memory while it was flushed.
 */
export class RecordArena {
  private readonly sealed: RecordSegment[] = []
  private chunk: SharedArrayBuffer | undefined
  private used = 0
  private frozen = false
  private recycled = false

  private readonly chunkBytes: number

  constructor(private readonly source?: ChunkSource) {
    this.chunkBytes = source?.chunkBytes ?? DEFAULT_CHUNK_BYTES
  }

  /**
   * The free rest of the current chunk (at least `minBytes`, taking a fresh
   * chunk when the current one has less), for a record written in place and
   * grown until `commit`. Nothing else is allocated from the arena meanwhile.
   */
  tail(minBytes: number): Buffer {
    assert(!this.frozen, 'allocate from a frozen arena')
    if (this.chunk === undefined || this.used + minBytes > this.chunk.byteLength) {
      this.seal()
      // A record larger than a chunk (a large value) gets a chunk of its own, rounded up to whole
      // chunks so that the recycler can hand it to the next large record.
      const bytes = Math.ceil(minBytes / this.chunkBytes) * this.chunkBytes
      this.chunk = this.source?.takeChunk(bytes) ?? new SharedArrayBuffer(bytes)
      this.used = 0
    }
    return Buffer.from(this.chunk, this.used, this.chunk.byteLength - this.used)
  }

  /** Keeps the first `bytes` of the buffer `tail` returned: one or more whole records. */
  commit(bytes: number): void {
    assert(this.chunk !== undefined && this.used + bytes <= this.chunk.byteLength, 'commit past the chunk')
    this.used += bytes
  }

  /** Every record allocated and kept, in order. Freezes the arena. */
  segments(): RecordSegment[] {
    this.frozen = true
    this.seal()
    return this.sealed
  }

  /**
   * Hands every chunk back to the source for reuse. REQUIRES: nothing reads
   * the records any more (the memtable is released, its flush is done).
   */
  recycle(): void {
    assert(!this.recycled, 'arena recycled twice')
    this.recycled = true
    this.frozen = true
    this.seal()
    if (this.source !== undefined) for (const seg of this.sealed) this.source.giveChunk(seg.buffer)
    this.sealed.length = 0
  }

  private seal(): void {
    if (this.chunk !== undefined && this.used > 0) this.sealed.push({ buffer: this.chunk, end: this.used })
    this.chunk = undefined
    this.used = 0
  }
}
