/**
 * A minimal reference of the election design in the replication issue, on
 * the public API of the `etcd3` client, used by etcd-election.test.ts:
 *
 *   /strata/<cluster>/members/<id>            under the node's lease
 *   /strata/<cluster>/election/<shard>/<hex>  the campaign key, same lease
 *   /strata/<cluster>/leader/<shard>          {id, epoch}, written by a guarded txn
 *
 * epoch E = create_revision of the winner's campaign key. One lease per node:
 * when it expires (or is revoked) etcd deletes the member key and the
 * campaign key in the same revision.
 *
 * It also keeps a *local* lease deadline: the send time of the last
 * acknowledged keepalive + TTL. etcd cannot expire the lease before that
 * moment, so a leader that stops acting as leader when its local deadline
 * passes cannot overlap a successor (etcd3's own `lost` event comes only
 * about 2×TTL after the last keepalive, i.e. after a successor may already
 * be elected).
 */
import type { Etcd3, IKeyValue, Lease } from 'etcd3'

export interface NodeOptions {
  client: Etcd3
  cluster: string
  id: string
  /** Lease TTL in whole seconds (etcd's minimum is 1 s with --election-timeout 500, 2 s with the default 1000). */
  ttl: number
}

export interface Elected {
  campaignKey: string
  epoch: bigint
}

