import { cursor, readU32, readU64, readVarint, varintLength } from '../base/coding.js'
import { EXPIRY_BYTES, KIND_DELETE, KIND_PUT, KIND_PUT_EXPIRING, KIND_RANGE_DELETE, type WriteOp } from '../base/entry.js'
import { corruption } from '../base/errors.js'

/**
 * The payload of one WAL record: one group commit (docs/format.md, "WAL record").
 *
 *   u8 version (3) | u64 firstSequence | u32 count | u64 epoch | count × entry
 *   entry: u8 kind | (put, delete) varint keyLength | key | (put) varint valueLength | value
 *   (an expiring put, kind 4: its value bytes are u64 expiresAt ‖ value;
 *   a range delete, kind 6: key = start, value = end, empty for none)
 *
 * Entry i gets sequence firstSequence + i. A record is applied whole or not at all,
 * which is what makes a batch atomic across a crash. The kind byte's top bit
 * (BATCH_END) marks the last entry of each caller's write, so the change
 * stream can hand out batches exactly as they were committed. The epoch is
 * the replication epoch the record was written in (0 on a single node); a
 * NOOP entry takes a sequence and holds nothing (a new leader commits its
 * epoch with one). Version 2 records (no epoch) read as epoch 0; version 1
 * records (no batch marks either) read as one batch each.
 */
export const WAL_FORMAT_VERSION = 3
/** The oldest record version still read. */
export const WAL_OLDEST_VERSION = 1
/** Header of a version-3 payload: version, firstSequence, count, epoch. */
export const PAYLOAD_HEADER_BYTES = 1 + 8 + 4 + 8
/** What every version's header starts with: version, firstSequence, count. */
export const PAYLOAD_PREFIX_BYTES = 1 + 8 + 4
/** Flag on an entry's kind byte: the last entry of one write (a put, delete or batch). */
export const BATCH_END = 0x80
/** A WAL-only entry kind: takes a sequence, no key or value, never reaches a memtable or table. */
export const KIND_NOOP = 2

/** Bytes of a payload's header in record version `version`. */
function headerBytes(version: number): number {
  return version >= 3 ? PAYLOAD_HEADER_BYTES : PAYLOAD_PREFIX_BYTES
}

/** The epoch a record payload was written in (0 before version 3). */
export function walRecordEpoch(payload: Buffer): number {
  return payload[0] >= 3 ? readU64(payload, PAYLOAD_PREFIX_BYTES) : 0
}

/** The sequence of a record payload's last entry (NOOPs included); firstSequence - 1 for an empty record. */
export function walRecordLastSequence(payload: Buffer): number {
  return readU64(payload, 1) + readU32(payload, 9) - 1
}

/** Bytes one op takes inside a payload. */
export function encodedOpBytes(op: WriteOp): number {
  let n = 1 + varintLength(op.key.length) + op.key.length
  if (op.value !== null) {
    const length = op.expiresAt === undefined ? op.value.length : op.value.length + EXPIRY_BYTES
    n += varintLength(length) + length
  }
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
 * last entry of a write; `kind` is KIND_PUT, KIND_DELETE, KIND_PUT_EXPIRING
 * (whose value bytes start with the expiry time) or KIND_RANGE_DELETE (key:
 * the start, value: the end). No objects are made per entry.
 */
export type WalEntryVisitor = (payload: Buffer, sequence: number, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number, batchEnd: boolean, kind: number) => void

/**
 * Walks a record payload entry by entry; returns the entry count (NOOPs
 * included). NOOP entries go to `onNoop` only (they have no key). Throws
 * STRATA_CORRUPTION when the payload does not parse to exactly its length.
 */
export function forEachWalEntry(payload: Buffer, fileName: string, visit: WalEntryVisitor, onNoop?: (sequence: number, batchEnd: boolean) => void): number {
  const end = payload.length
  if (end < PAYLOAD_PREFIX_BYTES) throw corruption('WAL record shorter than its header', fileName)
  const version = payload[0]
  if (version > WAL_FORMAT_VERSION || version < WAL_OLDEST_VERSION) throw corruption(`unknown WAL record version ${version}`, fileName)
  if (end < headerBytes(version)) throw corruption('WAL record shorter than its header', fileName)
  const firstSequence = readU64(payload, 1)
  const count = readU32(payload, 9)
  // Version 1 marks no batch ends: its whole record is one batch.
  const flagMask = version === 1 ? 0 : BATCH_END
  let o = headerBytes(version)
  for (let i = 0; i < count; i++) {
    if (o >= end) throw corruption('WAL record ends before its last entry', fileName)
    const flags = payload[o] & flagMask
    const kind = payload[o++] & ~flagMask
    if (kind === KIND_NOOP && version >= 3) {
      // A NOOP is a write of its own: always the end of its batch.
      if (flags === 0) throw corruption('WAL NOOP entry inside a batch', fileName)
      onNoop?.(firstSequence + i, true)
      continue
    }
    if (kind !== KIND_PUT && kind !== KIND_DELETE && ((kind !== KIND_PUT_EXPIRING && kind !== KIND_RANGE_DELETE) || version < 3)) throw corruption(`unknown entry kind ${kind}`, fileName)
    readVarint(payload, o, end)
    const keyStart = cursor.offset
    const keyEnd = keyStart + cursor.value
    if (keyEnd > end) throw corruption('WAL key runs past its record', fileName)
    o = keyEnd
    let valueStart = -1
    let valueEnd = -1
    if (kind !== KIND_DELETE) {
      readVarint(payload, o, end)
      valueStart = cursor.offset
      valueEnd = valueStart + cursor.value
      if (valueEnd > end) throw corruption('WAL value runs past its record', fileName)
      if (kind === KIND_PUT_EXPIRING && cursor.value < EXPIRY_BYTES) throw corruption('WAL expiring value shorter than its expiry time', fileName)
      o = valueEnd
    }
    const batchEnd = version === 1 ? i === count - 1 : flags !== 0
    if (i === count - 1 && !batchEnd) throw corruption('WAL record ends inside a batch', fileName)
    visit(payload, firstSequence + i, keyStart, keyEnd, valueStart, valueEnd, batchEnd, kind)
  }
  if (o !== end) throw corruption('WAL record has trailing bytes', fileName)
  return count
}

/** Decodes a record payload into ops (views into the payload); see forEachWalEntry. */
export function decodeWalRecord(payload: Buffer, fileName: string): WalBatch {
  const ops: WriteOp[] = []
  const batchEnds: number[] = []
  let firstSequence = -1
  forEachWalEntry(payload, fileName, (p, seq, ks, ke, vs, ve, batchEnd, kind) => {
    if (firstSequence < 0) firstSequence = seq
    if (batchEnd) batchEnds.push(ops.length)
    if (kind === KIND_PUT_EXPIRING) ops.push({ key: p.subarray(ks, ke), value: p.subarray(vs + EXPIRY_BYTES, ve), expiresAt: readU64(p, vs) })
    else if (kind === KIND_RANGE_DELETE) ops.push({ key: p.subarray(ks, ke), value: p.subarray(vs, ve), rangeDelete: true })
    else ops.push({ key: p.subarray(ks, ke), value: vs < 0 ? null : p.subarray(vs, ve) })
  })
  return { firstSequence: firstSequence < 0 ? readU64(payload, 1) : firstSequence, ops, batchEnds }
}
