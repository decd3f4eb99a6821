import * as path from 'node:path'
import { ioError } from '../base/errors.js'
import { readExactly, readInto, type File, type FileSystem } from '../vfs/file-system.js'
import { tableFileName } from '../base/file-names.js'
import { BLOCK_TRAILER_BYTES, FOOTER_BYTES, checkBlock, checkStoredBlock, decodeFooter, type BlockHandle, type DecodedFooter } from './table-format.js'

/** An open table file whose footer was read and verified. */
export interface OpenTableFile {
  handle: File
  /** Path, for error messages. */
  file: string
  fileBytes: number
  footer: DecodedFooter
}

/**
 * Opens table `fileNumber` in `dir`, reads and verifies its footer, and hands
 * the open file to `use` (a reader or a scanner reads its index, and filter,
 * there). The file is closed if `use` throws; otherwise `use`'s result owns it.
 * Throws STRATA_CORRUPTION or STRATA_IO_ERROR.
 */
export function openTableFile<T>(fs: FileSystem, dir: string, fileNumber: number, use: (t: OpenTableFile) => T): T {
  const file = path.join(dir, tableFileName(fileNumber))
  let handle: File
  try {
    handle = fs.open(file, 'r')
  } catch (err) {
    throw ioError(`cannot open table ${file}`, err)
  }
  try {
    let fileBytes: number
    let tail: Buffer
    try {
      fileBytes = handle.size()
      // The footer's size depends on its version, which sits at a fixed distance from the end.
      const tailBytes = Math.min(FOOTER_BYTES, fileBytes)
      tail = readExactly(handle, tailBytes, fileBytes - tailBytes)
    } catch (err) {
      throw ioError(`read of ${file} failed`, err)
    }
    const footer = decodeFooter(tail, file, fileBytes)
    return use({ handle, file, fileBytes, footer })
  } catch (err) {
    handle.close()
    throw err
  }
}

/** Reads the block at `handle` with its trailer and verifies it (table format `formatVersion`); returns its contents. */
export function readVerifiedBlock(from: File, handle: BlockHandle, file: string, formatVersion: number): Buffer {
  let raw: Buffer
  try {
    raw = readExactly(from, handle.size + BLOCK_TRAILER_BYTES, handle.offset)
  } catch (err) {
    throw ioError(`read of ${file} failed`, err)
  }
  return checkBlock(raw, file, handle.offset, formatVersion)
}

/**
 * Reads a block and its trailer into `raw` (exactly their size) and verifies
 * it; returns its stored contents (a view of `raw`) and their compression.
 */
export function readStoredBlockInto(raw: Buffer, from: File, offset: number, file: string, formatVersion: number): { contents: Buffer; compression: number } {
  let done: number
  try {
    done = readInto(from, raw, offset)
  } catch (err) {
    throw ioError(`read of ${file} failed`, err)
  }
  return checkStoredBlock(raw.subarray(0, done), file, offset, formatVersion)
}
