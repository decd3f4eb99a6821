/**
 * The leader election of docs/replication.md on etcd, one per shard:
 *
 * 1. `announce()`: put the campaign key `election/<shard>/<lease id hex>`
 *    (value: the node id) under the node's lease, in a txn `Create == 0`
 *    (so campaigning again with the same lease finds the same key); the
 *    EPOCH E is its create_revision. etcd's revisions only grow, so a node
 *    that campaigns again (a new lease, a new key) gets a larger epoch.
 * 2. `campaign()`: elected once no campaign key older than E remains: read
 *    the newest key with create_revision <= E - 1 (sorted by create
 *    revision, descending, limit 1) together with our own key (one txn, one
 *    revision), watch that key's delete from the read's revision + 1, and
 *    loop. Like etcd's Go election, each candidate watches only the key
 *    just before it, so a leader's loss wakes one candidate.
 * 3. `claimLeadership(info)`: write `leader/<shard>` = `{ id, epoch, …info }`
 *    under the lease in a txn guarded by BOTH `Create(campaignKey) == E`
 *    AND the range compare "every key under election/<shard>/ has
 *    create_revision > E - 1". The first alone proves only that our key
 *    still exists: a live loser with its own, correct revision passes it
 *    (docs/replication-notes.md); with the second the txn itself proves
 *    that our key is the oldest, i.e. that we won.
 * 4. `resign()`: delete the leader key if it is ours (same lease) and our
 *    campaign key, in one txn; or revoke the lease.
 *
 * Everything that needs the lease checks its LOCAL deadline first
 * (lease.ts): a node past it is not a candidate or leader any more, even if
 * etcd has not expired the lease yet. Who leads is read from the leader key
 * (`readLeader`, `observeLeader`), never guessed from the newest campaign
 * key (etcd3's ElectionObserver's mistake, see the notes).
 *
 * Nothing here retries by itself: a `campaign()` that fails (`unavailable`
 * on a dead link, a broken watch) may simply be called again; it finds its
 * key and resumes. `lease-lost` is final for this lease: campaign again on
 * a new lease (a new key, a larger epoch).
 */
import type { EtcdClient } from './etcd-client.js'
import { EtcdError } from './errors.js'
import type { CallOptions } from './gateway.js'
import { clusterKeys, DEFAULT_SHARD, type ClusterKeys } from './keys.js'
import type { KeyValue } from './kv.js'
import type { Lease } from './lease.js'

export interface ElectionOptions {
  client: EtcdClient
  /** The node's lease (also holding its member key): the campaign and leader keys live on it. */
  lease: Lease
  cluster: string
  shard?: string
  /** This node's id (the campaign key's value and the leader key's `id`). */
  nodeId: string
}

export interface LeaderRecord {
  id: string
  epoch: bigint
  /** The leader key's other fields (its addresses). */
  info: Record<string, unknown>
  /** The revision of the write of the leader key. */
  modRevision: bigint
  /** The leader's lease. */
  lease: bigint
}

export interface CampaignOptions {
  signal?: AbortSignal
  /** Deadline of each etcd call the campaign makes (not of the whole wait). */
  timeoutMs?: number
}

const jsonValue = (_key: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)

export class Election {
  readonly client: EtcdClient
  readonly lease: Lease
  readonly nodeId: string
  readonly keys: ClusterKeys
  readonly campaignKey: string
  private epochValue: bigint | null = null

  constructor(options: ElectionOptions) {
    this.client = options.client
    this.lease = options.lease
    this.nodeId = options.nodeId
    this.keys = clusterKeys(options.cluster, options.shard ?? DEFAULT_SHARD)
    this.campaignKey = this.keys.campaignKey(this.lease.id)
  }

  /** E, the create revision of our campaign key, once `announce()` (or `campaign()`) made it. */
  get epoch(): bigint | null {
    return this.epochValue
  }

