import * as path from 'node:path'
import { StrataError, ioError } from '../base/errors.js'
import { CHECKPOINT_PARTIAL_FILE, LOCK_FILE, REPLICA_FILE, REPLICA_TEMP_FILE, parseFileName } from '../base/file-names.js'
import { listDirectory, syncDirectory, writeFully, type File, type FileSystem } from '../vfs/file-system.js'

/**
 * Replaces the database files of a stopped, locked directory by those of a
 * checkpoint directory on the same file system (docs/replication.md,
 * "Catch-up"): what a replica too far behind its leader's retained WAL
 * installs before following the stream from the checkpoint's sequence.
 *
 * The node's own files stay: the lock and the REPLICA file. Crash safety:
 * `CHECKPOINT-PARTIAL` is created (and synced) in the directory first and
 * removed last, so a crash in between leaves a directory every open refuses
 * ("incomplete checkpoint") rather than a mix of two databases, or an empty
 * log that could vote as if it held what it acknowledged.
 */
export function installCheckpointFiles(fs: FileSystem, dir: string, from: string): void {
  const partial = path.join(dir, CHECKPOINT_PARTIAL_FILE)
  const incoming = listDirectory(fs, from).filter((n) => n !== CHECKPOINT_PARTIAL_FILE)
  if (!incoming.some((n) => parseFileName(n)?.kind === 'current')) {
    throw new StrataError('STRATA_INVALID_ARGUMENT', `${from} holds no database to install (no CURRENT)`)
  }
  createEmpty(fs, partial)
  syncDirectory(fs, dir)
  const keep = new Set([LOCK_FILE, REPLICA_FILE, REPLICA_TEMP_FILE, CHECKPOINT_PARTIAL_FILE])
  for (const name of listDirectory(fs, dir)) {
    if (keep.has(name) || parseFileName(name) === undefined) continue
    try {
      fs.unlink(path.join(dir, name))
    } catch (err) {
      throw ioError(`cannot delete ${path.join(dir, name)}`, err)
    }
  }
  syncDirectory(fs, dir)
  for (const name of incoming) {
    if (keep.has(name)) continue
    try {
      fs.rename(path.join(from, name), path.join(dir, name))
    } catch (err) {
      throw ioError(`cannot move ${name} from ${from} into ${dir}`, err)
    }
  }
  syncDirectory(fs, dir)
  try {
    fs.unlink(partial)
  } catch (err) {
    throw ioError(`cannot delete ${partial}`, err)
  }
  syncDirectory(fs, dir)
}

function createEmpty(fs: FileSystem, file: string): void {
  let f: File | undefined
  try {
    f = fs.open(file, 'w')
    writeFully(f, Buffer.alloc(0), 0)
    f.datasyncSync()
  } catch (err) {
    throw ioError(`cannot create ${file}`, err)
  } finally {
    f?.close()
  }
}
