/**
 * Expiry (TTL) through the server, with real clients (ioredis over RESP3
 * and RESP2, fetch over HTTP) and a clock the tests move by hand (the
 * engine's `clock` option, passed as `dbOptions`): nothing sleeps.
 *
 * RESP: SET EX/PX/EXAT/PXAT/KEEPTTL, SETEX, PSETEX, GETEX, EXPIRE, PEXPIRE,
 * EXPIREAT, PEXPIREAT with NX/XX/GT/LT, PERSIST, TTL, PTTL, EXPIRETIME,
 * PEXPIRETIME, with Redis 7's replies and errors (checked against
 * redis-server 7.0.15 while writing them); commands that modify a value keep
 * its TTL, those that replace it drop it; an expired key is absent for every
 * command; MULTI/EXEC and WATCH; TTL changes racing SETs and INCRs from
 * another client lose nothing; a key that expires between a command's read
 * and its commit makes the command run again instead of failing.
 *
 * HTTP: PUT ?ttlMs= / ?expiresAt=, the Strata-Expires-At header on GET,
 * HEAD, 304 and PUT, batch operations with ttlMs / expiresAt, and 400s.
 */
import type { Redis, RedisOptions } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Entry } from '../src/index.js'
import { RedisClients, startRespServer, type RunningServer } from './resp-helpers.js'

/** A clock moved by hand; only ever forwards (the engine assumes it does not go back). */
class ManualClock {
  now = 1_700_000_000_000
  readonly read = (): number => this.now
  advance(ms: number): void {
    this.now += ms
  }
}

const clients = new RedisClients()

/** A server with RESP and HTTP on a database whose clock is `clock`. */
async function start(clock: ManualClock): Promise<RunningServer> {
  return startRespServer('strata-ttl-', { http: '127.0.0.1:0', dbOptions: { clock: clock.read } })
}

const clock = new ManualClock()
let main: RunningServer
let base: string
const client = (options?: RedisOptions): Redis => clients.connect(main.port, options)

beforeAll(async () => {
  main = await start(clock)
  base = `http://${main.server.http}`
})
afterAll(async () => {
  await clients.closeAll()
  await main.stop()
  expect(main.logs.filter((l) => /failed/.test(l))).toEqual([])
})

/** The reply, or the error's message (for tables of replies and errors). */
async function reply(r: Redis, ...args: Array<string | number>): Promise<unknown> {
  try {
    return await r.call(String(args[0]), ...args.slice(1).map(String))
  } catch (e) {
    return `error: ${(e as Error).message}`
  }
}

const seconds = (ms: number): number => Math.floor(ms / 1000)