  /** Creates our campaign key under the lease, or finds it; returns the epoch E. */
  async announce(options: CallOptions = {}): Promise<bigint> {
    this.lease.assertAlive('campaign')
    const key = this.campaignKey
    let r
    try {
      r = await this.client.txn(
        {
          compare: [{ key, target: 'create', op: '==', value: 0 }],
          success: [{ put: { key, value: this.nodeId, lease: this.lease.id } }, { range: { key } }],
          failure: [{ range: { key } }],
        },
        options,
      )
    } catch (err) {
      if (err instanceof EtcdError && err.code === 'not-found') throw new EtcdError('lease-lost', `campaign: etcd no longer knows lease ${this.lease.id.toString(16)}`, { cause: err })
      throw err
    }
    const kv = r.responses[r.succeeded ? 1 : 0]?.range?.kvs[0]
    if (kv === undefined) throw new EtcdError('lease-lost', `campaign: ${key} vanished as it was written (lease expired?)`)
    if (kv.lease !== this.lease.id) throw new EtcdError('failed-precondition', `campaign: ${key} is held by lease ${kv.lease.toString(16)}, not ours`)
    this.epochValue = kv.createRevision
    return kv.createRevision
  }

  /**
   * Campaigns and resolves with the epoch once elected: no older campaign key remains. Then
   * `claimLeadership()`. Rejects with `lease-lost` (the deadline passed or our key is gone),
   * `canceled` (the signal), or a failed call (`unavailable`, …; calling again resumes).
   */
  async campaign(options: CampaignOptions = {}): Promise<bigint> {
    const call: CallOptions = { timeoutMs: options.timeoutMs, signal: options.signal }
    const epoch = this.epochValue ?? (await this.announce(call))
    for (;;) {
      this.lease.assertAlive('campaign')
      if (options.signal?.aborted === true) throw new EtcdError('canceled', 'campaign canceled')
      const r = await this.client.txn(
        {
          success: [
            { range: { key: this.campaignKey } },
            {
              range: {
                key: this.keys.electionPrefix,
                prefix: true,
                maxCreateRevision: epoch - 1n,
                sortTarget: 'create',
                sortOrder: 'descend',
                limit: 1,
              },
            },
          ],
        },
        call,
      )
      const mine = r.responses[0]?.range?.kvs[0]
      if (mine === undefined || mine.createRevision !== epoch) {
        throw new EtcdError('lease-lost', `campaign: our key ${this.campaignKey} is gone (lease expired or revoked, or resigned)`)
      }
      const predecessor = r.responses[1]?.range?.kvs[0]
      if (predecessor === undefined) return epoch
      await this.waitForDelete(predecessor, r.header.revision + 1n, options)
    }
  }

  /** Resolves when `kv` is deleted at or after `fromRevision` (or its watch is compacted: re-read). */
  private async waitForDelete(kv: KeyValue, fromRevision: bigint, options: CampaignOptions): Promise<void> {
    const watch = await this.client.watch(kv.key, { startRevision: fromRevision, noPut: true, timeoutMs: options.timeoutMs, signal: options.signal })
    let offEnded: () => void = () => undefined
    let onAbort: () => void = () => undefined
    try {
      await new Promise<void>((resolve, reject) => {
        offEnded = this.lease.onEnded((state) => reject(new EtcdError('lease-lost', `campaign: lease ${state} (${this.lease.lostReason?.reason ?? 'by its holder'})`)))
        onAbort = () => reject(new EtcdError('canceled', 'campaign canceled'))
        options.signal?.addEventListener('abort', onAbort, { once: true })
        if (options.signal?.aborted === true) onAbort()
        void (async () => {
          for (;;) {
            const b = await watch.next()
            if (b === null || b.events.some((e) => e.type === 'delete')) return
          }
        })().then(resolve, (err: unknown) => {
          if (err instanceof EtcdError && err.code === 'compacted') resolve()
          else reject(err)
        })
      })
    } finally {
      offEnded()
      options.signal?.removeEventListener('abort', onAbort)
      watch.cancel()
    }
  }

