#!/usr/bin/env node
/**
 * Write throughput of a 3-replica stratadb cluster next to a single node,
 * over RESP and HTTP, and the followers' replication lag under that load
 * (issue 19, "Numbers").
 *
 *   npm run build
 *   node bench/cluster-throughput.mjs                          # 3 rounds, 10 s per run, 64 connections, 100-byte values
 *   node bench/cluster-throughput.mjs --sync                   # every node with --sync
 *   node bench/cluster-throughput.mjs --modes single,majority,async --rounds 1
 *   node bench/cluster-throughput.mjs --json > throughput.json  # JSON on stdout, the table on stderr
 *
 * Options: --seconds (10) per measured run, --connections (64),
 * --value-bytes (100), --keyspace (100000) random keys, --rounds (3),
 * --sync, --modes (single,majority; also async), --protocols (resp,http),
 * --lag-ms (50) sampling period, --ttl (2) lease TTL of the cluster,
 * --json, --keep (keep the work dir).
 *
 * Per round and mode (the order of the modes rotates each round, so single
 * and cluster alternate): fresh data directories under /dev/shm, then
 *   single    `strata serve --dir D --http … --resp …` (one process);
 *   majority  3 × `strata serve --cluster … --node-id nN` (cluster inited
 *             with --ack majority: a write is acknowledged once 2 of 3
 *             replicas have it in their WAL), one etcd shared by the whole
 *             run, a fresh cluster name per start; the load goes to the
 *             leader;
 *   async     the same with a cluster inited with --ack async (the leader
 *             acknowledges a write once it is in its own WAL; the
 *             followers get it after).
 * Then:
 *   RESP  redis-benchmark -h 127.0.0.1 -p <resp> -t set -n N -c 64 -d 100 -r 100000 -q
 *         with N = (writes/s of a 50,000-request warm-up on the first round,
 *         else the median so far) × --seconds, so a run lasts about that
 *         long; writes/s as redis-benchmark prints it.
 *   HTTP  autocannon (devDependency, in this process): 64 connections, one
 *         request in flight each, PUT /v1/kv/<random key> with the value,
 *         for --seconds after a 2 s warm-up; writes/s = 204 responses ÷
 *         duration.
 * While each load runs on a cluster, the followers' lag is sampled every
 * --lag-ms: the leader's GET /v1/cluster (lastSequence L1), then both
 * followers' (F), then the leader's again (L2); a follower's lag, in
 * sequences (= writes), lies in [L1 − F, L2 − F] and both bounds are
 * reported (samples where the leader did not advance since the previous
 * one are left out, so idle moments do not count). The estimate in ms is
 * lag ÷ the run's writes/s.
 *
 * Output: per run a line on stderr (with the 1-minute load average of the
 * machine when the run started: other work on it shows there, and the CPU
 * seconds the server processes used during the load, from /proc, per write:
 * all three replicas for a cluster, etcd not counted); then a table with the median over the
 * rounds of each (protocol, mode), the ratio cluster ÷ single (goal ≥ 0.5
 * for majority), and the lag percentiles over all samples. Everything runs
 * on one machine: 3 replicas + etcd + the client share its cores, which a
 * single node does not have to, and /dev/shm makes fsync (--sync) almost
 * free.
 */
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import autocannon from 'autocannon'
import * as L from './cluster-lib.mjs'

const opt = L.benchOptions(import.meta.url, {
  seconds: { type: 'string', default: '10' },
  connections: { type: 'string', default: '64' },
  'value-bytes': { type: 'string', default: '100' },
  keyspace: { type: 'string', default: '100000' },
  rounds: { type: 'string', default: '3' },
  sync: { type: 'boolean', default: false },
  modes: { type: 'string', default: 'single,majority' },
  protocols: { type: 'string', default: 'resp,http' },
  'lag-ms': { type: 'string', default: '50' },
  ttl: { type: 'string', default: '2' },
})
const seconds = Number(opt.seconds)
const connections = Number(opt.connections)
const valueBytes = Number(opt['value-bytes'])
const keyspace = Number(opt.keyspace)
const rounds = Number(opt.rounds)
const lagMs = Number(opt['lag-ms'])
const modes = opt.modes.split(',')
const protocols = opt.protocols.split(',')
for (const m of modes) if (!['single', 'majority', 'async'].includes(m)) throw new Error(`unknown mode ${m}`)
const log = (s) => process.stderr.write(`${s}\n`)
const out = opt.json ? log : (s) => console.log(s)

// ---------------------------------------------------------------- RESP load: redis-benchmark