describe.each([3, 2] as const)('RESP%i', (protocol) => {
  const p = `p${protocol}:`

  it('SET EX/PX/EXAT/PXAT set the expiry TTL, PTTL, EXPIRETIME and PEXPIRETIME report; the key is gone once the clock passes it', async () => {
    const r = client({ protocol })
    const t0 = clock.now
    expect(await r.set(`${p}ex`, 'v', 'EX', 100)).toBe('OK')
    expect(await r.ttl(`${p}ex`)).toBe(100)
    expect(await r.pttl(`${p}ex`)).toBe(100_000)
    expect(await r.call('EXPIRETIME', `${p}ex`)).toBe(seconds(t0 + 100_000 + 500))
    expect(await r.call('PEXPIRETIME', `${p}ex`)).toBe(t0 + 100_000)
    expect(await r.call('SET', `${p}px`, 'v', 'PX', '1500')).toBe('OK')
    expect(await r.pttl(`${p}px`)).toBe(1500)
    // TTL rounds as Redis: (ms + 500) / 1000.
    expect(await r.ttl(`${p}px`)).toBe(2)
    expect(await r.call('SET', `${p}exat`, 'v', 'EXAT', String(seconds(t0) + 50))).toBe('OK')
    expect(await r.call('EXPIRETIME', `${p}exat`)).toBe(seconds(t0) + 50)
    expect(await r.call('PEXPIRETIME', `${p}exat`)).toBe((seconds(t0) + 50) * 1000)
    expect(await r.call('SET', `${p}pxat`, 'v', 'PXAT', String(t0 + 2_499))).toBe('OK')
    expect(await r.call('PEXPIRETIME', `${p}pxat`)).toBe(t0 + 2_499)
    expect(await r.call('EXPIRETIME', `${p}pxat`)).toBe(seconds(t0 + 2_499 + 500))
    expect(await r.ttl(`${p}pxat`)).toBe(2)

    clock.advance(1_000)
    expect(await r.pttl(`${p}px`)).toBe(500)
    expect(await r.ttl(`${p}px`)).toBe(1)
    clock.advance(499)
    expect(await r.pttl(`${p}px`)).toBe(1)
    expect(await r.ttl(`${p}px`)).toBe(0)
    expect(await r.get(`${p}px`)).toBe('v')
    clock.advance(1)
    expect(await r.get(`${p}px`)).toBeNull()
    expect(await r.ttl(`${p}px`)).toBe(-2)
    expect(await r.pttl(`${p}px`)).toBe(-2)
    expect(await r.call('EXPIRETIME', `${p}px`)).toBe(-2)
    expect(await r.call('PEXPIRETIME', `${p}px`)).toBe(-2)
    expect(await r.get(`${p}ex`)).toBe('v')
    expect(await r.ttl(`${p}ex`)).toBe(99) // 98,500 ms left

    // Without a TTL: -1; missing: -2.
    await r.set(`${p}plain`, 'x')
    for (const cmd of ['TTL', 'PTTL', 'EXPIRETIME', 'PEXPIRETIME']) {
      expect(await r.call(cmd, `${p}plain`)).toBe(-1)
      expect(await r.call(cmd, `${p}missing`)).toBe(-2)
    }
  })

  it('SET checks its expire time and options as Redis 7', async () => {
    const r = client({ protocol })
    const k = `${p}errs`
    await r.set(k, 'before')
    const invalid = "error: ERR invalid expire time in 'set' command"
    const cases: Array<[Array<string | number>, unknown]> = [
      [['EX', 0], invalid],
      [['EX', -1], invalid],
      [['PX', 0], invalid],
      [['EXAT', 0], invalid],
      [['PXAT', -5], invalid],
      [['EX', '9223372036854776'], invalid], // seconds * 1000 would overflow int64
      [['PX', '9223372036854775807'], invalid], // now + ms overflows
      [['EX', 'abc'], 'error: ERR value is not an integer or out of range'],
      [['EX', '1.5'], 'error: ERR value is not an integer or out of range'],
      [['EX', 10, 'PX', 10], 'error: ERR syntax error'],
      [['EX', 10, 'KEEPTTL'], 'error: ERR syntax error'],
      [['KEEPTTL', 'EX', 10], 'error: ERR syntax error'],
      [['PXAT', 10, 'EXAT', 10], 'error: ERR syntax error'],
      [['EX'], 'error: ERR syntax error'],
      [['PERSIST'], 'error: ERR syntax error'],
      [['NX', 'XX'], 'error: ERR syntax error'],
      [['XX', 'NX'], 'error: ERR syntax error'],
    ]
    for (const [options, expected] of cases) expect([options, await reply(r, 'SET', k, 'after', ...options)]).toEqual([options, expected])
    // Nothing was written.
    expect(await r.get(k)).toBe('before')
    expect(await r.ttl(k)).toBe(-1)
    // The same option twice is allowed (the last time counts), as are NX NX and KEEPTTL KEEPTTL.
    expect(await reply(r, 'SET', k, 'v', 'EX', 10, 'EX', 20)).toBe('OK')
    expect(await r.ttl(k)).toBe(20)
    expect(await reply(r, 'SET', k, 'v', 'KEEPTTL', 'KEEPTTL')).toBe('OK')
    expect(await r.ttl(k)).toBe(20)
    expect(await reply(r, 'SET', k, 'v', 'NX', 'NX')).toBeNull()
  })

  it('SET without KEEPTTL drops the TTL, with it keeps it; NX, XX and GET combine with expire times; a past EXAT deletes', async () => {
    const r = client({ protocol })
    const k = `${p}keep`
    await r.set(k, 'v1', 'EX', 50)
    await r.set(k, 'v2')
    expect(await r.ttl(k)).toBe(-1)
    await r.set(k, 'v1', 'EX', 50)
    clock.advance(10_000)
    expect(await r.call('SET', k, 'v3', 'KEEPTTL')).toBe('OK')
    expect(await r.get(k)).toBe('v3')
    expect(await r.ttl(k)).toBe(40)
    expect(await r.call('SET', k, 'v4', 'KEEPTTL', 'GET')).toBe('v3')
    expect(await r.ttl(k)).toBe(40)
    expect(await r.call('SET', k, 'v5', 'GET', 'EX', '70')).toBe('v4')
    expect(await r.ttl(k)).toBe(70)
    // KEEPTTL of a key without TTL, or of a missing key: no TTL.
    await r.set(`${p}keep-plain`, 'x')
    await r.call('SET', `${p}keep-plain`, 'y', 'KEEPTTL')
    expect(await r.ttl(`${p}keep-plain`)).toBe(-1)
    await r.call('SET', `${p}keep-new`, 'y', 'KEEPTTL')
    expect(await r.ttl(`${p}keep-new`)).toBe(-1)

    expect(await r.call('SET', k, 'v6', 'NX', 'EX', '5')).toBeNull()
    expect(await r.ttl(k)).toBe(70)
    expect(await r.call('SET', `${p}nx`, 'v', 'NX', 'EX', '5')).toBe('OK')
    expect(await r.ttl(`${p}nx`)).toBe(5)
    expect(await r.call('SET', `${p}xx`, 'v', 'XX', 'EX', '5')).toBeNull()
    expect(await r.ttl(`${p}xx`)).toBe(-2)
    expect(await r.call('SET', `${p}nx`, 'w', 'XX', 'PX', '7000')).toBe('OK')
    expect(await r.pttl(`${p}nx`)).toBe(7000)

    // A time in the past: OK, and the key is gone (GET still answers the old value).
    await r.set(`${p}past`, 'old')
    expect(await r.call('SET', `${p}past`, 'new', 'EXAT', String(seconds(clock.now) - 10), 'GET')).toBe('old')
    expect(await r.exists(`${p}past`)).toBe(0)
    expect(await r.call('SET', `${p}past`, 'new', 'PXAT', String(clock.now))).toBe('OK')
    expect(await r.get(`${p}past`)).toBeNull()
  })

  it('SETEX and PSETEX', async () => {
    const r = client({ protocol })
    expect(await r.setex(`${p}setex`, 10, 'v')).toBe('OK')
    expect(await r.get(`${p}setex`)).toBe('v')
    expect(await r.ttl(`${p}setex`)).toBe(10)
    expect(await r.psetex(`${p}psetex`, 1499, 'v')).toBe('OK')
    expect(await r.pttl(`${p}psetex`)).toBe(1499)
    expect(await r.ttl(`${p}psetex`)).toBe(1)
    // Overwrites a value and its TTL.
    await r.set(`${p}setex`, 'x', 'EX', 1000)
    await r.setex(`${p}setex`, 20, 'y')
    expect(await r.get(`${p}setex`)).toBe('y')
    expect(await r.ttl(`${p}setex`)).toBe(20)
    expect(await reply(r, 'SETEX', `${p}setex`, 0, 'v')).toBe("error: ERR invalid expire time in 'setex' command")
    expect(await reply(r, 'SETEX', `${p}setex`, -10, 'v')).toBe("error: ERR invalid expire time in 'setex' command")
    expect(await reply(r, 'PSETEX', `${p}setex`, 0, 'v')).toBe("error: ERR invalid expire time in 'psetex' command")
    expect(await reply(r, 'SETEX', `${p}setex`, 'abc', 'v')).toBe('error: ERR value is not an integer or out of range')
    expect(await reply(r, 'SETEX', `${p}setex`, 10)).toBe("error: ERR wrong number of arguments for 'setex' command")
    expect(await r.get(`${p}setex`)).toBe('y')
    clock.advance(20_000)
    expect(await r.get(`${p}setex`)).toBeNull()
  })

  it('GETEX', async () => {
    const r = client({ protocol })
    const k = `${p}getex`
    const t = clock.now
    // A missing key answers nil before the time is even checked (as Redis); bad options are still a syntax error.
    expect(await reply(r, 'GETEX', `${p}missing`)).toBeNull()
    expect(await reply(r, 'GETEX', `${p}missing`, 'EX', -1)).toBeNull()
    expect(await reply(r, 'GETEX', `${p}missing`, 'EX', 'abc')).toBeNull()
    expect(await reply(r, 'GETEX', `${p}missing`, 'FOO')).toBe('error: ERR syntax error')
    await r.set(k, 'val')
    expect(await reply(r, 'GETEX', k)).toBe('val')
    expect(await r.ttl(k)).toBe(-1)
    expect(await reply(r, 'GETEX', k, 'EX', 60)).toBe('val')
    expect(await r.ttl(k)).toBe(60)
    expect(await reply(r, 'GETEX', k, 'PX', 30_000)).toBe('val')
    expect(await r.pttl(k)).toBe(30_000)
    expect(await reply(r, 'GETEX', k, 'EXAT', seconds(t) + 1000)).toBe('val')
    expect(await r.call('EXPIRETIME', k)).toBe(seconds(t) + 1000)
    expect(await reply(r, 'GETEX', k, 'PXAT', t + 2_000_001)).toBe('val')
    expect(await r.call('PEXPIRETIME', k)).toBe(t + 2_000_001)
    expect(await reply(r, 'GETEX', k)).toBe('val')
    expect(await r.call('PEXPIRETIME', k)).toBe(t + 2_000_001)
    expect(await reply(r, 'GETEX', k, 'PERSIST')).toBe('val')
    expect(await r.ttl(k)).toBe(-1)
    expect(await reply(r, 'GETEX', k, 'PERSIST')).toBe('val')
    const syntax = 'error: ERR syntax error'
    for (const options of [['EX', 10, 'PX', 10], ['NX'], ['XX'], ['GET'], ['KEEPTTL'], ['PERSIST', 'EX', 10], ['EX', 10, 'PERSIST'], ['EX']]) {
      expect([options, await reply(r, 'GETEX', k, ...options)]).toEqual([options, syntax])
    }
    expect(await reply(r, 'GETEX', k, 'EX', 0)).toBe("error: ERR invalid expire time in 'getex' command")
    expect(await reply(r, 'GETEX', k, 'EXAT', 0)).toBe("error: ERR invalid expire time in 'getex' command")
    expect(await reply(r, 'GETEX', k, 'EX', 'x')).toBe('error: ERR value is not an integer or out of range')
    expect(await r.ttl(k)).toBe(-1)
    // A past EXAT answers the value and deletes the key.
    expect(await reply(r, 'GETEX', k, 'EXAT', seconds(clock.now) - 100)).toBe('val')
    expect(await r.get(k)).toBeNull()
    // Once the clock passes the expiry.
    await r.set(k, 'v2')
    expect(await reply(r, 'GETEX', k, 'PX', 10)).toBe('v2')
    clock.advance(10)
    expect(await reply(r, 'GETEX', k)).toBeNull()
  })

  it('EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: 1 or 0, a time not after now deletes, errors as Redis 7', async () => {
    const r = client({ protocol })
    const k = `${p}expire`
    const t = clock.now
    expect(await r.expire(`${p}missing`, 10)).toBe(0)
    expect(await r.pexpire(`${p}missing`, 10)).toBe(0)
    await r.set(k, '1')
    expect(await r.expire(k, 100)).toBe(1)
    expect(await r.ttl(k)).toBe(100)
    expect(await r.get(k)).toBe('1')
    expect(await r.pexpire(k, 200_000)).toBe(1)
    expect(await r.pttl(k)).toBe(200_000)
    expect(await r.expireat(k, seconds(t) + 500)).toBe(1)
    expect(await r.call('EXPIRETIME', k)).toBe(seconds(t) + 500)
    expect(await r.pexpireat(k, t + 600_123)).toBe(1)
    expect(await r.call('PEXPIRETIME', k)).toBe(t + 600_123)
    expect(await r.call('EXPIRETIME', k)).toBe(seconds(t + 600_123 + 500))

    const invalid = (name: string): string => `error: ERR invalid expire time in '${name}' command`
    const cases: Array<[Array<string | number>, unknown]> = [
      [['EXPIRE', k, 'abc'], 'error: ERR value is not an integer or out of range'],
      [['EXPIRE', k, 10, 'FOO'], 'error: ERR Unsupported option FOO'],
      // Flags are checked before the time.
      [['EXPIRE', k, 'abc', 'FOO'], 'error: ERR Unsupported option FOO'],
      [['EXPIRE', k, 10, 'NX', 'XX'], 'error: ERR NX and XX, GT or LT options at the same time are not compatible'],
      [['EXPIRE', k, 10, 'nx', 'gt'], 'error: ERR NX and XX, GT or LT options at the same time are not compatible'],
      [['EXPIRE', k, 10, 'XX', 'NX'], 'error: ERR NX and XX, GT or LT options at the same time are not compatible'],
      [['EXPIRE', k, 10, 'GT', 'LT'], 'error: ERR GT and LT options at the same time are not compatible'],
      [['EXPIRE', k, '9223372036854776'], invalid('expire')],
      [['EXPIRE', k, '-9223372036854776'], invalid('expire')],
      [['EXPIRE', k, '9223370399119966'], invalid('expire')],
      [['PEXPIRE', k, '9223372036854770000'], invalid('pexpire')],
      [['EXPIREAT', k, '9223372036854776'], invalid('expireat')],
      [['EXPIRE', k], "error: ERR wrong number of arguments for 'expire' command"],
    ]
    for (const [args, expected] of cases) expect([args, await reply(r, ...args)]).toEqual([args, expected])
    expect(await r.call('PEXPIRETIME', k)).toBe(t + 600_123)

    // Zero, negative or past: the key is deleted, and the answer is 1.
    for (const args of [['EXPIRE', k, 0], ['EXPIRE', k, -5], ['PEXPIRE', k, 0], ['EXPIREAT', k, seconds(clock.now) - 1], ['PEXPIREAT', k, clock.now], ['PEXPIREAT', k, '-9223372036854770000']]) {
      await r.set(k, '1')
      expect([args, await reply(r, ...args)]).toEqual([args, 1])
      expect([args, await r.exists(k)]).toEqual([args, 0])
    }
    // Expired meanwhile: 0.
    await r.set(k, '1', 'PX', 100)
    clock.advance(100)
    expect(await r.expire(k, 100)).toBe(0)
    expect(await r.exists(k)).toBe(0)
    // A time beyond what the engine stores (2^53 - 1 ms) is stored as that.
    await r.set(k, '1')
    expect(await r.pexpireat(k, '9223372036854770000')).toBe(1)
    // (ioredis reads integers of more than 15 digits inexactly unless asked for strings.)
    expect(await client({ protocol, stringNumbers: true }).call('PEXPIRETIME', k)).toBe(String(Number.MAX_SAFE_INTEGER))
  })

  it('EXPIRE NX, XX, GT and LT (no TTL counts as infinite)', async () => {
    const r = client({ protocol })
    const k = `${p}flags`
    await r.set(k, 'v')
    const steps: Array<[Array<string | number>, number, number]> = [
      // [command, reply, TTL after]
      [['EXPIRE', k, 100, 'XX'], 0, -1],
      [['EXPIRE', k, 100, 'GT'], 0, -1],
      [['EXPIRE', k, 100, 'NX'], 1, 100],
      [['EXPIRE', k, 200, 'NX'], 0, 100],
      [['EXPIRE', k, 200, 'XX'], 1, 200],
      [['EXPIRE', k, 200, 'GT'], 0, 200],
      [['EXPIRE', k, 300, 'LT'], 0, 200],
      [['EXPIRE', k, 50, 'GT'], 0, 200],
      [['EXPIRE', k, 50, 'LT'], 1, 50],
      [['EXPIRE', k, 60, 'GT'], 1, 60],
      [['EXPIRE', k, 70, 'XX', 'GT'], 1, 70],
      [['EXPIRE', k, 10, 'XX', 'LT'], 1, 10],
      [['PERSIST', k], 1, -1],
      [['EXPIRE', k, 30, 'LT'], 1, 30],
      [['PERSIST', k], 1, -1],
      [['EXPIRE', k, -1, 'GT'], 0, -1],
      // LT with no TTL passes, and a negative time deletes.
      [['EXPIRE', k, -1, 'LT'], 1, -2],
    ]
    for (const [args, expected, ttl] of steps) expect([args, await reply(r, ...args), await r.ttl(k)]).toEqual([args, expected, ttl])
  })

  it('PERSIST: 1 when a TTL was removed, else 0; the value stays', async () => {
    const r = client({ protocol })
    const k = `${p}persist`
    expect(await r.persist(`${p}missing`)).toBe(0)
    await r.set(k, 'v')
    expect(await r.persist(k)).toBe(0)
    await r.expire(k, 50)
    expect(await r.persist(k)).toBe(1)
    expect(await r.ttl(k)).toBe(-1)
    expect(await r.get(k)).toBe('v')
    clock.advance(60_000)
    expect(await r.get(k)).toBe('v')
    expect(await reply(r, 'PERSIST')).toBe("error: ERR wrong number of arguments for 'persist' command")
  })

  it('commands that modify a value keep its TTL; those that replace it drop it', async () => {
    const r = client({ protocol })
    const k = `${p}counter`
    await r.set(k, '5', 'EX', 100)
    expect(await r.incr(k)).toBe(6)
    expect(await r.incrby(k, 3)).toBe(9)
    expect(await r.decr(k)).toBe(8)
    expect(await r.decrby(k, 2)).toBe(6)
    expect(await r.append(k, 'x')).toBe(2)
    expect(await r.get(k)).toBe('6x')
    expect(await r.ttl(k)).toBe(100)
    expect(await r.getset(k, 'z')).toBe('6x')
    expect(await r.ttl(k)).toBe(-1)
    await r.set(k, '1', 'EX', 100)
    await r.mset(k, '2')
    expect(await r.ttl(k)).toBe(-1)
    await r.set(k, '1', 'EX', 100)
    expect(await r.setnx(k, '3')).toBe(0)
    expect(await r.msetnx(k, '3', `${p}other`, '4')).toBe(0)
    expect(await r.ttl(k)).toBe(100)
    expect(await r.getdel(k)).toBe('1')
    expect(await r.ttl(k)).toBe(-2)
    // An INCR of a key that has expired starts from nothing, without TTL.
    await r.set(k, '41', 'PX', 5)
    clock.advance(5)
    expect(await r.incr(k)).toBe(1)
    expect(await r.ttl(k)).toBe(-1)
  })
})

