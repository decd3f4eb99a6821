/**
 * The follower's side of the peer protocol (docs/replication.md, "Peer
 * protocol"): answers a leader's Fence, Append and Fetch on this node's log.
 *
 * Requests are processed one at a time in arrival order (the peer server
 * calls the handler in order; a chain keeps them in order across awaits),
 * but an Append's records are only handed to the write path there: its
 * reply waits for them to be written (fsynced with `sync`) outside the
 * chain, so a leader's appends pipeline.
 *
 * Every message of an epoch below the promised one is rejected; a higher
 * one is promised (persisted) before it is acted on, and the node steps down
 * first if it was leading an older epoch.
 */
import { StrataError } from '../../base/errors.js'
import { readU64 } from '../../base/coding.js'
import { walRecordEpoch, walRecordLastSequence } from '../../wal/wal-record.js'
import type { PeerReply, PeerRequest } from '../peer/messages.js'
import type { ReplicaLog } from './replica-log.js'
import { CheckpointReceiver } from './checkpoint-transfer.js'

/** What the follower service needs from its node. */
export interface FollowerHost {
  /** Appends are written with fsync (`--sync`). */
  readonly sync: boolean
  /**
   * A leader of `epoch` (at least the promised one) spoke: the node becomes
   * its follower, stepping down first if it leads an older epoch. Resolves
   * once this node's log takes appends.
   */
  followLeader(epoch: number, leaderId: string | undefined): Promise<void>
  /** The leader's commit sequence moved: entries up to it may reach tables. */
  committed(sequence: number): void
  logLine(line: string): void
}

type Processed = PeerReply | { later: Promise<PeerReply> }

export class FollowerService {
  /** The last sequence handed to the write path (written or on the way). */
  private appendedSequence: number
  /** The last append handed to the write path: replies that report a position wait for it. */
  private lastAppend: Promise<unknown> = Promise.resolve()
  private chain: Promise<unknown> = Promise.resolve()
  private readonly receiver: CheckpointReceiver

  constructor(
    private readonly log: ReplicaLog,
    private readonly host: FollowerHost,
  ) {
    this.appendedSequence = log.lastSequence
    this.receiver = new CheckpointReceiver(log.fs, `${log.dir}.install`)
  }

  /** After the node's log changed under it (a truncation, a takeover's own writes): re-read the position. */
  resync(): void {
    this.appendedSequence = this.log.lastSequence
  }

  /** The peer server's handler. */
  handle(request: PeerRequest): Promise<PeerReply> {
    const processed = this.chain.then(() => this.process(request))
    this.chain = processed.catch(() => undefined)
    return processed.then((p) => ('later' in p ? p.later : p))
  }

  private async process(request: PeerRequest): Promise<Processed> {
    const promised = this.log.promisedEpoch
    if (request.epoch < promised) {
      return { type: 'rejected', promisedEpoch: promised, message: `epoch ${request.epoch} is older than the promised ${promised}` }
    }
    switch (request.type) {
      case 'fence':
        this.log.promise(request.epoch)
        await this.host.followLeader(request.epoch, request.leaderId)
        this.resync()
        await this.lastAppend.catch(() => undefined)
        return this.fenced()
      case 'append':
        if (request.epoch > promised) {
          this.log.promise(request.epoch)
          await this.host.followLeader(request.epoch, undefined)
          this.resync()
        }
        return this.append(request)
      case 'fetch':
        await this.lastAppend.catch(() => undefined)
        return this.fetch(request.since, request.maxBytes)
      case 'install-begin':
        await this.lastAppend.catch(() => undefined)
        this.receiver.begin(request)
        return { type: 'ok' }
      case 'install-chunk':
        this.receiver.chunk(request)
        return { type: 'ok' }
      case 'install-end': {
        const { epochStarts } = this.receiver.finish(request.epoch)
        const sequence = await this.log.installCheckpoint(this.receiver.dir, epochStarts)
        this.receiver.cleanup()
        this.resync()
        this.host.committed(sequence)
        this.host.logLine(`installed the leader's checkpoint at sequence ${sequence} (epoch ${request.epoch})`)
        return { type: 'ok' }
      }
    }
  }

