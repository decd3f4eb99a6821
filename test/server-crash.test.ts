/**
 * `strata serve` as a process: kill -9 loses no acknowledged write (real
 * clients over both protocols, SIGKILL at a random moment, restart on the
 * same directory, every acknowledged write checked), SIGTERM finishes
 * in-flight requests and exits 0, and the refusal to expose the database on
 * a non-loopback address without a token.
 */
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import { Redis } from 'ioredis'
import { afterEach, describe, expect, it } from 'vitest'
import { runServerToExit, spawnServer, type SpawnedServer } from './fixtures/server-child.mjs'
import { rng, tempDir } from './unit/helpers.js'

const SEED = Number(process.env.SERVER_CRASH_SEED ?? Date.now() % 1_000_000)
const CYCLES = 4

/** What a writer's keys hold: value text, or null when absent. */
type State = Map<string, string | null>
/** One write's effect on the writer's keys; `incr` adds one to a counter. */
type Effect = { key: string; value: string | null } | { key: string; incr: true }

interface Writer {
  name: string
  keys: string[]
  counter: string
  acked: State
  /** Effects of the op in flight when the server died (applied entirely or not at all). */
  inFlight: Effect[] | undefined
}

function applied(state: State, effects: Effect[]): State {
  const next = new Map(state)
  for (const e of effects) {
    if ('incr' in e) next.set(e.key, String(Number(next.get(e.key) ?? 0) + 1))
    else next.set(e.key, e.value)
  }
  return next
}

function newWriter(name: string): Writer {
  const keys = Array.from({ length: 4 }, (_, i) => `${name}:k${i}`)
  const counter = `${name}:n`
  const acked: State = new Map([...keys, counter].map((k) => [k, null]))
  return { name, keys, counter, acked, inFlight: undefined }
}

/** Runs one writer until `stop()`; every op is journaled in memory before it is issued and once acknowledged. */
async function runRespWriter(w: Writer, port: number, random: () => number, stopped: () => boolean): Promise<void> {
  const r = new Redis({ port, host: '127.0.0.1', retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false })
  r.on('error', () => {})
  try {
    await new Promise<void>((resolve, reject) => {
      r.once('ready', resolve)
      r.once('end', () => reject(new Error('closed before ready')))
    })
  } catch {
    return
  }
  let seq = 0
  while (!stopped()) {
    const op = random()
    const key = w.keys[Math.floor(random() * w.keys.length)]
    const value = `${w.name}#${seq++}`
    let effects: Effect[]
    let run: () => Promise<unknown>
    if (op < 0.4) {
      effects = [{ key, value }]
      run = () => r.set(key, value)
    } else if (op < 0.55) {
      effects = [{ key, value: null }]
      run = () => r.del(key)
    } else if (op < 0.75) {
      const other = w.keys[(w.keys.indexOf(key) + 1) % w.keys.length]
      effects = [
        { key, value },
        { key: other, value: `${value}b` },
      ]
      run = () => r.mset(key, value, other, `${value}b`)
    } else {
      effects = [{ key: w.counter, incr: true }]
      run = () => r.incr(w.counter)
    }
    w.inFlight = effects
    try {
      await run()
    } catch {
      return // the server died: the op stays in flight
    }
    w.acked = applied(w.acked, effects)
    w.inFlight = undefined
  }
  r.disconnect()
}

