/**
 * `strata cluster init` and `strata cluster status`, the built CLI run as a
 * process against a real etcd (etcd-harness.ts):
 *
 * - init creates the config key; again with the same config (replicas in
 *   another order) exits 0 and changes nothing; with a different one exits
 *   1 showing both; a bad URL exits 2; etcd unreachable exits 1;
 * - status of a cluster without members or leader: replicas `down`, "no
 *   leader", exit 1;
 * - status with members and a leader key written here as nodes would, each
 *   member's HTTP address a small server of this test answering
 *   GET /v1/cluster (two answer, the third's port is closed): roles from
 *   the nodes, lag from the leader's last sequence, `unreachable`, exit 0;
 *   `--json` gives the same as one object.
 *
 * Without etcd the tests skip, except under CI=true or STRATA_REQUIRE_ETCD=1.
 */
import { spawn } from 'node:child_process'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import * as path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readClusterConfig, readMembers } from '../../src/cluster/cluster-config.js'
import { EtcdClient } from '../../src/cluster/etcd/index.js'
import { freePort, skipWithoutEtcd, startEtcd, type EtcdInstance } from './etcd-harness.js'

const CLI = path.join(import.meta.dirname, '..', '..', 'dist', 'cli', 'strata.js')

interface Run {
  status: number | null
  stdout: string
  stderr: string
}

/** Runs the CLI without blocking this process (whose servers the CLI asks). */
function strata(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (status) => {
      clearTimeout(timer)
      resolve({ status, stdout, stderr })
    })
  })
}

