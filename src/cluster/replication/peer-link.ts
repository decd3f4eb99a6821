/**
 * A leader's link to one follower (docs/replication.md, "Peer protocol"):
 * connect, Fence, then — once the takeover has settled the leader's own log
 * — ship WAL records from where the two logs agree, pipelined, with an empty
 * Append as heartbeat when idle and on every read-index round. Any failure
 * (connection, timeout, Diverged, an error reply) drops the connection and
 * starts over with a new Fence, which tells the leader where the follower's
 * log is now. A rejection naming a higher epoch ends the leadership.
 */
import { StrataError } from '../../base/errors.js'
import { PeerClient } from '../peer/peer-client.js'
import type { PeerReply, PeerRequest } from '../peer/messages.js'
import { agreementPoint, type LogPosition } from './log-agreement.js'
import type { CommitTracker } from './commit-tracker.js'
import type { ReplicaLog } from './replica-log.js'
import { sendCheckpoint } from './checkpoint-transfer.js'

export interface PeerAddress {
  host: string
  port: number
}

/** What a link needs from its leadership. */
export interface LinkHost {
  readonly epoch: number
  readonly nodeId: string
  readonly log: ReplicaLog
  readonly tracker: CommitTracker
  /** Resolves once the leader's own log is settled (takeover adopted the most advanced log). */
  readonly ready: Promise<void>
  readonly heartbeatMs: number
  readonly requestTimeoutMs: number
  /** A follower answered the Fence: where its log is. */
  fenced(id: string, position: LogPosition): void
  /** A follower promised a higher epoch: this leadership is over. */
  superseded(epoch: number): void
  logLine(line: string): void
}

/** Appends in flight to one follower before the link waits for acknowledgements. */
const MAX_PENDING_APPENDS = 256
const MAX_PENDING_BYTES = 16 << 20
const RECONNECT_MS = 100
/** Record bytes gathered into one Append before it goes out. */
const MAX_APPEND_BYTES = 1 << 20

export class PeerLink {
  private stopped = false
  private client: PeerClient | undefined
  private cursor: { close(): void } | undefined
  /** Where the next Append continues: the last sequence sent, and its epoch. */
  private prevSeq = 0
  private prevEpoch = 0
  private shipping = false
  private lastSendMs = 0
  private lastProblem = ''
  private wake: (() => void) | undefined
  /** The follower's acknowledged log end (for status). */
  matchedSequence = 0

  constructor(
    private readonly host: LinkHost,
    readonly id: string,
    readonly address: PeerAddress,
  ) {}

  start(): void {
    void this.run()
  }

  stop(): void {
    this.stopped = true
    this.cursor?.close()
    this.client?.close()
    this.wake?.()
  }

  /** Sends an empty Append now (a heartbeat, or a read-index round) when shipping. */
  heartbeat(): void {
    if (this.shipping && this.client?.isOpen === true) this.send([])
  }

  private async run(): Promise<void> {
    let heartbeat: NodeJS.Timeout | undefined
    while (!this.stopped) {
      try {
        this.client = await PeerClient.connect(this.address, { connectTimeoutMs: this.host.requestTimeoutMs })
        if (this.stopped) break
        const reply = await this.client.request({ type: 'fence', epoch: this.host.epoch, leaderId: this.host.nodeId }, { timeoutMs: this.host.requestTimeoutMs })
        if (reply.type === 'rejected') {
          this.host.superseded(reply.promisedEpoch)
          break
        }
        if (reply.type !== 'fenced') throw new Error(`fence answered ${describe(reply)}`)
        const position = { lastSequence: reply.lastSeq, epochStarts: reply.epochStarts }
        this.host.fenced(this.id, position)
        await Promise.race([this.host.ready, new Promise<void>((resolve) => (this.wake = resolve))])
        if (this.stopped) break
        heartbeat = setInterval(() => {
          if (performance.now() - this.lastSendMs >= this.host.heartbeatMs) this.heartbeat()
        }, Math.max(10, Math.floor(this.host.heartbeatMs / 2)))
        await this.ship(position)
        this.lastProblem = ''
      } catch (err) {
        const problem = (err as Error).message
        if (problem !== this.lastProblem && !this.stopped) this.host.logLine(`replication to ${this.id}: ${problem}`)
        this.lastProblem = problem
      } finally {
        clearInterval(heartbeat)
        this.shipping = false
        this.cursor?.close()
        this.client?.close()
      }
      if (!this.stopped) await new Promise<void>((resolve) => setTimeout(resolve, RECONNECT_MS))
    }
  }