describe('an expired key is absent for every command', () => {
  const own = new ManualClock()
  const ownClients = new RedisClients()
  let s: RunningServer
  beforeAll(async () => {
    s = await start(own)
  })
  afterAll(async () => {
    await ownClients.closeAll()
    await s.stop()
  })

  it('GET, MGET, EXISTS, TYPE, STRLEN, GETRANGE, DBSIZE, SCAN, KEYS, DEL, SETNX, SET NX/XX, EXPIRE, PERSIST, APPEND', async () => {
    const r = ownClients.connect(s.port)
    await r.mset('a:1', 'x', 'a:2', 'y', 'a:3', 'z')
    await r.pexpire('a:1', 1000)
    await r.call('PEXPIRE', 'a:2', '2000')
    expect(await r.dbsize()).toBe(3)
    own.advance(1000)
    expect(await r.get('a:1')).toBeNull()
    expect(await r.mget('a:1', 'a:2', 'a:3')).toEqual([null, 'y', 'z'])
    expect(await r.exists('a:1', 'a:2')).toBe(1)
    expect(await r.type('a:1')).toBe('none')
    expect(await r.strlen('a:1')).toBe(0)
    expect(await r.getrange('a:1', 0, -1)).toBe('')
    expect(await r.dbsize()).toBe(2)
    expect(await r.scan('0', 'COUNT', 100)).toEqual(['0', ['a:2', 'a:3']])
    expect((await r.keys('a:*')).sort()).toEqual(['a:2', 'a:3'])
    expect(await r.keys('a:1')).toEqual([])
    own.advance(1000)
    expect(await r.dbsize()).toBe(1)
    expect(await r.scan('0', 'MATCH', 'a:*')).toEqual(['0', ['a:3']])
    expect(await r.del('a:1', 'a:2')).toBe(0)
    expect(await r.expire('a:2', 10)).toBe(0)
    expect(await r.persist('a:2')).toBe(0)
    expect(await r.set('a:2', 'n', 'XX')).toBeNull()
    expect(await r.setnx('a:1', 'new')).toBe(1)
    expect(await r.ttl('a:1')).toBe(-1)
    expect(await r.set('a:2', 'n', 'NX')).toBe('OK')
    await r.set('a:4', 'q', 'PX', 1)
    own.advance(1)
    expect(await r.append('a:4', 'w')).toBe(1)
    expect(await r.get('a:4')).toBe('w')
    expect(await r.dbsize()).toBe(4)
  })
})

