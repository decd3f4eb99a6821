/**
 * What a repair works with while it goes through the files, whichever way it
 * repairs: the file numbers it allocates, the newest sequence seen, the fate
 * of every file (the report's list) and the totals lost, its lost/ folder and
 * the blob values of what it keeps. It salvages a damaged table's verified
 * entries into new tables, reads a WAL's intact records, and records what
 * became of a damaged table or a WAL (the reason, what was lost, where its
 * entries went) as it moves the file aside. A WAL's range deletes (kind 6)
 * never go into tables: they are gathered for the new manifest
 * (repair-range-deletes.ts).
 */
import * as path from 'node:path'
import { tableFileName, walFileName } from '../../base/file-names.js'
import type { RangeTombstone } from '../../base/range-tombstones.js'
import type { TableMeta } from '../../manifest/table-meta.js'
import type { FileSystem } from '../../vfs/file-system.js'
import { RECORD_HEADER_BYTES } from '../../wal/record-framing.js'
import { BlobValues, newBlobEffects, type BlobEffects } from './blob-salvage.js'
import { isBlobKind, isRangeDeleteKind } from './entry-kinds.js'
import { LostFolder } from './lost-folder.js'
import { jsonBytes, plural, type Finding, type JsonBytes } from './output.js'
import { tombstoneOfEntry } from './range-deletes.js'
import { RangeDeleteSalvage } from './repair-range-deletes.js'
import type { FileOutcome, RepairReport } from './repair-report.js'
import { newInspection, tableEntries, type TableInspection } from './table-inspection.js'
import { TableSink } from './table-sink.js'
import { readWalContents, type WalEntry } from './wal-inspection.js'

/** The state of one repair and what it does with each file, for both ways of repairing. */
export class Salvager {
  /** What became of each file, in the order met (the report's `files`). */
  readonly files: FileOutcome[] = []
  /** Where every file replaced or left out goes. */
  readonly lostFolder: LostFolder
  /** The next file number to allocate. */
  nextNumber = 1
  /** The newest sequence seen in what is kept. */
  lastSequence = 0
  /** What was lost, in total (the report's `lost`). */
  readonly lost: RepairReport['lost'] = { blocks: 0, records: 0, blobValues: 0, entries: 0, entriesUnknown: false, bytes: 0 }
  /** The blob files and the blob values of the entries kept. */
  readonly blobs: BlobValues
  /** The range deletes found, for the new manifest. */
  readonly rangeDeletes = new RangeDeleteSalvage()

  constructor(
    readonly fs: FileSystem,
    readonly dir: string,
  ) {
    this.lostFolder = new LostFolder(fs, dir, this.files)
    this.blobs = new BlobValues(fs, dir, () => this.allocate())
  }

  /** A new file number. */
  allocate(): number {
    return this.nextNumber++
  }

  /** Copies the verified entries of table `number` into a new table (none when nothing verifies). */
  async salvageTable(number: number): Promise<{ tables: TableMeta[]; inspection: TableInspection; blobs: BlobEffects }> {
    const sink = this.newSink()
    const inspection = newInspection(number)
    const blobs = newBlobEffects()
    try {
      for (const e of tableEntries(this.fs, this.dir, inspection)) {
        const value = isBlobKind(e.kind) ? await this.blobs.valueFor(e, blobs, inspection.name) : e.value
        if (value === undefined) continue
        const due = sink.add(e.key, e.sequence, e.kind, value)
        if (due !== undefined) await due
      }
    } catch (err) {
      await sink.abandon()
      throw err
    }
    return { tables: await sink.finish(), inspection, blobs }
  }

  /** A sink for new tables whose blob references are counted (each table's blob files are recorded by TableFileWriter). */
  newSink(cutBytes?: number): TableSink {
    const sink = new TableSink(this.fs, this.dir, () => this.allocate(), cutBytes)
    sink.onBlobReference = (reference) => this.blobs.count(reference)
    return sink
  }

