/**
 * Blob files as `strata check` and `strata repair` read them: each read whole
 * and verified (`scanBlobFile`: header, every record header and value
 * checksum, the footer's totals, and what the manifest records), its verified
 * records indexed by value offset, and a table's blob references checked
 * against that index (a reference must name a record's value, with its length
 * and checksum, of a blob file the catalog holds).
 */
import * as path from 'node:path'
import { blobFileName } from '../../base/file-names.js'
import { BLOB_FOOTER_BYTES, BLOB_HEADER_BYTES, scanBlobFile, type BlobFileTotals } from '../../blob/blob-format.js'
import { decodeBlobReference, type BlobReference } from '../../blob/blob-reference.js'
import type { BlobFileMeta } from '../../manifest/blob-file-meta.js'
import { readExactly, type FileSystem } from '../../vfs/file-system.js'
import { isMissing } from './database-directory.js'
import { findingOf, hex32, type Finding } from './output.js'

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

/**
 * The blob files references are checked against (`strata check`): those the
 * manifest lists (or, without a usable manifest, those in the directory),
 * each read whole by `inspectBlobFile`.
 */
export interface BlobCatalog {
  files: ReadonlyMap<number, BlobFileInspection>
  /** Whether `files` is what the manifest lists (else: the files in the directory). */
  fromManifest: boolean
}

/** What a table's inspection counts of its blob references (a TableInspection). */
export interface BlobReferenceCounts {
  /** The table's file name (in messages). */
  name: string
  /** References read, per blob file number. */
  blobReferences: Map<number, number>
  /** References into blob files that were missing, per file. */
  blobFilesMissing: Map<number, number>
}

/**
 * Checks one blob reference against the catalog (counting it in
 * `out.blobReferences`); returns the problem, if any. Without a catalog only
 * its decoding is checked. A reference into the damaged part of a blob file
 * is not a problem of the table's (the blob file's damage is reported).
 */
export function checkBlobReference(value: Buffer, blobs: BlobCatalog | undefined, ref: BlobReference, out: BlobReferenceCounts): { kind: string; message: string } | undefined {
  try {
    decodeBlobReference(value, out.name, ref)
  } catch {
    return { kind: 'blob-ref', message: `malformed blob reference (${value.length} bytes: 0x${value.toString('hex')})` }
  }
  out.blobReferences.set(ref.fileNumber, (out.blobReferences.get(ref.fileNumber) ?? 0) + 1)
  if (blobs === undefined) return undefined
  const blobName = blobFileName(ref.fileNumber)
  const what = `references ${blobName} at offset ${ref.valueOffset} (${ref.valueLength} bytes)`
  const b = blobs.files.get(ref.fileNumber)
  if (b === undefined) return { kind: 'blob-ref', message: `${what}: ${blobs.fromManifest ? 'the manifest lists no such blob file' : 'no such blob file in the directory'}` }
  if (b.missing) {
    // One problem per missing file, after the table was read.
    out.blobFilesMissing.set(ref.fileNumber, (out.blobFilesMissing.get(ref.fileNumber) ?? 0) + 1)
    return undefined
  }
  if (ref.valueOffset < BLOB_HEADER_BYTES || ref.valueOffset + ref.valueLength > b.fileBytes - BLOB_FOOTER_BYTES) {
    return { kind: 'blob-ref', message: `${what}: not inside the records of the blob file (${b.fileBytes} bytes)` }
  }
  if (ref.valueOffset >= b.verifiedEnd) return undefined
  const r = b.records.find(ref.valueOffset)
  if (r < 0) return { kind: 'blob-ref', message: `${what}: no record's value starts there` }
  if (b.records.valueLength(r) !== ref.valueLength) return { kind: 'blob-ref', message: `${what}: the record's value there is ${b.records.valueLength(r)} bytes` }
  if (b.records.checksum(r) !== ref.checksum) {
    return { kind: 'blob-ref', message: `${what}: checksum 0x${hex32(ref.checksum)}, the record's value has 0x${hex32(b.records.checksum(r))}` }
  }
  return undefined
}
