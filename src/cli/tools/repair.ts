/**
 * `strata repair <dir>`: salvages a damaged database, as LevelDB's RepairDB
 * does, without deleting any file (docs/cli.md, "strata repair").
 *
 * With the LOCK held:
 *  - the STRATADB marker is kept (a damaged one is moved aside and a new one
 *    written; a missing one is written);
 *  - when CURRENT and the manifest it names read back whole, their tables keep
 *    their levels: an intact table stays as it is, a damaged one is copied
 *    entry by entry into a new table at its level, keeping every entry of a
 *    block whose checksum verifies (its key range and sequences can only
 *    shrink, so the level's invariants hold), and the WALs at or above the
 *    log number become new L0 tables (their writes are newer than every
 *    table's);
 *  - otherwise the database is rebuilt: every table and WAL that may hold
 *    live data is merged into new, non-overlapping tables at one level
 *    (sequence numbers kept, so newer versions win wherever they came from).
 *    What older manifests still say is used to leave out tables an edit
 *    deleted and WALs below a log number, and a WAL whose writes are all older
 *    than the tables' newest is left out too: those hold old versions that a
 *    compaction may since have dropped with their deletes, and merging them
 *    would bring deleted keys back;
 *  - blob values: every blob file is read whole first. A reference (an entry
 *    of kind 3, or 5 behind its expiry time) into an intact blob file must
 *    name one of its records; one into a damaged blob file is read and
 *    checked as the engine reads it, and a value that verifies is copied into
 *    a new blob file (kind 5 keeps its expiry time). An entry whose
 *    value cannot be read (a missing or damaged blob file, a malformed
 *    reference) is unreadable data, as an entry of a damaged block is: it is
 *    dropped, and the table holding it is rewritten without it (a table whose
 *    references all read stays as it is);
 *  - range deletes: tables never hold them (a flush moves them from the
 *    memtable into the manifest), so the WALs' range deletes (kind 6) are not
 *    written into tables but listed by the new manifest as range tombstones,
 *    beside the manifest's own (repairing in place) or every one a readable
 *    manifest record added (rebuilding: those only a lost manifest held are
 *    lost, and the report warns that deleted keys may show again);
 *    repair-range-deletes.ts;
 *  - a fresh manifest names exactly the tables kept and written, and the blob
 *    files they reference (value counts from the files' footers, garbage: the
 *    values no kept table references), and the range tombstones that still
 *    cover something, with the highest sequence seen, and CURRENT is switched
 *    to it; a blob file no kept table references is moved aside;
 *  - every file replaced or left out is moved into `<dir>/lost/`: linked
 *    there before the switch, unlinked from the directory after it, so that
 *    a crash at any point loses nothing.
 * Then the database is opened with `open()` and every key and value read once.
 * The two ways are repair-in-place.ts and repair-rebuild.ts, working through a
 * Salvager (salvager.ts); blob values are in blob-salvage.ts and
 * repair-blob-files.ts, the moves in lost-folder.ts, the report in
 * repair-report.ts.
 */
import { randomUUID } from 'node:crypto'
import * as path from 'node:path'
import { initChecksum } from '../../base/checksum.js'
import { StrataError } from '../../base/errors.js'
import { CURRENT_FILE, MARKER_FILE, MARKER_TEMP_FILE, blobFileName, manifestFileName, parseFileName, tableFileName } from '../../base/file-names.js'
import { acquireLock } from '../../base/lock-file.js'
import { DIRECTORY_FORMAT_VERSION, decodeMarker, encodeMarker } from '../../engine/directory-identity.js'
import type { BlobFileMeta } from '../../manifest/blob-file-meta.js'
import type { TableMeta } from '../../manifest/table-meta.js'
import { NUM_LEVELS, emptyEdit } from '../../manifest/table-version-edit.js'
import { TableVersionSet, type RecoveredState } from '../../manifest/table-version-set.js'
import { DEFAULT_OPTIONS } from '../../options.js'
import { syncDirectory, writeFully, type File, type FileSystem } from '../../vfs/file-system.js'
import { nodeFileSystem } from '../../vfs/node-file-system.js'
import { listDirectory, requireDirectory, type DirectoryListing } from './database-directory.js'
import { plural } from './output.js'
import { rangeJson } from './range-deletes.js'
import { settleBlobFiles } from './repair-blob-files.js'
import { repairInPlace } from './repair-in-place.js'
import { LOST_RANGE_DELETES_WARNING } from './repair-range-deletes.js'
import type { RepairReport } from './repair-report.js'
import { rebuild } from './repair-rebuild.js'
import { Salvager } from './salvager.js'

