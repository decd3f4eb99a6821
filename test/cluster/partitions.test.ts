/**
 * Network partitions of a 3-node cluster (etcd, lease TTL 2 s,
 * `--commit-timeout-ms 1000`): every link goes through a tcp-proxy.ts proxy
 * (each node's link to etcd, and each ordered pair of nodes' peer link via
 * `--peer-via`; cluster-harness.ts). Each case runs the 10-client workload
 * through the fault and judges it as failover.test.ts does (judge.ts):
 * linearizable, nothing acknowledged lost, every replica identical once the
 * links healed.
 *
 *   a. the leader isolated from etcd and its peers: a successor serves within
 *      2 × TTL + 1 s, the old leader stops acknowledging before that, and
 *      follows the new epoch once healed;
 *   b. the leader cut from its peers only: with writes waiting it steps down
 *      after the commit timeout ('no majority … within 1000 ms'), a node that
 *      reaches a majority leads;
 *   c. one follower cut from everything: writes keep being acknowledged, and
 *      it catches up after the heal;
 *   d. 30 ms of delay on every peer link: still linearizable, writes go on.
 *
 * What each case measured is printed (`[partitions] …`).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startCluster, type Cluster, type ClusterNode, type ClusterStatusAnswer } from './cluster-harness.js'
import { skipWithoutEtcd } from './etcd-harness.js'
import { expectReplicasIdentical, judge, summary, workloadUntil } from './judge.js'
import { delay } from './tcp-proxy.js'
import type { WorkloadResult } from './workload.js'

const TTL_SECONDS = 2
const COMMIT_TIMEOUT_MS = 1000
const clusters: Cluster[] = []
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.stop()
})

async function cluster(): Promise<Cluster> {
  const c = await startCluster({
    leaseTtlSeconds: TTL_SECONDS,
    etcdProxy: true,
    peerProxies: true,
    extraArgs: ['--commit-timeout-ms', String(COMMIT_TIMEOUT_MS)],
  })
  clusters.push(c)
  return c
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function report(what: string, numbers: Record<string, unknown>): void {
  console.log(`[partitions] ${what}: ${JSON.stringify(numbers)}`)
}

/** Polls `probe` every `everyMs` until it returns something other than undefined; fails after `timeoutMs`. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined, everyMs = 20): Promise<T> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v !== undefined) return v
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await sleep(everyMs)
  }
}

/** Resolves with the status of `id` once it answers and `accept` holds. */
function statusWhen(c: Cluster, id: string, what: string, timeoutMs: number, accept: (s: ClusterStatusAnswer) => boolean): Promise<ClusterStatusAnswer> {
  return until(what, timeoutMs, async () => {
    const s = await c.status(id)
    return s !== null && accept(s) ? s : undefined
  })
}

/** Writes a marker line into the node's captured log (as the harness marks starts and exits). */
function mark(node: ClusterNode, what: string): string {
  const line = `--- test: ${what} at ${new Date().toISOString()}`
  node.log.push(line)
  return line
}

/** The node's log lines matching `re` written after the marker line `marker`. */
function matchingAfter(node: ClusterNode, marker: string, re: RegExp): string[] {
  const at = node.log.lastIndexOf(marker)
  return at < 0 ? [] : node.log.slice(at + 1).filter((l) => re.test(l))
}

/** A PUT straight to one node (no redirect): its HTTP status, 0 when it did not answer in time. */
async function putDirect(node: ClusterNode, key: string, timeoutMs = 3000): Promise<number> {
  try {
    const res = await fetch(`http://${node.http}/v1/kv/${key}`, { method: 'PUT', body: 'probe', signal: AbortSignal.timeout(timeoutMs) })
    await res.text()
    return res.status
  } catch {
    return 0
  }
}

/** p50/p90/max of the latency (ms) of ok ops of `kinds` that completed within [from, to]. */
function latencies(r: WorkloadResult, kinds: readonly string[], from: number, to: number): string {
  const ms = r.history
    .filter((op) => kinds.includes(op.kind) && op.outcome === 'ok' && (op.completeMs as number) >= from && (op.completeMs as number) <= to)
    .map((op) => (op.completeMs as number) - op.invokeMs)
    .sort((x, y) => x - y)
  if (ms.length === 0) return 'none'
  const at = (q: number): number => Math.round(ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] as number)
  return `p50 ${at(0.5)} p90 ${at(0.9)} max ${at(1)} (n ${ms.length})`
}

/** Acknowledged writes (PUT, SET, successful CAS) the workload saw complete within [from, to]. */
function okWritesBetween(r: WorkloadResult, from: number, to: number): number {
  return r.history.filter((op) => (op.kind === 'write' || op.kind === 'cas') && op.outcome === 'ok' && (op.completeMs as number) >= from && (op.completeMs as number) <= to).length
}

