import { cursor, readVarint, varintLength, writeVarint } from '../base/coding.js'
import { corruption } from '../base/errors.js'
import type { TableMeta } from './table-meta.js'
import type { BlobFileMeta, BlobGarbage } from './blob-file-meta.js'
import type { RangeTombstone } from '../base/range-tombstones.js'

/**
 * One manifest record: a change to the set of tables and the counters
 * (docs/format.md, "Manifest"); LevelDB's VersionEdit (see TableVersion for
 * the name). Encoded as tagged fields:
 *
 *   1 logNumber | 2 nextFileNumber | 3 lastSequence          (varint each)
 *   4 deleted table: varint level, varint fileNumber
 *   5 added table:   varint level, varint fileNumber, varint fileBytes,
 *                    varint smallestSeq, varint largestSeq, varint entryCount, varint deleteCount,
 *                    varint len + smallestKey, varint len + largestKey
 *   6 added blob file: varint fileNumber, varint fileBytes, varint valueCount, varint valueBytes
 *   7 blob garbage:    varint fileNumber, varint count, varint bytes (added to the file's garbage)
 *   8 table's blob files: varint tableNumber, varint count, count × varint blob fileNumber
 *                    (follows the tag 5 of a table of the same edit that holds blob references)
 *   9 range tombstone added: varint seq, varint len + start, varint hasEnd (0/1), [varint len + end]
 *  10 range tombstone removed: varint seq
 *  11 table's sequence floor: varint tableNumber, varint minSeq, varint rangeDeleteFloor
 *                    (follows the tag 5 of its table, as tag 8)
 */
export const NUM_LEVELS = 7

export interface TableVersionEdit {
  /** WALs with numbers below this are fully in tables and may be deleted. */
  logNumber?: number
  nextFileNumber?: number
  lastSequence?: number
  deleted: Array<{ level: number; number: number }>
  added: Array<{ level: number; table: TableMeta }>
  /** Blob files written by the flush or compaction this edit installs (no garbage yet). */
  blobsAdded?: BlobFileMeta[]
  /** References to blob values this edit's compaction dropped or relocated, per file. */
  blobGarbage?: BlobGarbage[]
  /** Range tombstones a flush moves out of its memtable (or a snapshot manifest lists). */
  rangeTombstonesAdded?: RangeTombstone[]
  /** Range tombstones (by sequence) that cover nothing any more. */
  rangeTombstonesRemoved?: number[]
}

const TAG_LOG_NUMBER = 1
const TAG_NEXT_FILE = 2
const TAG_LAST_SEQUENCE = 3
const TAG_DELETED = 4
const TAG_ADDED = 5
const TAG_BLOB_ADDED = 6
const TAG_BLOB_GARBAGE = 7
const TAG_TABLE_BLOB_FILES = 8
const TAG_RANGE_TOMBSTONE_ADDED = 9
const TAG_RANGE_TOMBSTONE_REMOVED = 10
const TAG_TABLE_SEQUENCE_FLOOR = 11

export function emptyEdit(): TableVersionEdit {
  return { deleted: [], added: [] }
}

export function encodeEdit(edit: TableVersionEdit): Buffer {
  const parts: number[] = []
  const keys: Uint8Array[] = []
  let bytes = 0
  const num = (n: number): void => {
    parts.push(n)
    bytes += varintLength(n)
  }
  const raw = (b: Uint8Array): void => {
    num(b.length)
    parts.push(-1)
    keys.push(b)
    bytes += b.length
  }
  if (edit.logNumber !== undefined) (num(TAG_LOG_NUMBER), num(edit.logNumber))
  if (edit.nextFileNumber !== undefined) (num(TAG_NEXT_FILE), num(edit.nextFileNumber))
  if (edit.lastSequence !== undefined) (num(TAG_LAST_SEQUENCE), num(edit.lastSequence))
  for (const d of edit.deleted) (num(TAG_DELETED), num(d.level), num(d.number))
  for (const { level, table: t } of edit.added) {
    num(TAG_ADDED)
    num(level)
    num(t.number)
    num(t.fileBytes)
    num(t.smallestSeq)
    num(t.largestSeq)
    num(t.entryCount)
    num(t.deleteCount)
    raw(t.smallestKey)
    raw(t.largestKey)
    if (t.blobFiles !== undefined && t.blobFiles.length > 0) {
      num(TAG_TABLE_BLOB_FILES)
      num(t.number)
      num(t.blobFiles.length)
      for (const b of t.blobFiles) num(b)
    }
    if (t.minSeq !== undefined) (num(TAG_TABLE_SEQUENCE_FLOOR), num(t.number), num(t.minSeq), num(t.rangeDeleteFloor ?? 0))
  }
  for (const r of edit.rangeTombstonesAdded ?? []) {
    num(TAG_RANGE_TOMBSTONE_ADDED)
    num(r.seq)
    raw(r.start)
    num(r.end === undefined ? 0 : 1)
    if (r.end !== undefined) raw(r.end)
  }
  for (const seq of edit.rangeTombstonesRemoved ?? []) (num(TAG_RANGE_TOMBSTONE_REMOVED), num(seq))
  for (const b of edit.blobsAdded ?? []) (num(TAG_BLOB_ADDED), num(b.number), num(b.fileBytes), num(b.valueCount), num(b.valueBytes))
  for (const g of edit.blobGarbage ?? []) (num(TAG_BLOB_GARBAGE), num(g.number), num(g.count), num(g.bytes))
  const out = Buffer.allocUnsafe(bytes)
  let o = 0
  let k = 0
  for (const p of parts) {
    if (p === -1) {
      const key = keys[k++]
      out.set(key, o)
      o += key.length
    } else {
      o = writeVarint(out, o, p)
    }
  }
  return out
}

