#!/usr/bin/env node
/**
 * `strata serve` under attack (issue #16), loopback only, bounded in time and
 * count. While a normal client measures its latency, at once:
 *
 *   partial   --partial-conns (1,000) unauthenticated RESP connections, each
 *             announcing a 16 MiB bulk string (`SET k <16 MiB>`) and sending
 *             only --partial-bytes (256 KiB) of it, then going silent
 *   pipeline  --pipeliners (100) authenticated clients that pipeline
 *             `GET big` (a 1 MiB value) without ever reading a reply, each
 *             writing at most --pipeline-bytes (4 MiB) of commands
 *   glob      one authenticated client looping `SCAN … MATCH *a*a*a*a*a*a*a*a*a*a*a*b
 *             COUNT 100000` and `KEYS` with that pattern over --glob-keys
 *             (2,000) keys of 60–90 a's
 *
 *   normal    one authenticated RESP client: `GET small` every 10 ms, one at
 *             a time; one HTTP keep-alive client: `GET /healthz` every 10 ms
 *
 * It reports the normal client's p50/p99/max for GET and /healthz (before the
 * attack as a baseline, and during it), the server's peak RSS (VmHWM of the
 * child it started, else the largest `used_memory_rss` INFO reported during
 * the run), and what happened to the attackers (refused, closed by the
 * server, still open). Targets: RSS < 256 MiB, p99 < 50 ms; the exit status
 * is 0 when both hold, 1 otherwise.
 *
 *   npm run build && node bench/attack.mjs
 *   node bench/attack.mjs --duration 10 --partial-conns 200 --json
 *   node bench/attack.mjs --resp 127.0.0.1:6380 --http 127.0.0.1:7070 --token SECRET   # a running server
 *
 * Without --resp it starts `node dist/cli/strata.js serve` with a random token
 * on an empty temporary directory (removed afterwards), RESP and HTTP on
 * ephemeral loopback ports. The whole run is cut off after 60 s whatever
 * happens (--duration is capped so that preload + baseline + attack fit).
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'

const HARD_LIMIT_MS = 60_000
const hardStop = !isMainThread ? undefined : setTimeout(() => {
  console.error('attack: hard time limit (60 s) reached, stopping')
  cleanup()
  process.exit(2)
}, HARD_LIMIT_MS)

const { values: opt } = parseArgs({
  args: isMainThread ? process.argv.slice(2) : [],
  options: {
    resp: { type: 'string' },
    http: { type: 'string' },
    token: { type: 'string' },
    duration: { type: 'string', default: '20' },
    baseline: { type: 'string', default: '3' },
    'partial-conns': { type: 'string', default: '1000' },
    'partial-bytes': { type: 'string', default: String(256 * 1024) },
    pipeliners: { type: 'string', default: '100' },
    'pipeline-bytes': { type: 'string', default: String(4 * 1024 * 1024) },
    'glob-keys': { type: 'string', default: '2000' },
    json: { type: 'boolean', default: false },
  },
})
const num = (name, max) => {
  const n = Number(opt[name])
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number`)
  return Math.min(n, max)
}
const durationMs = num('duration', 40) * 1000
const baselineMs = num('baseline', 5) * 1000
const partialConns = num('partial-conns', 5000)
const partialBytes = num('partial-bytes', 16 * 1024 * 1024 - 1)
const pipeliners = num('pipeliners', 1000)
const pipelineBytes = num('pipeline-bytes', 64 * 1024 * 1024)
const globKeys = num('glob-keys', 100_000)
const EVIL = '*a*a*a*a*a*a*a*a*a*a*a*b'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
let child
let tmpDir
const sockets = new Set()

function cleanup() {
  for (const s of sockets) s.destroy()
  if (child !== undefined && child.exitCode === null) child.kill('SIGKILL')
  if (tmpDir !== undefined) fs.rmSync(tmpDir, { recursive: true, force: true })
}

function hostPort(s) {
  const i = s.lastIndexOf(':')
  const host = s.slice(0, i)
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) throw new Error(`loopback only: ${s}`)
  return { host: host.replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) }
}

// ---- RESP --------------------------------------------------------------------

function command(...args) {
  let out = `*${args.length}\r\n`
  const parts = []
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a))
    parts.push(Buffer.from(`${out}$${b.length}\r\n`), b, Buffer.from('\r\n'))
    out = ''
  }
  return Buffer.concat(parts)
}

/** Parses one reply at `buf[pos]`: [value, next position] or undefined when incomplete. */
function parseReply(buf, pos) {
  const eol = buf.indexOf('\r\n', pos)
  if (eol < 0) return undefined
  const type = String.fromCharCode(buf[pos])
  const line = buf.toString('latin1', pos + 1, eol)
  if (type === '+' || type === ':') return [type === ':' ? Number(line) : line, eol + 2]
  if (type === '-') return [new Error(line), eol + 2]
  if (type === '$') {
    const n = Number(line)
    if (n < 0) return [null, eol + 2]
    if (buf.length < eol + 2 + n + 2) return undefined
    return [buf.subarray(eol + 2, eol + 2 + n), eol + 4 + n]
  }
  if (type === '*') {
    const n = Number(line)
    const out = []
    let p = eol + 2
    for (let i = 0; i < n; i++) {
      const r = parseReply(buf, p)
      if (r === undefined) return undefined
      out.push(r[0])
      p = r[1]
    }
    return [out, p]
  }
  throw new Error(`unexpected reply byte ${type}`)
}

