import * as path from 'node:path'
import { ioError, type StrataError } from '../base/errors.js'
import { parseFileName, walFileName } from '../base/file-names.js'
import type { FileSystem } from '../vfs/file-system.js'

/** What is still needed: everything else stratadb owns in the directory is deleted. */
export interface LiveFiles {
  /** Tables and blob files in the current table version, in table versions iterators hold, and outputs being written. */
  liveTables: ReadonlySet<number>
  /** WALs below this are fully in tables. */
  logNumber: number
  /** The manifest CURRENT names. */
  manifestNumber: number
  /** Called before a table file is deleted (to drop its open reader). */
  beforeTableDelete: (fileNumber: number) => void
  /** Called before a blob file is deleted (to close it). */
  beforeBlobDelete: (fileNumber: number) => void
  /** Which WALs below `logNumber` the change stream keeps (WalRetention). */
  walRetention: WalRetention
}

/**
 * WALs whose writes are in tables stay for the change stream: those an open
 * change cursor still reads (`pinnedFrom` and newer) and those younger than
 * `ms`, newest first, while their total stays within `bytes`. Everything
 * older than the first one dropped goes too, so the kept WALs are always the
 * newest (a cursor relies on that to detect a gap: change-cursor.ts).
 */
export interface WalRetention {
  pinnedFrom: number
  bytes: number
  ms: number
  nowMs: number
}

/** Obsolete WALs kept by the last deletion pass, for stats. */
export interface RetainedWals {
  files: number
  bytes: number
}

/** The obsolete WALs (below `logNumber`) that retention keeps, and their total size. */
function retainedWals(fs: FileSystem, dir: string, numbers: number[], r: WalRetention): { keep: Set<number>; bytes: number } {
  const keep = new Set<number>()
  let bytes = 0
  for (const n of numbers.sort((a, b) => b - a)) {
    let stat
    try {
      stat = fs.stat(path.join(dir, walFileName(n)))
    } catch {
      break // gone or unreadable: keep nothing older than it
    }
    const wanted = n >= r.pinnedFrom || r.nowMs - stat.mtimeMs < r.ms
    if (!wanted || bytes + stat.size > r.bytes) break
    keep.add(n)
    bytes += stat.size
  }
  return { keep, bytes }
}

/**
 * Deletes obsolete tables, blob files, WALs (but those WalRetention keeps),
 * manifests and CURRENT temp files. What is obsolete is decided at the call
 * (and a table's or blob file's reader dropped then); the numbered files are
 * unlinked afterwards on the thread pool, one at a time: unlinking a large
 * file frees its extents, and on this machine 64 tables of 22 MiB took 485
 * ms of the event loop when unlinked in a row (7.5 ms each; a compaction's
 * inputs are that many), which every write waited out (docs/performance.md).
 * A numbered file is never created again under its name (file numbers only
 * grow, past every file in the directory), so a late unlink cannot hit a
 * newer file; the few small CURRENT temp files go at once. A failure (listing
 * the directory or deleting a file) is reported through `onFailure` after
 * trying every file: a file left behind costs only space, and the next flush
 * or compaction tries again.
 */
export class ObsoleteFileDeleter {
  private chain: Promise<void> = Promise.resolve()
  /** Names whose unlink is queued or running (a new pass does not queue them again). */
  private readonly queued = new Set<string>()

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    private readonly onFailure: (err: StrataError) => void,
  ) {}

  /** Deletes what `live` no longer needs; returns what WAL retention kept. */
  deleteObsolete(live: LiveFiles): RetainedWals {
    const { names, failure, retained } = obsoleteFiles(this.fs, this.dir, live, this.queued)
    if (failure !== undefined) this.onFailure(failure)
    if (names.length > 0) {
      for (const name of names) this.queued.add(name)
      this.chain = this.chain.then(() => this.unlinkAll(names))
    }
    return retained
  }

  /** Resolves once every deletion queued so far is done. */
  idle(): Promise<void> {
    return this.chain
  }

  private async unlinkAll(names: readonly string[]): Promise<void> {
    let failure: StrataError | undefined
    for (const name of names) {
      try {
        await this.fs.unlinkAsync(path.join(this.dir, name))
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failure ??= ioError(`cannot delete ${name}`, err)
      } finally {
        this.queued.delete(name)
      }
    }
    if (failure !== undefined) this.onFailure(failure)
  }
}

/**
 * The obsolete numbered files to unlink (not in `skip`), after dropping the
 * readers of obsolete tables and blob files; CURRENT temp files are unlinked
 * here. Returns what retention kept and the first failure.
 */
function obsoleteFiles(
  fs: FileSystem,
  dir: string,
  live: LiveFiles,
  skip: ReadonlySet<string>,
): { names: string[]; failure: StrataError | undefined; retained: RetainedWals } {
  const toUnlink: string[] = []
  let names: string[]
  try {
    names = fs.readdir(dir)
  } catch (err) {
    return { names: toUnlink, failure: ioError(`cannot list ${dir}`, err), retained: { files: 0, bytes: 0 } }
  }
  const oldWals: number[] = []
  for (const name of names) {
    const f = parseFileName(name)
    if (f?.kind === 'wal' && f.number < live.logNumber) oldWals.push(f.number)
  }
  const retained = retainedWals(fs, dir, oldWals, live.walRetention)
  let failure: StrataError | undefined
  for (const name of names) {
    const f = parseFileName(name)
    if (f === undefined) continue
    let obsolete = false
    if (f.kind === 'table' || f.kind === 'blob') obsolete = !live.liveTables.has(f.number)
    else if (f.kind === 'wal') obsolete = f.number < live.logNumber && !retained.keep.has(f.number)
    else if (f.kind === 'manifest') obsolete = f.number !== live.manifestNumber
    else if (f.kind === 'temp') obsolete = name.startsWith('CURRENT.')
    if (!obsolete || skip.has(name)) continue
    if (f.kind === 'table') live.beforeTableDelete(f.number)
    if (f.kind === 'blob') live.beforeBlobDelete(f.number)
    if (f.kind !== 'temp') {
      toUnlink.push(name)
      continue
    }
    try {
      fs.unlink(path.join(dir, name))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failure ??= ioError(`cannot delete ${name}`, err)
    }
  }
  return { names: toUnlink, failure, retained: { files: retained.keep.size, bytes: retained.bytes } }
}
