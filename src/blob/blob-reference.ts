import { cursor, readU32, readVarint, varintLength, writeU32, writeVarint } from '../base/coding.js'
import { corruption } from '../base/errors.js'

/**
 * Where a separated value lives: the value bytes of a table entry of kind
 * KIND_BLOB (docs/format.md, "Blob reference"):
 *
 *   varint fileNumber | varint valueOffset | varint valueLength | u32 checksum
 *
 * `checksum` is blobValueChecksum of the value, so a read of exactly
 * `valueLength` bytes at `valueOffset` is verified by the reference alone.
 */
export interface BlobReference {
  fileNumber: number
  valueOffset: number
  valueLength: number
  checksum: number
}

export function encodeBlobReference(r: BlobReference): Buffer {
  const b = Buffer.allocUnsafe(varintLength(r.fileNumber) + varintLength(r.valueOffset) + varintLength(r.valueLength) + 4)
  let o = writeVarint(b, 0, r.fileNumber)
  o = writeVarint(b, o, r.valueOffset)
  o = writeVarint(b, o, r.valueLength)
  writeU32(b, o, r.checksum)
  return b
}

/** Decodes into `out` (reused by hot paths); throws STRATA_CORRUPTION when `b` is not exactly one reference. */
export function decodeBlobReference(b: Uint8Array, fileName: string, out: BlobReference = { fileNumber: 0, valueOffset: 0, valueLength: 0, checksum: 0 }): BlobReference {
  const end = b.length
  readVarint(b, 0, end)
  out.fileNumber = cursor.value
  readVarint(b, cursor.offset, end)
  out.valueOffset = cursor.value
  readVarint(b, cursor.offset, end)
  out.valueLength = cursor.value
  if (cursor.offset + 4 !== end) throw corruption('malformed blob reference', fileName)
  out.checksum = readU32(b, cursor.offset)
  return out
}

/** The blob file a reference names (the first field alone is decoded). */
export function blobFileOf(b: Uint8Array, fileName: string): number {
  if (b.length < 5) throw corruption('malformed blob reference', fileName)
  readVarint(b, 0, b.length)
  return cursor.value
}
