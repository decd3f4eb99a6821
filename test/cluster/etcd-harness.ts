/**
 * A throwaway single-member etcd for tests: `startEtcd()` runs Debian's
 * `etcd` (package etcd-server, 3.4.x) on free loopback ports with its data
 * under /dev/shm, waits until `GET /health` says healthy, and `stop()` ends
 * it (SIGTERM, then SIGKILL) and removes the data.
 *
 * The well-known ports 2379/2380 are never used, so a system etcd (the
 * Debian package ships a service unit) cannot be hit by a test, nor a test
 * etcd by anything else.
 *
 * Without etcd, tests skip (`describe.skipIf(skipWithoutEtcd())`), except when
 * STRATA_REQUIRE_ETCD=1 or CI=true: then `requireEtcd()` (called by
 * `startEtcd()`) throws, so the tests fail with the reason.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'

export interface EtcdOptions {
  /** Member name (default `strata-test`). */
  name?: string
  /** --heartbeat-interval in ms (default 50). */
  heartbeatMs?: number
  /** --election-timeout in ms (default 500). With 50/500 etcd's minimum lease TTL is 1 s. */
  electionTimeoutMs?: number
  /** How long to wait for /health (default 10 000 ms). */
  startTimeoutMs?: number
  /** Pass --unsafe-no-fsync when the binary knows it (default true). */
  noFsync?: boolean
  /** Further flags for etcd. */
  extraArgs?: string[]
}

export interface EtcdInstance {
  /** http://127.0.0.1:<port> for clients (etcd3: `new Etcd3({ hosts: clientUrl })`). */
  clientUrl: string
  clientPort: number
  /** http://127.0.0.1:<port> for raft peers. */
  peerUrl: string
  peerPort: number
  pid: number
  dataDir: string
  /** Milliseconds from spawn to a healthy /health. */
  startMs: number
  /** The last 64 KiB of etcd's output. */
  log(): string
  /** Resolves when the process has exited. */
  exited: Promise<void>
  /** SIGTERM, then SIGKILL after `graceMs` (default 3000); removes the data dir. Idempotent. */
  stop(graceMs?: number): Promise<void>
  /** Sends a signal (SIGSTOP/SIGCONT to pause/resume, SIGKILL to crash). Keeps the data dir. */
  kill(signal: NodeJS.Signals): void
}

const RESERVED_PORTS = new Set([2379, 2380])
const LOG_LIMIT = 64 * 1024

let binaryCache: string | null | undefined
let noFsyncCache: boolean | undefined

/** The etcd binary: $ETCD_BIN, else `etcd` on PATH, else /usr/bin/etcd; null when there is none. */
export function etcdBinary(): string | null {
  if (binaryCache !== undefined) return binaryCache
  const candidates = [process.env.ETCD_BIN, ...(process.env.PATH ?? '').split(path.delimiter).filter((d) => d !== '').map((d) => path.join(d, 'etcd')), '/usr/bin/etcd']
  binaryCache = null
  for (const c of candidates) {
    if (c === undefined || c === '') continue
    try {
      fs.accessSync(c, fs.constants.X_OK)
      if (fs.statSync(c).isFile()) {
        binaryCache = c
        break
      }
    } catch {
      // not here
    }
  }
  return binaryCache
}

/** Whether an etcd binary is installed. */
export function etcdAvailable(): boolean {
  return etcdBinary() !== null
}

/** Whether a missing etcd must fail the tests (STRATA_REQUIRE_ETCD=1 or CI=true) rather than skip them. */
export function etcdRequired(): boolean {
  return process.env.STRATA_REQUIRE_ETCD === '1' || process.env.CI === 'true'
}

/** For `describe.skipIf(...)`: true when etcd is missing and not required. */
export function skipWithoutEtcd(): boolean {
  return !etcdAvailable() && !etcdRequired()
}

