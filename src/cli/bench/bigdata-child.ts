import * as fs from 'node:fs'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { EngineName } from './config.js'
import { runConcurrent } from './drivers.js'
import { loadEngine, type EngineAdapter, type OpenSettings } from './engines.js'
import { KeyFormat, Permutation, SeededRandom, ValuePool, streamSeed } from './key-stream.js'
import { LatencyRecorder, summarize, type LatencySummaryNs } from './latency.js'
import { LoopWatch, type LoopReport } from './loop-watch.js'
import { ProgressBar, setActiveProgress } from './progress.js'
import { windowStats, type SeriesPoint, type WindowPoint } from './timeline.js'

/**
 * The bigdata workload's process, one per engine (forked by bigdata.ts, or
 * run by hand: `node dist/cli/bench/bigdata-child.js '<request JSON>'`), so
 * that its peak memory is that engine's alone. Writes `num` distinct keys in
 * a random order, closes, reopens, makes `reads` random point reads, closes,
 * and prints one line of JSON (BigdataResult) on stdout.
 */

export interface BigdataRequest {
  engine: EngineName
  dir: string
  keyBytes: number
  valueBytes: number
  /** --compression-ratio: how far values compress (1: incompressible). */
  compressionRatio: number
  seed: number
  num: number
  reads: number
  /** Keys per throughput window. */
  windowOps: number
  concurrency: number
  settings: OpenSettings
}

/** Progress sent to the parent over IPC (when there is a parent). */
export type BigdataChildMessage = { type: 'progress'; phase: 'write' | 'read'; done: number; total: number }

/** The process's memory, from sampling and from /proc/self/status. */
export interface MemoryReport {
  /** Largest process.memoryUsage().rss seen by the sampler (every RSS_SAMPLE_MS, and at phase ends). */
  peakRssSampledBytes: number
  peakRssWriteBytes: number
  peakRssReadBytes: number
  /** Largest RssAnon sample (/proc/self/status): the process's own memory, without mapped files. */
  peakRssAnonBytes?: number
  /** Largest RssFile sample: pages of mapped files (LevelDB's and lmdb's memory-mapped tables and data file). */
  peakRssFileBytes?: number
  /** Largest V8 heap in use, and largest memory outside it held by JS objects (Buffers): process.memoryUsage(). */
  peakHeapUsedBytes: number
  peakExternalBytes: number
  /** VmHWM: the kernel's peak resident set size of the process (includes file-backed pages, e.g. lmdb's memory map). */
  vmHwmBytes?: number
  /** RssAnon and RssFile at the end: anonymous memory and mapped file pages. */
  rssAnonBytesAtEnd?: number
  rssFileBytesAtEnd?: number
  samples: number
  /** Largest sample per second since the child started (each field on its own). */
  perSecond: MemorySecond[]
}

export interface MemorySecond {
  t: number
  phase: string
  rssBytes: number
  rssAnonBytes?: number
  rssFileBytes?: number
  heapUsedBytes: number
  externalBytes: number
}

export interface BigdataResult {
  engine: EngineName
  tuning: string
  num: number
  reads: number
  windowOps: number
  write: {
    elapsedMs: number
    opsPerSec: number
    mbPerSec: number
    latencyNs: LatencySummaryNs | undefined
    series: SeriesPoint[]
    windows: WindowPoint[]
    /** Slowest and median full window, and their ratio (the issue asks for >= 0.25). */
    windowStats: { min: number; median: number; minOverMedian: number } | undefined
    /** Event-loop blocks and GC pauses of the main thread while the puts ran. */
    loop: LoopReport
  }
  read: {
    elapsedMs: number
    opsPerSec: number
    found: number
    /** getSync, or an awaited get where the engine has no synchronous one. */
    call: string
    latencyNs: LatencySummaryNs | undefined
    series: SeriesPoint[]
  }
  openMs: number
  /** Close after the writes (stratadb and LevelDB wait for their flush or compaction in progress). */
  closeMs: number
  reopenMs: number
  finalCloseMs: number
  /** Sum of the file sizes in the database directory after the close that follows the writes, and at the end. */
  diskBytesAfterWrite: number
  diskBytesFinal: number
  /** Blocks actually allocated at the end (st_blocks × 512). */
  diskAllocatedBytesFinal: number
  memory: MemoryReport
  io: {
    /** Key and value bytes written by the workload. */
    userBytes: number
    /** /proc/self/io over open + writes + close: bytes passed to write(2) and friends (wchar), and bytes sent to storage (write_bytes − cancelled_write_bytes). */
    wcharBytes?: number
    storageWriteBytes?: number
    writeAmpSyscalls?: number
    writeAmpStorage?: number
  }
  /** The engine's own counters (stratadb: db.stats()) at the end of the writes and at the end of the reads. */
  engineStatsAfterWrite?: unknown
  engineStatsAfterRead?: unknown
}

