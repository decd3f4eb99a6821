import { assert } from '../base/assert.js'
import { compareBytes, varintLength, writeVarint } from '../base/coding.js'
import { KIND_DELETE, KIND_PUT } from '../base/entry.js'
import type { BlockCompression } from '../options.js'
import { BlockBuilder } from './block-builder.js'
import { buildFilter, filterHash } from './filter-block.js'
import { buildPointIndex } from './point-index.js'
import { BLOCK_TRAILER_BYTES, COMPRESSION_LZ4, COMPRESSION_NONE, encodeFooter, withTrailer, type BlockHandle } from './table-format.js'

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

/**
 * Writes one table: data blocks, then the filter block, the point index, the
 * index block and the footer. Output is handed out in chunks (`takeOutput`) so the caller streams it
 * to disk with bounded memory. Entries must arrive in strictly increasing
 * internal-key order (asserted).
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
  private output: Buffer[] = []
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

  /** Takes the bytes produced so far, in file order. */
  takeOutput(): Buffer[] {
    const out = this.output
    this.output = []
    return out
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
    this.output.push(footer)
    this.offset += footer.length
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
    const bytes = withTrailer(contents, compression)
    // The handle names the stored (possibly compressed) contents.
    const handle = { offset: this.offset, size: bytes.length - BLOCK_TRAILER_BYTES }
    this.output.push(bytes)
    this.offset += bytes.length
    return handle
  }
}