  private fenced(): PeerReply {
    const position = this.log.position(this.appendedSequence)
    return { type: 'fenced', nodeId: this.log.nodeId, promisedEpoch: this.log.promisedEpoch, lastSeq: position.lastSequence, epochStarts: [...position.epochStarts] }
  }

  private diverged(): PeerReply {
    const position = this.log.position(this.appendedSequence)
    return { type: 'diverged', lastSeq: position.lastSequence, epochStarts: [...position.epochStarts] }
  }

  private async append(request: Extract<PeerRequest, { type: 'append' }>): Promise<Processed> {
    const { prevSeq, prevEpoch } = request
    if (prevSeq > this.appendedSequence || this.log.epochAt(prevSeq) !== prevEpoch) return this.diverged()
    if (prevSeq < this.appendedSequence) {
      // The leader found our logs agree only up to prevSeq: what follows is a tail no majority has.
      await this.lastAppend.catch(() => undefined)
      let cut: number
      try {
        cut = await this.log.truncateAfter(prevSeq)
      } catch (err) {
        // Refused before anything changed: the tail reached a table (acknowledged with --ack async, never committed).
        if (this.log.db.isOpen && (err as StrataError).code === 'STRATA_INVALID_ARGUMENT') {
          return { type: 'error', code: 'STRATA_CHANGES_TRUNCATED', message: `cannot cut the log after ${prevSeq}: ${(err as Error).message}` }
        }
        throw err
      }
      this.host.logLine(`truncated ${cut} uncommitted record(s) after sequence ${prevSeq} (epoch ${prevEpoch}) for the leader of epoch ${request.epoch}`)
      this.resync()
      if (this.appendedSequence !== prevSeq) return this.diverged()
    }
    const writes: Array<Promise<void>> = []
    for (const record of request.records) {
      const first = readU64(record, 1)
      const epoch = walRecordEpoch(record)
      if (first !== this.appendedSequence + 1 || epoch > request.epoch) {
        return { type: 'error', code: 'STRATA_INVALID_ARGUMENT', message: `record ${first} of epoch ${epoch} does not follow sequence ${this.appendedSequence} in epoch ${request.epoch}` }
      }
      if (epoch !== this.log.epochAt(this.appendedSequence)) this.log.noteEpochStart(epoch, first)
      writes.push(this.log.db.appendRecord(record, { sync: this.host.sync }))
      this.appendedSequence = walRecordLastSequence(record)
    }
    const lastSeq = this.appendedSequence
    const written = writes.length > 0 ? Promise.all(writes) : this.lastAppend
    if (writes.length > 0) this.lastAppend = written
    // The host keeps the highest it heard (it only moves forward).
    this.host.committed(Math.min(request.commitSeq, lastSeq))
    const epoch = request.epoch
    return {
      later: written.then(
        (): PeerReply => ({ type: 'appended', epoch, lastSeq }),
        (err: unknown): PeerReply => {
          // The records may or may not be in the WAL: the leader re-fences and finds out.
          this.resync()
          return { type: 'error', code: err instanceof StrataError ? err.code : 'internal', message: (err as Error).message }
        },
      ),
    }
  }

  private async fetch(since: number, maxBytes: number): Promise<PeerReply> {
    const records: Buffer[] = []
    let bytes = 0
    const cursor = this.log.db.walRecords({ since })
    try {
      for await (const r of cursor) {
        records.push(Buffer.from(r.payload))
        bytes += r.payload.length
        if (bytes >= maxBytes) break
      }
    } finally {
      cursor.close()
    }
    return { type: 'fetched', records, lastSeq: this.appendedSequence }
  }
}
