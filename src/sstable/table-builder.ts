import { assert } from '../base/assert.js'
import { compareBytes, varintLength, writeVarint } from '../base/coding.js'
import { KIND_DELETE, KIND_PUT } from '../base/entry.js'
import type { BlockCompression } from '../options.js'
import { BlockBuilder } from './block-builder.js'
import { buildFilter, filterHash } from './filter-block.js'
import { buildPointIndex } from './point-index.js'
import { BLOCK_TRAILER_BYTES, COMPRESSION_LZ4, COMPRESSION_NONE, encodeFooter, storedBlockMaxBytes, writeStoredBlock, type BlockHandle } from './table-format.js'

/** Tunables of the table format, each with its unit. */
export interface TableBuilderOptions {
  /** Target size of a data block before its trailer. */
  blockBytes: number
  /** Entries between fully stored keys in a data block. */
  blockRestartInterval: number
  /** Bloom filter bits per distinct user key (0 disables the filter's usefulness, not the block). */
  bloomBitsPerKey: number
  /** How data blocks are compressed (a block that does not shrink by 1/8 is stored raw). Default 'none'. */
  compression?: BlockCompression
  /** Whether the table gets a point index and its data blocks hash indexes (docs/format.md). Default true. */
  pointReadIndexes?: boolean
}


/** What a finished table holds; recorded in the manifest. */
export interface TableProperties {
  smallestKey: Buffer
  smallestSeq: number
  largestKey: Buffer
  largestSeq: number
  entryCount: number
  deleteCount: number
  fileBytes: number
  /** The smallest sequence of any entry (a range delete above it may cover some). */
  minSeq: number
}

/** The writer (table-writer.ts) takes the output once about this much has accumulated. */
export const OUTPUT_WRITE_BYTES = 1 << 20

/** Bytes of the buffer a builder lays its blocks into: a write's worth plus room for the block that crosses it. */
const OUTPUT_CHUNK_BYTES = OUTPUT_WRITE_BYTES + (256 << 10)

/**
 * Output buffers of builders that finished, for the next builder on this
 * thread (a flush or compaction writes table after table). A Buffer per
 * block, written by the thread pool and so alive for a while, left the
 * workers' garbage holding 20-40 MiB (docs/performance.md, "Memory").
 */
const spareChunks: Buffer[] = []
const MAX_SPARE_CHUNKS = 2

/**
 * Writes one table: data blocks, then the filter block, the point index, the
 * index block and the footer. Output is handed out in chunks (`takeOutput`) so the caller streams it
 * to disk with bounded memory. Entries must arrive in strictly increasing
 * internal-key order (asserted).
 *
 * Blocks are laid, with their trailers, into one reused buffer; takeOutput
 * lends a view of it, and the caller gives it back with outputWritten()
 * once those bytes are written (asserted before the buffer is written
 * again). A block that does not fit what is left goes to a Buffer of its
 * own, and so does every block after it until the next takeOutput (file
 * order). `release` returns the buffer for the next builder.
 */
export class TableBuilder {
  private readonly data: BlockBuilder
  private readonly index = new BlockBuilder(1)
  /** Filter hash of each distinct user key, in table order (hashes[0, hashCount)). */
  private hashes = new Uint32Array(1024)
  private hashCount = 0
  /** Per data block written: the number of distinct keys whose first entry lies in it or before. */
  private readonly blockEnds: number[] = []
  /** Filter hash of the last user key added. */
  private lastHash = 0
  /** The reused buffer blocks are laid into: [0, chunkUsed) not yet handed out. */
  private chunk: Buffer | undefined = spareChunks.pop() ?? Buffer.allocUnsafeSlow(OUTPUT_CHUNK_BYTES)
  private chunkUsed = 0
  /** True while the bytes takeOutput handed out from the chunk may still be being written. */
  private chunkLent = false
  /** Blocks that did not fit the chunk, in file order after its bytes. */
  private spilled: Buffer[] = []
  private offset = 0
  private entries = 0
  private deletes = 0
  private lastKey = Buffer.allocUnsafe(256)
  private lastKeyLength = 0
  private lastSeq = 0
  private smallestKey: Buffer | undefined
  private smallestSeq = 0
  private minSeq = Infinity
  private finished = false
  private readonly compression: number
  private readonly pointReadIndexes: boolean
  /** Data blocks written so far: their contents' bytes and the bytes stored (compressed or not). */
  private rawDataBytes = 0
  private storedDataBytes = 0

  constructor(private readonly options: TableBuilderOptions) {
    this.compression = options.compression === 'lz4' ? COMPRESSION_LZ4 : COMPRESSION_NONE
    this.pointReadIndexes = options.pointReadIndexes ?? true
    this.data = new BlockBuilder(options.blockRestartInterval, this.pointReadIndexes)
  }

  get entryCount(): number {
    return this.entries
  }

  /** Bytes emitted so far plus the block being built: the size the table has reached. */
  /** Bytes the file would have now: what is written, and the open data block at the compression ratio of the blocks before it. */
  get estimatedFileBytes(): number {
    const open = this.data.estimatedBytes
    return this.offset + (this.rawDataBytes === 0 ? open : Math.ceil((open * this.storedDataBytes) / this.rawDataBytes))
  }

