/**
 * Catch-up by checkpoint (docs/replication.md, "Catch-up"): a follower whose
 * next sequence is no longer in the leader's retained WAL gets a checkpoint
 * of the leader's database, file by file in chunks (each frame checksummed
 * by the peer protocol), and then follows the stream from its sequence.
 *
 * - `sendCheckpoint` (leader): takes the checkpoint beside the data
 *   directory, sends install-begin (sequence, epoch starts, file sizes),
 *   every file's chunks pipelined, then install-end, and removes it.
 * - `CheckpointReceiver` (follower): writes the chunks into a staging
 *   directory beside its data directory; at the end checks every size and
 *   syncs, for the replica to install (ReplicaLog.installCheckpoint).
 */
import * as path from 'node:path'
import { StrataError } from '../../base/errors.js'
import { readInto, syncDirectory, writeFully, type File, type FileSystem } from '../../vfs/file-system.js'
import type { PeerClient } from '../peer/peer-client.js'
import type { EpochStart, PeerReply, PeerRequest } from '../peer/messages.js'
import type { ReplicaLog } from './replica-log.js'

const CHUNK_BYTES = 1 << 20
const MAX_CHUNKS_IN_FLIGHT = 8

/** Sends a fresh checkpoint of `log` to the follower behind `client`; resolves with its sequence and size once installed there. */
export async function sendCheckpoint(log: ReplicaLog, fs: FileSystem, client: PeerClient, epoch: number, timeoutMs: number): Promise<{ sequence: number; bytes: number }> {
  const dir = path.join(`${log.dir}.transfer`, `checkpoint-${epoch}-${process.pid}-${Date.now()}`)
  const checkpoint = await log.db.checkpoint(dir)
  try {
    const names = fs.readdir(dir).sort()
    const files = names.map((name) => ({ name, bytes: fs.stat(path.join(dir, name)).size }))
    const epochStarts = log.position(checkpoint.sequence).epochStarts.map((s) => ({ ...s }))
    expectOk(await client.request({ type: 'install-begin', epoch, sequence: checkpoint.sequence, epochStarts, files }, { timeoutMs }), 'install-begin')
    const inFlight: Array<Promise<PeerReply>> = []
    for (const { name, bytes } of files) {
      const file = fs.open(path.join(dir, name), 'r')
      try {
        for (let offset = 0; offset < bytes || (offset === 0 && bytes === 0); offset += CHUNK_BYTES) {
          const data = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, bytes - offset))
          if (readInto(file, data, offset) !== data.length) throw new StrataError('STRATA_IO_ERROR', `${name} of the checkpoint is shorter than ${bytes} bytes`)
          inFlight.push(client.request({ type: 'install-chunk', epoch, name, offset, data }, { timeoutMs }))
          if (inFlight.length >= MAX_CHUNKS_IN_FLIGHT) expectOk(await inFlight.shift()!, 'install-chunk')
          if (bytes === 0) break
        }
      } finally {
        file.close()
      }
    }
    for (const p of inFlight) expectOk(await p, 'install-chunk')
    // Installing reopens the follower's engine: allow for it.
    expectOk(await client.request({ type: 'install-end', epoch }, { timeoutMs: timeoutMs * 10 }), 'install-end')
    return { sequence: checkpoint.sequence, bytes: files.reduce((n, f) => n + f.bytes, 0) }
  } finally {
    removeTree(fs, dir)
  }
}

function expectOk(reply: PeerReply, what: string): void {
  if (reply.type === 'ok') return
  const detail = reply.type === 'error' ? `${reply.code}: ${reply.message}` : reply.type === 'rejected' ? `rejected (promised ${reply.promisedEpoch})` : reply.type
  throw new Error(`${what} answered ${detail}`)
}

/** The follower's side: chunks into a staging directory. */
export class CheckpointReceiver {
  private expected = new Map<string, number>()
  private files = new Map<string, File>()
  private begun: { sequence: number; epochStarts: EpochStart[]; epoch: number } | undefined

  constructor(
    private readonly fs: FileSystem,
    /** The staging directory (beside the data directory: installing moves files). */
    readonly dir: string,
  ) {}

  begin(request: Extract<PeerRequest, { type: 'install-begin' }>): void {
    this.abort()
    removeTree(this.fs, this.dir)
    this.fs.mkdir(this.dir)
    for (const f of request.files) {
      if (f.name !== path.basename(f.name) || f.name.startsWith('.')) throw new StrataError('STRATA_INVALID_ARGUMENT', `checkpoint file name ${JSON.stringify(f.name)}`)
      this.expected.set(f.name, f.bytes)
      this.files.set(f.name, this.fs.open(path.join(this.dir, f.name), 'w'))
    }
    this.begun = { sequence: request.sequence, epochStarts: request.epochStarts, epoch: request.epoch }
  }

  chunk(request: Extract<PeerRequest, { type: 'install-chunk' }>): void {
    const file = this.files.get(request.name)
    const bytes = this.expected.get(request.name)
    if (this.begun === undefined || file === undefined || bytes === undefined || request.epoch !== this.begun.epoch) {
      throw new StrataError('STRATA_INVALID_ARGUMENT', `install-chunk of ${request.name} outside a transfer`)
    }
    if (request.offset + request.data.length > bytes) throw new StrataError('STRATA_INVALID_ARGUMENT', `install-chunk past the end of ${request.name}`)
    writeFully(file, request.data, request.offset)
  }

  /** Checks and syncs every file; returns what to install. */
  finish(epoch: number): { sequence: number; epochStarts: EpochStart[] } {
    const begun = this.begun
    if (begun === undefined || epoch !== begun.epoch) throw new StrataError('STRATA_INVALID_ARGUMENT', 'install-end outside a transfer')
    for (const [name, file] of this.files) {
      if (file.size() !== this.expected.get(name)) throw new StrataError('STRATA_CORRUPTION', `checkpoint file ${name} arrived with ${file.size()} of ${this.expected.get(name)} bytes`)
      file.datasyncSync()
      file.close()
    }
    this.files.clear()
    syncDirectory(this.fs, this.dir)
    this.begun = undefined
    return begun
  }

  /** Drops a transfer in progress (files closed; the staging directory goes at the next begin or cleanup). */
  abort(): void {
    for (const file of this.files.values()) file.close()
    this.files.clear()
    this.expected.clear()
    this.begun = undefined
  }

  cleanup(): void {
    this.abort()
    removeTree(this.fs, this.dir)
  }
}

/** Removes a flat directory of files (what a checkpoint is). */
function removeTree(fs: FileSystem, dir: string): void {
  let names: string[]
  try {
    names = fs.readdir(dir)
  } catch {
    return
  }
  for (const name of names) fs.unlink(path.join(dir, name))
  fs.rmdir(dir)
}