  /**
   * Writes the leader key `{ id, epoch, …info }` under our lease, guarded so that it succeeds only
   * while our campaign key exists with create revision E AND is the oldest under the election
   * prefix. Fails with `failed-precondition` otherwise (a loser, a deposed leader), `lease-lost`
   * past the lease's deadline. The epoch E of a live loser works too: that is what the range
   * compare is for.
   */
  async claimLeadership(info: Record<string, unknown> = {}, options: CallOptions = {}): Promise<LeaderRecord> {
    const epoch = this.epochValue
    if (epoch === null) throw new EtcdError('invalid-argument', 'claimLeadership: campaign first (no epoch)')
    this.lease.assertAlive('claim leadership')
    const rest = Object.fromEntries(Object.entries(info).filter(([k]) => k !== 'id' && k !== 'epoch'))
    const value = JSON.stringify({ id: this.nodeId, epoch: epoch.toString(), ...rest }, jsonValue)
    const prefix = this.keys.electionPrefix
    const r = await this.client.txn(
      {
        compare: [
          { key: this.campaignKey, target: 'create', op: '==', value: epoch },
          { key: prefix, prefix: true, target: 'create', op: '>', value: epoch - 1n },
        ],
        success: [{ put: { key: this.keys.leader, value, lease: this.lease.id } }],
        failure: [{ range: { key: this.campaignKey } }, { range: { key: prefix, prefix: true, sortTarget: 'create', sortOrder: 'ascend', limit: 1 } }],
      },
      options,
    )
    if (!r.succeeded) {
      const mine = r.responses[0]?.range?.kvs[0]
      const oldest = r.responses[1]?.range?.kvs[0]
      const why =
        mine === undefined
          ? `our campaign key ${this.campaignKey} is gone`
          : mine.createRevision !== epoch
            ? `our campaign key has create revision ${mine.createRevision}, not ${epoch}`
            : `an older campaign key remains (${oldest === undefined ? '?' : `${oldest.key.toString()} at ${oldest.createRevision}`})`
      throw new EtcdError('failed-precondition', `claim leadership in epoch ${epoch}: ${why}`)
    }
    return { id: this.nodeId, epoch, info: rest, modRevision: r.header.revision, lease: this.lease.id }
  }

  /**
   * Leaves the election: deletes the leader key if it is ours (on our lease) and our campaign key,
   * in one txn; with `revoke`, revokes the lease instead (which deletes every key on it, the
   * member key too).
   */
  async resign(options: CallOptions & { revoke?: boolean } = {}): Promise<void> {
    this.epochValue = null
    if (options.revoke === true) {
      await this.lease.revoke(options)
      return
    }
    await this.client.txn(
      {
        compare: [{ key: this.keys.leader, target: 'lease', op: '==', value: this.lease.id }],
        success: [{ delete: { key: this.keys.leader } }, { delete: { key: this.campaignKey } }],
        failure: [{ delete: { key: this.campaignKey } }],
      },
      options,
    )
  }

  /** Reads the leader key. */
  readLeader(options: CallOptions = {}): Promise<LeaderRecord | null> {
    return readLeader(this.client, this.keys, options)
  }

  /** Follows the leader key (see `observeLeader`). */
  observeLeader(onChange: (leader: LeaderRecord | null) => void, options: ObserveOptions = {}): LeaderObserver {
    return observeLeader(this.client, this.keys, onChange, options)
  }
}

