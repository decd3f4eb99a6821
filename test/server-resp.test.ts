/**
 * The Redis protocol front end, driven by a real client (ioredis, over RESP3
 * as it negotiates by default, and over RESP2) and by raw sockets for what
 * clients never send: string commands and their errors, pipelining order,
 * atomic INCR and MSET, MULTI/EXEC with WATCH conflicts, SCAN/KEYS, AUTH,
 * protocol limits, -BUSY, and backpressure against a client that does not
 * read.
 */
import * as net from 'node:net'
import { Redis, type RedisOptions } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ServerOptionsInput } from '../src/server/index.js'
import { RedisClients, startRespServer, type RunningServer } from './resp-helpers.js'
import { rng } from './unit/helpers.js'

const start = (options?: ServerOptionsInput): Promise<RunningServer> => startRespServer('strata-resp-', options)

const clients = new RedisClients()
const client = (port: number, options?: RedisOptions): Redis => clients.connect(port, options)

async function closeClients(): Promise<void> {
  await clients.closeAll()
}

/** Sends raw bytes, collects everything until the server closes (or `ms` passes). */
function raw(port: number, input: Buffer | string, ms = 3000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => {
      s.destroy()
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: false })
    }, ms)
    s.on('data', (c) => chunks.push(c))
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(timer)
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: true })
    })
    s.write(input)
  })
}

let main: RunningServer
let port: number
beforeAll(async () => {
  main = await start()
  port = main.server.respPort!
})
afterAll(async () => {
  await closeClients()
  await main.stop()
  expect(main.logs.filter((l) => /failed/.test(l))).toEqual([])
})

