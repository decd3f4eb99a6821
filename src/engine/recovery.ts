import * as path from 'node:path'
import { StrataError, corruption, ioError } from '../base/errors.js'
import { parseFileName, walFileName } from '../base/file-names.js'
import { acquireLock } from '../base/lock-file.js'
import { initChecksum } from '../base/checksum.js'
import { TableVersion } from '../manifest/table-version.js'
import { TableVersionSet, type RecoveredState } from '../manifest/table-version-set.js'
import { Memtable } from '../memtable/memtable.js'
import { Recycler } from '../memtable/recycler.js'
import type { ResolvedOptions } from '../options.js'
import { listDirectory, syncDirectory, type FileSystem } from '../vfs/file-system.js'
import { visitWal } from '../wal/wal-reader.js'
import { WalWriter } from '../wal/wal-writer.js'
import { Engine } from './engine.js'
import { establishIdentity, inspectDirectory } from './directory-identity.js'
import type { RecoveryReport } from './stats.js'
import type { ChangeCursors } from './change-cursor.js'

/**
 * Opens a database directory (docs/design.md, "Recovery"):
 *   0. check the directory's identity, only reading (directory-identity.ts):
 *      a directory with files that is not a stratadb database is refused
 *      untouched;
 *   1. take the lock; write the STRATADB marker into an empty directory
 *      (before any other file) or a previous-format database;
 *   2. read CURRENT and replay the manifest it names (or start empty);
 *   3. check every table the manifest references exists with its recorded size;
 *   4. replay, in number order, every WAL at or above the manifest's log number
 *      into one memtable (a torn tail ends a WAL and is reported);
 *   5. create a fresh WAL for new writes and write a fresh manifest holding the
 *      whole state, switching CURRENT to it (never append to a manifest whose
 *      tail may be torn);
 *   6. delete files nothing references.
 * A crash at any point leaves the previous CURRENT and files intact, so the
 * next open redoes the same steps.
 */
export async function openEngine(dir: string, options: ResolvedOptions, replicated = false): Promise<Engine> {
  await initChecksum()
  const fs = options.fileSystem
  prepareDirectory(fs, dir, options)
  // Only reads: a foreign directory is refused before the lock writes a LOCK file into it.
  const seen = inspectDirectory(fs, dir)
  const releaseLock = acquireLock(fs, dir)
  try {
    establishIdentity(fs, dir, options, seen)
    const engine = recoverEngine(dir, options, releaseLock, undefined, replicated)
    // What an earlier run left behind (a crash) is gone when the open resolves.
    await engine.obsoleteFilesDeleted()
    return engine
  } catch (err) {
    releaseLock()
    throw err
  }
}