/** Interval of the RSS sampler. */
const RSS_SAMPLE_MS = 100
/** Interval of the progress messages to the parent. */
const PROGRESS_MS = 250
/** The read loop yields to the event loop this often, so the sampler and the progress messages run. */
const READ_YIELD_MS = 100

function readProcFile(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
}

/** A field of /proc/self/status in bytes (the file says kB). */
function statusBytes(status: string | undefined, field: string): number | undefined {
  const match = status?.match(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm'))
  return match ? Number(match[1]) * 1024 : undefined
}

function procIo(): Record<string, number> | undefined {
  const text = readProcFile('/proc/self/io')
  if (text === undefined) return undefined
  const out: Record<string, number> = {}
  for (const line of text.trim().split('\n')) {
    const [key, value] = line.split(':')
    out[key.trim()] = Number(value)
  }
  return out
}

/** Apparent and allocated bytes of every file under `dir`. */
export function directoryBytes(dir: string): { bytes: number; allocatedBytes: number } {
  let bytes = 0
  let allocatedBytes = 0
  const walk = (d: string): void => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name)
      if (entry.isDirectory()) walk(p)
      else if (entry.isFile()) {
        const st = fs.statSync(p)
        bytes += st.size
        allocatedBytes += st.blocks * 512
      }
    }
  }
  if (fs.existsSync(dir)) walk(dir)
  return { bytes, allocatedBytes }
}

class RssSampler {
  peak = 0
  peakAnon: number | undefined
  peakFile: number | undefined
  peakHeapUsed = 0
  peakExternal = 0
  readonly peakByPhase: Record<string, number> = {}
  samples = 0
  phase = 'open'
  readonly perSecond: MemorySecond[] = []
  private readonly startMs = performance.now()
  private readonly timer: NodeJS.Timeout

  constructor() {
    this.timer = setInterval(() => this.sample(), RSS_SAMPLE_MS)
    this.sample()
  }

  sample(): void {
    const usage = process.memoryUsage()
    const rss = usage.rss
    const status = readProcFile('/proc/self/status')
    const anon = statusBytes(status, 'RssAnon')
    const file = statusBytes(status, 'RssFile')
    this.samples++
    const max = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined ? b : b === undefined ? a : Math.max(a, b))
    this.peak = Math.max(this.peak, rss)
    this.peakAnon = max(this.peakAnon, anon)
    this.peakFile = max(this.peakFile, file)
    this.peakHeapUsed = Math.max(this.peakHeapUsed, usage.heapUsed)
    this.peakExternal = Math.max(this.peakExternal, usage.external)
    if (rss > (this.peakByPhase[this.phase] ?? 0)) this.peakByPhase[this.phase] = rss
    const t = Math.floor((performance.now() - this.startMs) / 1000)
    const last = this.perSecond.at(-1)
    if (last !== undefined && last.t === t && last.phase === this.phase) {
      last.rssBytes = Math.max(last.rssBytes, rss)
      last.rssAnonBytes = max(last.rssAnonBytes, anon)
      last.rssFileBytes = max(last.rssFileBytes, file)
      last.heapUsedBytes = Math.max(last.heapUsedBytes, usage.heapUsed)
      last.externalBytes = Math.max(last.externalBytes, usage.external)
    } else {
      this.perSecond.push({ t, phase: this.phase, rssBytes: rss, rssAnonBytes: anon, rssFileBytes: file, heapUsedBytes: usage.heapUsed, externalBytes: usage.external })
    }
  }

  stop(): void {
    clearInterval(this.timer)
    this.sample()
  }
}