function redisBenchmark(port, n) {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-t', 'set', '-n', String(n), '-c', String(connections),
    '-d', String(valueBytes), '-r', String(keyspace), '-q']
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    const timer = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL') } catch { /* gone */ } }, (seconds * 6 + 60) * 1000)
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      const wall = (performance.now() - started) / 1000
      const m = [...stdout.matchAll(/SET: ([\d.]+) requests per second(?:, p50=([\d.]+) msec)?/g)].at(-1)
      if (code !== 0 || !m) return reject(new Error(`redis-benchmark ${args.join(' ')} → ${code ?? signal}: ${stdout.slice(-500)} ${stderr.slice(-500)}`))
      resolve({ command: `redis-benchmark ${args.join(' ')}`, rps: Number(m[1]), p50: m[2] ? Number(m[2]) : null, n, wallSeconds: wall, stderr: stderr.trim() })
    })
  })
}

// ---------------------------------------------------------------- HTTP load: autocannon

const value = Buffer.alloc(valueBytes, 'v')
let seed = 12345
function rand() { // mulberry32
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

function httpLoad(base, durationSeconds) {
  const headers = { 'content-type': 'application/octet-stream' }
  return new Promise((resolve, reject) => {
    autocannon({
      url: base,
      connections,
      pipelining: 1,
      duration: durationSeconds,
      method: 'PUT',
      headers,
      body: value,
      requests: [{
        method: 'PUT',
        headers,
        body: value,
        setupRequest: (req) => { req.path = `/v1/kv/key:${String(Math.floor(rand() * keyspace)).padStart(6, '0')}`; return req },
      }],
    }, (err, r) => (err ? reject(err) : resolve(r)))
  }).then((r) => {
    const ok = Number(r.statusCodeStats?.['204']?.count ?? 0)
    return { rps: ok / r.duration, p50: r.latency.p50, p99: r.latency.p99, ok, non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts, duration: r.duration, statusCodes: r.statusCodeStats }
  })
}

// ---------------------------------------------------------------- lag sampler

/**
 * Samples the followers' lag every lagMs until stop(). One sample: the
 * leader's GET /v1/cluster (L1), then both followers' at once (F), then the
 * leader's again (L2). The leader's true lastSequence when a follower
 * answered lies in [L1, L2], so its lag lies in [L1 − F, L2 − F]: both
 * bounds are kept (answers are not instantaneous under load; a single
 * round of three parallel requests gave even negative lags). Samples where
 * the leader did not advance since the previous one are left out.
 */
function startLagSampler(nodes, leaderNode) {
  const samples = [] // { t, lo: [..], hi: [..] }
  const followers = nodes.filter((n) => n !== leaderNode)
  let running = true
  let prev = null
  const done = (async () => {
    while (running) {
      const t = performance.now()
      const l1 = await leaderNode.info(1000)
      const fInfo = await L.infos(followers, 1000)
      const l2 = await leaderNode.info(1000)
      if (l1?.role === 'leader' && l2?.role === 'leader') {
        if (prev !== null && l1.lastSequence > prev) {
          const fol = fInfo.filter((i) => i?.role === 'follower')
          samples.push({ t, lo: fol.map((i) => Math.max(0, l1.lastSequence - i.lastSequence)), hi: fol.map((i) => l2.lastSequence - i.lastSequence), bracketMs: performance.now() - t })
        }
        prev = l2.lastSequence
      }
      const wait = lagMs - (performance.now() - t)
      if (wait > 0) await L.sleep(wait)
    }
    return samples
  })()
  return { stop: async () => { running = false; return done } }
}

// ---------------------------------------------------------------- one run

const estimates = {} // `${proto}/${mode}` → writes/s seen so far

async function runMode(mode, round, etcd, runRoot) {
  const workDir = fs.mkdtempSync(path.join(runRoot, `${mode}-r${round}-`))
  let single = null
  let cluster = null
  const results = []
  try {
    let target // { resp: port, base: http URL, nodes, leader (clusters), pids: server processes }
    if (mode === 'single') {
      single = await L.startSingle({ workDir, sync: opt.sync })
      target = { resp: single.respPort, base: single.base, nodes: null, pids: [single.child.pid] }
    } else {
      cluster = await L.startCluster({ workDir, etcd, ack: mode, sync: opt.sync, ttl: Number(opt.ttl) })
      target = { resp: cluster.leader.respPort, base: cluster.leader.base, nodes: cluster.nodes, leader: cluster.leader, pids: cluster.nodes.map((n) => n.child.pid) }
    }
    for (const proto of protocols) {
      const key = `${proto}/${mode}`
      let r
      let lag = null
      let before = null
      let cpu0 = null
      let cpu1 = null
      const load1 = os.loadavg()[0] // the machine is shared: the 1-minute load average when the run starts
      if (proto === 'resp') {
        if (estimates[key] === undefined) {
          const warm = await redisBenchmark(target.resp, 50000)
          estimates[key] = [warm.rps]
          log(`  warm-up ${key}: ${warm.rps.toFixed(0)} writes/s (${warm.command})`)
        }
        const n = Math.max(10000, Math.round(L.median(estimates[key]) * seconds))
        before = target.nodes ? await target.leader.info() : null
        cpu0 = target.pids.map(L.cpuSeconds)
        const sampler = target.nodes ? startLagSampler(target.nodes, target.leader) : null
        r = await redisBenchmark(target.resp, n)
        cpu1 = target.pids.map(L.cpuSeconds)
        if (sampler) lag = await sampler.stop()
      } else {
        await httpLoad(target.base, 2) // warm-up
        before = target.nodes ? await target.leader.info() : null
        cpu0 = target.pids.map(L.cpuSeconds)
        const sampler = target.nodes ? startLagSampler(target.nodes, target.leader) : null
        r = await httpLoad(target.base, seconds)
        cpu1 = target.pids.map(L.cpuSeconds)
        if (sampler) lag = await sampler.stop()
      }
      if (target.nodes) {
        const after = await target.leader.info()
        if (after?.role !== 'leader' || after.epoch !== before.epoch) throw new Error(`leadership changed during the run: ${JSON.stringify(before)} → ${JSON.stringify(after)}`)
        r.sequencesWritten = after.lastSequence - before.lastSequence
        r.epoch = after.epoch
      }
      ;(estimates[key] ??= []).push(r.rps)
      // CPU seconds the server processes used during the measured load (all replicas for a cluster; etcd is not counted).
      r.serverCpuSeconds = cpu1.map((c, i) => c - cpu0[i])
      const writes = proto === 'resp' ? r.n : r.ok // requests redis-benchmark completed; 204s of autocannon
      r.serverCpuMicrosPerWrite = (r.serverCpuSeconds.reduce((a, b) => a + b, 0) / writes) * 1e6
      const lags = lag ? lag.flatMap((s) => s.lo) : []
      const lagsHi = lag ? lag.flatMap((s) => s.hi) : []
      const res = { round, mode, proto, sync: opt.sync, loadavg1: load1, ...r, lagSamples: lag ? lag.length : 0, lagSeqs: lags, lagSeqsUpper: lagsHi, lagBracketMs: lag ? lag.map((s) => s.bracketMs) : [] }
      results.push(res)
      const extra = proto === 'resp'
        ? `n ${r.n} in ${r.wallSeconds.toFixed(1)} s, p50 ${r.p50} ms`
        : `p50 ${r.p50} ms, p99 ${r.p99} ms${r.non2xx || r.errors || r.timeouts ? `, non-2xx ${r.non2xx}, errors ${r.errors}, timeouts ${r.timeouts}` : ''}`
      const lagText = lags.length ? `; follower lag ≥ p50 ${L.percentile(lags, 50)} p99 ${L.percentile(lags, 99)} max ${Math.max(...lags)}, ≤ p50 ${L.percentile(lagsHi, 50)} p99 ${L.percentile(lagsHi, 99)} max ${Math.max(...lagsHi)} seqs (${lag.length} samples, bracket p50 ${L.percentile(res.lagBracketMs, 50).toFixed(1)} ms)` : ''
      log(`round ${round} ${proto.padEnd(4)} ${mode.padEnd(8)}: ${r.rps.toFixed(0).padStart(6)} writes/s (${extra}; load ${load1.toFixed(2)}; server CPU ${r.serverCpuSeconds.map((x) => x.toFixed(1)).join('+')} s, ${r.serverCpuMicrosPerWrite.toFixed(0)} µs/write)${r.sequencesWritten !== undefined ? `, leader +${r.sequencesWritten} seqs` : ''}${lagText}`)
    }
  } finally {
    if (single) await single.stop()
    if (cluster) await Promise.all(cluster.nodes.map((n) => n.stop()))
    if (!opt.keep) fs.rmSync(workDir, { recursive: true, force: true })
  }
  return results
}

// ---------------------------------------------------------------- main

async function main() {
  const runRoot = L.scratchDir('strata-throughput', { keep: opt.keep })
  log(`work dir ${runRoot}; modes ${modes.join(',')}, protocols ${protocols.join(',')}, ${rounds} rounds × ${seconds} s, ${connections} connections, ${valueBytes}-byte values, ${keyspace} keys${opt.sync ? ', --sync' : ''}`)
  const all = []
  try {
    const needsEtcd = modes.some((m) => m !== 'single')
    const etcd = needsEtcd ? await L.startEtcd(runRoot) : null
    for (let round = 1; round <= rounds; round++) {
      const order = modes.map((_, i) => modes[(i + round - 1) % modes.length])
      for (const mode of order) all.push(...await runMode(mode, round, etcd, runRoot))
    }
  } finally {
    await L.cleanup()
  }

  const summary = []
  for (const proto of protocols) {
    const base = L.median(all.filter((r) => r.proto === proto && r.mode === 'single').map((r) => r.rps))
    for (const mode of modes) {
      const rs = all.filter((r) => r.proto === proto && r.mode === mode)
      const med = L.median(rs.map((r) => r.rps))
      const lags = rs.flatMap((r) => r.lagSeqs)
      const lagsHi = rs.flatMap((r) => r.lagSeqsUpper)
      const lagMsEst = rs.flatMap((r) => r.lagSeqs.map((x) => (x / r.rps) * 1000))
      const lagMsEstHi = rs.flatMap((r) => r.lagSeqsUpper.map((x) => (x / r.rps) * 1000))
      // Per round, this mode ÷ the single node of the same round (run next to it in time): steadier than
      // the ratio of medians when the shared machine's load changes during the run.
      const paired = rs.map((r) => r.rps / all.find((x) => x.proto === proto && x.mode === 'single' && x.round === r.round)?.rps)
      summary.push({
        proto, mode, sync: opt.sync,
        rounds: rs.map((r) => Math.round(r.rps)),
        median: med,
        ratio: mode === 'single' ? null : med / base,
        pairedRatios: mode === 'single' ? null : paired,
        pairedRatioMedian: mode === 'single' ? null : L.median(paired),
        serverCpuMicrosPerWrite: L.median(rs.map((r) => r.serverCpuMicrosPerWrite)),
        lagSeqs: lags.length ? L.summarize(lags) : null, // lower bounds
        lagSeqsUpper: lagsHi.length ? L.summarize(lagsHi) : null,
        lagMsEstimate: lagMsEst.length ? L.summarize(lagMsEst) : null,
        lagMsEstimateUpper: lagMsEstHi.length ? L.summarize(lagMsEstHi) : null,
      })
    }
  }
  if (opt.json) process.stdout.write(`${JSON.stringify({ options: { seconds, connections, valueBytes, keyspace, rounds, sync: opt.sync, modes, protocols, lagMs }, summary, runs: all }, null, 2)}\n`)

  out(`\nwrite throughput, ${connections} connections, ${valueBytes}-byte values, ${seconds} s runs${opt.sync ? ', --sync' : ''} (writes/s; median of ${rounds} rounds)`)
  out(`${'protocol'.padEnd(8)} ${'mode'.padEnd(9)} ${'median'.padStart(8)} ${'÷ single'.padStart(9)} ${'paired'.padStart(7)} ${'cpu µs/w'.padStart(8)}  rounds (paired = median of each round's ratio; cpu = server CPU per write, all replicas)`)
  for (const s of summary) {
    const goal = s.mode === 'majority' ? (s.ratio >= 0.5 ? '   goal ≥ 0.5: met' : '   goal ≥ 0.5: NOT met') : ''
    const paired = s.pairedRatios ? ` (ratios ${s.pairedRatios.map((x) => x.toFixed(2)).join(', ')})` : ''
    out(`${s.proto.padEnd(8)} ${s.mode.padEnd(9)} ${s.median.toFixed(0).padStart(8)} ${(s.ratio === null ? '' : s.ratio.toFixed(3)).padStart(9)} ${(s.pairedRatioMedian === null ? '' : s.pairedRatioMedian.toFixed(3)).padStart(7)} ${s.serverCpuMicrosPerWrite.toFixed(0).padStart(8)}  ${s.rounds.join(', ')}${paired}${goal}`)
  }
  const lagRows = summary.filter((s) => s.lagSeqs)
  if (lagRows.length) {
    out(`\nfollower lag behind the leader under that load (every ${lagMs} ms, both followers, all rounds; lower bound L1 − F, upper bound L2 − F)`)
    out(`${'protocol'.padEnd(8)} ${'mode'.padEnd(9)} ${'samples'.padStart(7)}  bound  seqs p50 / p99 / max      ≈ ms p50 / p99 / max (seqs ÷ writes/s)`)
    for (const s of lagRows) {
      for (const [b, q, m] of [['≥', s.lagSeqs, s.lagMsEstimate], ['≤', s.lagSeqsUpper, s.lagMsEstimateUpper]]) {
        out(`${s.proto.padEnd(8)} ${s.mode.padEnd(9)} ${String(q.n).padStart(7)}  ${b.padEnd(5)}  ${[q.p50, q.p99, q.max].join(' / ').padEnd(22)} ${[m.p50, m.p99, m.max].map((x) => x.toFixed(1)).join(' / ')}`)
      }
    }
  }
}

main().catch(async (err) => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  await L.cleanup()
  process.exit(1)
})