function prepareDirectory(fs: FileSystem, dir: string, options: ResolvedOptions): void {
  let exists = true
  try {
    if (!fs.stat(dir).isDirectory) {
      throw new StrataError('STRATA_INVALID_ARGUMENT', `${dir} exists and is not a directory`)
    }
  } catch (err) {
    if (err instanceof StrataError) throw err
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot stat ${dir}`, err)
    exists = false
  }
  if (exists) return
  if (!options.createIfMissing) throw new StrataError('STRATA_NOT_FOUND', `database ${dir} does not exist`)
  try {
    fs.mkdir(dir)
  } catch (err) {
    throw ioError(`cannot create ${dir}`, err)
  }
}

/**
 * Steps 2-6 of the open, with the lock held: builds an engine from what is
 * on disk. Also how a failed engine resumes (Engine.resume): whatever the
 * failure left behind (a torn WAL or manifest tail, an edit whose sync
 * failed) is decided here exactly as a reopen would decide it.
 */
export function recoverEngine(dir: string, options: ResolvedOptions, releaseLock: () => void, changeCursors?: ChangeCursors, replicated = false): Engine {
  const fs = options.fileSystem
  let state: RecoveredState | undefined = TableVersionSet.recover(fs, dir)
  if (state !== undefined && options.errorIfExists) {
    throw new StrataError('STRATA_EXISTS', `database ${dir} already exists`)
  }
  if (state === undefined) {
    if (!options.createIfMissing) throw new StrataError('STRATA_NOT_FOUND', `no database in ${dir}`)
    state = { tableVersion: TableVersion.empty(), logNumber: 0, nextFileNumber: 1, lastSequence: 0, manifestNumber: 0 }
  }
  const names = listDirectory(fs, dir)
  let maxNumber = 0
  const wals: number[] = []
  for (const name of names) {
    const f = parseFileName(name)
    if (f === undefined) continue
    maxNumber = Math.max(maxNumber, f.number)
    if (f.kind === 'wal' && f.number >= state.logNumber) wals.push(f.number)
  }
  wals.sort((a, b) => a - b)
  checkTables(fs, dir, state.tableVersion)

  const tableVersions = new TableVersionSet(fs, dir, { ...state, nextFileNumber: Math.max(state.nextFileNumber, maxNumber + 1) }, options.maxManifestBytes)
  const walNumber = tableVersions.newFileNumber()
  const recycler = Recycler.forMemtables(options.memtableBytes, 1 + options.maxImmutableMemtables)
  let mem = new Memtable([...wals, walNumber], recycler)
  const report: RecoveryReport = { walFiles: wals.length, walRecords: 0, walEntries: 0, droppedTails: [], warnings: [] }
  const replayedSequence = replayWals(fs, dir, wals, mem, report)
  const lastSequence = Math.max(state.lastSequence, replayedSequence)

  const wal = WalWriter.create(fs, path.join(dir, walFileName(walNumber)), walNumber)
  try {
    let logNumber = tableVersions.logNumber
    if (report.walRecords === 0) {
      // Nothing to keep from older WALs (at most torn tails): retire them now. (A WAL of NOOPs
      // stays: the sequences it holds may still be cut by a replicated node's truncation.)
      mem.unref()
      mem = new Memtable([walNumber], recycler)
      logNumber = walNumber
    }
    tableVersions.writeSnapshotManifest(tableVersions.current, logNumber, lastSequence)
    syncDirectory(fs, dir)
  } catch (err) {
    wal.close()
    mem.unref()
    tableVersions.close()
    throw err
  }
  const engine = new Engine({ dir, options, tableVersions, mem, recycler, wal, lastSequence, releaseLock, recovery: report, changeCursors })
  try {
    engine.start(!replicated)
  } catch (err) {
    engine.retire()
    throw err
  }
  engine.deleteObsoleteFiles()
  return engine
}

/**
 * Replays WALs `numbers` (ascending) into `mem`, recording what was read and
 * dropped in `report`; returns the last sequence replayed (0 for none). A
 * torn tail ends a WAL; sequences must increase across WALs.
 */
export function replayWals(fs: FileSystem, dir: string, numbers: readonly number[], mem: Memtable, report: RecoveryReport): number {
  let replayedSequence = 0
  for (const number of numbers) {
    const file = path.join(dir, walFileName(number))
    let first = true
    // Values stay in the WAL file buffer: no copy, and the buffer lives only as long as the memtable.
    const visit = visitWal(fs, file, (p, seq, ks, ke, vs, ve, _end, kind) => {
      if (first && seq <= replayedSequence) throw corruption(`WAL sequence ${seq} does not follow ${replayedSequence}`, file)
      first = false
      mem.addRange(p, seq, ks, ke, vs, ve, kind)
      mem.replayed = true
      replayedSequence = seq
    })
    // A NOOP takes a sequence but reaches no memtable: the records' own count decides.
    replayedSequence = Math.max(replayedSequence, visit.lastSequence)
    report.walRecords += visit.records
    report.walEntries += visit.entries
    if (visit.droppedBytes > 0) {
      const name = walFileName(number)
      report.droppedTails.push({ file: name, bytes: visit.droppedBytes, records: visit.droppedRecords })
      report.warnings.push(`WAL ${name}: dropped a torn or damaged tail of ${visit.droppedBytes} bytes (${visit.droppedRecords} record(s)) after ${visit.records} intact record(s)`)
    }
  }
  return replayedSequence
}

/** Every table and blob file the manifest names must exist with the size recorded (not missing, not partial). */
function checkTables(fs: FileSystem, dir: string, tableVersion: TableVersion): void {
  for (const { name, fileBytes, kind } of tableVersion.files()) {
    const what = kind === 'table' ? 'table' : 'blob file'
    const file = path.join(dir, name)
    let size: number
    try {
      size = fs.stat(file).size
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw corruption(`${what} named by the manifest is missing`, file)
      throw ioError(`cannot stat ${file}`, err)
    }
    if (size !== fileBytes) throw corruption(`${what} is ${size} bytes, manifest says ${fileBytes}`, file)
  }
}
