/**
 * Unit tests of the server's building blocks: the RESP parser (fragmented
 * input, limits, inline quoting), Redis glob patterns, key locks, the write
 * gate, HTTP encodings and the loopback / token rules.
 */
import { describe, expect, it } from 'vitest'
import { isLoopbackHost, parseListenAddress } from '../src/server/shared/address.js'
import { checkExposure } from '../src/server/shared/auth.js'
import { decodeCursor, encodeCursor, parseEtagList, parseQuery, percentDecode, percentEncode } from '../src/server/http/encoding.js'
import { globMatch, isLiteral, literalPrefix, prefixEnd } from '../src/server/resp/glob.js'
import { KeyLocks } from '../src/server/shared/key-locks.js'
import { OutputBuffer, MapReply, NullArray, SimpleString, ErrorReply } from '../src/server/resp/reply.js'
import { RespParser, RespProtocolError, splitInline } from '../src/server/resp/parser.js'
import { ScanCursors } from '../src/server/resp/scan-cursors.js'
import { WriteBatcher } from '../src/server/resp/write-batcher.js'
import { WriteGate } from '../src/server/shared/write-gate.js'
import type { BatchOp, Database } from '../src/index.js'
import { rng } from './unit/helpers.js'

const LIMITS = { maxBulkBytes: 1 << 20, maxArgs: 1000, maxInlineBytes: 1024, maxCommandBytes: 4 << 20 }

