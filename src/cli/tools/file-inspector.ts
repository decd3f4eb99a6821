/**
 * Reading a database's files piece by piece, for the inspection tools. The
 * engine's readers stop at the first damage (that is what a database must
 * do); these keep going: every framed record with every damaged range between
 * them, a table's footer, index, filter, point index and data blocks one by
 * one, a blob file's records (verified whole, or walked past damage), and a
 * manifest's edits (tables and blob files) applied leniently. Everything here only reads,
 * through the FileSystem seam, with files opened read-only.
 */
import * as path from 'node:path'
import { readU32, readU64 } from '../../base/coding.js'
import { KIND_BLOB, KIND_DELETE, KIND_PUT } from '../../base/entry.js'
import { StrataError, ioError } from '../../base/errors.js'
import { CURRENT_FILE, MARKER_FILE, blobFileName, parseFileName } from '../../base/file-names.js'
import {
  BLOB_FOOTER_BYTES,
  BLOB_FORMAT_VERSION,
  BLOB_HEADER_BYTES,
  BLOB_MAGIC,
  BLOB_RECORD_HEADER_BYTES,
  blobValueChecksum,
  checkBlobHeader,
  encodeBlobFooter,
  encodeRecordHeader,
  scanBlobFile,
  type BlobFileTotals,
} from '../../blob/blob-format.js'
import type { BlobFileMeta } from '../../manifest/blob-file-meta.js'
import { decodeEdit, type TableVersionEdit } from '../../manifest/table-version-edit.js'
import type { TableMeta } from '../../manifest/table-meta.js'
import { BlockIterator } from '../../sstable/block-iterator.js'
import { BLOCK_TRAILER_BYTES, FOOTER_BYTES, checkBlock, decodeFooter, decodeIndexHandle, type BlockHandle, type DecodedFooter } from '../../sstable/table-format.js'
import { readExactly, type File, type FileSystem } from '../../vfs/file-system.js'
import { RECORD_HEADER_BYTES, headerOfTornAppend, intactRecordLength, recordHeaderValid } from '../../wal/record-framing.js'
import { UsageError, findingOf, type Finding } from './output.js'

// ---- errors ------------------------------------------------------------------

/** True for a file-system error saying the file does not exist. */
/** Throws UsageError unless `dir` is an existing directory (the tools' argument check). */
export function requireDirectory(fs: FileSystem, dir: string): void {
  let isDir: boolean
  try {
    isDir = fs.stat(dir).isDirectory
  } catch (err) {
    throw new UsageError(isMissing(err) ? `${dir} does not exist` : `cannot stat ${dir}: ${(err as Error).message}`)
  }
  if (!isDir) throw new UsageError(`${dir} is not a directory`)
}

export function isMissing(err: unknown): boolean {
  const e = err instanceof StrataError && err.cause !== undefined ? err.cause : err
  return (e as NodeJS.ErrnoException)?.code === 'ENOENT'
}

// ---- internal-key order --------------------------------------------------------

/** Internal order of (key, sequence) pairs: key ascending, then sequence descending. */
export function compareInternalKeys(aKey: Uint8Array, aSeq: number, bKey: Uint8Array, bSeq: number): number {
  const c = Buffer.compare(aKey, bKey)
  return c !== 0 ? c : bSeq - aSeq
}

// ---- the directory --------------------------------------------------------------

/** The files of a database directory, by kind (numbers ascending). */
export interface DirectoryListing {
  names: string[]
  tables: number[]
  /** Blob files (`NNNNNN.blob`). */
  blobs: number[]
  wals: number[]
  manifests: number[]
  hasCurrent: boolean
  hasMarker: boolean
  /** Names stratadb does not own (a `lost` folder, strays). */
  others: string[]
}

