/**
 * The cluster tests' workload (workload.ts) and harness (cluster-harness.ts),
 * proven before the cluster exists:
 *
 * - against one ordinary `strata serve` (built dist/, a child process): a 3 s
 *   run of 10 clients (HTTP and RESP) is linearizable with nothing lost, and
 *   the checks do fail on a doctored history / final state;
 * - the same with the server SIGKILLed at ~1.5 s and restarted on the same
 *   ports 300 ms later: indeterminate ops, still linearizable, no
 *   acknowledged write lost, and the clients carry on after the restart;
 * - redirects: stand-in nodes (an HTTP server answering 503 NO_LEADER then
 *   421 NOT_LEADER, a RESP server answering -TRYAGAIN then -NOTLEADER)
 *   pointing at the real server: every client starts there and still gets
 *   its operations done;
 * - the harness with etcd (skipped without it): `cluster init` through the
 *   per-node etcd proxies, `waitForLeader` and `status` against stand-in
 *   /v1/cluster answers on the nodes' ports, and `stop()` cleans up.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { readClusterConfig } from '../../src/cluster/cluster-config.js'
import { EtcdClient } from '../../src/cluster/etcd/index.js'
import { freePort, startCluster, STRATA_CLI, type Cluster } from './cluster-harness.js'
import { skipWithoutEtcd } from './etcd-harness.js'
import { checkHistory, type HistoryOp } from './linearizability.js'
import { lostWrites, readAll, runWorkload, type Operation, type WorkloadResult } from './workload.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Everything a test opened, closed after it whatever happened. */
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

interface Served {
  child: ChildProcess
  output: () => string
  exited: Promise<void>
}

/** `node dist/cli/strata.js serve` on fixed ports; resolves once it printed its ready line. */
async function serve(dir: string, httpPort: number, respPort: number): Promise<Served> {
  const child = spawn(process.execPath, [STRATA_CLI, 'serve', '--dir', dir, '--http', `127.0.0.1:${httpPort}`, '--resp', `127.0.0.1:${respPort}`], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    return exited
  })
  let gone = false
  void exited.then(() => (gone = true))
  const deadline = performance.now() + 20_000
  while (!/ ready http=/.test(out)) {
    if (gone) throw new Error(`strata serve exited before it was ready:\n${out}`)
    if (performance.now() > deadline) throw new Error(`strata serve not ready within 20 s:\n${out}`)
    await sleep(10)
  }
  return { child, output: () => out, exited }
}

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-workload-'))
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function serverOnFreePorts(): Promise<{ dir: string; httpPort: number; respPort: number; endpoint: { http: string; resp: string }; server: Served }> {
  const dir = path.join(tempDir(), 'db')
  const httpPort = await freePort()
  const respPort = await freePort()
  const server = await serve(dir, httpPort, respPort)
  return { dir, httpPort, respPort, endpoint: { http: `127.0.0.1:${httpPort}`, resp: `127.0.0.1:${respPort}` }, server }
}

/** checkHistory, failing the test with the checker's explanation. */
function expectLinearizable(history: readonly HistoryOp[]): void {
  const r = checkHistory(history, { timeLimitMs: 20_000 })
  if (!r.ok) throw new Error(`not linearizable (${r.reason}) at key ${r.key}:\n${r.detail}`)
}

function summary(r: WorkloadResult): string {
  const kinds = new Map<string, number>()
  for (const op of r.history) kinds.set(`${op.kind}/${op.outcome}${op.rejected === true ? '/rejected' : ''}`, (kinds.get(`${op.kind}/${op.outcome}${op.rejected === true ? '/rejected' : ''}`) ?? 0) + 1)
  return `${JSON.stringify(r.counts)} keys ${r.keys.length} ${JSON.stringify(Object.fromEntries(kinds))}`
}

