import * as fs from 'node:fs'
import * as path from 'node:path'
import { parseFileName } from '../base/file-names.js'

/** What is still needed: everything else stratadb owns in the directory is deleted. */
export interface LiveFiles {
  /** Tables in the current version, in versions iterators hold, and outputs being written. */
  liveTables: ReadonlySet<number>
  /** WALs below this are fully in tables. */
  logNumber: number
  /** The manifest CURRENT names. */
  manifestNumber: number
  /** Called before a table file is deleted (to drop its open reader). */
  beforeTableDelete: (fileNumber: number) => void
}

/**
 * Deletes obsolete tables, WALs, manifests and CURRENT temp files. A failure
 * to list the directory is ignored: the next flush or compaction retries.
 */
export function removeObsoleteFiles(dir: string, live: LiveFiles): void {
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return
  }
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
    fs.rmSync(path.join(dir, name), { force: true })
  }
}
