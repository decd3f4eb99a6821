/**
 * The election of docs/replication.md on the etcd client
 * (src/cluster/etcd/election.ts), against a real etcd: one winner among
 * three campaigners, the guarded leader write (a live loser with its own
 * correct revision and a deposed leader both fail), epochs that strictly
 * increase across successive leaders, failover after a revoke (fast) and
 * after the leader's link is cut (the old leader's local deadline passes
 * before its successor is elected, in every trial).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Election, EtcdClient, EtcdError, observeLeader, clusterKeys, type Lease, type LeaderRecord } from '../../src/cluster/etcd/index.js'
import { skipWithoutEtcd, startEtcd, type EtcdInstance } from './etcd-harness.js'
import { startProxy, type TcpProxy } from './tcp-proxy.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b)
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] as number
  return `min ${q(0).toFixed(0)} p50 ${q(0.5).toFixed(0)} max ${q(1).toFixed(0)} ms`
}

/** A campaign in progress: when it resolved (or failed). */
interface Tracked {
  promise: Promise<bigint>
  done: boolean
  epoch: bigint | null
  error: unknown
  at: number
}

function track(p: Promise<bigint>): Tracked {
  const t: Tracked = { promise: p, done: false, epoch: null, error: null, at: Number.NaN }
  p.then(
    (epoch) => {
      t.done = true
      t.epoch = epoch
      t.at = performance.now()
    },
    (err: unknown) => {
      t.done = true
      t.error = err
      t.at = performance.now()
    },
  )
  return t
}

interface Node {
  id: string
  client: EtcdClient
  link: TcpProxy | null
  lease: Lease
  election: Election
  campaign: Tracked | null
}

