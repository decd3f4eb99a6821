import { checksum32, checksum64Low32 } from '../base/checksum.js'
import { cursor, readU32, readU64, readVarint, varintLength, writeU32, writeU64, writeVarint } from '../base/coding.js'
import { lz4CompressBlock, lz4DecompressBlock } from './lz4.js'
import { corruption } from '../base/errors.js'

/**
 * Table file constants, block trailer and footer (docs/format.md, "Table file").
 *
 *   block contents | u8 compression (0 = none, 1 = LZ4) | u32 checksum(contents ‖ compression byte)
 *   LZ4 contents: varint rawLength | LZ4 block (src/sstable/lz4.ts); only data blocks are
 *   compressed, and only those that shrink by at least 1/8
 *   checksum: low 32 bits of xxh64 (format versions 2 and 3), xxh32 (version 1)
 *
 *   footer (64 bytes, format version 3):
 *     u64 indexOffset | u32 indexSize | u64 filterOffset | u32 filterSize
 *     | u64 pointIndexOffset | u32 pointIndexSize | u32 zero | u64 entryCount
 *     | u32 formatVersion | u32 xxh32(bytes 0..52) | u64 magic
 *   footer (48 bytes, versions 1 and 2): as above without the point index and the zero word.
 *   Every footer ends in version | checksum | magic, so the version decides the size.
 */
export const TABLE_MAGIC_LO = 0x5441_5453 // "STAT" little-endian: bytes 53 54 41 54
export const TABLE_MAGIC_HI = 0x3142_4c53 // "SLB1"
/**
 * Written into new tables. Version 3 added the point index and the 64-byte
 * footer; version 2 the data blocks' hash index, key prefixes shared with the
 * run's restart key, the blocked Bloom filter and XXH64 block checksums.
 * Versions 1 and 2 are still read (docs/format.md).
 */
export const TABLE_FORMAT_VERSION = 3
const OLDEST_READABLE_FORMAT_VERSION = 1
/** Footer size of the current format; also the most a reader reads to find the version. */
export const FOOTER_BYTES = 64
/** Footer size of format versions 1 and 2. */
const FOOTER_BYTES_V2 = 48
/** Footer bytes from the version word to the end: version, checksum, magic. */
const FOOTER_TAIL_BYTES = 16
export const BLOCK_TRAILER_BYTES = 5
export const COMPRESSION_NONE = 0
export const COMPRESSION_LZ4 = 1
/** The largest raw size a compressed block may claim (a damaged length must not allocate gigabytes). */
const MAX_RAW_BLOCK_BYTES = 1 << 30

/** Where a block lives: offset of its contents and their length (trailer excluded). */
export interface BlockHandle {
  offset: number
  size: number
}

export interface Footer {
  index: BlockHandle
  filter: BlockHandle
  /** Absent in tables before format version 3 and in tables too large for one. */
  pointIndex: BlockHandle | undefined
  entryCount: number
  /** The table's format version (decides the block checksum and layouts). */
  formatVersion: number
}