async function runHttpWriter(w: Writer, base: string, random: () => number, stopped: () => boolean, sync: boolean): Promise<void> {
  let seq = 0
  while (!stopped()) {
    const op = random()
    const key = w.keys[Math.floor(random() * w.keys.length)]
    const value = `${w.name}#${seq++}`
    let effects: Effect[]
    let req: () => Promise<Response>
    const q = sync && random() < 0.5 ? '?sync=1' : ''
    if (op < 0.45) {
      effects = [{ key, value }]
      req = () => fetch(`${base}/v1/kv/${encodeURIComponent(key)}${q}`, { method: 'PUT', body: value })
    } else if (op < 0.6) {
      effects = [{ key, value: null }]
      req = () => fetch(`${base}/v1/kv/${encodeURIComponent(key)}${q}`, { method: 'DELETE' })
    } else {
      const other = w.keys[(w.keys.indexOf(key) + 1) % w.keys.length]
      effects = [
        { key, value },
        { key: other, value: null },
      ]
      req = () =>
        fetch(`${base}/v1/batch${q}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify([
            { type: 'put', key, value },
            { type: 'del', key: other },
          ]),
        })
    }
    w.inFlight = effects
    try {
      const res = await req()
      await res.arrayBuffer()
      if (res.status !== 204 && res.status !== 200) throw new Error(`status ${res.status}`)
    } catch {
      return
    }
    w.acked = applied(w.acked, effects)
    w.inFlight = undefined
  }
}

/** Every key of the database, read over HTTP as one streamed range. */
async function readAll(base: string): Promise<Map<string, string>> {
  const text = await (await fetch(`${base}/v1/range`)).text()
  const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l) as { key?: string; value?: string; cursor?: string | null })
  expect(lines.at(-1)?.cursor).toBeNull()
  return new Map(lines.slice(0, -1).map((l) => [l.key!, l.value!]))
}

function sameState(actual: State, expected: State): boolean {
  for (const [k, v] of expected) if ((actual.get(k) ?? null) !== v) return false
  return true
}

/** Servers spawned by the current test, killed when it ends (also on failure). */
const spawned: SpawnedServer[] = []
async function serverAt(args: string[], options?: { cwd?: string }): Promise<SpawnedServer> {
  const s = await spawnServer(args, options)
  spawned.push(s)
  return s
}
afterEach(() => {
  for (const s of spawned.splice(0)) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL')
})

describe('strata serve as a process', () => {
  it(`kill -9 loses no acknowledged write (seed ${SEED})`, async () => {
    const random = rng(SEED)
    const t = tempDir('strata-srv-crash-')
    const writers: Writer[] = []
    for (let i = 0; i < 8; i++) writers.push(newWriter(`resp${i}`))
    for (let i = 0; i < 6; i++) writers.push(newWriter(`http${i}`))
    let totalAcked = 0
    try {
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const sync = cycle % 2 === 1
        const args = ['--dir', t.dir, '--http', '127.0.0.1:0', '--resp', '127.0.0.1:0', ...(sync ? ['--sync'] : [])]
        const s: SpawnedServer = await serverAt(args)
        const base = `http://${s.http}`
        const port = Number(s.resp!.split(':').pop())
        // What survived the previous kill: per writer, the acknowledged state, maybe plus the op in flight.
        const before = await readAll(base)
        for (const w of writers) {
          const actual: State = new Map([...w.acked.keys()].map((k) => [k, before.get(k) ?? null]))
          const withInFlight = w.inFlight === undefined ? undefined : applied(w.acked, w.inFlight)
          const ok = sameState(actual, w.acked) || (withInFlight !== undefined && sameState(actual, withInFlight))
          if (!ok) {
            throw new Error(
              `cycle ${cycle}, writer ${w.name}: got ${JSON.stringify([...actual])}, acknowledged ${JSON.stringify([...w.acked])}, in flight ${JSON.stringify(w.inFlight)}`,
            )
          }
          w.acked = actual
          w.inFlight = undefined
        }
        // Write through real clients, then SIGKILL at a random moment.
        let stop = false
        const stopped = (): boolean => stop
        const ackedBefore = writers.reduce((n, w) => n + [...w.acked.values()].filter((v) => v !== null).length, 0)
        const running = writers.map((w, i) =>
          w.name.startsWith('resp') ? runRespWriter(w, port, rng(SEED + cycle * 100 + i), stopped) : runHttpWriter(w, base, rng(SEED + cycle * 100 + i), stopped, sync),
        )
        await new Promise((r) => setTimeout(r, 400 + random() * 1200))
        s.child.kill('SIGKILL')
        const { signal } = await s.exited
        expect(signal).toBe('SIGKILL')
        stop = true
        await Promise.all(running)
        totalAcked += writers.reduce((n, w) => n + [...w.acked.values()].filter((v) => v !== null).length, 0) - ackedBefore
      }
      // Final check on a last restart.
      const s = await serverAt(['--dir', t.dir, '--http', '127.0.0.1:0', '--resp', '127.0.0.1:0'])
      const after = await readAll(`http://${s.http}`)
      for (const w of writers) {
        const actual: State = new Map([...w.acked.keys()].map((k) => [k, after.get(k) ?? null]))
        const withInFlight = w.inFlight === undefined ? undefined : applied(w.acked, w.inFlight)
        expect(sameState(actual, w.acked) || (withInFlight !== undefined && sameState(actual, withInFlight)), w.name).toBe(true)
      }
      s.child.kill('SIGTERM')
      expect((await s.exited).code).toBe(0)
      expect(totalAcked).toBeGreaterThan(0)
    } finally {
      t.cleanup()
    }
  }, 90_000)

  it('SIGTERM: stops accepting, finishes in-flight requests, closes the database, exits 0', async () => {
    const t = tempDir('strata-srv-term-')
    try {
      const s = await serverAt(['--dir', t.dir, '--http', '127.0.0.1:0', '--resp', '127.0.0.1:0'])
      const [host, port] = [s.http!.split(':')[0], Number(s.http!.split(':')[1])]
      // An HTTP request whose body is only half sent when the signal arrives.
      const sock = net.connect(port, host)
      await new Promise((r) => sock.once('connect', r))
      let response = ''
      sock.on('data', (d) => (response += d.toString('latin1')))
      sock.write('PUT /v1/kv/in-flight HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nhello')
      // A RESP client with a pipeline.
      const r = new Redis({ port: Number(s.resp!.split(':')[1]), host: '127.0.0.1', retryStrategy: () => null, maxRetriesPerRequest: 0 })
      r.on('error', () => {})
      await r.set('before', '1')
      await new Promise((res) => setTimeout(res, 100))
      s.child.kill('SIGTERM')
      await new Promise((res) => setTimeout(res, 300))
      // No new connections are accepted.
      await expect(fetch(`http://${s.http}/healthz`)).rejects.toThrow()
      sock.write('world')
      const { code, signal } = await s.exited
      expect({ code, signal }).toEqual({ code: 0, signal: null })
      expect(response).toMatch(/^HTTP\/1\.1 204 No Content\r\n/)
      expect(response).toMatch(/\r\nConnection: close\r\n/i)
      expect(s.output().stdout).toMatch(/SIGTERM: finishing in-flight requests, closing the database\n.*stopped\n/s)
      r.disconnect()
      sock.destroy()
      // The database was closed cleanly (lock released) and has both writes.
      const again = await serverAt(['--dir', t.dir, '--http', '127.0.0.1:0', '--resp', 'off'])
      expect(await (await fetch(`http://${again.http}/v1/kv/in-flight`)).text()).toBe('helloworld')
      expect(await (await fetch(`http://${again.http}/v1/kv/before`)).text()).toBe('1')
      again.child.kill('SIGINT')
      expect((await again.exited).code).toBe(0)
    } finally {
      t.cleanup()
    }
  })

  it('refuses a non-loopback address without a token, with a clear message', async () => {
    const t = tempDir('strata-srv-exposed-')
    try {
      const refused = await runServerToExit(['--dir', t.dir, '--http', '0.0.0.0:0', '--resp', '127.0.0.1:0'])
      expect(refused.code).toBe(1)
      expect(refused.stderr).toMatch(/refusing to start: HTTP 0\.0\.0\.0:0 is not a loopback address/)
      expect(refused.stderr).toMatch(/--token-file/)
      expect(fs.readdirSync(t.dir)).toEqual([]) // nothing was opened
      const short = path.join(t.dir, '..', `${path.basename(t.dir)}-short-token`)
      fs.writeFileSync(short, 'short\n')
      const weak = await runServerToExit(['--dir', t.dir, '--resp', '127.0.0.1:0', '--http', 'off', '--token-file', short])
      fs.rmSync(short)
      expect(weak.code).toBe(1)
      expect(weak.stderr).toMatch(/too short/)
      // With a token it starts, and demands it. (Tests only ever listen on 127.0.0.1: that a token
      // lets a non-loopback address through is checked in server-unit.test.ts, without binding it.)
      const tokenFile = path.join(t.dir, '..', `${path.basename(t.dir)}-token`)
      const token = 'a-proper-token-0123456789'
      fs.writeFileSync(tokenFile, `${token}\n`)
      try {
        const s = await serverAt(['--dir', t.dir, '--http', '127.0.0.1:0', '--resp', '127.0.0.1:0', '--token-file', tokenFile])
        const httpPort = s.http!.split(':').pop()
        expect((await fetch(`http://127.0.0.1:${httpPort}/v1/kv/x`)).status).toBe(401)
        expect((await fetch(`http://127.0.0.1:${httpPort}/v1/kv/x`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(404)
        const r = new Redis({ port: Number(s.resp!.split(':').pop()), host: '127.0.0.1', password: token, retryStrategy: () => null })
        expect(await r.set('x', '1')).toBe('OK')
        r.disconnect()
        s.child.kill('SIGTERM')
        expect((await s.exited).code).toBe(0)
      } finally {
        fs.rmSync(tokenFile, { force: true })
      }
    } finally {
      t.cleanup()
    }
  })

  it('serves ./strata-data on loopback with no arguments', async () => {
    const free = async (port: number): Promise<boolean> =>
      new Promise((resolve) => {
        const srv = net.createServer()
        srv.once('error', () => resolve(false))
        srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
      })
    if (!(await free(7070)) || !(await free(6380))) return // default ports taken on this machine: nothing to check
    const t = tempDir('strata-srv-default-')
    try {
      const s = await serverAt([], { cwd: t.dir })
      expect(s.http).toBe('127.0.0.1:7070')
      expect(s.resp).toBe('127.0.0.1:6380')
      expect(fs.existsSync(path.join(t.dir, 'strata-data'))).toBe(true)
      s.child.kill('SIGTERM')
      const exit = await s.exited
      expect({ ...exit, ...s.output() }).toMatchObject({ code: 0, signal: null })
    } finally {
      t.cleanup()
    }
  })
})
