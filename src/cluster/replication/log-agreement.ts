/**
 * Where two replicated logs agree, from their epoch starts alone
 * (docs/replication.md, "Truncation by epoch"; Kafka KIP-101/KIP-279).
 *
 * A log is its last sequence and the first sequence of every epoch in it.
 * Each epoch has one leader, whose log in that epoch only grows, and a node
 * appends a leader's records only right after a position where the two logs
 * agree. So two entries with the same sequence and the same epoch are the
 * same entry, and so are all the entries before them (Raft's Log Matching):
 * the logs agree up to the highest sequence at which both hold the same
 * epoch.
 */
import type { EpochStart } from '../peer/messages.js'

export interface LogPosition {
  lastSequence: number
  /** Ascending by epoch and start sequence. */
  epochStarts: readonly EpochStart[]
}

/** The epoch of the entry at `sequence` (0 before the first start: a log written before replication, or empty). */
export function epochAt(epochStarts: readonly EpochStart[], sequence: number): number {
  let epoch = 0
  for (const s of epochStarts) {
    if (s.startSequence > sequence) break
    epoch = s.epoch
  }
  return epoch
}

/** The epoch of a log's last entry. */
export function lastEpoch(log: LogPosition): number {
  return epochAt(log.epochStarts, log.lastSequence)
}

/** The highest sequence up to which `a` and `b` hold the same entries (0: nothing in common). */
export function agreementPoint(a: LogPosition, b: LogPosition): number {
  const end = Math.min(a.lastSequence, b.lastSequence)
  // The epochs change only right before a start: check the end, then every such boundary below it.
  const candidates = new Set<number>([end])
  for (const s of a.epochStarts) if (s.startSequence - 1 < end) candidates.add(Math.max(0, s.startSequence - 1))
  for (const s of b.epochStarts) if (s.startSequence - 1 < end) candidates.add(Math.max(0, s.startSequence - 1))
  for (const p of [...candidates].sort((x, y) => y - x)) {
    if (epochAt(a.epochStarts, p) === epochAt(b.epochStarts, p)) return p
  }
  return 0
}

/** Orders logs by how advanced they are: last epoch first, then last sequence (Raft §5.4.1). */
export function compareLogs(a: LogPosition, b: LogPosition): number {
  return lastEpoch(a) - lastEpoch(b) || a.lastSequence - b.lastSequence
}
