/**
 * A blob file walked record by record for `strata dump`: as `scanBlobFile`
 * checks it, but going on past damage. A value whose checksum does not match
 * is kept (marked), a range with no verifiable record header is skipped to
 * the next offset where one verifies, and the header and footer are read on
 * their own, so that everything that can be shown is.
 */
import { readU32, readU64 } from '../../base/coding.js'
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
  type BlobFileTotals,
} from '../../blob/blob-format.js'
import { findingOf, prefixed, type Finding } from './output.js'

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
    out.problems.push(prefixed('header', findingOf(err, name, 0)))
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
