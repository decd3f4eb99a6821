/**
 * Shared helpers of the cluster benchmarks (bench/cluster-failover.mjs,
 * bench/cluster-throughput.mjs): free loopback ports, starting etcd, `strata
 * cluster init`, single and clustered `strata serve` processes from the
 * built dist/, asking a node's GET /v1/cluster, percentiles, and the cleanup
 * of every process started (on normal exit, on an exception, on SIGINT /
 * SIGTERM / SIGHUP).
 *
 * Not a benchmark by itself. Every process is started with its own pid
 * recorded and is stopped by that pid only. Data directories go under
 * /dev/shm (a tmpfs: fsync is cheap there, see the scripts' notes) and are
 * removed at the end.
 */
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { parseArgs } from 'node:util'
import * as net from 'node:net'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'

export { sleep }
export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const strataBin = path.join(repo, 'dist', 'cli', 'strata.js')

/** Ports never used here (a developer's etcd, redis, strata defaults). */
const RESERVED = new Set([2379, 2380, 6379, 6380, 7070])

// ---------------------------------------------------------------- cleanup

/** Every child process started and not yet known to be gone. */
const children = new Set()
/** Directories to remove at exit. */
const scratchDirs = new Set()

function killAllSync() {
  for (const child of children) {
    try { process.kill(child.pid, 'SIGKILL') } catch { /* already gone */ }
  }
  children.clear()
  for (const dir of scratchDirs) {
    try { fs.rmSync(dir, { recursive: true, force: true }) } catch { /* best effort */ }
  }
  scratchDirs.clear()
}