describe('the cluster workload against one strata serve', () => {
  it('10 clients for 3 s: linearizable, nothing lost; the checks catch a doctored history and final state', async () => {
    const { endpoint } = await serverOnFreePorts()
    // 3 keys at a time: with all 10 clients on one key only ~1% of CASes win their race (see keysInUse).
    const r = await runWorkload({ endpoints: [endpoint], clients: 10, durationMs: 3000, keysInUse: 3 })
    const info = summary(r)
    expect(r.counts.ok, info).toBeGreaterThan(500)
    expect(r.counts.unknown, info).toBe(0)
    expect(r.counts.rejected, info).toBe(0)
    expect(r.counts.redirects + r.counts.refusals, info).toBe(0)
    expect(r.history.length).toBe(r.counts.ok + r.counts.fail + r.counts.unknown)
    // Every kind of operation took part, over both protocols, and the keys rotated.
    const did = (p: (op: Operation) => boolean): number => r.history.filter(p).length
    expect(did((op) => op.kind === 'read' && op.outcome === 'ok' && String(op.process).startsWith('r')), info).toBeGreaterThan(20)
    expect(did((op) => op.kind === 'write' && op.outcome === 'ok' && String(op.process).startsWith('r')), info).toBeGreaterThan(20)
    expect(did((op) => op.kind === 'read' && op.outcome === 'ok' && String(op.process).startsWith('h')), info).toBeGreaterThan(20)
    expect(did((op) => op.kind === 'write' && op.outcome === 'ok' && String(op.process).startsWith('h')), info).toBeGreaterThan(20)
    expect(did((op) => op.kind === 'cas' && op.outcome === 'ok'), info).toBeGreaterThan(20)
    expect(did((op) => op.kind === 'cas' && op.outcome === 'fail'), info).toBeGreaterThan(0) // racing CASes: some lose
    expect(did((op) => op.kind === 'read' && op.result !== null && op.outcome === 'ok'), info).toBeGreaterThan(20)
    expect(r.keys.length, info).toBeGreaterThan(2)
    const values = r.history.filter((op) => op.value !== undefined).map((op) => op.value)
    expect(new Set(values).size).toBe(values.length) // unique values

    expectLinearizable(r.history)
    const final = await readAll(endpoint, r.keys)
    expect(final.size).toBe(r.keys.length)
    expect(lostWrites(r.history, final)).toEqual([])

    // Doctored: a key's final value set back to an earlier acknowledged value → the later writes are lost.
    const key = r.keys[0]!
    const acked = r.history.filter((op) => op.key === key && op.outcome === 'ok' && (op.kind === 'write' || op.kind === 'cas'))
    expect(acked.length).toBeGreaterThan(2)
    const lost = lostWrites(r.history, new Map([...final, [key, acked[0]!.value!]]))
    expect(lost.length).toBeGreaterThan(0)
    expect(lost.every((l) => l.key === key)).toBe(true)
    expect(lostWrites(r.history, new Map([...final, [key, null]])).length).toBe(acked.length)
    // Doctored: a read that returns a value overwritten before it started → not linearizable.
    const lastWrite = acked[acked.length - 1]!
    const stale: HistoryOp = { id: 'stale', process: 'x', key, kind: 'read', result: acked[0]!.value!, invokeMs: lastWrite.completeMs! + 1, completeMs: lastWrite.completeMs! + 2, outcome: 'ok' }
    const bad = checkHistory([...r.history, stale])
    expect(bad.ok).toBe(false)
  })

  it('kill -9 at 1.5 s, restart 300 ms later on the same ports: still linearizable, no acknowledged write lost', async () => {
    const { dir, httpPort, respPort, endpoint, server } = await serverOnFreePorts()
    let restartedAt = 0
    const chaos = (async () => {
      await sleep(1500)
      server.child.kill('SIGKILL')
      await server.exited
      await sleep(300)
      await serve(dir, httpPort, respPort)
      restartedAt = performance.now()
    })()
    const r = await runWorkload({ endpoints: [endpoint], clients: 10, durationMs: 3500, opTimeoutMs: 1000 })
    await chaos
    const info = summary(r)
    expect(restartedAt, info).toBeGreaterThan(0)
    expect(r.counts.ok, info).toBeGreaterThan(500)
    expect(r.counts.refusals, info).toBeGreaterThan(0) // clients met the closed port and retried
    expect(r.counts.unknown, info).toBeGreaterThan(0) // the ops in flight at the kill are indeterminate
    console.log(`kill -9 run: ${info}`)
    // Work went on after the restart, over both protocols.
    const after = r.history.filter((op) => op.outcome === 'ok' && op.invokeMs > restartedAt)
    expect(after.filter((op) => String(op.process).startsWith('h')).length, info).toBeGreaterThan(20)
    expect(after.filter((op) => String(op.process).startsWith('r')).length, info).toBeGreaterThan(20)

    expectLinearizable(r.history)
    const final = await readAll(endpoint, r.keys)
    expect(lostWrites(r.history, final)).toEqual([])
  })

  it('follows NO_LEADER/TRYAGAIN and NOT_LEADER answers to the leader', async () => {
    const { endpoint } = await serverOnFreePorts()
    const leader = { id: 'n2', epoch: 7, http: endpoint.http, resp: endpoint.resp, peer: '127.0.0.1:1' }

    // A follower's HTTP API: the first 3 requests 503 NO_LEADER, then 421 NOT_LEADER naming the real server.
    let httpHits = 0
    const follower = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        httpHits++
        if (httpHits <= 3) {
          res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' })
          res.end(JSON.stringify({ error: { code: 'STRATA_NO_LEADER', message: 'no leader' } }))
        } else {
          res.writeHead(421, { 'content-type': 'application/json', 'strata-leader': endpoint.http })
          res.end(JSON.stringify({ error: { code: 'STRATA_NOT_LEADER', message: 'not the leader', leader } }))
        }
      })
    })
    await new Promise<void>((resolve) => follower.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise<void>((resolve) => (follower.closeAllConnections(), follower.close(() => resolve()))))

    // A follower's RESP port: -TRYAGAIN to the first 3 commands, then -NOTLEADER.
    let respHits = 0
    const respFollower = net.createServer((socket) => {
      let buf = ''
      socket.setEncoding('latin1')
      socket.on('error', () => {})
      socket.on('data', (d: string) => {
        buf += d
        // One reply per complete command (ioredis sends arrays: *N\r\n then N bulk strings).
        for (;;) {
          const m = /^\*(\d+)\r\n/.exec(buf)
          if (m === null) return
          let at = m[0].length
          let complete = true
          for (let i = 0; i < Number(m[1]); i++) {
            const b = /^\$(\d+)\r\n/.exec(buf.slice(at))
            if (b === null || buf.length < at + b[0].length + Number(b[1]) + 2) {
              complete = false
              break
            }
            at += b[0].length + Number(b[1]) + 2
          }
          if (!complete) return
          buf = buf.slice(at)
          respHits++
          socket.write(respHits <= 3 ? '-TRYAGAIN no leader\r\n' : `-NOTLEADER ${endpoint.resp} 7\r\n`)
        }
      })
    })
    await new Promise<void>((resolve) => respFollower.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise<void>((resolve) => respFollower.close(() => resolve())))
    const fake = { http: `127.0.0.1:${(follower.address() as net.AddressInfo).port}`, resp: `127.0.0.1:${(respFollower.address() as net.AddressInfo).port}` }

    const r = await runWorkload({ endpoints: [fake, endpoint], clients: 10, durationMs: 1500, startEndpoint: 0 })
    const info = `${summary(r)} httpHits ${httpHits} respHits ${respHits}`
    // Every client started at the stand-ins and met each answer once: per protocol, the first 3 clients
    // were refused (then moved on to the next endpoint), the other 2 redirected. (fetch itself retries a
    // GET answered 421 once on a new connection, as RFC 9110 allows, so the HTTP stand-in may count more.)
    expect(r.counts.refusals, info).toBe(6)
    expect(r.counts.redirects, info).toBe(4)
    expect(respHits, info).toBe(5)
    expect(httpHits, info).toBeGreaterThanOrEqual(5)
    expect(r.counts.ok, info).toBeGreaterThan(200)
    expect(r.counts.unknown + r.counts.rejected, info).toBe(0)
    // Every client got work done.
    for (const p of ['h0', 'h1', 'h2', 'h3', 'h4', 'r0', 'r1', 'r2', 'r3', 'r4']) {
      expect(r.history.filter((op) => op.process === p && op.outcome === 'ok').length, `${p}: ${info}`).toBeGreaterThan(5)
    }
    expectLinearizable(r.history)
    // readAll follows a 421 too.
    const final = await readAll(fake.http, r.keys)
    expect(final.size).toBe(r.keys.length)
    expect(lostWrites(r.history, final)).toEqual([])
  })
})