export function listDirectory(fs: FileSystem, dir: string): DirectoryListing {
  let names: string[]
  try {
    names = fs.readdir(dir).sort()
  } catch (err) {
    throw ioError(`cannot list ${dir}`, err)
  }
  const out: DirectoryListing = { names, tables: [], blobs: [], wals: [], manifests: [], hasCurrent: false, hasMarker: false, others: [] }
  for (const name of names) {
    const f = parseFileName(name)
    if (f === undefined) out.others.push(name)
    else if (f.kind === 'table') out.tables.push(f.number)
    else if (f.kind === 'blob') out.blobs.push(f.number)
    else if (f.kind === 'wal') out.wals.push(f.number)
    else if (f.kind === 'manifest') out.manifests.push(f.number)
    else if (f.kind === 'current') out.hasCurrent = true
    else if (name === MARKER_FILE) out.hasMarker = true
  }
  for (const list of [out.tables, out.blobs, out.wals, out.manifests]) list.sort((a, b) => a - b)
  return out
}

/** Reads CURRENT: the manifest number it names, `missing` when there is none, or the problem with it. */
export function readCurrent(fs: FileSystem, dir: string): { manifestNumber: number } | { missing: true } | { problem: Finding } {
  let text: string
  try {
    text = fs.readFile(path.join(dir, CURRENT_FILE)).toString('latin1')
  } catch (err) {
    if (isMissing(err)) return { missing: true }
    return { problem: { file: CURRENT_FILE, message: `cannot read: ${(err as Error).message}` } }
  }
  const m = /^MANIFEST-(\d{6,})\n$/.exec(text)
  if (m === null) return { problem: { file: CURRENT_FILE, offset: 0, message: `does not name a manifest (holds ${JSON.stringify(text.slice(0, 40))})` } }
  return { manifestNumber: Number(m[1]) }
}

// ---- framed records (WAL and manifest) -------------------------------------------

/** An intact record: [offset, end) in the file, payload = bytes after the 12-byte header. */
export interface FramedRecord {
  offset: number
  end: number
  payload: Buffer
}

/**
 * A range of bytes that is not intact records:
 *  - 'torn': an append cut short at the end of the file (what a crash leaves);
 *  - 'damaged-tail': damage with no intact record after it (garbage or a bad last record);
 *  - 'damaged': damage followed by an intact record at `end`.
 */
export interface DamagedRange {
  offset: number
  end: number
  kind: 'torn' | 'damaged-tail' | 'damaged'
  /** Whether the first bytes are a header whose own checksum matches (a complete record with a bad payload when it fits the file). */
  headerValid: boolean
}

export interface RecordWalk {
  records: FramedRecord[]
  damage: DamagedRange[]
}

/**
 * Splits a log into its intact records and the damaged ranges between them,
 * going past damage the way `scanRecords` decides about it: after a damaged
 * record whose header is valid, the search for the next intact record starts
 * at its claimed end, else at the next byte; an append cut short ends the log.
 */
export function walkRecords(buf: Buffer): RecordWalk {
  const records: FramedRecord[] = []
  const damage: DamagedRange[] = []
  let offset = 0
  while (offset < buf.length) {
    const length = intactRecordLength(buf, offset)
    if (length > 0) {
      records.push({ offset, end: offset + length, payload: buf.subarray(offset + RECORD_HEADER_BYTES, offset + length) })
      offset += length
      continue
    }
    const headerValid = recordHeaderValid(buf, offset)
    if (headerOfTornAppend(buf, offset)) {
      damage.push({ offset, end: buf.length, kind: 'torn', headerValid })
      break
    }
    const from = headerValid ? offset + RECORD_HEADER_BYTES + readU32(buf, offset) : offset + 1
    let next = -1
    for (let p = from; p + RECORD_HEADER_BYTES <= buf.length; p++) {
      if (intactRecordLength(buf, p) > 0) {
        next = p
        break
      }
    }
    if (next < 0) {
      damage.push({ offset, end: buf.length, kind: 'damaged-tail', headerValid })
      break
    }
    damage.push({ offset, end: next, kind: 'damaged', headerValid })
    offset = next
  }
  return { records, damage }
}

