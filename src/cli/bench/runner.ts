import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import type { RecordableHistogram } from 'node:perf_hooks'
import { stratadbOpenOptions, type BenchConfig, type EngineName, type WorkloadName } from './config.js'
import { loadEngine, type BenchDb, type EngineAdapter, type OpenSettings } from './engines.js'
import { describeEnvironment, type Environment } from './environment.js'
import { summarize, type LatencySummaryNs } from './latency.js'
import { activeProgress } from './progress.js'
import type { SeriesPoint } from './timeline.js'
import { SkipWorkload, createContext, type DatabaseWorkload, type Measurement, type Workload, type WorkloadContext } from './workload.js'
import { WORKLOADS, populate } from './workloads.js'

/**
 * Runs the workloads on every engine, interleaved: within a run, each
 * workload goes through the engines in turn (A B C), so drift of a noisy
 * machine spreads over all of them; `--runs` repeats the whole list on new
 * databases. A failing engine is recorded and the bench goes on.
 */

/** An engine the user asked for, loaded or not. */
export interface EngineInfo {
  name: EngineName
  available: boolean
  version?: string
  durability?: string
  calls?: string
  /** How fillsync makes each write durable. */
  syncWrites?: string
  /** The transaction of the increment workloads, or why there is none. */
  transactions?: string
  /** Why it could not be loaded. */
  error?: string
}

/** One workload on one engine in one run. */
export interface RunResult {
  run: number
  workload: WorkloadName
  engine: EngineName
  ok: boolean
  error?: string
  /** Why the engine cannot run this workload (e.g. no transactions); such a result is neither ok nor a failure. */
  skipped?: string
  ops: number
  /** Key and value bytes written, or read and found. */
  bytes: number
  elapsedMs: number
  opsPerSec: number
  /** 1 MB = 10^6 bytes. */
  mbPerSec: number
  latencyNs?: LatencySummaryNs
  /** Point reads that found their key. */
  found?: number
  /** Untimed open before the workload. */
  openMs?: number
  /** Untimed close after the workload (includes waiting for flushes in progress). */
  closeMs?: number
  /** Untimed load of num keys, when the workload needed data and found none. */
  populateMs?: number
  /** The engine's own counters after the workload (stratadb: db.stats()). */
  engineStats?: unknown
  details?: Record<string, unknown>
  /** Throughput and latency per second of the timed part (absent for scans). */
  series?: SeriesPoint[]
  /** Raw latencies, for merging across runs; not serialized. */
  histogram?: RecordableHistogram
}

/** Everything a bench invocation produced. */
export interface BenchOutcome {
  config: BenchConfig
  environment: Environment
  engines: EngineInfo[]
  results: RunResult[]
}

/** Where each engine's database of the current run lives, and whether it holds data. */
interface EngineState {
  readonly adapter: EngineAdapter
  readonly dir: string
  /** True once a workload left a complete database in `dir`. */
  hasData: boolean
}

/** Loads the engines named by `config`, recording why a missing one is missing. */
export async function loadEngines(config: BenchConfig): Promise<{ infos: EngineInfo[]; adapters: EngineAdapter[] }> {
  const infos: EngineInfo[] = []
  const adapters: EngineAdapter[] = []
  for (const name of config.engines) {
    try {
      const adapter = await loadEngine(name)
      adapters.push(adapter)
      infos.push({
        name,
        available: true,
        version: adapter.version,
        durability: adapter.durability,
        calls: adapter.calls,
        syncWrites: adapter.syncWrites,
        transactions: adapter.transactions.supported ? adapter.transactions.how : `none (${adapter.transactions.why})`,
      })
    } catch (err) {
      infos.push({ name, available: false, error: errorMessage(err) })
    }
  }
  return { infos, adapters }
}

/**
 * Runs the bench. `progress` receives one line per finished measurement;
 * `onHeader` is called once the engines are loaded, before anything is timed.
 */