describe.each([3, 2] as const)('string commands over RESP%i', (protocol) => {
  const p = `p${protocol}:`
  it('GET/SET and its options, SETNX, GETSET, GETDEL, DEL, EXISTS, MGET, MSET, MSETNX', async () => {
    const r = client(port, { protocol })
    expect(await r.set(`${p}a`, '1')).toBe('OK')
    expect(await r.get(`${p}a`)).toBe('1')
    expect(await r.get(`${p}missing`)).toBeNull()
    expect(await r.set(`${p}a`, '2', 'NX')).toBeNull()
    expect(await r.set(`${p}b`, '2', 'XX')).toBeNull()
    expect(await r.set(`${p}a`, '3', 'XX')).toBe('OK')
    expect(await r.set(`${p}a`, '4', 'GET')).toBe('3')
    expect(await r.call('SET', `${p}a`, '5', 'NX', 'GET')).toBe('4')
    expect(await r.call('SET', `${p}a`, '5', 'KEEPTTL')).toBe('OK')
    await expect(r.call('SET', `${p}a`, '5', 'NX', 'XX')).rejects.toThrow(/syntax error/)
    // Expiry is supported (test/server-ttl.test.ts covers it).
    expect(await r.set(`${p}a`, '5', 'EX', 100)).toBe('OK')
    expect(await r.call('SET', `${p}a`, '5', 'PX', '100000')).toBe('OK')
    expect(await r.call('EXPIRE', `${p}a`, '100')).toBe(1)
    expect(await r.setnx(`${p}a`, 'x')).toBe(0)
    expect(await r.setnx(`${p}c`, 'x')).toBe(1)
    expect(await r.getset(`${p}c`, 'y')).toBe('x')
    expect(await r.getdel(`${p}c`)).toBe('y')
    expect(await r.getdel(`${p}c`)).toBeNull()
    expect(await r.mset(`${p}m1`, 'a', `${p}m2`, 'b')).toBe('OK')
    expect(await r.mget(`${p}m1`, `${p}nope`, `${p}m2`)).toEqual(['a', null, 'b'])
    expect(await r.exists(`${p}m1`, `${p}m1`, `${p}nope`)).toBe(2)
    expect(await r.msetnx(`${p}m2`, 'z', `${p}m3`, 'z')).toBe(0)
    expect(await r.get(`${p}m3`)).toBeNull()
    expect(await r.msetnx(`${p}m3`, 'z', `${p}m4`, 'z')).toBe(1)
    expect(await r.del(`${p}m1`, `${p}m2`, `${p}m1`, `${p}nope`)).toBe(2)
    expect(await r.exists(`${p}m1`, `${p}m2`)).toBe(0)
    await expect(r.call('MSET', `${p}x`)).rejects.toThrow(/wrong number of arguments for 'mset'/)
    await expect(r.call('MSET', `${p}x`, '1', `${p}y`)).rejects.toThrow(/wrong number of arguments for 'mset'/)
  })

  it('INCR family, APPEND, STRLEN, GETRANGE, TYPE, TTL', async () => {
    const r = client(port, { protocol })
    expect(await r.incr(`${p}n`)).toBe(1)
    expect(await r.incrby(`${p}n`, 41)).toBe(42)
    expect(await r.decr(`${p}n`)).toBe(41)
    expect(await r.decrby(`${p}n`, 50)).toBe(-9)
    await r.set(`${p}s`, 'abc')
    await expect(r.incr(`${p}s`)).rejects.toThrow(/value is not an integer or out of range/)
    await expect(r.incrby(`${p}n`, 'x' as unknown as number)).rejects.toThrow(/not an integer/)
    await r.set(`${p}big`, '9223372036854775807')
    await expect(r.incr(`${p}big`)).rejects.toThrow(/increment or decrement would overflow/)
    await r.set(`${p}lead`, '007')
    await expect(r.incr(`${p}lead`)).rejects.toThrow(/not an integer/)
    expect(await r.append(`${p}ap`, 'Hello')).toBe(5)
    expect(await r.append(`${p}ap`, ' World')).toBe(11)
    expect(await r.strlen(`${p}ap`)).toBe(11)
    expect(await r.strlen(`${p}nope`)).toBe(0)
    expect(await r.getrange(`${p}ap`, 0, 3)).toBe('Hell')
    expect(await r.getrange(`${p}ap`, -3, -1)).toBe('rld')
    expect(await r.getrange(`${p}ap`, 0, -1)).toBe('Hello World')
    expect(await r.getrange(`${p}ap`, 10, 100)).toBe('d')
    expect(await r.getrange(`${p}ap`, 5, 3)).toBe('')
    expect(await r.type(`${p}ap`)).toBe('string')
    expect(await r.type(`${p}nope`)).toBe('none')
    expect(await r.ttl(`${p}ap`)).toBe(-1)
    expect(await r.pttl(`${p}nope`)).toBe(-2)
  })

  it('binary keys and values round-trip; empty keys and unknown commands are errors', async () => {
    const r = client(port, { protocol })
    const key = Buffer.from([0, 255, 13, 10, 32, 1])
    const value = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 256))
    expect(await r.set(key, value)).toBe('OK')
    expect((await r.getBuffer(key))?.equals(value)).toBe(true)
    await expect(r.set('', 'x')).rejects.toThrow(/ERR .*key/i)
    await expect(r.call('NOSUCH', 'a', 'b')).rejects.toThrow(/ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b'/)
    await expect(r.call('GET')).rejects.toThrow(/ERR wrong number of arguments for 'get' command/)
    await expect(r.call('GET', 'a', 'b')).rejects.toThrow(/wrong number of arguments/)
  })

  it('connection and server commands', async () => {
    const r = client(port, { protocol })
    expect(await r.ping()).toBe('PONG')
    expect(await r.call('PING', 'hi')).toBe('hi')
    expect(await r.echo('hey')).toBe('hey')
    expect(await r.select(0)).toBe('OK')
    await expect(r.select(1)).rejects.toThrow(/DB index is out of range/)
    expect(await r.client('SETNAME', 'tester')).toBe('OK')
    expect(await r.client('GETNAME')).toBe('tester')
    expect(typeof (await r.client('ID'))).toBe('number')
    await expect(r.client('SETNAME', 'has space')).rejects.toThrow(/cannot contain spaces/)
    const info = await r.info()
    expect(info).toMatch(/loading:0/)
    expect(info).toMatch(/redis_version:/)
    expect(await r.info('strata')).toMatch(/last_sequence:\d+/)
    expect(await r.call('COMMAND', 'COUNT')).toBeGreaterThan(40)
    const getInfo = (await r.call('COMMAND', 'INFO', 'get')) as unknown[][]
    expect(getInfo[0].slice(0, 2)).toEqual(['get', 2])
    const time = (await r.time()) as unknown as string[]
    expect(Math.abs(Number(time[0]) - Date.now() / 1000)).toBeLessThan(5)
    expect(await r.dbsize()).toBeGreaterThan(0)
    // FLUSHALL is supported (test/server-range-delete.test.ts); here only its syntax error, which deletes nothing.
    await expect(r.call('FLUSHALL', 'NOW')).rejects.toThrow(/ERR syntax error/)
  })
})

