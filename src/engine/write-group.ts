import type { KeyRange, WriteOp } from '../base/entry.js'

/**
 * A precondition checked in the commit path, against the state every earlier
 * write produced: a key's current version (0 = absent) must equal `version`,
 * or no entry in a range may be newer than `sinceSequence` (no phantoms).
 */
export type Condition =
  | { type: 'key'; key: Buffer; version: number }
  | { type: 'range'; range: KeyRange; sinceSequence: number }

/** One caller's write waiting in the queue: a put, a delete or a whole batch. */
export interface PendingWrite {
  ops: WriteOp[]
  /**
   * A whole WAL record payload another node wrote (replication): appended
   * verbatim as a record of its own, its entries (not `ops`, which is empty)
   * applied under the record's own sequences.
   */
  record?: Buffer
  /** Sequences the write takes when not `ops.length` (a replicated record's entry count, NOOPs included). */
  sequences?: number
  /** A NOOP: takes one sequence, holds nothing (a new leader commits its epoch with one). */
  noop?: boolean
  /** Bytes the ops take inside a WAL record. */
  encodedBytes: number
  sync: boolean
  /** Preconditions, checked in queue order before anything of the group is written. */
  conditions?: Condition[]
  /** 1-based issue order; reads wait for tickets issued before them. */
  ticket: number
  /** Set when admission rejected this write (its conditions failed); settled with the group. */
  error?: unknown
  /**
   * Called once the write is admitted or rejected, before it is durable: from
   * then on its effect is in the applied state that transactions read, so a
   * transaction's FIFO turn can pass to the next one without waiting for the WAL.
   */
  onAdmitted?: () => void
  resolve: () => void
  reject: (err: unknown) => void
}

/** A WAL record (one group commit) never grows past this, unless its first write alone is larger. */
export const MAX_GROUP_BYTES = 4 << 20