/** A minimal request/reply RESP client (one command in flight). */
class RespClient {
  constructor(addr) {
    this.addr = addr
    this.buf = Buffer.alloc(0)
    this.waiting = undefined
  }
  connect() {
    return new Promise((resolve, reject) => {
      this.socket = net.connect(this.addr.port, this.addr.host, resolve)
      sockets.add(this.socket)
      this.socket.once('error', reject)
      this.socket.on('data', (d) => {
        this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d])
        const r = parseReply(this.buf, 0)
        if (r === undefined) return
        this.buf = this.buf.subarray(r[1])
        const w = this.waiting
        this.waiting = undefined
        w?.resolve(r[0])
      })
      this.socket.on('close', () => this.waiting?.reject(new Error('connection closed')))
    })
  }
  call(...args) {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject }
      this.socket.write(command(...args))
    })
  }
  close() {
    this.socket.destroy()
    sockets.delete(this.socket)
  }
}

async function authed(addr, token) {
  const c = new RespClient(addr)
  await c.connect()
  if (token !== undefined) {
    const r = await c.call('AUTH', token)
    if (r instanceof Error) throw r
  }
  return c
}

// ---- measurement -------------------------------------------------------------

function percentiles(samples) {
  const a = [...samples].sort((x, y) => x - y)
  const at = (q) => (a.length === 0 ? NaN : a[Math.min(a.length - 1, Math.floor(q * a.length))])
  return { n: a.length, p50: at(0.5), p99: at(0.99), max: a.length === 0 ? NaN : a[a.length - 1] }
}

/** Runs `probe` every `everyMs` (one at a time) until `stop()`; returns the latencies and errors. */
function measure(probe, everyMs) {
  const latencies = []
  let errors = 0
  let lastError
  let stopped = false
  const done = (async () => {
    while (!stopped) {
      const t = performance.now()
      try {
        await probe()
        latencies.push(performance.now() - t)
      } catch (e) {
        errors++
        lastError = e.message
        latencies.push(performance.now() - t)
      }
      const wait = everyMs - (performance.now() - t)
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    }
  })()
  return async () => {
    stopped = true
    await done
    return { ...percentiles(latencies), errors, lastError }
  }
}

function healthz(agent, addr, token) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: addr.host, port: addr.port, path: '/healthz', agent, headers: token ? { authorization: `Bearer ${token}` } : {}, timeout: 5000 }, (res) => {
      res.resume()
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`/healthz ${res.statusCode}`))))
    })
    req.on('timeout', () => req.destroy(new Error('/healthz timeout')))
    req.on('error', reject)
  })
}

