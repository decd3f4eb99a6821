/**
 * Finding a table's data blocks without its index, for a table whose footer
 * or index block cannot be read: where the data area ends (from a footer read
 * without trusting its checksum), and a scan of the bytes for blocks whose
 * trailer verifies, raw or LZ4-compressed, stepping over damaged ones where a
 * verified block follows.
 */
import { readU32, readU64 } from '../../base/coding.js'
import { BLOCK_TRAILER_BYTES, COMPRESSION_LZ4, COMPRESSION_NONE, checkBlock, type BlockHandle } from '../../sstable/table-format.js'
import { findingOf } from './output.js'
import { decodeDataBlock, type DataBlock } from './table-file.js'

/**
 * Where the data blocks end, for a table whose footer does not verify: the
 * filter block's offset from a footer read without trusting its checksum,
 * when the filter block it names verifies (so the handle is right). Undefined
 * when that cannot be told.
 */
export function lenientDataEnd(buf: Buffer): { dataEnd: number; formatVersion: number } | undefined {
  const n = buf.length
  for (const [size, version] of [[64, 3], [48, 2], [48, 1]] as const) {
    if (n < size) continue
    const f = n - size
    if (readU32(buf, n - 16) !== version) continue
    const filterOffset = readU64(buf, f + 12)
    const filterSize = readU32(buf, f + 20)
    if (filterOffset + filterSize + BLOCK_TRAILER_BYTES > f) continue
    try {
      checkBlock(buf.subarray(filterOffset, filterOffset + filterSize + BLOCK_TRAILER_BYTES), 'table', filterOffset, version)
      return { dataEnd: filterOffset, formatVersion: version }
    } catch {
      // Not the filter: the handle is damaged too.
    }
  }
  return undefined
}

/** A data block found by scanning (no index to say where blocks are): `size` is its stored size, `contents` its raw bytes. */
export interface FoundBlock extends BlockHandle, DataBlock {}

/** What scanning a table's bytes for data blocks found. */
export interface BlockScan {
  blocks: FoundBlock[]
  /**
   * Byte ranges [offset, end) between blocks that held no verifiable block;
   * `why`: what is wrong with a range that is one block whose checksum
   * matches (an LZ4 block that does not decompress).
   */
  lost: Array<{ offset: number; end: number; why?: string }>
  /** The format version whose checksum matched (undefined when no block was found). */
  formatVersion: number | undefined
}

/**
 * Finds the data blocks of a table without its index. Blocks lie back to back
 * from offset 0, each followed by its trailer; a block's end is found by
 * trying every end whose trailer's checksum matches and whose block reads as
 * a data block: a raw block (compression byte 0) whose tail reads as one
 * (restart array: first restart 0, offsets increasing inside the entries; the
 * hash index fits), or an LZ4 block (compression byte 1) whose size fits the
 * raw size it starts with, whose last bytes (literals in any LZ4 block) read
 * as a block's tail, and which decompresses into contents that pass the raw
 * block's test. `dataEnd` bounds the data area when known (the filter block
 * starts there): then a damaged block is stepped over when a verified block
 * (or the end of the data) follows one of its plausible ends. Without it the
 * scan stops at the first block it cannot verify, which is the filter block
 * in an undamaged table.
 */
export function scanDataBlocks(buf: Buffer, dataEnd: number | undefined, formatVersion: number | undefined): BlockScan {
  const limit = dataEnd ?? buf.length
  const versions = formatVersion !== undefined ? [formatVersion] : [3, 1]
  const scan: BlockScan = { blocks: [], lost: [], formatVersion }
  let start = 0
  while (start < limit) {
    const found = findVerifiedBlock(buf, start, limit, scan.formatVersion !== undefined ? [scan.formatVersion] : versions)
    if (found !== undefined) {
      scan.formatVersion ??= found.version
      scan.blocks.push({ offset: start, size: found.end - start, ...found.block })
      start = found.end + BLOCK_TRAILER_BYTES
      continue
    }
    if (dataEnd === undefined) {
      if (start < limit) scan.lost.push({ offset: start, end: limit })
      break
    }
    // A damaged block: step to a plausible end of it that a verified block (or the data's end) follows.
    let next = -1
    for (let e = start + 4; e + BLOCK_TRAILER_BYTES <= limit; e++) {
      if (!plausibleBlockEnd(buf, start, e) && !(buf[e] === COMPRESSION_LZ4 && plausibleLz4Tail(buf, e, 255 * (e - start)))) continue
      const after = e + BLOCK_TRAILER_BYTES
      if (after === limit || findVerifiedBlock(buf, after, limit, scan.formatVersion !== undefined ? [scan.formatVersion] : versions) !== undefined) {
        next = after
        break
      }
    }
    scan.lost.push({ offset: start, end: next < 0 ? limit : next, why: next < 0 ? undefined : whyNotABlock(buf, start, next, scan.formatVersion ?? versions[0]) })
    if (next < 0) break
    start = next
  }
  return scan
}