export async function runBench(
  config: BenchConfig,
  progress: (line: string) => void,
  onHeader: (engines: EngineInfo[], environment: Environment) => void,
): Promise<BenchOutcome> {
  const { infos, adapters } = await loadEngines(config)
  const packages: Record<string, string> = {}
  for (const info of infos) if (info.version !== undefined) packages[info.name] = info.version
  const environment = describeEnvironment(packages)
  onHeader(infos, environment)
  const outcome: BenchOutcome = { config, environment, engines: infos, results: [] }
  if (adapters.length === 0) return outcome

  const keepData = config.dir !== undefined
  const root = prepareRoot(config.dir)
  const ctx = createContext(config)
  try {
    for (let run = 1; run <= config.runs; run++) {
      const runDir = path.join(root, `run-${run}`)
      const scratchDir = path.join(runDir, 'scratch')
      fs.mkdirSync(scratchDir, { recursive: true })
      const states = adapters.map((adapter): EngineState => ({ adapter, dir: path.join(runDir, adapter.name), hasData: false }))
      for (const name of config.workloads) {
        for (const state of states) {
          activeProgress().begin(`${config.runs > 1 ? `run ${run} ` : ''}${name} ${state.adapter.name}`)
          let result: RunResult
          try {
            result = await runOne(WORKLOADS[name], state, ctx, scratchDir, run)
          } finally {
            activeProgress().end()
          }
          outcome.results.push(result)
          progress(progressLine(result, config.runs))
          await settle()
        }
      }
      if (!keepData) fs.rmSync(runDir, { recursive: true, force: true })
    }
  } finally {
    if (!keepData) fs.rmSync(root, { recursive: true, force: true })
  }
  return outcome
}

/** The parent directory of the databases: a new temporary one, or `dir`, which must be empty or missing. */
function prepareRoot(dir: string | undefined): string {
  if (dir === undefined) return fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bench-'))
  const root = path.resolve(dir)
  if (fs.existsSync(root) && fs.readdirSync(root).length > 0) {
    throw new Error(`--dir ${root} is not empty; give a new or empty directory (the bench keeps its databases there)`)
  }
  fs.mkdirSync(root, { recursive: true })
  return root
}

/** Runs one workload on one engine; never throws. */
async function runOne(workload: Workload, state: EngineState, ctx: WorkloadContext, scratchDir: string, run: number): Promise<RunResult> {
  const base = { run, workload: workload.name, engine: state.adapter.name }
  try {
    const timings: Partial<RunResult> = {}
    let measured: Measurement
    if (workload.database === 'own') {
      measured = await workload.run(state.adapter, scratchDir, ctx)
    } else if (workload.database === 'scratch') {
      workload.check?.(state.adapter)
      measured = await runOnScratch(workload, state.adapter, ctx, scratchDir, timings)
    } else {
      workload.check?.(state.adapter)
      measured = await runOnDatabase(workload, state, ctx, timings)
    }
    return { ...base, ok: true, ...toRates(measured), ...timings }
  } catch (err) {
    const failed = { ...base, ok: false, ops: 0, bytes: 0, elapsedMs: 0, opsPerSec: 0, mbPerSec: 0 }
    if (err instanceof SkipWorkload) return { ...failed, skipped: err.message }
    return { ...failed, error: errorMessage(err) }
  }
}