export { LOST_DIR } from './lost-folder.js'
export { printRepair, type FileOutcome, type RepairReport } from './repair-report.js'

/** Runs the repair; throws UsageError when `dir` is not an existing directory, other errors when it cannot be repaired. */
export async function runRepair(dir: string, fs: FileSystem = nodeFileSystem): Promise<RepairReport> {
  requireDirectory(fs, dir)
  await initChecksum()
  refuseForeign(fs, dir, listDirectory(fs, dir))
  const release = acquireLock(fs, dir)
  let report: RepairReport
  try {
    report = await repair(new Salvager(fs, dir))
  } finally {
    release()
  }
  try {
    // Loaded only now: nothing before needs the engine.
    const { open } = await import('../../index.js')
    const db = await open(dir, fs === nodeFileSystem ? { autoCompaction: false } : { autoCompaction: false, fileSystem: fs })
    try {
      // Values too: every blob reference is resolved, so a blob file the manifest lacks cannot go unnoticed.
      let n = 0
      for await (const _ of db.iterator()) n++
      report.liveKeys = n
      report.verified = true
    } finally {
      await db.close()
    }
  } catch (err) {
    report.verified = false
    report.verifyError = err instanceof Error ? err.message : String(err)
  }
  return report
}

/** Refuses directories that are not stratadb databases (nothing is changed in them). */
function refuseForeign(fs: FileSystem, dir: string, listing: DirectoryListing): void {
  if (listing.names.includes('LOG') || listing.names.includes('LOG.old') || listing.names.some((n) => n.endsWith('.ldb'))) {
    throw new StrataError('STRATA_NOT_A_DATABASE', `${dir} is a LevelDB/classic-level database, not a stratadb one; nothing was changed`)
  }
  if (listing.hasMarker) {
    try {
      decodeMarker(fs.readFile(path.join(dir, MARKER_FILE)), MARKER_FILE, dir)
    } catch (err) {
      // A newer stratadb's database: not ours to rewrite. A damaged marker is replaced.
      if (err instanceof StrataError && err.code === 'STRATA_NOT_A_DATABASE') throw err
    }
    return
  }
  const ours = listing.hasCurrent || listing.manifests.length > 0 || listing.tables.length > 0 || listing.wals.length > 0
  if (!ours) throw new StrataError('STRATA_NOT_A_DATABASE', `${dir} holds no stratadb database (no ${MARKER_FILE} marker, no tables, WALs or manifest); nothing was changed`)
}