/** What the write phase measured: open, the writes, and the close after them. */
interface WritePhase {
  openMs: number
  writeMs: number
  writeLatency: LatencyRecorder
  closeMs: number
  engineStatsAfterWrite: unknown
  loop: LoopReport
}

/** What the read phase measured: reopen, the point reads, and the final close. */
interface ReadPhase {
  reopenMs: number
  readMs: number
  readLatency: LatencyRecorder
  found: number
  call: string
  finalCloseMs: number
  engineStatsAfterRead: unknown
}

/** The parts of one run the phases share. */
interface BigdataRun {
  request: BigdataRequest
  adapter: EngineAdapter
  sampler: RssSampler
  bar: ProgressBar
  keys: KeyFormat
  values: ValuePool
  /** The order the writes visit the keys in. */
  order: Permutation
}

/** Sends the bar's progress to the parent every PROGRESS_MS, tagged with the phase `phase()` names. */
function startProgressMessages(bar: ProgressBar, phase: () => 'write' | 'read'): NodeJS.Timeout {
  const timer = setInterval(() => {
    const message: BigdataChildMessage = { type: 'progress', phase: phase(), done: bar.doneCount, total: bar.totalCount }
    process.send?.(message)
  }, PROGRESS_MS)
  timer.unref()
  return timer
}

/** Opens the database, writes `num` distinct keys in a random order, and closes it. */
async function runWritePhase(run: BigdataRun): Promise<WritePhase> {
  const { request, adapter, sampler, keys, values, order } = run
  const { num, concurrency, settings } = request
  let t = performance.now()
  const db = await adapter.open(request.dir, settings)
  const openMs = performance.now() - t
  sampler.phase = 'write'
  const writeLatency = new LatencyRecorder(request.windowOps)
  const watch = new LoopWatch()
  const writeMs = await runConcurrent(num, concurrency, (op) => db.put(keys.encode(order.at(op)), values.valueFor(op)), writeLatency)
  const loop = watch.stop()
  sampler.sample()
  const engineStatsAfterWrite = db.stats()
  sampler.phase = 'close'
  t = performance.now()
  await db.close()
  const closeMs = performance.now() - t
  return { openMs, writeMs, writeLatency, closeMs, engineStatsAfterWrite, loop }
}

/** Reopens the database, makes `reads` random point reads, and closes it. */
async function runReadPhase(run: BigdataRun): Promise<ReadPhase> {
  const { request, adapter, sampler, bar, keys } = run
  const { num, reads, seed, settings } = request
  let t = performance.now()
  const db = await adapter.open(request.dir, settings)
  const reopenMs = performance.now() - t
  sampler.phase = 'read'
  const readLatency = new LatencyRecorder()
  const random = new SeededRandom(streamSeed(seed, 'bigdata-read'))
  const getSync = db.getSync
  let found = 0
  bar.phase(reads)
  const readStartMs = performance.now()
  readLatency.start(readStartMs)
  let lastYieldMs = readStartMs
  for (let op = 0; op < reads; op++) {
    const key = keys.encode(random.below(num))
    const opStartMs = performance.now()
    const value = getSync !== undefined ? getSync(key) : await db.get(key)
    readLatency.recordSince(opStartMs)
    if (value !== undefined) found++
    if ((op & 255) === 255 && performance.now() - lastYieldMs > READ_YIELD_MS) {
      await yieldToEventLoop()
      lastYieldMs = performance.now()
    }
  }
  const readEndMs = performance.now()
  readLatency.finish(readEndMs)
  const readMs = readEndMs - readStartMs
  sampler.sample()
  const engineStatsAfterRead = db.stats()
  sampler.phase = 'close'
  t = performance.now()
  await db.close()
  const finalCloseMs = performance.now() - t
  const call = getSync !== undefined ? 'getSync' : 'await get'
  return { reopenMs, readMs, readLatency, found, call, finalCloseMs, engineStatsAfterRead }
}

/** Write amplification from /proc/self/io before and after the write phase (when readable). */
function ioReport(userBytes: number, io0: Record<string, number> | undefined, io1: Record<string, number> | undefined): BigdataResult['io'] {
  const io: BigdataResult['io'] = { userBytes }
  if (io0 !== undefined && io1 !== undefined) {
    io.wcharBytes = io1.wchar - io0.wchar
    io.storageWriteBytes = io1.write_bytes - io0.write_bytes - (io1.cancelled_write_bytes - io0.cancelled_write_bytes)
    io.writeAmpSyscalls = io.wcharBytes / userBytes
    io.writeAmpStorage = io.storageWriteBytes / userBytes
  }
  return io
}