/** The leader key's value, parsed; a malformed one is a `protocol` error. */
export function parseLeader(kv: KeyValue): LeaderRecord {
  let v: Record<string, unknown>
  try {
    v = JSON.parse(kv.value.toString('utf8')) as Record<string, unknown>
  } catch (err) {
    throw new EtcdError('protocol', `leader key ${kv.key.toString()}: not JSON`, { cause: err })
  }
  const { id, epoch, ...info } = v
  if (typeof id !== 'string' || typeof epoch !== 'string' || !/^\d+$/.test(epoch)) {
    throw new EtcdError('protocol', `leader key ${kv.key.toString()}: expected { id, epoch: "<decimal>" }, got ${kv.value.toString('utf8').slice(0, 200)}`)
  }
  return { id, epoch: BigInt(epoch), info, modRevision: kv.modRevision, lease: kv.lease }
}

/** Reads `leader/<shard>`: who leads, in which epoch; null when nobody does. */
export async function readLeader(client: EtcdClient, keys: ClusterKeys, options: CallOptions = {}): Promise<LeaderRecord | null> {
  const r = await client.range(keys.leader, options)
  const kv = r.kvs[0]
  return kv === undefined ? null : parseLeader(kv)
}

export interface ObserveOptions {
  /** Called with each failure before the observer starts over (read, then watch). */
  onError?: (err: EtcdError) => void
  /** Pause before starting over after a failure (default 200 ms). */
  retryDelayMs?: number
  /** Deadline of each read and watch creation. */
  timeoutMs?: number
}

export interface LeaderObserver {
  /** The last leader seen (null: none), undefined before the first read. */
  readonly current: LeaderRecord | null | undefined
  /** Resolves after the first read (and its `onChange`). */
  readonly ready: Promise<void>
  stop(): void
}

/**
 * Reads the leader key, calls `onChange` with it, then watches it from the next revision and
 * calls `onChange` on each change (null when it is deleted: no leader). A broken watch is
 * resumed from its next revision (a compacted one: re-read) after `retryDelayMs`; `onError`
 * hears of each failure; it stops for good when the client is closed. During a partition the watch may just fall silent (watch.ts): what
 * this reports can be stale, so a node never takes it as proof that it leads.
 */
export function observeLeader(client: EtcdClient, keys: ClusterKeys, onChange: (leader: LeaderRecord | null) => void, options: ObserveOptions = {}): LeaderObserver {
  let stopped = false
  let current: LeaderRecord | null | undefined
  let watch: { cancel(): void } | null = null
  let wake: (() => void) | null = null
  let resolveReady!: () => void
  const ready = new Promise<void>((resolve) => (resolveReady = resolve))

  const emit = (next: LeaderRecord | null) => {
    const same = current !== undefined && (current === null ? next === null : next !== null && next.modRevision === current.modRevision)
    current = next
    if (!same) onChange(next)
  }
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms)
      function done() {
        clearTimeout(t)
        wake = null
        resolve()
      }
      wake = done
    })

  void (async () => {
    let from: bigint | null = null
    while (!stopped) {
      try {
        if (from === null) {
          const r = await client.range(keys.leader, { timeoutMs: options.timeoutMs })
          if (stopped) break
          const kv = r.kvs[0]
          emit(kv === undefined ? null : parseLeader(kv))
          resolveReady()
          from = r.header.revision + 1n
        }
        const w = await client.watch(keys.leader, { startRevision: from, timeoutMs: options.timeoutMs })
        watch = w
        if (stopped) w.cancel()
        for (;;) {
          const b = await w.next()
          if (b === null) break
          for (const e of b.events) emit(e.type === 'put' ? parseLeader(e.kv) : null)
          from = w.nextRevision
        }
      } catch (err) {
        if (stopped) break
        const e = err instanceof EtcdError ? err : new EtcdError('unknown', String(err), { cause: err })
        options.onError?.(e)
        if (e.code === 'canceled') break // the client was closed
        if (e.code === 'compacted') from = null
        await pause(options.retryDelayMs ?? 200)
      } finally {
        watch = null
      }
    }
    resolveReady()
  })()

  return {
    get current() {
      return current
    },
    ready,
    stop() {
      stopped = true
      watch?.cancel()
      wake?.()
    },
  }
}
