/**
 * A 3-node stratadb cluster for tests: `startCluster()` starts a throwaway
 * etcd (etcd-harness.ts, its test defaults), runs `strata cluster init`
 * (replicas n1..nN, ack majority, lease TTL 2 s by default), then starts
 * every node as `node dist/cli/strata.js serve --dir … --http … --resp …
 * --peer … --cluster etcd://127.0.0.1:<port>/<name> --node-id nI` on fixed
 * loopback ports chosen up front (so a restarted node comes back on the same
 * addresses). Nodes inherit the environment; their stdout and stderr go to
 * `node.log` (the last 500 lines). Data directories live in one directory
 * under /dev/shm (else the OS temp dir), removed by `stop()`.
 *
 * Control: `kill(id, signal)` (SIGKILL by default; waits for the exit on
 * SIGKILL/SIGTERM), `start(id)` again on the same directory and ports,
 * `pause`/`resume` (SIGSTOP/SIGCONT), `status(id)` (GET /v1/cluster, 500 ms),
 * `waitForLeader()`.
 *
 * Link faults (tcp-proxy.ts proxies; they outlive node restarts, same ports):
 *   - `etcdProxy: true` puts one proxy per node in front of etcd's client
 *     port and gives that node its own `--cluster` URL through it
 *     (`etcdProxies.get(id).setMode('blackhole')` cuts the node from etcd;
 *     peer and client traffic go on).
 *   - `peerProxies: true` puts one proxy per ordered pair (from, to) in front
 *     of `to`'s peer port and starts `from` with `--peer-via to=<that proxy>`
 *     for every other node: `peerLinks.get('n1>n2')` is the link n1 uses to
 *     reach n2 (whoever connects, both directions of the connection's bytes
 *     go through it). `cutPeers(id, mode)` sets every link from and to `id`;
 *     `isolate(id, mode)` also its etcd proxy (with `etcdProxy`); `heal()`
 *     sets every proxy back to 'pass'.
 * Client ports (HTTP, RESP) are never proxied.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import { dataParent, freePort as etcdFreePort, killOnExit, startEtcd, type EtcdInstance } from './etcd-harness.js'
import { startProxy, type ProxyMode, type TcpProxy } from './tcp-proxy.js'
import type { Endpoint } from './workload.js'

export const STRATA_CLI = path.join(import.meta.dirname, '..', '..', 'dist', 'cli', 'strata.js')

const HOST = '127.0.0.1'
const LOG_LINES = 500

/** Ports handed out by this process, so two clusters of one test never get the same. */
const handedOut = new Set<number>()

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close); never 2379/2380 nor one handed out before. */
export async function freePort(): Promise<number> {
  const port = await etcdFreePort(handedOut)
  handedOut.add(port)
  return port
}

export interface ClusterOptions {
  /** Number of nodes (default 3). */
  nodes?: number
  /** Lease TTL given to `cluster init` (default 2). */
  leaseTtlSeconds?: number
  /** Ack mode given to `cluster init` (default 'majority'). */
  ack?: 'majority' | 'async'
  /** Pass --sync to every node. */
  sync?: boolean
  /** Pass --commit-timeout-ms N to every node. */
  commitTimeoutMs?: number
  /** Further `serve` flags for every node. */
  extraArgs?: string[]
  /** Cluster name in the URL (default `test`). */
  name?: string
  /** One proxy per node in front of etcd's client port; each node's URL goes through its own. */
  etcdProxy?: boolean
  /** One proxy per ordered pair of nodes in front of the target's peer port, used through `--peer-via`. */
  peerProxies?: boolean
  /** Start every node before returning (default true). Does not wait for a leader. */
  startNodes?: boolean
  /** How long `start(id)` waits for a node to listen (default 20 000 ms). */
  startTimeoutMs?: number
}

export interface ClusterNode {
  id: string
  dir: string
  httpPort: number
  respPort: number
  peerPort: number
  /** `127.0.0.1:<httpPort>` */
  http: string
  /** `127.0.0.1:<respPort>` */
  resp: string
  /** The `--cluster` URL this node is started with (through its etcd proxy with `etcdProxy`). */
  url: string
  /** The running process, null when not started or exited. */
  process: ChildProcess | null
  /** stdout and stderr lines (stderr ones prefixed `! `), the last 500, over all its runs. */
  log: string[]
}

