import * as path from 'node:path'
import { StrataError, ioError } from './errors.js'
import { LOCK_FILE } from './file-names.js'
import type { FileSystem } from '../vfs/file-system.js'

/**
 * One process per database directory. Node has no flock(2), so the lock is a
 * LOCK file created exclusively and holding the owner's pid. A LOCK left by a
 * process that no longer runs (kill -9) is stale and taken over. Directories
 * opened by this process are also tracked in memory, so a second open from the
 * same process fails too.
 *
 * Known limit: two processes that find the same stale LOCK at the same instant
 * may both take it over; the window is one unlink + create.
 */
const heldHere = new Set<string>()

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function locked(dir: string, detail: string): StrataError {
  return new StrataError('STRATA_LOCKED', `database ${dir} is locked: ${detail}`)
}

/** Takes the lock of `dir`; returns the function that releases it. */
export function acquireLock(fs: FileSystem, dir: string): () => void {
  const key = fs.realpath(dir)
  if (heldHere.has(key)) throw locked(dir, 'already open in this process')
  const file = path.join(dir, LOCK_FILE)
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      // Write the pid first, then link: the LOCK file never exists without its owner's pid.
      const tmp = path.join(dir, `LOCK.${process.pid}.tmp`)
      const f = fs.open(tmp, 'w')
      try {
        f.write(Buffer.from(`${process.pid}\n`), 0, String(process.pid).length + 1, 0)
      } finally {
        f.close()
      }
      try {
        fs.link(tmp, file)
      } finally {
        removeQuietly(fs, tmp)
      }
      heldHere.add(key)
      removeStaleTemps(fs, dir)
      return () => {
        heldHere.delete(key)
        removeQuietly(fs, file)
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`cannot create ${file}`, err)
    }
    let owner = NaN
    try {
      owner = Number.parseInt(fs.readFile(file).toString('utf8'), 10)
    } catch {
      // Vanished or unreadable: retry creating it.
    }
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
      throw locked(dir, `held by process ${owner}`)
    }
    removeQuietly(fs, file)
  }
  throw locked(dir, 'could not take over a stale LOCK file')
}

/** Deletes LOCK.<pid>.tmp files of processes that died between writing and linking them. */
function removeStaleTemps(fs: FileSystem, dir: string): void {
  for (const name of fs.readdir(dir)) {
    const m = /^LOCK\.(\d+)\.tmp$/.exec(name)
    if (m && !processAlive(Number(m[1]))) removeQuietly(fs, path.join(dir, name))
  }
}

function removeQuietly(fs: FileSystem, file: string): void {
  try {
    fs.unlink(file)
  } catch {
    // Gone already, or left for the next open.
  }
}
