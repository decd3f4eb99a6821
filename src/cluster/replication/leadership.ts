/**
 * One term of leadership in epoch E (docs/replication.md, "Taking over and
 * stepping down"):
 *
 *   1. fence every follower (PeerLink); wait for a majority, itself included;
 *   2. adopt the most advanced log among the replies (last epoch, then last
 *      sequence): cut this node's own divergent tail and fetch what it lacks
 *      from that node (Raft §5.4.2 in Vertical Paxos form: nothing of an
 *      older epoch is committed by counting replicas);
 *   3. append a NOOP in E through the commit gate; once a majority has it,
 *      everything before it is committed: serve.
 *
 * It ends (`stepDown`) on a reply naming a higher epoch, when the lease's
 * deadline passes, after `commitTimeoutMs` without a majority for a waiting
 * write, or when the node asks. Ending fails every waiting write and read
 * with STRATA_OUTCOME_UNKNOWN semantics (ClusterRefusal 'outcome-unknown').
 */
import { readU64 } from '../../base/coding.js'
import { walRecordEpoch } from '../../wal/wal-record.js'
import { PeerClient } from '../peer/peer-client.js'
import { CommitTracker } from './commit-tracker.js'
import { ClusterRefusal } from './cluster-refusal.js'
import { agreementPoint, compareLogs, type LogPosition } from './log-agreement.js'
import { PeerLink, type LinkHost, type PeerAddress } from './peer-link.js'
import type { ReplicaLog } from './replica-log.js'

export interface LeadershipOptions {
  log: ReplicaLog
  epoch: number
  nodeId: string
  /** Every replica's id, this node's included. */
  replicas: readonly string[]
  /** The other replicas' peer addresses (those registered). */
  peers: ReadonlyMap<string, PeerAddress>
  sync: boolean
  /**
   * 'majority': a write resolves once a majority has it (the commit gate);
   * 'async': once this node's WAL has it, replication following (a failover
   * may lose what had not reached a majority).
   */
  ack: 'majority' | 'async'
  commitTimeoutMs: number
  heartbeatMs: number
  requestTimeoutMs: number
  /** How long the takeover may take before giving up. */
  takeoverTimeoutMs: number
  /** False once the lease's deadline passed: nothing may be acknowledged any more. */
  leaseAlive: () => boolean
  logLine: (line: string) => void
}

export class Leadership implements LinkHost {
  readonly epoch: number
  readonly nodeId: string
  readonly log: ReplicaLog
  readonly tracker: CommitTracker
  readonly heartbeatMs: number
  readonly requestTimeoutMs: number
  readonly ready: Promise<void>
  private markReady!: () => void
  private readonly links: PeerLink[] = []
  private readonly positions = new Map<string, LogPosition>()
  private positionWaiters: Array<() => void> = []
  private endReason: string | undefined
  private readonly endedPromise: Promise<string>
  private resolveEnded!: (reason: string) => void
  private watchdog: NodeJS.Timeout | undefined
  serving = false

  constructor(private readonly options: LeadershipOptions) {
    this.epoch = options.epoch
    this.nodeId = options.nodeId
    this.log = options.log
    this.heartbeatMs = options.heartbeatMs
    this.requestTimeoutMs = options.requestTimeoutMs
    this.ready = new Promise<void>((resolve) => (this.markReady = resolve))
    this.endedPromise = new Promise<string>((resolve) => (this.resolveEnded = resolve))
    this.tracker = new CommitTracker(
      options.nodeId,
      options.replicas,
      () => {
        for (const link of this.links) link.heartbeat()
      },
      options.ack === 'async' ? () => (options.log.db.isOpen ? options.log.db.writtenSequence : 0) : undefined,
    )
  }

  /** Resolves with the reason once this leadership ended. */
  get ended(): Promise<string> {
    return this.endedPromise
  }

  get isOver(): boolean {
    return this.endReason !== undefined
  }

  /** The follower links (for status). */
  get followers(): ReadonlyArray<{ id: string; matchedSequence: number }> {
    return this.links
  }

  /** Starts a link to a replica that registered after the takeover began (a node that was down). */
  addPeer(id: string, address: PeerAddress): void {
    if (this.isOver || id === this.nodeId || !this.options.replicas.includes(id) || this.links.some((l) => l.id === id)) return
    const link = new PeerLink(this, id, address)
    this.links.push(link)
    link.start()
  }

