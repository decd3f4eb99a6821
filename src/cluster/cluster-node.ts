/**
 * A `strata serve --cluster` node (docs/replication.md): a replica
 * (replication/replica-node.ts) whose leadership etcd decides.
 *
 *   - membership: `members/<id>` = { http, resp, peer } under the node's lease;
 *   - election: campaign under the same lease; elected in epoch E (the
 *     campaign key's create revision) → write the leader key (guarded txn)
 *     → lead E (fence, adopt, NOOP) → serve;
 *   - a leadership ends on a higher epoch, the lease's deadline, or a commit
 *     timeout: the node revokes its lease (its campaign, leader and member
 *     keys go at once), takes a new one and campaigns again at the back;
 *   - followers learn the leader's addresses from the leader key (for
 *     redirects) and follow whoever fences them in the highest epoch.
 *
 * No etcd call is made per write or read: etcd is only touched by the lease
 * keepalives, the campaign, the leader key and membership.
 */
import { EtcdClient } from './etcd/etcd-client.js'
import { EtcdError } from './etcd/errors.js'
import { Election, observeLeader, type LeaderObserver, type LeaderRecord } from './etcd/election.js'
import type { Lease } from './etcd/lease.js'
import { keysOf, parseClusterUrl, readClusterConfig, readMembers, type ClusterConfig } from './cluster-config.js'
import { ClusterRefusal, type LeaderAddresses } from './replication/cluster-refusal.js'
import type { PeerAddress } from './replication/peer-link.js'
import { ReplicaNode } from './replication/replica-node.js'
import type { Database } from '../db.js'
import type { OpenOptions } from '../options.js'

export interface ClusterNodeOptions {
  /** `etcd://host:port[,host:port…]/<cluster>` */
  clusterUrl: string
  nodeId: string
  dir: string
  dbOptions?: OpenOptions
  sync: boolean
  /** Where the peer listener binds. */
  peer: PeerAddress
  commitTimeoutMs?: number
  /**
   * Where to reach some peers instead of the peer address they registered
   * (`--peer-via id=host:port`): a tunnel, or a test's fault-injecting proxy.
   */
  peerVia?: ReadonlyMap<string, PeerAddress>
  logLine?: (line: string) => void
}

export type ClusterRole = 'leader' | 'follower' | 'candidate' | 'stopped'

/** What GET /v1/cluster answers. */
export interface ClusterNodeInfo {
  nodeId: string
  role: ClusterRole
  epoch: number
  lastSequence: number
  commitSequence: number
  leader: LeaderAddresses | null
}

/** Deadline of each etcd call the node makes. */
const ETCD_CALL_MS = 1000
const RETRY_MS = 250

export class ClusterNode {
  private readonly client: EtcdClient
  private readonly cluster: string
  private addresses: { http: string | null; resp: string | null; peer: string } | undefined
  private lease: Lease | undefined
  private observer: LeaderObserver | undefined
  private leaderRecord: LeaderRecord | null = null
  private closed = false
  private running: Promise<void> | undefined
  private abort = new AbortController()

  private constructor(
    readonly options: ClusterNodeOptions,
    readonly config: ClusterConfig,
    client: EtcdClient,
    cluster: string,
    readonly replica: ReplicaNode,
  ) {
    this.client = client
    this.cluster = cluster
  }

  /** Reads the cluster's config from etcd and opens the replica (its peer listener too); `run` joins the cluster. */
  static async open(options: ClusterNodeOptions): Promise<ClusterNode> {
    const address = parseClusterUrl(options.clusterUrl)
    const client = new EtcdClient({ endpoints: address.endpoints, timeoutMs: ETCD_CALL_MS })
    let config: ClusterConfig | null
    try {
      config = await readClusterConfig(client, address.cluster, { timeoutMs: 5000 })
    } catch (err) {
      client.close()
      throw new Error(`cannot read the config of cluster ${address.cluster} from etcd at ${address.endpoints.join(',')}: ${(err as Error).message}`)
    }
    if (config === null) {
      client.close()
      throw new Error(`cluster ${address.cluster} has no config in etcd: run strata cluster init first`)
    }
    if (!config.replicas.includes(options.nodeId)) {
      client.close()
      throw new Error(`node ${options.nodeId} is not one of cluster ${address.cluster}'s replicas (${config.replicas.join(', ')})`)
    }
    let node: ClusterNode | undefined
    const replica = await ReplicaNode.open({
      dir: options.dir,
      nodeId: options.nodeId,
      replicas: config.replicas,
      dbOptions: options.dbOptions,
      sync: options.sync,
      ack: config.ack,
      peer: options.peer,
      commitTimeoutMs: options.commitTimeoutMs,
      requestTimeoutMs: Math.max(500, (config.leaseTtlSeconds * 1000) / 2),
      takeoverTimeoutMs: config.leaseTtlSeconds * 1000,
      logLine: options.logLine,
      refuseWrites: () => node?.refusal() ?? ClusterRefusal.noLeader('no leader yet'),
    }).catch((err: unknown) => {
      client.close()
      throw err
    })
    node = new ClusterNode(options, config, client, address.cluster, replica)
    return node
  }

  get db(): Database {
    return this.replica.db
  }

  get peerPort(): number {
    return this.replica.peerPort
  }

  /** Joins the cluster with the addresses clients and peers reach this node at; returns at once. */
  run(addresses: { http: string | null; resp: string | null; peer: string }): void {
    this.addresses = addresses
    this.observer = observeLeader(this.client, keysOf(this.cluster), (leader) => (this.leaderRecord = leader), { timeoutMs: ETCD_CALL_MS, retryDelayMs: RETRY_MS })
    this.running = this.campaignLoop()
  }