  /** Reports a damaged table whose verified entries went into `tables`, and moves it aside. */
  recordDamagedTable(insp: TableInspection, level: number | undefined, tables: TableMeta[], expectedEntries: number | undefined, newLevel = level, blobs = newBlobEffects()): void {
    const names = tables.map((t) => tableFileName(t.number))
    const kept = insp.entries - blobs.lost
    const entriesLost = expectedEntries !== undefined && expectedEntries >= kept ? expectedEntries - kept : null
    const dataLost = insp.lostBlocks.length > 0 || insp.outOfOrder > 0 || entriesLost !== 0
    const unit = insp.scanned ? 'unreadable range' : 'damaged data block'
    const losses: string[] = []
    if (insp.lostBlocks.length > 0) losses.push(`${plural(insp.lostBlocks.length, unit)} skipped`)
    if (blobs.lost > 0) losses.push(`${plural(blobs.lost, 'entry', 'entries')} whose blob value cannot be read dropped`)
    if (blobs.copied > 0) losses.push(`${plural(blobs.copied, 'blob value')} copied out of damaged blob files`)
    const what = losses.length > 0 ? losses.join(', ') : dataLost ? 'entries lost' : 'no entry lost'
    this.lost.blocks += insp.lostBlocks.length
    this.lost.bytes += insp.lostBytes + blobs.lostBytes
    this.lost.blobValues += blobs.lost
    if (entriesLost === null) this.lost.entriesUnknown = true
    else this.lost.entries += entriesLost
    const into = tables.length > 0 ? `; ${plural(kept, 'entry', 'entries')} kept in ${names.join(', ')} at level ${newLevel}` : '; nothing could be kept'
    const cause =
      insp.problems.length > 0 || blobs.problems.length === 0
        ? `damaged (${insp.problems.length > 0 ? insp.problems[0].message : blobs.copied > 0 ? 'references values of damaged blob files' : 'unreadable'})`
        : `blob values unreadable (${blobs.problems[0].message})`
    this.lostFolder.moveAside(insp.name, {
      action: 'rewritten',
      level,
      reason: `${cause}: ${what}${into}`,
      newTables: names,
      entriesKept: kept,
      blobValuesLost: blobs.lost,
      blocksLost: insp.lostBlocks.length,
      entriesLost,
      bytesLost: insp.lostBytes,
      lostKeyRanges: insp.lostBlocks.map((b) => {
        const range: { after?: JsonBytes; upTo?: JsonBytes; before?: JsonBytes } = {}
        if (b.after !== undefined) range.after = jsonBytes(b.after, { hex: false })
        if (b.upTo !== undefined) range.upTo = jsonBytes(b.upTo, { hex: false })
        if (b.before !== undefined) range.before = jsonBytes(b.before, { hex: false })
        return range
      }),
      problems: [...insp.problems, ...blobs.problems, ...(blobs.lost > blobs.problems.length ? [{ file: insp.name, message: `${blobs.lost - blobs.problems.length} more entries dropped for their blob values` }] : [])],
    })
  }

  // ---- WALs -------------------------------------------------------------------------

