/**
 * Range deletes through the server (issue #21): RESP FLUSHDB / FLUSHALL as
 * one range delete of every key (ASYNC/SYNC, syntax errors, ordering within
 * a connection, MULTI/EXEC, WATCH, DEL counts after a flush, concurrent
 * read-modify-writes), HTTP DELETE /v1/range and batch `delRange` ops, and
 * the key locks' whole-key-space mode they run under.
 */
import type { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { ChangeOp, Database } from '../src/index.js'
import { startServer, type StrataServer } from '../src/server/index.js'
import { KeyLocks } from '../src/server/shared/key-locks.js'
import { RedisClients } from './resp-helpers.js'
import { tempDir } from './unit/helpers.js'

let server: StrataServer
let cleanup: () => void
let base: string
let port: number
const clients = new RedisClients()
const logs: string[] = []

beforeAll(async () => {
  const t = tempDir('strata-range-delete-')
  cleanup = t.cleanup
  server = await startServer({ dir: t.dir, http: '127.0.0.1:0', resp: '127.0.0.1:0', log: (l) => logs.push(l) })
  base = `http://${server.http}`
  port = server.respPort!
})
afterEach(() => clients.closeAll())
afterAll(async () => {
  await server.close()
  cleanup()
  expect(logs.filter((l) => /failed/.test(l))).toEqual([])
})

const client = (): Redis => clients.connect(port)

/** The ops committed after `since`, keys and ends as text. */
async function changesSince(db: Database, since: number): Promise<Array<{ type: string; key: string; end?: string }>> {
  const out: Array<{ type: string; key: string; end?: string }> = []
  for await (const batch of db.changes({ since })) {
    for (const op of batch.ops as ChangeOp[]) out.push(op.end === undefined ? { type: op.type, key: op.key.toString() } : { type: op.type, key: op.key.toString(), end: op.end.toString() })
  }
  return out
}

const lastSequence = (): number => server.db.stats().lastSequence

/** Every key in the database, as text (GET /v1/range?keys=1). */
async function allKeys(): Promise<string[]> {
  const text = await (await fetch(`${base}/v1/range?keys=1`)).text()
  const lines = text.trim().split('\n').map((l) => JSON.parse(l) as { key?: string; keyBase64?: string })
  return lines.slice(0, -1).map((l) => l.key ?? `b64:${l.keyBase64}`)
}

const keyOf = (i: number): string => `k${String(i).padStart(5, '0')}`

describe('RESP FLUSHDB and FLUSHALL', () => {
  it('delete every key with one range delete, with or without ASYNC / SYNC', async () => {
    const r = client()
    for (const command of [['FLUSHDB'], ['FLUSHALL'], ['FLUSHDB', 'ASYNC'], ['flushdb', 'sync'], ['FLUSHALL', 'async'], ['FlushAll', 'SYNC']]) {
      await r.mset(...Array.from({ length: 1000 }, (_, i) => [keyOf(i), `v${i}`]).flat())
      expect(await r.dbsize()).toBe(1000)
      const since = lastSequence()
      expect(await r.call(command[0]!, ...command.slice(1))).toBe('OK')
      expect(await r.dbsize()).toBe(0)
      expect(await r.get(keyOf(7))).toBeNull()
      // One write of one op: the range tombstone of everything ([empty, no end)).
      expect(await changesSince(server.db, since)).toEqual([{ type: 'delRange', key: '' }])
    }
    // On an empty database too.
    expect(await r.flushdb()).toBe('OK')
  })

  it("answers Redis' syntax error for anything else, deleting nothing", async () => {
    const r = client()
    await r.set('kept', '1')
    for (const args of [['FLUSHDB', 'NOW'], ['FLUSHDB', 'ASYNC', 'SYNC'], ['FLUSHALL', 'SYNC', 'extra'], ['FLUSHALL', ''], ['FLUSHDB', 'ASYNCX']]) {
      await expect(r.call(args[0]!, ...args.slice(1))).rejects.toThrow(/^ERR syntax error$/)
    }
    expect(await r.get('kept')).toBe('1')
    const info = (await r.call('COMMAND', 'INFO', 'flushdb', 'flushall')) as unknown[][]
    for (const [i, name] of ['flushdb', 'flushall'].entries()) {
      expect(info[i]!.slice(0, 6)).toEqual([name, -1, ['write'], 0, 0, 0])
      expect(info[i]![6]).toEqual(expect.arrayContaining(['@keyspace', '@write', '@slow', '@dangerous']))
    }
  })

  it("is ordered with the connection's other commands, in a pipeline and across connections", async () => {
    const r = client()
    const other = client()
    await other.set('before', 'x')
    const res = await r.pipeline().set('a', '1').incr('n').flushdb().get('a').get('n').set('b', '2').get('b').dbsize().flushall('ASYNC').exists('b').exec()
    expect(res!.map(([e, v]) => e?.message ?? v)).toEqual(['OK', 1, 'OK', null, null, 'OK', '2', 1, 'OK', 0])
    expect(await other.get('before')).toBeNull()
    // Writes sent in the same turn from other clients land before or after, never half.
    await r.mset('x', '1', 'y', '2')
    const [flushed, set] = await Promise.all([r.flushdb(), other.set('late', 'kept')])
    expect([flushed, set]).toEqual(['OK', 'OK'])
    expect(await r.exists('x', 'y')).toBe(0)
  })

  it('works inside MULTI/EXEC: later commands of the transaction see the empty database', async () => {
    const r = client()
    await r.mset('old1', 'a', 'old2', 'b')
    const res = await r.multi().set('x', '1').flushdb().get('x').get('old1').set('y', '2').get('y').del('old2', 'y').set('z', '3').exec()
    expect(res!.map(([e, v]) => e?.message ?? v)).toEqual(['OK', 'OK', null, null, 'OK', '2', 1, 'OK'])
    expect(await r.mget('x', 'y', 'z', 'old1', 'old2')).toEqual([null, null, '3', null, null])
    // A syntax error is the command's own reply at EXEC, as in Redis; the others apply.
    await r.set('stays', '1')
    const bad = await r.multi().set('w', '1').call('FLUSHALL', 'LATER').get('stays').exec()
    expect(bad![0]).toEqual([null, 'OK'])
    expect(bad![1]![0]?.message).toMatch(/syntax error/)
    expect(bad![2]).toEqual([null, '1'])
    expect(await r.get('w')).toBe('1')
    // DISCARD drops a queued FLUSHALL.
    expect(await r.call('MULTI')).toBe('OK')
    expect(await r.call('FLUSHALL')).toBe('QUEUED')
    expect(await r.call('DISCARD')).toBe('OK')
    expect(await r.get('w')).toBe('1')
  })

  it('aborts a transaction that WATCHed a key that existed, not one that watched only absent keys', async () => {
    const a = client()
    const b = client()
    await a.set('w:there', '1')
    await a.watch('w:there', 'w:absent')
    expect(await b.flushdb()).toBe('OK')
    expect(await a.multi().set('w:there', '2').exec()).toBeNull()
    expect(await a.get('w:there')).toBeNull()

    await a.watch('w:absent')
    expect(await b.flushall()).toBe('OK')
    expect(await a.multi().set('w:absent', 'now').exec()).toEqual([[null, 'OK']])

    // The connection's own FLUSHDB after WATCH aborts it too (a write to the watched key).
    await a.set('w:own', '1')
    await a.watch('w:own')
    await a.flushdb()
    expect(await a.multi().set('w:own', '2').exec()).toBeNull()
    // A key set again after the flush has a new version: still aborted.
    await a.set('w:again', '1')
    await a.watch('w:again')
    await b.flushdb()
    await b.set('w:again', '1')
    expect(await a.multi().get('w:again').exec()).toBeNull()
  })

  it('DEL and UNLINK of many keys count right after a FLUSHDB', async () => {
    const r = client()
    const keys = Array.from({ length: 600 }, (_, i) => keyOf(i))
    await r.mset(...keys.flatMap((k) => [k, 'v']))
    await r.flushdb()
    await r.mset(...keys.slice(0, 150).flatMap((k) => [k, 'again']))
    expect(await r.del(...keys)).toBe(150)
    expect(await r.unlink(...keys)).toBe(0)
    // All in one pipeline, the flush between the writes.
    const res = await r.pipeline().mset(...keys.flatMap((k) => [k, 'v'])).flushall().mset(...keys.slice(100, 400).flatMap((k) => [k, 'w'])).del(...keys, ...keys).unlink(...keys).exec()
    expect(res!.map(([e, v]) => e?.message ?? v)).toEqual(['OK', 'OK', 'OK', 300, 0])
    expect(await r.dbsize()).toBe(0)
  })

  it('a read-modify-write racing a FLUSHDB is wholly before or wholly after it', async () => {
    const flusher = client()
    const counter = client()
    const reader = client()
    const outcomes = new Set<string>()
    for (let round = 0; round < 60; round++) {
      await reader.set('race', '5')
      // Sent together: both usually reach the server in the same event-loop turn.
      const [flushed, incr] = await Promise.all([flusher.flushdb(), counter.incr('race')])
      expect(flushed).toBe('OK')
      const after = await reader.get('race')
      // INCR before the flush: 6, then gone. After it: 1, and 1 stays. Never 6 that stays (a read before the flush, a write after).
      outcomes.add(`${incr}/${after}`)
      expect([`6/null`, `1/1`]).toContain(`${incr}/${after}`)
    }
    expect(outcomes.size).toBeGreaterThanOrEqual(1)
  })

  it('never lands inside a read-modify-write: concurrent INCRs keep counting, none fails', async () => {
    const counters = [client(), client(), client()]
    const flusher = client()
    const rounds = 300
    const incrs = counters.map((c, i) => {
      const p = c.pipeline()
      for (let n = 0; n < rounds; n++) p.incr(`ctr:${i % 2}`)
      return p.exec()
    })
    const f = flusher.pipeline()
    for (let n = 0; n < 30; n++) f.flushdb().set('marker', String(n))
    const [flushes, ...counted] = await Promise.all([f.exec(), ...incrs])
    expect(flushes!.every(([e, v]) => e === null && v === 'OK')).toBe(true)
    for (const res of counted) {
      for (const [e, v] of res!) {
        expect(e).toBeNull()
        expect(typeof v).toBe('number')
      }
    }
    // Each INCR reply is 1 more than the counter was: across all clients, a counter's replies
    // restart at 1 after each flush and otherwise have no gaps nor repeats.
    for (const ctr of [0, 1]) {
      const replies = counted.filter((_, i) => i % 2 === ctr).flatMap((res) => res!.map(([, v]) => v as number))
      const ones = replies.filter((v) => v === 1).length
      const max = Math.max(...replies)
      expect(ones).toBeGreaterThanOrEqual(1)
      expect(new Set(replies).size).toBe(max)
      expect(replies.length).toBeGreaterThanOrEqual(max)
      // Every run between two flushes counts 1, 2, 3...: value v is never answered more often than v - 1.
      const count = (v: number): number => replies.filter((x) => x === v).length
      for (let v = 2; v <= max; v++) expect(count(v)).toBeLessThanOrEqual(count(v - 1))
    }
    expect(await flusher.get('marker')).toBe('29')
  })
})

describe('HTTP DELETE /v1/range', () => {
  const KEYS = ['', 'a', 'a\u0000', 'ab', 'b', 'ba', 'c', 'z'].filter((k) => k !== '')
  const fill = async (): Promise<void> => {
    await fetch(`${base}/v1/range?gte=`, { method: 'DELETE' })
    const put = await fetch(`${base}/v1/batch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify([...KEYS.map((key) => ({ type: 'put', key, value: 'v' })), { type: 'put', keyBase64: Buffer.from([0xff, 0x00]).toString('base64'), value: 'bin' }]),
    })
    expect(put.status).toBe(200)
  }

  it('deletes exactly [gte, lt) for every bound shape, with one range delete', async () => {
    const cases: Array<[string, string[], { key: string; end?: string }]> = [
      ['gte=a&lt=b', ['b', 'ba', 'c', 'z', 'b64:/wA='], { key: 'a', end: 'b' }],
      ['gte=b', ['a', 'a\u0000', 'ab'], { key: 'b' }],
      ['gt=a', ['a'], { key: 'a\u0000' }],
      ['gt=a&lte=b', ['a', 'ba', 'c', 'z', 'b64:/wA='], { key: 'a\u0000', end: 'b\u0000' }],
      ['gte=&lt=ab', ['ab', 'b', 'ba', 'c', 'z', 'b64:/wA='], { key: '', end: 'ab' }],
      ['gte=%FF', ['a', 'a\u0000', 'ab', 'b', 'ba', 'c', 'z'], { key: '\ufffd' }],
      ['gte=a%00&lt=b&sync=1', ['a', 'b', 'ba', 'c', 'z', 'b64:/wA='], { key: 'a\u0000', end: 'b' }],
      ['gte=', [], { key: '' }],
    ]
    for (const [query, left, op] of cases) {
      await fill()
      const since = lastSequence()
      const res = await fetch(`${base}/v1/range?${query}`, { method: 'DELETE' })
      expect(res.status, query).toBe(204)
      expect(await res.text()).toBe('')
      expect(await allKeys(), query).toEqual(left)
      const ops = await changesSince(server.db, since)
      expect(ops, query).toEqual([{ type: 'delRange', ...op }])
    }
  })

  it('answers 400 for bad bounds, 413 for long ones, 405 for other methods; nothing deleted', async () => {
    await fill()
    const cases: Array<[string, number, RegExp]> = [
      ['', 400, /needs a lower bound/],
      ['lt=b', 400, /needs a lower bound/],
      ['gt=a&gte=a', 400, /at most one of gt and gte/],
      ['gte=a&lt=b&lte=b', 400, /at most one of lt and lte/],
      ['gte=b&lt=a', 400, /empty/],
      ['gte=b&lt=b', 400, /empty/],
      ['gt=a&lt=a%00', 400, /empty/],
      ['gte=a&limit=3', 400, /unknown range delete parameter "limit"/],
      ['gte=a&sync=maybe', 400, /sync/],
      ['gte=%zz', 400, /percent-encoding/],
      [`gte=${'x'.repeat(16 * 1024 + 1)}`, 413, /maxKeyBytes/],
      [`gte=a&lte=${'x'.repeat(16 * 1024 + 1)}`, 413, /maxKeyBytes/],
    ]
    for (const [query, status, message] of cases) {
      const res = await fetch(`${base}/v1/range?${query}`, { method: 'DELETE' })
      expect(res.status, query).toBe(status)
      const body = (await res.json()) as { code: string; message: string }
      expect(body.message, query).toMatch(message)
    }
    const post = await fetch(`${base}/v1/range?gte=a`, { method: 'POST' })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET, DELETE')
    expect(await allKeys()).toHaveLength(KEYS.length + 1)
  })

  it('takes delRange ops in POST /v1/batch, atomic with the other ops', async () => {
    await fill()
    const post = (body: unknown): Promise<Response> => fetch(`${base}/v1/batch`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
    const since = lastSequence()
    const res = await post([
      { type: 'put', key: 'a', value: 'gone' },
      { type: 'delRange', gte: 'a', lt: 'c' },
      { type: 'put', key: 'b', value: 'kept' },
      { type: 'delRange', gteBase64: Buffer.from([0xff]).toString('base64') },
    ])
    expect(res.status).toBe(200)
    const { versions } = (await res.json()) as { versions: number[] }
    expect(versions.slice(0, 2)).toEqual([0, 0])
    expect(versions[2]).toBeGreaterThan(0)
    expect(versions[3]).toBe(0)
    expect(await allKeys()).toEqual(['b', 'c', 'z'])
    expect((await changesSince(server.db, since)).map((o) => o.type)).toEqual(['put', 'delRange', 'put', 'delRange'])
    // Conditions still make the whole batch fail, range delete included.
    const conflict = await post([{ type: 'check', key: 'b', ifVersion: 1 }, { type: 'delRange', gte: '' }])
    expect(conflict.status).toBe(409)
    expect(await allKeys()).toEqual(['b', 'c', 'z'])
    const bad: Array<[unknown, RegExp]> = [
      [{ type: 'delRange' }, /needs gte/],
      [{ type: 'delRange', gte: 'b', lt: 'a' }, /empty/],
      [{ type: 'delRange', gte: 'a', key: 'a' }, /gte and lt only/],
      [{ type: 'delRange', gte: 'a', ifVersion: 0 }, /gte and lt only/],
      [{ type: 'delRange', gte: 'a', gteBase64: 'YQ==' }, /either gte or gteBase64/],
      [{ type: 'delRange', gte: 7 }, /gte must be a string/],
      [{ type: 'nope', key: 'a' }, /"put", "del", "check" or "delRange"/],
    ]
    for (const [op, message] of bad) {
      const r = await post([op])
      expect(r.status, JSON.stringify(op)).toBe(400)
      expect(((await r.json()) as { message: string }).message).toMatch(message)
    }
    const long = await post([{ type: 'delRange', gte: 'x'.repeat(16 * 1024 + 1) }])
    expect(long.status).toBe(413)
    expect(await allKeys()).toEqual(['b', 'c', 'z'])
  })

  it('RESP and HTTP range deletes interleave with RESP writes in order', async () => {
    const r = client()
    await fetch(`${base}/v1/range?gte=`, { method: 'DELETE' })
    await r.mset('p:1', 'a', 'p:2', 'b', 'q:1', 'c')
    expect((await fetch(`${base}/v1/range?gte=p:&lt=p;`, { method: 'DELETE' })).status).toBe(204)
    expect(await r.mget('p:1', 'p:2', 'q:1')).toEqual([null, null, 'c'])
    expect(await r.incr('p:1')).toBe(1)
  })
})

describe('key locks: writers of the whole key space', () => {
  it('whenAllFree runs at once when nothing is held, else once every holder released', async () => {
    const locks = new KeyLocks()
    const order: string[] = []
    let acquiredAll = 0
    locks.onAcquiredAll = () => acquiredAll++
    expect(locks.whenAllFree(() => 'now')).toBe('now')
    const releaseA = await locks.acquire(['a'])
    const releaseB = await locks.acquire(['b'])
    const flush = locks.whenAllFree(() => {
      order.push('flush')
      return 'later'
    })
    expect(flush).toBeInstanceOf(Promise)
    // New exclusive acquisitions wait behind it (no starvation); blind writes of free keys go on.
    const late = locks.acquire(['c']).then((release) => {
      order.push('late c')
      return release
    })
    expect(locks.tryAcquire(['d'])).toBeUndefined()
    expect(locks.whenFree(['e'], () => 'blind e')).toBe('blind e')
    releaseA()
    await Promise.resolve()
    expect(order).toEqual([])
    releaseB()
    expect(await flush).toBe('later')
    ;(await late)()
    expect(order).toEqual(['flush', 'late c'])
    expect(acquiredAll).toBe(2)
    expect(locks.heldCount).toBe(0)
  })

  it('acquireAll holds every key: exclusive and blind writers wait until it releases', async () => {
    const locks = new KeyLocks()
    const release = await locks.acquireAll()
    expect(locks.heldCount).toBe(1)
    expect(locks.isLocked('any')).toBe(true)
    const events: string[] = []
    const blind = locks.whenFree(['x'], () => events.push('blind x'))
    const exclusive = locks.acquire(['y']).then((r) => {
      events.push('exclusive y')
      return r
    })
    const second = locks.acquireAll().then((r) => {
      events.push('second all')
      return r
    })
    await new Promise((resolve) => setImmediate(resolve))
    expect(events).toEqual([])
    release()
    release() // idempotent
    const releaseSecond = await second
    expect(events).toEqual(['second all'])
    releaseSecond()
    await blind
    ;(await exclusive)()
    expect(events).toEqual(['second all', 'blind x', 'exclusive y'])
    expect(locks.heldCount).toBe(0)
  })
})