  add(key: Uint8Array, sequence: number, kind: number, value: Uint8Array): void {
    assert(!this.finished, 'add after finish')
    let sameUserKey = false
    if (this.entries > 0) {
      const c = compareBytes(key, 0, key.length, this.lastKey, 0, this.lastKeyLength)
      assert(c > 0 || (c === 0 && sequence < this.lastSeq), 'table entries out of internal-key order')
      sameUserKey = c === 0
    } else {
      this.smallestKey = Buffer.from(key)
      this.smallestSeq = sequence
    }
    if (!sameUserKey) {
      this.lastHash = filterHash(key)
      if (this.hashCount === this.hashes.length) {
        const grown = new Uint32Array(this.hashCount * 2)
        grown.set(this.hashes)
        this.hashes = grown
      }
      this.hashes[this.hashCount++] = this.lastHash
    }
    this.data.add(key, sequence, kind, value, this.lastHash, !sameUserKey)
    if (key.length > this.lastKey.length) this.lastKey = Buffer.allocUnsafe(key.length * 2)
    this.lastKey.set(key, 0)
    this.lastKeyLength = key.length
    this.lastSeq = sequence
    if (sequence < this.minSeq) this.minSeq = sequence
    this.entries++
    if (kind === KIND_DELETE) this.deletes++
    if (this.data.estimatedBytes >= this.options.blockBytes) this.flushDataBlock()
  }

  /**
   * Takes the bytes produced so far, in file order. The first may be a view
   * of the builder's buffer: write them all, then call outputWritten()
   * before the next add or finish.
   */
  takeOutput(): Buffer[] {
    assert(!this.chunkLent, 'table output taken again before it was written')
    const out: Buffer[] = []
    if (this.chunkUsed > 0) {
      out.push(this.chunk!.subarray(0, this.chunkUsed))
      this.chunkLent = true
      this.chunkUsed = 0
    }
    for (const b of this.spilled) out.push(b)
    this.spilled = []
    return out
  }

  /** The bytes takeOutput handed out are written: the buffer may be laid again. */
  outputWritten(): void {
    this.chunkLent = false
  }

  /**
   * Gives the buffer to the next builder on this thread. Call once the
   * table's last output is written; after a failed write, drop the builder
   * instead (nothing may reach a buffer a write could still hold).
   */
  release(): void {
    const chunk = this.chunk
    this.chunk = undefined
    if (chunk !== undefined && !this.chunkLent && spareChunks.length < MAX_SPARE_CHUNKS) spareChunks.push(chunk)
  }

  /** Writes the filter, point index, index and footer. REQUIRES: at least one entry. */
  finish(): TableProperties {
    assert(this.entries > 0, 'a table needs at least one entry')
    assert(!this.finished, 'finish twice')
    this.finished = true
    if (!this.data.isEmpty) this.flushDataBlock()
    const hashes = this.hashes.subarray(0, this.hashCount)
    const filter = this.emitBlock(buildFilter(hashes, this.options.bloomBitsPerKey))
    const pointIndexContents = this.pointReadIndexes ? buildPointIndex(hashes, this.blockEnds) : undefined
    const pointIndex = pointIndexContents === undefined ? undefined : this.emitBlock(pointIndexContents)
    const index = this.emitBlock(this.index.finishView())
    const footer = encodeFooter({ index, filter, pointIndex, entryCount: this.entries })
    const at = this.reserve(footer.length)
    this.laid(at, footer.copy(at.buf, at.start))
    return {
      smallestKey: this.smallestKey!,
      smallestSeq: this.smallestSeq,
      largestKey: Buffer.from(this.lastKey.subarray(0, this.lastKeyLength)),
      largestSeq: this.lastSeq,
      entryCount: this.entries,
      deleteCount: this.deletes,
      fileBytes: this.offset,
      minSeq: this.minSeq,
    }
  }

  private flushDataBlock(): void {
    // A view: emitBlock copies it (compressed or raw) before the next add.
    const contents = this.data.finishView()
    const handle = this.emitBlock(contents, this.compression)
    this.rawDataBytes += contents.length
    this.storedDataBytes += handle.size
    const value = Buffer.allocUnsafe(varintLength(handle.offset) + varintLength(handle.size))
    writeVarint(value, writeVarint(value, 0, handle.offset), handle.size)
    this.index.add(this.lastKey.subarray(0, this.lastKeyLength), this.lastSeq, KIND_PUT, value)
    this.blockEnds.push(this.hashCount)
  }

  private emitBlock(contents: Buffer, compression = COMPRESSION_NONE): BlockHandle {
    const at = this.reserve(storedBlockMaxBytes(contents.length))
    const n = writeStoredBlock(at.buf, at.start, contents, compression)
    // The handle names the stored (possibly compressed) contents.
    const handle = { offset: this.offset, size: n - BLOCK_TRAILER_BYTES }
    this.laid(at, n)
    return handle
  }

  /** `n` bytes were written where `reserve` said: they become output. */
  private laid(at: { buf: Buffer; start: number }, n: number): void {
    if (at.buf === this.chunk) this.chunkUsed += n
    else this.spilled[this.spilled.length - 1] = at.buf.subarray(0, n)
    this.offset += n
  }

  /**
   * Where the next `maxBytes` (at most) of output go: the chunk at
   * chunkUsed when they fit and nothing spilled yet, else a Buffer of their
   * own, pushed to `spilled`. The caller then reports what it wrote (laid).
   */
  private reserve(maxBytes: number): { buf: Buffer; start: number } {
    assert(!this.chunkLent, 'table output laid over bytes not yet written')
    const chunk = this.chunk
    assert(chunk !== undefined, 'table builder used after release')
    if (this.spilled.length === 0 && this.chunkUsed + maxBytes <= chunk.length) return { buf: chunk, start: this.chunkUsed }
    const own = Buffer.allocUnsafe(maxBytes)
    this.spilled.push(own)
    return { buf: own, start: 0 }
  }
}
