/**
 * A replicated group for real: one etcd, three `strata serve --cluster`
 * processes (lease TTL 2 s), clients over HTTP and RESP (workload.ts)
 * following redirects. Every history must be linearizable (per key: a
 * register with compare-and-set; linearizability.ts), no acknowledged write
 * may be lost, and in the end every replica holds the same entries under
 * the same versions. Faults: kill -9 of the leader, SIGSTOP of the leader
 * past 2 × TTL, the leader cut from etcd, etcd unreachable for everyone, a
 * follower down while the leader's WAL moves past `--wal-retain-mib`.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startCluster, type Cluster } from './cluster-harness.js'
import { expectReplicasIdentical, judge, summary, workloadUntil } from './judge.js'
import { skipWithoutEtcd } from './etcd-harness.js'

const TTL_SECONDS = 2
const clusters: Cluster[] = []
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.stop()
})

async function cluster(options: Parameters<typeof startCluster>[0] = {}): Promise<Cluster> {
  const c = await startCluster({ leaseTtlSeconds: TTL_SECONDS, ...options })
  clusters.push(c)
  return c
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

describe.skipIf(skipWithoutEtcd())('a 3-node cluster under faults (etcd, lease TTL 2 s)', () => {
  it('kill -9 of the leader, 10 times mid-stream: linearizable, nothing acknowledged lost, replicas identical', async () => {
    const c = await cluster()
    await c.waitForLeader()
    const kills: string[] = []
    const chaos = (async () => {
      for (let i = 0; i < 10; i++) {
        await sleep(800)
        const leader = await c.waitForLeader(20_000)
        kills.push(leader.id)
        await c.kill(leader.id, 'SIGKILL')
        await sleep(300)
        await c.start(leader.id)
      }
    })()
    const r = await workloadUntil(c, chaos)
    await chaos
    expect(kills.length).toBe(10)
    expect(r.counts.ok, summary(r)).toBeGreaterThan(300)
    await judge(c, r)
    await expectReplicasIdentical(c)
  }, 240_000)

  it('SIGSTOP of the leader past 2 × TTL: it acknowledges nothing after its successor took over, and follows it after SIGCONT', async () => {
    const c = await cluster()
    const old = await c.waitForLeader()
    const paused = (async () => {
      await sleep(700)
      c.pause(old.id)
      await sleep(2 * TTL_SECONDS * 1000 + 500)
      c.resume(old.id)
      await sleep(1500)
    })()
    const r = await workloadUntil(c, paused)
    await paused
    const next = await c.waitForLeader(20_000)
    expect(next.id).not.toBe(old.id)
    expect(old.log.some((l) => l.includes('stepping down'))).toBe(true)
    await judge(c, r)
    await expectReplicasIdentical(c)
  }, 120_000)

  it('the leader cut from etcd only steps down within the TTL; another leads; it rejoins as a follower', async () => {
    const c = await cluster({ etcdProxy: true })
    const old = await c.waitForLeader()
    const cut = (async () => {
      await sleep(700)
      c.etcdProxies.get(old.id)!.setMode('blackhole')
      const cutAt = performance.now()
      for (;;) {
        const s = await c.status(old.id)
        if (s !== null && s.role !== 'leader') break
        await sleep(20)
      }
      const steppedDownMs = performance.now() - cutAt
      expect(steppedDownMs).toBeLessThan(TTL_SECONDS * 1000 + 500)
      await c.waitForLeader(20_000, old.id)
      c.etcdProxies.get(old.id)!.setMode('pass')
      await sleep(1500)
    })()
    const r = await workloadUntil(c, cut)
    await cut
    await judge(c, r)
    await expectReplicasIdentical(c)
  }, 120_000)

  it('etcd unreachable for everyone: writes are refused within the TTL and resume within 5 s of its return', async () => {
    const c = await cluster({ etcdProxy: true })
    const leader = await c.waitForLeader()
    const put = async (node: { http: string }, key: string): Promise<number> => {
      try {
        const res = await fetch(`http://${node.http}/v1/kv/${key}`, { method: 'PUT', body: 'x', signal: AbortSignal.timeout(1000) })
        return res.status
      } catch {
        return 0
      }
    }
    expect(await put(leader, 'before')).toBe(204)
    for (const p of c.etcdProxies.values()) p.setMode('blackhole')
    const cutAt = performance.now()
    let refusedAfterMs = -1
    while (performance.now() - cutAt < TTL_SECONDS * 1000 + 2000) {
      const statuses = await Promise.all(c.nodes.map((n) => put(n, `during-${Math.round(performance.now())}`)))
      if (statuses.every((s) => s !== 204)) {
        refusedAfterMs = performance.now() - cutAt
        break
      }
      await sleep(50)
    }
    expect(refusedAfterMs).toBeGreaterThanOrEqual(0)
    expect(refusedAfterMs).toBeLessThan(TTL_SECONDS * 1000 + 500)
    await sleep(1000)
    for (const p of c.etcdProxies.values()) p.setMode('pass')
    const healedAt = performance.now()
    let resumedAfterMs = -1
    while (performance.now() - healedAt < 10_000) {
      const statuses = await Promise.all(c.nodes.map((n) => put(n, `after-${Math.round(performance.now())}`)))
      if (statuses.includes(204)) {
        resumedAfterMs = performance.now() - healedAt
        break
      }
      await sleep(50)
    }
    expect(resumedAfterMs).toBeGreaterThanOrEqual(0)
    expect(resumedAfterMs).toBeLessThan(5000)
    await expectReplicasIdentical(c)
  }, 60_000)

  it('a follower down while the WAL moves past --wal-retain-mib 1 rejoins by checkpoint, then the stream', async () => {
    const c = await cluster({ extraArgs: ['--wal-retain-mib', '1', '--memtable-mib', '1'] })
    const leader = await c.waitForLeader()
    const follower = c.nodes.find((n) => n.id !== leader.id)!
    await c.kill(follower.id, 'SIGKILL')
    const value = 'v'.repeat(2000)
    // ~8 MiB: several memtables flushed, their WALs past the retention bound.
    for (let i = 0; i < 4000; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, j) => {
          const res = await fetch(`http://${leader.http}/v1/kv/k${i + j}`, { method: 'PUT', body: value })
          expect(res.status).toBe(204)
        }),
      )
    }
    await c.start(follower.id)
    await expectReplicasIdentical(c).catch((err: unknown) => {
      console.log(leader.log.slice(-30).join('\n'), '\n----\n', follower.log.slice(-30).join('\n'))
      throw err
    })
    expect(leader.log.some((l) => l.includes(`${follower.id} installed a checkpoint`))).toBe(true)
    expect(follower.log.some((l) => l.includes("installed the leader's checkpoint"))).toBe(true)
  }, 120_000)
})