  /**
   * Reads a WAL's intact records (damaged ranges and records that do not
   * decode are skipped and counted): `entries` are its puts and deletes (for
   * tables), `rangeDeletes` its range deletes (kind 6, for the manifest);
   * `newest` is its newest sequence, `newestPoint` that of its puts and deletes.
   */
  readWal(number: number): { entries: WalEntry[]; rangeDeletes: RangeTombstone[]; newest: number; newestPoint: number; outcome: FileOutcome } | undefined {
    const name = walFileName(number)
    let buf: Buffer
    try {
      buf = this.fs.readFile(path.join(this.dir, name))
    } catch (err) {
      this.files.push({ file: name, action: 'missing', reason: `cannot read: ${(err as Error).message}`, problems: [] })
      return undefined
    }
    const contents = readWalContents(buf, name)
    const entries: WalEntry[] = []
    const problems: Finding[] = []
    let recordsLost = 0
    let bytesLost = 0
    let entriesLost: number | null = 0
    for (const r of contents.records) {
      if (r.entries !== undefined) entries.push(...r.entries)
      else {
        problems.push(r.problem!)
        recordsLost++
        bytesLost += r.bytes
        if (entriesLost !== null) entriesLost += r.count
      }
    }
    for (const d of contents.damage) {
      // A torn tail, or garbage at the end that is not a complete record, is an append a crash cut
      // short: never acknowledged, dropped by every open too. A complete record that went bad is a loss.
      const complete = d.headerValid && d.offset + RECORD_HEADER_BYTES + buf.readUInt32LE(d.offset) <= buf.length
      if (d.kind === 'torn' || (d.kind === 'damaged-tail' && !complete)) {
        problems.push({ file: name, offset: d.offset, message: `a tail of ${plural(d.end - d.offset, 'byte')} that a crash cut short was dropped (never acknowledged)` })
        continue
      }
      problems.push({ file: name, offset: d.offset, message: `${d.kind === 'damaged' ? 'damaged record(s) followed by intact records' : 'damaged tail'}: bytes ${d.offset}..${d.end} skipped` })
      recordsLost++
      bytesLost += d.end - d.offset
      entriesLost = null
    }
    const points = entries.filter((e) => !isRangeDeleteKind(e.kind))
    const rangeDeletes = entries.filter((e) => isRangeDeleteKind(e.kind)).map((e) => tombstoneOfEntry(e.key, e.value, e.sequence))
    const outcome: FileOutcome = { file: name, action: 'converted', entriesKept: points.length, recordsLost, entriesLost, bytesLost, problems }
    if (rangeDeletes.length > 0) outcome.rangeDeletesKept = rangeDeletes.length
    const newestPoint = points.reduce((m, e) => Math.max(m, e.sequence), 0)
    return { entries: points, rangeDeletes, newest: rangeDeletes.reduce((m, t) => Math.max(m, t.seq), newestPoint), newestPoint, outcome }
  }

  /** The range deletes of a WAL's intact records, read quietly (none when it cannot be read): for a WAL whose other writes are left out. */
  walRangeDeletes(number: number): RangeTombstone[] {
    let buf: Buffer
    try {
      buf = this.fs.readFile(path.join(this.dir, walFileName(number)))
    } catch {
      return []
    }
    const out: RangeTombstone[] = []
    for (const r of readWalContents(buf, walFileName(number)).records) {
      for (const e of r.entries ?? []) if (isRangeDeleteKind(e.kind)) out.push(tombstoneOfEntry(e.key, e.value, e.sequence))
    }
    return out
  }

  private countWalLoss(records: number, bytesLost: number, entriesLost: number | null): void {
    this.lost.records += records
    this.lost.bytes += bytesLost
    if (entriesLost === null) this.lost.entriesUnknown = true
    else this.lost.entries += entriesLost
  }

  /** Reports a WAL whose intact entries went into `tables` (counting what it lost), and moves it aside. */
  recordWal(o: FileOutcome, tables: TableMeta[], level: number): void {
    this.countWalLoss(o.recordsLost ?? 0, o.bytesLost ?? 0, o.entriesLost === undefined ? 0 : o.entriesLost)
    const names = tables.map((t) => tableFileName(t.number))
    const lossNote = (o.recordsLost ?? 0) > 0 ? `; ${plural(o.recordsLost!, 'damaged range')} skipped (${plural(o.bytesLost ?? 0, 'byte')}, ${o.entriesLost === null ? 'entries unknown' : plural(o.entriesLost ?? 0, 'entry', 'entries')})` : ''
    this.lostFolder.moveAside(o.file, {
      ...o,
      action: 'converted',
      newTables: names,
      reason: `${plural(o.entriesKept ?? 0, 'entry', 'entries')} from intact records written to ${names.length > 0 ? names.join(', ') : 'no table'} at level ${level}${rangeNote(o)}${lossNote}`,
    })
  }
}

/** `; N range deletes carried into the new manifest`, for a WAL that held some. */
export function rangeNote(o: FileOutcome): string {
  return (o.rangeDeletesKept ?? 0) > 0 ? `; ${plural(o.rangeDeletesKept!, 'range delete')} carried into the new manifest as range tombstones` : ''
}
