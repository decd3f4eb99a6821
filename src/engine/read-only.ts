import * as path from 'node:path'
import { StrataError, corruption, ioError } from '../base/errors.js'
import { parseFileName } from '../base/file-names.js'
import { initChecksum } from '../base/checksum.js'
import { TableVersionSet } from '../manifest/table-version-set.js'
import { Memtable } from '../memtable/memtable.js'
import { Recycler } from '../memtable/recycler.js'
import type { ResolvedOptions } from '../options.js'
import { Engine } from './engine.js'
import { inspectDirectory } from './directory-identity.js'
import { PinnedTableFiles } from './pinned-table-files.js'
import { replayWals } from './recovery.js'
import type { RecoveryReport } from './stats.js'

/** Loads attempted before giving up when files keep vanishing under the load (each race is a window of a few system calls). */
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
 * A writer in another process may meanwhile append edits to the manifest and
 * delete what they made obsolete. The WALs are listed *before* the manifest
 * is read: a WAL the writer deleted before the listing was made obsolete by
 * an edit appended before it, which the manifest read afterwards includes
 * (its tables hold that WAL's writes, its log number is past it). So the
 * view is the manifest's tables plus every listed WAL at or above its log
 * number: a prefix of the writer's commits, whatever edits come after. The
 * only race left is a table or WAL deleted between the manifest read and
 * the open of that file: the load then starts again.
 */
export function loadReadOnlyView(dir: string, options: ResolvedOptions): Engine {
  for (let attempt = 1; ; attempt++) {
    const loaded = tryLoad(dir, options)
    if (loaded !== undefined) return loaded
    if (attempt >= MAX_LOAD_ATTEMPTS) {
      throw new StrataError('STRATA_IO_ERROR', `cannot load a consistent view of ${dir}: files the manifest named vanished during each of ${attempt} attempts`)
    }
  }
}

/** One load; undefined when a file it needed vanished under it (see loadReadOnlyView). */
function tryLoad(dir: string, options: ResolvedOptions): Engine | undefined {
  const inner = options.fileSystem
  const pins = new PinnedTableFiles(inner)
  let mem: Memtable | undefined
  try {
    const listed: number[] = []
    for (const name of inner.readdir(dir)) {
      const f = parseFileName(name)
      if (f?.kind === 'wal') listed.push(f.number)
    }
    const state = TableVersionSet.recover(inner, dir)
    if (state === undefined) throw new StrataError('STRATA_NOT_FOUND', `no database in ${dir} (no CURRENT)`)
    for (const { name, fileBytes, kind } of state.tableVersion.files()) {
      const file = path.join(dir, name)
      const size = pins.pin(file).size()
      if (size !== fileBytes) throw corruption(`${kind === 'table' ? 'table' : 'blob file'} is ${size} bytes, manifest says ${fileBytes}`, file)
    }
    const wals = listed.filter((n) => n >= state.logNumber).sort((a, b) => a - b)
    // A memtable names the WALs it came from (what a flush would read); a view's is never flushed, and
    // when the listing predates every WAL at or above the log number it holds nothing.
    mem = new Memtable(wals.length > 0 ? wals : [state.logNumber])
    const report: RecoveryReport = { walFiles: wals.length, walRecords: 0, walEntries: 0, droppedTails: [], warnings: [] }
    const replayed = replayWals(inner, dir, wals, mem, report)
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
    if (vanished(err)) return undefined
    throw err
  }
}

function vanished(err: unknown): boolean {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true
  const cause = (err as { cause?: unknown }).cause as NodeJS.ErrnoException | undefined
  if (cause?.code === 'ENOENT') return true
  return err instanceof StrataError && err.code === 'STRATA_CORRUPTION' && /missing/.test(err.message)
}