// ---- manifests ------------------------------------------------------------------------

/** Where a table sits after replaying a manifest. */
export interface Placement {
  level: number
  meta: TableMeta
}

/** A manifest replayed leniently: every intact record decoded and applied, every problem kept. */
export interface ManifestReplay {
  walk: RecordWalk
  edits: Array<{ offset: number; bytes: number; edit?: TableVersionEdit; problem?: Finding }>
  /** Tables by number after every edit that decodes was applied. */
  tables: Map<number, Placement>
  /**
   * Blob files by number after every edit that decodes was applied (tags 6
   * and 7): a file leaves when its garbage count reaches its value count.
   */
  blobs: Map<number, BlobFileMeta>
  /** Every blob file some edit added (also those that left the state since). */
  blobsAdded: Set<number>
  logNumber: number
  nextFileNumber: number
  lastSequence: number
  /** Every table number some edit deleted. */
  deleted: Set<number>
  /**
   * Edits that decode but do not apply (deleting a table the level does not
   * hold, adding one twice; adding a blob file twice, garbage in a blob file
   * the state does not hold or more garbage than values).
   */
  problems: Finding[]
}

export function replayManifest(buf: Buffer, name: string): ManifestReplay {
  const walk = walkRecords(buf)
  const out: ManifestReplay = { walk, edits: [], tables: new Map(), blobs: new Map(), blobsAdded: new Set(), logNumber: 0, nextFileNumber: 0, lastSequence: 0, deleted: new Set(), problems: [] }
  for (const r of walk.records) {
    let edit: TableVersionEdit
    try {
      edit = decodeEdit(r.payload, name)
    } catch (err) {
      out.edits.push({ offset: r.offset, bytes: r.end - r.offset, problem: findingOf(err, name, r.offset) })
      continue
    }
    out.edits.push({ offset: r.offset, bytes: r.end - r.offset, edit })
    for (const d of edit.deleted) {
      out.deleted.add(d.number)
      const t = out.tables.get(d.number)
      if (t === undefined || t.level !== d.level) {
        out.problems.push({ file: name, offset: r.offset, message: `edit deletes table ${d.number} from level ${d.level}, which does not hold it` })
      }
      if (t !== undefined && t.level === d.level) out.tables.delete(d.number)
    }
    for (const a of edit.added) {
      if (out.tables.has(a.table.number)) {
        out.problems.push({ file: name, offset: r.offset, message: `edit adds table ${a.table.number} to level ${a.level}, but level ${out.tables.get(a.table.number)!.level} already holds it` })
      }
      out.tables.set(a.table.number, { level: a.level, meta: a.table })
    }
    for (const b of edit.blobsAdded ?? []) {
      if (out.blobsAdded.has(b.number)) out.problems.push({ file: name, offset: r.offset, message: `edit adds blob file ${blobFileName(b.number)}, which an earlier edit added` })
      out.blobsAdded.add(b.number)
      out.blobs.set(b.number, b)
    }
    for (const g of edit.blobGarbage ?? []) {
      const b = out.blobs.get(g.number)
      if (b === undefined) {
        out.problems.push({ file: name, offset: r.offset, message: `edit counts garbage in blob file ${blobFileName(g.number)}, which the state does not hold` })
        continue
      }
      const next = { ...b, garbageCount: b.garbageCount + g.count, garbageBytes: b.garbageBytes + g.bytes }
      if (next.garbageCount > next.valueCount || next.garbageBytes > next.valueBytes) {
        out.problems.push({
          file: name,
          offset: r.offset,
          message: `edit counts more garbage in blob file ${blobFileName(g.number)} (${next.garbageCount} values, ${next.garbageBytes} bytes) than it holds (${next.valueCount} values, ${next.valueBytes} bytes)`,
        })
      }
      if (next.garbageCount >= next.valueCount) out.blobs.delete(g.number)
      else out.blobs.set(g.number, next)
    }
    if (edit.logNumber !== undefined) out.logNumber = edit.logNumber
    if (edit.nextFileNumber !== undefined) out.nextFileNumber = edit.nextFileNumber
    if (edit.lastSequence !== undefined) out.lastSequence = edit.lastSequence
  }
  return out
}