describe('pipelining', () => {
  it('keeps replies in order and lets each command see the ones before it', async () => {
    const r = client(port)
    const res = await r.pipeline().set('pl:a', '1').get('pl:a').set('pl:a', '2').get('pl:a').incr('pl:n').get('pl:n').del('pl:a').get('pl:a').exec()
    expect(res!.map(([e, v]) => e?.message ?? v)).toEqual(['OK', '1', 'OK', '2', 1, '1', 1, null])
  })

  it('matches a model over thousands of random pipelined commands', async () => {
    const r = client(port)
    const random = rng(11)
    const model = new Map<string, string>()
    const p = r.pipeline()
    const expected: unknown[] = []
    for (let i = 0; i < 4000; i++) {
      const k = `pm:${Math.floor(random() * 30)}`
      const op = random()
      if (op < 0.35) {
        const v = `v${i}`
        p.set(k, v)
        model.set(k, v)
        expected.push('OK')
      } else if (op < 0.6) {
        p.get(k)
        expected.push(model.get(k) ?? null)
      } else if (op < 0.7) {
        p.del(k)
        expected.push(model.delete(k) ? 1 : 0)
      } else if (op < 0.8) {
        p.append(k, 'x')
        model.set(k, (model.get(k) ?? '') + 'x')
        expected.push(model.get(k)!.length)
      } else if (op < 0.9) {
        const k2 = `pm:${Math.floor(random() * 30)}`
        p.mset(k, `m${i}`, k2, `n${i}`)
        model.set(k, `m${i}`)
        model.set(k2, `n${i}`)
        expected.push('OK')
      } else {
        p.exists(k)
        expected.push(model.has(k) ? 1 : 0)
      }
    }
    const res = await p.exec()
    expect(res!.map(([e, v]) => e?.message ?? v)).toEqual(expected)
  })
})

