#!/usr/bin/env node
/**
 * Catch-up of a restarted follower in a 3-replica stratadb cluster: by
 * checkpoint (it missed more than the leader's retained WAL) and by the
 * record stream (it missed a few thousand writes), docs/replication.md
 * "Catch-up".
 *
 *   npm run build
 *   node bench/cluster-catchup.mjs                                  # 1,000,000 writes, 3 rounds
 *   node bench/cluster-catchup.mjs --writes 200000 --rounds 1
 *   node bench/cluster-catchup.mjs --json > catchup.json            # JSON on stdout, the table on stderr
 *
 * Options: --writes N (1000000) missed by the follower in the checkpoint
 * variant, --stream-writes N (5000) missed in the stream variant,
 * --value-bytes (100), --rounds (3), --retain-mib (1, the checkpoint
 * variant's --wal-retain-mib; the stream variant keeps the default 1024),
 * --variants checkpoint,stream (both), --ttl (2), --json, --keep (keep the
 * /dev/shm work dir and logs).
 *
 * One etcd (free loopback ports, /dev/shm, --unsafe-no-fsync) for the whole
 * run. Per round and variant: a fresh cluster (cluster init --ack majority,
 * 3 × `strata serve --cluster`, data under /dev/shm, no --sync; checkpoint
 * variant: every node with --wal-retain-mib 1), then
 *   1. wait until one node says 'leader' and both others 'follower';
 *   2. SIGKILL one follower (by its pid);
 *   3. write N keys to the leader over RESP:
 *        redis-benchmark -h 127.0.0.1 -p <leader resp> -t set -n N -r N -d 100 -c 50 -P 16 -q
 *      (the 2 live replicas are a majority: every write is acknowledged);
 *   4. read the leader's lastSequence (target), restart the follower (same
 *      directory, ports, arguments) and poll its GET /v1/cluster every 20 ms:
 *        catch-up = first time it says role 'follower' with
 *                   lastSequence ≥ target, − the restart
 *      (also: restart → HTTP up, restart → role 'follower');
 *   5. scan the leader's log, from where it was at the restart, for
 *        "<id> installed a checkpoint at sequence S (B bytes, X MB/s) in T ms"
 *      (waiting up to 5 s after the catch-up for it) and report S, B, T, MB/s;
 *      the stream variant should have none;
 *   6. the size of the leader's and the caught-up follower's data directories
 *      (all files, st_size; the WAL is part of it).
 *
 * Output: a line per run on stderr, then medians over the rounds per
 * variant. Everything runs on this machine (etcd, 3 nodes, redis-benchmark),
 * so CPU contention is part of the figures; the 1-minute load average at the
 * start of each run is reported.
 */
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import * as L from './cluster-lib.mjs'

const opt = L.benchOptions(import.meta.url, {
  writes: { type: 'string', default: '1000000' },
  'stream-writes': { type: 'string', default: '5000' },
  'value-bytes': { type: 'string', default: '100' },
  rounds: { type: 'string', default: '3' },
  'retain-mib': { type: 'string', default: '1' },
  variants: { type: 'string', default: 'checkpoint,stream' },
  ttl: { type: 'string', default: '2' },
})
const writes = Number(opt.writes)
const streamWrites = Number(opt['stream-writes'])
const valueBytes = Number(opt['value-bytes'])
const rounds = Number(opt.rounds)
const variants = opt.variants.split(',')
for (const v of variants) if (!['checkpoint', 'stream'].includes(v)) throw new Error(`unknown variant ${v}`)
const log = (s) => process.stderr.write(`${s}\n`)
const out = opt.json ? log : (s) => console.log(s)

// ---------------------------------------------------------------- helpers

function redisBenchmark(port, n) {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-t', 'set', '-n', String(n), '-r', String(n),
    '-d', String(valueBytes), '-c', '50', '-P', '16', '-q']
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    // Bound: 600 s, whatever N (a slow machine fails the run rather than hang).
    const timer = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL') } catch { /* gone */ } }, 600000)
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      const wall = (performance.now() - started) / 1000
      const m = [...stdout.matchAll(/SET: ([\d.]+) requests per second/g)].at(-1)
      if (code !== 0 || !m) return reject(new Error(`redis-benchmark ${args.join(' ')} → ${code ?? signal}: ${stdout.slice(-500)} ${stderr.slice(-500)}`))
      resolve({ command: `redis-benchmark ${args.join(' ')}`, rps: Number(m[1]), wallSeconds: wall })
    })
  })
}

