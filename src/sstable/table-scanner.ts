import * as fs from 'node:fs'
import * as path from 'node:path'
import { assert } from '../base/assert.js'
import { cursor, readVarint } from '../base/coding.js'
import { corruption, ioError } from '../base/errors.js'
import { readExactly, readInto } from '../base/fs-util.js'
import { tableFileName } from '../base/file-names.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'
import { BlockIterator } from './block-iterator.js'
import { BLOCK_TRAILER_BYTES, FOOTER_BYTES, checkBlock, decodeFooter } from './table-format.js'

/**
 * A forward-only scan of a whole table, for compaction inputs. It walks the
 * raw index block entry by entry and reads each data block (verified) into
 * one reused buffer: no decoded index (a TableReader's typed arrays cost ~36
 * bytes per block, ~1 MiB per 64 MiB table, times every input of a large
 * L0→L1 job), no filter, no block cache.
 *
 * A value is a view into the current block: valid until the scan moves to
 * the next block (compaction copies what it keeps before advancing).
 */
export class TableScanner implements InternalIterator {
  readonly fileName: string
  readonly fileBytes: number
  private readonly index: BlockIterator
  private readonly dataEnd: number
  private data: BlockIterator | undefined
  private buffer = Buffer.allocUnsafe(8192)
  private closed = false

  private constructor(private readonly fd: number, fileNumber: number, fileBytes: number, indexBlock: Buffer, dataEnd: number) {
    this.fileName = tableFileName(fileNumber)
    this.fileBytes = fileBytes
    this.index = new BlockIterator(indexBlock, this.fileName)
    this.dataEnd = dataEnd
  }

  /** Opens table `fileNumber` and verifies its footer and index block. */
  static open(dir: string, fileNumber: number): TableScanner {
    const file = path.join(dir, tableFileName(fileNumber))
    let fd: number
    try {
      fd = fs.openSync(file, 'r')
    } catch (err) {
      throw ioError(`cannot open table ${file}`, err)
    }
    try {
      const fileBytes = fs.fstatSync(fd).size
      if (fileBytes < FOOTER_BYTES) throw corruption('table shorter than its footer', file)
      const footer = decodeFooter(readExactly(fd, FOOTER_BYTES, fileBytes - FOOTER_BYTES), file, fileBytes)
      const raw = readExactly(fd, footer.index.size + BLOCK_TRAILER_BYTES, footer.index.offset)
      const indexBlock = checkBlock(raw, file, footer.index.offset)
      return new TableScanner(fd, fileNumber, fileBytes, indexBlock, fileBytes - FOOTER_BYTES)
    } catch (err) {
      fs.closeSync(fd)
      throw err
    }
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
    fs.closeSync(this.fd)
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
    const v = this.index.value()
    readVarint(v, 0, v.length)
    const offset = cursor.value
    readVarint(v, cursor.offset, v.length)
    const size = cursor.value
    if (offset + size + BLOCK_TRAILER_BYTES > this.dataEnd) throw corruption('index entry points past the data', this.fileName)
    const total = size + BLOCK_TRAILER_BYTES
    if (this.buffer.length < total) this.buffer = Buffer.allocUnsafe(total * 2)
    let done: number
    try {
      done = readInto(this.fd, this.buffer.subarray(0, total), offset)
    } catch (err) {
      throw ioError(`read of ${this.fileName} failed`, err)
    }
    const block = checkBlock(this.buffer.subarray(0, done), this.fileName, offset)
    if (this.data === undefined) this.data = new BlockIterator(block, this.fileName)
    else this.data.reset(block)
    this.data.seekToFirst()
  }
}

function unsupported(): never {
  assert(false, 'a table scan only walks forward from the first entry')
}
