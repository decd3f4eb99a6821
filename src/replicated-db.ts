/**
 * The database of a replicated node (docs/replication.md): a Database whose
 * replayed WAL entries are not flushed at open (they may be an uncommitted
 * tail; the freeze limit decides), and whose log can be cut back or
 * replaced by a leader's checkpoint. Internal: the cluster layer uses it.
 */
import { StrataError } from './base/errors.js'
import { installCheckpointFiles } from './engine/checkpoint-install.js'
import { truncateLog } from './engine/log-truncation.js'
import { openEngine, recoverEngine } from './engine/recovery.js'
import { Database } from './db.js'
import { resolveOptions, type OpenOptions } from './options.js'
import type { FileSystem } from './vfs/file-system.js'

/** @internal */
export class ReplicatedDatabase extends Database {
  /**
   * Cuts every WAL record after `afterSequence` (docs/replication.md,
   * "Truncation by epoch"; a record boundary, above everything in tables:
   * only an uncommitted tail is ever cut) and rebuilds the engine from the
   * directory as a reopen would, keeping the lock. Queued writes fail;
   * iterators, snapshots and transactions must be closed. Resolves with the
   * records cut. A failure after the old engine stopped closes the database.
   */
  async truncateLog(afterSequence: number): Promise<number> {
    this.checkOpen()
    // A cut that cannot be made is refused while the engine still runs.
    truncateLog(this.engine.options.fileSystem, this.engine.dir, afterSequence, true)
    return this.rebuild('truncateLog()', `the log is being truncated after sequence ${afterSequence}`, (fs, dir) => truncateLog(fs, dir, afterSequence).records)
  }

  /**
   * Catch-up (docs/replication.md, "Catch-up"): replaces every database file
   * by those of the checkpoint in `fromDir` (on the same file system; its
   * files are moved) and rebuilds the engine from them, keeping the lock. As
   * truncateLog: queued writes fail, iterators and snapshots must be closed,
   * a failure after the old engine stopped closes the database (a crash in
   * the middle leaves a directory that refuses to open). Resolves with the
   * new last sequence.
   */
  async installCheckpoint(fromDir: string): Promise<number> {
    await this.rebuild('installCheckpoint()', `a checkpoint from ${fromDir} replaces the database`, (fs, dir) => installCheckpointFiles(fs, dir, fromDir))
    return this.engine.visibleSequence
  }

  /**
   * Stops the engine (queued writes fail with `why`), runs `change` on its
   * directory, and rebuilds the engine from it as a reopen would, keeping
   * the lock. A failure once the old engine is retired releases the lock:
   * the database is closed.
   */
  private async rebuild<T>(what: string, why: string, change: (fs: FileSystem, dir: string) => T): Promise<T> {
    this.checkOpen()
    if (this.resuming !== undefined) await this.resuming.catch(() => undefined)
    const old = this.engine
    if (old.pinsState) throw new StrataError('STRATA_INVALID_ARGUMENT', `${what} needs every iterator, snapshot and transaction closed`)
    // Queued writes (a follower's appends waiting for the freeze limit, say) fail instead of waiting.
    if (old.failure === undefined) old.onError(new StrataError('STRATA_NOT_OPEN', why), 'replication')
    await old.stopBackgroundWork()
    if (this.engine !== old || !old.isOpen) throw new StrataError('STRATA_NOT_OPEN', `the database was closed during ${what}`)
    old.retire()
    try {
      const result = change(old.options.fileSystem, old.dir)
      const next = recoverEngine(old.dir, { ...old.options, createIfMissing: false, errorIfExists: false }, old.releaseLock, old.changeCursors, true)
      this.engine = next
      this.applyReplication(next)
      return result
    } catch (err) {
      old.releaseLock()
      throw err
    }
  }
}

/** @internal Opens `dir` for a replicated node (see ReplicatedDatabase). */
export async function openReplicated(dir: string, options?: OpenOptions): Promise<ReplicatedDatabase> {
  if (typeof dir !== 'string' || dir.length === 0) throw new StrataError('STRATA_INVALID_ARGUMENT', 'dir must be a non-empty string')
  const resolved = resolveOptions(options)
  if (resolved.readOnly) throw new StrataError('STRATA_INVALID_ARGUMENT', 'a replicated node cannot open read-only')
  return new ReplicatedDatabase(await openEngine(dir, resolved, true), true)
}