function encodeCommand(args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

function parseAll(p: RespParser): string[][] {
  const out: string[][] = []
  for (let c = p.next(); c !== undefined; c = p.next()) out.push(c.map((a) => a.toString('latin1')))
  return out
}

describe('RESP parser', () => {
  it('parses multibulk and inline commands, whatever the fragmentation', () => {
    const big = Buffer.alloc(200_000, 0x61)
    const stream = Buffer.concat([
      encodeCommand(['SET', 'k', 'v']),
      Buffer.from('PING\r\n'),
      Buffer.from('\r\n'), // blank line: ignored
      encodeCommand(['SET', 'big', big]),
      Buffer.from('*0\r\n'), // ignored, as Redis
      Buffer.from('ECHO "a b\\x41\\n" \'c d\'\n'),
      encodeCommand(['GET', Buffer.from([0, 13, 10, 255])]),
    ])
    const expected = [['SET', 'k', 'v'], ['PING'], ['SET', 'big', big.toString('latin1')], ['ECHO', 'a bA\n', 'c d'], ['GET', '\x00\r\n\xff']]
    const random = rng(7)
    for (const mode of ['whole', 'bytes', 'random']) {
      const p = new RespParser(LIMITS)
      const got: string[][] = []
      if (mode === 'whole') {
        p.push(Buffer.from(stream))
        got.push(...parseAll(p))
      } else {
        let i = 0
        while (i < stream.length) {
          // Byte by byte through the small commands; larger pieces through the big value.
          const n = mode === 'bytes' ? (i > 60 && i < 200_000 ? 4096 : 1) : 1 + Math.floor(random() * 3000)
          p.push(Buffer.from(stream.subarray(i, i + n)))
          i += n
          got.push(...parseAll(p))
        }
      }
      expect(got, mode).toEqual(expected)
      expect(p.bufferedBytes).toBe(0)
    }
  })

  it('rejects oversized and malformed input with Redis messages, and stays failed', () => {
    const cases: Array<[string | Buffer, RegExp]> = [
      [`*${LIMITS.maxArgs + 1}\r\n`, /invalid multibulk length/],
      ['*abc\r\n', /invalid multibulk length/],
      [`*1\r\n$${LIMITS.maxBulkBytes + 1}\r\n`, /invalid bulk length/],
      ['*1\r\n$-1\r\n', /invalid bulk length/],
      ['*1\r\n:5\r\n', /expected '\$', got ':'/],
      ['*1\r\n$3\r\nabcXY', /not terminated by CRLF/],
      [Buffer.alloc(LIMITS.maxInlineBytes + 10, 0x61), /too big inline request/],
      ['SET "abc\r\n', /unbalanced quotes/],
      ['SET "abc"def\r\n', /unbalanced quotes/],
      [Buffer.concat([Buffer.from('*'), Buffer.alloc(70 * 1024, 0x31)]), /too big multibulk count string/],
    ]
    for (const [input, message] of cases) {
      const p = new RespParser(LIMITS)
      p.push(Buffer.from(input))
      expect(() => p.next(), String(input).slice(0, 40)).toThrow(message)
      expect(() => p.next()).toThrow(RespProtocolError)
    }
    // maxCommandBytes: the sum of the arguments.
    const p = new RespParser({ ...LIMITS, maxCommandBytes: 10 })
    p.push(encodeCommand(['SET', 'key', 'value!']))
    expect(() => p.next()).toThrow(/command larger than 10 bytes/)
  })

  it('buffers no more than one incomplete piece, and receives large values directly', () => {
    const p = new RespParser(LIMITS)
    const value = Buffer.alloc(500_000, 0x62)
    const cmd = encodeCommand(['SET', 'k', value])
    for (let i = 0; i < cmd.length; i += 1000) {
      p.push(cmd.subarray(i, i + 1000))
      const c = p.next()
      if (i + 1000 < cmd.length) {
        expect(c).toBeUndefined()
        expect(p.bufferedBytes).toBeLessThanOrEqual(i + 1000)
      } else {
        expect(c?.[2].equals(value)).toBe(true)
      }
    }
  })

  it('allocates for a large bulk string only as its bytes arrive', () => {
    const p = new RespParser(LIMITS)
    p.push(Buffer.from(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${LIMITS.maxBulkBytes}\r\nxyz`))
    expect(p.next()).toBeUndefined()
    expect(p.allocatedBytes).toBeLessThanOrEqual(64 * 1024)
    const rest = Buffer.alloc(LIMITS.maxBulkBytes - 3, 0x7a)
    for (let i = 0; i < rest.length; i += 100_000) p.push(rest.subarray(i, i + 100_000))
    p.push(Buffer.from('\r\n'))
    const cmd = p.next()!
    expect(cmd[2].length).toBe(LIMITS.maxBulkBytes)
    expect(cmd[2].subarray(0, 4).toString()).toBe('xyzz')
  })

  it('splits inline arguments like sdssplitargs', () => {
    const s = (x: string): string[] => splitInline(Buffer.from(x, 'latin1')).map((b) => b.toString('latin1'))
    expect(s('  set  a   b ')).toEqual(['set', 'a', 'b'])
    expect(s('"\\x00\\xff\\t" \'it\\\'s\' ""')).toEqual(['\x00\xff\t', "it's", ''])
    expect(() => s('"open')).toThrow(/unbalanced/)
    expect(() => s("'open")).toThrow(/unbalanced/)
  })
})

describe('RESP replies', () => {
  it('encodes RESP2 and RESP3', () => {
    const enc = (r: Parameters<OutputBuffer['reply']>[0], proto: 2 | 3): string => {
      const o = new OutputBuffer()
      o.reply(r, proto)
      return Buffer.concat(o.take()).toString('latin1')
    }
    expect(enc(null, 2)).toBe('$-1\r\n')
    expect(enc(null, 3)).toBe('_\r\n')
    expect(enc(NullArray.instance, 2)).toBe('*-1\r\n')
    expect(enc(new MapReply([['a', 1]]), 2)).toBe('*2\r\n$1\r\na\r\n:1\r\n')
    expect(enc(new MapReply([['a', 1]]), 3)).toBe('%1\r\n$1\r\na\r\n:1\r\n')
    expect(enc([new SimpleString('OK'), new ErrorReply('ERR a\r\nb'), 'é', Buffer.alloc(10_000, 0x61)], 2)).toBe(
      `*4\r\n+OK\r\n-ERR a b\r\n$2\r\né\r\n$10000\r\n${'a'.repeat(10_000)}\r\n`.replace('é', '\xc3\xa9'),
    )
  })
})

describe('glob patterns', () => {
  const m = (p: string, s: string): boolean => globMatch(Buffer.from(p, 'latin1'), Buffer.from(s, 'latin1'))
  it('matches like Redis', () => {
    expect(m('*', '')).toBe(true)
    expect(m('h?llo', 'hello')).toBe(true)
    expect(m('h?llo', 'hllo')).toBe(false)
    expect(m('h*llo', 'heeeello')).toBe(true)
    expect(m('h[ae]llo', 'hallo')).toBe(true)
    expect(m('h[^e]llo', 'hello')).toBe(false)
    expect(m('h[a-b]llo', 'hbllo')).toBe(true)
    expect(m('h[b-a]llo', 'hbllo')).toBe(true)
    expect(m('h\\*llo', 'h*llo')).toBe(true)
    expect(m('h\\*llo', 'hello')).toBe(false)
    expect(m('user:*:name', 'user:42:name')).toBe(true)
    expect(m('a[', 'a[')).toBe(false) // an unterminated class matches nothing, as in Redis
  })
  it('gives up on pathological patterns instead of hanging', () => {
    const started = performance.now()
    expect(m('*a*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(5000))).toBe(false)
    expect(performance.now() - started).toBeLessThan(2000)
  })
  it('derives the literal prefix and its end', () => {
    expect(literalPrefix(Buffer.from('user:\\*x*')).toString()).toBe('user:*x')
    expect(isLiteral(Buffer.from('abc\\?'))).toBe(true)
    expect(isLiteral(Buffer.from('ab?'))).toBe(false)
    expect(prefixEnd(Buffer.from([0x61, 0xff]))).toEqual(Buffer.from([0x62]))
    expect(prefixEnd(Buffer.from([0xff]))).toBeUndefined()
  })
})

describe('key locks', () => {
  it('serializes exclusive holders and lets blind writers in only between them', async () => {
    const locks = new KeyLocks()
    const log: string[] = []
    const r1 = await locks.acquire(['a', 'b'])
    const second = locks.acquire(['b']).then((r) => {
      log.push('x2')
      return r
    })
    const blind = locks.whenFree(['a'], () => {
      log.push('blind')
      return 7
    })
    expect(blind).toBeInstanceOf(Promise)
    expect(locks.whenFree(['c'], () => 'free')).toBe('free')
    log.push('release1')
    r1()
    expect(await blind).toBe(7)
    const r2 = await second
    expect(locks.isLocked('b')).toBe(true)
    r2()
    expect(locks.heldCount).toBe(0)
    expect(log).toEqual(['release1', 'blind', 'x2'])
  })

  it('takes free keys at once with tryAcquire, and nothing when one is held', async () => {
    const locks = new KeyLocks()
    const seen: string[][] = []
    locks.onAcquired = (ids) => seen.push([...ids])
    const r1 = locks.tryAcquire(['a', 'b', 'a'])!
    expect(r1).toBeTypeOf('function')
    expect(locks.isLocked('a') && locks.isLocked('b')).toBe(true)
    expect(locks.tryAcquire(['c', 'b'])).toBeUndefined()
    expect(locks.isLocked('c')).toBe(false)
    const waiting = locks.acquire(['b'])
    r1()
    const r2 = await waiting
    expect(locks.tryAcquire(['b'])).toBeUndefined()
    r2()
    expect(locks.heldCount).toBe(0)
    expect(seen).toEqual([['a', 'b'], ['b']])
  })

  it('never deadlocks with overlapping multi-key holders', async () => {
    const locks = new KeyLocks()
    const random = rng(3)
    const keys = ['a', 'b', 'c', 'd']
    let inside = 0
    const tasks = Array.from({ length: 200 }, async () => {
      const mine = keys.filter(() => random() < 0.5)
      const release = await locks.acquire(mine.reverse())
      inside++
      await new Promise((r) => setImmediate(r))
      inside--
      release()
    })
    await Promise.all(tasks)
    expect(inside).toBe(0)
    expect(locks.heldCount).toBe(0)
  })
})

describe('write gate', () => {
  it('refuses past maxPendingWrites and while writes are stalled', async () => {
    let now = 0
    const gate = new WriteGate(2, 100, () => now)
    let finish!: () => void
    const stuck = new Promise<void>((r) => (finish = r))
    expect(gate.admit()).toBeUndefined()
    gate.track(stuck)
    gate.track(Promise.resolve())
    expect(gate.admit()?.message).toMatch(/2 writes are already in flight/)
    await Promise.resolve()
    await Promise.resolve()
    expect(gate.pending).toBe(1)
    now = 50
    expect(gate.admit()).toBeUndefined()
    now = 500
    expect(gate.admit()?.message).toMatch(/stalled/)
    finish()
    await stuck
    await Promise.resolve()
    expect(gate.pending).toBe(0)
    expect(gate.admit()).toBeUndefined()
    expect(gate.refused).toBe(2)
  })
})

describe('write batcher', () => {
  /** A database double that logs calls; a batch holding a check of key "bad" fails as a whole. */
  function fakeDb(log: string[]): Database {
    const name = (ops: readonly BatchOp[]): string => ops.map((o) => `${o.type}:${String(o.key)}`).join(',')
    return {
      put: (k: Buffer) => {
        log.push(`put ${String(k)}`)
        return k.length === 0 ? Promise.reject(new Error('empty key')) : Promise.resolve()
      },
      batch: (ops: readonly BatchOp[]) => {
        log.push(`batch ${name(ops)}`)
        return ops.some((o) => o.type === 'check' && String(o.key) === 'bad') ? Promise.reject(new Error('conflict')) : Promise.resolve()
      },
    } as unknown as Database
  }
  const LIMITS = { maxKeyBytes: 10, maxValueBytes: 10 }
  const settle = (p: Promise<void>): Promise<string> => p.then(() => 'ok', (e: Error) => e.message)

  it('commits the writes of a turn as one batch, in order, and resolves each', async () => {
    const log: string[] = []
    const b = new WriteBatcher(fakeDb(log), LIMITS)
    const g = b.generation
    const all = [b.put(Buffer.from('a'), Buffer.from('1')), b.batch([{ type: 'put', key: Buffer.from('b'), value: Buffer.from('2') }]), b.put(Buffer.from('c'), Buffer.from('3'))]
    expect(b.pending).toBe(3)
    expect(b.queuedSince(g)).toBe(true)
    expect(log).toEqual([])
    expect(await Promise.all(all.map(settle))).toEqual(['ok', 'ok', 'ok'])
    expect(log).toEqual(['batch put:a,put:b,put:c'])
    expect(b.queuedSince(g)).toBe(false)
  })

  it('refuses invalid writes at once, without queueing them', async () => {
    const log: string[] = []
    const b = new WriteBatcher(fakeDb(log), LIMITS)
    const empty = settle(b.put(Buffer.alloc(0), Buffer.from('x')))
    expect(b.pending).toBe(0)
    expect(await empty).toBe('empty key')
    expect(log).toEqual(['put '])
  })

  it('gives every write of a failed batch its own outcome, in order', async () => {
    const log: string[] = []
    const b = new WriteBatcher(fakeDb(log), LIMITS)
    const a = settle(b.put(Buffer.from('a'), Buffer.from('1')))
    const bad = settle(b.batch([{ type: 'check', key: Buffer.from('bad'), ifVersion: 3 }, { type: 'put', key: Buffer.from('bad'), value: Buffer.from('x') }]))
    const c = settle(b.put(Buffer.from('c'), Buffer.from('3')))
    b.flush()
    expect(await Promise.all([a, bad, c])).toEqual(['ok', 'conflict', 'ok'])
    expect(log).toEqual(['batch put:a,check:bad,put:bad,put:c', 'put a', 'batch check:bad,put:bad', 'put c'])
  })

  it('settles a putThen write like a put: in the batch of the turn, on its own after a failed batch, at once when invalid', async () => {
    const log: string[] = []
    const b = new WriteBatcher(fakeDb(log), LIMITS)
    const viaCallback = (key: string, value: string): Promise<string> =>
      new Promise((resolve) =>
        b.putThen(
          Buffer.from(key),
          Buffer.from(value),
          undefined,
          () => resolve('ok'),
          (e: unknown) => resolve((e as Error).message),
        ),
      )
    const a = viaCallback('a', '1')
    const bad = settle(b.batch([{ type: 'check', key: Buffer.from('bad'), ifVersion: 3 }]))
    const c = viaCallback('c', '3')
    expect(b.pending).toBe(3)
    b.flush()
    expect(await Promise.all([a, bad, c])).toEqual(['ok', 'conflict', 'ok'])
    expect(log).toEqual(['batch put:a,check:bad,put:c', 'put a', 'batch check:bad', 'put c'])
    const empty = viaCallback('', 'x')
    expect(b.pending).toBe(0)
    expect(await empty).toBe('empty key')
    const d = viaCallback('d', '4')
    expect(await d).toBe('ok')
    expect(log.slice(4)).toEqual(['put ', 'put d'])
  })

  it('flushes early only for keys a queued write may touch', () => {
    const log: string[] = []
    const b = new WriteBatcher(fakeDb(log), LIMITS)
    void b.put(Buffer.from('k1'), Buffer.from('1'))
    b.flushIfTouching(['zz', 'other-key'])
    expect(b.pending).toBe(1) // (the filter is a hash: these two do not collide with k1)
    b.flushIfTouching(['x', 'k1'])
    expect(b.pending).toBe(0)
    expect(log).toEqual(['put k1'])
  })
})

describe('HTTP encodings', () => {
  it('percent-decodes keys to bytes', () => {
    expect(percentDecode('a%2Fb%00%FF', false)).toEqual(Buffer.from([0x61, 0x2f, 0x62, 0, 0xff]))
    expect(percentDecode('a+b', false)?.toString()).toBe('a+b')
    expect(percentDecode('a+b', true)?.toString()).toBe('a b')
    expect(percentDecode('%zz', false)).toBeUndefined()
    expect(percentDecode('%4', false)).toBeUndefined()
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    expect(percentDecode(percentEncode(all), false)).toEqual(all)
    expect(parseQuery('gte=a%20b&limit=3&keys').get('gte')?.toString()).toBe('a b')
    expect(() => parseQuery('gte=%')).toThrow(/malformed/)
  })
  it('parses ETag lists and cursors', () => {
    expect(parseEtagList('*', false)).toBe('*')
    expect(parseEtagList('"3", "17"', false)).toEqual([3, 17])
    expect(parseEtagList('W/"3"', false)).toEqual([])
    expect(parseEtagList('W/"3"', true)).toEqual([3])
    expect(parseEtagList('3', false)).toBeUndefined()
    const k = Buffer.from([0, 1, 255, 254])
    expect(decodeCursor(Buffer.from(encodeCursor(k)))).toEqual(k)
    expect(decodeCursor(Buffer.from('!!'))).toBeUndefined()
  })
})

describe('addresses and tokens', () => {
  it('parses listen addresses and tells loopback apart', () => {
    expect(parseListenAddress('127.0.0.1:0', 'x')).toEqual({ host: '127.0.0.1', port: 0 })
    expect(parseListenAddress('[::1]:80', 'x')).toEqual({ host: '::1', port: 80 })
    expect(parseListenAddress('7070', 'x')).toEqual({ host: '127.0.0.1', port: 7070 })
    expect(() => parseListenAddress('host:99999', 'x')).toThrow(/invalid port/)
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) expect(isLoopbackHost(h), h).toBe(true)
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '192.168.1.1']) expect(isLoopbackHost(h), h).toBe(false)
  })
  it('refuses a non-loopback address without a token, naming it', () => {
    const exposed = [{ name: 'HTTP', address: { host: '0.0.0.0', port: 7070 } }]
    expect(() => checkExposure(exposed, undefined)).toThrow(/refusing to start: HTTP 0\.0\.0\.0:7070 is not a loopback address.*--token-file/)
    expect(() => checkExposure(exposed, 'a-long-enough-token')).not.toThrow()
    expect(() => checkExposure([{ name: 'RESP', address: { host: '127.0.0.1', port: 1 } }], undefined)).not.toThrow()
  })
})

describe('SCAN cursors', () => {
  it('remembers cursors up to a byte bound, forgetting the oldest', () => {
    const c = new ScanCursors(1000)
    const first = c.save(Buffer.alloc(300, 1))
    const ids = [first, c.save(Buffer.alloc(300, 2)), c.save(Buffer.alloc(300, 3))]
    expect(c.load(ids[2])).toEqual(Buffer.alloc(300, 3))
    expect(c.load(first)).toBeUndefined()
    expect(c.load('0')).toBeNull()
    expect(c.load('abc')).toBeUndefined()
  })
})