describe('batched blind writes', () => {
  it('answers each write of a pipeline on its own: invalid ones fail alone, MSET stays atomic', async () => {
    // One pipeline: the valid writes share one engine batch; the empty keys are refused alone.
    const input =
      '*3\r\n$3\r\nSET\r\n$4\r\nbw:a\r\n$1\r\n1\r\n' +
      '*3\r\n$3\r\nSET\r\n$0\r\n\r\n$1\r\nx\r\n' +
      '*5\r\n$4\r\nMSET\r\n$4\r\nbw:m\r\n$1\r\n1\r\n$0\r\n\r\n$1\r\n2\r\n' +
      '*3\r\n$3\r\nSET\r\n$4\r\nbw:b\r\n$1\r\n2\r\n' +
      '*2\r\n$3\r\nGET\r\n$4\r\nbw:b\r\n' +
      '*2\r\n$6\r\nEXISTS\r\n$4\r\nbw:m\r\n' +
      '*1\r\n$4\r\nQUIT\r\n'
    const { text } = await raw(port, input)
    const lines = text.split('\r\n')
    expect(lines[0]).toBe('+OK')
    expect(lines[1]).toMatch(/^-ERR .*key/i)
    expect(lines[2]).toMatch(/^-ERR .*key/i)
    expect(lines.slice(3, 8)).toEqual(['+OK', '$1', '2', ':0', '+OK'])
  })

  it('orders the queued writes of a connection before its WATCH, reads and read-modify-writes', async () => {
    const r = client(port)
    const res = await r.pipeline().set('bw:w', '5').watch('bw:w').get('bw:w').incr('bw:w').set('bw:w', '10').incr('bw:w').exec()
    expect(res!.map(([e, v]) => e?.message ?? v)).toEqual(['OK', 'OK', '5', 6, 'OK', 11])
    // WATCH saw the connection's own SET: EXEC commits.
    const w = client(port)
    await w.pipeline().set('bw:x', '1').watch('bw:x').exec()
    const exec = await w.multi().set('bw:x', '2').exec()
    expect(exec).toEqual([[null, 'OK']])
    expect(await w.get('bw:x')).toBe('2')
  })

  it('pipelined INCRs of many clients on shared keys lose no update and read their own writes', async () => {
    const cs = Array.from({ length: 8 }, () => client(port))
    const keys = ['bw:i0', 'bw:i1', 'bw:i2']
    const results = await Promise.all(
      cs.map(async (c, ci) => {
        const p = c.pipeline()
        const kinds: string[] = []
        for (let i = 0; i < 300; i++) {
          const k = keys[(i + ci) % keys.length]
          if (i % 5 === 4) {
            p.get(k)
            kinds.push(`get ${k}`)
          } else {
            p.incr(k)
            kinds.push(`incr ${k}`)
          }
        }
        const res = (await p.exec())!
        return res.map(([e, v], i) => ({ kind: kinds[i], e, v }))
      }),
    )
    for (const res of results) {
      const last = new Map<string, number>()
      for (const { kind, e, v } of res) {
        expect(e).toBeNull()
        const [op, k] = kind.split(' ')
        const n = Number(v)
        // Each client sees its own increments in order, and a GET at least its own last INCR.
        expect(n).toBeGreaterThanOrEqual(last.get(k) ?? 0)
        if (op === 'incr') expect(n).toBeGreaterThan(last.get(k) ?? 0)
        last.set(k, n)
      }
    }
    const total = (await cs[0].mget(...keys)).reduce((a, v) => a + Number(v), 0)
    expect(total).toBe(8 * 240)
  })

  it('commits the SETs of many clients in few engine writes, each acknowledged and readable', async () => {
    const cs = Array.from({ length: 20 }, () => client(port))
    await Promise.all(cs.map((c) => c.ping()))
    const before = main.server.db.stats().writes
    await Promise.all(cs.map((c, i) => Promise.all(Array.from({ length: 25 }, (_, j) => c.set(`bw:c${i}:${j}`, `${i}.${j}`)))))
    const after = main.server.db.stats().writes
    // stats().writes counts engine write calls: a batch is one. 500 SETs sent at once share some.
    expect(after.writes - before.writes).toBeGreaterThan(0)
    expect(after.writes - before.writes).toBeLessThan(20 * 25)
    const values = await cs[0].mget(...cs.flatMap((_, i) => Array.from({ length: 25 }, (_, j) => `bw:c${i}:${j}`)))
    expect(values).toEqual(cs.flatMap((_, i) => Array.from({ length: 25 }, (_, j) => `${i}.${j}`)))
  })
})

describe('atomicity across clients', () => {
  it('INCR and APPEND from many clients lose no update', async () => {
    const cs = Array.from({ length: 16 }, () => client(port))
    await Promise.all(cs.map((c) => Promise.all(Array.from({ length: 150 }, () => Promise.all([c.incr('at:n'), c.append('at:s', 'ab')])))))
    expect(await cs[0].get('at:n')).toBe(String(16 * 150))
    expect(await cs[0].strlen('at:s')).toBe(16 * 150 * 2)
  })

  it('MSET is atomic for MGET readers', async () => {
    const w = client(port)
    const rd = client(port)
    let stop = false
    const writer = (async () => {
      for (let i = 0; !stop; i++) await w.mset('ms:a', String(i), 'ms:b', String(i), 'ms:c', String(i))
    })()
    let torn = 0
    for (let i = 0; i < 1500; i++) {
      const [a, b, c] = await rd.mget('ms:a', 'ms:b', 'ms:c')
      if (a !== b || b !== c) torn++
    }
    stop = true
    await writer
    expect(torn).toBe(0)
  })
})

