/**
 * `strata repair` when CURRENT or its manifest cannot be used: every table
 * and WAL that may hold live data is merged into new, non-overlapping tables
 * at one level (sequence numbers kept, so newer versions win wherever they
 * came from). What older manifests still say is used to leave out tables an
 * edit deleted and WALs below a log number, and a WAL whose writes are all
 * older than the tables' newest is left out too: those hold old versions that
 * a compaction may since have dropped with their deletes, and merging them
 * would bring deleted keys back.
 *
 * Range deletes: every range tombstone a readable record of a manifest
 * present added, and the range deletes (kind 6) of every WAL, those left out
 * included, are carried into the new manifest (repair-range-deletes.ts);
 * when the manifest CURRENT names does not read whole, some may be lost, and
 * the report says so.
 */
import * as path from 'node:path'
import { manifestFileName, tableFileName, walFileName } from '../../base/file-names.js'
import { RECORD_HEADER_BYTES } from '../../wal/record-framing.js'
import type { TableMeta } from '../../manifest/table-meta.js'
import { NUM_LEVELS } from '../../manifest/table-version-edit.js'
import { DEFAULT_OPTIONS } from '../../options.js'
import { newBlobEffects, type BlobEffects } from './blob-salvage.js'
import { readCurrent, type DirectoryListing } from './database-directory.js'
import { replayManifest, type ManifestReplay } from './manifest-replay.js'
import { plural } from './output.js'
import type { FileOutcome } from './repair-report.js'
import type { Salvager } from './salvager.js'
import { inspectTable, isIntact, newInspection, tableEntries, type EntryView, type TableInspection } from './table-inspection.js'
import { EMPTY, mergeInto, sortedWalEntries, type Source } from './table-merge.js'
import type { WalEntry } from './wal-inspection.js'

/**
 * No usable manifest: merge every table and WAL that may hold live data
 * into new non-overlapping tables at one level.
 */