describe('MULTI/EXEC and WATCH', () => {
  it('runs the expiry commands inside a transaction, seeing its own writes', async () => {
    const r = client()
    const t = clock.now
    await r.del('tx:a', 'tx:b', 'tx:c')
    const replies = await r
      .multi()
      .set('tx:a', 'v', 'EX', 10)
      .ttl('tx:a')
      .expire('tx:a', 100)
      .pttl('tx:a')
      .persist('tx:a')
      .ttl('tx:a')
      .setex('tx:b', 5, 'x')
      .call('GETEX', 'tx:b', 'PXAT', String(t + 7000))
      .call('PEXPIRETIME', 'tx:b')
      .set('tx:c', 'v', 'PXAT', String(t))
      .get('tx:c')
      .call('EXPIRE', 'tx:a', '10', 'FOO')
      .exec()
    expect(replies?.map(([e, v]) => (e === null ? v : `error: ${e.message}`))).toEqual([
      'OK',
      10,
      1,
      100_000,
      1,
      -1,
      'OK',
      'x',
      t + 7000,
      'OK',
      null,
      'error: ERR Unsupported option FOO',
    ])
    expect(await r.ttl('tx:a')).toBe(-1)
    expect(await r.pttl('tx:b')).toBe(7000)
    expect(await r.exists('tx:c')).toBe(0)
  })

  it('EXEC aborts when a watched key expires or has its TTL changed, as Redis 7; not when a TTL command changes nothing', async () => {
    const a = client()
    const b = client()
    const watchExec = async (setup: string[], between: () => Promise<unknown>): Promise<unknown> => {
      await a.call('SET', 'w:k', 'v', ...setup)
      await a.watch('w:k')
      await between()
      return a.multi().set('w:other', '1').exec()
    }
    expect(await watchExec(['PX', '100'], async () => clock.advance(100))).toBeNull()
    expect(await watchExec([], () => b.expire('w:k', 100))).toBeNull()
    expect(await watchExec([], () => b.persist('w:k'))).toEqual([[null, 'OK']])
    expect(await watchExec(['EX', '100'], () => b.persist('w:k'))).toBeNull()
    expect(await watchExec(['EX', '100'], () => b.expire('w:k', 10, 'GT'))).toEqual([[null, 'OK']])
    expect(await watchExec(['EX', '100'], () => b.call('GETEX', 'w:k'))).toEqual([[null, 'OK']])
    expect(await watchExec(['EX', '100'], () => b.ttl('w:k'))).toEqual([[null, 'OK']])
  })
})

