import * as path from 'node:path'
import { StrataError, corruption, ioError } from '../base/errors.js'
import { CURRENT_FILE, parseFileName, tableFileName } from '../base/file-names.js'
import { initChecksum } from '../base/checksum.js'
import { TableVersionSet } from '../manifest/table-version-set.js'
import { Memtable } from '../memtable/memtable.js'
import { Recycler } from '../memtable/recycler.js'
import type { ResolvedOptions } from '../options.js'
import type { FileSystem } from '../vfs/file-system.js'
import { Engine } from './engine.js'
import { inspectDirectory } from './directory-identity.js'
import { PinnedTableFiles } from './pinned-table-files.js'
import { replayWals } from './recovery.js'
import type { RecoveryReport } from './stats.js'

/** Loads attempted before giving up when a writer keeps changing the manifest under the load. */
const MAX_LOAD_ATTEMPTS = 50

/**
 * Opens a read-only view of the database in `dir` (docs/design.md,
 * "Read-only opens"): no lock is taken and nothing is written, renamed or
 * deleted (no marker upgrade, no WAL replay into tables, no compaction, no
 * temp-file cleanup), so it works on a checkpoint, on a copy on read-only
 * media, and on a directory another process has open for writing.
 */
export async function openReadOnlyEngine(dir: string, options: ResolvedOptions): Promise<Engine> {
  await initChecksum()
  const fs = options.fileSystem
  try {
    if (!fs.stat(dir).isDirectory) throw new StrataError('STRATA_INVALID_ARGUMENT', `${dir} exists and is not a directory`)
  } catch (err) {
    if (err instanceof StrataError) throw err
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('STRATA_NOT_FOUND', `database ${dir} does not exist`)
    throw ioError(`cannot stat ${dir}`, err)
  }
  if (inspectDirectory(fs, dir).kind === 'empty') throw new StrataError('STRATA_NOT_FOUND', `no database in ${dir}`)
  return loadReadOnlyView(dir, options)
}

/**
 * The state of the directory as of now, as an engine that only reads: the
 * manifest CURRENT names, its tables opened up front (PinnedTableFiles: a
 * writer deleting them later cannot hurt the view), and the WALs it does not
 * cover, replayed into a memtable in memory.
 *
 * A writer in another process may append an edit to the manifest meanwhile
 * and then delete the WALs and tables the edit made obsolete. The load is
 * consistent when the manifest did not change from the first read of CURRENT
 * to the end (same CURRENT, same manifest size: an edit is appended before
 * anything it obsoletes is deleted); otherwise, or when a file vanished, it
 * starts again.
 */
export function loadReadOnlyView(dir: string, options: ResolvedOptions): Engine {
  for (let attempt = 1; ; attempt++) {
    const loaded = tryLoad(dir, options)
    if (loaded !== undefined) return loaded
    if (attempt >= MAX_LOAD_ATTEMPTS) {
      throw new StrataError('STRATA_IO_ERROR', `cannot load a consistent view of ${dir}: the manifest changed during each of ${attempt} attempts`)
    }
  }
}

/** What identifies the manifest's state: CURRENT's content and the manifest's size. */
function manifestStamp(fs: FileSystem, dir: string): string | undefined {
  try {
    const current = fs.readFile(path.join(dir, CURRENT_FILE)).toString('latin1')
    const m = /^(MANIFEST-\d{6,})\n$/.exec(current)
    if (m === null) return current
    return `${m[1]}:${fs.stat(path.join(dir, m[1])).size}`
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw ioError(`cannot read ${path.join(dir, CURRENT_FILE)}`, err)
  }
}

/** One load; undefined when the writer moved on under it (see loadReadOnlyView). */
function tryLoad(dir: string, options: ResolvedOptions): Engine | undefined {
  const inner = options.fileSystem
  const before = manifestStamp(inner, dir)
  const pins = new PinnedTableFiles(inner)
  let mem: Memtable | undefined
  try {
    const state = TableVersionSet.recover(inner, dir)
    if (state === undefined) throw new StrataError('STRATA_NOT_FOUND', `no database in ${dir} (no CURRENT)`)
    for (const level of state.tableVersion.levels) {
      for (const t of level) {
        const file = path.join(dir, tableFileName(t.number))
        const size = pins.pin(file).size()
        if (size !== t.fileBytes) throw corruption(`table is ${size} bytes, manifest says ${t.fileBytes}`, file)
      }
    }
    const wals: number[] = []
    for (const name of inner.readdir(dir)) {
      const f = parseFileName(name)
      if (f?.kind === 'wal' && f.number >= state.logNumber) wals.push(f.number)
    }
    wals.sort((a, b) => a - b)
    mem = new Memtable(wals)
    const report: RecoveryReport = { walFiles: wals.length, walRecords: 0, walEntries: 0, droppedTails: [], warnings: [] }
    const replayed = replayWals(inner, dir, wals, mem, report)
    if (manifestStamp(inner, dir) !== before) {
      pins.releaseAll()
      mem.unref()
      return undefined
    }
    const tableVersions = new TableVersionSet(inner, dir, { ...state }, options.maxManifestBytes)
    const ro: ResolvedOptions = { ...options, fileSystem: pins, autoCompaction: false }
    return new Engine({
      dir,
      options: ro,
      tableVersions,
      mem,
      recycler: Recycler.forMemtables(options.memtableBytes, 1),
      wal: undefined,
      lastSequence: Math.max(state.lastSequence, replayed),
      releaseLock: () => undefined,
      recovery: report,
      readOnlyView: { release: () => pins.releaseAll(), options },
    })
  } catch (err) {
    pins.releaseAll()
    mem?.unref()
    // A file the manifest named vanished: the writer moved on; load again.
    if (vanished(err) && manifestStamp(inner, dir) !== before) return undefined
    throw err
  }
}

function vanished(err: unknown): boolean {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true
  const cause = (err as { cause?: unknown }).cause as NodeJS.ErrnoException | undefined
  if (cause?.code === 'ENOENT') return true
  return err instanceof StrataError && err.code === 'STRATA_CORRUPTION' && /missing/.test(err.message)
}
