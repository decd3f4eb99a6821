/**
 * What `strata check` reports (also its `--json` output), and how it is
 * printed: every problem and warning, then a summary of what was checked
 * (docs/cli.md, "strata check").
 */
import { bytes, compressionRatio, count, plural, showFinding, type Finding, type Out } from './output.js'
import type { JsonRangeTombstone } from './range-deletes.js'
import type { TableInspection } from './table-inspection.js'

/**
 * How a table's (or all tables') data blocks are stored: the blocks that read
 * (checksum verified, decompressed), those of them LZ4-compressed, their
 * stored bytes (trailers excluded) and raw bytes, and the ratio raw / stored
 * (null: no block read).
 */
export interface BlockCompression {
  compressedBlocks: number
  storedDataBytes: number
  rawDataBytes: number
  compressionRatio: number | null
}

/** One table checked, as the report lists it. */
export type CheckedTable = { file: string; level: number; bytes: number; entries: number; dataBlocks: number; blobReferences: number; ok: boolean } & BlockCompression

/** Everything `strata check` found; also its `--json` output. */
export interface CheckReport {
  dir: string
  /** No problems (warnings allowed). */
  ok: boolean
  problems: Finding[]
  warnings: Finding[]
  /** Informational lines (a concurrent writer's doings, files not checked). */
  notes: string[]
  marker?: { id: string; version: number }
  lock?: { pid: number; host?: string }
  /** `rangeTombstones`: the live range tombstones after the last edit. */
  manifest?: { file: string; records: number; bytes: number; logNumber: number; nextFileNumber: number; lastSequence: number; rangeTombstones: number }
  levels: Array<{ level: number; tables: number; entries: number; bytes: number }>
  tables: CheckedTable[]
  /** The data blocks of every table listed, in total (the fields as per table). */
  blocks: { dataBlocks: number } & BlockCompression
  /**
   * Blob files: those the manifest lists (counts and garbage as it records
   * them), or without a usable manifest those in the directory (counts from
   * their footers, garbage null). `references`: the references the tables
   * read hold into the file.
   */
  blobFiles: Array<{ file: string; bytes: number; valueCount: number; valueBytes: number; garbageCount: number | null; garbageBytes: number | null; references: number; ok: boolean }>
  /** `rangeDeletes`: the entries of kind 6 (range deletes) among `entries`. */
  wals: Array<{ file: string; bytes: number; records: number; entries: number; rangeDeletes: number; firstSequence?: number; lastSequence?: number; ok: boolean }>
  /** The live range tombstones of the manifest, by sequence (docs/design.md, "Range deletes"). */
  rangeTombstones: JsonRangeTombstone[]
}

/** The report's line for table `t` at `level` (-1: no manifest used). */
export function checkedTable(t: TableInspection, level: number): CheckedTable {
  return {
    file: t.name,
    level,
    bytes: t.fileBytes,
    entries: t.entries,
    dataBlocks: t.dataBlocks,
    blobReferences: t.blobEntries,
    ok: !t.missing && t.problems.length === 0,
    compressedBlocks: t.compressedBlocks,
    storedDataBytes: t.storedDataBytes,
    rawDataBytes: t.rawDataBytes,
    compressionRatio: compressionRatio(t.storedDataBytes, t.rawDataBytes),
  }
}

/** The totals over the tables listed (the report's `blocks`). */
export function dataBlockTotals(tables: readonly CheckedTable[]): CheckReport['blocks'] {
  const sum = (f: (t: CheckedTable) => number): number => tables.reduce((n, t) => n + f(t), 0)
  const storedDataBytes = sum((t) => t.storedDataBytes)
  const rawDataBytes = sum((t) => t.rawDataBytes)
  return { dataBlocks: sum((t) => t.dataBlocks), compressedBlocks: sum((t) => t.compressedBlocks), storedDataBytes, rawDataBytes, compressionRatio: compressionRatio(storedDataBytes, rawDataBytes) }
}

