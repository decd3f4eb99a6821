#!/usr/bin/env node
/**
 * HTTP load benchmark of `strata serve` with autocannon (a devDependency).
 *
 *   npm run build && node bench/http-load.mjs
 *   node bench/http-load.mjs --runs 3 --duration 10 --connections 50
 *   node bench/http-load.mjs --tests get --pipelining 16
 *   node bench/http-load.mjs --url http://127.0.0.1:7070      # an already running server (its data is overwritten)
 *
 * Without --url it starts `strata serve` from the built dist/ in a child
 * process on 127.0.0.1 (a free port, RESP off) with a temporary data
 * directory (removed afterwards), preloads --keys keys with --value-bytes
 * values through POST /v1/batch, then runs each test for --duration seconds
 * with --connections keep-alive connections:
 *
 *   get       GET /v1/kv/{random preloaded key}              (200, the value)
 *   put       PUT /v1/kv/{random key}, --value-bytes body     (204, acknowledged once in the WAL: survives kill -9)
 *   put-sync  PUT /v1/kv/{random key}?sync=1                  (204 after fdatasync: survives power loss)
 *
 * Keys are drawn uniformly from the preloaded set (16-digit decimal keys),
 * so every GET finds its key and every PUT overwrites one. It reports
 * requests per second (2xx responses ÷ duration) and autocannon's latency
 * percentiles (p50, p99, from the time a request is written until its
 * response is read, so with --pipelining they include waiting behind the
 * requests before it). With --runs N the tests go round N times and the
 * table shows the median of each figure; the raw runs follow it.
 *
 * autocannon runs in this process, on one thread, on the same machine as
 * the server: on a small machine the client's CPU is part of the figure.
 * --calibrate adds a row `ceiling`: the same GET load against a minimal
 * node:http server (a child process answering every request with a 200
 * and --value-bytes bytes), i.e. what this client and machine can do at
 * most with Node's HTTP stack on the server side.
 */
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { SeededRandom } from '../dist/cli/bench/key-stream.js'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

