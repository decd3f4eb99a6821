/**
 * One replica of a replicated database, whoever elects it: its database and
 * log, the peer server its leader talks to, and the leadership it holds when
 * told to lead an epoch (the etcd side, cluster-node.ts, decides when). A
 * replica is a follower unless leading; the peer protocol drives a follower
 * (follower-service.ts).
 */
import { openReplicated, type ReplicatedDatabase } from '../../replicated-db.js'
import type { OpenOptions } from '../../options.js'
import { PeerServer } from '../peer/peer-server.js'
import { ClusterRefusal } from './cluster-refusal.js'
import { FollowerService, type FollowerHost } from './follower-service.js'
import { Leadership } from './leadership.js'
import type { PeerAddress } from './peer-link.js'
import { ReplicaLog } from './replica-log.js'

export interface ReplicaNodeOptions {
  dir: string
  nodeId: string
  /** Every replica's id, this node's included. */
  replicas: readonly string[]
  dbOptions?: OpenOptions
  /** Writes and appends are fsynced before they count. */
  sync: boolean
  /** When a leader's write resolves (Leadership's `ack`); default 'majority'. */
  ack?: 'majority' | 'async'
  peer: PeerAddress
  commitTimeoutMs?: number
  heartbeatMs?: number
  requestTimeoutMs?: number
  takeoverTimeoutMs?: number
  logLine?: (line: string) => void
  /** The error a follower's own writes get (default: ClusterRefusal 'no-leader'). */
  refuseWrites?: () => Error
}

export type ReplicaRole = 'follower' | 'leader'

export class ReplicaNode implements FollowerHost {
  readonly db: ReplicatedDatabase
  readonly log: ReplicaLog
  readonly sync: boolean
  private readonly follower: FollowerService
  private readonly server: PeerServer
  private leadershipValue: Leadership | undefined
  /** The highest commit sequence a leader told this node (entries up to it may reach tables). */
  private commitSeen = 0
  /** The epoch and id of the leader this node last heard from (or is). */
  leaderEpoch = 0
  leaderId: string | undefined
  private transition: Promise<unknown> = Promise.resolve()
  private closed = false
  peerPort = 0

  private constructor(
    readonly options: ReplicaNodeOptions,
    db: ReplicatedDatabase,
  ) {
    this.db = db
    this.sync = options.sync
    this.log = ReplicaLog.load(db, options.dir, options.nodeId)
    this.follower = new FollowerService(this.log, this)
    this.server = new PeerServer({ handler: (request) => this.follower.handle(request), log: (line) => this.logLine(`peer: ${line}`) })
  }

  static async open(options: ReplicaNodeOptions): Promise<ReplicaNode> {
    const db = await openReplicated(options.dir, options.dbOptions)
    let node: ReplicaNode
    try {
      node = new ReplicaNode(options, db)
    } catch (err) {
      await db.close()
      throw err
    }
    // Until a leader says what is committed, nothing replayed or appended reaches a table.
    db.setReplication(node.followerHooks())
    try {
      const bound = await node.server.listen(options.peer.host, options.peer.port)
      node.peerPort = bound.port
    } catch (err) {
      await db.close()
      throw err
    }
    return node
  }

  get nodeId(): string {
    return this.options.nodeId
  }

  get role(): ReplicaRole {
    return this.leadershipValue !== undefined && !this.leadershipValue.isOver ? 'leader' : 'follower'
  }

  /** The leadership held now (serving or taking over), if any. */
  get leadership(): Leadership | undefined {
    const l = this.leadershipValue
    return l !== undefined && !l.isOver ? l : undefined
  }

  get commitSequence(): number {
    return this.leadership?.tracker.commitSequence ?? this.commitSeen
  }

