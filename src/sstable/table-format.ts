import { checksum32, checksum64Low32 } from '../base/checksum.js'
import { cursor, readU32, readU64, readVarint, writeU32, writeU64 } from '../base/coding.js'
import { corruption } from '../base/errors.js'

/**
 * Table file constants, block trailer and footer (docs/format.md, "Table file").
 *
 *   block contents | u8 compression (0 = none) | u32 checksum(contents ‖ compression byte)
 *   checksum: low 32 bits of xxh64 (format version 2), xxh32 (version 1)
 *
 *   footer (48 bytes):
 *     u64 indexOffset | u32 indexSize | u64 filterOffset | u32 filterSize | u64 entryCount
 *     | u32 formatVersion | u32 xxh32(bytes 0..36) | u64 magic
 */
export const TABLE_MAGIC_LO = 0x5441_5453 // "STAT" little-endian: bytes 53 54 41 54
export const TABLE_MAGIC_HI = 0x3142_4c53 // "SLB1"
/**
 * Written into new tables. Version 2 added the data blocks' hash index, key
 * prefixes shared with the run's restart key, the blocked Bloom filter and
 * XXH64 block checksums; version 1 tables are still read (docs/format.md).
 */
export const TABLE_FORMAT_VERSION = 2
const OLDEST_READABLE_FORMAT_VERSION = 1
export const FOOTER_BYTES = 48
export const BLOCK_TRAILER_BYTES = 5
export const COMPRESSION_NONE = 0

/** Where a block lives: offset of its contents and their length (trailer excluded). */
export interface BlockHandle {
  offset: number
  size: number
}

export interface Footer {
  index: BlockHandle
  filter: BlockHandle
  entryCount: number
  /** The table's format version (decides the block checksum and layouts). */
  formatVersion: number
}

/** Checksum of a block's contents and compression byte in a table of `formatVersion`. */
function blockChecksum(data: Uint8Array, formatVersion: number): number {
  return formatVersion >= 2 ? checksum64Low32(data) : checksum32(data)
}

/**
 * Decodes an index entry's value (`varint offset, varint size`), the bytes
 * [start, end) of `buf`, into `out`, checking that the block and its trailer
 * end before `dataEnd`.
 */
export function decodeIndexHandle(buf: Uint8Array, start: number, end: number, dataEnd: number, fileName: string, out: BlockHandle): BlockHandle {
  readVarint(buf, start, end)
  out.offset = cursor.value
  readVarint(buf, cursor.offset, end)
  out.size = cursor.value
  if (out.offset + out.size + BLOCK_TRAILER_BYTES > dataEnd) throw corruption('index entry points past the data', fileName)
  return out
}

/** Appends the trailer to block contents; returns the bytes to write. */
export function withTrailer(contents: Buffer): Buffer {
  const out = Buffer.allocUnsafe(contents.length + BLOCK_TRAILER_BYTES)
  contents.copy(out, 0)
  out[contents.length] = COMPRESSION_NONE
  writeU32(out, contents.length + 1, blockChecksum(out.subarray(0, contents.length + 1), TABLE_FORMAT_VERSION))
  return out
}

/** Verifies a block read with its trailer from a table of `formatVersion`; returns the contents view. */
export function checkBlock(raw: Buffer, fileName: string, offset: number, formatVersion: number): Buffer {
  if (raw.length < BLOCK_TRAILER_BYTES) throw corruption('block truncated', fileName, offset)
  const n = raw.length - BLOCK_TRAILER_BYTES
  if (blockChecksum(raw.subarray(0, n + 1), formatVersion) !== readU32(raw, n + 1)) {
    throw corruption('block checksum mismatch', fileName, offset)
  }
  if (raw[n] !== COMPRESSION_NONE) throw corruption(`unknown block compression ${raw[n]}`, fileName, offset)
  return raw.subarray(0, n)
}

export function encodeFooter(f: Footer): Buffer {
  const out = Buffer.alloc(FOOTER_BYTES)
  writeU64(out, 0, f.index.offset)
  writeU32(out, 8, f.index.size)
  writeU64(out, 12, f.filter.offset)
  writeU32(out, 20, f.filter.size)
  writeU64(out, 24, f.entryCount)
  writeU32(out, 32, f.formatVersion)
  writeU32(out, 36, checksum32(out.subarray(0, 36)))
  writeU32(out, 40, TABLE_MAGIC_LO)
  writeU32(out, 44, TABLE_MAGIC_HI)
  return out
}

export function decodeFooter(buf: Buffer, fileName: string, fileBytes: number): Footer {
  if (buf.length !== FOOTER_BYTES) throw corruption('table shorter than its footer', fileName)
  if (readU32(buf, 40) !== TABLE_MAGIC_LO || readU32(buf, 44) !== TABLE_MAGIC_HI) {
    throw corruption('bad table magic number', fileName)
  }
  if (checksum32(buf.subarray(0, 36)) !== readU32(buf, 36)) throw corruption('footer checksum mismatch', fileName)
  const version = readU32(buf, 32)
  if (version < OLDEST_READABLE_FORMAT_VERSION || version > TABLE_FORMAT_VERSION) throw corruption(`unsupported table format version ${version}`, fileName)
  const footer: Footer = {
    index: { offset: readU64(buf, 0), size: readU32(buf, 8) },
    filter: { offset: readU64(buf, 12), size: readU32(buf, 20) },
    entryCount: readU64(buf, 24),
    formatVersion: version,
  }
  const dataEnd = fileBytes - FOOTER_BYTES
  for (const h of [footer.index, footer.filter]) {
    if (h.offset + h.size + BLOCK_TRAILER_BYTES > dataEnd) throw corruption('block handle past end of table', fileName)
  }
  return footer
}