describe('TTL changes are atomic read-modify-writes', () => {
  it('a SET racing EXPIRE and PERSIST from another client is never lost; INCRs racing them are all counted', async () => {
    const setter = client()
    const ttler = client()
    const n = 300
    const sets = setter.pipeline()
    const ttls = ttler.pipeline()
    for (let i = 0; i < n; i++) {
      sets.set('race:k', `v${i}`)
      sets.incr('race:n')
      if (i % 2 === 0) ttls.expire('race:k', 1000).pexpire('race:n', 1_000_000)
      else ttls.persist('race:k').call('GETEX', 'race:n', 'EX', '2000')
    }
    const [s, t] = await Promise.all([sets.exec(), ttls.exec()])
    expect(s?.every(([e]) => e === null)).toBe(true)
    expect(t?.every(([e]) => e === null)).toBe(true)
    // A TTL change rewrites the value it read: had one read an older value and been applied after a later SET, that SET would be lost.
    expect(await setter.get('race:k')).toBe(`v${n - 1}`)
    expect(await setter.get('race:n')).toBe(String(n))
  })

  it('a key that expires between the read and the commit: the command runs again on what is left instead of failing', async () => {
    const r = client()
    const db = main.server.db
    const original = db.getEntry.bind(db)
    const raced = new Set<string>()
    // The first read of each `race2:` key with an expiry moves the clock to its expiry: it expires before the commit.
    db.getEntry = async (key): Promise<Entry | undefined> => {
      const e = await original(key)
      const name = String(key)
      if (name.startsWith('race2:') && e?.expiresAt !== undefined && !raced.has(name)) {
        raced.add(name)
        clock.now = Math.max(clock.now, e.expiresAt)
      }
      return e
    }
    try {
      await r.set('race2:expire', 'v', 'PX', 1000)
      expect(await r.expire('race2:expire', 100)).toBe(0)
      expect(await r.exists('race2:expire')).toBe(0)
      await r.set('race2:incr', '5', 'PX', 1000)
      expect(await r.incr('race2:incr')).toBe(1)
      expect(await r.ttl('race2:incr')).toBe(-1)
      await r.set('race2:keep', 'old', 'PX', 1000)
      expect(await r.call('SET', 'race2:keep', 'new', 'KEEPTTL', 'GET')).toBeNull()
      expect(await r.ttl('race2:keep')).toBe(-1)
      await r.set('race2:exec', '5', 'PX', 1000)
      expect(await r.multi().incr('race2:exec').exec()).toEqual([[null, 1]])
      // Each of the four commands met the race (without the second run, each would answer a conflict error).
      expect(raced.size).toBe(4)
    } finally {
      delete (db as Partial<typeof db>).getEntry
    }
    expect(main.logs.filter((l) => /failed/.test(l))).toEqual([])
  })
})