/** A stand-in for a node's HTTP API: answers GET /v1/cluster with `body`. */
async function fakeNode(body: unknown): Promise<{ address: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = []
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`)
    if (req.method === 'GET' && req.url === '/v1/cluster') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    address: `127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

describe.skipIf(skipWithoutEtcd())('strata cluster init and status against etcd', { timeout: 30_000 }, () => {
  let etcd: EtcdInstance
  let client: EtcdClient
  let url: (cluster: string) => string
  const servers: { close(): Promise<void> }[] = []

  beforeAll(async () => {
    etcd = await startEtcd()
    client = new EtcdClient({ endpoints: etcd.clientUrl, timeoutMs: 2000 })
    url = (cluster) => `etcd://127.0.0.1:${etcd.clientPort}/${cluster}`
  })

  afterAll(async () => {
    for (const s of servers) await s.close()
    client?.close()
    await etcd?.stop()
  })

  it('init creates the config once; the same again exits 0, a different one exits 1 with both', async () => {
    const created = await strata(['cluster', 'init', '--cluster', url('init-a'), '--replicas', 'n1,n2,n3'])
    expect(created.stderr).toBe('')
    expect(created.status).toBe(0)
    expect(created.stdout).toContain('created cluster init-a: /strata/init-a/config = replicas n1, n2, n3; ack majority; lease TTL 2 s')
    expect(await readClusterConfig(client, 'init-a')).toEqual({ replicas: ['n1', 'n2', 'n3'], ack: 'majority', leaseTtlSeconds: 2 })
    const before = (await client.range('/strata/init-a/config')).kvs[0]!

    const again = await strata(['cluster', 'init', '--cluster', url('init-a'), '--replicas', 'n3, n2,n1', '--ack', 'majority', '--lease-ttl', '2'])
    expect(again.status).toBe(0)
    expect(again.stdout).toContain('cluster init-a already has this config, unchanged')

    const different = await strata(['cluster', 'init', '--cluster', url('init-a'), '--replicas', 'n1,n2,n3', '--ack', 'async', '--lease-ttl', '5'])
    expect(different.status).toBe(1)
    expect(different.stdout).toBe('')
    expect(different.stderr).toContain('already has a different config')
    expect(different.stderr).toContain('stored:    replicas n1, n2, n3; ack majority; lease TTL 2 s')
    expect(different.stderr).toContain('requested: replicas n1, n2, n3; ack async; lease TTL 5 s')

    // Neither touched the key.
    const after = (await client.range('/strata/init-a/config')).kvs[0]!
    expect(after.modRevision).toBe(before.modRevision)

    const other = await strata(['cluster', 'init', '--cluster', url('init-b'), '--replicas', 'a', '--ack', 'async', '--lease-ttl', '10'])
    expect(other.status).toBe(0)
    expect(await readClusterConfig(client, 'init-b')).toEqual({ replicas: ['a'], ack: 'async', leaseTtlSeconds: 10 })
  })

  it('usage errors exit 2, an unreachable etcd exits 1', async () => {
    const badUrl = await strata(['cluster', 'init', '--cluster', `etcd://127.0.0.1:${etcd.clientPort}/a/b`, '--replicas', 'n1'])
    expect(badUrl.status).toBe(2)
    expect(badUrl.stderr).toContain('exactly one segment')
    const badStatusUrl = await strata(['cluster', 'status', '--cluster', `http://127.0.0.1:${etcd.clientPort}/c`])
    expect(badStatusUrl.status).toBe(2)
    expect(badStatusUrl.stderr).toContain('scheme must be etcd://')
    const badReplicas = await strata(['cluster', 'init', '--cluster', url('u'), '--replicas', 'n1,n1'])
    expect(badReplicas.status).toBe(2)
    expect(badReplicas.stderr).toContain('listed twice')
    expect((await strata(['cluster', 'init', '--cluster', url('u'), '--replicas', 'n1', '--ack', 'all'])).status).toBe(2)
    expect((await strata(['cluster', 'init', '--cluster', url('u'), '--replicas', 'n1', '--lease-ttl', '61'])).status).toBe(2)
    expect((await strata(['cluster', 'init', '--cluster', url('u'), '--replicas', 'n1', '--lease-ttl', '1.5'])).status).toBe(2)
    expect((await strata(['cluster', 'init', '--cluster', url('u')])).status).toBe(2) // --replicas missing
    expect((await strata(['cluster', 'status', '--cluster', url('u'), '--timeout-ms', '0'])).status).toBe(2)
    expect(await readClusterConfig(client, 'u')).toBeNull()

    const closed = await freePort()
    for (const args of [
      ['cluster', 'init', '--cluster', `etcd://127.0.0.1:${closed}/x`, '--replicas', 'n1'],
      ['cluster', 'status', '--cluster', `etcd://127.0.0.1:${closed}/x`],
    ]) {
      const r = await strata(args)
      expect(r.status).toBe(1)
      expect(r.stderr).toContain(`etcd at http://127.0.0.1:${closed} is unreachable`)
    }
  })

  it('status without members or leader: replicas down, no leader, exit 1', async () => {
    expect((await strata(['cluster', 'init', '--cluster', url('empty'), '--replicas', 'n1,n2,n3'])).status).toBe(0)
    const r = await strata(['cluster', 'status', '--cluster', url('empty')])
    expect(r.status).toBe(1)
    expect(r.stdout).toContain('config: replicas n1, n2, n3; ack majority; lease TTL 2 s')
    expect(r.stdout).toContain('leader: no leader')
    for (const id of ['n1', 'n2', 'n3']) expect(r.stdout).toMatch(new RegExp(`^${id}\\s+down\\s+-\\s+-\\s+-$`, 'm'))
    expect(r.stdout).toContain('unhealthy: no leader; only 0 of 3 replicas reachable, a majority is 2')

    const json = await strata(['cluster', 'status', '--cluster', url('empty'), '--json'])
    expect(json.status).toBe(1)
    const s = JSON.parse(json.stdout)
    expect(s).toMatchObject({ cluster: 'empty', leader: null, healthy: false, replicasReachable: 0, majority: 2 })
    expect(s.nodes.map((n: { role: string }) => n.role)).toEqual(['down', 'down', 'down'])

    // A cluster nobody initialized: no config.
    const none = await strata(['cluster', 'status', '--cluster', url('nobody')])
    expect(none.status).toBe(1)
    expect(none.stdout).toContain('config: none (run strata cluster init)')
  })

  it('status with members and a leader: roles from the nodes, lag, unreachable, exit 0; --json', async () => {
    const cluster = 'live'
    expect((await strata(['cluster', 'init', '--cluster', url(cluster), '--replicas', 'n1,n2,n3'])).status).toBe(0)
    const n1 = await fakeNode({ nodeId: 'n1', role: 'leader', epoch: 17, lastSequence: 120, commitSequence: 118 })
    const n2 = await fakeNode({ nodeId: 'n2', role: 'follower', epoch: '17', lastSequence: '100', commitSequence: 98 })
    servers.push(n1, n2)
    const closedHttp = `127.0.0.1:${await freePort()}`
    const peer = async () => `127.0.0.1:${await freePort()}`
    const members = {
      n1: { http: n1.address, resp: '127.0.0.1:6390', peer: await peer() },
      n2: { http: n2.address, resp: null, peer: await peer() },
      n3: { http: closedHttp, resp: null, peer: await peer() },
    }
    for (const [id, m] of Object.entries(members)) await client.put(`/strata/${cluster}/members/${id}`, JSON.stringify(m))
    expect((await readMembers(client, cluster)).map((m) => m.id)).toEqual(['n1', 'n2', 'n3'])
    // As Election.claimLeadership writes it: { id, epoch: "<decimal>", …addresses }.
    await client.put(`/strata/${cluster}/leader/shard-0`, JSON.stringify({ id: 'n1', epoch: '17', ...members.n1 }))

    const started = performance.now()
    const r = await strata(['cluster', 'status', '--cluster', url(cluster), '--timeout-ms', '500'])
    expect(performance.now() - started).toBeLessThan(5000)
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(n1.requests).toEqual(['GET /v1/cluster'])
    expect(n2.requests).toEqual(['GET /v1/cluster'])
    const lines = r.stdout.split('\n')
    expect(lines).toContain('leader: n1, epoch 17')
    expect(lines).toContainEqual(expect.stringMatching(/^ID\s+ROLE\s+HTTP\s+RESP\s+PEER\s+LAST SEQ\s+LAG$/))
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^n1\\s+leader\\s+${n1.address}\\s+127\\.0\\.0\\.1:6390\\s+${members.n1.peer}\\s+120\\s+0$`)))
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^n2\\s+follower\\s+${n2.address}\\s+-\\s+${members.n2.peer}\\s+100\\s+20$`)))
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^n3\\s+unreachable\\s+${closedHttp}\\s+-\\s+${members.n3.peer}$`)))
    expect(r.stdout).toContain(`n3: GET http://${closedHttp}/v1/cluster: ECONNREFUSED`)
    expect(r.stdout).toContain('healthy: leader n1, 2 of 3 replicas reachable (majority 2)')

    const json = await strata(['cluster', 'status', '--cluster', url(cluster), '--json'])
    expect(json.status).toBe(0)
    const s = JSON.parse(json.stdout)
    expect(s).toMatchObject({
      cluster,
      endpoints: [etcd.clientUrl],
      config: { replicas: ['n1', 'n2', 'n3'], ack: 'majority', leaseTtlSeconds: 2 },
      leader: { id: 'n1', epoch: 17, http: n1.address, resp: '127.0.0.1:6390', peer: members.n1.peer },
      replicasReachable: 2,
      majority: 2,
      healthy: true,
      problems: [],
    })
    expect(typeof s.revision).toBe('number')
    expect(s.nodes).toEqual([
      { id: 'n1', replica: true, member: true, role: 'leader', http: n1.address, resp: '127.0.0.1:6390', peer: members.n1.peer, epoch: 17, lastSequence: 120, commitSequence: 118, lag: 0, note: null },
      { id: 'n2', replica: true, member: true, role: 'follower', http: n2.address, resp: null, peer: members.n2.peer, epoch: 17, lastSequence: 100, commitSequence: 98, lag: 20, note: null },
      { id: 'n3', replica: true, member: true, role: 'unreachable', http: closedHttp, resp: null, peer: members.n3.peer, epoch: null, lastSequence: null, commitSequence: null, lag: null, note: expect.stringContaining('ECONNREFUSED') },
    ])

    // n2 gone from etcd too (its lease expired): 1 of 3 is not a majority.
    await client.delete(`/strata/${cluster}/members/n2`)
    const minority = await strata(['cluster', 'status', '--cluster', url(cluster), '--json'])
    expect(minority.status).toBe(1)
    const m = JSON.parse(minority.stdout)
    expect(m.nodes.map((n: { role: string }) => n.role)).toEqual(['leader', 'down', 'unreachable'])
    expect(m.problems).toEqual(['only 1 of 3 replicas reachable, a majority is 2'])

    // The leader key gone: no leader, lag unknown.
    await client.put(`/strata/${cluster}/members/n2`, JSON.stringify(members.n2))
    await client.delete(`/strata/${cluster}/leader/shard-0`)
    const leaderless = await strata(['cluster', 'status', '--cluster', url(cluster)])
    expect(leaderless.status).toBe(1)
    expect(leaderless.stdout).toContain('leader: no leader')
    expect(leaderless.stdout).toMatch(/^n2\s+follower\s+\S+\s+-\s+\S+\s+100$/m)
    expect(leaderless.stdout).toContain('unhealthy: no leader')
  })

  it('status: a member outside the config, a node answering as another, a member without http', async () => {
    const cluster = 'odd'
    expect((await strata(['cluster', 'init', '--cluster', url(cluster), '--replicas', 'a'])).status).toBe(0)
    const a = await fakeNode({ nodeId: 'a', role: 'leader', epoch: 3, lastSequence: 10, commitSequence: 10 })
    const impostor = await fakeNode({ nodeId: 'someone', role: 'follower', epoch: 3, lastSequence: 10, commitSequence: 10 })
    servers.push(a, impostor)
    await client.put(`/strata/${cluster}/members/a`, JSON.stringify({ http: a.address, resp: null, peer: 'h:1' }))
    await client.put(`/strata/${cluster}/members/b`, JSON.stringify({ http: impostor.address, resp: null, peer: 'h:2' }))
    await client.put(`/strata/${cluster}/members/c`, JSON.stringify({ http: null, resp: null, peer: 'h:3' }))
    await client.put(`/strata/${cluster}/leader/shard-0`, JSON.stringify({ id: 'a', epoch: '3' }))
    const r = await strata(['cluster', 'status', '--cluster', url(cluster), '--json'])
    expect(r.status).toBe(0)
    const s = JSON.parse(r.stdout)
    expect(s.nodes.map((n: { id: string; role: string; replica: boolean }) => [n.id, n.role, n.replica])).toEqual([
      ['a', 'leader', true],
      ['b', 'invalid', false],
      ['c', 'unknown', false],
    ])
    expect(s.nodes[1].note).toContain('answered as node "someone"')
    expect(s.nodes[2].note).toContain('not a replica in the config')
  })
})