/** A footer read back, with where the blocks before it end. */
export interface DecodedFooter extends Footer {
  /** File bytes before the footer: no block handle may reach past this. */
  dataEnd: number
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

/** The most bytes `writeStoredBlock` writes for contents of `length` bytes (raw contents and the trailer). */
export function storedBlockMaxBytes(length: number): number {
  return length + BLOCK_TRAILER_BYTES
}

/**
 * Writes what is stored for block `contents` into `out` at `at`: compressed
 * with `compression` when that shrinks it by at least 1/8 (else raw), then
 * the trailer. Returns the bytes written (at most storedBlockMaxBytes).
 */
export function writeStoredBlock(out: Buffer, at: number, contents: Buffer, compression = COMPRESSION_NONE): number {
  if (compression === COMPRESSION_LZ4) {
    const header = varintLength(contents.length)
    const limit = contents.length - (contents.length >>> 3) - header
    if (limit > 0) {
      const n = lz4CompressBlock(contents, out.subarray(at + header, at + header + limit), limit)
      if (n > 0) {
        writeVarint(out, at, contents.length)
        const size = header + n
        out[at + size] = COMPRESSION_LZ4
        writeU32(out, at + size + 1, blockChecksum(out.subarray(at, at + size + 1), TABLE_FORMAT_VERSION))
        return size + BLOCK_TRAILER_BYTES
      }
    }
  }
  contents.copy(out, at)
  out[at + contents.length] = COMPRESSION_NONE
  writeU32(out, at + contents.length + 1, blockChecksum(out.subarray(at, at + contents.length + 1), TABLE_FORMAT_VERSION))
  return contents.length + BLOCK_TRAILER_BYTES
}

/**
 * Verifies a block read with its trailer from a table of `formatVersion`;
 * returns its stored contents (a view) and compression, still compressed.
 */
export function checkStoredBlock(raw: Buffer, fileName: string, offset: number, formatVersion: number): { contents: Buffer; compression: number } {
  if (raw.length < BLOCK_TRAILER_BYTES) throw corruption('block truncated', fileName, offset)
  const n = raw.length - BLOCK_TRAILER_BYTES
  if (blockChecksum(raw.subarray(0, n + 1), formatVersion) !== readU32(raw, n + 1)) {
    throw corruption('block checksum mismatch', fileName, offset)
  }
  const compression = raw[n]
  if (compression !== COMPRESSION_NONE && compression !== COMPRESSION_LZ4) throw corruption(`unknown block compression ${compression}`, fileName, offset)
  return { contents: raw.subarray(0, n), compression }
}

/** Verifies a block read with its trailer; returns its contents: a view, or a new Buffer when it was compressed. */
export function checkBlock(raw: Buffer, fileName: string, offset: number, formatVersion: number): Buffer {
  const { contents, compression } = checkStoredBlock(raw, fileName, offset, formatVersion)
  return decodeStoredBlock(contents, compression, fileName, offset)
}

/** A verified block's contents (from checkStoredBlock) decoded: itself when raw, else a new Buffer. */
export function decodeStoredBlock(contents: Buffer, compression: number, fileName: string, offset: number): Buffer {
  if (compression === COMPRESSION_NONE) return contents
  // Corruption (a length unreadable, or more than LZ4 can expand its bytes to) before anything is allocated.
  const out = Buffer.allocUnsafe(compressedBlockRawBytes(contents, fileName, offset))
  decompressBlockInto(contents, out, fileName, offset)
  return out
}

/**
 * The raw size a compressed block's contents claim: at most 2^30 and 255
 * times the stored bytes (LZ4's largest expansion), so that a damaged length
 * is corruption before anything is allocated for it.
 */
export function compressedBlockRawBytes(contents: Buffer, fileName: string, offset: number): number {
  try {
    readVarint(contents, 0, contents.length)
  } catch {
    throw corruption('block does not decompress: its raw length is unreadable', fileName, offset)
  }
  const n = cursor.value
  if (n > MAX_RAW_BLOCK_BYTES || n > contents.length * 255) {
    throw corruption(`block does not decompress: it claims ${n} raw bytes, more than its ${contents.length} stored bytes can hold`, fileName, offset)
  }
  return n
}

/** Decompresses a compressed block's contents into `out` (exactly its raw size); a malformed block is STRATA_CORRUPTION. */
export function decompressBlockInto(contents: Buffer, out: Uint8Array, fileName: string, offset: number): void {
  readVarint(contents, 0, contents.length)
  try {
    lz4DecompressBlock(contents, out, cursor.offset, contents.length)
  } catch (err) {
    throw corruption(`block does not decompress: ${(err as Error).message}`, fileName, offset)
  }
}

/** Encodes a footer of the current format version. */
export function encodeFooter(f: Omit<Footer, 'formatVersion'>): Buffer {
  const out = Buffer.alloc(FOOTER_BYTES)
  writeU64(out, 0, f.index.offset)
  writeU32(out, 8, f.index.size)
  writeU64(out, 12, f.filter.offset)
  writeU32(out, 20, f.filter.size)
  writeU64(out, 24, f.pointIndex?.offset ?? 0)
  writeU32(out, 32, f.pointIndex?.size ?? 0)
  writeU64(out, 40, f.entryCount)
  writeU32(out, 48, TABLE_FORMAT_VERSION)
  writeU32(out, 52, checksum32(out.subarray(0, 52)))
  writeU32(out, 56, TABLE_MAGIC_LO)
  writeU32(out, 60, TABLE_MAGIC_HI)
  return out
}

/**
 * Decodes the footer at the end of `tail`, the last min(FOOTER_BYTES,
 * fileBytes) bytes of a table of `fileBytes` bytes.
 */
export function decodeFooter(tail: Buffer, fileName: string, fileBytes: number): DecodedFooter {
  if (tail.length < FOOTER_BYTES_V2) throw corruption('table shorter than its footer', fileName)
  const end = tail.length
  if (readU32(tail, end - 8) !== TABLE_MAGIC_LO || readU32(tail, end - 4) !== TABLE_MAGIC_HI) {
    throw corruption('bad table magic number', fileName)
  }
  const version = readU32(tail, end - FOOTER_TAIL_BYTES)
  if (version < OLDEST_READABLE_FORMAT_VERSION || version > TABLE_FORMAT_VERSION) throw corruption(`unsupported table format version ${version}`, fileName)
  const size = version >= 3 ? FOOTER_BYTES : FOOTER_BYTES_V2
  if (tail.length < size) throw corruption('table shorter than its footer', fileName)
  const buf = tail.subarray(end - size)
  if (checksum32(buf.subarray(0, size - 12)) !== readU32(buf, size - 12)) throw corruption('footer checksum mismatch', fileName)
  const pointIndex = version >= 3 ? { offset: readU64(buf, 24), size: readU32(buf, 32) } : undefined
  const footer: DecodedFooter = {
    index: { offset: readU64(buf, 0), size: readU32(buf, 8) },
    filter: { offset: readU64(buf, 12), size: readU32(buf, 20) },
    pointIndex: pointIndex !== undefined && pointIndex.size > 0 ? pointIndex : undefined,
    entryCount: readU64(buf, version >= 3 ? 40 : 24),
    formatVersion: version,
    dataEnd: fileBytes - size,
  }
  for (const h of [footer.index, footer.filter, footer.pointIndex]) {
    if (h !== undefined && h.offset + h.size + BLOCK_TRAILER_BYTES > footer.dataEnd) throw corruption('block handle past end of table', fileName)
  }
  return footer
}