const { values: opt } = parseArgs({
  options: {
    connections: { type: 'string', default: '50' },
    duration: { type: 'string', default: '10' },
    pipelining: { type: 'string', default: '1' },
    keys: { type: 'string', default: '100000' },
    'value-bytes': { type: 'string', default: '100' },
    tests: { type: 'string', default: 'get,put,put-sync' },
    runs: { type: 'string', default: '1' },
    sync: { type: 'boolean', default: false },
    calibrate: { type: 'boolean', default: false },
    url: { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})

if (opt.help) {
  console.log(`usage: node bench/http-load.mjs [options]
  --connections N    keep-alive connections (50)
  --duration S       seconds per test (10)
  --pipelining N     requests in flight per connection (1)
  --keys N           preloaded keys, drawn uniformly (100000)
  --value-bytes N    value size (100)
  --tests LIST       get,put,put-sync (all three)
  --runs N           repetitions of the test list; medians (1)
  --sync             start the server with --sync (every write fsynced)
  --calibrate        also run 'get' against a minimal node:http server (client and machine ceiling)
  --url URL          use a running server instead of starting one
  --json FILE        write every raw result as JSON`)
  process.exit(0)
}

const int = (name, min = 1) => {
  const n = Number(opt[name])
  if (!Number.isInteger(n) || n < min) {
    console.error(`http-load: --${name} must be an integer ≥ ${min} (got ${opt[name]})`)
    process.exit(2)
  }
  return n
}
const connections = int('connections')
const duration = int('duration')
const pipelining = int('pipelining')
const keyCount = int('keys')
const valueBytes = int('value-bytes', 0)
const runs = int('runs')
const TESTS = {
  ceiling: { method: 'GET', query: '', expect: 200 },
  get: { method: 'GET', query: '', expect: 200 },
  put: { method: 'PUT', query: '', expect: 204 },
  'put-sync': { method: 'PUT', query: '?sync=1', expect: 204 },
}
const tests = opt.tests.split(',').map((t) => t.trim()).filter(Boolean)
for (const t of tests) {
  if (!(t in TESTS) || t === 'ceiling') {
    console.error(`http-load: unknown test '${t}' (known: get, put, put-sync)`)
    process.exit(2)
  }
}

/** The bench's seeded PRNG (dist/cli/bench/key-stream.js), so every run draws the same key sequence per connection. */
function prng(seed) {
  const random = new SeededRandom(seed)
  return () => random.nextUint32() / 4294967296
}

const keyOf = (i) => String(i).padStart(16, '0')
const valueRandom = prng(42)
const VALUE_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
const value = Buffer.from(Array.from({ length: valueBytes }, () => VALUE_CHARS[Math.floor(valueRandom() * VALUE_CHARS.length)]).join(''), 'latin1')

// ---- server -------------------------------------------------------------------------

async function startStrata() {
  const entry = path.join(repo, 'dist/server/index.js')
  if (!fs.existsSync(entry)) {
    console.error(`http-load: ${entry} is missing; run npm run build first`)
    process.exit(2)
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-http-load-'))
  // A launcher file rather than `node -e`: the engine's worker threads inherit execArgv.
  const launcher = path.join(work, 'serve.mjs')
  fs.writeFileSync(
    launcher,
    `import { runServe } from ${JSON.stringify(entry)}\ntry { await runServe(process.argv.slice(2)) } catch (e) { console.error(e.message); process.exitCode = 1 }\n`,
  )
  const args = [launcher, '--dir', path.join(work, 'data'), '--http', '127.0.0.1:0', '--resp', 'off']
  if (opt.sync) args.push('--sync')
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  child.stderr.on('data', (d) => (log += d))
  const port = await readyPort(child, (code, out) => `strata serve exited (${code}) before it was ready:\n${out}${log}`)
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    }
    fs.rmSync(work, { recursive: true, force: true })
  }
  return { url: `http://127.0.0.1:${port}`, stop, pid: child.pid }
}

/** The port a child server prints in its `ready http=host:port` line; rejects with `failure(code, output)` if it exits first. */
function readyPort(child, failure) {
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      const m = /ready http=[^\s]*:(\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    child.on('exit', (code) => reject(new Error(failure(code, out))))
  })
}

/** A minimal node:http server in a child process (the --calibrate ceiling). */
async function startCeiling() {
  const code = `const http = require('node:http'); const v = Buffer.alloc(${valueBytes}, 97);
http.createServer({ noDelay: true }, (req, res) => { req.resume(); req.on('end', () => { res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': v.length }); res.end(v) }) })
  .listen(0, '127.0.0.1', function () { console.log('ready http=127.0.0.1:' + this.address().port) })`
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await readyPort(child, (code) => `ceiling server exited (${code})`)
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r))
        child.kill('SIGTERM')
        await exited
      }
    },
  }
}

