/**
 * The etcd client of src/cluster/etcd over etcd's JSON gateway, against a
 * real etcd (the harness): KV round trips (binary, prefixes, txn branches,
 * range compares), int64s as bigints, call deadlines over a blackholed link,
 * endpoint failover, and watches (order, resume after a cut stream,
 * compaction). Leases: etcd-client-lease.test.ts; election:
 * etcd-client-election.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdClient, EtcdError, prefixEnd, type WatchBatch, type Watch } from '../../src/cluster/etcd/index.js'
import { readInt64 } from '../../src/cluster/etcd/encoding.js'
import { freePort, skipWithoutEtcd, startEtcd, type EtcdInstance } from './etcd-harness.js'
import { startProxy, type TcpProxy } from './tcp-proxy.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

describe('int64 and bytes encoding (no etcd)', () => {
  it('reads int64 decimal strings through BigInt, beyond 2^53 exactly', () => {
    expect(readInt64('9223372036854775807')).toBe(9223372036854775807n)
    expect(readInt64('-9223372036854775808')).toBe(-9223372036854775808n)
    expect(readInt64('9007199254740993')).toBe(2n ** 53n + 1n)
    expect(readInt64(undefined)).toBe(0n)
    expect(() => readInt64('1e3')).toThrow(EtcdError)
    expect(() => readInt64(2 ** 60)).toThrow(EtcdError) // a JSON number that lost precision
  })

  it('computes prefix ends like etcd', () => {
    expect(prefixEnd('a/')).toEqual(Buffer.from('a0'))
    expect(prefixEnd(Buffer.from([0x61, 0xff]))).toEqual(Buffer.from([0x62]))
    expect(prefixEnd(Buffer.from([0xff, 0xff]))).toEqual(Buffer.from([0]))
  })
})

describe.skipIf(skipWithoutEtcd())('etcd client over the JSON gateway', { timeout: 20_000 }, () => {
  let etcd: EtcdInstance
  let client: EtcdClient
  let n = 0
  /** A fresh key prefix per test. */
  const ns = () => `/t/${process.pid}/${++n}/`

  beforeAll(async () => {
    etcd = await startEtcd()
    client = new EtcdClient({ endpoints: etcd.clientUrl, timeoutMs: 2000 })
  })

  afterAll(async () => {
    client?.close()
    await etcd?.stop()
  })

  describe('KV', () => {
    it('puts and reads strings, with revisions as bigints', async () => {
      const p = ns()
      const put = await client.put(`${p}a`, 'hello')
      expect(typeof put.header.revision).toBe('bigint')
      const r = await client.range(`${p}a`)
      expect(r.kvs).toHaveLength(1)
      const kv = r.kvs[0]!
      expect(kv.key.toString()).toBe(`${p}a`)
      expect(kv.value.toString()).toBe('hello')
      expect(kv.createRevision).toBe(put.header.revision)
      expect(kv.modRevision).toBe(put.header.revision)
      expect(kv.version).toBe(1n)
      expect(kv.lease).toBe(0n)
      expect(r.count).toBe(1n)
      const again = await client.put(`${p}a`, 'world', { prevKv: true })
      expect(again.prevKv?.value.toString()).toBe('hello')
      const r2 = await client.range(`${p}a`)
      expect(r2.kvs[0]!.version).toBe(2n)
      expect(r2.kvs[0]!.createRevision).toBe(put.header.revision)
      expect(r2.kvs[0]!.modRevision).toBe(again.header.revision)
      expect(await client.get(`${p}missing`)).toBeNull()
      expect((await client.range(`${p}missing`)).kvs).toEqual([])
      // An empty value comes back empty (the gateway leaves the field out).
      await client.put(`${p}empty`, '')
      expect((await client.get(`${p}empty`))?.length).toBe(0)
    })

    it('round-trips binary keys and values', async () => {
      const p = Buffer.from(ns())
      const key = Buffer.concat([p, Buffer.from([0x00, 0xff, 0x80, 0x0a, 0x22, 0x5c])])
      const value = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
      await client.put(key, value)
      const r = await client.range(key)
      expect(r.kvs[0]!.key.equals(key)).toBe(true)
      expect(r.kvs[0]!.value.equals(value)).toBe(true)
      // A Uint8Array that is a view into a larger buffer sends only its bytes.
      const big = new Uint8Array([9, 9, 1, 2, 3, 9])
      await client.put(Buffer.concat([p, Buffer.from('view')]), big.subarray(2, 5))
      expect([...((await client.get(Buffer.concat([p, Buffer.from('view')]))) ?? [])]).toEqual([1, 2, 3])
    })

    it('reads and deletes prefixes and ranges, with limit and sort', async () => {
      const p = ns()
      for (const k of ['b', 'a', 'c', 'd']) await client.put(`${p}${k}`, k)
      await client.put(`${p.slice(0, -1)}0`, 'outside') // sorts right after the prefix
      const all = await client.range(p, { prefix: true })
      expect(all.kvs.map((kv) => kv.value.toString())).toEqual(['a', 'b', 'c', 'd'])
      const byCreate = await client.range(p, { prefix: true, sortTarget: 'create', sortOrder: 'descend', limit: 2 })
      expect(byCreate.kvs.map((kv) => kv.value.toString())).toEqual(['d', 'c'])
      expect(byCreate.more).toBe(true)
      expect(byCreate.count).toBe(4n)
      const bRev = all.kvs[1]!.createRevision
      const older = await client.range(p, { prefix: true, maxCreateRevision: bRev, sortTarget: 'create', sortOrder: 'descend', limit: 1 })
      expect(older.kvs.map((kv) => kv.value.toString())).toEqual(['b'])
      const between = await client.range(`${p}b`, { rangeEnd: `${p}d` })
      expect(between.kvs.map((kv) => kv.value.toString())).toEqual(['b', 'c'])
      const counted = await client.range(p, { prefix: true, countOnly: true })
      expect(counted.count).toBe(4n)
      expect(counted.kvs).toEqual([])
      // Reading at an older revision.
      expect((await client.range(p, { prefix: true, revision: bRev })).kvs.map((kv) => kv.value.toString())).toEqual(['b'])
      const aRev = all.kvs[0]!.createRevision
      expect((await client.range(p, { prefix: true, revision: aRev })).kvs.map((kv) => kv.value.toString())).toEqual(['a', 'b'])
      const del = await client.delete(p, { prefix: true, prevKv: true })
      expect(del.deleted).toBe(4n)
      expect(del.prevKvs.map((kv) => kv.value.toString()).sort()).toEqual(['a', 'b', 'c', 'd'])
      expect((await client.range(p, { prefix: true })).kvs).toEqual([])
      expect((await client.get(`${p.slice(0, -1)}0`))?.toString()).toBe('outside')
      expect((await client.delete(`${p}nothing`)).deleted).toBe(0n)
    })

    it('runs the success or failure branch of a txn', async () => {
      const p = ns()
      const k = `${p}k`
      const create = await client.txn({
        compare: [{ key: k, target: 'create', op: '==', value: 0 }],
        success: [{ put: { key: k, value: 'v1' } }, { range: { key: k } }],
        failure: [{ range: { key: k } }],
      })
      expect(create.succeeded).toBe(true)
      expect(create.responses).toHaveLength(2)
      expect(create.responses[0]!.put).toBeDefined()
      const kv = create.responses[1]!.range!.kvs[0]!
      expect(kv.value.toString()).toBe('v1')
      const again = await client.txn({
        compare: [{ key: k, target: 'create', op: '==', value: 0 }],
        success: [{ put: { key: k, value: 'v2' } }],
        failure: [{ range: { key: k } }],
      })
      expect(again.succeeded).toBe(false)
      expect(again.responses[0]!.range!.kvs[0]!.createRevision).toBe(kv.createRevision)
      // value, version, mod and lease compares; a delete and a nested txn in the branch (etcd
      // evaluates a nested txn's compares before the outer txn's ops: here version is still 1).
      const r = await client.txn({
        compare: [
          { key: k, target: 'value', op: '==', value: 'v1' },
          { key: k, target: 'version', op: '==', value: 1n },
          { key: k, target: 'mod', op: '<', value: kv.modRevision + 1n },
          { key: k, target: 'lease', op: '==', value: 0 },
        ],
        success: [{ delete: { key: k, prevKv: true } }, { txn: { compare: [{ key: k, target: 'version', op: '==', value: 1 }], success: [{ put: { key: `${p}nested`, value: 'yes' } }] } }],
      })
      expect(r.succeeded).toBe(true)
      expect(r.responses[0]!.delete!.deleted).toBe(1n)
      expect(r.responses[0]!.delete!.prevKvs[0]!.value.toString()).toBe('v1')
      expect(r.responses[1]!.txn!.succeeded).toBe(true)
      expect((await client.get(`${p}nested`))?.toString()).toBe('yes')
      // A value compare on a missing key is false, whatever the op.
      const missing = await client.txn({ compare: [{ key: k, target: 'value', op: '!=', value: 'x' }] })
      expect(missing.succeeded).toBe(false)
    })

    it('range compares hold only when every key of the range satisfies them', async () => {
      const p = ns()
      const a = await client.put(`${p}a`, '1')
      const b = await client.put(`${p}b`, '2')
      const check = async (op: '>' | '<' | '==' | '!=', rev: bigint) =>
        (await client.txn({ compare: [{ key: p, prefix: true, target: 'create', op, value: rev }] })).succeeded
      expect(await check('>', a.header.revision - 1n)).toBe(true) // both newer than a-1
      expect(await check('>', a.header.revision)).toBe(false) // a is not newer than a
      expect(await check('<', b.header.revision + 1n)).toBe(true)
      expect(await check('<', b.header.revision)).toBe(false)
      expect(await check('==', a.header.revision)).toBe(false)
      // With rangeEnd: [a, b) holds only a.
      const ab = await client.txn({ compare: [{ key: `${p}a`, rangeEnd: `${p}b`, target: 'create', op: '==', value: a.header.revision }] })
      expect(ab.succeeded).toBe(true)
      // An empty range compares as one key with zero fields: "create > 0" is false, "create == 0" true.
      const empty = `${p}none/`
      expect((await client.txn({ compare: [{ key: empty, prefix: true, target: 'create', op: '>', value: 0 }] })).succeeded).toBe(false)
      expect((await client.txn({ compare: [{ key: empty, prefix: true, target: 'create', op: '==', value: 0 }] })).succeeded).toBe(true)
    })

    it('maps etcd errors to codes', async () => {
      const p = ns()
      await expect(client.put(`${p}k`, 'v', { lease: 123456789n })).rejects.toMatchObject({ code: 'not-found', grpcCode: 5 })
      await expect(client.put('', 'v')).rejects.toMatchObject({ code: 'invalid-argument', grpcCode: 3 })
      const now = (await client.range(`${p}k`)).header.revision
      await expect(client.range(`${p}k`, { revision: now + 1000n })).rejects.toMatchObject({ code: 'out-of-range' })
      await expect(client.revoke(987654321n)).rejects.toMatchObject({ code: 'not-found' })
      await expect(client.range(`${p}k`, { limit: 2 ** 60 })).rejects.toMatchObject({ code: 'invalid-argument' }) // unsafe number: pass a bigint
    })
  })

  describe('deadlines', () => {
    let link: TcpProxy
    let viaLink: EtcdClient
    beforeAll(async () => {
      link = await startProxy('127.0.0.1', etcd.clientPort)
      viaLink = new EtcdClient({ endpoints: `http://${link.address}`, timeoutMs: 300 })
    })
    afterAll(async () => {
      viaLink?.close()
      await link?.close()
    })

    it('fails with unavailable within the deadline over a blackholed link, and works at once after healing', async () => {
      const p = ns()
      await viaLink.put(`${p}k`, 'v') // a pooled connection exists
      const timings: number[] = []
      for (let trial = 0; trial < 3; trial++) {
        link.setMode('blackhole')
        for (const timeoutMs of [300, 150]) {
          const t0 = performance.now()
          const err = await viaLink.range(`${p}k`, { timeoutMs }).then(
            () => null,
            (e: unknown) => e,
          )
          const took = performance.now() - t0
          timings.push(took)
          expect(err).toBeInstanceOf(EtcdError)
          expect(err).toMatchObject({ code: 'unavailable', timedOut: true })
          expect(took).toBeGreaterThanOrEqual(timeoutMs - 5)
          expect(took).toBeLessThan(timeoutMs + 250)
        }
        // A write too: failing fast, whatever etcd did with it (it was held by the proxy).
        await expect(viaLink.put(`${p}k`, `w${trial}`)).rejects.toMatchObject({ code: 'unavailable', timedOut: true })
        link.setMode('pass')
        const t0 = performance.now()
        const r = await viaLink.range(`${p}k`)
        const healed = performance.now() - t0
        expect(r.kvs).toHaveLength(1)
        expect(healed).toBeLessThan(250) // no circuit breaker, no backoff
      }
      console.log(`[deadlines] blackholed calls failed after ${timings.map((t) => t.toFixed(0)).join(', ')} ms (deadlines 300/150)`)
    })

    it('a reset link fails at once with unavailable; a canceled call with canceled', async () => {
      const p = ns()
      link.setMode('reset')
      const t0 = performance.now()
      await expect(viaLink.range(`${p}k`, { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'unavailable', timedOut: false })
      expect(performance.now() - t0).toBeLessThan(500)
      await sleep(20) // let the pool see the RSTs of its idle connections (else one is reused: ECONNRESET)
      link.setMode('blackhole')
      const ac = new AbortController()
      setTimeout(() => ac.abort(), 50)
      await expect(viaLink.range(`${p}k`, { timeoutMs: 1000, signal: ac.signal })).rejects.toMatchObject({ code: 'canceled' })
      link.setMode('pass')
      expect((await viaLink.range(`${p}k`)).header.revision).toBeGreaterThan(0n)
    })

    it('retries only when asked, within the deadline', async () => {
      const p = ns()
      link.setMode('reset')
      setTimeout(() => link.setMode('pass'), 120)
      await expect(viaLink.range(`${p}k`, { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'unavailable' })
      const r = await viaLink.range(`${p}k`, { timeoutMs: 1000, retries: 20, retryDelayMs: 25 })
      expect(r.header.revision).toBeGreaterThan(0n)
    })
  })

  it('moves on to the next endpoint when connecting fails', async () => {
    const dead = `http://127.0.0.1:${await freePort()}` // nothing listens there
    const multi = new EtcdClient({ endpoints: [dead, etcd.clientUrl], timeoutMs: 1000 })
    try {
      const p = ns()
      await multi.put(`${p}k`, 'v')
      expect(multi.gateway.endpoint).toBe(etcd.clientUrl)
      expect((await multi.get(`${p}k`))?.toString()).toBe('v')
      const only = new EtcdClient({ endpoints: [dead], timeoutMs: 1000 })
      await expect(only.range(`${p}k`)).rejects.toMatchObject({ code: 'unavailable', timedOut: false })
    } finally {
      multi.close()
    }
  })

  describe('watch', () => {
    const collect = async (w: Watch, count: number, timeoutMs = 3000): Promise<WatchBatch['events']> => {
      const out: WatchBatch['events'] = []
      const timer = setTimeout(() => w.cancel(), timeoutMs)
      try {
        while (out.length < count) {
          const b = await w.next()
          if (b === null) break
          out.push(...b.events)
        }
      } finally {
        clearTimeout(timer)
      }
      return out
    }

    it('sees puts and deletes in order, from a past revision, with prev kvs', async () => {
      const p = ns()
      const first = await client.put(`${p}a`, '1')
      await client.put(`${p}b`, '2')
      await client.put(`${p}a`, '3')
      await client.delete(p, { prefix: true })
      const w = await client.watch(p, { prefix: true, startRevision: first.header.revision, prevKv: true })
      const events = await collect(w, 5)
      w.cancel()
      expect(events.map((e) => `${e.type} ${e.kv.key.toString().slice(p.length)} ${e.kv.value.toString()}`)).toEqual(['put a 1', 'put b 2', 'put a 3', 'delete a ', 'delete b '])
      const revs = events.map((e) => e.kv.modRevision)
      expect(revs[0]).toBe(first.header.revision)
      expect(revs[3]).toBe(revs[4]) // one delete-range: one revision
      expect(events[2]!.prevKv?.value.toString()).toBe('1')
      expect(events[3]!.prevKv?.value.toString()).toBe('3')
      expect(events[2]!.kv.createRevision).toBe(first.header.revision)
      expect(w.nextRevision).toBe(revs[4]! + 1n)
      expect(await w.next()).toBeNull() // cancelled
    })

    it('sees live changes, filters, and ends a pending next() on cancel', async () => {
      const p = ns()
      const w = await client.watch(`${p}k`, { noPut: true })
      const deletes = collect(w, 1)
      await client.put(`${p}k`, 'x')
      await client.put(`${p}k`, 'y')
      const d = await client.delete(`${p}k`)
      const events = await deletes
      expect(events.map((e) => e.type)).toEqual(['delete'])
      expect(events[0]!.kv.modRevision).toBe(d.header.revision)
      const w2 = await client.watch(`${p}k`)
      const pending = w2.next()
      w2.cancel()
      expect(await pending).toBeNull()
    })

    it('a stream cut by the link surfaces an error; resuming from nextRevision misses nothing', async () => {
      const link = await startProxy('127.0.0.1', etcd.clientPort)
      const viaLink = new EtcdClient({ endpoints: `http://${link.address}`, timeoutMs: 1000 })
      try {
        const p = ns()
        const w = await viaLink.watch(p, { prefix: true })
        const seen: string[] = []
        const writer = (async () => {
          for (let i = 0; i < 40; i++) {
            await client.put(`${p}k${String(i).padStart(2, '0')}`, String(i))
            if (i === 15) link.setMode('reset') // cut mid-stream
            if (i === 25) link.setMode('pass')
          }
        })()
        let err: unknown = null
        try {
          for (;;) {
            const b = await w.next()
            if (b === null) break
            for (const e of b.events) seen.push(e.kv.value.toString())
          }
        } catch (e) {
          err = e
        }
        expect(err).toBeInstanceOf(EtcdError)
        expect((err as EtcdError).code).toBe('unavailable')
        expect(w.closed).toBe(true)
        await writer
        // Resume (the link is back) from where the first watch stopped.
        const resumed = await viaLink.watch(p, { prefix: true, startRevision: w.nextRevision })
        const rest = await collect(resumed, 40 - seen.length)
        resumed.cancel()
        const all = [...seen, ...rest.map((e) => e.kv.value.toString())]
        expect(all).toEqual(Array.from({ length: 40 }, (_, i) => String(i)))
        console.log(`[watch] ${seen.length} events before the cut, ${rest.length} after resuming`)
      } finally {
        viaLink.close()
        await link.close()
      }
    })

    it('reports a compacted start revision', async () => {
      const p = ns()
      const first = await client.put(`${p}a`, '1')
      const second = await client.put(`${p}a`, '2')
      await client.gateway.call('/v3/kv/compaction', { revision: second.header.revision.toString(), physical: true })
      const err = await client.watch(p, { prefix: true, startRevision: first.header.revision }).then(
        (w) => w.next(),
        (e: unknown) => {
          throw e
        },
      ).then(
        () => null,
        (e: unknown) => e,
      )
      expect(err).toMatchObject({ code: 'compacted', compactRevision: second.header.revision })
      await expect(client.range(`${p}a`, { revision: first.header.revision })).rejects.toMatchObject({ code: 'compacted' })
    })

    it('fails to open within its deadline over a blackholed link', async () => {
      const link = await startProxy('127.0.0.1', etcd.clientPort)
      const viaLink = new EtcdClient({ endpoints: `http://${link.address}`, timeoutMs: 200 })
      try {
        link.setMode('blackhole')
        const t0 = performance.now()
        await expect(viaLink.watch('/x', {})).rejects.toMatchObject({ code: 'unavailable', timedOut: true })
        expect(performance.now() - t0).toBeLessThan(400)
        link.setMode('pass')
        const w = await viaLink.watch('/x')
        w.cancel()
      } finally {
        viaLink.close()
        await link.close()
      }
    })
  })

  it('close() cancels watches', async () => {
    const c = new EtcdClient({ endpoints: etcd.clientUrl })
    const w = await c.watch('/close-test')
    const pending = w.next()
    c.close()
    expect(await pending).toBeNull()
    await expect(c.watch('/close-test')).rejects.toMatchObject({ code: 'canceled' })
  })
})