process.on('exit', killAllSync)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: stopping every process started\n`)
    killAllSync()
    process.exit(130)
  })
}
process.on('uncaughtException', (err) => {
  process.stderr.write(`uncaught: ${err?.stack ?? err}\n`)
  killAllSync()
  process.exit(1)
})
process.on('unhandledRejection', (err) => {
  process.stderr.write(`unhandled rejection: ${err?.stack ?? err}\n`)
  killAllSync()
  process.exit(1)
})

/** A new scratch directory under /dev/shm, removed at exit (unless keep). */
export function scratchDir(prefix, { keep = false } = {}) {
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : '/tmp'
  const dir = fs.mkdtempSync(path.join(base, `${prefix}-`))
  if (!keep) scratchDirs.add(dir)
  return dir
}

/** Spawns a tracked child; its stdout and stderr go to logFile. */
function spawnTracked(cmd, args, logFile) {
  const fd = fs.openSync(logFile, 'a')
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd] })
  fs.closeSync(fd)
  children.add(child)
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child)
      resolve({ code, signal })
    })
  })
  return child
}

/** Sends sig to the child (by its pid) and waits for its exit, SIGKILL after graceMs. */
export async function stopChild(child, sig = 'SIGTERM', graceMs = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) return
  try { process.kill(child.pid, sig) } catch { return }
  const timer = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL') } catch { /* gone */ } }, graceMs)
  await child.exited
  clearTimeout(timer)
}

/** Stops every tracked child (SIGTERM, then SIGKILL) and removes the scratch dirs. */
export async function cleanup() {
  await Promise.all([...children].map((c) => stopChild(c, 'SIGTERM', 2000)))
  killAllSync()
}

// ---------------------------------------------------------------- ports, HTTP

/** Ports this process handed out already (the kernel may offer a closed one again). */
const handedOut = new Set()

/**
 * Lowest port of the kernel's ephemeral range (outgoing connections take
 * their local port from it, and so does bind(0)); 32768 when unknown.
 */
const EPHEMERAL_LOW = (() => {
  try { return Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768 } catch { return 32768 }
})()

/** Resolves true when 127.0.0.1:port can be listened on right now. */
function canListen(port) {
  return new Promise((resolve) => {
    const srv = net.createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/**
 * A free loopback port, never the same one twice. Chosen at random below
 * the ephemeral range (10000 up to it) and checked by listening on it: a
 * port from bind(0) lies inside that range, where the outgoing connections
 * of the processes started meanwhile (a node connecting to etcd or to its
 * peers, redis-benchmark's clients) may take it as their local port before
 * the server that was to listen on it starts (EADDRINUSE). Falls back to
 * bind(0) when the range below is unusable.
 */
export async function freePort() {
  const low = 10000
  const high = Math.min(EPHEMERAL_LOW, 65536) - 1
  for (let tries = 0; high > low && tries < 200; tries++) {
    const port = low + Math.floor(Math.random() * (high - low + 1))
    if (RESERVED.has(port) || handedOut.has(port)) continue
    if (await canListen(port)) {
      handedOut.add(port)
      return port
    }
  }
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer()
      srv.once('error', reject)
      srv.listen(0, '127.0.0.1', () => {
        const p = srv.address().port
        srv.close(() => resolve(p))
      })
    })
    if (!RESERVED.has(port) && !handedOut.has(port)) {
      handedOut.add(port)
      return port
    }
  }
}

/** fetch with a deadline; resolves to { status, headers, body } or throws. */
export async function httpRequest(url, { method = 'GET', body, timeoutMs = 1000 } = {}) {
  const res = await fetch(url, { method, body, signal: AbortSignal.timeout(timeoutMs) })
  const text = await res.text()
  return { status: res.status, headers: res.headers, body: text }
}

/** Polls url until it answers 200 or deadlineMs passes. */
export async function waitHttpOk(url, deadlineMs = 15000) {
  const end = Date.now() + deadlineMs
  let last = 'no answer'
  while (Date.now() < end) {
    try {
      const r = await httpRequest(url, { timeoutMs: 500 })
      if (r.status === 200) return r
      last = `${r.status} ${r.body.slice(0, 200)}`
    } catch (err) {
      last = err.message
    }
    await sleep(50)
  }
  throw new Error(`${url}: not ready after ${deadlineMs} ms (${last})`)
}

// ---------------------------------------------------------------- etcd

/**
 * Starts a one-member etcd on free loopback ports, data dir under /dev/shm,
 * --unsafe-no-fsync, heartbeat 50 ms, election timeout 500 ms (as the
 * cluster tests); resolves once GET /health answers.
 */
export async function startEtcd(workDir) {
  const client = await freePort()
  const peer = await freePort()
  const dataDir = path.join(workDir, 'etcd')
  const url = `http://127.0.0.1:${client}`
  const purl = `http://127.0.0.1:${peer}`
  const child = spawnTracked('etcd', [
    '--name', 'e1', '--data-dir', dataDir,
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', purl, '--initial-advertise-peer-urls', purl,
    '--initial-cluster', `e1=${purl}`,
    '--heartbeat-interval', '50', '--election-timeout', '500',
    '--unsafe-no-fsync', '--log-level', 'warn',
  ], path.join(workDir, 'etcd.log'))
  await Promise.race([
    waitHttpOk(`${url}/health`, 15000),
    child.exited.then(({ code, signal }) => { throw new Error(`etcd exited (${code ?? signal}); see ${workDir}/etcd.log`) }),
  ])
  return { child, port: client, url }
}

/** `strata cluster init`; throws on a non-zero exit. */
export function clusterInit(clusterUrl, { replicas = ['n1', 'n2', 'n3'], ack = 'majority', ttl = 2 } = {}) {
  const r = spawnSync(process.execPath, [strataBin, 'cluster', 'init', '--cluster', clusterUrl,
    '--replicas', replicas.join(','), '--ack', ack, '--lease-ttl', String(ttl)], { encoding: 'utf8', timeout: 20000 })
  if (r.status !== 0) throw new Error(`strata cluster init failed (${r.status}): ${r.stdout}${r.stderr}`)
  return r.stdout.trim()
}

// ---------------------------------------------------------------- strata nodes