  /** Runs steps 1-3; resolves once serving, rejects (and ends) when the takeover fails. */
  async takeOver(): Promise<void> {
    for (const [id, address] of this.options.peers) this.links.push(new PeerLink(this, id, address))
    for (const link of this.links) link.start()
    this.watchdog = setInterval(() => this.check(), 25)
    try {
      const deadline = performance.now() + this.options.takeoverTimeoutMs
      const needed = this.tracker.majority - 1
      while (this.positions.size < needed) {
        this.assertGoing()
        const left = deadline - performance.now()
        if (left <= 0) throw new Error(`only ${this.positions.size} of the ${needed} followers a majority needs answered the fence in ${this.options.takeoverTimeoutMs} ms`)
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 50))
          this.positionWaiters.push(() => {
            clearTimeout(t)
            resolve()
          })
        })
      }
      await this.adoptMostAdvanced()
      this.assertGoing()
      const db = this.log.db
      const last = this.log.lastSequence
      this.tracker.ownLog(last)
      db.setReplication({ commitGate: this.options.ack === 'majority' ? this.gate : undefined, epoch: this.epoch })
      this.log.noteEpochStart(this.epoch, last + 1)
      this.markReady()
      const noop = await db.writeNoop({ sync: this.options.sync })
      // Without a gate (ack async) the NOOP resolved at once: its epoch is committed only once a majority has it.
      if (this.options.ack === 'async') await this.gate(noop)
      this.assertGoing()
      this.serving = true
      this.options.logLine(`leader of epoch ${this.epoch}: log adopted and committed up to sequence ${noop}`)
    } catch (err) {
      this.stepDown(`takeover failed: ${(err as Error).message}`)
      throw err
    }
  }

  /** The engine's commit gate: a majority, and still within the lease. */
  private readonly gate = async (sequence: number): Promise<void> => {
    await this.tracker.gate(sequence)
    if (!this.options.leaseAlive()) throw ClusterRefusal.outcomeUnknown(`the lease of epoch ${this.epoch} ran out before the write was acknowledged`)
  }

  /** Read-index: resolves once reads at the commit point are linearizable. */
  async readBarrier(): Promise<void> {
    if (!this.serving) throw ClusterRefusal.noLeader('the leader is still taking over')
    // Without a majority for commitTimeoutMs, reads fail (and the leader steps down) as writes would.
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.stepDown(`no majority answered a read-index round within ${this.options.commitTimeoutMs} ms`)
        reject(ClusterRefusal.noLeader(`no majority answered within ${this.options.commitTimeoutMs} ms`))
      }, this.options.commitTimeoutMs)
    })
    try {
      await Promise.race([this.tracker.readBarrier(), timeout])
    } catch (err) {
      // A read that was not served has no outcome to doubt: the client just retries elsewhere.
      throw err instanceof ClusterRefusal && err.kind === 'outcome-unknown' ? ClusterRefusal.noLeader(err.message) : err
    } finally {
      clearTimeout(timer)
    }
    if (!this.options.leaseAlive() || this.isOver) throw ClusterRefusal.noLeader(`leadership of epoch ${this.epoch} ended`)
  }

  fenced(id: string, position: LogPosition): void {
    this.positions.set(id, position)
    for (const wake of this.positionWaiters.splice(0)) wake()
  }

  superseded(epoch: number): void {
    this.stepDown(`a follower promised epoch ${epoch}`)
  }

  logLine(line: string): void {
    this.options.logLine(line)
  }

  /** Ends this leadership: links stop, waiting writes and reads fail. Idempotent. */
  stepDown(reason: string): void {
    if (this.endReason !== undefined) return
    this.endReason = reason
    this.serving = false
    clearInterval(this.watchdog)
    for (const link of this.links) link.stop()
    this.tracker.fail(ClusterRefusal.outcomeUnknown(`leadership of epoch ${this.epoch} ended: ${reason}`))
    this.markReady()
    for (const wake of this.positionWaiters.splice(0)) wake()
    this.options.logLine(`stepping down from epoch ${this.epoch}: ${reason}`)
    this.resolveEnded(reason)
  }

  private check(): void {
    if (!this.options.leaseAlive()) this.stepDown('the lease deadline passed')
    else if (this.tracker.oldestWaitMs() > this.options.commitTimeoutMs) this.stepDown(`no majority acknowledged a write within ${this.options.commitTimeoutMs} ms`)
  }

  private assertGoing(): void {
    if (this.endReason !== undefined) throw new Error(`leadership ended: ${this.endReason}`)
  }

  /** Step 2: makes this node's log the most advanced of the majority that answered. */
  private async adoptMostAdvanced(): Promise<void> {
    const own = this.log.position()
    let best: { id: string; position: LogPosition } | undefined
    for (const [id, position] of this.positions) {
      if (compareLogs(position, best?.position ?? own) > 0) best = { id, position }
    }
    if (best === undefined) return
    const agreed = agreementPoint(own, best.position)
    if (agreed < own.lastSequence) {
      const cut = await this.log.truncateAfter(agreed)
      this.options.logLine(`takeover: cut ${cut} record(s) after ${agreed} that ${best.id}'s more advanced log does not hold`)
    }
    const address = this.options.peers.get(best.id)!
    const client = await PeerClient.connect(address, { connectTimeoutMs: this.requestTimeoutMs })
    try {
      let fetched = 0
      while (this.log.lastSequence < best.position.lastSequence) {
        this.assertGoing()
        const reply = await client.request({ type: 'fetch', epoch: this.epoch, since: this.log.lastSequence, maxBytes: 4 << 20 }, { timeoutMs: this.requestTimeoutMs * 5 })
        if (reply.type !== 'fetched') throw new Error(`fetch from ${best.id} answered ${reply.type}`)
        if (reply.records.length === 0) break
        for (const record of reply.records) {
          const first = readU64(record, 1)
          const epoch = walRecordEpoch(record)
          if (epoch !== this.log.epochAt(this.log.lastSequence)) this.log.noteEpochStart(epoch, first)
          await this.log.db.appendRecord(record, { sync: this.options.sync })
          fetched++
        }
      }
      if (this.log.lastSequence < best.position.lastSequence) throw new Error(`${best.id} ended its log at ${this.log.lastSequence}, short of ${best.position.lastSequence}`)
      this.options.logLine(`takeover: fetched ${fetched} record(s) from ${best.id}, log now ends at ${this.log.lastSequence}`)
    } finally {
      client.close()
    }
  }
}
