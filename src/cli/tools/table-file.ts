/**
 * A table file opened read-only for the inspection tools: its footer, blocks
 * read and verified one at a time, its index block decoded entry by entry
 * (stopping at the first bad entry with what came before it). Unlike the
 * engine's table reader it trusts nothing it has not verified and never stops
 * the caller at the first damage. (Entry kinds: entry-kinds.ts.)
 */
import * as path from 'node:path'
import { ioError } from '../../base/errors.js'
import { BlockIterator } from '../../sstable/block-iterator.js'
import {
  BLOCK_TRAILER_BYTES,
  FOOTER_BYTES,
  checkBlock,
  checkStoredBlock,
  decodeFooter,
  decodeIndexHandle,
  decodeStoredBlock,
  type BlockHandle,
  type DecodedFooter,
} from '../../sstable/table-format.js'
import { readExactly, type File, type FileSystem } from '../../vfs/file-system.js'
import { findingOf, type Finding } from './output.js'

/** One entry of a table's index block: the last key of data block i and where the block is. */
export interface IndexEntry {
  lastKey: Buffer
  sequence: number
  handle: BlockHandle
}

/** A data block read and verified: its contents (decompressed when it is stored compressed) and how it is stored. */
export interface DataBlock {
  /** The block's contents as the block iterator reads them: its raw bytes. */
  contents: Buffer
  /** The trailer's compression byte: COMPRESSION_NONE (0) or COMPRESSION_LZ4 (1). */
  compression: number
  /** Bytes stored in the file, the trailer excluded (the size its block handle names). */
  storedBytes: number
}

/**
 * Verifies a data block read with its trailer (`raw`) from a table of
 * `formatVersion` and decodes it: a raw block's contents are a view of
 * `raw`, a compressed one's a new Buffer. A checksum mismatch, an unknown
 * compression byte and an LZ4 block that does not decompress (to exactly the
 * raw size it claims) are STRATA_CORRUPTION.
 */
export function decodeDataBlock(raw: Buffer, name: string, offset: number, formatVersion: number): DataBlock {
  const { contents: stored, compression } = checkStoredBlock(raw, name, offset, formatVersion)
  return { contents: decodeStoredBlock(stored, compression, name, offset), compression, storedBytes: stored.length }
}

/** A table file opened read-only. */
export class TableFile {
  private constructor(
    private readonly file: File,
    /** The file's name in its directory (used in messages). */
    readonly name: string,
    readonly fileBytes: number,
  ) {}

  /** Opens `file` read-only; the errno error (ENOENT for a missing file) is thrown as it comes. */
  static open(fs: FileSystem, file: string): TableFile {
    const handle = fs.open(file, 'r')
    try {
      return new TableFile(handle, path.basename(file), handle.size())
    } catch (err) {
      handle.close()
      throw err
    }
  }

  /** Reads and verifies the footer; throws STRATA_CORRUPTION. */
  footer(): DecodedFooter {
    const tailBytes = Math.min(FOOTER_BYTES, this.fileBytes)
    return decodeFooter(this.read(this.fileBytes - tailBytes, tailBytes), this.name, this.fileBytes)
  }

  /** Offset of the footer's first byte (for messages): the last 64 bytes, or 48 in format versions 1 and 2. */
  footerOffset(footer?: DecodedFooter): number {
    return footer !== undefined ? footer.dataEnd : Math.max(0, this.fileBytes - FOOTER_BYTES)
  }

  /** Bytes [offset, offset + length) (fewer at the end of the file). */
  read(offset: number, length: number): Buffer {
    try {
      return readExactly(this.file, length, offset)
    } catch (err) {
      throw ioError(`read of ${this.name} failed`, err)
    }
  }

  /** Reads the block at `handle` with its trailer and verifies it; returns its contents (decompressed). */
  readBlock(handle: BlockHandle, formatVersion: number): Buffer {
    const raw = this.read(handle.offset, handle.size + BLOCK_TRAILER_BYTES)
    return checkBlock(raw, this.name, handle.offset, formatVersion)
  }

  /** Reads the data block at `handle` with its trailer, verifies and decodes it (decodeDataBlock). */
  readDataBlock(handle: BlockHandle, formatVersion: number): DataBlock {
    return decodeDataBlock(this.read(handle.offset, handle.size + BLOCK_TRAILER_BYTES), this.name, handle.offset, formatVersion)
  }

  /** The whole file. */
  readAll(): Buffer {
    return this.read(0, this.fileBytes)
  }

  close(): void {
    this.file.close()
  }
}

/**
 * Decodes an index block into its entries. Stops at the first bad entry and
 * returns what came before it with the problem.
 */
export function decodeIndex(contents: Buffer, name: string, dataEnd: number): { entries: IndexEntry[]; problem?: Finding } {
  const entries: IndexEntry[] = []
  try {
    const it = new BlockIterator(contents, name)
    for (it.seekToFirst(); it.valid(); it.next()) {
      const handle = decodeIndexHandle(contents, it.valueOffset(), it.valueEndOffset(), dataEnd, name, { offset: 0, size: 0 })
      entries.push({ lastKey: Buffer.from(it.key()), sequence: it.sequence(), handle })
    }
  } catch (err) {
    return { entries, problem: findingOf(err, name) }
  }
  if (entries.length === 0) return { entries, problem: { file: name, message: 'the index block has no entries' } }
  return { entries }
}