/** Repairs the directory (the LOCK held): the marker, the tables and WALs one of the two ways, the blob files, a new manifest, lost/. */
async function repair(s: Salvager): Promise<RepairReport> {
  const listing = listDirectory(s.fs, s.dir)
  s.lostFolder.readExisting()
  let maxNumber = 0
  for (const name of [...listing.names, ...s.lostFolder.names]) {
    const f = parseFileName(name.replace(/\.\d+$/, ''))
    if (f !== undefined) maxNumber = Math.max(maxNumber, f.number)
  }
  fixMarker(s, listing)

  let state: RecoveredState | undefined
  let reason: string | undefined
  try {
    state = TableVersionSet.recover(s.fs, s.dir)
    if (state === undefined) reason = 'there is no CURRENT'
  } catch (err) {
    reason = `CURRENT and the manifest cannot be used (${(err instanceof Error ? err.message : String(err)).replace(/^corruption: /, '')})`
  }
  s.nextNumber = Math.max(state?.nextFileNumber ?? 0, maxNumber + 1)
  s.lastSequence = state?.lastSequence ?? 0

  const levels: TableMeta[][] = Array.from({ length: NUM_LEVELS }, () => [])
  let blobFiles: BlobFileMeta[]
  try {
    s.blobs.load(listing.blobs)
    if (state !== undefined) await repairInPlace(s, listing, state, levels)
    else await rebuild(s, listing, levels)
    blobFiles = await settleBlobFiles(s, state)
  } catch (err) {
    s.blobs.abandon()
    throw err
  }

  // Every manifest is replaced by the new one; the old CURRENT text is kept when it was not usable.
  for (const m of listing.manifests) s.lostFolder.moveAside(manifestFileName(m), { action: 'replaced', reason: 'replaced by the new manifest' })
  if (state === undefined && listing.hasCurrent) s.lostFolder.moveAside(CURRENT_FILE, { action: 'replaced', reason: 'replaced by a CURRENT naming the new manifest' }, true)

  // Link everything to move into lost/, then switch the manifest, then drop the old names.
  s.lostFolder.linkMoves()
  const edit = emptyEdit()
  levels.forEach((tables, level) => tables.forEach((table) => edit.added.push({ level, table })))
  edit.blobsAdded = blobFiles.map((b) => ({ ...b, garbageCount: 0, garbageBytes: 0 }))
  edit.blobGarbage = blobFiles.filter((b) => b.garbageCount > 0).map((b) => ({ number: b.number, count: b.garbageCount, bytes: b.garbageBytes }))
  const { tableVersion, outcome: rangeDeletes } = s.rangeDeletes.settle(edit, levels.some((l) => l.length > 0))
  s.lastSequence = Math.max(s.lastSequence, s.rangeDeletes.newest)
  const logNumber = s.allocate()
  const set = new TableVersionSet(s.fs, s.dir, { tableVersion, logNumber, nextFileNumber: s.nextNumber, lastSequence: s.lastSequence }, DEFAULT_OPTIONS.maxManifestBytes)
  try {
    set.writeSnapshotManifest(tableVersion, logNumber, s.lastSequence)
  } finally {
    set.close()
  }
  const manifest = manifestFileName(set.manifestFileNumber)
  const blobsNamed = blobFiles.length > 0 ? ` and ${plural(blobFiles.length, 'blob file')}` : ''
  const rangesNamed = rangeDeletes.kept > 0 ? `, ${plural(rangeDeletes.kept, 'range tombstone')}` : ''
  s.files.push({ file: manifest, action: 'written', reason: `names ${plural(levels.reduce((n, l) => n + l.length, 0), 'table')}${blobsNamed}${rangesNamed}`, problems: [] })
  s.lostFolder.finishMoves()

  return {
    dir: s.dir,
    mode: state !== undefined ? 'manifest' : 'rebuild',
    reason,
    files: s.files,
    lost: s.lost,
    rangeDeletes,
    warnings: rangeDeletes.mayBeLost ? [LOST_RANGE_DELETES_WARNING] : [],
    result: {
      manifest,
      logNumber,
      nextFileNumber: set.nextFileNumber,
      lastSequence: s.lastSequence,
      tables: levels.flatMap((tables, level) => tables.map((t) => ({ file: tableFileName(t.number), level, entries: t.entryCount, bytes: t.fileBytes }))),
      blobFiles: blobFiles.map((b) => ({
        file: blobFileName(b.number),
        fileBytes: b.fileBytes,
        valueCount: b.valueCount,
        valueBytes: b.valueBytes,
        garbageCount: b.garbageCount,
        garbageBytes: b.garbageBytes,
      })),
      rangeTombstones: tableVersion.rangeTombstones.map((t) => rangeJson(t, { hex: false })),
    },
    verified: false,
  }
}

/** Keeps an intact STRATADB marker; moves a damaged one into lost/ and writes a new one, as it does where it is missing. */
function fixMarker(s: Salvager, listing: DirectoryListing): void {
  if (listing.hasMarker) {
    try {
      decodeMarker(s.fs.readFile(path.join(s.dir, MARKER_FILE)), MARKER_FILE, s.dir)
      return
    } catch (err) {
      // Damaged: kept in lost/, replaced below.
      const target = s.lostFolder.target(MARKER_FILE)
      s.lostFolder.ensure()
      s.fs.rename(path.join(s.dir, MARKER_FILE), path.join(s.dir, target))
      s.files.push({ file: MARKER_FILE, action: 'replaced', reason: `damaged (${(err as Error).message}); a new marker was written`, movedTo: target, problems: [] })
    }
  } else {
    s.files.push({ file: MARKER_FILE, action: 'written', reason: 'was missing', problems: [] })
  }
  const tmp = path.join(s.dir, MARKER_TEMP_FILE)
  let file: File | undefined
  try {
    file = s.fs.open(tmp, 'w')
    writeFully(file, encodeMarker({ version: DIRECTORY_FORMAT_VERSION, id: randomUUID() }), 0)
    file.datasyncSync()
  } finally {
    file?.close()
  }
  s.fs.rename(tmp, path.join(s.dir, MARKER_FILE))
  syncDirectory(s.fs, s.dir)
}