describe('COMMAND', () => {
  it('reports the expiry commands as Redis 7 does', async () => {
    const r = client({ protocol: 2 })
    const names = ['setex', 'psetex', 'getex', 'expire', 'pexpire', 'expireat', 'pexpireat', 'persist', 'ttl', 'pttl', 'expiretime', 'pexpiretime']
    const infos = (await r.call('COMMAND', 'INFO', ...names)) as unknown[][]
    const summary = infos.map((i) => [...i.slice(0, 6), [...(i[6] as string[])].sort()])
    expect(summary).toEqual([
      ['setex', 4, ['write', 'denyoom'], 1, 1, 1, ['@slow', '@string', '@write']],
      ['psetex', 4, ['write', 'denyoom'], 1, 1, 1, ['@slow', '@string', '@write']],
      ['getex', -2, ['write', 'fast'], 1, 1, 1, ['@fast', '@string', '@write']],
      ...['expire', 'pexpire', 'expireat', 'pexpireat'].map((n) => [n, -3, ['write', 'fast'], 1, 1, 1, ['@fast', '@keyspace', '@write']]),
      ['persist', 2, ['write', 'fast'], 1, 1, 1, ['@fast', '@keyspace', '@write']],
      ...['ttl', 'pttl', 'expiretime', 'pexpiretime'].map((n) => [n, 2, ['readonly', 'fast'], 1, 1, 1, ['@fast', '@keyspace', '@read']]),
    ])
  })
})

