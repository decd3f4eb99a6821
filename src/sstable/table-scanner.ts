import { assert } from '../base/assert.js'
import { tableFileName } from '../base/file-names.js'
import { ForwardOnlyIterator } from '../iterators/forward-iterator.js'
import { BlockIterator } from './block-iterator.js'
import { ioError } from '../base/errors.js'
import { BLOCK_TRAILER_BYTES, COMPRESSION_NONE, checkStoredBlock, compressedBlockRawBytes, decodeIndexHandle, decompressBlockInto } from './table-format.js'
import { openTableFile, readVerifiedBlock } from './table-file.js'
import { readInto, type File, type FileSystem } from '../vfs/file-system.js'

/**
 * Data blocks are read this many bytes at a time: one pread for ~20 blocks of
 * a compaction input instead of one each (docs/performance.md, "Compaction").
 */
const READ_AHEAD_BYTES = 64 << 10

/**
 * A forward-only scan of a whole table, for compaction inputs. It walks the
 * raw index block entry by entry and verifies each data block in a reused
 * read-ahead window (READ_AHEAD_BYTES per read): no decoded index (a
 * TableReader's typed arrays cost ~36 bytes per block, ~1 MiB per 64 MiB
 * table, times every input of a large L0→L1 job), no filter, no block cache.
 *
 * A value is a view into the current block: valid until the scan moves to
 * the next block, which may refill the window (compaction copies what it
 * keeps before advancing).
 */
export class TableScanner extends ForwardOnlyIterator {
  readonly fileName: string
  readonly fileBytes: number
  private readonly index: BlockIterator
  private readonly dataEnd: number
  private data: BlockIterator | undefined
  /** File bytes [windowStart, windowStart + windowBytes) as last read. */
  private window = Buffer.allocUnsafe(0)
  private windowStart = 0
  private windowBytes = 0
  /** Where a compressed block is decompressed to (reused, as the window). */
  private decoded = Buffer.allocUnsafe(0)
  private readonly handle = { offset: 0, size: 0 }
  private closed = false

  private constructor(
    private readonly file: File,
    fileNumber: number,
    fileBytes: number,
    private readonly indexBlock: Buffer,
    dataEnd: number,
    private readonly formatVersion: number,
  ) {
    super()
    this.fileName = tableFileName(fileNumber)
    this.fileBytes = fileBytes
    this.index = new BlockIterator(indexBlock, this.fileName)
    this.dataEnd = dataEnd
  }

  /** Opens table `fileNumber` and verifies its footer and index block. */
  static open(fs: FileSystem, dir: string, fileNumber: number): TableScanner {
    return openTableFile(fs, dir, fileNumber, ({ handle: fd, file, fileBytes, footer }) => {
      const indexBlock = readVerifiedBlock(fd, footer.index, file, footer.formatVersion)
      return new TableScanner(fd, fileNumber, fileBytes, indexBlock, footer.dataEnd, footer.formatVersion)
    })
  }

  valid(): boolean {
    return this.data !== undefined && this.data.valid()
  }

  seekToFirst(): void {
    this.index.seekToFirst()
    this.loadBlock()
    this.skipEmptyBlocks()
  }

  next(): void {
    assert(this.data !== undefined, 'next on an unpositioned table scan')
    this.data.next()
    this.skipEmptyBlocks()
  }

  key(): Buffer {
    return this.data!.key()
  }

  sequence(): number {
    return this.data!.sequence()
  }

  kind(): number {
    return this.data!.kind()
  }

  value(): Buffer {
    return this.data!.value()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.data = undefined
    this.file.close()
  }


  /** While the current block is exhausted, moves to the next index entry's block. */
  private skipEmptyBlocks(): void {
    while (this.data !== undefined && !this.data.valid()) {
      this.index.next()
      this.loadBlock()
    }
  }

  /** Reads the block the index stands on (none past the last entry). */
  private loadBlock(): void {
    if (!this.index.valid()) {
      this.data = undefined
      return
    }
    const { offset, size } = decodeIndexHandle(this.indexBlock, this.index.valueOffset(), this.index.valueEndOffset(), this.dataEnd, this.fileName, this.handle)
    const total = size + BLOCK_TRAILER_BYTES
    const { contents, compression } = checkStoredBlock(this.readRange(offset, total), this.fileName, offset, this.formatVersion)
    let block = contents
    if (compression !== COMPRESSION_NONE) {
      const n = compressedBlockRawBytes(contents, this.fileName, offset)
      if (this.decoded.length < n) this.decoded = Buffer.allocUnsafe(n * 2)
      block = this.decoded.subarray(0, n)
      decompressBlockInto(contents, block, this.fileName, offset)
    }
    if (this.data === undefined) this.data = new BlockIterator(block, this.fileName)
    else this.data.reset(block)
    this.data.seekToFirst()
  }

  /** File bytes [offset, offset + length) (fewer past the end of the file), from the window, refilled from `offset` when they are not all in it. */
  private readRange(offset: number, length: number): Buffer {
    if (offset < this.windowStart || offset + length > this.windowStart + this.windowBytes) {
      const want = Math.max(length, Math.min(READ_AHEAD_BYTES, this.fileBytes - offset))
      // A small table's window is the size of the table.
      if (this.window.length < want) this.window = Buffer.allocUnsafe(Math.max(want, Math.min(READ_AHEAD_BYTES, this.fileBytes)))
      this.windowStart = offset
      this.windowBytes = 0
      try {
        this.windowBytes = readInto(this.file, this.window.subarray(0, want), offset)
      } catch (err) {
        throw ioError(`read of ${this.fileName} failed`, err)
      }
    }
    const at = offset - this.windowStart
    return this.window.subarray(at, Math.min(at + length, this.windowBytes))
  }
}