export interface ClusterStatusAnswer {
  nodeId: string
  role: 'leader' | 'follower' | 'candidate' | 'stopped'
  epoch: number
  lastSequence: number
  commitSequence: number
}

export interface Cluster {
  etcd: EtcdInstance
  /** etcd://127.0.0.1:<etcd client port>/<name> (direct, not through a proxy). */
  url: string
  name: string
  nodes: ClusterNode[]
  /** With `etcdProxy`: node id → its proxy in front of etcd. Empty otherwise. */
  etcdProxies: Map<string, TcpProxy>
  /** With `peerProxies`: `'<from>><to>'` → the proxy `from` reaches `to`'s peer port through. Empty otherwise. */
  peerLinks: Map<string, TcpProxy>
  /** Sets the mode of every peer link from and to `id` (needs `peerProxies`). */
  cutPeers(id: string, mode: ProxyMode): void
  /** `cutPeers(id, mode)` and, with `etcdProxy`, the node's etcd proxy too. */
  isolate(id: string, mode: ProxyMode): void
  /** Every proxy (etcd and peer) back to 'pass'. */
  heal(): void
  node(id: string): ClusterNode
  /** Every node's addresses, for runWorkload. */
  endpoints(): Endpoint[]
  /** Starts a node (which must not be running); resolves once it listens on its HTTP port. */
  start(id: string): Promise<void>
  /** Sends `signal` (default SIGKILL); on SIGKILL/SIGTERM waits until the process exited. */
  kill(id: string, signal?: NodeJS.Signals): Promise<void>
  pause(id: string): void
  resume(id: string): void
  /** GET /v1/cluster of that node (500 ms timeout); null when it does not answer validly. */
  status(id: string): Promise<ClusterStatusAnswer | null>
  /**
   * Polls every node until exactly one (not `exclude`) says leader and no other node claims
   * leadership in an epoch as high or higher; returns that node.
   */
  waitForLeader(timeoutMs?: number, exclude?: string): Promise<ClusterNode>
  /** SIGKILLs every node, closes the proxies, stops etcd and removes the data. Idempotent. */
  stop(): Promise<void>
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function alive(child: ChildProcess | null): child is ChildProcess {
  return child !== null && child.exitCode === null && child.signalCode === null
}

/** Runs the CLI to completion. */
function runCli(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [STRATA_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

function num(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v)
  return null
}

const ROLES = ['leader', 'follower', 'candidate', 'stopped'] as const

/** Starts etcd, initialises the cluster config and (by default) starts every node; see the file comment. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const n = options.nodes ?? 3
  const name = options.name ?? 'test'
  const startTimeoutMs = options.startTimeoutMs ?? 20_000
  const etcd = await startEtcd()
  const root = fs.mkdtempSync(path.join(dataParent(), `strata-cluster-${process.pid}-`))
  const etcdProxies = new Map<string, TcpProxy>()
  const peerLinks = new Map<string, TcpProxy>()
  const nodes: ClusterNode[] = []
  const url = `etcd://${HOST}:${etcd.clientPort}/${name}`
  let stopped = false

  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    await Promise.all(nodes.map((node) => killNode(node, 'SIGKILL')))
    await Promise.all([...etcdProxies.values(), ...peerLinks.values()].map((p) => p.close()))
    await etcd.stop()
    fs.rmSync(root, { recursive: true, force: true })
  }

  const exitOf = new Map<ChildProcess, Promise<void>>()
  const killNode = async (node: ClusterNode, signal: NodeJS.Signals): Promise<void> => {
    const child = node.process
    if (!alive(child)) return
    if (signal === 'SIGTERM') child.kill('SIGCONT') // a stopped process cannot act on SIGTERM
    child.kill(signal)
    if (signal === 'SIGKILL' || signal === 'SIGTERM') await exitOf.get(child)
  }

  try {
    // Proxies first: a proxy binds port 0, which could otherwise take a node port probed (and released) before.
    if (options.etcdProxy === true) {
      for (let i = 1; i <= n; i++) {
        const proxy = await startProxy(HOST, etcd.clientPort)
        handedOut.add(proxy.port)
        etcdProxies.set(`n${i}`, proxy)
      }
    }
    for (let i = 1; i <= n; i++) {
      const id = `n${i}`
      const [httpPort, respPort, peerPort] = [await freePort(), await freePort(), await freePort()]
      const proxy = etcdProxies.get(id)
      const nodeUrl = proxy === undefined ? url : `etcd://${proxy.address}/${name}`
      const dir = path.join(root, id)
      nodes.push({ id, dir, httpPort, respPort, peerPort, http: `${HOST}:${httpPort}`, resp: `${HOST}:${respPort}`, url: nodeUrl, process: null, log: [] })
    }
    if (options.peerProxies === true) {
      // Their targets (the peer ports) are only known now. A proxy's port 0 could be a node port probed and
      // released above: such a proxy is closed and made again (the ports it holds stay out of freePort's way).
      const nodePorts = new Set(nodes.flatMap((x) => [x.httpPort, x.respPort, x.peerPort]))
      for (const from of nodes) {
        for (const to of nodes) {
          if (from === to) continue
          let proxy = await startProxy(HOST, to.peerPort)
          while (nodePorts.has(proxy.port)) {
            const clash = proxy
            proxy = await startProxy(HOST, to.peerPort)
            await clash.close()
          }
          handedOut.add(proxy.port)
          peerLinks.set(`${from.id}>${to.id}`, proxy)
        }
      }
    }
    const init = await runCli(['cluster', 'init', '--cluster', url, '--replicas', nodes.map((x) => x.id).join(','), '--ack', options.ack ?? 'majority', '--lease-ttl', String(options.leaseTtlSeconds ?? 2)])
    if (init.code !== 0) throw new Error(`strata cluster init exited ${init.code}:\n${init.stdout}${init.stderr}`)
  } catch (err) {
    await stop()
    throw err
  }

  const node = (id: string): ClusterNode => {
    const x = nodes.find((m) => m.id === id)
    if (x === undefined) throw new Error(`no node ${id} (have ${nodes.map((m) => m.id).join(', ')})`)
    return x
  }

  const lastLines = (x: ClusterNode, count = 20): string => x.log.slice(-count).map((l) => `    ${l}`).join('\n')

  const start = async (id: string): Promise<void> => {
    const x = node(id)
    if (stopped) throw new Error('the cluster was stopped')
    if (alive(x.process)) throw new Error(`node ${id} is running (pid ${x.process.pid})`)
    const args = [
      STRATA_CLI, 'serve',
      '--dir', x.dir,
      '--http', x.http,
      '--resp', x.resp,
      '--peer', `${HOST}:${x.peerPort}`,
      '--cluster', x.url,
      '--node-id', x.id,
      ...nodes.flatMap((to) => {
        const link = peerLinks.get(`${x.id}>${to.id}`)
        return link === undefined ? [] : ['--peer-via', `${to.id}=${link.address}`]
      }),
      ...(options.sync === true ? ['--sync'] : []),
      ...(options.commitTimeoutMs !== undefined ? ['--commit-timeout-ms', String(options.commitTimeoutMs)] : []),
      ...(options.extraArgs ?? []),
    ]
    const child = spawn(process.execPath, args, { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    const forget = killOnExit(child)
    x.process = child
    x.log.push(`--- start ${id} pid ${child.pid ?? '?'} at ${new Date().toISOString()}`)
    let ready = false // this run printed its ready line
    const capture = (stream: NodeJS.ReadableStream, mark: string): void => {
      let partial = ''
      stream.setEncoding('utf8')
      stream.on('data', (d: string) => {
        const parts = (partial + d).split('\n')
        partial = parts.pop() ?? ''
        for (const line of parts) {
          x.log.push(mark + line)
          if (mark === '' && line.includes(' ready ')) ready = true
        }
        if (x.log.length > LOG_LINES) x.log.splice(0, x.log.length - LOG_LINES)
      })
      stream.on('end', () => {
        if (partial !== '') x.log.push(mark + partial)
      })
    }
    capture(child.stdout!, '')
    capture(child.stderr!, '! ')
    let exitInfo: string | null = null
    exitOf.set(
      child,
      new Promise<void>((resolve) => {
        child.once('exit', (code, signal) => {
          exitInfo = `code ${code} signal ${signal}`
          x.log.push(`--- ${id} exited (${exitInfo})`)
          forget()
          if (x.process === child) x.process = null
          resolve()
        })
        child.once('error', (err) => {
          exitInfo = `spawn error ${err.message}`
          forget()
          if (x.process === child) x.process = null
          resolve()
        })
      }),
    )
    const deadline = performance.now() + startTimeoutMs
    for (;;) {
      if (exitInfo !== null) throw new Error(`node ${id} exited during start-up (${exitInfo}); its log:\n${lastLines(x, 40)}`)
      if (ready || (await canConnect(x.httpPort))) return
      if (performance.now() > deadline) throw new Error(`node ${id} did not listen on ${x.http} within ${startTimeoutMs} ms; its log:\n${lastLines(x, 40)}`)
      await sleep(25)
    }
  }

  const status = async (id: string): Promise<ClusterStatusAnswer | null> => {
    const x = node(id)
    try {
      const res = await fetch(`http://${x.http}/v1/cluster`, { signal: AbortSignal.timeout(500) })
      if (res.status !== 200) return null
      const o = (await res.json()) as Record<string, unknown>
      const epoch = num(o.epoch)
      const lastSequence = num(o.lastSequence)
      const commitSequence = num(o.commitSequence)
      if (typeof o.nodeId !== 'string' || !ROLES.includes(o.role as ClusterStatusAnswer['role']) || epoch === null || lastSequence === null || commitSequence === null) return null
      return { nodeId: o.nodeId, role: o.role as ClusterStatusAnswer['role'], epoch, lastSequence, commitSequence }
    } catch {
      return null
    }
  }

  const waitForLeader = async (timeoutMs = 15_000, exclude?: string): Promise<ClusterNode> => {
    const deadline = performance.now() + timeoutMs
    let answers: Array<ClusterStatusAnswer | null> = []
    for (;;) {
      answers = await Promise.all(nodes.map((x) => status(x.id)))
      const leaders = nodes.map((x, i) => ({ x, a: answers[i] ?? null })).filter((e) => e.a?.role === 'leader')
      const candidates = leaders.filter((e) => e.x.id !== exclude)
      if (candidates.length === 1) {
        const [only] = candidates
        if (leaders.every((e) => e === only || e.a!.epoch < only!.a!.epoch)) return only!.x
      }
      if (performance.now() > deadline) break
      await sleep(50)
    }
    const report = nodes
      .map((x, i) => `  ${x.id} (${alive(x.process) ? `pid ${x.process.pid}` : 'not running'}) answered ${JSON.stringify(answers[i] ?? null)}; last log lines:\n${lastLines(x)}`)
      .join('\n')
    throw new Error(`no single leader${exclude !== undefined ? ` other than ${exclude}` : ''} within ${timeoutMs} ms:\n${report}`)
  }

  const cutPeers = (id: string, mode: ProxyMode): void => {
    node(id)
    if (peerLinks.size === 0) throw new Error('cutPeers needs startCluster({ peerProxies: true })')
    for (const [link, proxy] of peerLinks) {
      const [from, to] = link.split('>')
      if (from === id || to === id) proxy.setMode(mode)
    }
  }

  const cluster: Cluster = {
    etcd,
    url,
    name,
    nodes,
    etcdProxies,
    peerLinks,
    cutPeers,
    isolate: (id, mode) => {
      cutPeers(id, mode)
      etcdProxies.get(id)?.setMode(mode)
    },
    heal: () => {
      for (const p of [...etcdProxies.values(), ...peerLinks.values()]) p.setMode('pass')
    },
    node,
    endpoints: () => nodes.map((x) => ({ http: x.http, resp: x.resp })),
    start,
    kill: (id, signal = 'SIGKILL') => killNode(node(id), signal),
    pause: (id) => {
      const p = node(id).process
      if (alive(p)) p.kill('SIGSTOP')
    },
    resume: (id) => {
      const p = node(id).process
      if (alive(p)) p.kill('SIGCONT')
    },
    status,
    waitForLeader,
    stop,
  }

  if (options.startNodes !== false) {
    try {
      await Promise.all(nodes.map((x) => start(x.id)))
    } catch (err) {
      await stop()
      throw err
    }
  }
  return cluster
}