  /**
   * Ships records from where the logs agree until the connection or the
   * leadership ends; a follower behind the retained WAL gets a checkpoint
   * first (then the link starts over with a Fence).
   */
  private async ship(follower: LogPosition): Promise<void> {
    try {
      await this.shipRecords(follower)
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'STRATA_CHANGES_TRUNCATED' || this.stopped || this.client?.isOpen !== true) throw err
      // No heartbeat may reach the follower while its log is replaced.
      this.shipping = false
      this.host.logLine(`${this.id} needs a checkpoint (${(err as Error).message}): sending one`)
      const started = performance.now()
      const sent = await sendCheckpoint(this.host.log, this.host.log.fs, this.client, this.host.epoch, this.host.requestTimeoutMs * 4)
      const ms = performance.now() - started
      this.host.logLine(`${this.id} installed a checkpoint at sequence ${sent.sequence} (${sent.bytes} bytes, ${((sent.bytes / 1e6) / (ms / 1000)).toFixed(1)} MB/s) in ${Math.round(ms)} ms`)
    }
  }

  private async shipRecords(follower: LogPosition): Promise<void> {
    const log = this.host.log
    const since = agreementPoint(log.position(), follower)
    this.prevSeq = since
    this.prevEpoch = log.epochAt(since)
    let failure: Error | undefined
    const cursor = log.db.walRecords({ since, live: true })
    this.cursor = cursor
    // The first failure decides (replies to appends pipelined behind it fail too, for its reason).
    this.failLink = (err: Error, keepConnection = false) => {
      if (failure !== undefined) return
      failure = err
      cursor.close()
      if (!keepConnection) this.client?.close()
    }
    // A connection that drops while the stream waits for new records must end the wait too.
    this.client!.onClose = (err) => this.failLink(err)
    if (this.client?.isOpen !== true) this.failLink(new Error('the connection closed'))
    this.shipping = true
    // The first message says where the follower's log must continue (it cuts a divergent tail there).
    this.send([])
    // Records read in one turn of the event loop go out as one Append (copied: the cursor reuses its read chunk).
    let batch: Buffer[] = []
    let batchBytes = 0
    let batchLast = 0
    let batchEpoch = 0
    let scheduled = false
    const flush = (): void => {
      scheduled = false
      if (batch.length === 0 || failure !== undefined) return
      this.send(batch, batchLast, batchEpoch)
      batch = []
      batchBytes = 0
    }
    for await (const record of cursor) {
      if (this.stopped || failure !== undefined) break
      batch.push(Buffer.from(record.payload))
      batchBytes += record.payload.length
      batchLast = record.lastSequence
      batchEpoch = record.epoch
      if (batchBytes >= MAX_APPEND_BYTES) flush()
      else if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
      const client = this.client!
      while (!this.stopped && failure === undefined && (client.pending > MAX_PENDING_APPENDS || this.pendingBytes > MAX_PENDING_BYTES)) {
        await new Promise<void>((resolve) => (this.drained = resolve))
      }
    }
    if (failure !== undefined) throw failure
    if (!this.stopped) throw new Error('the record stream ended')
  }

  private failLink: (err: Error, keepConnection?: boolean) => void = () => undefined
  private drained: (() => void) | undefined
  private pendingBytes = 0

  private send(records: Buffer[], lastSequence = this.prevSeq, lastEpoch = this.prevEpoch): void {
    const client = this.client
    if (client === undefined || !client.isOpen) {
      this.failLink(new Error('the connection closed'))
      return
    }
    const request: PeerRequest = {
      type: 'append',
      epoch: this.host.epoch,
      prevEpoch: this.prevEpoch,
      prevSeq: this.prevSeq,
      commitSeq: this.host.tracker.commitSequence,
      records,
    }
    const bytes = records.reduce((n, r) => n + r.length, 0)
    const round = this.host.tracker.currentRound
    this.pendingBytes += bytes
    this.prevSeq = lastSequence
    this.prevEpoch = lastEpoch
    this.lastSendMs = performance.now()
    client.request(request, { timeoutMs: this.host.requestTimeoutMs }).then(
      (reply) => {
        this.pendingBytes -= bytes
        this.drained?.()
        if (reply.type === 'appended') {
          this.matchedSequence = Math.max(this.matchedSequence, reply.lastSeq)
          this.host.tracker.acknowledged(this.id, reply.lastSeq, round)
        } else if (reply.type === 'rejected') {
          this.host.superseded(reply.promisedEpoch)
          this.failLink(new StrataError('STRATA_CONFLICT', `${this.id} promised epoch ${reply.promisedEpoch}`))
        } else if (reply.type === 'error' && reply.code === 'STRATA_CHANGES_TRUNCATED') {
          // The follower cannot cut its divergent tail (part of it reached its tables): it needs a checkpoint.
          this.failLink(new StrataError('STRATA_CHANGES_TRUNCATED', reply.message), true)
        } else {
          this.failLink(new Error(`append answered ${describe(reply)}`))
        }
      },
      (err: unknown) => {
        this.pendingBytes -= bytes
        this.drained?.()
        this.failLink(err as Error)
      },
    )
  }
}

function describe(reply: PeerReply): string {
  if (reply.type === 'error') return `error ${reply.code}: ${reply.message}`
  if (reply.type === 'diverged') return `diverged (its log ends at ${reply.lastSeq})`
  return reply.type
}