/**
 * A `strata serve` process description. start() (re)starts it on the same
 * directory and ports; kill(sig) signals it by pid; info() asks GET
 * /v1/cluster (clustered nodes only).
 */
export class StrataNode {
  /**
   * @param {object} o
   * @param {string} o.dir data directory
   * @param {string} o.logFile
   * @param {string} [o.clusterUrl] etcd://…/name; absent: a single node
   * @param {string} [o.id] node id (with clusterUrl)
   * @param {boolean} [o.sync]
   * @param {string[]} [o.extraArgs] more `strata serve` arguments (e.g. ['--wal-retain-mib', '1'])
   */
  constructor(o) {
    Object.assign(this, o)
    this.child = null
  }

  static async create(o) {
    const node = new StrataNode(o)
    node.httpPort = await freePort()
    node.respPort = await freePort()
    if (o.clusterUrl) node.peerPort = await freePort()
    return node
  }

  get http() { return `127.0.0.1:${this.httpPort}` }
  get base() { return `http://${this.http}` }
  get alive() { return this.child !== null && this.child.exitCode === null && this.child.signalCode === null }

  start() {
    const args = [strataBin, 'serve', '--dir', this.dir, '--http', this.http, '--resp', `127.0.0.1:${this.respPort}`]
    if (this.clusterUrl) args.push('--peer', `127.0.0.1:${this.peerPort}`, '--cluster', this.clusterUrl, '--node-id', this.id)
    if (this.sync) args.push('--sync')
    if (this.extraArgs) args.push(...this.extraArgs)
    fs.appendFileSync(this.logFile, `\n--- start ${new Date().toISOString()} node ${args.slice(1).join(' ')}\n`)
    this.child = spawnTracked(process.execPath, args, this.logFile)
    return this.child
  }

  /** Signals the process by its pid (SIGKILL by default); resolves once it exited. */
  async kill(sig = 'SIGKILL') {
    if (!this.alive) return
    const c = this.child
    process.kill(c.pid, sig)
    await c.exited
  }

  async stop() {
    if (this.child) await stopChild(this.child, 'SIGTERM', 3000)
  }

  /** GET /v1/cluster → object, or null when the node does not answer in timeoutMs. */
  async info(timeoutMs = 300) {
    try {
      const r = await httpRequest(`${this.base}/v1/cluster`, { timeoutMs })
      return r.status === 200 ? JSON.parse(r.body) : null
    } catch {
      return null
    }
  }

  /** The last lines of the node's log (the work dir may be gone when an error is read). */
  logTail(lines = 5) {
    try { return fs.readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-lines).join(' | ') } catch { return '(no log)' }
  }

  /** Waits until the HTTP API answers (GET /v1/cluster for a replica, a key GET for a single node). */
  async waitUp(deadlineMs = 20000) {
    const end = Date.now() + deadlineMs
    while (Date.now() < end) {
      if (!this.alive) throw new Error(`node ${this.id ?? this.dir} exited: ${this.logTail()}`)
      try {
        const url = this.clusterUrl ? `${this.base}/v1/cluster` : `${this.base}/v1/kv/__bench_probe`
        const r = await httpRequest(url, { timeoutMs: 500 })
        if (r.status === 200 || r.status === 404) return
      } catch { /* not yet */ }
      await sleep(50)
    }
    throw new Error(`node ${this.id ?? this.dir}: HTTP not up after ${deadlineMs} ms; see ${this.logFile}`)
  }
}

/**
 * Starts etcd (unless one is given), inits a cluster with a fresh name and
 * starts n replicas with data dirs under workDir (nodeArgs: more `strata
 * serve` arguments for every replica). Resolves once one node
 * reports role 'leader' and the others 'follower'.
 */
