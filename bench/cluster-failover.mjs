#!/usr/bin/env node
/**
 * Failover time of a 3-replica stratadb cluster (issue 19, "Numbers"):
 * SIGKILL of the leader → the first acknowledged write on the new leader.
 *
 *   npm run build
 *   node bench/cluster-failover.mjs --ttl 1 --trials 30
 *   node bench/cluster-failover.mjs --ttl 2 --trials 30 --json > failover-ttl2.json
 *
 * Options: --trials N (30), --ttl 1|2|… (lease TTL given to `strata cluster
 * init`, seconds; 2), --poll-ms (15), --sync (nodes run with --sync),
 * --ack majority|async (majority), --json (one JSON object on stdout instead
 * of the table, which then goes to stderr), --keep (keep the /dev/shm work dir and logs).
 *
 * It starts one etcd (free loopback ports, /dev/shm, --unsafe-no-fsync,
 * heartbeat 50 ms, election timeout 500 ms) and 3 `strata serve --cluster`
 * nodes from dist/, a fresh cluster name per run. A writer keeps one HTTP
 * PUT of a 100-byte value in flight at all times, to the leader (it follows
 * 421 redirects through the Strata-Leader header; on 503 or a connection
 * error it retries the next node after 10 ms). Then, per trial:
 *
 *   1. wait until one node says 'leader' and both others 'follower' in its
 *      epoch, and the writer has had an ack from that leader;
 *   2. t0 = now; SIGKILL the leader (by its pid);
 *   3. every --poll-ms, send a PUT to each surviving node (at most 4 in
 *      flight per node, 5 s deadline each) and GET /v1/cluster of each;
 *      failover = (arrival of the first 204 from a surviving node, of a
 *      probe or of the writer, for a request sent after t0) − t0.
 *      Also recorded: `elected` = first time a survivor's GET /v1/cluster
 *      said role 'leader' (the takeover may still be running then), and the
 *      writer's gap (its first ack after t0 − its last ack before t0);
 *   4. restart the killed node (same directory and ports) and wait until it
 *      says 'follower' and its lastSequence reached the leader's
 *      lastSequence read when it first said 'follower' (`rejoin`, from the
 *      restart).
 *
 * Output: one line per trial on stderr, then p50/p99/max of each figure and
 * the goal check "p99 < 2 × TTL". With 30 trials the p99 (nearest rank) is
 * the maximum. Everything runs on this machine (etcd, 3 nodes, the client),
 * so CPU contention is part of the figure.
 */
import * as os from 'node:os'
import { performance } from 'node:perf_hooks'
import * as L from './cluster-lib.mjs'

const opt = L.benchOptions(import.meta.url, {
  trials: { type: 'string', default: '30' },
  ttl: { type: 'string', default: '2' },
  'poll-ms': { type: 'string', default: '15' },
  ack: { type: 'string', default: 'majority' },
  sync: { type: 'boolean', default: false },
})
const trials = Number(opt.trials)
const ttl = Number(opt.ttl)
const pollMs = Number(opt['poll-ms'])
const log = (s) => process.stderr.write(`${s}\n`)
const VALUE = 'v'.repeat(100)

// ---------------------------------------------------------------- the writer

/**
 * One PUT in flight at a time, to the node it believes is the leader.
 * onAck(node, sentAt, ackAt) is called for every 204.
 */
class Writer {
  constructor(nodes, onAck) {
    this.nodes = nodes
    this.onAck = onAck
    this.target = nodes[0]
    this.seq = 0
    this.running = true
    this.acks = 0
    this.errors = {}
    this.done = this.loop()
  }

  count(kind) { this.errors[kind] = (this.errors[kind] ?? 0) + 1 }

  nextNode() {
    const i = this.nodes.indexOf(this.target)
    this.target = this.nodes[(i + 1) % this.nodes.length]
  }

  async loop() {
    while (this.running) {
      const node = this.target
      const sentAt = performance.now()
      try {
        const res = await fetch(`${node.base}/v1/kv/w${this.seq++}`, { method: 'PUT', body: VALUE, signal: AbortSignal.timeout(5000) })
        const body = await res.text()
        if (res.status === 204) {
          this.acks++
          this.onAck(node, sentAt, performance.now())
          continue
        }
        if (res.status === 421) {
          this.count('421')
          const to = res.headers.get('strata-leader') ?? JSON.parse(body)?.leader?.http
          const n = this.nodes.find((x) => x.http === to)
          if (n && n !== node) { this.target = n; continue }
          this.nextNode()
        } else {
          let code = String(res.status)
          try { code += ` ${JSON.parse(body).code}` } catch { /* not JSON */ }
          this.count(code)
          this.nextNode()
        }
      } catch (err) {
        this.count(err.name === 'TimeoutError' ? 'timeout' : 'conn-error')
        this.nextNode()
      }
      await L.sleep(10)
    }
  }

