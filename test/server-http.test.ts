/**
 * The HTTP API, driven with fetch (undici) and raw sockets: values and
 * ETags, conditional writes, batches, streamed ranges with cursors and
 * backpressure, stats/metrics/healthz, authentication, and every limit
 * answered with its status and code.
 */
import * as net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startServer, type ServerOptionsInput, type StrataServer } from '../src/server/index.js'
import { tempDir } from './unit/helpers.js'

interface Running {
  server: StrataServer
  base: string
  logs: string[]
  stop: () => Promise<void>
}

async function start(options: ServerOptionsInput = {}): Promise<Running> {
  const t = tempDir('strata-http-')
  const logs: string[] = []
  const server = await startServer({ dir: t.dir, http: '127.0.0.1:0', resp: null, log: (l) => logs.push(l), ...options })
  return {
    server,
    base: `http://${server.http}`,
    logs,
    stop: async () => {
      await server.close()
      t.cleanup()
    },
  }
}

/** Percent-encodes every byte that is not unreserved (keys are bytes). */
function enc(key: string | Buffer): string {
  const b = typeof key === 'string' ? Buffer.from(key) : key
  return [...b].map((c) => (/[A-Za-z0-9_~-]/.test(String.fromCharCode(c)) ? String.fromCharCode(c) : `%${c.toString(16).padStart(2, '0')}`)).join('')
}

/** POST /v1/batch needs this (415 otherwise: a text/plain POST is what a cross-site page can send). */
const JSON_HEADERS = { 'Content-Type': 'application/json' }

async function json(r: Response): Promise<Record<string, unknown>> {
  expect(r.headers.get('content-type')).toMatch(/application\/json/)
  return (await r.json()) as Record<string, unknown>
}

/** One raw request; resolves with the whole response text once the server closes or `ms` passes. */
function raw(url: string, input: string | Buffer, ms = 2000): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const s = net.connect(Number(port), hostname)
    const chunks: Buffer[] = []
    const done = (): void => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks).toString('latin1'))
    }
    const timer = setTimeout(() => {
      s.destroy()
      done()
    }, ms)
    s.on('data', (c) => chunks.push(c))
    s.on('error', () => {})
    s.on('close', done)
    s.write(input)
  })
}

let m: Running
beforeAll(async () => {
  m = await start()
})
afterAll(async () => {
  await m.stop()
  expect(m.logs.filter((l) => /failed/.test(l))).toEqual([])
})

