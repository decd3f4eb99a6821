/**
 * Fuzz: for a bounded time, many connections throw random and malformed
 * bytes and requests at both ports of a `strata serve` child process
 * (random bytes, corrupted valid requests, huge declared lengths, floods of
 * arguments, half-sent requests, abrupt closes), while well-formed clients
 * keep writing and reading through both protocols. The server must stay up,
 * its memory bounded, and the well-formed clients must see no error and no
 * wrong value. Set SERVER_FUZZ_SEED to replay the random choices.
 */
import * as net from 'node:net'
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { spawnServer } from './fixtures/server-child.mjs'
import { rng, tempDir } from './unit/helpers.js'

const SEED = Number(process.env.SERVER_FUZZ_SEED ?? Date.now() % 1_000_000)
const FUZZ_MS = Number(process.env.SERVER_FUZZ_MS ?? 15_000)
const MAX_RSS_BYTES = 512 * 1024 * 1024

function respCommand(args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

function randomBytes(random: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = Math.floor(random() * 256)
  return b
}

/** Flips, inserts and deletes a few bytes. */
function mutate(random: () => number, input: Buffer): Buffer {
  const bytes = [...input]
  const edits = 1 + Math.floor(random() * 4)
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(random() * (bytes.length + 1))
    const kind = random()
    if (kind < 0.4 && at < bytes.length) bytes[at] = Math.floor(random() * 256)
    else if (kind < 0.7) bytes.splice(at, 0, ...randomBytes(random, 1 + Math.floor(random() * 8)))
    else bytes.splice(at, 1 + Math.floor(random() * 4))
  }
  return Buffer.from(bytes)
}

const COMMANDS = ['GET', 'SET', 'DEL', 'INCR', 'MSET', 'MGET', 'APPEND', 'GETRANGE', 'SCAN', 'KEYS', 'MULTI', 'EXEC', 'WATCH', 'HELLO', 'AUTH', 'CLIENT', 'COMMAND', 'INFO', 'SELECT', 'QUIT', 'SETNX', 'EXISTS', 'DBSIZE', 'CONFIG', 'PING']

/** A RESP input likely to reach deep into the parser and the command handlers. */
function respGarbage(random: () => number): Buffer {
  const cmd = COMMANDS[Math.floor(random() * COMMANDS.length)]
  const args: Array<string | Buffer> = [random() < 0.5 ? cmd : cmd.toLowerCase()]
  const n = Math.floor(random() * 6)
  for (let i = 0; i < n; i++) {
    const r = random()
    args.push(r < 0.3 ? `fz:${Math.floor(random() * 20)}` : r < 0.5 ? String(Math.floor(random() * 2e9) - 1e9) : r < 0.6 ? '*' : randomBytes(random, Math.floor(random() * 40)))
  }
  const valid = respCommand(args)
  switch (Math.floor(random() * 9)) {
    case 0:
      return randomBytes(random, 1 + Math.floor(random() * 2000))
    case 1:
      return mutate(random, valid)
    case 2:
      return Buffer.from(`*${Math.floor(random() * 1e12)}\r\n`)
    case 3:
      return Buffer.from(`*2\r\n$3\r\nGET\r\n$${Math.floor(random() * 1e12)}\r\n`)
    case 4:
      return Buffer.concat([Buffer.from(args.map((a) => a.toString()).join(' ')), Buffer.from(random() < 0.5 ? '\r\n' : '"\n')])
    case 5:
      return Buffer.alloc(70 * 1024 + Math.floor(random() * 1000), 0x61) // too big inline
    case 6:
      return Buffer.concat(Array.from({ length: 1 + Math.floor(random() * 50) }, () => respCommand(args)))
    case 7:
      return valid.subarray(0, Math.floor(random() * valid.length)) // half a command, then close
    default:
      return valid
  }
}

/** An HTTP input: random bytes, corrupted requests, odd targets, lying lengths. */
function httpGarbage(random: () => number): Buffer {
  const methods = ['GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'PATCH', 'OPTIONS', 'G\x00T', '']
  const paths = ['/v1/kv/fz', '/v1/kv/%zz', '/v1/kv/', '/v1/batch', '/v1/range?limit=x', '/v1/range?gte=%ff&reverse=1', '/metrics', '/v1/stats', '/healthz', `/v1/kv/${'a'.repeat(Math.floor(random() * 40_000))}`, '*', '/../../etc/passwd']
  const method = methods[Math.floor(random() * methods.length)]
  const target = paths[Math.floor(random() * paths.length)]
  const body = random() < 0.5 ? randomBytes(random, Math.floor(random() * 3000)) : Buffer.from('[{"type":"put","key":"fz","value":"x"},{"type":"check","key":1}]')
  // A loopback Host and (mostly) a JSON content type, so that the garbage gets past the Host/Origin/415 checks.
  const headers = [`Host: 127.0.0.1`]
  if (random() < 0.8) headers.push('Content-Type: application/json')
  const r = random()
  if (r < 0.3) headers.push(`Content-Length: ${body.length}`)
  else if (r < 0.45) headers.push(`Content-Length: ${Math.floor(random() * 1e10)}`)
  else if (r < 0.6) headers.push('Transfer-Encoding: chunked')
  if (random() < 0.2) headers.push(`X-Big: ${'h'.repeat(Math.floor(random() * 100_000))}`)
  if (random() < 0.2) headers.push('If-Match: "1", W/"x", garbage')
  const request = Buffer.concat([Buffer.from(`${method} ${target} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`), body])
  switch (Math.floor(random() * 5)) {
    case 0:
      return randomBytes(random, 1 + Math.floor(random() * 2000))
    case 1:
      return mutate(random, request)
    case 2:
      return request.subarray(0, Math.floor(random() * request.length))
    default:
      return request
  }
}

/** One hostile connection: send, maybe read a little, close (sometimes abruptly). */
function attack(port: number, input: Buffer, random: () => number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    const linger = Math.floor(random() * 300)
    const finish = (): void => {
      s.destroy()
      resolve()
    }
    const timer = setTimeout(finish, linger + 2000)
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(timer)
      resolve()
    })
    s.on('data', () => {})
    s.once('connect', () => {
      s.write(input, () => {
        setTimeout(() => {
          if (random() < 0.5) s.end()
          else finish()
        }, linger)
      })
    })
  })
}