// ---- tables --------------------------------------------------------------------------

/** One entry of a table's index block: the last key of data block i and where the block is. */
export interface IndexEntry {
  lastKey: Buffer
  sequence: number
  handle: BlockHandle
}

/** Receives a table entry; key and value are views valid only during the call. */
export type EntryVisitor = (key: Buffer, sequence: number, kind: number, value: Buffer) => void

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

  /** Reads the block at `handle` with its trailer and verifies it; returns its contents. */
  readBlock(handle: BlockHandle, formatVersion: number): Buffer {
    const raw = this.read(handle.offset, handle.size + BLOCK_TRAILER_BYTES)
    return checkBlock(raw, this.name, handle.offset, formatVersion)
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

/**
 * Visits every entry of a verified block, in block order. The block is
 * decoded once without visiting, so that a block that does not decode (a
 * STRATA_CORRUPTION is thrown) visits nothing. Returns the entry count.
 */
export function forEachBlockEntry(contents: Buffer, name: string, visit: EntryVisitor): number {
  const it = new BlockIterator(contents, name)
  let n = 0
  for (it.seekToFirst(); it.valid(); it.next()) n++
  for (it.seekToFirst(); it.valid(); it.next()) visit(it.key(), it.sequence(), it.kind(), it.value())
  return n
}

/** True when the kind is a delete. */
export const isDelete = (kind: number): boolean => kind === KIND_DELETE

/** The name of an entry kind of a table or WAL: `put`, `delete` or `blob` (a put whose value is in a blob file). */
export function kindName(kind: number): 'put' | 'delete' | 'blob' | `kind ${number}` {
  if (kind === KIND_PUT) return 'put'
  if (kind === KIND_DELETE) return 'delete'
  if (kind === KIND_BLOB) return 'blob'
  return `kind ${kind}`
}

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

// ---- blob files ------------------------------------------------------------------------

/**
 * The records of a blob file by value offset (what a blob reference names),
 * in increasing offset order: typed arrays, 16 bytes a record, so that a
 * check holds the records of every blob file while it reads the tables.
 */
export class BlobRecordIndex {
  private offsets = new Float64Array(64)
  private lengths = new Uint32Array(64)
  private checksums = new Uint32Array(64)
  count = 0

  /** Appends a record; value offsets must increase. */
  push(valueOffset: number, valueLength: number, checksum: number): void {
    if (this.count === this.offsets.length) {
      const grow = <T extends Float64Array | Uint32Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2)
        b.set(a)
        return b
      }
      this.offsets = grow(this.offsets, (n) => new Float64Array(n))
      this.lengths = grow(this.lengths, (n) => new Uint32Array(n))
      this.checksums = grow(this.checksums, (n) => new Uint32Array(n))
    }
    this.offsets[this.count] = valueOffset
    this.lengths[this.count] = valueLength
    this.checksums[this.count] = checksum
    this.count++
  }

  /** The index of the record whose value starts at `valueOffset`, or -1. */
  find(valueOffset: number): number {
    let lo = 0
    let hi = this.count - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const o = this.offsets[mid]
      if (o === valueOffset) return mid
      if (o < valueOffset) lo = mid + 1
      else hi = mid - 1
    }
    return -1
  }

  valueOffset(i: number): number {
    return this.offsets[i]
  }

  valueLength(i: number): number {
    return this.lengths[i]
  }

  checksum(i: number): number {
    return this.checksums[i]
  }
}