/** Prints the findings, then the summary. */
export async function printCheck(r: CheckReport, out: Out): Promise<void> {
  for (const f of r.problems) await out.line(`error: ${showFinding(f)}`)
  for (const f of r.warnings) await out.line(`warning: ${showFinding(f)}`)
  if (r.problems.length + r.warnings.length > 0) await out.line()
  await out.line(`strata check ${r.dir}`)
  if (r.marker !== undefined) await out.line(`  marker    id ${r.marker.id}, directory format ${r.marker.version}`)
  if (r.manifest !== undefined) {
    const m = r.manifest
    await out.line(`  manifest  ${m.file} (${plural(m.records, 'record')}, ${bytes(m.bytes)}): log number ${m.logNumber}, next file ${m.nextFileNumber}, last sequence ${m.lastSequence}`)
  }
  const tableBytes = r.tables.reduce((n, t) => n + t.bytes, 0)
  const tableEntries = r.tables.reduce((n, t) => n + t.entries, 0)
  const perLevel = r.levels.map((l) => `L${l.level}: ${l.tables}`).join(', ')
  const nothing = r.manifest === undefined && r.tables.length === 0 && r.wals.length === 0
  if (!nothing) await out.line(`  tables    ${plural(r.tables.length, 'table')}${perLevel === '' ? '' : ` (${perLevel})`}, ${plural(tableEntries, 'entry', 'entries')} read, ${bytes(tableBytes)}`)
  if (r.tables.length > 0) {
    const d = r.blocks
    const ratio = d.compressionRatio === null ? '' : ` (ratio ${d.compressionRatio.toFixed(2)})`
    await out.line(`  blocks    ${plural(d.dataBlocks, 'data block')}, ${count(d.compressedBlocks)} LZ4-compressed: ${bytes(d.storedDataBytes)} stored, ${bytes(d.rawDataBytes)} raw${ratio}`)
  }
  if (r.blobFiles.length > 0) {
    const fileBytes = r.blobFiles.reduce((n, b) => n + b.bytes, 0)
    const values = r.blobFiles.reduce((n, b) => n + b.valueCount - (b.garbageCount ?? 0), 0)
    const valueBytes = r.blobFiles.reduce((n, b) => n + b.valueBytes, 0)
    const garbage = r.blobFiles.reduce((n, b) => n + (b.garbageBytes ?? 0), 0)
    const references = r.blobFiles.reduce((n, b) => n + b.references, 0)
    const split = r.blobFiles.every((b) => b.garbageBytes !== null)
      ? `${plural(values, 'live value')}, ${bytes(valueBytes - garbage)} live, ${bytes(garbage)} garbage`
      : `${plural(values, 'value')}, ${bytes(valueBytes)} (garbage not known without the manifest)`
    await out.line(`  blobs     ${plural(r.blobFiles.length, 'blob file')}, ${bytes(fileBytes)}: ${split}; the tables read hold ${plural(references, 'reference')} into them`)
  }
  const walRecords = r.wals.reduce((n, w) => n + w.records, 0)
  const walEntries = r.wals.reduce((n, w) => n + w.entries, 0)
  const seqs = r.wals.filter((w) => w.firstSequence !== undefined)
  const seqRange = seqs.length > 0 ? `, sequences ${seqs[0].firstSequence}..${seqs[seqs.length - 1].lastSequence}` : ''
  if (!nothing) await out.line(`  WALs      ${plural(r.wals.length, 'WAL')}${r.wals.length > 0 ? ` (${r.wals.map((w) => w.file).join(', ')})` : ''}: ${plural(walRecords, 'record')}, ${plural(walEntries, 'entry', 'entries')}${seqRange}`)
  await printRangeDeletes(r, out)
  for (const n of r.notes) await out.line(`  note      ${n}`)
  const verdict = r.ok ? 'OK' : nothing && r.marker === undefined ? 'NOT A DATABASE' : 'DAMAGED'
  await out.line(`result: ${verdict}: ${plural(r.problems.length, 'problem')}, ${plural(r.warnings.length, 'warning')}`)
}

/** Most live range tombstones listed one per line in the text summary. */
const MAX_TOMBSTONES_LISTED = 10

/** `ranges`: the manifest's live range tombstones (the first few listed) and the range deletes of the WALs, when there are any. */
async function printRangeDeletes(r: CheckReport, out: Out): Promise<void> {
  const inWals = r.wals.reduce((n, w) => n + w.rangeDeletes, 0)
  if (r.rangeTombstones.length === 0 && inWals === 0) return
  const parts: string[] = []
  if (r.manifest !== undefined) parts.push(`${plural(r.rangeTombstones.length, 'live range tombstone')} in the manifest`)
  if (inWals > 0) parts.push(`${plural(inWals, 'range delete')} in the WALs`)
  await out.line(`  ranges    ${parts.join(', ')}`)
  const show = (text: string, encoding: string | null): string => (encoding === 'hex' ? `0x${text}` : JSON.stringify(text))
  for (const t of r.rangeTombstones.slice(0, MAX_TOMBSTONES_LISTED)) {
    await out.line(`            @${t.sequence} [${show(t.start, t.startEncoding)}, ${t.end === null ? 'no end' : show(t.end, t.endEncoding)})`)
  }
  if (r.rangeTombstones.length > MAX_TOMBSTONES_LISTED) await out.line(`            … and ${count(r.rangeTombstones.length - MAX_TOMBSTONES_LISTED)} more`)
}
