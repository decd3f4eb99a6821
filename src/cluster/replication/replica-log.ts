/**
 * A replicated node's log: its database (opened with `openReplicated`) and
 * its REPLICA file (src/engine/replica-state.ts: node id, promised epoch,
 * epoch starts), kept consistent with each other.
 *
 * Order of durable steps: the start of a new epoch is written to the REPLICA
 * file before the first record of that epoch is appended (a start past the
 * log's end is ignored by `epochAt`, so a crash in between is harmless);
 * a truncation cuts the WAL first and drops the starts past the cut after.
 */
import * as path from 'node:path'
import { assert } from '../../base/assert.js'
import { StrataError } from '../../base/errors.js'
import type { ReplicatedDatabase } from '../../replicated-db.js'
import { readReplicaState, writeReplicaState, NODE_ID, type ReplicaState } from '../../engine/replica-state.js'
import type { FileSystem } from '../../vfs/file-system.js'
import { nodeFileSystem } from '../../vfs/node-file-system.js'
import type { EpochStart } from '../peer/messages.js'
import { epochAt, type LogPosition } from './log-agreement.js'

export class ReplicaLog {
  private state: ReplicaState

  private constructor(
    readonly db: ReplicatedDatabase,
    /** The data directory. */
    readonly dir: string,
    readonly fs: FileSystem,
    state: ReplicaState,
  ) {
    this.state = state
  }

  /**
   * The log of `db` in `dir` for node `nodeId`: a directory without a
   * REPLICA file becomes this node's; one of another node is refused.
   */
  static load(db: ReplicatedDatabase, dir: string, nodeId: string, fs: FileSystem = nodeFileSystem): ReplicaLog {
    if (!NODE_ID.test(nodeId)) throw new StrataError('STRATA_INVALID_ARGUMENT', `node id ${JSON.stringify(nodeId)} is not 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit`)
    let state = readReplicaState(fs, dir)
    if (state === undefined) {
      state = { nodeId, promisedEpoch: 0, epochStarts: [] }
      writeReplicaState(fs, dir, state)
    } else if (state.nodeId !== nodeId) {
      throw new StrataError('STRATA_INVALID_ARGUMENT', `${path.join(dir, 'REPLICA')} belongs to node ${state.nodeId}, not ${nodeId}: a data directory serves one node id`)
    }
    return new ReplicaLog(db, dir, fs, state)
  }

  get nodeId(): string {
    return this.state.nodeId
  }

  get promisedEpoch(): number {
    return this.state.promisedEpoch
  }

  get epochStarts(): readonly EpochStart[] {
    return this.state.epochStarts
  }

  /** The last sequence applied to this log (in its WAL or on the way there). */
  get lastSequence(): number {
    return this.db.stats().lastSequence
  }

  position(lastSequence = this.lastSequence): LogPosition {
    return { lastSequence, epochStarts: this.state.epochStarts.filter((s) => s.startSequence <= lastSequence) }
  }

  epochAt(sequence: number): number {
    return epochAt(this.state.epochStarts, sequence)
  }

  /** Persists `epoch` as promised when it is higher than the current promise; false when it is lower. */
  promise(epoch: number): boolean {
    if (epoch < this.state.promisedEpoch) return false
    if (epoch > this.state.promisedEpoch) this.write({ ...this.state, promisedEpoch: epoch })
    return true
  }

  /**
   * Records that `epoch` starts at `startSequence` (the first record of it is
   * about to be appended there). Starts at or past it (a cut tail's) go.
   */
  noteEpochStart(epoch: number, startSequence: number): void {
    const starts = this.state.epochStarts
    const kept = starts.filter((s) => s.startSequence < startSequence)
    const current = kept[kept.length - 1]
    assert(current === undefined || current.epoch <= epoch, `epoch ${epoch} at sequence ${startSequence} follows epoch ${current?.epoch}`)
    if (current?.epoch === epoch && kept.length === starts.length) return
    const epochStarts = current?.epoch === epoch ? kept : [...kept, { epoch, startSequence }]
    this.write({ ...this.state, promisedEpoch: Math.max(this.state.promisedEpoch, epoch), epochStarts })
  }

  /**
   * Replaces this log by a checkpoint of the leader's (catch-up): the
   * database files from `fromDir`, the epoch starts it came with; the
   * promise stays.
   */
  async installCheckpoint(fromDir: string, epochStarts: readonly EpochStart[]): Promise<number> {
    const sequence = await this.db.installCheckpoint(fromDir)
    this.write({ ...this.state, epochStarts: epochStarts.filter((s) => s.startSequence <= sequence).map((s) => ({ ...s })) })
    return sequence
  }

  /** Cuts the log after `sequence` (an uncommitted tail), then forgets the epochs that started past it. */
  async truncateAfter(sequence: number): Promise<number> {
    const records = await this.db.truncateLog(sequence)
    const kept = this.state.epochStarts.filter((s) => s.startSequence <= sequence)
    if (kept.length !== this.state.epochStarts.length) this.write({ ...this.state, epochStarts: kept })
    return records
  }

  private write(next: ReplicaState): void {
    writeReplicaState(this.fs, this.dir, next)
    this.state = next
  }
}
