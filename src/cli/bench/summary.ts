import type { EngineName, WorkloadName } from './config.js'
import { mergeHistograms, summarize, type LatencySummaryNs } from './latency.js'
import type { BenchOutcome, RunResult } from './runner.js'

/**
 * Figures across runs: medians of the rates, latency percentiles of all runs'
 * operations together, and the speed ratio of stratadb to each peer.
 */

/** One workload on one engine, over every run. */
export interface Summary {
  workload: WorkloadName
  engine: EngineName
  /** Runs that succeeded. */
  runs: number
  /** Error messages of the runs that failed. */
  errors: string[]
  /** Why the engine cannot run the workload, when it was skipped. */
  skipped?: string
  opsPerSecMedian: number
  opsPerSecMin: number
  opsPerSecMax: number
  mbPerSecMedian: number
  elapsedMsMedian: number
  /** Percentiles over the operations of every successful run. */
  latencyNs?: LatencySummaryNs
  closeMsMedian?: number
  /** Found point reads per successful run. */
  found?: number[]
  /** The base engine's median ops/s divided by this engine's (> 1: base faster); absent on the base's own row. */
  stratadbSpeedRatio?: number
}

/** The engine the others are compared with: stratadb, or stratadb-level when stratadb itself is not run. */
export function baseEngine(engines: readonly { name: EngineName; available: boolean }[]): EngineName | undefined {
  const available = engines.filter((e) => e.available).map((e) => e.name)
  return available.includes('stratadb') ? 'stratadb' : available.includes('stratadb-level') ? 'stratadb-level' : undefined
}

/** The median of `values` (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Summaries in workload order, then engine order (a workload named twice is summarized once, over all its results). */
export function summarizeOutcome(outcome: BenchOutcome): Summary[] {
  const summaries: Summary[] = []
  for (const workload of new Set(outcome.config.workloads)) {
    const rows: Summary[] = []
    for (const engine of outcome.engines) {
      if (!engine.available) continue
      const results = outcome.results.filter((r) => r.workload === workload && r.engine === engine.name)
      if (results.length > 0) rows.push(summarizeResults(workload, engine.name, results))
    }
    const base = baseEngine(outcome.engines)
    const strata = rows.find((s) => s.engine === base)
    if (strata !== undefined && strata.runs > 0) {
      for (const s of rows) {
        if (s !== strata && s.runs > 0 && s.opsPerSecMedian > 0) s.stratadbSpeedRatio = strata.opsPerSecMedian / s.opsPerSecMedian
      }
    }
    summaries.push(...rows)
  }
  return summaries
}

function summarizeResults(workload: WorkloadName, engine: EngineName, results: RunResult[]): Summary {
  const ok = results.filter((r) => r.ok)
  const rates = ok.map((r) => r.opsPerSec)
  const histograms = ok.flatMap((r) => (r.histogram ? [r.histogram] : []))
  const closes = ok.flatMap((r) => (r.closeMs !== undefined ? [r.closeMs] : []))
  const found = ok.flatMap((r) => (r.found !== undefined ? [r.found] : []))
  // Percentiles measured elsewhere (bigdata's child): the median of each over the runs.
  const summaries = ok.flatMap((r) => (r.histogram === undefined && r.latencyNs !== undefined ? [r.latencyNs] : []))
  const latencyNs =
    histograms.length > 0
      ? summarize(mergeHistograms(histograms))
      : summaries.length > 0
        ? (Object.fromEntries(
            (Object.keys(summaries[0]) as Array<keyof LatencySummaryNs>).map((k) => [k, median(summaries.map((l) => l[k]))]),
          ) as unknown as LatencySummaryNs)
        : undefined
  const skipped = results.find((r) => r.skipped !== undefined)?.skipped
  return {
    workload,
    engine,
    runs: ok.length,
    errors: results.filter((r) => !r.ok && r.skipped === undefined).map((r) => r.error ?? 'failed'),
    ...(skipped !== undefined ? { skipped } : {}),
    opsPerSecMedian: median(rates),
    opsPerSecMin: Math.min(...rates),
    opsPerSecMax: Math.max(...rates),
    mbPerSecMedian: median(ok.map((r) => r.mbPerSec)),
    elapsedMsMedian: median(ok.map((r) => r.elapsedMs)),
    latencyNs,
    closeMsMedian: closes.length > 0 ? median(closes) : undefined,
    found: found.length > 0 ? found : undefined,
  }
}