describe('/v1/kv', () => {
  it('puts, gets, heads and deletes raw values with ETags', async () => {
    const put = await fetch(`${m.base}/v1/kv/hello`, { method: 'PUT', body: 'world' })
    expect(put.status).toBe(204)
    const etag = put.headers.get('etag')!
    expect(etag).toMatch(/^"\d+"$/)
    const get = await fetch(`${m.base}/v1/kv/hello`)
    expect(get.status).toBe(200)
    expect(get.headers.get('etag')).toBe(etag)
    expect(get.headers.get('content-type')).toBe('application/octet-stream')
    expect(await get.text()).toBe('world')
    const head = await fetch(`${m.base}/v1/kv/hello`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.headers.get('content-length')).toBe('5')
    const put2 = await fetch(`${m.base}/v1/kv/hello`, { method: 'PUT', body: 'again' })
    expect(Number(JSON.parse(put2.headers.get('etag')!))).toBeGreaterThan(Number(JSON.parse(etag)))
    expect((await fetch(`${m.base}/v1/kv/hello`, { method: 'DELETE' })).status).toBe(204)
    const gone = await fetch(`${m.base}/v1/kv/hello`)
    expect(gone.status).toBe(404)
    expect(await json(gone)).toEqual({ code: 'STRATA_NOT_FOUND', message: 'no such key' })
    expect((await fetch(`${m.base}/v1/kv/hello`, { method: 'HEAD' })).status).toBe(404)
  })

  it('takes keys as percent-encoded bytes, slashes included, and binary values', async () => {
    const key = Buffer.from([0, 1, 0x2f, 0xff, 0x20, 0x3f, 0x23, 0x25])
    const value = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256))
    expect((await fetch(`${m.base}/v1/kv/${enc(key)}`, { method: 'PUT', body: value })).status).toBe(204)
    const got = Buffer.from(await (await fetch(`${m.base}/v1/kv/${enc(key)}`)).arrayBuffer())
    expect(got.equals(value)).toBe(true)
    expect((await fetch(`${m.base}/v1/kv/dir/sub/file`, { method: 'PUT', body: 'x' })).status).toBe(204)
    expect(await (await fetch(`${m.base}/v1/kv/dir%2Fsub%2Ffile`)).text()).toBe('x')
    expect((await fetch(`${m.base}/v1/kv/empty-value`, { method: 'PUT', body: '' })).status).toBe(204)
    const empty = await fetch(`${m.base}/v1/kv/empty-value`)
    expect(empty.status).toBe(200)
    expect(await empty.text()).toBe('')
  })

  it('honours If-Match and If-None-Match (412, 304)', async () => {
    const u = `${m.base}/v1/kv/cond`
    const created = await fetch(u, { method: 'PUT', body: 'v1', headers: { 'If-None-Match': '*' } })
    expect(created.status).toBe(204)
    const v1 = created.headers.get('etag')!
    const again = await fetch(u, { method: 'PUT', body: 'v1b', headers: { 'If-None-Match': '*' } })
    expect(again.status).toBe(412)
    expect(await json(again)).toMatchObject({ code: 'STRATA_PRECONDITION_FAILED', version: Number(JSON.parse(v1)) })
    const updated = await fetch(u, { method: 'PUT', body: 'v2', headers: { 'If-Match': v1 } })
    expect(updated.status).toBe(204)
    const v2 = updated.headers.get('etag')!
    expect((await fetch(u, { method: 'PUT', body: 'lost', headers: { 'If-Match': v1 } })).status).toBe(412)
    expect((await fetch(u, { method: 'PUT', body: 'v3', headers: { 'If-Match': `"999999", ${v2}` } })).status).toBe(204)
    expect((await fetch(`${m.base}/v1/kv/absent`, { method: 'PUT', body: 'x', headers: { 'If-Match': '*' } })).status).toBe(412)
    const cur = await fetch(u)
    const etag = cur.headers.get('etag')!
    expect(await cur.text()).toBe('v3')
    const notModified = await fetch(u, { headers: { 'If-None-Match': etag } })
    expect(notModified.status).toBe(304)
    expect((await fetch(u, { headers: { 'If-None-Match': v1 } })).status).toBe(200)
    expect((await fetch(u, { headers: { 'If-Match': v1 } })).status).toBe(412)
    expect((await fetch(u, { method: 'DELETE', headers: { 'If-Match': v1 } })).status).toBe(412)
    expect((await fetch(u, { method: 'DELETE', headers: { 'If-Match': etag } })).status).toBe(204)
    expect((await fetch(u)).status).toBe(404)
    expect((await fetch(u, { method: 'PUT', body: 'x', headers: { 'If-Match': 'garbage' } })).status).toBe(400)
  })

  it('gives exactly one of many racing create-only writers the key', async () => {
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => fetch(`${m.base}/v1/kv/race`, { method: 'PUT', body: `w${i}`, headers: { 'If-None-Match': '*' } })),
    )
    expect(results.filter((r) => r.status === 204)).toHaveLength(1)
    expect(results.filter((r) => r.status === 412)).toHaveLength(29)
    // Compare-and-swap increments: no lost update.
    await fetch(`${m.base}/v1/kv/counter`, { method: 'PUT', body: '0' })
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for (let done = 0; done < 8; ) {
          const r = await fetch(`${m.base}/v1/kv/counter`)
          const n = Number(await r.text())
          const w = await fetch(`${m.base}/v1/kv/counter`, { method: 'PUT', body: String(n + 1), headers: { 'If-Match': r.headers.get('etag')! } })
          if (w.status === 204) done++
          else expect(w.status).toBe(412)
        }
      }),
    )
    expect(await (await fetch(`${m.base}/v1/kv/counter`)).text()).toBe('48')
  })

  it('handles pipelined requests in order: a GET sees the PUT before it', async () => {
    const req = (method: string, body?: string, close = false): string =>
      `${method} /v1/kv/piped HTTP/1.1\r\nHost: 127.0.0.1\r\n${body === undefined ? '' : `Content-Length: ${body.length}\r\n`}${close ? 'Connection: close\r\n' : ''}\r\n${body ?? ''}`
    const text = await raw(m.base, req('PUT', 'one') + req('GET') + req('PUT', 'two') + req('GET') + req('DELETE') + req('GET', undefined, true))
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((x) => Number(x[1]))
    expect(statuses).toEqual([204, 200, 204, 200, 204, 404])
    expect(text.indexOf('one')).toBeLessThan(text.indexOf('two'))
    expect(text).toMatch(/\r\n\r\none/)
    expect(text).toMatch(/\r\n\r\ntwo/)
  })

  it('syncs a write with ?sync=1', async () => {
    const before = (await (await fetch(`${m.base}/v1/stats`)).json()) as { engine: { writes: { syncs: number } } }
    expect((await fetch(`${m.base}/v1/kv/synced?sync=1`, { method: 'PUT', body: 'x' })).status).toBe(204)
    const after = (await (await fetch(`${m.base}/v1/stats`)).json()) as { engine: { writes: { syncs: number } } }
    expect(after.engine.writes.syncs).toBeGreaterThan(before.engine.writes.syncs)
    expect((await fetch(`${m.base}/v1/kv/synced?sync=maybe`, { method: 'PUT', body: 'x' })).status).toBe(400)
  })
})