describe.skipIf(skipWithoutEtcd())('a 3-node cluster under network partitions (etcd, lease TTL 2 s, commit timeout 1 s)', () => {
  it('the leader isolated from etcd and its peers: a successor within 2 × TTL + 1 s, the old one stops acknowledging, then follows', async () => {
    const c = await cluster()
    const old = await c.waitForLeader()
    const oldEpoch = (await c.status(old.id))!.epoch
    const m: Record<string, number | string> = {}
    const fault = (async () => {
      await sleep(1000)
      const marker = mark(old, 'isolated')
      c.isolate(old.id, 'blackhole')
      const cutAt = performance.now()
      const oldDown = statusWhen(c, old.id, `${old.id} stops leading`, 2 * TTL_SECONDS * 1000 + 1000, (s) => s.role !== 'leader').then(() => performance.now() - cutAt)
      const next = await c.waitForLeader(2 * TTL_SECONDS * 1000 + 3000, old.id)
      m.successorServingMs = Math.round(performance.now() - cutAt)
      m.oldStoppedLeadingMs = Math.round(await oldDown)
      m.oldStepDownLine = matchingAfter(old, marker, /stepping down/)[0] ?? 'none'
      m.successor = next.id
      const nextEpoch = (await c.status(next.id))!.epoch
      m.epochs = `${oldEpoch} -> ${nextEpoch}`
      // The old leader, still reachable by clients, acknowledges nothing.
      m.directPutToOld = await putDirect(old, `probe-old-${Date.now()}`)
      await sleep(500)
      c.heal()
      const healAt = performance.now()
      await statusWhen(c, old.id, `${old.id} follows epoch ${nextEpoch}`, 10_000, (s) => s.role === 'follower' && s.epoch >= nextEpoch)
      m.rejoinedAsFollowerMs = Math.round(performance.now() - healAt)
      m.nextEpoch = nextEpoch
      await sleep(1000)
    })()
    const r = await workloadUntil(c, fault)
    await fault
    report('a. leader isolated', { ...m, counts: r.counts })
    expect(m.successor).not.toBe(old.id)
    expect(m.successorServingMs).toBeLessThan(2 * TTL_SECONDS * 1000 + 1000)
    // Its lease deadline (≤ TTL after its last keepalive) comes before etcd can expire that lease.
    expect(m.oldStoppedLeadingMs).toBeLessThan(m.successorServingMs as number)
    expect(m.directPutToOld).not.toBe(204)
    expect(m.oldStepDownLine).toMatch(/stepping down/)
    expect(r.counts.ok, summary(r)).toBeGreaterThan(100)
    await judge(c, r)
    expect((await c.waitForLeader()).id).toBe(m.successor)
    await expectReplicasIdentical(c)
  }, 60_000)

  it('the leader cut from its peers only: it steps down within the commit timeout, a node reaching a majority leads', async () => {
    const c = await cluster()
    const old = await c.waitForLeader()
    const m: Record<string, number | string> = {}
    const stepping = /stepping down/
    const fault = (async () => {
      await sleep(1000)
      const marker = mark(old, 'cut from its peers')
      c.cutPeers(old.id, 'blackhole')
      const cutAt = performance.now()
      const line = await until(`${old.id} logs 'stepping down'`, COMMIT_TIMEOUT_MS + 5000, () => matchingAfter(old, marker, stepping)[0], 10)
      m.stepDownLoggedMs = Math.round(performance.now() - cutAt)
      m.stepDownLine = line
      const next = await c.waitForLeader(2 * TTL_SECONDS * 1000 + 3000, old.id)
      m.successorServingMs = Math.round(performance.now() - cutAt)
      m.successor = next.id
      const nextEpoch = (await c.status(next.id))!.epoch
      await sleep(1000)
      // Still cut: it has not led again.
      m.oldRoleWhileCut = (await c.status(old.id))?.role ?? 'no answer'
      c.heal()
      const healAt = performance.now()
      await statusWhen(c, old.id, `${old.id} follows epoch ${nextEpoch}`, 10_000, (s) => s.role === 'follower' && s.epoch >= nextEpoch)
      m.rejoinedAsFollowerMs = Math.round(performance.now() - healAt)
      await sleep(1000)
    })()
    const r = await workloadUntil(c, fault)
    await fault
    report('b. leader cut from peers', { ...m, counts: r.counts })
    expect(m.stepDownLine).toMatch(/no majority/)
    expect(m.stepDownLine).toContain(`${COMMIT_TIMEOUT_MS} ms`)
    // The oldest waiting write started about at the cut (one in flight may be a little older); the watchdog
    // looks every 25 ms. Not much earlier: nothing else (the lease is kept alive) ends this leadership.
    expect(m.stepDownLoggedMs).toBeGreaterThanOrEqual(COMMIT_TIMEOUT_MS - 500)
    expect(m.stepDownLoggedMs).toBeLessThan(COMMIT_TIMEOUT_MS + 750)
    expect(m.successor).not.toBe(old.id)
    expect(m.oldRoleWhileCut).not.toBe('leader')
    await judge(c, r)
    await expectReplicasIdentical(c)
  }, 60_000)

  it('one follower cut from everything: writes keep being acknowledged; healed, it catches up', async () => {
    const c = await cluster()
    const leader = await c.waitForLeader()
    const follower = c.nodes.find((x) => x.id !== leader.id)!
    const m: Record<string, number | string> = {}
    const window = { from: 0, to: 0 }
    const fault = (async () => {
      await sleep(1000)
      c.isolate(follower.id, 'blackhole')
      window.from = performance.now()
      await sleep(3000)
      m.leaderDuringCut = (await c.waitForLeader(2000)).id
      window.to = performance.now()
      const target = (await c.status(leader.id))!.lastSequence
      m.leaderSeqAtHeal = target
      m.followerSeqAtHeal = (await c.status(follower.id))?.lastSequence ?? -1
      c.heal()
      await statusWhen(c, follower.id, `${follower.id} reaches sequence ${target}`, 10_000, (s) => s.lastSequence >= target)
      m.caughtUpMs = Math.round(performance.now() - window.to)
      await sleep(1000)
    })()
    const r = await workloadUntil(c, fault)
    await fault
    m.okWritesDuringCut = okWritesBetween(r, window.from, window.to)
    m.cutMs = Math.round(window.to - window.from)
    report('c. follower cut', { ...m, counts: r.counts })
    expect(m.leaderDuringCut).toBe(leader.id)
    expect(m.okWritesDuringCut, summary(r)).toBeGreaterThan(20)
    // Acknowledged until the end of the cut, not just at its start.
    expect(okWritesBetween(r, window.to - 1000, window.to), summary(r)).toBeGreaterThan(0)
    expect(m.followerSeqAtHeal as number).toBeLessThan(m.leaderSeqAtHeal as number)
    await judge(c, r)
    await expectReplicasIdentical(c)
  }, 60_000)

  it('30 ms of delay on every peer link: still linearizable, writes keep being acknowledged', async () => {
    const c = await cluster()
    const leader = await c.waitForLeader()
    const m: Record<string, number | string> = {}
    const window = { from: 0, to: 0 }
    const fault = (async () => {
      await sleep(1000)
      for (const p of c.peerLinks.values()) p.setMode(delay(30))
      window.from = performance.now()
      await sleep(4000)
      window.to = performance.now()
      c.heal()
      await sleep(1000)
    })()
    const r = await workloadUntil(c, fault)
    await fault
    const before = okWritesBetween(r, window.from - 1000, window.from)
    m.okWritesPerSecondBefore = before
    m.okWritesPerSecondDelayed = Math.round((okWritesBetween(r, window.from, window.to) * 1000) / (window.to - window.from))
    m.putLatencyBefore = latencies(r, ['write'], window.from - 1000, window.from)
    m.putLatencyDelayed = latencies(r, ['write'], window.from, window.to)
    m.casLatencyBefore = latencies(r, ['cas'], window.from - 1000, window.from)
    m.casLatencyDelayed = latencies(r, ['cas'], window.from, window.to)
    m.readLatencyBefore = latencies(r, ['read'], window.from - 1000, window.from)
    m.readLatencyDelayed = latencies(r, ['read'], window.from, window.to)
    m.leaderAfter = (await c.waitForLeader(5000)).id
    report('d. 30 ms peer delay', { ...m, counts: r.counts })
    expect(m.leaderAfter).toBe(leader.id)
    // The leader's links to both followers really went through the proxies (--peer-via).
    for (const x of c.nodes) if (x.id !== leader.id) expect(c.peerLinks.get(`${leader.id}>${x.id}`)!.accepted(), `${leader.id}>${x.id}`).toBeGreaterThan(0)
    expect(okWritesBetween(r, window.from, window.to), summary(r)).toBeGreaterThan(20)
    expect(okWritesBetween(r, window.to - 1000, window.to), summary(r)).toBeGreaterThan(0)
    await judge(c, r)
    await expectReplicasIdentical(c)
  }, 60_000)
})