  async stop() {
    this.running = false
    await this.done
  }
}

// ---------------------------------------------------------------- one trial

async function trial(k, nodes, writerAcks) {
  let leader = await L.waitStable(nodes, 60000)
  // The writer must have reached this leader before the kill.
  const seen = writerAcks.length
  const deadline = Date.now() + 10000
  while (!writerAcks.slice(seen).some((a) => a.node === leader)) {
    if (Date.now() > deadline) throw new Error('the writer got no ack from the leader in 10 s')
    await L.sleep(10)
  }
  const before = await leader.info()
  const survivors = nodes.filter((n) => n !== leader)

  // Kill.
  const t0 = performance.now()
  process.kill(leader.child.pid, 'SIGKILL')
  const victim = leader

  let firstAck = null // { at, node, by }
  let elected = null
  const inflight = new Map(survivors.map((n) => [n, 0]))
  let probeSeq = 0
  const probe = async (node) => {
    inflight.set(node, inflight.get(node) + 1)
    try {
      const res = await fetch(`${node.base}/v1/kv/p${k}-${probeSeq++}`, { method: 'PUT', body: VALUE, signal: AbortSignal.timeout(5000) })
      await res.arrayBuffer()
      if (res.status === 204 && firstAck === null) firstAck = { at: performance.now(), node, by: 'probe' }
    } catch { /* down, timeout */ } finally {
      inflight.set(node, inflight.get(node) - 1)
    }
  }
  const look = async (node) => {
    const i = await node.info(1000)
    if (i?.role === 'leader' && elected === null) elected = { at: performance.now(), node, epoch: i.epoch }
  }
  const writerFrom = writerAcks.length
  const limit = t0 + 10 * ttl * 1000 + 10000
  while (firstAck === null || elected === null) {
    // The writer's acks count too (a request sent after the kill, to a survivor).
    for (const a of writerAcks.slice(writerFrom)) {
      if (a.node !== victim && a.sentAt >= t0 && (firstAck === null || a.ackAt < firstAck.at)) firstAck = { at: a.ackAt, node: a.node, by: 'writer' }
    }
    if (performance.now() > limit) break
    for (const n of survivors) {
      if (firstAck === null && inflight.get(n) < 4) probe(n)
      if (elected === null) look(n)
    }
    await L.sleep(pollMs)
  }
  await victim.child.exited
  const lastBefore = writerAcks.slice(0, writerFrom).at(-1)
  const firstWriterAfter = writerAcks.slice(writerFrom).find((a) => a.node !== victim && a.sentAt >= t0)
  const r = {
    trial: k,
    killed: victim.id,
    oldEpoch: before?.epoch,
    failoverMs: firstAck ? firstAck.at - t0 : null,
    firstAckBy: firstAck?.by,
    newLeader: firstAck?.node.id ?? elected?.node.id,
    newEpoch: elected?.epoch,
    electedMs: elected ? elected.at - t0 : null,
    writerGapMs: null,
  }
  // Wait (bounded) for the writer's own first ack after the kill, for its gap.
  const gapDeadline = performance.now() + 5000
  let wa = firstWriterAfter
  while (!wa && performance.now() < gapDeadline) {
    await L.sleep(10)
    wa = writerAcks.slice(writerFrom).find((a) => a.node !== victim && a.sentAt >= t0)
  }
  if (wa && lastBefore) r.writerGapMs = wa.ackAt - lastBefore.ackAt

  // Restart the victim and wait until it caught up.
  const tr = performance.now()
  victim.start()
  await victim.waitUp(30000)
  let target = null
  const end = Date.now() + 60000
  for (;;) {
    if (Date.now() > end) throw new Error(`${victim.id} did not rejoin in 60 s`)
    const [mine, lead] = await Promise.all([victim.info(), L.findLeader(survivors)])
    if (mine?.role === 'follower') {
      if (target === null && lead) target = lead.info.lastSequence
      if (target !== null && mine.lastSequence >= target) break
    }
    await L.sleep(20)
  }
  r.rejoinMs = performance.now() - tr
  return r
}