describe('MULTI/EXEC/WATCH', () => {
  it('runs queued commands atomically and returns their replies', async () => {
    const r = client(port)
    const res = await r.multi().set('tx:a', '1').incr('tx:n').get('tx:a').incr('tx:a').exec()
    expect(res!.map(([e, v]) => e?.message ?? v)).toEqual(['OK', 1, '1', 2])
    // An error in a command does not abort the others (as in Redis).
    const res2 = await r.multi().set('tx:s', 'x').incr('tx:s').get('tx:s').exec()
    expect(res2![1][0]?.message).toMatch(/not an integer/)
    expect(res2![2][1]).toBe('x')
  })

  it('aborts EXEC when a watched key changed, and commits otherwise', async () => {
    const a = client(port)
    const b = client(port)
    await a.set('w:k', '1')
    await a.watch('w:k')
    await b.set('w:k', '2')
    expect(await a.multi().set('w:k', 'from-a').exec()).toBeNull()
    expect(await a.get('w:k')).toBe('2')
    await a.watch('w:k', 'w:absent')
    expect(await a.multi().set('w:k', 'from-a').exec()).toEqual([[null, 'OK']])
    // WATCH of an absent key that someone creates.
    await a.watch('w:new')
    await b.set('w:new', 'x')
    expect(await a.multi().set('w:new', 'a').exec()).toBeNull()
    // UNWATCH forgets.
    await a.watch('w:k')
    await b.set('w:k', '3')
    await a.unwatch()
    expect(await a.multi().get('w:k').exec()).toEqual([[null, '3']])
  })

  it('answers EXECABORT after a queuing error, and the MULTI errors of Redis', async () => {
    const r = client(port)
    expect(await r.call('MULTI')).toBe('OK')
    expect(await r.call('SET', 'ea:k', 'v')).toBe('QUEUED')
    await expect(r.call('NOSUCHCMD')).rejects.toThrow(/unknown command/)
    await expect(r.call('EXEC')).rejects.toThrow(/EXECABORT/)
    expect(await r.get('ea:k')).toBeNull()
    await expect(r.call('EXEC')).rejects.toThrow(/EXEC without MULTI/)
    await expect(r.call('DISCARD')).rejects.toThrow(/DISCARD without MULTI/)
    await r.call('MULTI')
    await expect(r.call('MULTI')).rejects.toThrow(/can not be nested/)
    await expect(r.call('WATCH', 'x')).rejects.toThrow(/WATCH inside MULTI/)
    expect(await r.call('DISCARD')).toBe('OK')
  })

  it('keeps the total of concurrent WATCH/MULTI transfers', async () => {
    const accounts = 5
    const setup = client(port)
    for (let i = 0; i < accounts; i++) await setup.set(`bank:${i}`, '100')
    const random = rng(5)
    let aborted = 0
    const worker = async (c: Redis): Promise<void> => {
      for (let n = 0; n < 40; ) {
        const from = `bank:${Math.floor(random() * accounts)}`
        const to = `bank:${Math.floor(random() * accounts)}`
        if (from === to) continue
        await c.watch(from, to)
        const [f, t] = (await c.mget(from, to)).map(Number)
        const amount = 1 + Math.floor(random() * 10)
        const res = await c.multi().set(from, String(f - amount)).set(to, String(t + amount)).exec()
        if (res === null) aborted++
        else n++
      }
    }
    await Promise.all(Array.from({ length: 6 }, () => worker(client(port))))
    const values = await setup.mget(...Array.from({ length: accounts }, (_, i) => `bank:${i}`))
    expect(values.reduce((s, v) => s + Number(v), 0)).toBe(accounts * 100)
    expect(aborted).toBeGreaterThan(0)
  })
})

describe('SCAN and KEYS', () => {
  it('walks the key space in key order, with MATCH and COUNT, via scanStream', async () => {
    const r = client(port)
    const keys = Array.from({ length: 600 }, (_, i) => `scan:${String(i).padStart(4, '0')}`)
    await r.mset(...keys.flatMap((k) => [k, 'v']))
    const seen: string[] = []
    for await (const batch of r.scanStream({ match: 'scan:*', count: 37 })) seen.push(...(batch as string[]))
    expect(seen).toEqual(keys)
    const ones: string[] = []
    for await (const batch of r.scanStream({ match: 'scan:01?5', count: 7 })) ones.push(...(batch as string[]))
    expect(ones).toEqual(Array.from({ length: 10 }, (_, i) => `scan:01${i}5`))
    const [cursor, first] = (await r.call('SCAN', '0', 'MATCH', 'scan:*', 'COUNT', '5')) as [string, string[]]
    expect(first).toEqual(keys.slice(0, 5))
    expect(cursor).toMatch(/^[1-9]\d*$/)
    const [, next] = (await r.call('SCAN', cursor, 'MATCH', 'scan:*', 'COUNT', '5')) as [string, string[]]
    expect(next).toEqual(keys.slice(5, 10))
    await expect(r.call('SCAN', '12345')).rejects.toThrow(/invalid cursor/)
    await expect(r.call('SCAN', '0', 'COUNT', '0')).rejects.toThrow(/syntax error/)
    expect(await r.keys('scan:000*')).toEqual(keys.slice(0, 10))
    expect(await r.keys('scan:0001')).toEqual(['scan:0001'])
  })

  it('bounds KEYS', async () => {
    const s = await start({ limits: { maxKeysReply: 50 } })
    try {
      const r = client(s.server.respPort!)
      await r.mset(...Array.from({ length: 60 }, (_, i) => [`k${i}`, 'v']).flat())
      await expect(r.keys('*')).rejects.toThrow(/KEYS would return more than 50 keys; use SCAN/)
      expect(await r.keys('k1*')).toHaveLength(11)
    } finally {
      await s.stop()
    }
  })
})