/** What reading a blob file whole (`scanBlobFile`) found. */
export interface BlobFileInspection {
  name: string
  number: number
  /** The file does not exist. */
  missing: boolean
  fileBytes: number
  /** Errors, with offsets where known (the scan stops at the first damage). */
  problems: Finding[]
  /** The footer's totals, when the whole file verified. */
  totals?: BlobFileTotals
  /** Records whose header and value verified: every record of an intact file, those before the damage of a damaged one. */
  records: BlobRecordIndex
  /** Bytes [0, verifiedEnd) were verified: every value starting below it is in `records`. */
  verifiedEnd: number
}

/** True when the blob file read back whole and matched what was expected. */
export function isIntactBlob(b: BlobFileInspection): boolean {
  return !b.missing && b.problems.length === 0
}

/** Opens `file` read-only and reads it whole; the errno error (ENOENT for a missing file) is thrown as it comes. */
export function readWholeFile(fs: FileSystem, file: string): Buffer {
  const handle = fs.open(file, 'r')
  try {
    return readExactly(handle, handle.size(), 0)
  } finally {
    handle.close()
  }
}

/**
 * Reads blob file `number` of `dir` whole and verifies it with `scanBlobFile`
 * (the header, every record header and value checksum, the footer's totals);
 * with `expect` (what the manifest says), also its size and totals. Files are
 * opened through `fs` (a check pins them: engine/pinned-table-files.ts).
 */
export function inspectBlobFile(fs: FileSystem, dir: string, number: number, expect?: BlobFileMeta): BlobFileInspection {
  const name = blobFileName(number)
  const out: BlobFileInspection = { name, number, missing: false, fileBytes: 0, problems: [], records: new BlobRecordIndex(), verifiedEnd: 0 }
  let buf: Buffer
  try {
    buf = readWholeFile(fs, path.join(dir, name))
  } catch (err) {
    if (isMissing(err)) out.missing = true
    else out.problems.push({ file: name, message: `cannot read: ${(err as Error).message}` })
    return out
  }
  out.fileBytes = buf.length
  if (expect !== undefined && buf.length !== expect.fileBytes) {
    out.problems.push({ file: name, message: `the file is ${buf.length} bytes, the manifest says ${expect.fileBytes}` })
  }
  out.verifiedEnd = Math.min(buf.length, BLOB_HEADER_BYTES)
  try {
    out.totals = scanBlobFile(buf, name, (r) => {
      out.records.push(r.valueOffset, r.value.length, r.checksum)
      out.verifiedEnd = r.valueOffset + r.value.length
    })
    out.verifiedEnd = buf.length
  } catch (err) {
    out.problems.push(findingOf(err, name))
  }
  if (expect !== undefined && out.totals !== undefined && (out.totals.recordCount !== expect.valueCount || out.totals.valueBytes !== expect.valueBytes)) {
    out.problems.push({
      file: name,
      offset: buf.length - BLOB_FOOTER_BYTES,
      message: `the footer counts ${out.totals.recordCount} values of ${out.totals.valueBytes} bytes, the manifest says ${expect.valueCount} of ${expect.valueBytes}`,
    })
  }
  return out
}

/** One record found by `walkBlobFile`; key and value are views into the file's bytes. */
export interface WalkedBlobRecord {
  recordOffset: number
  valueOffset: number
  key: Buffer
  value: Buffer
  /** The checksum the record header carries (a reference carries the same). */
  checksum: number
  /** Whether the value's bytes match it. */
  valueOk: boolean
}

/** A blob file read record by record, going past damage (for `strata dump`). */
export interface BlobWalk {
  /** Problems with the header, the footer and the records, in file order. */
  problems: Finding[]
  version?: number
  /** The footer's totals when it verifies. */
  footer?: BlobFileTotals
  /** Offset of the footer (the last 32 bytes). */
  footerOffset: number
  /** Records whose header verifies, in file order. */
  records: WalkedBlobRecord[]
  /** Ranges between records that hold no verifiable record header. */
  lost: Array<{ offset: number; end: number }>
}

