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
  /**
   * Records the ignored tail held: 1 for an append cut short or garbage, more
   * when damaged records with valid headers follow each other. 0 without a tail.
   */
  tailRecords: number
}

/** Length of the intact record at `offset`, or -1 when the bytes there are not one. */
export function intactRecordLength(buf: Buffer, offset: number): number {
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
 * Payloads of records this process framed in memory (a frozen memtable's
 * record arena), walked by their headers: each header's own checksum must
 * match and the records must tile `buf` exactly, or this throws (a bug: the
 * memory was reused or miswritten). The payload checksums are not computed
 * again: the bytes never left memory since frameRecordInPlace hashed them,
 * and hashing them twice cost a flush of 256 KiB values more CPU than the
 * main thread's framing (docs/performance.md, "Blob files").
 */
export function framedPayloadsInMemory(buf: Buffer, name: string): Buffer[] {
  const payloads: Buffer[] = []
  let offset = 0
  while (offset < buf.length) {
    if (!recordHeaderValid(buf, offset)) throw corruption('in-memory record header does not check', name, offset)
    const end = offset + RECORD_HEADER_BYTES + readU32(buf, offset)
    if (end > buf.length) throw corruption('in-memory record runs past its segment', name, offset)
    payloads.push(buf.subarray(offset + RECORD_HEADER_BYTES, end))
    offset = end
  }
  return payloads
}

/** How a log's last damaged record is judged when nothing intact follows it. */
export type TailPolicy =
  /** WAL: a complete record with a bad payload at the very end is dropped like a torn one. */
  | 'drop-damaged-tail'
  /** Manifest: only an incomplete record (a torn append) may end the log; a complete damaged one is corruption. */
  | 'strict'

/** True when the 12-byte header at `offset` is complete and its own checksum matches (its payload may still be damaged). */
export function recordHeaderValid(buf: Buffer, offset: number): boolean {
  return buf.length - offset >= RECORD_HEADER_BYTES && checksum32(buf.subarray(offset, offset + 8), HEADER_SEED) === readU32(buf, offset + 8)
}

/** True when a valid header at `offset` claims more bytes than the file has: an append cut short. */
export function headerOfTornAppend(buf: Buffer, offset: number): boolean {
  if (buf.length - offset < RECORD_HEADER_BYTES) return true // even the header was cut short
  if (checksum32(buf.subarray(offset, offset + 8), HEADER_SEED) !== readU32(buf, offset + 8)) return false
  const payloadLength = readU32(buf, offset)
  return payloadLength <= RECORD_PAYLOAD_MAX_BYTES && offset + RECORD_HEADER_BYTES + payloadLength > buf.length
}

/**
 * Splits a whole log file into record payloads. Where the first damaged record
 * is:
 *  - an append cut short (header incomplete, or a valid header claiming more
 *    bytes than the file has), the log ends there cleanly: a crash mid-append.
 *    Nothing after it is looked at, so a payload that happens to contain
 *    framed bytes cannot be mistaken for a later record;
 *  - anything else (garbage, a flipped bit): an intact record anywhere after it
 *    means acknowledged data in the middle was lost, which throws
 *    STRATA_CORRUPTION; with nothing intact after it, it is a garbage tail,
 *    dropped under 'drop-damaged-tail' and corruption under 'strict' when it
 *    has a valid header (a complete record whose payload went bad).
 */
export function scanRecords(buf: Buffer, fileName: string, policy: TailPolicy = 'drop-damaged-tail'): RecordScan {
  const payloads: Buffer[] = []
  let offset = 0
  while (offset < buf.length) {
    const length = intactRecordLength(buf, offset)
    if (length < 0) break
    payloads.push(buf.subarray(offset + RECORD_HEADER_BYTES, offset + length))
    offset += length
  }
  let tailRecords = offset < buf.length ? 1 : 0
  if (offset < buf.length && !headerOfTornAppend(buf, offset)) {
    tailRecords = countFramedRecords(buf, offset)
    // Error path only: look for any intact record after the damage.
    const validHeader = checksum32(buf.subarray(offset, offset + 8), HEADER_SEED) === readU32(buf, offset + 8)
    const from = validHeader ? offset + RECORD_HEADER_BYTES + readU32(buf, offset) : offset + 1
    for (let probe = from; probe + RECORD_HEADER_BYTES <= buf.length; probe++) {
      if (intactRecordLength(buf, probe) > 0) {
        throw corruption(`damaged record followed by intact records (intact record at ${probe})`, fileName, offset)
      }
    }
    if (validHeader && policy === 'strict') throw corruption('last record is complete but its checksum does not match', fileName, offset)
  }
  return { payloads, validBytes: offset, tornTail: offset < buf.length, tailRecords }
}

/** Records whose headers are valid, one after another from `offset` (at least 1: the damage itself). */
function countFramedRecords(buf: Buffer, offset: number): number {
  let n = 0
  while (buf.length - offset >= RECORD_HEADER_BYTES && checksum32(buf.subarray(offset, offset + 8), HEADER_SEED) === readU32(buf, offset + 8)) {
    n++
    offset += RECORD_HEADER_BYTES + readU32(buf, offset)
  }
  return Math.max(1, n)
}
