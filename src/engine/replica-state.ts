import * as path from 'node:path'
import { decodeChecksummedText, encodeChecksummedText } from '../base/checksummed-text.js'
import { StrataError, corruption, ioError } from '../base/errors.js'
import { REPLICA_FILE, REPLICA_TEMP_FILE } from '../base/file-names.js'
import { replaceFileAtomically, syncDirectory, type FileSystem } from '../vfs/file-system.js'

/**
 * A replicated node's own state (docs/format.md, "REPLICA"; docs/replication.md):
 * the node id the data directory belongs to, the highest epoch it promised
 * (after a Fence it rejects every message of an older epoch), and the first
 * sequence of every epoch in its log, ascending (Kafka's leader-epoch
 * checkpoint: truncation by epoch finds where two logs part with it).
 * Written whole, atomically and durably; a single node has no REPLICA file.
 */
export interface ReplicaState {
  nodeId: string
  promisedEpoch: number
  /** Ascending by epoch and by start sequence. */
  epochStarts: Array<{ epoch: number; startSequence: number }>
}

const MAGIC = 'stratadb replica state'
const FORMAT_VERSION = 1
/** What a node id may be: it names the node in etcd keys and in this file. */
export const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** The file's bytes: magic, version, node, promised, one `epoch E S` line each, then `xxh32 HEX` of all before. */
export function encodeReplicaState(state: ReplicaState): Buffer {
  checkState(state)
  const lines = [`version ${FORMAT_VERSION}`, `node ${state.nodeId}`, `promised ${state.promisedEpoch}`]
  for (const e of state.epochStarts) lines.push(`epoch ${e.epoch} ${e.startSequence}`)
  return encodeChecksummedText(MAGIC, lines)
}

/** Parses the file strictly: anything but the exact layout with a matching checksum is STRATA_CORRUPTION. */
export function decodeReplicaState(buf: Buffer, file: string): ReplicaState {
  const lines = decodeChecksummedText(buf, MAGIC, 'the REPLICA file', file)
  const bad = (what: string): StrataError => corruption(`the REPLICA file ${what}`, file)
  if (lines[0] !== `version ${FORMAT_VERSION}`) throw bad(`has version line ${JSON.stringify(lines[0])}; this stratadb reads version ${FORMAT_VERSION}`)
  const node = /^node (.+)$/.exec(lines[1] ?? '')
  const promised = /^promised (\d{1,16})$/.exec(lines[2] ?? '')
  if (node === null || !NODE_ID.test(node[1]) || promised === null) throw bad('has no valid node or promised line')
  const epochStarts: ReplicaState['epochStarts'] = []
  for (const line of lines.slice(3)) {
    const m = /^epoch (\d{1,16}) (\d{1,16})$/.exec(line)
    if (m === null) throw bad(`has an invalid line ${JSON.stringify(line.slice(0, 80))}`)
    epochStarts.push({ epoch: Number(m[1]), startSequence: Number(m[2]) })
  }
  const state = { nodeId: node[1], promisedEpoch: Number(promised[1]), epochStarts }
  try {
    checkState(state)
  } catch (err) {
    throw bad((err as Error).message)
  }
  return state
}

function checkState(s: ReplicaState): void {
  if (!NODE_ID.test(s.nodeId)) throw new StrataError('STRATA_INVALID_ARGUMENT', `node id ${JSON.stringify(s.nodeId)} is not 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit`)
  const safe = (n: number): boolean => Number.isSafeInteger(n) && n >= 0
  if (!safe(s.promisedEpoch)) throw new StrataError('STRATA_INVALID_ARGUMENT', 'promised epoch must be a non-negative safe integer')
  let last: { epoch: number; startSequence: number } | undefined
  for (const e of s.epochStarts) {
    if (!safe(e.epoch) || !safe(e.startSequence)) throw new StrataError('STRATA_INVALID_ARGUMENT', 'epochs and start sequences must be non-negative safe integers')
    if (last !== undefined && (e.epoch <= last.epoch || e.startSequence < last.startSequence)) {
      throw new StrataError('STRATA_INVALID_ARGUMENT', 'epoch starts must ascend by epoch and not descend by sequence')
    }
    if (e.epoch > s.promisedEpoch) throw new StrataError('STRATA_INVALID_ARGUMENT', `epoch ${e.epoch} in the log is above the promised epoch ${s.promisedEpoch}`)
    last = e
  }
}

/** The state in `dir`, or undefined when it has no REPLICA file. */
export function readReplicaState(fs: FileSystem, dir: string): ReplicaState | undefined {
  const file = path.join(dir, REPLICA_FILE)
  let buf: Buffer
  try {
    buf = fs.readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw ioError(`cannot read ${file}`, err)
  }
  return decodeReplicaState(buf, file)
}

/** Replaces the state in `dir` durably: temp file, fdatasync, rename, directory fsync. */
export function writeReplicaState(fs: FileSystem, dir: string, state: ReplicaState): void {
  replaceFileAtomically(fs, path.join(dir, REPLICA_FILE), path.join(dir, REPLICA_TEMP_FILE), encodeReplicaState(state))
  syncDirectory(fs, dir)
}

/**
 * The last sequence this log holds in `epoch`, given the log's last sequence:
 * the start of the next epoch in the log, minus one. What a leader answers a
 * follower whose last epoch is `epoch` (truncation by epoch, KIP-101); for an
 * epoch this log never had, the end of the newest epoch below it.
 */
export function endOfEpoch(state: ReplicaState, epoch: number, lastSequence: number): number {
  const starts = state.epochStarts
  for (let i = 0; i < starts.length; i++) {
    if (starts[i].epoch > epoch) return Math.max(0, starts[i].startSequence - 1)
  }
  return lastSequence
}