describe.skipIf(skipWithoutEtcd())('election on the etcd client', { timeout: 30_000 }, () => {
  let etcd: EtcdInstance
  let admin: EtcdClient
  let clusterN = 0
  const toClose: (() => Promise<void> | void)[] = []

  beforeAll(async () => {
    etcd = await startEtcd()
    admin = new EtcdClient({ endpoints: etcd.clientUrl, timeoutMs: 2000 })
  })

  afterEach(async () => {
    for (const f of toClose.splice(0).reverse()) await f()
  })

  afterAll(async () => {
    admin?.close()
    await etcd?.stop()
  })

  async function makeNode(cluster: string, id: string, ttl: number, opts: { viaProxy?: boolean; intervalMs?: number } = {}): Promise<Node> {
    const link = opts.viaProxy === true ? await startProxy('127.0.0.1', etcd.clientPort) : null
    const client = new EtcdClient({ endpoints: link === null ? etcd.clientUrl : `http://${link.address}`, timeoutMs: 1000 })
    toClose.push(async () => {
      client.close()
      await link?.close()
    })
    const lease = await client.lease(ttl, { intervalMs: opts.intervalMs })
    const keys = clusterKeys(cluster)
    await client.put(keys.member(id), JSON.stringify({ id }), { lease: lease.id })
    const election = new Election({ client, lease, cluster, nodeId: id })
    return { id, client, link, lease, election, campaign: null }
  }

  /** A node that campaigns again: a new lease, a new campaign key, a larger epoch. */
  async function rejoin(cluster: string, node: Node, ttl: number): Promise<void> {
    node.lease.stop()
    node.lease = await node.client.lease(ttl)
    node.election = new Election({ client: node.client, lease: node.lease, cluster, nodeId: node.id })
    await node.election.announce()
    node.campaign = track(node.election.campaign())
  }

  async function firstElected(nodes: Node[], timeoutMs: number): Promise<Node> {
    const t0 = performance.now()
    for (;;) {
      const winners = nodes.filter((n) => n.campaign?.done === true && n.campaign.epoch !== null)
      if (winners.length > 0) {
        expect(winners).toHaveLength(1)
        return winners[0] as Node
      }
      if (performance.now() - t0 > timeoutMs) throw new Error(`nobody elected within ${timeoutMs} ms`)
      await Promise.race([...nodes.map((n) => n.campaign?.promise.catch(() => 0n)), sleep(50)])
    }
  }

  it('elects exactly one of three campaigners; a live loser cannot claim leadership with its own correct epoch', async () => {
    const cluster = `c${++clusterN}`
    const nodes = await Promise.all(['n1', 'n2', 'n3'].map((id) => makeNode(cluster, id, 2)))
    const epochs = await Promise.all(nodes.map((n) => n.election.announce()))
    expect(new Set(epochs.map(String)).size).toBe(3)
    // Announcing again finds the same key and epoch.
    expect(await nodes[0]!.election.announce()).toBe(epochs[0])
    for (const n of nodes) n.campaign = track(n.election.campaign())
    const winner = await firstElected(nodes, 2000)
    await sleep(300)
    expect(nodes.filter((n) => n.campaign?.done === true).map((n) => n.id)).toEqual([winner.id])
    // The winner holds the oldest campaign key: its epoch is the smallest create revision.
    const minEpoch = epochs.reduce((a, b) => (a < b ? a : b))
    expect(winner.campaign!.epoch).toBe(minEpoch)
    expect(winner.election.epoch).toBe(minEpoch)

    const claimed = await winner.election.claimLeadership({ http: 'http://127.0.0.1:1', peer: 'x' })
    expect(claimed.epoch).toBe(minEpoch)
    const leader = await winner.election.readLeader()
    expect(leader).toMatchObject({ id: winner.id, epoch: minEpoch, info: { http: 'http://127.0.0.1:1', peer: 'x' }, lease: winner.lease.id })
    const raw = JSON.parse((await admin.get(clusterKeys(cluster).leader))!.toString()) as Record<string, unknown>
    expect(raw.epoch).toBe(minEpoch.toString()) // a string in JSON

    for (const loser of nodes.filter((n) => n !== winner)) {
      // The pitfall of the notes: Create(loserKey) == E_loser holds for a live loser…
      const plain = await admin.txn({
        compare: [{ key: loser.election.campaignKey, target: 'create', op: '==', value: loser.election.epoch! }],
        success: [],
      })
      expect(plain.succeeded).toBe(true)
      // …but the range compare over the election prefix stops its claim.
      await expect(loser.election.claimLeadership()).rejects.toMatchObject({ code: 'failed-precondition' })
    }
    expect(await winner.election.readLeader()).toMatchObject({ id: winner.id, epoch: minEpoch })

    // Resigning deletes the leader key and the campaign key; the next one is elected.
    await winner.election.resign()
    expect(await winner.election.readLeader()).toBeNull()
    const next = await firstElected(nodes.filter((n) => n !== winner), 2000)
    expect(next.campaign!.epoch).toBeGreaterThan(minEpoch)
    await next.election.claimLeadership()
    for (const n of nodes) n.lease.stop()
  })

  it('successive leaders after revokes: fast failover, strictly increasing epochs, a deposed leader cannot write', async () => {
    const cluster = `c${++clusterN}`
    // No keepalive during the test (TTL 30 s, first keepalive after 60 s): a lease revoked at etcd
    // still looks alive locally, so the deposed leader's claim reaches etcd and the guard (not
    // the local deadline) must refuse it.
    const lease = { ttl: 30, intervalMs: 60_000 }
    const nodes: Node[] = []
    for (const id of ['a', 'b', 'c']) nodes.push(await makeNode(cluster, id, lease.ttl, { intervalMs: lease.intervalMs }))
    for (const n of nodes) {
      await n.election.announce()
      n.campaign = track(n.election.campaign())
    }
    const seen: (LeaderRecord | null)[] = []
    const observer = observeLeader(admin, clusterKeys(cluster), (l) => seen.push(l))
    toClose.push(() => observer.stop())
    await observer.ready

    const epochs: bigint[] = []
    const failovers: number[] = []
    let leader = await firstElected(nodes, 2000)
    await leader.election.claimLeadership()
    epochs.push(leader.campaign!.epoch!)
    for (let round = 0; round < 6; round++) {
      const old = leader
      const oldElection = old.election
      const t0 = performance.now()
      await admin.revoke(old.lease.id) // etcd-side loss: the old leader does not know yet
      const others = nodes.filter((n) => n !== old)
      leader = await firstElected(others, 2000)
      failovers.push(leader.campaign!.at - t0)
      const claimed = await leader.election.claimLeadership()
      expect(claimed.epoch).toBeGreaterThan(epochs[epochs.length - 1]!)
      epochs.push(claimed.epoch)
      // The deposed leader, still alive by its own clock, tries to write the leader key again.
      expect(old.lease.alive()).toBe(true)
      await expect(oldElection.claimLeadership()).rejects.toMatchObject({ code: 'failed-precondition' })
      expect(await leader.election.readLeader()).toMatchObject({ id: leader.id, epoch: claimed.epoch })
      // The old node campaigns again with a new lease: a new key, a larger epoch, last in line.
      old.lease.stop()
      old.lease = await old.client.lease(lease.ttl, { intervalMs: lease.intervalMs })
      old.election = new Election({ client: old.client, lease: old.lease, cluster, nodeId: old.id })
      const e = await old.election.announce()
      expect(e).toBeGreaterThan(claimed.epoch)
      old.campaign = track(old.election.campaign())
    }
    for (let i = 1; i < epochs.length; i++) expect(epochs[i]!).toBeGreaterThan(epochs[i - 1]!)
    await sleep(100)
    // The observer saw the leaders in order (possibly with a null between two).
    const observed = seen.filter((l): l is LeaderRecord => l !== null).map((l) => l.epoch)
    expect(observed).toEqual(epochs)
    for (const ms of failovers) expect(ms).toBeLessThan(1000)
    console.log(`[election] failover after a revoke (revoke sent -> successor elected), ${failovers.length} rounds: ${stats(failovers)}`)
    for (const n of nodes) await n.lease.revoke()
  })

  it('a campaign fails with lease-lost when its lease is revoked, and rejects claims without an epoch', async () => {
    const cluster = `c${++clusterN}`
    const first = await makeNode(cluster, 'first', 5)
    const second = await makeNode(cluster, 'second', 5)
    await expect(second.election.claimLeadership()).rejects.toMatchObject({ code: 'invalid-argument' })
    await first.election.campaign()
    const outcome = second.election.campaign().then(
      () => null,
      (err: unknown) => err,
    )
    await sleep(100)
    await second.lease.revoke()
    const err = await outcome
    expect(err).toBeInstanceOf(EtcdError)
    expect(err).toMatchObject({ code: 'lease-lost' })
    // A campaign whose lease the holder stopped fails at once.
    const third = await makeNode(cluster, 'third', 5)
    third.lease.stop()
    await expect(third.election.campaign()).rejects.toMatchObject({ code: 'lease-lost' })
    // An aborted campaign fails with canceled.
    const fourth = await makeNode(cluster, 'fourth', 5)
    const ac = new AbortController()
    const aborted = fourth.election.campaign({ signal: ac.signal }).then(
      () => null,
      (e: unknown) => e,
    )
    await sleep(100)
    ac.abort()
    expect(await aborted).toMatchObject({ code: 'canceled' })
    // …and calling campaign() again resumes with the same key and epoch.
    const epoch = fourth.election.epoch
    const again = fourth.election.campaign()
    await first.election.resign()
    expect(await again).toBe(epoch)
    await fourth.lease.revoke()
    await first.lease.revoke()
  })

  it('fails over after the leader is cut off: its deadline passes before the successor is elected, every trial (TTL 1 s)', async () => {
    const cluster = `c${++clusterN}`
    const TTL = 1
    const nodes: Node[] = []
    for (const id of ['x', 'y', 'z']) {
      const n = await makeNode(cluster, id, TTL, { viaProxy: true })
      await n.election.announce()
      n.campaign = track(n.election.campaign())
      nodes.push(n)
    }
    const TRIALS = 8
    const deadlines: number[] = []
    const elections: number[] = []
    const margins: number[] = []
    let lastEpoch = 0n
    let leader = await firstElected(nodes, 3000)
    for (let trial = 0; trial < TRIALS; trial++) {
      const claimed = await leader.election.claimLeadership({ trial })
      expect(claimed.epoch).toBeGreaterThan(lastEpoch)
      lastEpoch = claimed.epoch
      await sleep(300 + Math.random() * 400) // a random phase of keepalives and etcd's expiry sweep
      expect(leader.lease.alive()).toBe(true)
      const old = leader
      const cut = performance.now()
      old.link!.setMode('blackhole')
      const others = nodes.filter((n) => n !== old)
      leader = await firstElected(others, 4000)
      const electedAt = leader.campaign!.at
      // The old leader must have stopped (its deadline passed) before the successor was elected.
      expect(old.lease.deadlineMs).toBeLessThan(electedAt)
      expect(old.lease.alive(electedAt)).toBe(false)
      expect(electedAt - cut).toBeLessThan(TTL * 1000 + 1500) // TTL + etcd's 500 ms expiry sweep + slack
      deadlines.push(old.lease.deadlineMs - cut)
      elections.push(electedAt - cut)
      margins.push(electedAt - old.lease.deadlineMs)
      const lost = await old.lease.lost
      expect(lost.reason).toBe('deadline')
      await expect(old.election.claimLeadership()).rejects.toMatchObject({ code: 'lease-lost' })
      // Heal; the old node rejoins (new lease, new key, last in line).
      old.link!.setMode('pass')
      await rejoin(cluster, old, TTL)
    }
    const final = await leader.election.claimLeadership()
    expect(final.epoch).toBeGreaterThan(lastEpoch)
    console.log(
      `[election, link cut, TTL 1 s, ${TRIALS} trials, after the cut] old leader's deadline: ${stats(deadlines)}; successor elected: ${stats(elections)}; ` +
        `margin: ${stats(margins)}`,
    )
    for (const n of nodes) await n.lease.revoke().catch(() => undefined)
  })
})
