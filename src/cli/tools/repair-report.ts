/**
 * What `strata repair` reports, and how it is printed: the fate of every file
 * it met (kept, rewritten, converted, moved aside, missing, written,
 * replaced) with why and what was lost from it, the totals lost, the
 * manifest it wrote with the tables, blob files and range tombstones it
 * names, what became of the range deletes (and a warning when some may be
 * lost), and whether the database opened and read back afterwards. The report
 * is also the `--json` output.
 */
import { bytes, count, plural, showFinding, type Finding, type JsonBytes, type Out } from './output.js'
import type { JsonRangeTombstone } from './range-deletes.js'
import type { RangeDeleteOutcome } from './repair-range-deletes.js'

/** What became of one file. */
export interface FileOutcome {
  file: string
  action: 'kept' | 'rewritten' | 'converted' | 'moved-aside' | 'missing' | 'written' | 'replaced'
  level?: number
  /** Why it was moved aside, rewritten or replaced. */
  reason?: string
  /** Where it went, relative to the database directory. */
  movedTo?: string
  /** Tables written from it. */
  newTables?: string[]
  entriesKept?: number
  /** Data blocks or WAL ranges that could not be read. */
  blocksLost?: number
  recordsLost?: number
  /** Entries lost, where countable (null: some were lost, how many is not known). */
  entriesLost?: number | null
  bytesLost?: number
  /**
   * Key ranges of lost blocks: keys after `after`, up to `upTo` (the block's
   * last key, when the index says it) or before `before` (the first key kept
   * after it); absent: the start or end of the table, or not known.
   */
  lostKeyRanges?: Array<{ after?: JsonBytes; upTo?: JsonBytes; before?: JsonBytes }>
  /** A table: entries dropped because their blob value could not be read. A blob file: referenced values that could not be read. */
  blobValuesLost?: number
  /** A blob file kept: the values kept tables reference in it, and those they do not (garbage). */
  valuesReferenced?: number
  valuesGarbage?: number
  /** A damaged blob file: the new blob file its readable referenced values were copied into. */
  newBlobFile?: string
  /** A WAL: its range deletes (kind 6), carried into the new manifest as range tombstones (not into tables). */
  rangeDeletesKept?: number
  problems: Finding[]
}

export interface RepairReport {
  dir: string
  mode: 'manifest' | 'rebuild'
  /** Why the database was rebuilt rather than repaired in place. */
  reason?: string
  files: FileOutcome[]
  lost: { blocks: number; records: number; blobValues: number; entries: number; entriesUnknown: boolean; bytes: number }
  /** Where the range tombstones of the new manifest came from, how many were left out, and whether some may be lost. */
  rangeDeletes: RangeDeleteOutcome
  /** What the operator must know beyond the losses counted (range deletes that may be lost). */
  warnings: string[]
  result: {
    manifest: string
    logNumber: number
    nextFileNumber: number
    lastSequence: number
    tables: Array<{ file: string; level: number; entries: number; bytes: number }>
    blobFiles: Array<{ file: string; fileBytes: number; valueCount: number; valueBytes: number; garbageCount: number; garbageBytes: number }>
    /** The range tombstones the new manifest lists, by sequence. */
    rangeTombstones: JsonRangeTombstone[]
  }
  /** Whether open() succeeded afterwards and every key and value could be read. */
  verified: boolean
  liveKeys?: number
  verifyError?: string
}

/** Prints the report: the mode, what became of each file that was not kept as it is, what was lost, the result and the verification. */
export async function printRepair(r: RepairReport, out: Out): Promise<void> {
  await out.line(`strata repair ${r.dir}`)
  if (r.mode === 'manifest') await out.line('mode: CURRENT and its manifest are readable: tables keep their levels, damaged ones are rewritten, WALs become L0 tables')
  else await out.line(`mode: rebuilt from the tables and WALs: ${r.reason}`)
  const kept = r.files.filter((f) => f.action === 'kept' && f.file.endsWith('.sst'))
  if (kept.length > 0) await out.line(`  ${plural(kept.length, 'table')} kept unchanged (${count(kept.reduce((n, f) => n + (f.entriesKept ?? 0), 0))} entries)`)
  const keptBlobs = r.files.filter((f) => f.action === 'kept' && f.file.endsWith('.blob'))
  if (keptBlobs.length > 0) {
    const referenced = keptBlobs.reduce((n, f) => n + (f.valuesReferenced ?? 0), 0)
    const garbage = keptBlobs.reduce((n, f) => n + (f.valuesGarbage ?? 0), 0)
    await out.line(`  ${plural(keptBlobs.length, 'blob file')} kept unchanged (${plural(referenced, 'value')} referenced by the tables kept, ${count(garbage)} garbage)`)
  }
  for (const f of r.files) {
    if (f.action === 'kept') continue
    const level = f.level !== undefined ? ` (L${f.level})` : ''
    const moved = f.movedTo !== undefined ? `; moved to ${f.movedTo}` : ''
    await out.line(`  ${f.file}${level}: ${f.action}${f.reason !== undefined ? `: ${f.reason}` : ''}${moved}`)
    for (const range of f.lostKeyRanges ?? []) {
      const show = (b: JsonBytes): string => (b.encoding === 'hex' ? `0x${b.text}` : JSON.stringify(b.text))
      const from = range.after !== undefined ? `after ${show(range.after)}` : 'from the start of the table'
      const to = range.upTo !== undefined ? `up to ${show(range.upTo)}` : range.before !== undefined ? `before ${show(range.before)}` : 'to the end of the table'
      await out.line(`      lost keys ${from}, ${to}`)
    }
    for (const p of f.problems.slice(1)) await out.line(`      ${showFinding(p)}`)
  }
  const l = r.lost
  const entries = l.entriesUnknown ? `${count(l.entries)}+ entries (some not countable)` : plural(l.entries, 'entry', 'entries')
  await out.line(`lost: ${plural(l.blocks, 'data block')}, ${plural(l.records, 'WAL range')}, ${plural(l.blobValues, 'blob value')}, ${entries}, ${bytes(l.bytes)}`)
  const rd = r.rangeDeletes
  if (rd.fromManifest + rd.fromWals > 0) {
    const dropped = rd.dropped > 0 ? `; ${count(rd.dropped)} left out: they cover nothing in the tables kept` : ''
    await out.line(`range deletes: ${plural(rd.kept, 'range tombstone')} in the new manifest (${count(rd.fromManifest)} from the manifest, ${count(rd.fromWals)} from WALs${dropped})`)
  }
  for (const w of r.warnings) await out.line(`warning: ${w}`)
  const perLevel = new Map<number, number>()
  for (const t of r.result.tables) perLevel.set(t.level, (perLevel.get(t.level) ?? 0) + 1)
  const levels = [...perLevel.entries()].sort(([a], [b]) => a - b).map(([level, n]) => `L${level}: ${n}`).join(', ')
  await out.line(
    `result: ${r.result.manifest} names ${plural(r.result.tables.length, 'table')}${levels === '' ? '' : ` (${levels})`}${r.result.blobFiles.length > 0 ? ` and ${plural(r.result.blobFiles.length, 'blob file')}` : ''}` +
      `${r.result.rangeTombstones.length > 0 ? `, ${plural(r.result.rangeTombstones.length, 'range tombstone')}` : ''}, last sequence ${r.result.lastSequence}, next file ${r.result.nextFileNumber}`,
  )
  if (r.verified) await out.line(`verify: open() succeeded and read ${plural(r.liveKeys ?? 0, 'live key')} with their values`)
  else await out.line(`verify: FAILED: ${r.verifyError}`)
}