/** The sampler's peaks, and the kernel's figures from /proc/self/status at the end. */
function memoryReport(sampler: RssSampler, status: string | undefined): MemoryReport {
  return {
    peakRssSampledBytes: sampler.peak,
    peakRssWriteBytes: sampler.peakByPhase.write ?? 0,
    peakRssReadBytes: sampler.peakByPhase.read ?? 0,
    peakRssAnonBytes: sampler.peakAnon,
    peakRssFileBytes: sampler.peakFile,
    peakHeapUsedBytes: sampler.peakHeapUsed,
    peakExternalBytes: sampler.peakExternal,
    vmHwmBytes: statusBytes(status, 'VmHWM'),
    rssAnonBytesAtEnd: statusBytes(status, 'RssAnon'),
    rssFileBytesAtEnd: statusBytes(status, 'RssFile'),
    samples: sampler.samples,
    perSecond: sampler.perSecond,
  }
}

export async function runBigdata(request: BigdataRequest): Promise<BigdataResult> {
  const { num, reads, keyBytes, valueBytes, seed, settings } = request
  const sampler = new RssSampler()
  const bar = new ProgressBar(undefined)
  setActiveProgress(bar)
  let phase: 'write' | 'read' = 'write'
  const progressTimer = startProgressMessages(bar, () => phase)

  const adapter = await loadEngine(request.engine)
  const keys = new KeyFormat(keyBytes)
  const values = new ValuePool(valueBytes, seed, request.compressionRatio)
  const order = new Permutation(num, streamSeed(seed, 'bigdata'))
  const run: BigdataRun = { request, adapter, sampler, bar, keys, values, order }
  const io0 = procIo()
  const written = await runWritePhase(run)
  const io1 = procIo()
  const afterWrite = directoryBytes(request.dir)

  phase = 'read'
  const read = await runReadPhase(run)
  const final = directoryBytes(request.dir)
  clearInterval(progressTimer)
  sampler.stop()
  const status = readProcFile('/proc/self/status')

  const userBytes = num * (keyBytes + valueBytes)
  const writeSeconds = written.writeMs / 1000
  return {
    engine: request.engine,
    tuning: adapter.tuning(settings),
    num,
    reads,
    windowOps: request.windowOps,
    write: {
      elapsedMs: written.writeMs,
      opsPerSec: num / writeSeconds,
      mbPerSec: userBytes / 1e6 / writeSeconds,
      latencyNs: summarize(written.writeLatency.histogram),
      series: written.writeLatency.timeline.series,
      windows: written.writeLatency.timeline.windows,
      windowStats: windowStats(written.writeLatency.timeline.windows),
      loop: written.loop,
    },
    read: {
      elapsedMs: read.readMs,
      opsPerSec: read.readMs > 0 ? reads / (read.readMs / 1000) : 0,
      found: read.found,
      call: read.call,
      latencyNs: summarize(read.readLatency.histogram),
      series: read.readLatency.timeline.series,
    },
    openMs: written.openMs,
    closeMs: written.closeMs,
    reopenMs: read.reopenMs,
    finalCloseMs: read.finalCloseMs,
    diskBytesAfterWrite: afterWrite.bytes,
    diskBytesFinal: final.bytes,
    diskAllocatedBytesFinal: final.allocatedBytes,
    memory: memoryReport(sampler, status),
    io: ioReport(userBytes, io0, io1),
    engineStatsAfterWrite: written.engineStatsAfterWrite,
    engineStatsAfterRead: read.engineStatsAfterRead,
  }
}

// Run only as a process of its own, not when imported.
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // Never outlive the parent.
  process.on('disconnect', () => process.exit(1))
  runBigdata(JSON.parse(process.argv[2] ?? '') as BigdataRequest)
    .then((result) => {
      process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0))
    })
    .catch((err: unknown) => {
      console.error(err instanceof Error ? (err.stack ?? err.message) : String(err))
      process.exit(1)
    })
}
