/**
 * Finding a table's data blocks without its index, for a table whose footer
 * or index block cannot be read: where the data area ends (from a footer read
 * without trusting its checksum), and a scan of the bytes for blocks whose
 * trailer verifies, stepping over damaged ones where a verified block follows.
 */
import { readU32, readU64 } from '../../base/coding.js'
import { BLOCK_TRAILER_BYTES, checkBlock, type BlockHandle } from '../../sstable/table-format.js'

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

/** A data block found by scanning (no index to say where blocks are). */
export interface FoundBlock extends BlockHandle {
  contents: Buffer
}

/** What scanning a table's bytes for data blocks found. */
export interface BlockScan {
  blocks: FoundBlock[]
  /** Byte ranges [offset, end) between blocks that held no verifiable block. */
  lost: Array<{ offset: number; end: number }>
  /** The format version whose checksum matched (undefined when no block was found). */
  formatVersion: number | undefined
}

/**
 * Finds the data blocks of a table without its index. Blocks lie back to back
 * from offset 0, each followed by its trailer; a block's end is found by
 * trying every end whose tail reads as a block (restart array: first restart
 * 0, offsets increasing inside the entries; the hash index fits) and whose
 * trailer's checksum matches. `dataEnd` bounds the data area when known (the
 * filter block starts there): then a damaged block is stepped over when a
 * verified block (or the end of the data) follows one of its plausible ends.
 * Without it the scan stops at the first block it cannot verify, which is the
 * filter block in an undamaged table.
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
      scan.blocks.push({ offset: start, size: found.end - start, contents: buf.subarray(start, found.end) })
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
      if (!plausibleBlockEnd(buf, start, e)) continue
      const after = e + BLOCK_TRAILER_BYTES
      if (after === limit || findVerifiedBlock(buf, after, limit, scan.formatVersion !== undefined ? [scan.formatVersion] : versions) !== undefined) {
        next = after
        break
      }
    }
    scan.lost.push({ offset: start, end: next < 0 ? limit : next })
    if (next < 0) break
    start = next
  }
  return scan
}

/** The smallest end e such that [start, e) is a block whose trailer verifies. */
function findVerifiedBlock(buf: Buffer, start: number, limit: number, versions: readonly number[]): { end: number; version: number } | undefined {
  for (let e = start + 4; e + BLOCK_TRAILER_BYTES <= limit; e++) {
    if (buf[e] !== 0 || !plausibleBlockEnd(buf, start, e)) continue
    for (const version of versions) {
      try {
        checkBlock(buf.subarray(start, e + BLOCK_TRAILER_BYTES), 'table', start, version)
        return { end: e, version }
      } catch {
        // Not this version's checksum, or not a block end.
      }
    }
  }
  return undefined
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
