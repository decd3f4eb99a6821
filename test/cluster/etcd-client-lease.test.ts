/**
 * Leases of the etcd client (src/cluster/etcd/lease.ts) against a real etcd:
 * the granted TTL, the keepalive loop, stop / revoke / expiry, and the local
 * deadline: with the holder's link to etcd cut, the deadline (send time of
 * the last acknowledged keepalive + TTL) passes before etcd expires the
 * lease, in every trial.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdClient, type Lease } from '../../src/cluster/etcd/index.js'
import { skipWithoutEtcd, startEtcd, type EtcdInstance } from './etcd-harness.js'
import { startProxy, type TcpProxy } from './tcp-proxy.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b)
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] as number
  return `min ${q(0).toFixed(0)} p50 ${q(0.5).toFixed(0)} max ${q(1).toFixed(0)} ms`
}

/** Resolves with performance.now() when `key` is deleted (a watch from the current revision). */
async function whenDeleted(client: EtcdClient, key: string): Promise<{ at: Promise<number>; cancel: () => void }> {
  const w = await client.watch(key, { noPut: true })
  const at = (async () => {
    for (;;) {
      const b = await w.next()
      if (b === null) return Number.NaN
      if (b.events.some((e) => e.type === 'delete')) return performance.now()
    }
  })()
  return { at: at.finally(() => w.cancel()), cancel: () => w.cancel() }
}

