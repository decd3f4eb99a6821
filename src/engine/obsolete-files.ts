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
 * Deletes obsolete tables, WALs (but those WalRetention keeps), manifests and
 * CURRENT temp files. Returns what retention kept, and the first failure (listing the directory or deleting a file) after trying
 * every file: a file left behind costs only space, and the next flush or
 * compaction tries again, so the caller reports it and goes on.
 */
export function removeObsoleteFiles(fs: FileSystem, dir: string, live: LiveFiles): { failure: StrataError | undefined; retained: RetainedWals } {
  let names: string[]
  try {
    names = fs.readdir(dir)
  } catch (err) {
    return { failure: ioError(`cannot list ${dir}`, err), retained: { files: 0, bytes: 0 } }
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
    if (!obsolete) continue
    if (f.kind === 'table') live.beforeTableDelete(f.number)
    if (f.kind === 'blob') live.beforeBlobDelete(f.number)
    try {
      fs.unlink(path.join(dir, name))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failure ??= ioError(`cannot delete ${name}`, err)
    }
  }
  return { failure, retained: { files: retained.keep.size, bytes: retained.bytes } }
}
