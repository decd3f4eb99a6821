import { cursor, readVarint, varintLength, writeVarint } from '../base/coding.js'
import { corruption } from '../base/errors.js'
import type { TableMeta } from './table-meta.js'

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
 */
export const NUM_LEVELS = 7

export interface TableVersionEdit {
  /** WALs with numbers below this are fully in tables and may be deleted. */
  logNumber?: number
  nextFileNumber?: number
  lastSequence?: number
  deleted: Array<{ level: number; number: number }>
  added: Array<{ level: number; table: TableMeta }>
}

const TAG_LOG_NUMBER = 1
const TAG_NEXT_FILE = 2
const TAG_LAST_SEQUENCE = 3
const TAG_DELETED = 4
const TAG_ADDED = 5

export function emptyEdit(): TableVersionEdit {
  return { deleted: [], added: [] }
}

export function encodeEdit(edit: TableVersionEdit): Buffer {
  const parts: number[] = []
  const keys: Buffer[] = []
  let bytes = 0
  const num = (n: number): void => {
    parts.push(n)
    bytes += varintLength(n)
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
    num(t.smallestKey.length)
    parts.push(-1)
    keys.push(t.smallestKey)
    bytes += t.smallestKey.length
    num(t.largestKey.length)
    parts.push(-1)
    keys.push(t.largestKey)
    bytes += t.largestKey.length
  }
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
      default:
        throw corruption(`unknown manifest tag ${tag}`, fileName)
    }
  }
  return edit
}