/** Puts every key through POST /v1/batch, 1,000 per batch, 4 batches in flight. */
async function preload(url) {
  const started = performance.now()
  const per = 1000
  const text = value.toString('latin1')
  let next = 0
  const worker = async () => {
    while (next < keyCount) {
      const from = next
      next = Math.min(keyCount, next + per)
      const ops = []
      for (let i = from; i < next; i++) ops.push({ type: 'put', key: keyOf(i), value: text })
      const res = await fetch(`${url}/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ops) })
      if (res.status !== 200) throw new Error(`preload: POST /v1/batch answered ${res.status}: ${await res.text()}`)
      await res.arrayBuffer()
    }
  }
  await Promise.all([worker(), worker(), worker(), worker()])
  return (performance.now() - started) / 1000
}

// ---- load ---------------------------------------------------------------------------

let seed = 1
function runTest(url, name) {
  const t = TESTS[name]
  const random = prng(seed++)
  const headers = t.method === 'PUT' ? { 'content-type': 'application/octet-stream' } : {}
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections,
        pipelining,
        duration,
        method: t.method,
        headers,
        body: t.method === 'PUT' ? value : undefined,
        requests: [
          {
            method: t.method,
            headers,
            body: t.method === 'PUT' ? value : undefined,
            setupRequest: (req) => {
              req.path = `/v1/kv/${keyOf(Math.floor(random() * keyCount))}${t.query}`
              return req
            },
          },
        ],
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    )
  }).then((r) => {
    const ok = r.statusCodeStats?.[String(t.expect)]?.count ?? r['2xx']
    const seconds = r.duration
    return {
      test: name,
      rps: Number(ok) / seconds,
      p50: r.latency.p50,
      p99: r.latency.p99,
      max: r.latency.max,
      ok: Number(ok),
      non2xx: r.non2xx,
      errors: r.errors,
      timeouts: r.timeouts,
      statusCodes: r.statusCodeStats,
    }
  })
}

// ---- main ---------------------------------------------------------------------------

const median = (xs) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}
const fmtRps = (x) => (x >= 1e5 ? `${(x / 1e3).toFixed(0)}k` : `${(x / 1e3).toFixed(1)}k`)

const server = opt.url === undefined ? await startStrata() : { url: opt.url.replace(/\/$/, ''), stop: async () => {} }
const results = []
try {
  const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'))
  const acVersion = JSON.parse(fs.readFileSync(path.join(repo, 'node_modules/autocannon/package.json'), 'utf8')).version
  console.log(`strata ${pkg.version} at ${server.url}${opt.url ? '' : ` (started here${opt.sync ? ', --sync' : ''})`}; autocannon ${acVersion}; node ${process.version}`)
  console.log(`machine: ${os.cpus().length} cpus, ${os.type()} ${os.release()}; server and client share it`)
  const preloadSeconds = await preload(server.url)
  console.log(`preloaded ${keyCount} keys × ${valueBytes} B values in ${preloadSeconds.toFixed(1)} s (POST /v1/batch, 1,000 per batch)`)
  const ceiling = opt.calibrate ? await startCeiling() : undefined
  try {
    for (let run = 1; run <= runs; run++) {
      for (const name of tests) {
        const r = await runTest(server.url, name)
        r.run = run
        results.push(r)
        report(r)
      }
      if (ceiling !== undefined) {
        const r = await runTest(ceiling.url, 'ceiling')
        r.run = run
        results.push(r)
        report(r)
      }
    }
  } finally {
    await ceiling?.stop()
  }
} finally {
  await server.stop()
}
if (opt.calibrate) tests.push('ceiling')

function report(r) {
  process.stderr.write(`run ${r.run} ${r.test}: ${fmtRps(r.rps)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms${r.non2xx || r.errors || r.timeouts ? `, non-2xx ${r.non2xx}, errors ${r.errors}, timeouts ${r.timeouts}` : ''}\n`)
}
console.log()
console.log(`== ${connections} connections, pipelining ${pipelining}, ${duration} s per test, ${keyCount} keys, ${valueBytes} B values, ${runs === 1 ? 'one run' : `median of ${runs} runs`} ==`)
console.log(`${'test'.padEnd(10)}${'req/s'.padStart(10)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'max ms'.padStart(9)}${'not ok'.padStart(9)}`)
for (const name of tests) {
  const rs = results.filter((r) => r.test === name)
  const bad = rs.reduce((n, r) => n + r.non2xx + r.errors + r.timeouts, 0)
  console.log(
    `${name.padEnd(10)}${fmtRps(median(rs.map((r) => r.rps))).padStart(10)}${String(median(rs.map((r) => r.p50))).padStart(9)}${String(median(rs.map((r) => r.p99))).padStart(9)}${String(median(rs.map((r) => r.max))).padStart(9)}${String(bad).padStart(9)}`,
  )
}
console.log('req/s = expected-status responses ÷ duration; latencies from autocannon; not ok = non-2xx + errors + timeouts over all runs')
if (runs > 1) {
  console.log('\nper run:')
  for (const r of results) console.log(`  run ${r.run} ${r.test.padEnd(9)} ${fmtRps(r.rps).padStart(7)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms`)
}
if (opt.json) fs.writeFileSync(opt.json, JSON.stringify({ connections, duration, pipelining, keys: keyCount, valueBytes, runs, results }, null, 2))
if (results.some((r) => r.non2xx + r.errors + r.timeouts > 0)) process.exitCode = 1