describe.skipIf(skipWithoutEtcd())('etcd client leases', { timeout: 30_000 }, () => {
  let etcd: EtcdInstance
  let client: EtcdClient
  let n = 0
  const key = () => `/lease-test/${process.pid}/${++n}`

  beforeAll(async () => {
    etcd = await startEtcd()
    client = new EtcdClient({ endpoints: etcd.clientUrl, timeoutMs: 1000 })
  })

  afterAll(async () => {
    client?.close()
    await etcd?.stop()
  })

  it('reports the granted TTL (1 s honoured with --election-timeout 500)', async () => {
    const g = await client.grant(1)
    expect(g.ttl).toBe(1)
    expect(typeof g.id).toBe('bigint')
    expect(g.id).toBeGreaterThan(0n)
    const ttl = await client.timeToLive(g.id)
    expect(ttl.grantedTtl).toBe(1)
    await client.revoke(g.id)
    expect((await client.timeToLive(g.id)).ttl).toBe(-1)
    const ka = await client.keepAliveOnce(g.id)
    expect(ka.ttl).toBe(0) // etcd does not know it any more
    await expect(client.grant(0)).rejects.toMatchObject({ code: 'invalid-argument' })
  })

  it('reports the raised TTL under etcd defaults (TTL 1 becomes 2 with a 1000 ms election timeout)', async () => {
    const slow = await startEtcd({ heartbeatMs: 100, electionTimeoutMs: 1000 })
    const c = new EtcdClient({ endpoints: slow.clientUrl })
    try {
      const g = await c.grant(1)
      expect(g.ttl).toBe(2)
      const t0 = performance.now()
      const lease = await c.lease(1)
      expect(lease.ttl).toBe(2)
      // The deadline counts the granted TTL from the grant's send time.
      expect(lease.deadlineMs).toBeGreaterThan(t0 + 1900)
      expect(lease.deadlineMs).toBeLessThanOrEqual(performance.now() + 2000)
      await lease.revoke()
    } finally {
      c.close()
      await slow.stop()
    }
  })

  it('keeps a key alive past several TTLs, with a deadline ahead', async () => {
    const k = key()
    const lease = await client.lease(1)
    await client.put(k, 'alive', { lease: lease.id })
    for (let i = 0; i < 7; i++) {
      await sleep(500)
      expect(lease.alive()).toBe(true)
      const left = lease.remainingMs()
      expect(left).toBeGreaterThan(0)
      expect(left).toBeLessThanOrEqual(1000)
    }
    expect((await client.get(k))?.toString()).toBe('alive')
    expect(lease.renewalCount).toBeGreaterThanOrEqual(8) // every TTL/3 for 3.5 s
    expect(lease.state).toBe('alive')
    await lease.revoke()
  })

  it('stop(): no more keepalives, the key expires, no lost event', async () => {
    const k = key()
    const lease = await client.lease(1)
    await client.put(k, 'x', { lease: lease.id })
    let lost = false
    lease.onLost(() => (lost = true))
    const gone = await whenDeleted(client, k)
    const stoppedAt = performance.now()
    lease.stop()
    expect(lease.state).toBe('stopped')
    expect(lease.alive()).toBe(false)
    const at = await gone.at
    const after = at - stoppedAt
    expect(after).toBeGreaterThan(0)
    expect(after).toBeLessThan(2500) // TTL + etcd's 500 ms expiry sweep + slack
    expect(at).toBeGreaterThan(lease.deadlineMs) // etcd never expires before the deadline
    expect(lost).toBe(false)
    console.log(`[lease] after stop(): key gone after ${after.toFixed(0)} ms`)
  })

  it('revoke(): the key is gone at once', async () => {
    const k = key()
    const lease = await client.lease(5)
    await client.put(k, 'x', { lease: lease.id })
    await lease.revoke()
    expect(lease.state).toBe('revoked')
    expect(await client.get(k)).toBeNull()
    await lease.revoke() // twice: fine
  })

  it("emits lost ('expired') when etcd answers a keepalive with TTL 0 (revoked by someone else)", async () => {
    const lease = await client.lease(1)
    const t0 = performance.now()
    await client.revoke(lease.id)
    const lost = await lease.lost
    expect(lost.reason).toBe('expired')
    expect(lost.atMs - t0).toBeLessThan(700) // the next keepalive (every 333 ms)
    expect(lease.alive()).toBe(false)
    expect(() => lease.assertAlive()).toThrow(expect.objectContaining({ code: 'lease-lost' }))
  })

  it('a process paused past its deadline wakes up not alive, before any timer runs', async () => {
    const lease = await client.lease(1)
    await sleep(400)
    expect(lease.alive()).toBe(true)
    const until = performance.now() + 1100
    while (performance.now() < until) {
      // a paused process (GC, SIGSTOP, a long synchronous task)
    }
    expect(lease.alive()).toBe(false)
    const lost = await lease.lost
    expect(['deadline', 'expired']).toContain(lost.reason)
  })

  describe('the local deadline with the link cut', () => {
    let link: TcpProxy
    let viaLink: EtcdClient
    beforeAll(async () => {
      link = await startProxy('127.0.0.1', etcd.clientPort)
      viaLink = new EtcdClient({ endpoints: `http://${link.address}`, timeoutMs: 1000 })
    })
    afterAll(async () => {
      viaLink?.close()
      await link?.close()
    })

    it('passes before etcd expires the lease, in every trial (TTL 1 s)', async () => {
      const TRIALS = 10
      const deadlines: number[] = []
      const lostEvents: number[] = []
      const expiries: number[] = []
      const margins: number[] = []
      for (let trial = 0; trial < TRIALS; trial++) {
        link.setMode('pass')
        const k = key()
        const lease: Lease = await viaLink.lease(1)
        await viaLink.put(k, `trial ${trial}`, { lease: lease.id })
        const gone = await whenDeleted(client, k) // etcd's view, over a direct link
        await sleep(400 + Math.random() * 400) // a few keepalives; a random phase
        expect(lease.alive()).toBe(true)
        const cut = performance.now()
        link.setMode('blackhole')
        const goneAt = await gone.at
        const lost = await lease.lost
        expect(lost.reason).toBe('deadline')
        // The point: the holder's deadline came before etcd deleted its key.
        expect(lease.deadlineMs).toBeLessThan(goneAt)
        expect(lost.atMs).toBeGreaterThanOrEqual(lease.deadlineMs)
        expect(lease.alive(goneAt)).toBe(false)
        deadlines.push(lease.deadlineMs - cut)
        lostEvents.push(lost.atMs - cut)
        expiries.push(goneAt - cut)
        margins.push(goneAt - lease.deadlineMs)
        expect(lease.deadlineMs - cut).toBeLessThanOrEqual(1000) // at most one TTL after the last send
      }
      link.setMode('pass')
      console.log(
        `[lease deadline, ${TRIALS} trials, TTL 1 s, after the cut] deadline: ${stats(deadlines)}; lost event: ${stats(lostEvents)}; ` +
          `etcd deleted the key: ${stats(expiries)}; margin (deleted - deadline): ${stats(margins)}`,
      )
    })
  })
})
