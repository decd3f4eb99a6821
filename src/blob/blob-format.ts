import { readU32, readU64, writeU32, writeU64 } from '../base/coding.js'
import { checksum32, checksum64Low32 } from '../base/checksum.js'
import { corruption } from '../base/errors.js'

/**
 * The blob file's byte layout (docs/format.md, "Blob file (`.blob`)"):
 *
 *   header (16)   magic "STRBLOB1" | u32 version | u32 XXH32(bytes 0..12)
 *   record × n    u32 keyLength | u32 valueLength | u32 value checksum | u32 XXH32(bytes 0..12 ‖ key)
 *                 key bytes | value bytes
 *   footer (32)   u64 recordCount | u64 valueBytes | u32 version | u32 XXH32(bytes 0..20) | magic
 *
 * The value checksum is the low 32 bits of XXH64(value) (checksum64Low32),
 * and the table's blob reference carries the same number: a read fetches
 * exactly the value bytes and checks them against the reference alone. The
 * record header and key are only for tools (`strata check`, `dump`) and for
 * the garbage collector's own checks; the footer marks a finished file.
 */
export const BLOB_MAGIC = Buffer.from('STRBLOB1', 'latin1')
export const BLOB_FORMAT_VERSION = 1
export const BLOB_HEADER_BYTES = 16
export const BLOB_RECORD_HEADER_BYTES = 16
export const BLOB_FOOTER_BYTES = 32
/** Seed of the header, record-header and footer checksums ("BLOB"). */
const BLOB_SEED = 0x424c4f42

/** The checksum a blob reference carries for its value. */
export function blobValueChecksum(value: Uint8Array): number {
  return checksum64Low32(value)
}

export function encodeBlobHeader(): Buffer {
  const b = Buffer.alloc(BLOB_HEADER_BYTES)
  BLOB_MAGIC.copy(b, 0)
  writeU32(b, 8, BLOB_FORMAT_VERSION)
  writeU32(b, 12, checksum32(b.subarray(0, 12), BLOB_SEED))
  return b
}

/** Checks a file's first 16 bytes; throws STRATA_CORRUPTION. */
export function checkBlobHeader(b: Uint8Array, fileName: string): void {
  if (b.length < BLOB_HEADER_BYTES || !BLOB_MAGIC.equals(b.subarray(0, 8))) throw corruption('not a blob file (bad magic)', fileName, 0)
  if (readU32(b, 12) !== checksum32(b.subarray(0, 12), BLOB_SEED)) throw corruption('blob file header checksum mismatch', fileName, 0)
  const version = readU32(b, 8)
  if (version !== BLOB_FORMAT_VERSION) throw corruption(`unknown blob file version ${version}`, fileName, 0)
}

/** The 16 header bytes and the key of one record. */
export function encodeRecordHeader(key: Uint8Array, valueLength: number, valueChecksum: number): Buffer {
  const b = Buffer.allocUnsafe(BLOB_RECORD_HEADER_BYTES + key.length)
  writeU32(b, 0, key.length)
  writeU32(b, 4, valueLength)
  writeU32(b, 8, valueChecksum)
  b.set(key, BLOB_RECORD_HEADER_BYTES)
  writeU32(b, 12, recordHeaderChecksum(b, key))
  return b
}

function recordHeaderChecksum(header: Uint8Array, key: Uint8Array): number {
  const both = Buffer.allocUnsafe(12 + key.length)
  both.set(header.subarray(0, 12), 0)
  both.set(key, 12)
  return checksum32(both, BLOB_SEED)
}

/** What a finished blob file holds. */
export interface BlobFileTotals {
  recordCount: number
  valueBytes: number
}

export function encodeBlobFooter(totals: BlobFileTotals): Buffer {
  const b = Buffer.alloc(BLOB_FOOTER_BYTES)
  writeU64(b, 0, totals.recordCount)
  writeU64(b, 8, totals.valueBytes)
  writeU32(b, 16, BLOB_FORMAT_VERSION)
  writeU32(b, 20, checksum32(b.subarray(0, 20), BLOB_SEED))
  BLOB_MAGIC.copy(b, 24)
  return b
}

/** One record found by `scanBlobFile`. */
export interface BlobRecord {
  /** Offset of the record header. */
  recordOffset: number
  /** Offset of the value bytes: what a blob reference names. */
  valueOffset: number
  key: Buffer
  value: Buffer
  checksum: number
}

/**
 * Walks a whole blob file's bytes (tools and tests; reads never scan),
 * checking the header, every record header, every value's checksum and the
 * footer's totals. Throws STRATA_CORRUPTION at the first damage.
 */
export function scanBlobFile(buf: Buffer, fileName: string, visit: (r: BlobRecord) => void): BlobFileTotals {
  checkBlobHeader(buf, fileName)
  if (buf.length < BLOB_HEADER_BYTES + BLOB_FOOTER_BYTES) throw corruption('blob file has no footer', fileName, buf.length)
  const footerAt = buf.length - BLOB_FOOTER_BYTES
  const footer = buf.subarray(footerAt)
  if (!BLOB_MAGIC.equals(footer.subarray(24, 32)) || readU32(footer, 20) !== checksum32(footer.subarray(0, 20), BLOB_SEED)) {
    throw corruption('blob file footer damaged or missing (file not finished?)', fileName, footerAt)
  }
  const totals = { recordCount: readU64(footer, 0), valueBytes: readU64(footer, 8) }
  let o = BLOB_HEADER_BYTES
  let records = 0
  let valueBytes = 0
  while (o < footerAt) {
    if (o + BLOB_RECORD_HEADER_BYTES > footerAt) throw corruption('blob record header runs into the footer', fileName, o)
    const keyLength = readU32(buf, o)
    const valueLength = readU32(buf, o + 4)
    const checksum = readU32(buf, o + 8)
    const keyAt = o + BLOB_RECORD_HEADER_BYTES
    if (keyAt + keyLength + valueLength > footerAt) throw corruption('blob record runs into the footer', fileName, o)
    const key = buf.subarray(keyAt, keyAt + keyLength)
    if (readU32(buf, o + 12) !== recordHeaderChecksum(buf.subarray(o, o + 12), key)) throw corruption('blob record header checksum mismatch', fileName, o)
    const value = buf.subarray(keyAt + keyLength, keyAt + keyLength + valueLength)
    if (blobValueChecksum(value) !== checksum) throw corruption('blob value checksum mismatch', fileName, keyAt + keyLength)
    visit({ recordOffset: o, valueOffset: keyAt + keyLength, key, value, checksum })
    records++
    valueBytes += valueLength
    o = keyAt + keyLength + valueLength
  }
  if (records !== totals.recordCount || valueBytes !== totals.valueBytes) {
    throw corruption(`blob file footer says ${totals.recordCount} records of ${totals.valueBytes} bytes, file holds ${records} of ${valueBytes}`, fileName, footerAt)
  }
  return totals
}
