/**
 * `strata serve` under attack, HTTP side (issue #16): Host / Origin /
 * Sec-Fetch-Site checks against cross-site requests and DNS rebinding,
 * JSON bodies only as application/json, CORS for --allow-origin origins,
 * the send deadline of range streams (a reader that never reads must not
 * pin tables forever), the loopback check on the address actually bound,
 * and the exit of a real `strata serve` on an unhandled rejection.
 * test/server-browser.test.ts drives the same rules from headless Chromium.
 */
import { spawn } from 'node:child_process'
import dns from 'node:dns'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as net from 'node:net'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startServer, type ServerOptionsInput, type StrataServer } from '../src/server/index.js'
import { hostName } from '../src/server/http/origin.js'
import { tempDir } from './unit/helpers.js'

interface Running {
  server: StrataServer
  port: number
  stop: () => Promise<void>
}

async function start(options: ServerOptionsInput = {}): Promise<Running> {
  const t = tempDir('strata-sec-')
  const server = await startServer({ dir: t.dir, http: '127.0.0.1:0', resp: null, log: () => {}, ...options })
  return {
    server,
    port: server.httpPort!,
    stop: async () => {
      await server.close()
      t.cleanup()
    },
  }
}

interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/** One request with exactly these headers (Host included: node:http adds none of its own). */
function send(port: number, method: string, target: string, headers: Record<string, string>, body?: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers, setHost: false, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

function code(r: Reply): string {
  expect(r.headers['content-type']).toMatch(/application\/json/)
  return (JSON.parse(r.body) as { code: string }).code
}

const JSON_TYPE = { 'Content-Type': 'application/json' }
const batchBody = (key: string): string => JSON.stringify([{ type: 'put', key, value: 'pwned' }])

describe('Host, Origin and Content-Type checks', () => {
  let s: Running
  let host: string
  beforeAll(async () => {
    s = await start({ allowHosts: ['db.example.test', '*.corp.test'], allowOrigins: ['http://app.example.test:3000'] })
    host = `127.0.0.1:${s.port}`
    await s.server.db.put('seed', 'secret')
  })
  afterAll(() => s.stop())

  it('refuses the text/plain cross-site POST a browser sends without preflight (the issue reproduction)', async () => {
    // Before: 200 {"versions":[5]}.
    const r = await send(s.port, 'POST', '/v1/batch', { Host: 'evil.example', Origin: 'http://evil.example', 'Content-Type': 'text/plain' }, batchBody('csrf'))
    expect(r.status).toBe(403)
    expect(code(r)).toBe('STRATA_FORBIDDEN_HOST')
    // The same with a correct Host: refused by Origin.
    const byOrigin = await send(s.port, 'POST', '/v1/batch', { Host: host, Origin: 'http://evil.example', 'Content-Type': 'text/plain' }, batchBody('csrf'))
    expect(byOrigin.status).toBe(403)
    expect(code(byOrigin)).toBe('STRATA_FORBIDDEN_ORIGIN')
    expect(await s.server.db.get('csrf')).toBeUndefined()
  })

  it('refuses a GET with a rebound Host (DNS rebinding), and every other foreign Host', async () => {
    // Before: 200 with the stored value.
    for (const h of ['evil.example', `evil.example:${s.port}`, 'evil.localhost.example', 'db.example.test.evil', 'corp.test', '[::1', 'a b', `127.0.0.1:${s.port}x`]) {
      const r = await send(s.port, 'GET', '/v1/kv/seed', { Host: h })
      expect(r.status, h).toBe(403)
      expect(code(r), h).toBe('STRATA_FORBIDDEN_HOST')
      expect(r.body).not.toContain('secret')
    }
  })

  it('accepts loopback names and addresses, the bound address and --allow-host names', async () => {
    for (const h of [host, '127.0.0.1', `localhost:${s.port}`, 'LOCALHOST.', `app.localhost:${s.port}`, `[::1]:${s.port}`, '127.5.6.7', 'db.example.test', `db.example.test:${s.port}`, 'x.corp.test', 'a.b.corp.test']) {
      const r = await send(s.port, 'GET', '/v1/kv/seed', { Host: h })
      expect(r.status, h).toBe(200)
      expect(r.body).toBe('secret')
    }
  })

  it('refuses HTTP/1.1 without Host (400), accepts HTTP/1.0 without it (no browser sends that)', async () => {
    const reply = (text: string): Promise<string> =>
      new Promise((resolve) => {
        const sock = net.connect(s.port, '127.0.0.1')
        let out = ''
        sock.on('data', (d) => (out += d.toString('latin1')))
        sock.on('close', () => resolve(out))
        sock.on('error', () => {})
        sock.end(text)
      })
    expect(await reply('GET /v1/kv/seed HTTP/1.1\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 [^]*missing Host/)
    expect(await reply('GET /v1/kv/seed HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 [^]*secret$/)
  })

  it('decides on Origin and Sec-Fetch-Site: same-origin and none pass, cross-site and same-site do not', async () => {
    const get = (headers: Record<string, string>): Promise<Reply> => send(s.port, 'GET', '/v1/kv/seed', { Host: host, ...headers })
    expect((await get({})).status).toBe(200) // curl, services: neither header
    expect((await get({ 'Sec-Fetch-Site': 'none' })).status).toBe(200) // typed into the address bar
    expect((await get({ 'Sec-Fetch-Site': 'same-origin' })).status).toBe(200)
    expect((await get({ Origin: `http://${host}`, 'Sec-Fetch-Site': 'same-origin' })).status).toBe(200)
    const refused: Array<Record<string, string>> = [
      { 'Sec-Fetch-Site': 'cross-site' }, // <img src>, a link from another site
      { 'Sec-Fetch-Site': 'same-site' }, // a page of another port of 127.0.0.1
      { Origin: 'http://127.0.0.1:1' },
      { Origin: 'null' }, // sandboxed iframe, file://
      { Origin: `http://${host}, http://evil.example` },
      { Origin: 'http://app.example.test:3001' },
      { Origin: 'https://app.example.test:3000' },
    ]
    for (const h of refused) {
      const r = await get(h)
      expect(r.status, JSON.stringify(h)).toBe(403)
      expect(code(r)).toBe('STRATA_FORBIDDEN_ORIGIN')
      expect(r.headers['access-control-allow-origin']).toBeUndefined()
    }
  })

  it('requires application/json on POST /v1/batch (415), keeps PUT raw bytes', async () => {
    for (const type of [undefined, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx']) {
      const headers: Record<string, string> = { Host: host }
      if (type !== undefined) headers['Content-Type'] = type
      const r = await send(s.port, 'POST', '/v1/batch', headers, batchBody('typed'))
      expect(r.status, type).toBe(415)
      expect(code(r)).toBe('STRATA_UNSUPPORTED_MEDIA_TYPE')
    }
    expect(await s.server.db.get('typed')).toBeUndefined()
    const ok = await send(s.port, 'POST', '/v1/batch', { Host: host, 'Content-Type': 'Application/JSON; charset=utf-8' }, batchBody('typed'))
    expect(ok.status).toBe(200)
    for (const type of [undefined, 'text/plain', 'application/octet-stream']) {
      const headers: Record<string, string> = { Host: host }
      if (type !== undefined) headers['Content-Type'] = type
      expect((await send(s.port, 'PUT', '/v1/kv/raw', headers, 'bytes')).status, type).toBe(204)
    }
    // ...but a cross-site PUT is refused whatever its type.
    const cross = await send(s.port, 'PUT', '/v1/kv/raw', { Host: host, Origin: 'http://evil.example', 'Content-Type': 'text/plain' }, 'pwned')
    expect(cross.status).toBe(403)
    const crossSite = await send(s.port, 'DELETE', '/v1/kv/raw', { Host: host, 'Sec-Fetch-Site': 'cross-site' })
    expect(crossSite.status).toBe(403)
    expect((await s.server.db.get('raw'))?.toString()).toBe('bytes')
  })

  it('answers CORS for an --allow-origin origin: preflight, then the request, with readable headers', async () => {
    const origin = 'http://app.example.test:3000'
    const pre = await send(s.port, 'OPTIONS', '/v1/kv/cors', {
      Host: host,
      Origin: origin,
      'Access-Control-Request-Method': 'PUT',
      'Access-Control-Request-Headers': 'content-type, if-match',
      'Access-Control-Request-Private-Network': 'true',
    })
    expect(pre.status).toBe(204)
    expect(pre.headers['access-control-allow-origin']).toBe(origin)
    expect(pre.headers['access-control-allow-methods']).toMatch(/PUT/)
    expect(pre.headers['access-control-allow-headers']).toMatch(/Content-Type/)
    expect(pre.headers['access-control-allow-headers']).toMatch(/Authorization/)
    expect(pre.headers['access-control-allow-private-network']).toBe('true')
    const put = await send(s.port, 'PUT', '/v1/kv/cors', { Host: host, Origin: origin, 'Sec-Fetch-Site': 'cross-site' }, 'ok')
    expect(put.status).toBe(204)
    expect(put.headers['access-control-allow-origin']).toBe(origin)
    expect(put.headers['access-control-expose-headers']).toMatch(/ETag/)
    expect(put.headers.vary).toMatch(/Origin/)
    const batch = await send(s.port, 'POST', '/v1/batch', { Host: host, Origin: origin, ...JSON_TYPE }, batchBody('cors2'))
    expect(batch.status).toBe(200)
    // Errors carry CORS headers too, so that the page can read them.
    const missing = await send(s.port, 'GET', '/v1/kv/nope', { Host: host, Origin: origin })
    expect(missing.status).toBe(404)
    expect(missing.headers['access-control-allow-origin']).toBe(origin)
    // A preflight from an origin not listed is refused.
    const bad = await send(s.port, 'OPTIONS', '/v1/kv/cors', { Host: host, Origin: 'http://evil.example', 'Access-Control-Request-Method': 'PUT' })
    expect(bad.status).toBe(403)
    expect(bad.headers['access-control-allow-origin']).toBeUndefined()
  })

  it('refuses a foreign Host on Expect: 100-continue before the body is sent', async () => {
    const text = await new Promise<string>((resolve) => {
      const sock = net.connect(s.port, '127.0.0.1')
      let out = ''
      sock.on('data', (d) => (out += d.toString('latin1')))
      sock.on('error', () => {})
      setTimeout(() => {
        sock.destroy()
        resolve(out)
      }, 500)
      sock.write('PUT /v1/kv/cont HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n')
    })
    expect(text).toMatch(/^HTTP\/1\.1 403 /)
    expect(text).not.toMatch(/100 Continue/)
  })

  it('applies the same rules with a token, before authentication', async () => {
    const t = await start({ token: 'a-token-long-enough-1234' })
    try {
      const h = `127.0.0.1:${t.port}`
      const auth = { Authorization: 'Bearer a-token-long-enough-1234' }
      expect((await send(t.port, 'GET', '/v1/kv/x', { Host: 'evil.example', ...auth })).status).toBe(403)
      expect((await send(t.port, 'GET', '/v1/kv/x', { Host: h, Origin: 'http://evil.example', ...auth })).status).toBe(403)
      expect((await send(t.port, 'POST', '/v1/batch', { Host: h, 'Content-Type': 'text/plain', ...auth }, batchBody('t'))).status).toBe(415)
      expect((await send(t.port, 'GET', '/v1/kv/x', { Host: h })).status).toBe(401)
      expect((await send(t.port, 'GET', '/v1/kv/x', { Host: h, ...auth })).status).toBe(404)
    } finally {
      await t.stop()
    }
  })

  it('parses Host values', () => {
    expect(hostName('Example.COM.:80')).toBe('example.com')
    expect(hostName('[::1]:7070')).toBe('::1')
    expect(hostName('[::1]x')).toBeUndefined()
    expect(hostName('a:b')).toBeUndefined()
    expect(hostName(':80')).toBeUndefined()
  })

  it('validates --allow-host and --allow-origin', async () => {
    const t = tempDir('strata-sec-opts-')
    for (const bad of [{ allowHosts: ['a.test:80'] }, { allowHosts: ['*a.test'] }, { allowHosts: [''] }, { allowOrigins: ['app.test'] }, { allowOrigins: ['http://app.test/path'] }, { allowOrigins: ['*'] }, { allowOrigins: ['ftp://x.test'] }]) {
      const started = startServer({ dir: t.dir, http: '127.0.0.1:0', resp: null, log: () => {}, ...bad }).then((srv) => srv.close())
      await expect(started, JSON.stringify(bad)).rejects.toThrow(/--allow-(host|origin)/)
    }
    t.cleanup()
  })
})

describe('send deadline', () => {
  it('cuts off a range stream whose client stops reading, releasing the tables its iterator pinned', async () => {
    const s = await start({ sendTimeoutMs: 400, dbOptions: { memtableBytes: 1 << 20 } })
    try {
      const db = s.server.db
      const value = Buffer.alloc(16 * 1024, 0x61)
      for (let i = 0; i < 1600; i += 100) {
        await db.batch(Array.from({ length: 100 }, (_, j) => ({ type: 'put' as const, key: `k${String(i + j).padStart(5, '0')}`, value })))
      }
      await db.compactRange()
      const tables = (): string[] => fs.readdirSync(s.server.options.dir).filter((f) => f.endsWith('.sst'))
      const pinned = tables()
      expect(pinned.length).toBeGreaterThan(0)
      // 25 MiB of range; the client reads nothing (a paused socket reads at most a little into its buffer).
      const sock = net.connect(s.port, '127.0.0.1')
      sock.on('error', () => {})
      let serverClosed = false
      sock.on('close', () => (serverClosed = true))
      sock.pause()
      sock.write(`GET /v1/range HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n\r\n`)
      await new Promise((r) => setTimeout(r, 150))
      // Overwrite everything and compact: the old tables are obsolete but pinned by the stream's iterator.
      for (let i = 0; i < 1600; i += 400) {
        await db.batch(Array.from({ length: 400 }, (_, j) => ({ type: 'put' as const, key: `k${String(i + j).padStart(5, '0')}`, value: 'new' })))
      }
      await db.compactRange()
      const stillThere = pinned.filter((f) => tables().includes(f))
      expect(stillThere.length).toBeGreaterThan(0)
      // Before: kept until the client went away. Now: cut off after sendTimeoutMs and the files go.
      const deadline = Date.now() + 5000
      while (pinned.some((f) => tables().includes(f)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      expect(pinned.filter((f) => tables().includes(f))).toEqual([])
      sock.resume() // read what was buffered, then the server's close
      const closeDeadline = Date.now() + 3000
      while (!serverClosed && Date.now() < closeDeadline) await new Promise((r) => setTimeout(r, 20))
      expect(serverClosed).toBe(true)
      expect(s.server.options.sendTimeoutMs).toBe(400)
      const stats = JSON.parse((await send(s.port, 'GET', '/v1/stats', { Host: '127.0.0.1' })).body) as { server: { connections: { http: number } } }
      expect(stats.server.connections.http).toBe(1) // only this request's
      sock.destroy()
    } finally {
      await s.stop()
    }
  })

  it('keeps a slow reader that does read', async () => {
    const s = await start({ sendTimeoutMs: 400 })
    try {
      await s.server.db.batch(Array.from({ length: 300 }, (_, i) => ({ type: 'put' as const, key: `s${String(i).padStart(4, '0')}`, value: Buffer.alloc(16 * 1024, 0x62) })))
      const r = await fetch(`http://127.0.0.1:${s.port}/v1/range`)
      const reader = r.body!.getReader()
      let text = ''
      const decoder = new TextDecoder()
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        text += decoder.decode(value, { stream: true })
        await new Promise((res) => setTimeout(res, 5))
      }
      expect(text.trimEnd().split('\n').at(-1)).toBe('{"cursor":null,"count":300}')
    } finally {
      await s.stop()
    }
  })
})

describe('send deadline of whole responses and the HTTP connection limit', () => {
  const httpConnections = async (port: number): Promise<number> =>
    (JSON.parse((await send(port, 'GET', '/v1/stats', { Host: '127.0.0.1' })).body) as { server: { connections: { http: number } } }).server.connections.http

  it('destroys a large GET response its client does not read', async () => {
    const s = await start({ sendTimeoutMs: 300 })
    try {
      await s.server.db.put('big', Buffer.alloc(16 * 1024 * 1024, 0x63))
      const sock = net.connect(s.port, '127.0.0.1')
      sock.on('error', () => {})
      sock.pause()
      // Three pipelined: 48 MiB, more than the loopback socket buffers can absorb.
      sock.write(`GET /v1/kv/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`.repeat(3))
      await new Promise((r) => setTimeout(r, 100))
      expect(await httpConnections(s.port)).toBe(2)
      const deadline = Date.now() + 3000
      while ((await httpConnections(s.port)) > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      expect(await httpConnections(s.port)).toBe(1)
      sock.destroy()
    } finally {
      await s.stop()
    }
  })

  it('answers 503 past maxConnections, and closes a flood beyond as many again without answering', async () => {
    const s = await start({ limits: { maxConnections: 2 } })
    const sockets: net.Socket[] = []
    try {
      const open = (): Promise<{ sock: net.Socket; closed: Promise<string> }> =>
        new Promise((resolve) => {
          const sock = net.connect(s.port, '127.0.0.1', () => resolve({ sock, closed }))
          sockets.push(sock)
          let out = ''
          sock.on('data', (d) => (out += d.toString('latin1')))
          sock.on('error', () => {})
          const closed = new Promise<string>((r) => sock.on('close', () => r(out)))
        })
      await open()
      await open()
      await new Promise((r) => setTimeout(r, 50))
      const rejected = await Promise.all([open(), open()])
      const flood = await open()
      // The flood connection is closed at once, with nothing sent.
      const early = await Promise.race([flood.closed, new Promise<'open'>((r) => setTimeout(() => r('open'), 1000))])
      expect(early).toBe('')
      for (const r of rejected) r.sock.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
      for (const r of rejected) expect(await r.closed).toMatch(/^HTTP\/1\.1 503 [^]*STRATA_TOO_MANY_CONNECTIONS/)
    } finally {
      for (const x of sockets) x.destroy()
      await s.stop()
    }
  })
})

describe('loopback check on the address actually bound', () => {
  /** Makes `localhost` resolve to 0.0.0.0 (a non-loopback address this machine can bind) for the calls `lie` picks. */
  async function withLookup<T>(lie: (options: unknown) => boolean, body: () => Promise<T>): Promise<T> {
    const original = dns.lookup
    const fake = ((hostname: string, options: unknown, callback?: unknown) => {
      const cb = (typeof options === 'function' ? options : callback) as (...a: unknown[]) => void
      const opts = typeof options === 'function' ? undefined : options
      if (hostname !== 'localhost' || !lie(opts)) return (original as (...a: unknown[]) => void)(hostname, options, callback)
      const all = typeof opts === 'object' && opts !== null && (opts as { all?: boolean }).all === true
      process.nextTick(() => (all ? cb(null, [{ address: '0.0.0.0', family: 4 }]) : cb(null, '0.0.0.0', 4)))
    }) as typeof dns.lookup
    dns.lookup = fake
    try {
      return await body()
    } finally {
      dns.lookup = original
    }
  }

  it('refuses a loopback name that resolves elsewhere, before binding', async () => {
    const t = tempDir('strata-sec-bind-')
    try {
      const started = await withLookup(
        () => true,
        () => startServer({ dir: t.dir, http: 'localhost:0', resp: null, log: () => {} }).then(
          async (srv) => {
            await srv.close()
            return 'started'
          },
          (e: Error) => e.message,
        ),
      )
      expect(started).toMatch(/refusing to start: HTTP localhost:0 resolves to 0\.0\.0\.0, which is not a loopback address/)
    } finally {
      t.cleanup()
    }
  })

  it('refuses after listen when the bound address is not loopback (the name changed between check and bind)', async () => {
    const t = tempDir('strata-sec-bind-')
    try {
      // The pre-check's lookup (all: true) sees 127.0.0.1; listen's own lookup gets 0.0.0.0.
      const started = await withLookup(
        (opts) => !(typeof opts === 'object' && opts !== null && (opts as { all?: boolean }).all === true),
        () => startServer({ dir: t.dir, http: 'localhost:0', resp: null, log: () => {} }).then(
          async (srv) => {
            await srv.close()
            return 'started'
          },
          (e: Error) => e.message,
        ),
      )
      expect(started).toMatch(/refusing to serve: HTTP localhost:0 was bound to 0\.0\.0\.0:\d+, which is not a loopback address/)
      // The database was closed again: it can be opened.
      const again = await startServer({ dir: t.dir, http: '127.0.0.1:0', resp: null, log: () => {} })
      await again.close()
    } finally {
      t.cleanup()
    }
  })
})

describe('strata serve process', () => {
  it('exits non-zero after logging an unhandled rejection (the CLI used to swallow it)', async () => {
    const t = tempDir('strata-sec-cli-')
    const here = path.dirname(fileURLToPath(import.meta.url))
    const cli = path.join(here, '..', 'dist', 'cli', 'strata.js')
    const inject = path.join(here, 'fixtures', 'reject-on-signal.mjs')
    const child = spawn(process.execPath, ['--import', inject, cli, 'serve', '--dir', t.dir, '--http', '127.0.0.1:0', '--resp', 'off'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (c, sig) => resolve({ code: c, signal: sig })))
    try {
      const deadline = Date.now() + 20_000
      while (!/ready http=/.test(out) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 20))
      expect(out).toMatch(/ready http=/)
      child.kill('SIGUSR2') // the fixture rejects a promise nobody handles
      const result = await Promise.race([exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 5000))])
      expect(result, err).toEqual({ code: 70, signal: null })
      expect(err).toMatch(/unhandled promise rejection: Error: injected rejection/)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
      await exited
      t.cleanup()
    }
  })
})
