/**
 * A manifest replayed leniently, for the inspection tools: every intact
 * record decoded as an edit and applied (tables added to and deleted from
 * levels, blob files added and their garbage counted, the log number, next
 * file number and last sequence), every edit that does not decode or does not
 * apply kept as a problem instead of stopping the replay.
 */
import { blobFileName } from '../../base/file-names.js'
import type { BlobFileMeta } from '../../manifest/blob-file-meta.js'
import { decodeEdit, type TableVersionEdit } from '../../manifest/table-version-edit.js'
import type { TableMeta } from '../../manifest/table-meta.js'
import { walkRecords, type RecordWalk } from './framed-records.js'
import { findingOf, type Finding } from './output.js'

/** Where a table sits after replaying a manifest. */
export interface Placement {
  level: number
  meta: TableMeta
}

/** A manifest replayed leniently: every intact record decoded and applied, every problem kept. */
export interface ManifestReplay {
  walk: RecordWalk
  edits: Array<{ offset: number; bytes: number; edit?: TableVersionEdit; problem?: Finding }>
  /** Tables by number after every edit that decodes was applied. */
  tables: Map<number, Placement>
  /**
   * Blob files by number after every edit that decodes was applied (tags 6
   * and 7): a file leaves when its garbage count reaches its value count.
   */
  blobs: Map<number, BlobFileMeta>
  /** Every blob file some edit added (also those that left the state since). */
  blobsAdded: Set<number>
  logNumber: number
  nextFileNumber: number
  lastSequence: number
  /** Every table number some edit deleted. */
  deleted: Set<number>
  /**
   * Edits that decode but do not apply (deleting a table the level does not
   * hold, adding one twice; adding a blob file twice, garbage in a blob file
   * the state does not hold or more garbage than values).
   */
  problems: Finding[]
}

export function replayManifest(buf: Buffer, name: string): ManifestReplay {
  const walk = walkRecords(buf)
  const out: ManifestReplay = { walk, edits: [], tables: new Map(), blobs: new Map(), blobsAdded: new Set(), logNumber: 0, nextFileNumber: 0, lastSequence: 0, deleted: new Set(), problems: [] }
  for (const r of walk.records) {
    let edit: TableVersionEdit
    try {
      edit = decodeEdit(r.payload, name)
    } catch (err) {
      out.edits.push({ offset: r.offset, bytes: r.end - r.offset, problem: findingOf(err, name, r.offset) })
      continue
    }
    out.edits.push({ offset: r.offset, bytes: r.end - r.offset, edit })
    for (const d of edit.deleted) {
      out.deleted.add(d.number)
      const t = out.tables.get(d.number)
      if (t === undefined || t.level !== d.level) {
        out.problems.push({ file: name, offset: r.offset, message: `edit deletes table ${d.number} from level ${d.level}, which does not hold it` })
      }
      if (t !== undefined && t.level === d.level) out.tables.delete(d.number)
    }
    for (const a of edit.added) {
      if (out.tables.has(a.table.number)) {
        out.problems.push({ file: name, offset: r.offset, message: `edit adds table ${a.table.number} to level ${a.level}, but level ${out.tables.get(a.table.number)!.level} already holds it` })
      }
      out.tables.set(a.table.number, { level: a.level, meta: a.table })
    }
    for (const b of edit.blobsAdded ?? []) {
      if (out.blobsAdded.has(b.number)) out.problems.push({ file: name, offset: r.offset, message: `edit adds blob file ${blobFileName(b.number)}, which an earlier edit added` })
      out.blobsAdded.add(b.number)
      out.blobs.set(b.number, b)
    }
    for (const g of edit.blobGarbage ?? []) {
      const b = out.blobs.get(g.number)
      if (b === undefined) {
        out.problems.push({ file: name, offset: r.offset, message: `edit counts garbage in blob file ${blobFileName(g.number)}, which the state does not hold` })
        continue
      }
      const next = { ...b, garbageCount: b.garbageCount + g.count, garbageBytes: b.garbageBytes + g.bytes }
      if (next.garbageCount > next.valueCount || next.garbageBytes > next.valueBytes) {
        out.problems.push({
          file: name,
          offset: r.offset,
          message: `edit counts more garbage in blob file ${blobFileName(g.number)} (${next.garbageCount} values, ${next.garbageBytes} bytes) than it holds (${next.valueCount} values, ${next.valueBytes} bytes)`,
        })
      }
      if (next.garbageCount >= next.valueCount) out.blobs.delete(g.number)
      else out.blobs.set(g.number, next)
    }
    if (edit.logNumber !== undefined) out.logNumber = edit.logNumber
    if (edit.nextFileNumber !== undefined) out.nextFileNumber = edit.nextFileNumber
    if (edit.lastSequence !== undefined) out.lastSequence = edit.lastSequence
  }
  return out
}
