/**
 * `strata repair` when CURRENT and the manifest it names read back whole:
 * the tables keep their levels. An intact table whose blob references all
 * read stays as it is; a damaged one is copied entry by entry into a new
 * table at its level (its key range and sequences can only shrink, so the
 * level's invariants hold); a table the manifest does not name and a WAL
 * below the log number are moved aside; the WALs at or above it become new
 * L0 tables (their writes are newer than every table's). The manifest's
 * range tombstones are kept, and the WALs' range deletes join them (the new
 * manifest lists them; tables cannot hold them).
 */
import { tableFileName, walFileName } from '../../base/file-names.js'
import type { TableMeta } from '../../manifest/table-meta.js'
import { NUM_LEVELS } from '../../manifest/table-version-edit.js'
import type { RecoveredState } from '../../manifest/table-version-set.js'
import type { DirectoryListing } from './database-directory.js'
import { isBlobKind, payloadOf } from './entry-kinds.js'
import type { Salvager } from './salvager.js'
import { isIntact, newInspection, tableEntries } from './table-inspection.js'
import { writeSorted } from './table-merge.js'

/** The manifest is readable: keep its levels, rewrite damaged tables, turn live WALs into L0 tables. */
export async function repairInPlace(s: Salvager, listing: DirectoryListing, state: RecoveredState, levels: TableMeta[][]): Promise<void> {
  for (const t of state.tableVersion.rangeTombstones) s.rangeDeletes.add(t, 'manifest')
  const named = new Set<number>()
  for (let level = 0; level < NUM_LEVELS; level++) {
    for (const meta of state.tableVersion.levels[level]) {
      named.add(meta.number)
      // Read whole; the blob references are kept to see whether each one reads as it is.
      const insp = newInspection(meta.number)
      const references: Buffer[] = []
      for (const e of tableEntries(s.fs, s.dir, insp, { meta, lastSequence: Infinity, ignoreBlobFiles: true })) {
        if (isBlobKind(e.kind)) references.push(Buffer.from(payloadOf(e.kind, e.value)))
      }
      if (insp.missing) {
        s.files.push({ file: insp.name, action: 'missing', level, reason: 'named by the manifest, but the file does not exist', entriesLost: meta.entryCount, problems: [] })
        s.lost.entries += meta.entryCount
        continue
      }
      s.lastSequence = Math.max(s.lastSequence, insp.maxSequence)
      if (isIntact(insp) && references.every((r) => s.blobs.checkAsIs(r) === undefined)) {
        for (const r of references) s.blobs.count(r)
        // The manifest's record of the table's blob files is written anew from its references.
        const blobFiles = s.blobs.filesOf(references)
        const { blobFiles: _, ...rest } = meta
        levels[level].push(blobFiles.length > 0 ? { ...rest, blobFiles } : rest)
        s.files.push({ file: insp.name, action: 'kept', level, entriesKept: insp.entries, problems: [] })
        continue
      }
      const written = await s.salvageTable(meta.number)
      levels[level].push(...written.tables)
      s.recordDamagedTable(written.inspection, level, written.tables, meta.entryCount, level, written.blobs)
    }
  }
  for (const n of listing.tables) {
    if (!named.has(n)) s.lostFolder.moveAside(tableFileName(n), { action: 'moved-aside', reason: 'not named by the manifest (a leftover of a flush or compaction)' })
  }
  for (const n of listing.wals) {
    if (n < state.logNumber) {
      s.lostFolder.moveAside(walFileName(n), { action: 'moved-aside', reason: `below the log number ${state.logNumber}: its writes are in tables` })
      continue
    }
    const wal = s.readWal(n)
    if (wal === undefined) continue
    s.lastSequence = Math.max(s.lastSequence, wal.newest)
    for (const t of wal.rangeDeletes) s.rangeDeletes.add(t, 'wal')
    const sink = s.newSink()
    await writeSorted(sink, wal.entries)
    const tables = await sink.finish()
    levels[0].push(...tables)
    s.recordWal(wal.outcome, tables, 0)
  }
}
