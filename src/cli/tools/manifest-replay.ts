/**
 * A manifest replayed leniently, for the inspection tools: every intact
 * record decoded as an edit and applied (tables added to and deleted from
 * levels, blob files added and their garbage counted, range tombstones added
 * and removed, the log number, next file number and last sequence), every
 * edit that does not decode or does not apply kept as a problem instead of
 * stopping the replay. (A tag 11, a table's sequence floor, that does not
 * follow its table's tag 5 in the same edit does not decode.)
 */
import { blobFileName, tableFileName } from '../../base/file-names.js'
import type { RangeTombstone } from '../../base/range-tombstones.js'
import type { BlobFileMeta } from '../../manifest/blob-file-meta.js'
import { decodeEdit, type TableVersionEdit } from '../../manifest/table-version-edit.js'
import type { TableMeta } from '../../manifest/table-meta.js'
import { walkRecords, type RecordWalk } from './framed-records.js'
import { findingOf, type Finding } from './output.js'
import { rangeText, tombstoneProblem } from './range-deletes.js'

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
  /** The live range tombstones by sequence after every edit that decodes was applied (tags 9 and 10). */
  rangeTombstones: Map<number, RangeTombstone>
  /** Every range tombstone some edit added (also those removed since), by sequence. */
  rangeTombstonesAdded: Map<number, RangeTombstone>
  /**
   * Edits that decode but do not apply (deleting a table the level does not
   * hold, adding one twice; adding a blob file twice, garbage in a blob file
   * the state does not hold or more garbage than values; adding a range
   * tombstone whose sequence a live one has, or an empty range; removing one
   * that is not live; a table's sequence floor above its smallest or largest
   * entry's sequence); and, after the last edit, a live range tombstone above
   * the last sequence.
   */
  problems: Finding[]
}

export function replayManifest(buf: Buffer, name: string): ManifestReplay {
  const walk = walkRecords(buf)
  const out: ManifestReplay = {
    walk,
    edits: [],
    tables: new Map(),
    blobs: new Map(),
    blobsAdded: new Set(),
    logNumber: 0,
    nextFileNumber: 0,
    lastSequence: 0,
    deleted: new Set(),
    rangeTombstones: new Map(),
    rangeTombstonesAdded: new Map(),
    problems: [],
  }
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
      const t = a.table
      if (t.minSeq !== undefined && t.entryCount > 0 && (t.minSeq > t.smallestSeq || t.minSeq > t.largestSeq)) {
        out.problems.push({ file: name, offset: r.offset, message: `edit records ${tableFileName(t.number)}'s smallest sequence as ${t.minSeq}, above its smallest or largest entry's (@${t.smallestSeq}, @${t.largestSeq})` })
      }
    }
    applyRangeTombstones(out, edit, name, r.offset)
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
  for (const t of out.rangeTombstones.values()) {
    if (t.seq > out.lastSequence) out.problems.push({ file: name, message: `range tombstone @${t.seq} ${rangeText(t, { hex: false })} is above the last sequence ${out.lastSequence}: writes after the next open would get sequences it covers` })
  }
  return out
}

/** Tags 10 (removed: must be live) then 9 (added: a sequence no live one has, a range that is not empty), as TableVersion applies them. */
function applyRangeTombstones(out: ManifestReplay, edit: TableVersionEdit, name: string, offset: number): void {
  for (const seq of edit.rangeTombstonesRemoved ?? []) {
    if (!out.rangeTombstones.delete(seq)) {
      const what = out.rangeTombstonesAdded.has(seq) ? 'which an earlier edit removed already' : 'which no edit added'
      out.problems.push({ file: name, offset, message: `edit removes range tombstone @${seq}, ${what}` })
    }
  }
  for (const t of edit.rangeTombstonesAdded ?? []) {
    const problem = tombstoneProblem(t)
    if (problem !== undefined) out.problems.push({ file: name, offset, message: `edit adds ${problem}` })
    if (out.rangeTombstones.has(t.seq)) out.problems.push({ file: name, offset, message: `edit adds range tombstone @${t.seq}, which the state already holds` })
    out.rangeTombstones.set(t.seq, t)
    out.rangeTombstonesAdded.set(t.seq, t)
  }
}