/**
 * The smallest end e such that [start, e) is a data block whose trailer
 * verifies and whose contents (decompressed, for an LZ4 block) read as a
 * block. A compressed block whose checksum matches but which does not
 * decompress is not one: the scan treats it as damaged.
 */
function findVerifiedBlock(buf: Buffer, start: number, limit: number, versions: readonly number[]): { end: number; version: number; block: DataBlock } | undefined {
  const lz4 = lz4Bounds(buf, start)
  for (let e = start + 4; e + BLOCK_TRAILER_BYTES <= limit; e++) {
    const compression = buf[e]
    if (compression === COMPRESSION_NONE) {
      if (!plausibleBlockEnd(buf, start, e)) continue
    } else if (compression === COMPRESSION_LZ4) {
      if (lz4 === undefined || e < lz4.minEnd || e > lz4.maxEnd || !plausibleLz4Tail(buf, e, lz4.rawBytes)) continue
    } else continue
    for (const version of versions) {
      let block: DataBlock
      try {
        block = decodeDataBlock(buf.subarray(start, e + BLOCK_TRAILER_BYTES), 'table', start, version)
      } catch {
        continue // Not this version's checksum, not a block end, or an LZ4 block that does not decompress.
      }
      if (compression === COMPRESSION_LZ4 && !plausibleBlockEnd(block.contents, 0, block.contents.length)) break
      return { end: e, version, block }
    }
  }
  return undefined
}

/** Why [start, end), a block with its trailer whose checksum matches, is not a data block (undefined: its checksum does not match). */
function whyNotABlock(buf: Buffer, start: number, end: number, formatVersion: number): string | undefined {
  try {
    const block = decodeDataBlock(buf.subarray(start, end), 'table', start, formatVersion)
    return plausibleBlockEnd(block.contents, 0, block.contents.length) ? undefined : 'its contents do not read as a data block'
  } catch (err) {
    const message = findingOf(err, 'table').message
    return /^block (checksum mismatch|truncated)$/.test(message) ? undefined : message
  }
}

/**
 * Where an LZ4 block starting at `start` may end, from the raw size its
 * contents start with (`varint rawLength`): a block is stored compressed only
 * when that saves at least 1/8 of it (src/sstable/table-format.ts), and an
 * LZ4 block decodes to at most 255 bytes per byte. Undefined when no raw size
 * reads there.
 */
function lz4Bounds(buf: Buffer, start: number): { rawBytes: number; minEnd: number; maxEnd: number } | undefined {
  let rawBytes = 0
  let scale = 1
  for (let i = 0; i < 5; i++) {
    if (start + i >= buf.length) return undefined
    const b = buf[start + i]
    rawBytes += (b & 0x7f) * scale
    if (b < 0x80) {
      const header = i + 1
      return { rawBytes, minEnd: start + header + Math.ceil(rawBytes / 255), maxEnd: start + rawBytes - (rawBytes >>> 3) }
    }
    scale *= 128
  }
  return undefined
}

/**
 * Whether the stored bytes before `e` can end an LZ4 block of at most
 * `rawBytes` raw bytes: an LZ4 block ends with at least 5 literals (its
 * format's rule), so its last 4 bytes are the raw block's last u32, the
 * restart count (with the hash index flag): at least 1, and the restart array
 * fits.
 */
function plausibleLz4Tail(buf: Buffer, e: number, rawBytes: number): boolean {
  const count = readU32(buf, e - 4) & 0x7fff_ffff
  return count > 0 && 4 * count + 4 <= rawBytes
}

/** Whether [start, e) ends like a block: restart count, restart offsets and hash index consistent. */
function plausibleBlockEnd(buf: Buffer, start: number, e: number): boolean {
  if (e - start < 5) return false
  const tail = readU32(buf, e - 4)
  let end = e - 4
  if (tail >= 0x8000_0000) {
    if (end - start < 2) return false
    const m = buf[end - 2] | (buf[end - 1] << 8)
    end -= 2 + 3 * m
    if (m === 0 || end < start) return false
  }
  const count = tail & 0x7fff_ffff
  if (count === 0 || count * 4 >= end - start) return false
  const restarts = end - count * 4
  const area = restarts - start
  if (readU32(buf, restarts) !== 0) return false
  let prev = 0
  for (let i = 1; i < count; i++) {
    const r = readU32(buf, restarts + 4 * i)
    if (r <= prev || r >= area) return false
    prev = r
  }
  return true
}
