import type { WriteOp } from '../wal/wal-record.js'

/** One caller's write waiting in the queue: a put, a delete or a whole batch. */
export interface PendingWrite {
  ops: WriteOp[]
  /** Bytes the ops take inside a WAL record. */
  encodedBytes: number
  sync: boolean
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
