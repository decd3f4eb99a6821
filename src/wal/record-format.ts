import { checksum32 } from '../base/checksum.js'
import { readU32, writeU32 } from '../base/coding.js'
import { corruption } from '../base/errors.js'

/**
 * Record framing shared by the WAL and the manifest (docs/format.md, "Record framing").
 *
 *   u32 payloadLength | u32 xxh32(payload) | u32 xxh32(first 8 header bytes, HEADER_SEED) | payload
 *
 * The header has its own checksum so that a reader can tell a torn or garbage
 * tail (stop cleanly) from a damaged record followed by intact ones (corruption).
 */
export const RECORD_HEADER_BYTES = 12
/** No record may claim more than this; larger lengths are garbage by definition. */
export const RECORD_PAYLOAD_MAX_BYTES = 1 << 30
const HEADER_SEED = 0x5354_5241 // "STRA"

/** Fills the 12-byte header in front of a payload already placed at `buf[12..]`. */
export function frameRecordInPlace(buf: Uint8Array): void {
  const payloadLength = buf.length - RECORD_HEADER_BYTES
  if (payloadLength > RECORD_PAYLOAD_MAX_BYTES) throw new RangeError('record payload too large')
  writeU32(buf, 0, payloadLength)
  writeU32(buf, 4, checksum32(buf.subarray(RECORD_HEADER_BYTES)))
  writeU32(buf, 8, checksum32(buf.subarray(0, 8), HEADER_SEED))
}

/** Returns a framed copy of `payload`. */
export function frameRecord(payload: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length)
  buf.set(payload, RECORD_HEADER_BYTES)
  frameRecordInPlace(buf)
  return buf
}

/** How reading a log of records ended. */
export interface RecordScan {
  /** Payloads of every intact record, in file order (views into the input). */
  payloads: Buffer[]
  /** Bytes from the start of the file up to the end of the last intact record. */
  validBytes: number
  /** True when bytes after the last intact record were ignored (torn write or garbage). */
  tornTail: boolean
}

/** Length of the intact record at `offset`, or -1 when the bytes there are not one. */
function intactRecordLength(buf: Buffer, offset: number): number {
  if (buf.length - offset < RECORD_HEADER_BYTES) return -1
  const payloadLength = readU32(buf, offset)
  if (payloadLength > RECORD_PAYLOAD_MAX_BYTES) return -1
  if (offset + RECORD_HEADER_BYTES + payloadLength > buf.length) return -1
  if (checksum32(buf.subarray(offset, offset + 8), HEADER_SEED) !== readU32(buf, offset + 8)) return -1
  const payload = buf.subarray(offset + RECORD_HEADER_BYTES, offset + RECORD_HEADER_BYTES + payloadLength)
  if (checksum32(payload) !== readU32(buf, offset + 4)) return -1
  return RECORD_HEADER_BYTES + payloadLength
}

/**
 * Splits a whole log file into record payloads. Stops cleanly at the first
 * damaged record when nothing intact follows it (a torn tail); throws
 * STRATA_CORRUPTION when an intact record follows a damaged one, because then
 * acknowledged data in the middle of the log was lost.
 */
export function scanRecords(buf: Buffer, fileName: string): RecordScan {
  const payloads: Buffer[] = []
  let offset = 0
  while (offset < buf.length) {
    const length = intactRecordLength(buf, offset)
    if (length < 0) break
    payloads.push(buf.subarray(offset + RECORD_HEADER_BYTES, offset + length))
    offset += length
  }
  if (offset < buf.length) {
    // Error path only: look for any intact record after the damage.
    for (let probe = offset + 1; probe + RECORD_HEADER_BYTES <= buf.length; probe++) {
      if (intactRecordLength(buf, probe) > 0) {
        throw corruption(`damaged record followed by intact records (intact record at ${probe})`, fileName, offset)
      }
    }
  }
  return { payloads, validBytes: offset, tornTail: offset < buf.length }
}