export async function startCluster({ workDir, ttl = 2, ack = 'majority', sync = false, n = 3, name, etcd: givenEtcd, nodeArgs } = {}) {
  const etcd = givenEtcd ?? await startEtcd(workDir)
  const clusterName = name ?? `bench${process.pid}x${Date.now().toString(36)}`
  const clusterUrl = `etcd://127.0.0.1:${etcd.port}/${clusterName}`
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`)
  clusterInit(clusterUrl, { replicas: ids, ack, ttl })
  const nodes = []
  for (const id of ids) {
    nodes.push(await StrataNode.create({ id, clusterUrl, sync, extraArgs: nodeArgs, dir: path.join(workDir, id), logFile: path.join(workDir, `${id}.log`) }))
  }
  for (const node of nodes) node.start()
  await Promise.all(nodes.map((node) => node.waitUp()))
  const leader = await waitStable(nodes, 30000)
  return { etcd, clusterUrl, clusterName, nodes, leader }
}

/** Starts a single (unreplicated) node. */
export async function startSingle({ workDir, sync = false }) {
  const node = await StrataNode.create({ dir: path.join(workDir, 'single'), logFile: path.join(workDir, 'single.log'), sync })
  node.start()
  await node.waitUp()
  return node
}

/** Every node's GET /v1/cluster at once (null for no answer). */
export function infos(nodes, timeoutMs = 300) {
  return Promise.all(nodes.map((n) => (n.alive ? n.info(timeoutMs) : Promise.resolve(null))))
}

/**
 * Waits until exactly one of the live nodes is 'leader' and every other
 * live node a 'follower' of that epoch; resolves to the leader node.
 */
export async function waitStable(nodes, deadlineMs = 30000) {
  const end = Date.now() + deadlineMs
  let last = []
  while (Date.now() < end) {
    const live = nodes.filter((n) => n.alive)
    last = await infos(live)
    const leaders = last.filter((i) => i?.role === 'leader')
    if (leaders.length === 1 && last.every((i) => i !== null && (i.role === 'leader' || (i.role === 'follower' && i.epoch === leaders[0].epoch)))) {
      return live[last.indexOf(leaders[0])]
    }
    await sleep(50)
  }
  throw new Error(`cluster not stable after ${deadlineMs} ms: ${JSON.stringify(last)}`)
}

/** Node whose GET /v1/cluster says role 'leader' (null if none right now). */
export async function findLeader(nodes) {
  const live = nodes.filter((n) => n.alive)
  const all = await infos(live)
  const i = all.findIndex((x) => x?.role === 'leader')
  return i < 0 ? null : { node: live[i], info: all[i] }
}

// ---------------------------------------------------------------- CPU time

/** CPU seconds (user + system) a live process has used so far, from /proc/<pid>/stat (Linux; NaN elsewhere). */
export function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // fields from the 3rd (state) on
    return (Number(f[11]) + Number(f[12])) / 100 // utime, stime in clock ticks (USER_HZ = 100 on Linux)
  } catch {
    return NaN
  }
}

// ---------------------------------------------------------------- statistics

/** Percentile by nearest rank (p in [0, 100]) of an unsorted array. */
export function percentile(values, p) {
  if (values.length === 0) return NaN
  const s = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * s.length)
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))]
}

export const median = (values) => {
  if (values.length === 0) return NaN
  const s = [...values].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

export function summarize(values) {
  return { n: values.length, min: Math.min(...values), p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(...values) }
}

/** Exits when dist/ was not built (it does not check whether dist/ is older than src/). */
/**
 * The options of a cluster bench (node:util parseArgs), with the ones they
 * all take added (--json, --keep, --help). --help prints the script's header
 * comment and exits; otherwise the build must exist.
 */
export function benchOptions(scriptUrl, options) {
  const { values } = parseArgs({
    options: {
      ...options,
      json: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(fs.readFileSync(new URL(scriptUrl), 'utf8').split('*/')[0])
    process.exit(0)
  }
  requireBuild()
  return values
}

export function requireBuild() {
  if (!fs.existsSync(strataBin)) {
    process.stderr.write(`no ${strataBin}: run npm run build first\n`)
    process.exit(2)
  }
}