export async function rebuild(s: Salvager, listing: DirectoryListing, levels: TableMeta[][]): Promise<void> {
  // What the manifests present still say, even damaged: tables deleted by an edit, the highest log number, range tombstones.
  const deleted = new Set<number>()
  let logNumber = 0
  const cur = readCurrent(s.fs, s.dir)
  let currentReadWhole = false
  for (const m of listing.manifests) {
    let buf: Buffer
    try {
      buf = s.fs.readFile(path.join(s.dir, manifestFileName(m)))
    } catch {
      continue
    }
    const replay = replayManifest(buf, manifestFileName(m))
    for (const n of replay.deleted) deleted.add(n)
    logNumber = Math.max(logNumber, replay.logNumber)
    for (const t of replay.rangeTombstonesAdded.values()) s.rangeDeletes.add(t, 'manifest')
    if ('manifestNumber' in cur && cur.manifestNumber === m) currentReadWhole = readWhole(replay, buf)
  }
  s.rangeDeletes.manifestIncomplete = !currentReadWhole
  const sources: number[] = []
  for (const n of listing.tables) {
    if (deleted.has(n)) s.lostFolder.moveAside(tableFileName(n), { action: 'moved-aside', reason: 'a manifest edit deleted it (a leftover of a compaction): its data is in newer tables' })
    else sources.push(n)
  }
  // The newest write any table holds: a WAL holding nothing newer was flushed already.
  let tableMaxSequence = 0
  const inspections = new Map<number, TableInspection>()
  for (const n of sources) {
    const insp = inspectTable(s.fs, s.dir, n)
    inspections.set(n, insp)
    tableMaxSequence = Math.max(tableMaxSequence, insp.maxSequence)
  }
  const wals: Array<{ entries: WalEntry[]; newest: number; outcome: FileOutcome }> = []
  // A WAL's range deletes are carried whether or not its other writes are (a range delete stays true).
  const carried = (n: number): string => (n > 0 ? `; its ${plural(n, 'range delete')} carried into the new manifest` : '')
  for (const n of listing.wals) {
    if (n < logNumber) {
      const rangeDeletes = s.walRangeDeletes(n)
      for (const t of rangeDeletes) s.rangeDeletes.add(t, 'wal')
      s.lostFolder.moveAside(walFileName(n), { action: 'moved-aside', reason: `below the log number ${logNumber} a manifest records: its writes are in tables${carried(rangeDeletes.length)}` })
      continue
    }
    const wal = s.readWal(n)
    if (wal === undefined) continue
    for (const t of wal.rangeDeletes) s.rangeDeletes.add(t, 'wal')
    // Range deletes never reach tables: whether it was flushed is told by its puts and deletes.
    const newest = wal.newestPoint
    if (newest <= tableMaxSequence) {
      s.lostFolder.moveAside(walFileName(n), {
        action: 'moved-aside',
        reason: `${newest === 0 ? 'holds no intact put or delete' : `its newest put or delete (sequence ${newest}) is not newer than the tables' (${tableMaxSequence}): already flushed`}${carried(wal.rangeDeletes.length)}`,
      })
      continue
    }
    wals.push(wal)
  }
  // The merge: one source per table (verified blocks only) and per WAL (sorted).
  const outs: TableInspection[] = []
  const generators: Array<Generator<EntryView, void, undefined>> = []
  const all: Source[] = []
  for (const n of sources) {
    const insp = newInspection(n)
    outs.push(insp)
    const g = tableEntries(s.fs, s.dir, insp)
    generators.push(g)
    const source: Source = {
      table: n,
      entry: undefined as unknown as EntryView,
      advance(): boolean {
        const r = g.next()
        if (r.done) return false
        source.entry = r.value
        return true
      },
    }
    all.push(source)
  }
  for (const w of wals) {
    const entries = sortedWalEntries(w.entries)
    let i = -1
    const view: EntryView = { key: Buffer.alloc(0), sequence: 0, kind: 0, value: Buffer.alloc(0) }
    all.push({
      entry: view,
      advance(): boolean {
        if (++i >= entries.length) return false
        const e = entries[i]
        view.key = e.key
        view.sequence = e.sequence
        view.kind = e.kind
        view.value = e.value ?? EMPTY
        return true
      },
    })
  }
  const sink = s.newSink(DEFAULT_OPTIONS.targetTableBytes)
  const effects = new Map<number, BlobEffects>()
  const blobValue = async (e: EntryView, source: Source): Promise<Uint8Array | undefined> => {
    let fx = effects.get(source.table!)
    if (fx === undefined) effects.set(source.table!, (fx = newBlobEffects()))
    return s.blobs.valueFor(e, fx, tableFileName(source.table!))
  }
  try {
    await mergeInto(sink, all, blobValue)
  } catch (err) {
    await sink.abandon()
    throw err
  } finally {
    for (const g of generators) g.return()
  }
  const tables = await sink.finish()
  const level = levelFor(tables.reduce((n, t) => n + t.fileBytes, 0))
  levels[level].push(...tables)
  for (const t of tables) s.lastSequence = Math.max(s.lastSequence, t.smallestSeq, t.largestSeq)
  for (const insp of outs) s.lastSequence = Math.max(s.lastSequence, insp.maxSequence)
  for (const w of wals) s.lastSequence = Math.max(s.lastSequence, w.newest)
  const names = tables.map((t) => tableFileName(t.number))
  for (const insp of outs) {
    const before = inspections.get(insp.number)!
    const fx = effects.get(insp.number)
    if (isIntact(before) && (fx === undefined || (fx.lost === 0 && fx.copied === 0))) {
      s.lostFolder.moveAside(insp.name, { action: 'rewritten', reason: `intact; merged into the new tables at level ${level}`, newTables: names, entriesKept: insp.entries })
    } else {
      s.recordDamagedTable(insp, undefined, tables, before.footer?.entryCount, level, fx)
    }
  }
  for (const w of wals) s.recordWal(w.outcome, tables, level)
}

/** Whether every record of a manifest read back and decoded (a torn last record, an append never completed, aside). */
function readWhole(replay: ManifestReplay, buf: Buffer): boolean {
  if (replay.walk.records.length === 0 || replay.edits.some((e) => e.problem !== undefined)) return false
  return replay.walk.damage.every((d) => d.kind === 'torn' || (d.kind === 'damaged-tail' && !(d.headerValid && d.offset + RECORD_HEADER_BYTES + buf.readUInt32LE(d.offset) <= buf.length)))
}

/** The shallowest level of 1..6 whose target size (open()'s defaults) holds `total` bytes. */
function levelFor(total: number): number {
  let level = 1
  let target = DEFAULT_OPTIONS.levelBaseBytes
  while (total > target && level < NUM_LEVELS - 1) {
    level++
    target *= DEFAULT_OPTIONS.levelSizeMultiplier
  }
  return level
}