/** The etcd binary, or a clear error when it is missing. */
export function requireEtcd(): string {
  const bin = etcdBinary()
  if (bin !== null) return bin
  const why = process.env.STRATA_REQUIRE_ETCD === '1' ? 'STRATA_REQUIRE_ETCD=1' : process.env.CI === 'true' ? 'CI=true' : 'the test'
  throw new Error(`etcd is not installed (no $ETCD_BIN, no etcd on PATH, no /usr/bin/etcd) but ${why} requires the etcd cluster tests; install it with \`apt-get install etcd-server\` (.ci/run does this)`)
}

/** Whether this etcd accepts --unsafe-no-fsync (3.4.23 does, though its --help does not list it). */
export function etcdSupportsNoFsync(): boolean {
  if (noFsyncCache !== undefined) return noFsyncCache
  const bin = requireEtcd()
  try {
    // An unknown flag makes etcd exit 2 ("flag provided but not defined") before --version is handled.
    execFileSync(bin, ['--unsafe-no-fsync', '--version'], { stdio: 'ignore', timeout: 10_000 })
    noFsyncCache = true
  } catch {
    noFsyncCache = false
  }
  return noFsyncCache
}

/** `etcd --version`'s first line, e.g. "etcd Version: 3.4.23". */
export function etcdVersion(): string {
  return execFileSync(requireEtcd(), ['--version'], { encoding: 'utf8', timeout: 10_000 }).split('\n')[0] ?? ''
}

/**
 * A free TCP port on 127.0.0.1, never 2379/2380 or one in `avoid`. Picked at
 * random below the kernel's ephemeral range (checked free by binding it):
 * a port from that range (what binding port 0 gives) can be taken by some
 * process's outgoing connection before the server meant for it listens, or
 * while a killed node is restarted on it.
 */
export async function freePort(avoid: ReadonlySet<number> = new Set()): Promise<number> {
  const [low, high] = portRange()
  for (let attempt = 0; ; attempt++) {
    const candidate = attempt < 200 ? low + Math.floor(Math.random() * (high - low)) : 0
    const port = await new Promise<number | undefined>((resolve) => {
      const srv = net.createServer()
      srv.unref()
      srv.once('error', () => resolve(undefined))
      srv.listen(candidate, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port
        srv.close(() => resolve(p))
      })
    })
    if (port !== undefined && !RESERVED_PORTS.has(port) && !avoid.has(port)) return port
  }
}

/** Ports to pick from: 20000 up to the start of the ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range). */
function portRange(): [number, number] {
  try {
    const first = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    if (Number.isSafeInteger(first) && first > 21000) return [20000, first]
  } catch {
    // not Linux
  }
  return [20000, 32768]
}

/** Where test data goes: /dev/shm when writable (fast, no disk wear), else the temp directory. */
export function dataParent(): string {
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK)
    if (fs.statSync('/dev/shm').isDirectory()) return '/dev/shm'
  } catch {
    // no tmpfs here
  }
  return os.tmpdir()
}

const DIR_PREFIX = 'strata-etcd-'

/** Removes data dirs left by test processes that died without stop() (named strata-etcd-<pid>-…). */
function sweepStaleDataDirs(parent: string): void {
  let entries: string[]
  try {
    entries = fs.readdirSync(parent)
  } catch {
    return
  }
  for (const name of entries) {
    const m = /^strata-etcd-(\d+)-/.exec(name)
    if (m === null || Number(m[1]) === process.pid) continue
    try {
      process.kill(Number(m[1]), 0)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') fs.rmSync(path.join(parent, name), { recursive: true, force: true })
    }
  }
}

const live = new Set<ChildProcess>()
let exitHookInstalled = false

/**
 * Kills `child` with SIGKILL if this test process exits first (a test that
 * dies without its cleanup must not leave etcd or a node running); returns
 * the function to call once the child exited on its own.
 */
export function killOnExit(child: ChildProcess): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.on('exit', () => {
      for (const c of live) {
        try {
          c.kill('SIGKILL')
        } catch {
          // already gone
        }
      }
    })
  }
  live.add(child)
  return () => live.delete(child)
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