/** Bytes of every file under dir (st_size), 0 when it is gone. */
function dirBytes(dir) {
  let total = 0
  let entries
  try { entries = fs.readdirSync(dir, { withFileTypes: true }) } catch { return 0 }
  for (const e of entries) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) total += dirBytes(p)
    else { try { total += fs.statSync(p).size } catch { /* removed meanwhile */ } }
  }
  return total
}

const fileSize = (f) => { try { return fs.statSync(f).size } catch { return 0 } }
const readFrom = (f, offset) => { try { return fs.readFileSync(f).subarray(offset).toString('utf8') } catch { return '' } }

const CHECKPOINT_LINE = (id) => new RegExp(`\\b${id} installed a checkpoint at sequence (\\d+) \\((\\d+) bytes, ([\\d.]+) MB/s\\) in (\\d+) ms`)

// ---------------------------------------------------------------- one run

async function run(variant, round, etcd, runRoot) {
  const workDir = fs.mkdtempSync(path.join(runRoot, `${variant}-r${round}-`))
  const n = variant === 'checkpoint' ? writes : streamWrites
  const nodeArgs = variant === 'checkpoint' ? ['--wal-retain-mib', opt['retain-mib']] : []
  let cluster = null
  try {
    const load1 = os.loadavg()[0]
    cluster = await L.startCluster({ workDir, etcd, ttl: Number(opt.ttl), nodeArgs })
    const leader = await L.waitStable(cluster.nodes, 30000)
    const victim = cluster.nodes.find((x) => x !== leader)
    await victim.kill('SIGKILL')
    const lead0 = await leader.info(1000)

    const bench = await redisBenchmark(leader.respPort, n)

    const lead1 = await leader.info(2000)
    if (lead1?.role !== 'leader' || lead1.epoch !== lead0?.epoch) throw new Error(`leadership changed during the writes: ${JSON.stringify(lead0)} → ${JSON.stringify(lead1)}`)
    const target = lead1.lastSequence
    const leaderBytes = dirBytes(leader.dir)
    const logOffset = fileSize(leader.logFile)

    // Restart the follower and wait until it caught up.
    const t0 = performance.now()
    victim.start()
    await victim.waitUp(60000)
    const httpUpMs = performance.now() - t0
    let followerMs = null
    let caughtUpMs = null
    let last = null
    const end = performance.now() + 300000
    while (caughtUpMs === null) {
      if (performance.now() > end) throw new Error(`${victim.id} not caught up 300 s after its restart: ${JSON.stringify(last)}; ${victim.logTail()}`)
      if (!victim.alive) throw new Error(`${victim.id} exited: ${victim.logTail()}`)
      last = await victim.info(1000)
      const now = performance.now()
      if (last?.role === 'follower') {
        if (followerMs === null) followerMs = now - t0
        if (last.lastSequence >= target) caughtUpMs = now - t0
      }
      if (caughtUpMs === null) await L.sleep(20)
    }

    // The leader's checkpoint line (it is written once the transfer returns; wait a little for it).
    const re = CHECKPOINT_LINE(victim.id)
    let m = null
    const lineEnd = performance.now() + (variant === 'checkpoint' ? 5000 : 500)
    for (;;) {
      m = readFrom(leader.logFile, logOffset).match(re)
      if (m || performance.now() > lineEnd) break
      await L.sleep(50)
    }
    const needs = /needs a checkpoint/.test(readFrom(leader.logFile, logOffset))
    const lead2 = await leader.info(1000)
    const r = {
      variant, round, loadavg1: load1,
      leader: leader.id, follower: victim.id,
      writes: n, benchCommand: bench.command, writesPerSecond: bench.rps, writeSeconds: bench.wallSeconds,
      missedSequences: target - (lead0?.lastSequence ?? 0),
      targetSequence: target,
      followerLastSequence: last.lastSequence,
      httpUpMs, followerMs, caughtUpMs,
      checkpoint: m ? { sequence: Number(m[1]), bytes: Number(m[2]), mbPerSecond: Number(m[3]), ms: Number(m[4]) } : null,
      needsCheckpointLine: needs,
      leaderDataBytes: leaderBytes,
      followerDataBytes: dirBytes(victim.dir),
      leaderStillLeader: lead2?.role === 'leader' && lead2.epoch === lead1.epoch,
    }
    const mb = (b) => (b / 1e6).toFixed(1)
    log(`round ${round} ${variant.padEnd(10)}: kill ${r.follower}, ${n} writes in ${r.writeSeconds.toFixed(1)} s (${r.writesPerSecond.toFixed(0)}/s, ${r.missedSequences} seqs); `
      + `restart → http ${httpUpMs.toFixed(0)} ms, follower ${followerMs.toFixed(0)} ms, caught up ${caughtUpMs.toFixed(0)} ms; `
      + (r.checkpoint ? `checkpoint at ${r.checkpoint.sequence}: ${r.checkpoint.bytes} B (${mb(r.checkpoint.bytes)} MB) in ${r.checkpoint.ms} ms, ${r.checkpoint.mbPerSecond} MB/s; ` : `no checkpoint line${needs ? ' (but a "needs a checkpoint" line)' : ''}; `)
      + `leader data ${mb(leaderBytes)} MB, follower ${mb(r.followerDataBytes)} MB; load ${load1.toFixed(2)}`)
    return r
  } finally {
    if (cluster) await Promise.all(cluster.nodes.map((x) => x.stop()))
    if (!opt.keep) fs.rmSync(workDir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------- main

async function main() {
  const runRoot = L.scratchDir('strata-catchup', { keep: opt.keep })
  log(`work dir ${runRoot}; variants ${variants.join(',')}, ${rounds} rounds; checkpoint: ${writes} writes, --wal-retain-mib ${opt['retain-mib']}; stream: ${streamWrites} writes, default retention; ${valueBytes}-byte values`)
  const all = []
  try {
    const etcd = await L.startEtcd(runRoot)
    for (let round = 1; round <= rounds; round++) {
      for (const v of variants) all.push(await run(v, round, etcd, runRoot))
    }
  } finally {
    await L.cleanup()
  }

  const summary = {}
  for (const v of variants) {
    const rs = all.filter((r) => r.variant === v)
    const med = (f) => { const xs = rs.map(f).filter((x) => typeof x === 'number'); return xs.length ? L.median(xs) : null }
    summary[v] = {
      runs: rs.length,
      writes: rs[0]?.writes,
      checkpointRuns: rs.filter((r) => r.checkpoint).length,
      writesPerSecond: med((r) => r.writesPerSecond),
      missedSequences: med((r) => r.missedSequences),
      httpUpMs: med((r) => r.httpUpMs),
      followerMs: med((r) => r.followerMs),
      caughtUpMs: med((r) => r.caughtUpMs),
      checkpointBytes: med((r) => r.checkpoint?.bytes),
      checkpointMs: med((r) => r.checkpoint?.ms),
      checkpointMBps: med((r) => r.checkpoint?.mbPerSecond),
      leaderDataBytes: med((r) => r.leaderDataBytes),
      followerDataBytes: med((r) => r.followerDataBytes),
      perRound: rs.map((r) => ({ caughtUpMs: Math.round(r.caughtUpMs), checkpointBytes: r.checkpoint?.bytes ?? null, checkpointMs: r.checkpoint?.ms ?? null, checkpointMBps: r.checkpoint?.mbPerSecond ?? null, leaderDataBytes: r.leaderDataBytes })),
    }
  }
  if (opt.json) process.stdout.write(`${JSON.stringify({ options: { writes, streamWrites, valueBytes, rounds, retainMib: Number(opt['retain-mib']), variants }, summary, runs: all }, null, 2)}\n`)

  const f0 = (x) => (x === null || x === undefined ? '—' : x.toFixed(0))
  const mb = (x) => (x === null || x === undefined ? '—' : (x / 1e6).toFixed(1))
  out(`\nfollower catch-up after a restart, 3 replicas, ack majority, ${valueBytes}-byte values (medians of ${rounds} rounds; ms from the restart)`)
  out(`${'variant'.padEnd(10)} ${'writes'.padStart(8)} ${'seqs'.padStart(8)} ${'http up'.padStart(8)} ${'follower'.padStart(8)} ${'caught up'.padStart(9)} ${'ckpt'.padStart(4)} ${'ckpt MB'.padStart(8)} ${'ckpt ms'.padStart(8)} ${'MB/s'.padStart(6)} ${'leader MB'.padStart(9)}  caught up per round`)
  for (const v of variants) {
    const s = summary[v]
    out(`${v.padEnd(10)} ${String(s.writes).padStart(8)} ${f0(s.missedSequences).padStart(8)} ${f0(s.httpUpMs).padStart(8)} ${f0(s.followerMs).padStart(8)} ${f0(s.caughtUpMs).padStart(9)} ${`${s.checkpointRuns}/${s.runs}`.padStart(4)} ${mb(s.checkpointBytes).padStart(8)} ${f0(s.checkpointMs).padStart(8)} ${(s.checkpointMBps === null ? '—' : s.checkpointMBps.toFixed(1)).padStart(6)} ${mb(s.leaderDataBytes).padStart(9)}  ${s.perRound.map((p) => p.caughtUpMs).join(', ')}`)
  }
}

main().catch(async (err) => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  await L.cleanup()
  process.exit(1)
})