describe('AUTH', () => {
  it('requires the token when one is configured, over HELLO 3 AUTH and AUTH', async () => {
    const token = 'secret-token-0123456789'
    const s = await start({ token })
    try {
      const p = s.server.respPort!
      const none = await raw(p, '*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n', 500)
      expect(none.text).toBe('-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n')
      const r3 = client(p, { password: token })
      expect(await r3.set('a', 'b')).toBe('OK')
      const r2 = client(p, { password: token, protocol: 2 })
      expect(await r2.get('a')).toBe('b')
      const bad = client(p, { password: 'wrong-token-0123456789', lazyConnect: true })
      const errors: string[] = []
      bad.on('error', (e: Error) => errors.push(e.message))
      await bad.connect().catch(() => {})
      await expect(bad.get('a')).rejects.toThrow()
      expect(errors.join('\n')).toMatch(/WRONGPASS/)
    } finally {
      await s.stop()
    }
  })

  it('answers AUTH without a configured token like Redis', async () => {
    const r = await raw(port, 'AUTH x\r\nQUIT\r\n')
    expect(r.text).toMatch(/^-ERR AUTH <password> called without any password configured/)
    expect(r.closed).toBe(true)
  })
})

describe('protocol errors and limits', () => {
  it('answers malformed input with an error after the earlier replies, then closes; others are unaffected', async () => {
    const bystander = client(port)
    await bystander.set('by:k', 'v')
    const cases: Array<[string, RegExp]> = [
      ['*1\r\n$4\r\nPING\r\n*99999999\r\n', /^\+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n$/],
      ['PING\r\n*1\r\n$999999999999\r\n', /^\+PONG\r\n-ERR Protocol error: invalid bulk length\r\n$/],
      ['*1\r\nGET\r\n', /^-ERR Protocol error: expected '\$', got 'G'\r\n$/],
      ['*x\r\n', /^-ERR Protocol error: invalid multibulk length\r\n$/],
      ['SET "a b\r\n', /^-ERR Protocol error: unbalanced quotes in request\r\n$/],
      ['x'.repeat(70 * 1024), /^-ERR Protocol error: too big inline request\r\n$/],
    ]
    for (const [input, expected] of cases) {
      const r = await raw(port, input)
      expect(r.text, JSON.stringify(input.slice(0, 30))).toMatch(expected)
      expect(r.closed).toBe(true)
    }
    // An HTTP request on the RESP port is dropped without an answer.
    const http = await raw(port, 'POST / HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(http).toEqual({ text: '', closed: true })
    expect(await bystander.get('by:k')).toBe('v')
  })

  it('enforces maxArgs and maxBulkBytes as configured', async () => {
    const s = await start({ limits: { maxArgs: 4, maxBulkBytes: 10 } })
    try {
      const p = s.server.respPort!
      expect((await raw(p, '*5\r\n')).text).toMatch(/invalid multibulk length/)
      expect((await raw(p, '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$11\r\n')).text).toMatch(/invalid bulk length/)
      expect((await raw(p, '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n', 300)).text).toBe('+OK\r\n')
    } finally {
      await s.stop()
    }
  })

  it('refuses keys longer than maxKeyBytes in any key position, writing nothing', async () => {
    const s = await start({ limits: { maxKeyBytes: 8 } })
    try {
      const p = s.server.respPort!
      const cmd = (...a: string[]): string => `*${a.length}\r\n${a.map((x) => `$${x.length}\r\n${x}\r\n`).join('')}`
      expect((await raw(p, cmd('SET', '123456789', 'v'), 300)).text).toMatch(/^-ERR key of 9 bytes exceeds maxKeyBytes \(8\)/)
      expect((await raw(p, cmd('MSET', 'a', '1', '123456789', '2'), 300)).text).toMatch(/^-ERR key of 9 bytes/)
      expect((await raw(p, cmd('GET', '123456789'), 300)).text).toMatch(/^-ERR key of 9 bytes/)
      // Nothing of the refused MSET was written; a key within the limit works.
      expect((await raw(p, cmd('EXISTS', 'a'), 300)).text).toBe(':0\r\n')
      expect((await raw(p, cmd('SET', '12345678', 'v'), 300)).text).toBe('+OK\r\n')
    } finally {
      await s.stop()
    }
  })

  it('refuses connections beyond maxConnections with the Redis error', async () => {
    const s = await start({ limits: { maxConnections: 2 } })
    try {
      const a = client(s.server.respPort!)
      const b = client(s.server.respPort!)
      expect(await Promise.all([a.ping(), b.ping()])).toEqual(['PONG', 'PONG'])
      const third = await raw(s.server.respPort!, 'PING\r\n')
      expect(third).toEqual({ text: '-ERR max number of clients reached\r\n', closed: true })
      await b.quit()
      await new Promise((r) => setTimeout(r, 50))
      expect((await raw(s.server.respPort!, 'PING\r\nQUIT\r\n')).text).toBe('+PONG\r\n+OK\r\n')
    } finally {
      await s.stop()
    }
  })

  it('answers QUIT, then closes', async () => {
    const r = await raw(port, 'PING\r\nQUIT\r\nPING\r\n')
    expect(r).toEqual({ text: '+PONG\r\n+OK\r\n', closed: true })
  })
})

describe('overload', () => {
  it('answers -BUSY instead of queueing past maxPendingWrites, and recovers', async () => {
    const s = await start({ limits: { maxPendingWrites: 8 } })
    try {
      const r = client(s.server.respPort!)
      const p = r.pipeline()
      for (let i = 0; i < 3000; i++) p.set(`busy:${i}`, 'x'.repeat(100))
      const res = (await p.exec())!
      const busy = res.filter(([e]) => e !== null)
      expect(busy.length).toBeGreaterThan(0)
      expect(busy.every(([e]) => /^BUSY try again/.test(e!.message))).toBe(true)
      // Every acknowledged write is there; refused ones are not.
      const values = await r.mget(...res.map((_, i) => `busy:${i}`))
      res.forEach(([e], i) => expect(values[i] === null, `busy:${i}`).toBe(e !== null))
      expect(await r.set('busy:after', '1')).toBe('OK')
    } finally {
      await s.stop()
    }
  })

  it('stops reading from a client that does not read its replies (bounded memory)', async () => {
    const r = client(port)
    const value = Buffer.alloc(64 * 1024, 0x78)
    await r.set('bp:big', value)
    const before = process.memoryUsage()
    const sock = net.connect(port, '127.0.0.1')
    await new Promise((res) => sock.once('connect', res))
    sock.pause()
    const cmd = Buffer.from('*2\r\n$3\r\nGET\r\n$6\r\nbp:big\r\n')
    const batch = Buffer.concat(Array.from({ length: 10_000 }, () => cmd))
    // Up to 2,000,000 GETs of 64 KiB: 130 GB of replies if the server kept producing them.
    let sent = 0
    const deadline = performance.now() + 10_000
    while (sent < 200 && sock.writableLength < 4 << 20 && performance.now() < deadline) {
      if (!sock.write(batch)) await new Promise((res) => setTimeout(res, 5))
      sent++
    }
    await new Promise((res) => setTimeout(res, 500))
    const after = process.memoryUsage()
    const grown = after.rss - before.rss
    expect(sock.writableLength, 'the server stopped reading, so our writes back up').toBeGreaterThan(0)
    expect(grown).toBeLessThan(200 << 20)
    expect(sent).toBeLessThan(200)
    // Other clients are served meanwhile.
    expect(await r.get('by:nothing')).toBeNull()
    // Reading now yields the replies, in order (the first 32 MiB of them are checked).
    const one = Buffer.concat([Buffer.from(`$${value.length}\r\n`), value, Buffer.from('\r\n')])
    const want = 32 << 20
    const got: Buffer[] = []
    let received = 0
    await new Promise<void>((resolve) => {
      sock.on('data', (c: Buffer) => {
        if (received < want) got.push(c)
        received += c.length
        if (received >= want) resolve()
      })
      sock.resume()
    })
    const stream = Buffer.concat(got).subarray(0, Math.floor(want / one.length) * one.length)
    for (let i = 0; i < stream.length; i += one.length) {
      if (!stream.subarray(i, i + one.length).equals(one)) throw new Error(`reply at byte ${i} is not the value`)
    }
    sock.destroy()
    expect(await r.ping()).toBe('PONG')
  })
})

describe('RESP metrics', () => {
  it('counts commands, errors and latencies per command in /metrics', async () => {
    const s = await start({ http: '127.0.0.1:0' })
    try {
      const r = client(s.server.respPort!)
      for (let i = 0; i < 5; i++) await r.set(`met:${i}`, 'v')
      await r.get('met:0')
      await expect(r.incr('met:0')).rejects.toThrow(/not an integer/)
      const text = await (await fetch(`http://${s.server.http}/metrics`)).text()
      expect(text).toMatch(/^# TYPE strata_resp_command_duration_seconds histogram$/m)
      expect(text).toMatch(/^strata_resp_commands_total\{command="set"\} 5$/m)
      expect(text).toMatch(/^strata_resp_command_errors_total\{command="incr"\} 1$/m)
      expect(text).toMatch(/^strata_resp_command_duration_seconds_bucket\{le="\+Inf",command="set"\} 5$/m)
      expect(text).toMatch(/^strata_resp_command_duration_seconds_count\{command="get"\} 1$/m)
      expect(text).toMatch(/^strata_resp_command_duration_seconds_sum\{command="set"\} [0-9.e-]+$/m)
      // Buckets are cumulative and end at the count.
      const buckets = [...text.matchAll(/^strata_resp_command_duration_seconds_bucket\{le="([^"]+)",command="set"\} (\d+)$/gm)].map((m) => Number(m[2]))
      expect(buckets.length).toBe(17)
      expect(buckets.every((n, i) => i === 0 || n >= buckets[i - 1])).toBe(true)
      expect(buckets.at(-1)).toBe(5)
    } finally {
      await s.stop()
    }
  })
})

describe('HTTP and RESP on the same keys', () => {
  it('ETags name exactly the version a PUT produced, and INCR and CAS loops lose no update', async () => {
    const s = await start({ http: '127.0.0.1:0' })
    try {
      const base = `http://${s.server.http}`
      const r = client(s.server.respPort!)
      let stop = false
      // RESP writers hammer the key while HTTP PUTs report their ETags.
      const hammer = (async () => {
        for (let i = 0; !stop; i++) {
          await r.set('mix:k', `resp${i}`)
          if (i % 4 === 0) await new Promise((res) => setTimeout(res, 2))
        }
      })()
      let matched = 0
      for (let i = 0; i < 150; i++) {
        const put = await fetch(`${base}/v1/kv/mix:k`, { method: 'PUT', body: `http${i}` })
        expect(put.status).toBe(204)
        const check = await fetch(`${base}/v1/kv/mix:k`, { headers: { 'If-Match': put.headers.get('etag')! } })
        const body = await check.text()
        if (check.status === 200) {
          // While the key still has the version of our PUT, it must hold our value.
          expect(body).toBe(`http${i}`)
          matched++
        } else {
          expect(check.status).toBe(412)
        }
      }
      stop = true
      await hammer
      expect(matched).toBeGreaterThan(0)
      // Counters: RESP INCR and HTTP compare-and-swap on one key.
      await r.set('mix:n', '0')
      const incrs = Promise.all(Array.from({ length: 4 }, async () => {
        const c = client(s.server.respPort!)
        for (let i = 0; i < 50; i++) await c.incr('mix:n')
      }))
      const cas = Promise.all(Array.from({ length: 3 }, async () => {
        for (let done = 0; done < 20; ) {
          const g = await fetch(`${base}/v1/kv/mix:n`)
          const n = Number(await g.text())
          const w = await fetch(`${base}/v1/kv/mix:n`, { method: 'PUT', body: String(n + 1), headers: { 'If-Match': g.headers.get('etag')! } })
          if (w.status === 204) done++
        }
      }))
      await Promise.all([incrs, cas])
      expect(await r.get('mix:n')).toBe(String(4 * 50 + 3 * 20))
    } finally {
      await s.stop()
    }
  })
})