async function healthy(clientUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) })
    const body = (await res.json()) as { health?: unknown }
    return res.ok && (body.health === 'true' || body.health === true)
  } catch {
    return false
  }
}

/** Starts a fresh single-member etcd on loopback; see EtcdInstance. */
export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdInstance> {
  const bin = requireEtcd()
  // Another process can take a port between our probe and etcd's bind: retry on EADDRINUSE.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(bin, options)
    } catch (err) {
      if (attempt < 3 && err instanceof PortTakenError) continue
      throw err
    }
  }
}

class PortTakenError extends Error {}

async function startOnce(bin: string, options: EtcdOptions): Promise<EtcdInstance> {
  const name = options.name ?? 'strata-test'
  const clientPort = await freePort()
  const peerPort = await freePort(new Set([clientPort]))
  const clientUrl = `http://127.0.0.1:${clientPort}`
  const peerUrl = `http://127.0.0.1:${peerPort}`
  const parent = dataParent()
  sweepStaleDataDirs(parent)
  const dataDir = fs.mkdtempSync(path.join(parent, `${DIR_PREFIX}${process.pid}-`))
  const args = [
    '--name', name,
    '--data-dir', dataDir,
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `${name}=${peerUrl}`,
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', `strata-test-${process.pid}-${clientPort}`,
    '--heartbeat-interval', String(options.heartbeatMs ?? 50),
    '--election-timeout', String(options.electionTimeoutMs ?? 500),
    '--logger', 'zap',
    '--log-outputs', 'stderr',
    ...(options.noFsync !== false && etcdSupportsNoFsync() ? ['--unsafe-no-fsync'] : []),
    ...(options.extraArgs ?? []),
  ]
  const t0 = performance.now()
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const forget = killOnExit(child)
  let logText = ''
  const append = (chunk: Buffer) => {
    logText += chunk.toString('utf8')
    if (logText.length > LOG_LIMIT) logText = logText.slice(-LOG_LIMIT)
  }
  child.stdout?.on('data', append)
  child.stderr?.on('data', append)
  let exitInfo: string | null = null
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = `code ${code} signal ${signal}`
      forget()
      resolve()
    })
    child.once('error', (err) => {
      exitInfo = `spawn error: ${err.message}`
      forget()
      resolve()
    })
  })
  const removeData = () => fs.rmSync(dataDir, { recursive: true, force: true })

  let stopping: Promise<void> | null = null
  const stop = (graceMs = 3000): Promise<void> => {
    stopping ??= (async () => {
      if (exitInfo === null && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGCONT') // a SIGSTOPped etcd cannot act on SIGTERM
          process.kill(child.pid, 'SIGTERM')
        } catch {
          // already gone
        }
        const timer = setTimeout(() => {
          try {
            if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
          } catch {
            // already gone
          }
        }, graceMs)
        await exited
        clearTimeout(timer)
      }
      removeData()
    })()
    return stopping
  }

  const startTimeoutMs = options.startTimeoutMs ?? 10_000
  const deadline = performance.now() + startTimeoutMs
  for (;;) {
    if (exitInfo !== null) {
      removeData()
      if (/address already in use/.test(logText)) throw new PortTakenError(`etcd: port taken\n${logText}`)
      throw new Error(`etcd exited during start-up (${exitInfo}); its log:\n${logText}`)
    }
    if (await healthy(clientUrl)) break
    if (performance.now() > deadline) {
      await stop(500)
      throw new Error(`etcd at ${clientUrl} was not healthy within ${startTimeoutMs} ms; its log:\n${logText}`)
    }
    await sleep(25)
  }
  const startMs = performance.now() - t0

  return {
    clientUrl,
    clientPort,
    peerUrl,
    peerPort,
    pid: child.pid as number,
    dataDir,
    startMs,
    log: () => logText,
    exited,
    stop,
    kill(signal: NodeJS.Signals) {
      if (exitInfo === null && child.pid !== undefined) process.kill(child.pid, signal)
    },
  }
}