/** Runs the workload on a new database in `scratchDir`, removed afterwards; the engine's main database is left as it is. */
async function runOnScratch(
  workload: DatabaseWorkload,
  adapter: EngineAdapter,
  ctx: WorkloadContext,
  scratchDir: string,
  timings: Partial<RunResult>,
): Promise<Measurement> {
  const dir = path.join(scratchDir, `${workload.name}-${adapter.name}`)
  fs.rmSync(dir, { recursive: true, force: true })
  try {
    return await timedRun(workload, adapter, dir, ctx, timings)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Opens, runs the workload, records the engine's counters, closes; the open and close are timed apart. */
async function timedRun(
  workload: DatabaseWorkload,
  adapter: EngineAdapter,
  dir: string,
  ctx: WorkloadContext,
  timings: Partial<RunResult>,
): Promise<Measurement> {
  const openStartMs = performance.now()
  const db = await adapter.open(dir, openSettings(ctx))
  timings.openMs = performance.now() - openStartMs
  try {
    const measured = await workload.run(db, ctx)
    timings.engineStats = db.stats()
    return measured
  } finally {
    const closeStartMs = performance.now()
    await db.close()
    timings.closeMs = performance.now() - closeStartMs
  }
}

/** Opens the engine's database as the workload needs it, runs the workload, closes; records the untimed steps in `timings`. */
async function runOnDatabase(
  workload: DatabaseWorkload,
  state: EngineState,
  ctx: WorkloadContext,
  timings: Partial<RunResult>,
): Promise<Measurement> {
  if (workload.database === 'fresh' || !state.hasData) {
    state.hasData = false
    fs.rmSync(state.dir, { recursive: true, force: true })
  }
  if (workload.database === 'existing' && !state.hasData) {
    const startMs = performance.now()
    await withDatabase(state.adapter, state.dir, openSettings(ctx), (db) => populate(db, ctx))
    timings.populateMs = performance.now() - startMs
    state.hasData = true
  }
  // Until the workload completes, the database may hold a partial state.
  const hadData = state.hasData
  state.hasData = false
  const measured = await timedRun(workload, state.adapter, state.dir, ctx, timings)
  state.hasData = hadData || workload.database === 'fresh'
  return measured
}

async function withDatabase(
  adapter: EngineAdapter,
  dir: string,
  settings: OpenSettings,
  use: (db: BenchDb) => Promise<void>,
): Promise<void> {
  const db = await adapter.open(dir, settings)
  try {
    await use(db)
  } finally {
    await db.close()
  }
}

/** The budgets --cache-mib asks for, stratadb's --min-blob-bytes and --stratadb-options (none: engine defaults). */
function openSettings(ctx: WorkloadContext): OpenSettings {
  const { cacheBytes } = ctx.config
  const stratadbOptions = stratadbOpenOptions(ctx.config)
  return {
    ...(cacheBytes !== undefined ? { cacheBytes } : {}),
    ...(stratadbOptions !== undefined ? { stratadbOptions } : {}),
  }
}

function toRates(m: Measurement): Omit<RunResult, 'run' | 'workload' | 'engine' | 'ok'> {
  const seconds = m.elapsedMs / 1000
  return {
    ops: m.ops,
    bytes: m.bytes,
    elapsedMs: m.elapsedMs,
    opsPerSec: seconds > 0 ? m.ops / seconds : 0,
    mbPerSec: seconds > 0 ? m.bytes / 1e6 / seconds : 0,
    latencyNs: m.latency ? summarize(m.latency.histogram) : m.latencySummary,
    histogram: m.latency?.histogram,
    found: m.found,
    details: m.details,
    series: m.latency !== undefined && m.latency.timeline.started ? m.latency.timeline.series : m.series,
  }
}

function progressLine(r: RunResult, runs: number): string {
  const where = `${runs > 1 ? `run ${r.run}/${runs} ` : ''}${r.workload} ${r.engine}`
  if (r.skipped !== undefined) return `${where}: skipped: ${r.skipped}`
  if (!r.ok) return `${where}: FAILED: ${r.error}`
  const rate = r.workload === 'reopen' ? `open ${r.elapsedMs.toFixed(1)} ms` : `${Math.round(r.opsPerSec).toLocaleString('en-US')} ops/s`
  return `${where}: ${rate} (${(r.elapsedMs / 1000).toFixed(2)} s timed)`
}

/** Lets pending callbacks (lmdb flushes, timers) run and collects garbage when allowed (--expose-gc). */
async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 50))
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined) gc()
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0]
  return String(err)
}
