import { cursor, readU32, readU64, readVarint, varintLength } from '../base/coding.js'
import { KIND_DELETE, KIND_PUT, type WriteOp } from '../base/entry.js'
import { corruption } from '../base/errors.js'

/**
 * The payload of one WAL record: one group commit (docs/format.md, "WAL record").
 *
 *   u8 version (1) | u64 firstSequence | u32 count | count × entry
 *   entry: u8 kind | varint keyLength | key | (kind = put) varint valueLength | value
 *
 * Entry i gets sequence firstSequence + i. A record is applied whole or not at all,
 * which is what makes a batch atomic across a crash.
 */
export const WAL_FORMAT_VERSION = 1
export const PAYLOAD_HEADER_BYTES = 1 + 8 + 4

/** Bytes one op takes inside a payload. */
export function encodedOpBytes(op: WriteOp): number {
  let n = 1 + varintLength(op.key.length) + op.key.length
  if (op.value !== null) n += varintLength(op.value.length) + op.value.length
  return n
}

/** A decoded WAL record. Keys and values are views into the payload. */
export interface WalBatch {
  firstSequence: number
  ops: WriteOp[]
}

/**
 * Receives one entry of a record: its sequence, and where its key and value
 * lie in `payload` (valueStart = -1 for a delete). No objects are made per entry.
 */
export type WalEntryVisitor = (payload: Buffer, sequence: number, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number) => void

/**
 * Walks a record payload entry by entry; returns the entry count. Throws
 * STRATA_CORRUPTION when the payload does not parse to exactly its length.
 */
export function forEachWalEntry(payload: Buffer, fileName: string, visit: WalEntryVisitor): number {
  const end = payload.length
  if (end < PAYLOAD_HEADER_BYTES) throw corruption('WAL record shorter than its header', fileName)
  if (payload[0] !== WAL_FORMAT_VERSION) throw corruption(`unknown WAL record version ${payload[0]}`, fileName)
  const firstSequence = readU64(payload, 1)
  const count = readU32(payload, 9)
  let o = PAYLOAD_HEADER_BYTES
  for (let i = 0; i < count; i++) {
    if (o >= end) throw corruption('WAL record ends before its last entry', fileName)
    const kind = payload[o++]
    if (kind !== KIND_PUT && kind !== KIND_DELETE) throw corruption(`unknown entry kind ${kind}`, fileName)
    readVarint(payload, o, end)
    const keyStart = cursor.offset
    const keyEnd = keyStart + cursor.value
    if (keyEnd > end) throw corruption('WAL key runs past its record', fileName)
    o = keyEnd
    let valueStart = -1
    let valueEnd = -1
    if (kind === KIND_PUT) {
      readVarint(payload, o, end)
      valueStart = cursor.offset
      valueEnd = valueStart + cursor.value
      if (valueEnd > end) throw corruption('WAL value runs past its record', fileName)
      o = valueEnd
    }
    visit(payload, firstSequence + i, keyStart, keyEnd, valueStart, valueEnd)
  }
  if (o !== end) throw corruption('WAL record has trailing bytes', fileName)
  return count
}

/** Decodes a record payload into ops (views into the payload); see forEachWalEntry. */
export function decodeWalRecord(payload: Buffer, fileName: string): WalBatch {
  const ops: WriteOp[] = []
  let firstSequence = -1
  forEachWalEntry(payload, fileName, (p, seq, ks, ke, vs, ve) => {
    if (firstSequence < 0) firstSequence = seq
    ops.push({ key: p.subarray(ks, ke), value: vs < 0 ? null : p.subarray(vs, ve) })
  })
  return { firstSequence: firstSequence < 0 ? readU64(payload, 1) : firstSequence, ops }
}