/** The end of the range of keys that start with `prefix` (etcd's prefix range_end). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix)
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1
      return end.subarray(0, i + 1)
    }
  }
  return Buffer.from([0])
}

export class ElectionNode {
  readonly client: Etcd3
  readonly id: string
  readonly ttl: number
  readonly prefix: string
  readonly lease: Lease
  /** performance.now() when etcd3 emitted `lost` for the lease, or null. */
  lostAt: number | null = null
  readonly lost: Promise<number>
  private readonly fired: number[] = []
  private deadline: number
  private readonly aborts = new Set<(err: Error) => void>()

  constructor(options: NodeOptions) {
    this.client = options.client
    this.id = options.id
    this.ttl = options.ttl
    this.prefix = `/strata/${options.cluster}/`
    const grantSent = performance.now()
    this.deadline = -Infinity
    this.lease = this.client.lease(this.ttl)
    // Keepalive responses come back in order on a stream: match each to the time its request was sent.
    this.lease.on('keepaliveEstablished', () => (this.fired.length = 0))
    this.lease.on('keepaliveFired', () => this.fired.push(performance.now()))
    this.lease.on('keepaliveSucceeded', () => {
      const sent = this.fired.shift()
      if (sent !== undefined) this.deadline = Math.max(this.deadline, sent + this.ttl * 1000)
    })
    this.lost = new Promise((resolve) => {
      this.lease.on('lost', () => {
        this.lostAt ??= performance.now()
        for (const abort of this.aborts) abort(new Error(`${this.id}: lease lost`))
        resolve(this.lostAt)
      })
    })
    this.lease
      .grant()
      .then(() => (this.deadline = Math.max(this.deadline, grantSent + this.ttl * 1000)))
      .catch(() => undefined) // `lost` reports it
  }

  /** performance.now() until which etcd cannot have expired this node's lease. */
  localDeadline(): number {
    return this.deadline
  }

  /** The lease ID as etcd3 gives it (a decimal string). */
  leaseId(): Promise<string> {
    return this.lease.grant()
  }

  /** Registers members/<id> under the lease. */
  async join(info: Record<string, unknown> = {}): Promise<void> {
    await this.lease
      .put(`${this.prefix}members/${this.id}`)
      .value(JSON.stringify({ id: this.id, ...info }))
      .exec()
  }

  electionPrefix(shard: string): string {
    return `${this.prefix}election/${shard}/`
  }

  leaderKey(shard: string): string {
    return `${this.prefix}leader/${shard}`
  }

  /**
   * Creates (or finds) this node's campaign key and resolves once every key
   * created before it is gone, i.e. this node holds the oldest key: elected,
   * with epoch = the key's create_revision. Rejects if the lease is lost.
   */
  async campaign(shard: string): Promise<Elected> {
    const leaseId = await this.lease.grant()
    const campaignKey = this.electionPrefix(shard) + BigInt(leaseId).toString(16)
    const c = this.client
    const res = await c
      .if(campaignKey, 'Create', '==', 0)
      .then(c.put(campaignKey).value(this.id).lease(leaseId), c.get(campaignKey))
      .else(c.get(campaignKey))
      .commit()
    const range = res.responses[res.succeeded ? 1 : 0]?.response_range
    const kv = range?.kvs[0]
    if (kv === undefined) throw new Error(`${this.id}: campaign key ${campaignKey} missing right after creating it`)
    const epoch = BigInt(kv.create_revision)
    await this.waitForPredecessors(shard, epoch)
    return { campaignKey, epoch }
  }

  private async waitForPredecessors(shard: string, epoch: bigint): Promise<void> {
    for (;;) {
      if (this.lostAt !== null) throw new Error(`${this.id}: lease lost while campaigning`)
      const r = await this.client
        .getAll()
        .prefix(this.electionPrefix(shard))
        .maxCreateRevision(String(epoch - 1n))
        .sort('Create', 'Descend')
        .limit(1)
        .exec()
      const pred = r.kvs[0]
      if (pred === undefined) return
      await this.waitForDelete(pred, BigInt(r.header.revision) + 1n)
    }
  }

  private async waitForDelete(kv: IKeyValue, fromRevision: bigint): Promise<void> {
    const watcher = await this.client.watch().key(kv.key).startRevision(String(fromRevision)).create()
    let abort: ((err: Error) => void) | undefined
    try {
      await new Promise<void>((resolve, reject) => {
        abort = reject
        this.aborts.add(reject)
        watcher.once('delete', () => resolve())
        watcher.once('error', reject)
      })
    } finally {
      if (abort !== undefined) this.aborts.delete(abort)
      watcher.cancel().catch(() => undefined)
    }
  }

  /**
   * Writes leader/<shard> = {id, epoch} guarded by Create(campaignKey) == epoch
   * ('plain', the guard), and in 'strict' mode also by "every key under
   * election/<shard>/ has create_revision > epoch - 1", i.e. this key is the
   * oldest: the txn itself then proves the writer won.
   */
  async writeLeader(shard: string, elected: Elected, mode: 'plain' | 'strict'): Promise<boolean> {
    const value = JSON.stringify({ id: this.id, epoch: elected.epoch.toString(), at: Date.now() })
    if (mode === 'plain') {
      const c = this.client
      const res = await c.if(elected.campaignKey, 'Create', '==', elected.epoch.toString()).then(c.put(this.leaderKey(shard)).value(value)).commit()
      return res.succeeded
    }
    const electionKey = Buffer.from(this.electionPrefix(shard))
    const res = await this.client.kv.txn({
      compare: [
        { key: Buffer.from(elected.campaignKey), target: 'Create', result: 'Equal', create_revision: elected.epoch.toString() },
        { key: electionKey, range_end: prefixEnd(electionKey), target: 'Create', result: 'Greater', create_revision: (elected.epoch - 1n).toString() },
      ],
      success: [{ request_put: { key: Buffer.from(this.leaderKey(shard)), value: Buffer.from(value) } }],
      failure: [],
    })
    return res.succeeded
  }
}

/** Reads leader/<shard>. */
export async function readLeader(client: Etcd3, cluster: string, shard: string): Promise<{ id: string; epoch: bigint } | null> {
  const raw = await client.get(`/strata/${cluster}/leader/${shard}`).string()
  if (raw === null) return null
  const v = JSON.parse(raw) as { id: string; epoch: string }
  return { id: v.id, epoch: BigInt(v.epoch) }
}