/** Where table `number` is in `edit.added`: a tag that follows its table's tag 5 (looked for from the end: a snapshot manifest adds every table). */
function addedIndexOf(edit: TableVersionEdit, number: number, fileName: string): number {
  let i = edit.added.length - 1
  while (i >= 0 && edit.added[i].table.number !== number) i--
  if (i < 0) throw corruption(`manifest names table ${number}, which its edit does not add`, fileName)
  return i
}

export function decodeEdit(buf: Buffer, fileName: string): TableVersionEdit {
  const edit = emptyEdit()
  const end = buf.length
  let o = 0
  const num = (): number => {
    readVarint(buf, o, end)
    o = cursor.offset
    return cursor.value
  }
  const bytes = (): Buffer => {
    const n = num()
    if (o + n > end) throw corruption('manifest key runs past its record', fileName)
    const b = Buffer.from(buf.subarray(o, o + n))
    o += n
    return b
  }
  const level = (): number => {
    const l = num()
    if (l >= NUM_LEVELS) throw corruption(`manifest names level ${l}`, fileName)
    return l
  }
  while (o < end) {
    const tag = num()
    switch (tag) {
      case TAG_LOG_NUMBER:
        edit.logNumber = num()
        break
      case TAG_NEXT_FILE:
        edit.nextFileNumber = num()
        break
      case TAG_LAST_SEQUENCE:
        edit.lastSequence = num()
        break
      case TAG_DELETED:
        edit.deleted.push({ level: level(), number: num() })
        break
      case TAG_ADDED: {
        const l = level()
        const number = num()
        const fileBytes = num()
        const smallestSeq = num()
        const largestSeq = num()
        const entryCount = num()
        const deleteCount = num()
        const smallestKey = bytes()
        const largestKey = bytes()
        edit.added.push({ level: l, table: { number, fileBytes, smallestSeq, largestSeq, entryCount, deleteCount, smallestKey, largestKey } })
        break
      }
      case TAG_BLOB_ADDED: {
        const number = num()
        const fileBytes = num()
        const valueCount = num()
        const valueBytes = num()
        ;(edit.blobsAdded ??= []).push({ number, fileBytes, valueCount, valueBytes, garbageCount: 0, garbageBytes: 0 })
        break
      }
      case TAG_BLOB_GARBAGE: {
        const number = num()
        const count = num()
        const bytes = num()
        ;(edit.blobGarbage ??= []).push({ number, count, bytes })
        break
      }
      case TAG_TABLE_BLOB_FILES: {
        const number = num()
        const count = num()
        const files: number[] = []
        for (let i = 0; i < count; i++) files.push(num())
        const i = addedIndexOf(edit, number, fileName)
        edit.added[i] = { level: edit.added[i].level, table: { ...edit.added[i].table, blobFiles: files } }
        break
      }
      case TAG_RANGE_TOMBSTONE_ADDED: {
        const seq = num()
        const start = bytes()
        const hasEnd = num()
        if (hasEnd > 1) throw corruption(`manifest range tombstone end flag ${hasEnd}`, fileName)
        ;(edit.rangeTombstonesAdded ??= []).push({ start, end: hasEnd === 1 ? bytes() : undefined, seq })
        break
      }
      case TAG_RANGE_TOMBSTONE_REMOVED:
        ;(edit.rangeTombstonesRemoved ??= []).push(num())
        break
      case TAG_TABLE_SEQUENCE_FLOOR: {
        const number = num()
        const minSeq = num()
        const rangeDeleteFloor = num()
        const i = addedIndexOf(edit, number, fileName)
        edit.added[i] = { level: edit.added[i].level, table: { ...edit.added[i].table, minSeq, rangeDeleteFloor } }
        break
      }
      default:
        throw corruption(`unknown manifest tag ${tag}`, fileName)
    }
  }
  return edit
}
