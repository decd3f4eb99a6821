import type { KeyRange } from '../iterators/db-iterator.js'
import type { WriteOp } from '../wal/wal-record.js'

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
  /** Bytes the ops take inside a WAL record. */
  encodedBytes: number
  sync: boolean
  /** Preconditions, checked in queue order before anything of the group is written. */
  conditions?: Condition[]
  /** 1-based issue order; reads wait for tickets issued before them. */
  ticket: number
  /** Set when admission rejected this write (its conditions failed); settled with the group. */
  error?: unknown
  resolve: () => void
  reject: (err: unknown) => void
}

/** A group commit never grows past this, unless its first write alone is larger. */
export const MAX_GROUP_BYTES = 4 << 20

/**
 * Takes writes from the head of `queue` (FIFO) for one group commit: at least
 * one, then more while the group stays under MAX_GROUP_BYTES.
 */
export function takeGroup(queue: PendingWrite[]): PendingWrite[] {
  let bytes = queue[0].encodedBytes
  let n = 1
  while (n < queue.length && bytes + queue[n].encodedBytes <= MAX_GROUP_BYTES) {
    bytes += queue[n].encodedBytes
    n++
  }
  return queue.splice(0, n)
}