  get role(): ClusterRole {
    if (this.closed) return 'stopped'
    if (this.replica.role === 'leader') return this.replica.leadership?.serving === true ? 'leader' : 'candidate'
    return this.currentLeader() === null ? 'candidate' : 'follower'
  }

  info(): ClusterNodeInfo {
    const leader = this.currentLeader()
    return {
      nodeId: this.options.nodeId,
      role: this.role,
      epoch: this.replica.leaderEpoch,
      lastSequence: this.db.isOpen ? this.replica.log.lastSequence : 0,
      commitSequence: this.replica.commitSequence,
      leader,
    }
  }

  /**
   * Before a client's request: resolves when this node may serve it (the
   * serving leader; for reads and conditional writes after a read-index
   * round); rejects with a ClusterRefusal otherwise.
   */
  async admit(kind: 'read' | 'write'): Promise<void> {
    const refused = this.admitNow()
    if (refused !== undefined) throw refused
    if (kind === 'read') await this.replica.leadership!.readBarrier()
  }

  /** For a blind write, synchronously: undefined when this node serves writes now, else why not. */
  admitNow(): ClusterRefusal | undefined {
    const leadership = this.replica.leadership
    return leadership !== undefined && leadership.serving ? undefined : this.refusal()
  }

  /** Why this node does not serve clients now: who leads instead, or that nobody does yet. */
  refusal(): ClusterRefusal {
    const leader = this.currentLeader()
    if (leader === null || leader.id === this.options.nodeId) return ClusterRefusal.noLeader('no leader is serving yet: retry shortly')
    return ClusterRefusal.notLeader(leader)
  }

  /** Leaves the cluster (revoking the lease: another node takes over at once) and closes the database. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.abort.abort()
    this.observer?.stop()
    this.replica.leadership?.stepDown('the node is shutting down')
    await this.lease?.revoke({ timeoutMs: ETCD_CALL_MS }).catch(() => undefined)
    await this.running?.catch(() => undefined)
    this.client.close()
    await this.replica.close()
  }

  private currentLeader(): LeaderAddresses | null {
    const r = this.leaderRecord
    if (r === null) return null
    const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null)
    return { id: r.id, epoch: Number(r.epoch), http: str(r.info.http), resp: str(r.info.resp), peer: str(r.info.peer) }
  }

  private log(line: string): void {
    this.options.logLine?.(`[${this.options.nodeId}] ${line}`)
  }

  private async campaignLoop(): Promise<void> {
    const ttl = this.config.leaseTtlSeconds
    while (!this.closed) {
      let election: Election | undefined
      try {
        const lease = await this.client.lease(ttl, { timeoutMs: ETCD_CALL_MS })
        this.lease = lease
        if (this.closed) break
        const keys = keysOf(this.cluster)
        await this.client.put(keys.member(this.options.nodeId), JSON.stringify(this.addresses), { lease: lease.id, timeoutMs: ETCD_CALL_MS })
        election = new Election({ client: this.client, lease, cluster: this.cluster, nodeId: this.options.nodeId })
        const epoch = await election.campaign({ signal: this.abort.signal, timeoutMs: ETCD_CALL_MS })
        this.log(`elected in epoch ${epoch}`)
        await election.claimLeadership({ ...this.addresses }, { timeoutMs: ETCD_CALL_MS })
        const peers = await this.peers(lease)
        const leadership = await this.replica.lead(Number(epoch), peers, () => lease.alive(), ttl * 1000)
        const offLost = lease.onEnded(() => leadership.stepDown(`the lease ended (${lease.lostReason?.reason ?? lease.state})`))
        const refresh = setInterval(() => void this.addNewPeers(leadership), 500)
        try {
          await leadership.ended
        } finally {
          clearInterval(refresh)
          offLost()
        }
      } catch (err) {
        if (this.closed) break
        const e = err as Error
        this.log(`${e instanceof EtcdError ? `etcd ${e.code}` : 'election'}: ${e.message}`)
      }
      // Out of the election (lost lease, ended leadership, failed takeover): leave at once, come back at the back of the line.
      this.replica.leadership?.stepDown('leaving the election')
      await this.lease?.revoke({ timeoutMs: ETCD_CALL_MS }).catch(() => undefined)
      if (!this.closed) await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
    }
  }

  /** The other replicas' peer addresses once a majority has registered (or the lease runs out). */
  private async peers(lease: Lease): Promise<Map<string, PeerAddress>> {
    const needed = Math.floor(this.config.replicas.length / 2)
    for (;;) {
      lease.assertAlive('waiting for members')
      const peers = await this.readPeers()
      if (peers.size >= needed) return peers
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  private async readPeers(): Promise<Map<string, PeerAddress>> {
    const peers = new Map<string, PeerAddress>()
    for (const m of await readMembers(this.client, this.cluster, { timeoutMs: ETCD_CALL_MS })) {
      if (m.id === this.options.nodeId || !this.config.replicas.includes(m.id)) continue
      const address = this.options.peerVia?.get(m.id) ?? parseHostPort(m.peer)
      if (address !== undefined) peers.set(m.id, address)
    }
    return peers
  }

  private async addNewPeers(leadership: { addPeer(id: string, address: PeerAddress): void; isOver: boolean }): Promise<void> {
    if (leadership.isOver) return
    try {
      for (const [id, address] of await this.readPeers()) leadership.addPeer(id, address)
    } catch {
      // etcd unreachable: the lease deadline decides what happens to this leadership
    }
  }
}

/** `host:port` (IPv6 in brackets) as an address, or undefined. */
export function parseHostPort(s: string): PeerAddress | undefined {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(s)
  if (m === null) return undefined
  return { host: m[1], port: Number(m[2]) }
}
