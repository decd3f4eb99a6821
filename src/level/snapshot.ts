import { AbstractSnapshot } from 'abstract-level'
import type { Snapshot } from '../index.js'

// The typings of AbstractSnapshot omit its constructor, which takes { owner }.
const SnapshotBase = AbstractSnapshot as unknown as new (options: { owner: unknown }) => AbstractSnapshot

/**
 * An explicit snapshot (`db.snapshot()`): a token holding an engine snapshot,
 * passed to reads via `options.snapshot`. abstract-level keeps it open while
 * reads use it and closes it with the database; closing releases the engine
 * snapshot so flush and compaction may drop the versions it pinned.
 */
export class StrataLevelSnapshot extends SnapshotBase {
  /** The StrataLevel (root database) the snapshot was taken of. */
  readonly root: object
  readonly native: Snapshot

  constructor(options: { owner: unknown }, root: object, native: Snapshot) {
    super(options)
    this.root = root
    this.native = native
  }

  async _close(): Promise<void> {
    this.native.release()
  }
}