describe('fuzzing both ports', () => {
  it(`stays up with bounded memory while well-formed clients keep working (seed ${SEED})`, async () => {
    const t = tempDir('strata-srv-fuzz-')
    const s = await spawnServer(['--dir', t.dir, '--http', '127.0.0.1:0', '--resp', '127.0.0.1:0', '--max-connections', '256'])
    const base = `http://${s.http}`
    const respPort = Number(s.resp!.split(':').pop())
    const httpPort = Number(s.http!.split(':').pop())
    const random = rng(SEED)
    const deadline = performance.now() + FUZZ_MS
    let attacks = 0
    let maxRss = 0
    const failures: string[] = []
    try {
      // Hostile connections, several at a time on each port.
      const attackers = Array.from({ length: 12 }, async (_, i) => {
        const r = rng(SEED * 31 + i)
        while (performance.now() < deadline) {
          const onResp = i % 2 === 0
          await attack(onResp ? respPort : httpPort, onResp ? respGarbage(r) : httpGarbage(r), r)
          attacks++
        }
      })
      // Well-formed clients: every reply must be right.
      const good = Array.from({ length: 3 }, async (_, i) => {
        const r = new Redis({ port: respPort, host: '127.0.0.1', retryStrategy: () => null, maxRetriesPerRequest: 0 })
        r.on('error', (e: Error) => failures.push(`resp client ${i}: ${e.message}`))
        let n = 0
        while (performance.now() < deadline) {
          const key = `good:resp${i}:${n % 50}`
          const value = `v${n}`
          const [[e1, set], [e2, got], [e3, count]] = (await r.pipeline().set(key, value).get(key).incr(`good:resp${i}:n`).exec())!
          if (e1 || e2 || e3 || set !== 'OK' || got !== value || count !== n + 1) failures.push(`resp client ${i} op ${n}: ${e1 ?? e2 ?? e3} ${set} ${got} ${count}`)
          n++
        }
        r.disconnect()
        return n
      })
      const goodHttp = Array.from({ length: 2 }, async (_, i) => {
        let n = 0
        while (performance.now() < deadline) {
          const url = `${base}/v1/kv/good%3Ahttp${i}%3A${n % 50}`
          const put = await fetch(url, { method: 'PUT', body: `h${n}` })
          const get = await fetch(url)
          const text = await get.text()
          if (put.status !== 204 || get.status !== 200 || text !== `h${n}` || get.headers.get('etag') !== put.headers.get('etag')) {
            failures.push(`http client ${i} op ${n}: ${put.status} ${get.status} ${text}`)
          }
          n++
        }
        return n
      })
      const sampler = (async () => {
        while (performance.now() < deadline) {
          await new Promise((r) => setTimeout(r, 500))
          try {
            const st = (await (await fetch(`${base}/v1/stats`)).json()) as { server: { memory: { rssBytes: number } } }
            maxRss = Math.max(maxRss, st.server.memory.rssBytes)
          } catch (e) {
            failures.push(`stats: ${(e as Error).message}`)
          }
        }
      })()
      const [respOps, httpOps] = await Promise.all([Promise.all(good), Promise.all(goodHttp), Promise.all(attackers), sampler])
      console.log(`fuzz: ${attacks} hostile connections, max RSS ${Math.round(maxRss / 2 ** 20)} MiB, good ops ${respOps} / ${httpOps}`)
      expect(failures).toEqual([])
      expect(respOps.every((n) => n > 10)).toBe(true)
      expect(httpOps.every((n) => n > 10)).toBe(true)
      expect(attacks).toBeGreaterThan(100)
      expect(maxRss).toBeGreaterThan(0)
      expect(maxRss).toBeLessThan(MAX_RSS_BYTES)
      // Still up and consistent; then a clean shutdown.
      expect((await fetch(`${base}/healthz`)).status).toBe(200)
      const stats = (await (await fetch(`${base}/v1/stats`)).json()) as { server: { pendingWrites: number; lockedKeys: number } }
      expect(stats.server.lockedKeys).toBe(0)
      expect(s.output().stderr).not.toMatch(/failed|Error|unhandled/i)
      s.child.kill('SIGTERM')
      expect((await s.exited).code).toBe(0)
    } finally {
      if (s.child.exitCode === null) s.child.kill('SIGKILL')
      t.cleanup()
    }
  }, 60_000)
})