describe('HTTP', () => {
  const url = (key: string, query = ''): string => `${base}/v1/kv/${key}${query}`

  it('PUT ?ttlMs= and ?expiresAt= set the expiry; GET, HEAD, 304 and the PUT answer it in Strata-Expires-At', async () => {
    const t = clock.now
    const put = await fetch(url('h:ttl', '?ttlMs=5000'), { method: 'PUT', body: 'v' })
    expect(put.status).toBe(204)
    expect(put.headers.get('strata-expires-at')).toBe(String(t + 5000))
    const etag = put.headers.get('etag')!
    const get = await fetch(url('h:ttl'))
    expect(get.status).toBe(200)
    expect(await get.text()).toBe('v')
    expect(get.headers.get('strata-expires-at')).toBe(String(t + 5000))
    expect(get.headers.get('etag')).toBe(etag)
    const head = await fetch(url('h:ttl'), { method: 'HEAD' })
    expect(head.headers.get('strata-expires-at')).toBe(String(t + 5000))
    const notModified = await fetch(url('h:ttl'), { headers: { 'If-None-Match': etag } })
    expect(notModified.status).toBe(304)
    expect(notModified.headers.get('strata-expires-at')).toBe(String(t + 5000))
    // RESP sees the same expiry.
    expect(await client().pttl('h:ttl')).toBe(5000)

    const at = await fetch(url('h:at', `?expiresAt=${t + 60_000}&sync=1`), { method: 'PUT', body: 'w' })
    expect(at.status).toBe(204)
    expect(at.headers.get('strata-expires-at')).toBe(String(t + 60_000))
    expect((await fetch(url('h:at'))).headers.get('strata-expires-at')).toBe(String(t + 60_000))

    // A PUT without either stores a value that does not expire: the TTL is gone.
    const plain = await fetch(url('h:at'), { method: 'PUT', body: 'x' })
    expect(plain.headers.get('strata-expires-at')).toBeNull()
    const after = await fetch(url('h:at'))
    expect(after.headers.get('strata-expires-at')).toBeNull()
    expect(await after.text()).toBe('x')

    clock.advance(4999)
    expect((await fetch(url('h:ttl'))).status).toBe(200)
    clock.advance(1)
    const gone = await fetch(url('h:ttl'))
    expect(gone.status).toBe(404)
    expect(((await gone.json()) as { code: string }).code).toBe('STRATA_NOT_FOUND')
    // If-None-Match: * creates it again (an expired key is absent for conditions too).
    expect((await fetch(url('h:ttl'), { method: 'PUT', body: 'again', headers: { 'If-None-Match': '*' } })).status).toBe(204)
  })

  it('a TTL change over RESP is a new version with the expiry; a past expiresAt writes a value already expired', async () => {
    const r = client()
    await fetch(url('h:resp'), { method: 'PUT', body: 'v' })
    const before = await fetch(url('h:resp'))
    expect(before.headers.get('strata-expires-at')).toBeNull()
    expect(await r.expire('h:resp', 30)).toBe(1)
    const after = await fetch(url('h:resp'))
    expect(after.headers.get('strata-expires-at')).toBe(String(clock.now + 30_000))
    expect(after.headers.get('etag')).not.toBe(before.headers.get('etag'))
    expect(await after.text()).toBe('v')

    const past = await fetch(url('h:past', `?expiresAt=${clock.now}`), { method: 'PUT', body: 'v' })
    expect(past.status).toBe(204)
    expect(past.headers.get('etag')).toBeNull()
    expect((await fetch(url('h:past'))).status).toBe(404)
  })

  it('400 for a malformed ttlMs or expiresAt, both at once, or either outside PUT', async () => {
    const bad: Array<[string, string]> = [
      ['PUT', '?ttlMs=0'],
      ['PUT', '?ttlMs=-1'],
      ['PUT', '?ttlMs=abc'],
      ['PUT', '?ttlMs=1.5'],
      ['PUT', '?ttlMs='],
      ['PUT', '?ttlMs=9007199254740992'],
      ['PUT', '?expiresAt=0'],
      ['PUT', '?expiresAt=1e12'],
      ['PUT', '?ttlMs=10&expiresAt=99999999999999'],
      ['DELETE', '?ttlMs=10'],
      ['GET', '?expiresAt=10'],
    ]
    for (const [method, query] of bad) {
      const res = await fetch(url('h:bad', query), { method, body: method === 'PUT' ? 'v' : undefined })
      const body = (await res.json()) as { code: string; message: string }
      expect([method, query, res.status, body.code]).toEqual([method, query, 400, 'STRATA_INVALID_ARGUMENT'])
      expect(body.message).toMatch(/ttlMs|expiresAt/)
    }
    expect((await fetch(url('h:bad'))).status).toBe(404)
  })

  it('batch puts take ttlMs or expiresAt', async () => {
    const t = clock.now
    const post = (ops: unknown): Promise<Response> => fetch(`${base}/v1/batch`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(ops) })
    const ok = await post([
      { type: 'put', key: 'hb:ttl', value: 'a', ttlMs: 1000 },
      { type: 'put', key: 'hb:at', value: 'b', expiresAt: t + 2000 },
      { type: 'put', key: 'hb:plain', value: 'c' },
    ])
    expect(ok.status).toBe(200)
    expect((await fetch(url('hb:ttl'))).headers.get('strata-expires-at')).toBe(String(t + 1000))
    expect((await fetch(url('hb:at'))).headers.get('strata-expires-at')).toBe(String(t + 2000))
    expect((await fetch(url('hb:plain'))).headers.get('strata-expires-at')).toBeNull()
    for (const op of [
      { type: 'put', key: 'hb:x', value: 'a', ttlMs: 0 },
      { type: 'put', key: 'hb:x', value: 'a', ttlMs: '5' },
      { type: 'put', key: 'hb:x', value: 'a', expiresAt: 1.5 },
      { type: 'put', key: 'hb:x', value: 'a', ttlMs: 5, expiresAt: t + 5 },
      { type: 'del', key: 'hb:x', ttlMs: 5 },
      { type: 'check', key: 'hb:x', ifVersion: 0, expiresAt: t + 5 },
    ]) {
      const res = await post([op])
      expect([op, res.status, ((await res.json()) as { code: string }).code]).toEqual([op, 400, 'STRATA_INVALID_ARGUMENT'])
    }
    clock.advance(1000)
    expect((await fetch(url('hb:ttl'))).status).toBe(404)
    expect((await fetch(url('hb:at'))).status).toBe(200)
  })
})
