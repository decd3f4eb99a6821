import * as path from 'node:path'
import { ioError, type StrataError } from '../base/errors.js'
import { parseFileName } from '../base/file-names.js'
import type { FileSystem } from '../vfs/file-system.js'

/** What is still needed: everything else stratadb owns in the directory is deleted. */
export interface LiveFiles {
  /** Tables in the current table version, in table versions iterators hold, and outputs being written. */
  liveTables: ReadonlySet<number>
  /** WALs below this are fully in tables. */
  logNumber: number
  /** The manifest CURRENT names. */
  manifestNumber: number
  /** Called before a table file is deleted (to drop its open reader). */
  beforeTableDelete: (fileNumber: number) => void
}

/**
 * Deletes obsolete tables, WALs, manifests and CURRENT temp files. Returns
 * the first failure (listing the directory or deleting a file) after trying
 * every file: a file left behind costs only space, and the next flush or
 * compaction tries again, so the caller reports it and goes on.
 */
export function removeObsoleteFiles(fs: FileSystem, dir: string, live: LiveFiles): StrataError | undefined {
  let names: string[]
  try {
    names = fs.readdir(dir)
  } catch (err) {
    return ioError(`cannot list ${dir}`, err)
  }
  let failure: StrataError | undefined
  for (const name of names) {
    const f = parseFileName(name)
    if (f === undefined) continue
    let obsolete = false
    if (f.kind === 'table') obsolete = !live.liveTables.has(f.number)
    else if (f.kind === 'wal') obsolete = f.number < live.logNumber
    else if (f.kind === 'manifest') obsolete = f.number !== live.manifestNumber
    else if (f.kind === 'temp') obsolete = name.startsWith('CURRENT.')
    if (!obsolete) continue
    if (f.kind === 'table') live.beforeTableDelete(f.number)
    try {
      fs.unlink(path.join(dir, name))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failure ??= ioError(`cannot delete ${name}`, err)
    }
  }
  return failure
}