function vmStatus(pid, field) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'latin1').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))
    return m === null ? undefined : Number(m[1]) * 1024
  } catch {
    return undefined
  }
}

// ---- attackers ---------------------------------------------------------------

/** `n` unauthenticated connections, each announcing a 16 MiB bulk and sending `bytes` of it. */
async function partialBulks(addr, n, bytes, stats) {
  const head = Buffer.from(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${16 * 1024 * 1024}\r\n`)
  const chunk = Buffer.alloc(Math.min(bytes, 64 * 1024), 0x78)
  const one = () =>
    new Promise((resolve) => {
      const s = net.connect(addr.port, addr.host)
      sockets.add(s)
      let sent = 0
      let settled = false
      const settle = () => {
        if (!settled) {
          settled = true
          resolve()
        }
      }
      s.on('connect', () => {
        stats.opened++
        s.write(head)
        const pump = () => {
          while (sent < bytes) {
            const c = chunk.subarray(0, Math.min(chunk.length, bytes - sent))
            sent += c.length
            stats.bytes += c.length
            if (!s.write(c)) {
              s.once('drain', pump)
              return
            }
          }
          settle()
        }
        pump()
      })
      s.on('data', (d) => {
        if (/^-ERR max/i.test(d.toString('latin1'))) stats.refused++
      })
      s.on('error', () => {})
      s.on('close', () => {
        stats.closedByServer++
        sockets.delete(s)
        settle()
      })
      // Do not wait forever for a drain that never comes (the server stopped reading: that is the point).
      setTimeout(settle, 2000).unref()
    })
  const batch = 100
  for (let i = 0; i < n; i += batch) await Promise.all(Array.from({ length: Math.min(batch, n - i) }, one))
}

/** Authenticated clients that pipeline `GET big` and never read. */
async function pipeliners_(addr, token, n, bytes, stats) {
  const cmd = command('GET', 'big')
  const block = Buffer.concat(Array.from({ length: 256 }, () => cmd))
  const one = () =>
    new Promise((resolve) => {
      const s = net.connect(addr.port, addr.host)
      sockets.add(s)
      s.on('connect', () => {
        stats.opened++
        s.pause() // never read
        if (token !== undefined) s.write(command('AUTH', token))
        let sent = 0
        const pump = () => {
          while (sent < bytes) {
            sent += block.length
            stats.bytes += block.length
            if (!s.write(block)) {
              s.once('drain', pump)
              return
            }
          }
        }
        pump()
        resolve()
      })
      s.on('error', () => {})
      s.on('close', () => {
        stats.closedByServer++
        sockets.delete(s)
        resolve()
      })
    })
  await Promise.all(Array.from({ length: n }, one))
}

/** Loops SCAN MATCH and KEYS with the pathological pattern until `until()`. */
async function globber(addr, token, until, stats) {
  const c = await authed(addr, token)
  while (!until()) {
    let cursor = '0'
    do {
      const t = performance.now()
      const r = await c.call('SCAN', cursor, 'MATCH', EVIL, 'COUNT', '100000')
      stats.maxCommandMs = Math.max(stats.maxCommandMs, performance.now() - t)
      stats.scans++
      if (r instanceof Error) {
        stats.errors++
        stats.lastError = r.message
        break
      }
      cursor = r[0].toString()
    } while (cursor !== '0' && !until())
    if (until()) break
    const t = performance.now()
    const k = await c.call('KEYS', EVIL)
    stats.maxCommandMs = Math.max(stats.maxCommandMs, performance.now() - t)
    stats.keys++
    if (k instanceof Error) {
      stats.errors++
      stats.lastError = k.message
    }
  }
  c.close()
}

// ---- main --------------------------------------------------------------------

async function startServer() {
  const entry = path.join(repo, 'dist/cli/strata.js')
  if (!fs.existsSync(entry)) throw new Error('dist/ missing: run npm run build first')
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-attack-'))
  const token = randomBytes(16).toString('hex')
  fs.writeFileSync(path.join(tmpDir, 'token'), token, { mode: 0o600 })
  const dataDir = path.join(tmpDir, 'data')
  child = spawn(process.execPath, [entry, 'serve', '--dir', dataDir, '--http', '127.0.0.1:0', '--resp', '127.0.0.1:0', '--token-file', path.join(tmpDir, 'token')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stderr.on('data', (d) => {
    if (out.length < 1e5) out += d
  })
  const ready = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d
      const m = out.match(/ready http=(\S+) resp=(\S+)/)
      if (m !== null) resolve({ http: m[1], resp: m[2] })
    })
    child.once('exit', (code) => reject(new Error(`strata serve exited (${code}) before it was ready:\n${out}`)))
  })
  return { ...ready, token }
}

async function main() {
  const target = opt.resp !== undefined ? { resp: opt.resp, http: opt.http, token: opt.token } : await startServer()
  const respAddr = hostPort(target.resp)
  const httpAddr = target.http !== undefined && target.http !== 'off' ? hostPort(target.http) : undefined
  const token = target.token

  // Preload: the normal client's key, the pipeliners' 1 MiB value, the glob victims.
  const loader = await authed(respAddr, token)
  await loader.call('SET', 'small', 'hello')
  await loader.call('SET', 'big', Buffer.alloc(1024 * 1024, 0x62))
  for (let i = 0; i < globKeys; i += 500) {
    const args = []
    for (let j = i; j < Math.min(globKeys, i + 500); j++) args.push('a'.repeat(60 + (j % 31)) + String(j).padStart(6, '0'), 'v')
    await loader.call('MSET', ...args)
  }
  loader.close()

  // The normal clients run on a thread of their own (their latency must not include this
  // thread's attack work) and connect before the attack, as a long-lived application would.
  const probes = new Worker(new URL(import.meta.url), { workerData: { respAddr, httpAddr, token } })
  const ask = (cmd) =>
    new Promise((resolve, reject) => {
      probes.once('message', resolve)
      probes.once('error', reject)
      probes.postMessage(cmd)
    })
  await ask('ready')

  let rssPeak = 0
  const rssTimer = setInterval(async () => {
    if (child !== undefined) rssPeak = Math.max(rssPeak, vmStatus(child.pid, 'VmRSS') ?? 0)
  }, 100)

  // Baseline.
  await ask('start')
  await new Promise((r) => setTimeout(r, baselineMs))
  const baseline = await ask('stop')

  // Attack.
  const partial = { opened: 0, refused: 0, closedByServer: 0, bytes: 0 }
  const pipe = { opened: 0, closedByServer: 0, bytes: 0 }
  const glob = { scans: 0, keys: 0, errors: 0, maxCommandMs: 0, lastError: undefined }
  const attackStart = performance.now()
  const until = () => performance.now() - attackStart > durationMs
  await ask('start')
  const attackers = [partialBulks(respAddr, partialConns, partialBytes, partial), pipeliners_(respAddr, token, pipeliners, pipelineBytes, pipe), globber(respAddr, token, until, glob)]
  await Promise.race([Promise.all(attackers), new Promise((r) => setTimeout(r, durationMs))])
  const remaining = durationMs - (performance.now() - attackStart)
  if (remaining > 0) await new Promise((r) => setTimeout(r, remaining))
  const during = await ask('stop')
  await ask('exit')
  let openAtEnd = 0
  for (const s of sockets) if (!s.destroyed) openAtEnd++
  clearInterval(rssTimer)

  // Peak RSS: the kernel's high-water mark of the child, else what INFO says now.
  let rssPeakBytes = child !== undefined ? Math.max(rssPeak, vmStatus(child.pid, 'VmHWM') ?? 0) : undefined
  if (rssPeakBytes === undefined) {
    try {
      const info = await authed(respAddr, token).then((c) => c.call('INFO', 'memory').finally(() => c.close()))
      rssPeakBytes = Number(String(info).match(/used_memory_rss:(\d+)/)?.[1])
    } catch {}
  }

  const mib = (b) => (b === undefined || Number.isNaN(b) ? 'n/a' : (b / 2 ** 20).toFixed(1))
  const ms = (x) => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(1))
  const worstP99 = Math.max(during.get.p99, during.healthz?.p99 ?? 0)
  const ok = (rssPeakBytes ?? Infinity) < 256 * 2 ** 20 && worstP99 < 50 && during.get.errors === 0 && (during.healthz?.errors ?? 0) === 0
  const result = {
    target: target.resp,
    durationS: durationMs / 1000,
    rssPeakMiB: Number(mib(rssPeakBytes)),
    baseline,
    during,
    attackers: { partial, pipeline: pipe, glob, openAtEnd },
    targets: { rssPeakMiB: 256, p99Ms: 50 },
    ok,
  }
  if (opt.json) console.log(JSON.stringify(result, null, 2))
  else {
    console.log(`strata attack against ${target.resp} (${durationMs / 1000} s)`)
    console.log(`server RSS peak: ${mib(rssPeakBytes)} MiB (target < 256)`)
    console.log('normal client       n      p50 ms   p99 ms   max ms   errors')
    const row = (name, r) => r && console.log(`${name.padEnd(18)}${String(r.n).padStart(6)}${ms(r.p50).padStart(9)}${ms(r.p99).padStart(9)}${ms(r.max).padStart(9)}${String(r.errors).padStart(9)}${r.lastError ? `  (${r.lastError})` : ''}`)
    row('GET baseline', baseline.get)
    row('/healthz baseline', baseline.healthz)
    row('GET attack', during.get)
    row('/healthz attack', during.healthz)
    console.log(`partial bulks: ${partial.opened} opened, ${partial.refused} refused, ${partial.closedByServer} closed by the server, ${mib(partial.bytes)} MiB sent`)
    console.log(`pipeliners: ${pipe.opened} opened, ${pipe.closedByServer} closed by the server, ${mib(pipe.bytes)} MiB of commands written`)
    console.log(`glob: ${glob.scans} SCAN, ${glob.keys} KEYS, slowest ${ms(glob.maxCommandMs)} ms, ${glob.errors} errors${glob.lastError ? ` (${glob.lastError})` : ''}`)
    console.log(`attack sockets still open at the end: ${openAtEnd}`)
    console.log(ok ? 'PASS: RSS < 256 MiB and p99 < 50 ms' : 'FAIL: RSS >= 256 MiB or p99 >= 50 ms (or normal requests failed)')
  }
  return ok
}

/** The probe thread: GET small and /healthz every 10 ms between 'start' and 'stop'. */
async function probeThread() {
  const { respAddr, httpAddr, token } = workerData
  const normal = await authed(respAddr, token)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const getProbe = async () => {
    const r = await normal.call('GET', 'small')
    if (r instanceof Error) throw r
  }
  const healthProbe = () => healthz(agent, httpAddr, token)
  let stops
  parentPort.on('message', async (cmd) => {
    if (cmd === 'ready') parentPort.postMessage('ready')
    else if (cmd === 'start') {
      stops = { get: measure(getProbe, 10), healthz: httpAddr !== undefined ? measure(healthProbe, 10) : undefined }
      parentPort.postMessage('started')
    } else if (cmd === 'stop') {
      parentPort.postMessage({ get: await stops.get(), healthz: await stops.healthz?.() })
    } else if (cmd === 'exit') {
      normal.close()
      agent.destroy()
      parentPort.postMessage('bye')
      parentPort.close()
    }
  })
}

if (!isMainThread) {
  await probeThread()
} else {
  try {
    const ok = await main()
    process.exitCode = ok ? 0 : 1
  } catch (e) {
    console.error(`attack: ${e.stack ?? e.message}`)
    process.exitCode = 2
  } finally {
    cleanup()
    clearTimeout(hardStop)
  }
}