/**
 * Walks a blob file's bytes record by record, as `scanBlobFile` checks them,
 * but goes on past damage: a value whose checksum does not match is kept
 * (marked) and the walk goes on after it; after a record header that does
 * not verify, it looks for the next offset where one does. The records are
 * taken to end where the footer (the last 32 bytes) starts.
 */
export function walkBlobFile(buf: Buffer, name: string): BlobWalk {
  const out: BlobWalk = { problems: [], footerOffset: Math.max(BLOB_HEADER_BYTES, buf.length - BLOB_FOOTER_BYTES), records: [], lost: [] }
  try {
    checkBlobHeader(buf, name)
    out.version = BLOB_FORMAT_VERSION
  } catch (err) {
    out.problems.push(prefixFinding('header', findingOf(err, name, 0)))
    if (buf.length >= 12 && BLOB_MAGIC.equals(buf.subarray(0, 8))) out.version = readU32(buf, 8)
  }
  const footerAt = out.footerOffset
  if (buf.length < BLOB_HEADER_BYTES + BLOB_FOOTER_BYTES) {
    out.problems.push({ file: name, offset: buf.length, message: `the file is ${buf.length} bytes: too short for a header and a footer` })
  } else {
    const footer = buf.subarray(footerAt)
    let totals: BlobFileTotals | undefined
    try {
      totals = { recordCount: readU64(footer, 0), valueBytes: readU64(footer, 8) }
    } catch {
      // Not a footer: its counts are out of range.
    }
    if (totals !== undefined && encodeBlobFooter(totals).equals(footer)) out.footer = totals
    else out.problems.push({ file: name, offset: footerAt, message: 'footer: damaged or missing (file not finished?)' })
  }
  const headerAt = (o: number): WalkedBlobRecord | undefined => {
    if (o + BLOB_RECORD_HEADER_BYTES > footerAt) return undefined
    const keyLength = readU32(buf, o)
    const valueLength = readU32(buf, o + 4)
    const keyAt = o + BLOB_RECORD_HEADER_BYTES
    if (keyAt + keyLength + valueLength > footerAt) return undefined
    const key = buf.subarray(keyAt, keyAt + keyLength)
    const checksum = readU32(buf, o + 8)
    if (!encodeRecordHeader(key, valueLength, checksum).subarray(12, 16).equals(buf.subarray(o + 12, o + 16))) return undefined
    const value = buf.subarray(keyAt + keyLength, keyAt + keyLength + valueLength)
    return { recordOffset: o, valueOffset: keyAt + keyLength, key, value, checksum, valueOk: blobValueChecksum(value) === checksum }
  }
  let o = BLOB_HEADER_BYTES
  while (o < footerAt) {
    const r = headerAt(o)
    if (r !== undefined) {
      out.records.push(r)
      if (!r.valueOk) out.problems.push({ file: name, offset: r.valueOffset, message: `record at offset ${r.recordOffset}: blob value checksum mismatch` })
      o = r.valueOffset + r.value.length
      continue
    }
    let next = o + 1
    while (next < footerAt && headerAt(next) === undefined) next++
    out.lost.push({ offset: o, end: next })
    out.problems.push({ file: name, offset: o, message: `no verifiable record header in bytes ${o}..${next}` })
    o = next
  }
  if (out.footer !== undefined) {
    const values = out.records.reduce((n, r) => n + r.value.length, 0)
    if (out.lost.length === 0 && (out.footer.recordCount !== out.records.length || out.footer.valueBytes !== values)) {
      out.problems.push({ file: name, offset: footerAt, message: `the footer says ${out.footer.recordCount} records of ${out.footer.valueBytes} bytes, the file holds ${out.records.length} of ${values}` })
    }
  }
  return out
}

function prefixFinding(what: string, f: Finding): Finding {
  return { ...f, message: `${what}: ${f.message}` }
}