describe('/v1/batch', () => {
  it('applies put/del/check atomically with UTF-8 and base64 bytes, returning versions', async () => {
    await fetch(`${m.base}/v1/kv/b:old`, { method: 'PUT', body: 'x' })
    const r = await fetch(`${m.base}/v1/batch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        ops: [
          { type: 'put', key: 'b:text', value: 'héllo' },
          { type: 'put', keyBase64: Buffer.from([0, 255]).toString('base64'), valueBase64: Buffer.from([1, 2, 3]).toString('base64') },
          { type: 'del', key: 'b:old' },
          { type: 'check', key: 'b:never', ifVersion: 0 },
        ],
      }),
    })
    expect(r.status).toBe(200)
    const { versions } = (await json(r)) as { versions: number[] }
    expect(versions).toHaveLength(4)
    expect(versions[0]).toBeGreaterThan(0)
    expect(versions.slice(2)).toEqual([0, 0])
    expect(await (await fetch(`${m.base}/v1/kv/b%3Atext`)).text()).toBe('héllo')
    expect(Buffer.from(await (await fetch(`${m.base}/v1/kv/%00%FF`)).arrayBuffer())).toEqual(Buffer.from([1, 2, 3]))
    expect((await fetch(`${m.base}/v1/kv/b:old`)).status).toBe(404)
    expect((await fetch(`${m.base}/v1/kv/b:text`)).headers.get('etag')).toBe(`"${versions[0]}"`)
  })

  it('answers 409 naming the conflicting keys and writes nothing', async () => {
    const put = await fetch(`${m.base}/v1/kv/c:a`, { method: 'PUT', body: '1' })
    const va = Number(JSON.parse(put.headers.get('etag')!))
    const r = await fetch(`${m.base}/v1/batch`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify([
        { type: 'put', key: 'c:a', value: '2', ifVersion: va + 1000 },
        { type: 'put', key: 'c:b', value: '2', ifVersion: 0 },
        { type: 'check', keyBase64: Buffer.from([0xfe]).toString('base64'), ifVersion: 5 },
      ]),
    })
    expect(r.status).toBe(409)
    const body = await json(r)
    expect(body.code).toBe('STRATA_CONFLICT')
    expect(body.keys).toEqual(expect.arrayContaining([{ key: 'c:a' }, { keyBase64: '/g==' }]))
    expect((await fetch(`${m.base}/v1/kv/c:b`)).status).toBe(404)
    expect(await (await fetch(`${m.base}/v1/kv/c:a`)).text()).toBe('1')
    const ok = await fetch(`${m.base}/v1/batch?sync=1`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify([{ type: 'put', key: 'c:a', value: '2', ifVersion: va }]) })
    expect(ok.status).toBe(200)
  })

  it('rejects malformed batches with 400 and a code', async () => {
    const bad = async (body: string): Promise<Record<string, unknown>> => {
      const r = await fetch(`${m.base}/v1/batch`, { method: 'POST', headers: JSON_HEADERS, body })
      expect(r.status, body).toBe(400)
      return json(r)
    }
    expect((await bad('{nope')).code).toBe('STRATA_BAD_REQUEST')
    expect((await bad('{"ops": 3}')).code).toBe('STRATA_INVALID_ARGUMENT')
    expect((await bad('[{"type":"put","key":"a"}]')).message).toMatch(/operation 0: put needs value/)
    expect((await bad('[{"type":"zap","key":"a"}]')).message).toMatch(/type must be/)
    expect((await bad('[{"type":"put","key":"","value":"x"}]')).message).toMatch(/must not be empty/)
    expect((await bad('[{"type":"put","keyBase64":"!!","value":"x"}]')).message).toMatch(/keyBase64 must be base64/)
    expect((await bad('[{"type":"check","key":"a"}]')).message).toMatch(/check needs ifVersion/)
    expect((await bad('[{"type":"put","key":"a","value":"x","ifVersion":-1}]')).message).toMatch(/ifVersion/)
    const get = await fetch(`${m.base}/v1/batch`)
    expect(get.status).toBe(405)
    expect(get.headers.get('allow')).toBe('POST')
  })
})

describe('/v1/range', () => {
  const N = 1500
  const key = (i: number): string => `r:${String(i).padStart(5, '0')}`
  beforeAll(async () => {
    for (let i = 0; i < N; i += 500) {
      const ops = Array.from({ length: 500 }, (_, j) => ({ type: 'put', key: key(i + j), value: `v${i + j}` }))
      expect((await fetch(`${m.base}/v1/batch`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(ops) })).status).toBe(200)
    }
  })

  async function lines(query: string): Promise<Array<Record<string, unknown>>> {
    const r = await fetch(`${m.base}/v1/range?${query}`)
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toBe('application/x-ndjson')
    const text = await r.text()
    expect(text.endsWith('\n')).toBe(true)
    return text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  }

  it('streams a bounded range as NDJSON, forward and reverse', async () => {
    const q = new URLSearchParams({ gte: key(10), lt: key(20) })
    const out = await lines(q.toString())
    expect(out.slice(0, -1)).toEqual(Array.from({ length: 10 }, (_, i) => ({ key: key(10 + i), value: `v${10 + i}` })))
    expect(out.at(-1)).toEqual({ cursor: null, count: 10 })
    const rev = await lines(`${new URLSearchParams({ gt: key(10), lte: key(20) })}&reverse=1&keys=1`)
    expect(rev.slice(0, -1)).toEqual(Array.from({ length: 10 }, (_, i) => ({ key: key(20 - i) })))
  })

  it('pages with limit and the resume cursor, in both directions', async () => {
    for (const reverse of [false, true]) {
      const seen: string[] = []
      let cursor: string | null = null
      let pages = 0
      do {
        const q = new URLSearchParams({ gte: 'r:', lt: 'r;', limit: '400', reverse: String(reverse) })
        if (cursor !== null) q.set('cursor', cursor)
        const out = await lines(q.toString())
        const last = out.pop() as { cursor: string | null; count: number }
        seen.push(...out.map((o) => o.key as string))
        expect(last.count).toBe(out.length)
        cursor = last.cursor
        pages++
      } while (cursor !== null)
      const all = Array.from({ length: N }, (_, i) => key(i))
      expect(seen).toEqual(reverse ? all.reverse() : all)
      expect(pages).toBe(Math.ceil(N / 400))
    }
  })

  it('encodes binary keys and values as base64 fields', async () => {
    await fetch(`${m.base}/v1/kv/%FFbin`, { method: 'PUT', body: Buffer.from([0xc3, 0x28]) })
    const out = await lines(`gte=%FF`)
    expect(out[0]).toEqual({ keyBase64: Buffer.from([0xff, 0x62, 0x69, 0x6e]).toString('base64'), valueBase64: Buffer.from([0xc3, 0x28]).toString('base64') })
  })

  it('rejects bad parameters with 400', async () => {
    for (const q of ['limit=-1', 'reverse=maybe', 'gt=a&gte=b', 'cursor=***', 'bogus=1', 'gte=%zz']) {
      const r = await fetch(`${m.base}/v1/range?${q}`)
      expect(r.status, q).toBe(400)
      await json(r)
    }
  })

  it('waits for a slow reader instead of buffering the range (bounded memory)', async () => {
    const s = await start()
    try {
      const value = 'x'.repeat(16 * 1024)
      for (let i = 0; i < 4000; i += 200) {
        const ops = Array.from({ length: 200 }, (_, j) => ({ type: 'put', key: key(i + j), value }))
        expect((await fetch(`${s.base}/v1/batch`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(ops) })).status).toBe(200)
      }
      // 64 MiB of range; the reader takes one chunk and stalls.
      global.gc?.()
      const before = process.memoryUsage()
      const r = await fetch(`${s.base}/v1/range`)
      const reader = r.body!.getReader()
      await reader.read()
      await new Promise((res) => setTimeout(res, 1000))
      const during = process.memoryUsage()
      const grown = during.heapUsed + during.external + during.arrayBuffers - (before.heapUsed + before.external + before.arrayBuffers)
      expect(grown).toBeLessThan(24 << 20)
      let bytes = 0
      for (;;) {
        const { done, value: chunk } = await reader.read()
        if (done) break
        bytes += chunk.length
      }
      expect(bytes).toBeGreaterThan(4000 * 16 * 1024)
    } finally {
      await s.stop()
    }
  })
})

describe('stats, metrics, healthz', () => {
  it('serves engine stats, Prometheus metrics and health', async () => {
    const stats = (await json(await fetch(`${m.base}/v1/stats`))) as { engine: { levels: unknown[]; lastSequence: number }; server: { pendingWrites: number } }
    expect(stats.engine.lastSequence).toBeGreaterThan(0)
    expect(Array.isArray(stats.engine.levels)).toBe(true)
    expect(stats.server.pendingWrites).toBe(0)
    const metrics = await fetch(`${m.base}/metrics`)
    expect(metrics.headers.get('content-type')).toMatch(/text\/plain/)
    const text = await metrics.text()
    expect(text).toMatch(/^strata_http_requests_total\{method="GET",route="stats",status="200"\} \d+/m)
    expect(text).toMatch(/^strata_engine_last_sequence \d+/m)
    expect(text).toMatch(/^strata_engine_level_bytes\{level="0"\} \d+/m)
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m)
    expect(await json(await fetch(`${m.base}/healthz`))).toEqual({ status: 'ok' })
  })
})

describe('authentication', () => {
  it('requires the bearer token, except for /healthz', async () => {
    const token = 'http-token-0123456789abcdef'
    const s = await start({ token })
    try {
      const none = await fetch(`${s.base}/v1/kv/a`)
      expect(none.status).toBe(401)
      expect(none.headers.get('www-authenticate')).toMatch(/Bearer/)
      expect((await json(none)).code).toBe('STRATA_UNAUTHORIZED')
      expect((await fetch(`${s.base}/metrics`, { headers: { Authorization: 'Bearer wrong' } })).status).toBe(401)
      expect((await fetch(`${s.base}/v1/kv/a`, { method: 'PUT', body: 'x', headers: { Authorization: 'Basic abc' } })).status).toBe(401)
      const auth = { Authorization: `Bearer ${token}` }
      expect((await fetch(`${s.base}/v1/kv/a`, { method: 'PUT', body: 'x', headers: auth })).status).toBe(204)
      expect(await (await fetch(`${s.base}/v1/kv/a`, { headers: auth })).text()).toBe('x')
      expect((await fetch(`${s.base}/healthz`)).status).toBe(200)
    } finally {
      await s.stop()
    }
  })
})

describe('limits and malformed requests', () => {
  let l: Running
  beforeAll(async () => {
    l = await start({ limits: { maxValueBytes: 1024, maxKeyBytes: 64, maxBodyBytes: 4096, maxUrlBytes: 2048, maxHeaderBytes: 8192, maxBatchOps: 3, maxConnections: 4 } })
  })
  afterAll(async () => {
    await l.stop()
  })

  it('400 for bad keys and routes, 404/405 with codes', async () => {
    expect(await json(await fetch(`${l.base}/v1/kv/`))).toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
    expect(await json(await fetch(`${l.base}/v1/kv/%G0`))).toMatchObject({ code: 'STRATA_BAD_REQUEST' })
    const r404 = await fetch(`${l.base}/nope`)
    expect(r404.status).toBe(404)
    expect((await json(r404)).code).toBe('STRATA_ROUTE_NOT_FOUND')
    const r405 = await fetch(`${l.base}/v1/kv/a`, { method: 'POST', body: 'x' })
    expect(r405.status).toBe(405)
    expect(r405.headers.get('allow')).toBe('GET, HEAD, PUT, DELETE')
  })

  it('413 for large keys, values, bodies and batches, without writing anything', async () => {
    const bigKey = await fetch(`${l.base}/v1/kv/${'k'.repeat(65)}`, { method: 'PUT', body: 'x' })
    expect(bigKey.status).toBe(413)
    expect((await json(bigKey)).code).toBe('STRATA_TOO_LARGE')
    const bigValue = await fetch(`${l.base}/v1/kv/v`, { method: 'PUT', body: 'x'.repeat(1025) })
    expect(bigValue.status).toBe(413)
    expect(await json(bigValue)).toMatchObject({ code: 'STRATA_TOO_LARGE', limitBytes: 1024 })
    // Streamed (chunked, no Content-Length), several times the limit.
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < 50; i++) c.enqueue(new Uint8Array(4096).fill(120))
        c.close()
      },
    })
    const chunked = await fetch(`${l.base}/v1/kv/v`, { method: 'PUT', body: stream, duplex: 'half' } as RequestInit)
    expect(chunked.status).toBe(413)
    expect((await fetch(`${l.base}/v1/kv/v`)).status).toBe(404)
    expect((await fetch(`${l.base}/v1/batch`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify([{ type: 'put', key: 'a', value: 'x'.repeat(5000) }]) })).status).toBe(413)
    const ops = Array.from({ length: 4 }, (_, i) => ({ type: 'put', key: `o${i}`, value: 'x' }))
    const tooMany = await fetch(`${l.base}/v1/batch`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(ops) })
    expect(tooMany.status).toBe(413)
    expect((await json(tooMany)).message).toMatch(/maxBatchOps/)
    expect((await fetch(`${l.base}/v1/kv/o0`)).status).toBe(404)
    // Expect: 100-continue is refused before the body is sent.
    const text = await raw(l.base, 'PUT /v1/kv/v HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999\r\nExpect: 100-continue\r\n\r\n')
    expect(text).toMatch(/^HTTP\/1\.1 413 /)
    expect(text).toMatch(/"code":"STRATA_TOO_LARGE"/)
  })

  it('414 for long request targets, 431 for large heads', async () => {
    const long = await fetch(`${l.base}/v1/kv/${'a'.repeat(3000)}`)
    expect(long.status).toBe(414)
    expect((await json(long)).code).toBe('STRATA_URI_TOO_LONG')
    const big = await raw(l.base, `GET /v1/kv/a HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'b'.repeat(10_000)}\r\n\r\n`)
    expect(big).toMatch(/^HTTP\/1\.1 431 /)
    expect(big).toMatch(/"code":"STRATA_HEADERS_TOO_LARGE"/)
  })

  it('400 JSON for malformed HTTP, and the server keeps serving', async () => {
    for (const garbage of ['GARBAGE\r\n\r\n', 'GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n', '\x00\x01\x02\r\n\r\n']) {
      const text = await raw(l.base, garbage)
      expect(text, JSON.stringify(garbage)).toMatch(/^HTTP\/1\.1 400 /)
      expect(text).toMatch(/"code":"STRATA_BAD_REQUEST"/)
    }
    // A body that turns out malformed half-way: the connection is dropped and nothing is written.
    const text = await raw(l.base, 'PUT /v1/kv/chunky HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n')
    expect(text).not.toMatch(/^HTTP\/1\.1 2/)
    expect((await fetch(`${l.base}/v1/kv/chunky`)).status).toBe(404)
    expect((await fetch(`${l.base}/healthz`)).status).toBe(200)
  })

  it('503 beyond maxConnections', async () => {
    const sockets = await Promise.all(
      Array.from({ length: 4 }, () => {
        const { port } = new URL(l.base)
        return new Promise<net.Socket>((res) => {
          const s = net.connect(Number(port), '127.0.0.1', () => res(s))
        })
      }),
    )
    try {
      await new Promise((r) => setTimeout(r, 100))
      const text = await raw(l.base, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
      expect(text).toMatch(/^HTTP\/1\.1 503 /)
      expect(text).toMatch(/"code":"STRATA_TOO_MANY_CONNECTIONS"/)
    } finally {
      for (const s of sockets) s.destroy()
    }
    await new Promise((r) => setTimeout(r, 100))
    expect((await fetch(`${l.base}/healthz`)).status).toBe(200)
  })
})

describe('overload', () => {
  it('answers 503 STRATA_BUSY with Retry-After past maxPendingWrites; acknowledged writes are all there', async () => {
    const s = await start({ limits: { maxPendingWrites: 1 } })
    try {
      const value = 'v'.repeat(64 * 1024)
      const results = await Promise.all(Array.from({ length: 120 }, (_, i) => fetch(`${s.base}/v1/kv/busy${i}?sync=1`, { method: 'PUT', body: value })))
      const busy = results.filter((r) => r.status === 503)
      expect(busy.length).toBeGreaterThan(0)
      expect(busy[0].headers.get('retry-after')).toBe('1')
      expect((await json(busy[0])).code).toBe('STRATA_BUSY')
      for (const [i, r] of results.entries()) {
        expect([204, 503]).toContain(r.status)
        const g = await fetch(`${s.base}/v1/kv/busy${i}`)
        expect(g.status, `busy${i}`).toBe(r.status === 204 ? 200 : 404)
        await g.arrayBuffer()
      }
    } finally {
      await s.stop()
    }
  })
})