  /**
   * Leads `epoch` (elected by etcd): promises it, then takes over (fence,
   * adopt, NOOP). Resolves with the leadership once serving; rejects when the
   * takeover fails (the node is a follower again).
   */
  lead(epoch: number, peers: ReadonlyMap<string, PeerAddress>, leaseAlive: () => boolean, leaseTtlMs: number): Promise<Leadership> {
    const run = this.transition.then(async () => {
      if (this.closed) throw new Error('the node is closed')
      if (!this.log.promise(epoch)) throw new Error(`epoch ${epoch} is older than the promised ${this.log.promisedEpoch}`)
      this.leaderEpoch = epoch
      this.leaderId = this.nodeId
      await this.ensureWritable()
      const o = this.options
      const leadership = new Leadership({
        log: this.log,
        epoch,
        nodeId: this.nodeId,
        replicas: o.replicas,
        peers,
        sync: this.sync,
        ack: o.ack ?? 'majority',
        commitTimeoutMs: o.commitTimeoutMs ?? 5000,
        heartbeatMs: o.heartbeatMs ?? 100,
        requestTimeoutMs: o.requestTimeoutMs ?? Math.max(500, Math.floor(leaseTtlMs / 2)),
        takeoverTimeoutMs: o.takeoverTimeoutMs ?? leaseTtlMs,
        leaseAlive,
        logLine: (line) => this.logLine(line),
      })
      this.leadershipValue = leadership
      void leadership.ended.then(() => this.afterLeadership(leadership))
      return leadership
    })
    this.transition = run.catch(() => undefined)
    return run.then(async (leadership) => {
      await leadership.takeOver()
      return leadership
    })
  }

  /** FollowerHost: a leader of `epoch` spoke. */
  followLeader(epoch: number, leaderId: string | undefined): Promise<void> {
    const run = this.transition.then(async () => {
      const l = this.leadershipValue
      if (l !== undefined && !l.isOver && l.epoch < epoch) l.stepDown(`a leader of epoch ${epoch} fenced this node`)
      if (epoch > this.leaderEpoch || leaderId !== undefined) {
        this.leaderEpoch = Math.max(this.leaderEpoch, epoch)
        if (leaderId !== undefined) this.leaderId = leaderId
      }
      await this.becomeFollower()
    })
    this.transition = run.catch(() => undefined)
    return run
  }

  /** FollowerHost: the leader's commit point moved. */
  committed(sequence: number): void {
    if (sequence <= this.commitSeen) return
    this.commitSeen = sequence
    if (this.role === 'follower' && this.db.isOpen) this.db.setReplication(this.followerHooks())
  }

  /** A follower appends its leader's records only: its own writes are refused; it freezes up to the commit point. */
  private followerHooks(): { freezeLimit: number; refuseWrites: () => Error } {
    return { freezeLimit: this.commitSeen, refuseWrites: this.options.refuseWrites ?? (() => ClusterRefusal.noLeader(`replica ${this.nodeId} is a follower`)) }
  }

  logLine(line: string): void {
    this.options.logLine?.(`[${this.nodeId}] ${line}`)
  }

  /** Steps down (if leading), stops the peer server and closes the database. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.leadershipValue?.stepDown('the node is shutting down')
    await this.server.close()
    await this.transition.catch(() => undefined)
    await this.db.close()
  }

  private async afterLeadership(leadership: Leadership): Promise<void> {
    if (this.closed) return
    const run = this.transition.then(async () => {
      if (this.leadershipValue === leadership) await this.becomeFollower()
    })
    this.transition = run.catch(() => undefined)
    await run.catch((err: unknown) => this.logLine(`cannot become a follower: ${(err as Error).message}`))
  }

  /** A follower's database: writable again (after a refused commit), no gate, freezes up to the commit point. */
  private async becomeFollower(): Promise<void> {
    if (this.leadershipValue?.isOver === true) this.leadershipValue = undefined
    if (this.leadershipValue !== undefined) return
    await this.ensureWritable()
    this.db.setReplication(this.followerHooks())
    this.follower.resync()
  }

  /** A refused commit left the engine read-only: rebuild it from the directory (the uncommitted tail stays in the WAL). */
  private async ensureWritable(): Promise<void> {
    if (this.db.stats().failure === undefined) return
    for (let attempt = 0; attempt < 50; attempt++) {
      if (await this.db.resume()) return
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    throw new Error(`the database stays read-only: ${this.db.stats().failure?.message}`)
  }
}