describe.skipIf(skipWithoutEtcd())('the cluster harness without cluster nodes', () => {
  it('initialises the cluster through per-node etcd proxies; status and waitForLeader read /v1/cluster; stop cleans up', async () => {
    const cluster: Cluster = await startCluster({ startNodes: false, etcdProxy: true, name: 'harness' })
    cleanups.push(() => cluster.stop())
    expect(cluster.nodes.map((x) => x.id)).toEqual(['n1', 'n2', 'n3'])
    expect(cluster.etcdProxies.size).toBe(3)
    const ports = cluster.nodes.flatMap((x) => [x.httpPort, x.respPort, x.peerPort])
    expect(new Set(ports).size).toBe(9)
    for (const x of cluster.nodes) {
      const proxy = cluster.etcdProxies.get(x.id)!
      expect(x.url).toBe(`etcd://${proxy.address}/harness`)
      const client = new EtcdClient({ endpoints: `http://${proxy.address}`, timeoutMs: 2000 })
      try {
        expect(await readClusterConfig(client, 'harness')).toEqual({ replicas: ['n1', 'n2', 'n3'], ack: 'majority', leaseTtlSeconds: 2 })
      } finally {
        client.close()
      }
    }

    // Stand-ins for the nodes' /v1/cluster: n1 leader in epoch 5, n2 follower, n3 leader in epoch 9 (stale n1).
    const roles: Record<string, { role: string; epoch: number | string }> = { n1: { role: 'leader', epoch: 5 }, n2: { role: 'follower', epoch: 5 }, n3: { role: 'candidate', epoch: 5 } }
    for (const x of cluster.nodes) {
      const srv = http.createServer((req, res) => {
        const r = roles[x.id]!
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ nodeId: x.id, role: r.role, epoch: r.epoch, lastSequence: 10, commitSequence: '9' }))
      })
      await new Promise<void>((resolve) => srv.listen(x.httpPort, '127.0.0.1', resolve))
      cleanups.push(() => new Promise<void>((resolve) => (srv.closeAllConnections(), srv.close(() => resolve()))))
    }
    expect(await cluster.status('n2')).toEqual({ nodeId: 'n2', role: 'follower', epoch: 5, lastSequence: 10, commitSequence: 9 })
    expect((await cluster.waitForLeader(2000)).id).toBe('n1')
    await expect(cluster.waitForLeader(300, 'n1')).rejects.toThrow(/no single leader other than n1 within 300 ms/)
    roles.n3 = { role: 'leader', epoch: '9' }
    // Two claim leadership: not a single leader, unless the stale one (lower epoch) is excluded.
    await expect(cluster.waitForLeader(300)).rejects.toThrow(/n1 \(not running\) answered \{"nodeId":"n1","role":"leader","epoch":5/)
    expect((await cluster.waitForLeader(2000, 'n1')).id).toBe('n3')
    roles.n1 = { role: 'leader', epoch: 9 } // excluded, but claims the same epoch
    await expect(cluster.waitForLeader(300, 'n1')).rejects.toThrow(/no single leader other than n1/)

    const root = path.dirname(cluster.nodes[0]!.dir)
    expect(fs.existsSync(root)).toBe(true)
    await cluster.stop()
    expect(fs.existsSync(root)).toBe(false)
    expect(await cluster.status('n1')).not.toBeNull() // the stand-ins still answer; stop() touched only its own
  })
})