// ---------------------------------------------------------------- main

async function main() {
  const work = L.scratchDir(`strata-failover-ttl${ttl}`, { keep: opt.keep })
  log(`work dir ${work}; etcd + 3 nodes, lease TTL ${ttl} s, ack ${opt.ack}${opt.sync ? ', --sync' : ''}, ${trials} trials`)
  const cluster = await L.startCluster({ workDir: work, ttl, ack: opt.ack, sync: opt.sync })
  log(`cluster ${cluster.clusterUrl}: leader ${cluster.leader.id}`)
  const writerAcks = []
  const writer = new Writer(cluster.nodes, (node, sentAt, ackAt) => {
    writerAcks.push({ node, sentAt, ackAt })
  })
  const results = []
  const loadBefore = os.loadavg()
  try {
    for (let k = 1; k <= trials; k++) {
      const r = await trial(k, cluster.nodes, writerAcks)
      results.push(r)
      const f = (x) => (x === null || x === undefined ? '—' : x.toFixed(0))
      log(`trial ${String(k).padStart(2)}: kill ${r.killed} (epoch ${r.oldEpoch}) → ${r.newLeader} (epoch ${r.newEpoch}): failover ${f(r.failoverMs)} ms (first ack by ${r.firstAckBy}), 'leader' seen ${f(r.electedMs)} ms, writer gap ${f(r.writerGapMs)} ms; rejoin ${f(r.rejoinMs)} ms`)
      writerAcks.splice(0, writerAcks.length - 1) // keep memory bounded: only the last ack matters now
      await L.sleep(200)
    }
  } finally {
    await writer.stop()
    await L.cleanup()
  }

  const pick = (key) => results.map((r) => r[key]).filter((x) => typeof x === 'number')
  const fo = pick('failoverMs')
  const summary = {
    ttlSeconds: ttl,
    ack: opt.ack,
    sync: opt.sync,
    trials: results.length,
    failedTrials: results.filter((r) => r.failoverMs === null).length,
    failoverMs: L.summarize(fo),
    electedMs: L.summarize(pick('electedMs')),
    writerGapMs: L.summarize(pick('writerGapMs')),
    rejoinMs: L.summarize(pick('rejoinMs')),
    goal: { p99LessThanMs: 2 * ttl * 1000, met: L.percentile(fo, 99) < 2 * ttl * 1000 && fo.length === results.length },
    writer: { acks: writer.acks, refusals: writer.errors },
    loadavg: { before: loadBefore, after: os.loadavg() }, // the machine is shared: 1, 5, 15-minute load averages
  }
  // With --json: the JSON on stdout, the table on stderr.
  if (opt.json) process.stdout.write(`${JSON.stringify({ summary, trials: results }, null, 2)}\n`)
  const out = opt.json ? log : (s) => console.log(s)
  const row = (name, s) => `${name.padEnd(30)} ${String(s.n).padStart(3)} ${[s.min, s.p50, s.p99, s.max].map((x) => x.toFixed(0).padStart(7)).join(' ')}`
  out(`\nfailover, 3 replicas, lease TTL ${ttl} s, ack ${opt.ack}${opt.sync ? ', --sync' : ''} (ms)`)
  out(`${'figure'.padEnd(30)}   n     min     p50     p99     max`)
  out(row('kill → first ack on new leader', summary.failoverMs))
  out(row("kill → survivor says 'leader'", summary.electedMs))
  out(row('writer gap (last ack → next)', summary.writerGapMs))
  out(row('restart → rejoined, caught up', summary.rejoinMs))
  out(`goal p99 < 2 × TTL = ${2 * ttl * 1000} ms: ${summary.goal.met ? 'met' : 'NOT met'} (p99 ${summary.failoverMs.p99.toFixed(0)} ms${summary.failedTrials ? `, ${summary.failedTrials} trials without failover` : ''})`)
  out(`writer: ${writer.acks} acks; refusals/errors ${JSON.stringify(writer.errors)}`)
  out(`load average (1, 5, 15 min) before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${summary.loadavg.after.map((x) => x.toFixed(2)).join(' ')}`)
}

main().catch(async (err) => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  await L.cleanup()
  process.exit(1)
})
