import { cursor, readU32, readU64, readVarint, varintLength } from '../base/coding.js'
import { KIND_DELETE, KIND_PUT, type WriteOp } from '../base/entry.js'
import { corruption } from '../base/errors.js'

/**
 * The payload of one WAL record: one group commit (docs/format.md, "WAL record").
 *
 *   u8 version (2) | u64 firstSequence | u32 count | count × entry
 *   entry: u8 kind | varint keyLength | key | (kind = put) varint valueLength | value
 *
 * Entry i gets sequence firstSequence + i. A record is applied whole or not at all,
 * which is what makes a batch atomic across a crash. In version 2 the kind
 * byte's top bit (BATCH_END) marks the last entry of each caller's write, so
 * the change stream can hand out batches exactly as they were committed;
 * version 1 records (no marks) read as one batch each.
 */
export const WAL_FORMAT_VERSION = 2
/** The oldest record version still read. */
export const WAL_OLDEST_VERSION = 1
export const PAYLOAD_HEADER_BYTES = 1 + 8 + 4
/** Flag on an entry's kind byte: the last entry of one write (a put, delete or batch). */
export const BATCH_END = 0x80

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
  /** Index in `ops` of the last op of each write, ascending (the last is always ops.length - 1). */
  batchEnds: number[]
}

/**
 * Receives one entry of a record: its sequence, and where its key and value
 * lie in `payload` (valueStart = -1 for a delete); `batchEnd` is true on the
 * last entry of a write. No objects are made per entry.
 */
export type WalEntryVisitor = (payload: Buffer, sequence: number, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number, batchEnd: boolean) => void

/**
 * Walks a record payload entry by entry; returns the entry count. Throws
 * STRATA_CORRUPTION when the payload does not parse to exactly its length.
 */
export function forEachWalEntry(payload: Buffer, fileName: string, visit: WalEntryVisitor): number {
  const end = payload.length
  if (end < PAYLOAD_HEADER_BYTES) throw corruption('WAL record shorter than its header', fileName)
  const version = payload[0]
  if (version > WAL_FORMAT_VERSION || version < WAL_OLDEST_VERSION) throw corruption(`unknown WAL record version ${version}`, fileName)
  const firstSequence = readU64(payload, 1)
  const count = readU32(payload, 9)
  // Version 1 marks no batch ends: its whole record is one batch.
  const flagMask = version === 1 ? 0 : BATCH_END
  let o = PAYLOAD_HEADER_BYTES
  for (let i = 0; i < count; i++) {
    if (o >= end) throw corruption('WAL record ends before its last entry', fileName)
    const flags = payload[o] & flagMask
    const kind = payload[o++] & ~flagMask
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
    const batchEnd = version === 1 ? i === count - 1 : flags !== 0
    if (i === count - 1 && !batchEnd) throw corruption('WAL record ends inside a batch', fileName)
    visit(payload, firstSequence + i, keyStart, keyEnd, valueStart, valueEnd, batchEnd)
  }
  if (o !== end) throw corruption('WAL record has trailing bytes', fileName)
  return count
}

/** Decodes a record payload into ops (views into the payload); see forEachWalEntry. */
export function decodeWalRecord(payload: Buffer, fileName: string): WalBatch {
  const ops: WriteOp[] = []
  const batchEnds: number[] = []
  let firstSequence = -1
  forEachWalEntry(payload, fileName, (p, seq, ks, ke, vs, ve, batchEnd) => {
    if (firstSequence < 0) firstSequence = seq
    if (batchEnd) batchEnds.push(ops.length)
    ops.push({ key: p.subarray(ks, ke), value: vs < 0 ? null : p.subarray(vs, ve) })
  })
  return { firstSequence: firstSequence < 0 ? readU64(payload, 1) : firstSequence, ops, batchEnds }
}
