import * as fs from 'node:fs'
import type { BenchConfig } from './config.js'
import type { Environment } from './environment.js'
import type { BenchOutcome, EngineInfo } from './runner.js'
import { summarizeOutcome, type Summary } from './summary.js'
import { WORKLOADS } from './workloads.js'

/** The human-readable report (tables on stdout) and the JSON report. */

const int = (n: number): string => Math.round(n).toLocaleString('en-US')

/** A duration in nanoseconds with three significant digits and a fitting unit. */
export function formatNs(ns: number): string {
  const units: Array<[number, string]> = [
    [1e9, 's'],
    [1e6, 'ms'],
    [1e3, 'µs'],
  ]
  for (const [scale, unit] of units) {
    if (ns >= scale) return `${threeDigits(ns / scale)}${unit}`
  }
  return `${Math.round(ns)}ns`
}

function threeDigits(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)
}

/** Operations per second: integers, but three significant digits below 100 (reopen: opens per second). */
function formatRate(perSec: number): string {
  return perSec >= 100 ? int(perSec) : perSec.toPrecision(3)
}

function formatBytes(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`
}

/** The header: machine, software versions, settings and each engine's durability mode. */
export function formatHeader(config: BenchConfig, engines: EngineInfo[], env: Environment): string {
  const lines: string[] = []
  const versions = engines
    .map((e) => {
      if (!e.available) return `${e.name} (not available)`
      const revision = e.name === 'stratadb' && env.stratadbRevision !== undefined ? ` (git ${env.stratadbRevision})` : ''
      return `${e.name} ${e.version}${revision}`
    })
    .join(', ')
  lines.push(`strata bench: ${versions}`)
  lines.push(`machine:  ${env.cpuModel}, ${env.cores} cores, ${formatBytes(env.totalMemoryBytes)} RAM, ${env.os}`)
  const busy = env.loadAverage1m > env.cores * 0.5 ? ' (high: the CPU was busy before the bench started, expect noise)' : ''
  lines.push(`load:     ${env.loadAverage1m.toFixed(2)} (1-minute average at start)${busy}`)
  lines.push(`node:     ${env.node}`)
  lines.push(
    `settings: num ${int(config.num)}, keys ${config.keyBytes} B, values ${config.valueBytes} B (random), ` +
      `concurrency ${config.concurrency}, batch ${int(config.batchEntries)}, seed ${config.seed}, runs ${config.runs}`,
  )
  lines.push('engines (durability, then calls used):')
  const width = Math.max(...engines.map((e) => e.name.length)) + 2
  for (const e of engines) {
    const name = e.name.padEnd(width)
    if (!e.available) {
      lines.push(`  ${name}NOT AVAILABLE, skipped: ${e.error}`)
      continue
    }
    lines.push(`  ${name}${e.durability}`)
    lines.push(`  ${' '.repeat(width)}${e.calls}`)
  }
  lines.push(
    'latency: from call to return (sync) or to resolution (async, so it includes queueing behind the other operations in flight); ' +
      'timing costs ~0.1 µs per operation on every engine',
  )
  return lines.join('\n')
}

type Column = { title: string; align: 'left' | 'right'; cell: (s: Summary) => string }

/** One table per workload, one row per engine. */
export function formatTables(outcome: BenchOutcome): string {
  const summaries = summarizeOutcome(outcome)
  const multiRun = outcome.config.runs > 1
  const columns: Column[] = [
    { title: 'engine', align: 'left', cell: (s) => s.engine },
    { title: multiRun ? 'ops/s (median)' : 'ops/s', align: 'right', cell: (s) => formatRate(s.opsPerSecMedian) },
    ...(multiRun
      ? [{ title: 'spread', align: 'right', cell: (s: Summary) => `${(((s.opsPerSecMax - s.opsPerSecMin) / s.opsPerSecMedian) * 100).toFixed(0)}%` } as Column]
      : []),
    { title: 'MB/s', align: 'right', cell: (s) => (s.mbPerSecMedian > 0 ? s.mbPerSecMedian.toFixed(1) : '-') },
    { title: 'p50', align: 'right', cell: (s) => (s.latencyNs ? formatNs(s.latencyNs.p50) : '-') },
    { title: 'p99', align: 'right', cell: (s) => (s.latencyNs ? formatNs(s.latencyNs.p99) : '-') },
    { title: 'p99.9', align: 'right', cell: (s) => (s.latencyNs ? formatNs(s.latencyNs.p999) : '-') },
    { title: 'max', align: 'right', cell: (s) => (s.latencyNs ? formatNs(s.latencyNs.max) : '-') },
    { title: 'close', align: 'right', cell: (s) => (s.closeMsMedian !== undefined ? formatNs(s.closeMsMedian * 1e6) : '-') },
    { title: 'stratadb ÷ peer', align: 'right', cell: (s) => (s.stratadbSpeedRatio !== undefined ? `${s.stratadbSpeedRatio.toFixed(2)}×` : '') },
  ]
  const out: string[] = []
  for (const workload of outcome.config.workloads) {
    const rows = summaries.filter((s) => s.workload === workload)
    if (rows.length === 0) continue
    out.push('')
    out.push(`${workload}: ${WORKLOADS[workload].describe(outcome.config)}`)
    const ok = rows.filter((s) => s.runs > 0)
    const cells = ok.map((s) => columns.map((c) => c.cell(s)))
    const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i].length)))
    const line = (values: string[]): string =>
      '  ' + values.map((v, i) => (columns[i].align === 'left' ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ').trimEnd()
    out.push(line(columns.map((c) => c.title)))
    for (const row of cells) out.push(line(row))
    for (const s of rows) {
      for (const error of new Set(s.errors)) out.push(`  ${s.engine.padEnd(widths[0])}  FAILED${s.runs > 0 ? ' in some runs' : ''}: ${error}`)
    }
    const foundNote = formatFound(ok, outcome.config.num)
    if (foundNote) out.push(`  ${foundNote}`)
    const statsNote = formatStratadbStats(outcome, workload)
    if (statsNote) out.push(`  ${statsNote}`)
  }
  out.push('')
  out.push('stratadb ÷ peer: stratadb ops/s divided by that engine\'s (> 1 means stratadb is faster); reopen: opens per second.')
  return out.join('\n')
}

/** "found 126,424 of 200,000 (63.2%)", and a warning when engines disagree. */
function formatFound(rows: Summary[], num: number): string | undefined {
  const withFound = rows.filter((s) => s.found !== undefined)
  if (withFound.length === 0) return undefined
  const all = withFound.flatMap((s) => s.found!)
  if (all.every((f) => f === all[0])) return `found ${int(all[0])} of ${int(num)} (${((all[0] / num) * 100).toFixed(1)}%) on every engine`
  return `WARNING: engines found different key counts: ${withFound.map((s) => `${s.engine} ${s.found!.map(int).join('/')}`).join(', ')}`
}

/** Flush and stall counters of stratadb's last successful run of `workload`. */
function formatStratadbStats(outcome: BenchOutcome, workload: string): string | undefined {
  const last = outcome.results.filter((r) => r.ok && r.engine === 'stratadb' && r.workload === workload && r.engineStats !== undefined).at(-1)
  if (last === undefined) return undefined
  const stats = last.engineStats as {
    levels?: Array<{ tables: number }>
    writes?: { flushes: number; stalls: number; stallMs: number }
  }
  if (stats.writes === undefined || stats.levels === undefined) return undefined
  const tables = stats.levels.map((l) => l.tables).join('/')
  return `stratadb counters at the end: ${stats.writes.flushes} flushes, ${stats.writes.stalls} write stalls (${Math.round(stats.writes.stallMs)} ms), tables per level ${tables}`
}

/** Writes every raw figure, the summaries and the settings as JSON. */
export function writeJsonReport(outPath: string, outcome: BenchOutcome): void {
  const report = {
    schema: 'stratadb-bench/1',
    units: { latencyNs: 'nanoseconds', mbPerSec: '10^6 bytes per second', ms: 'milliseconds' },
    config: outcome.config,
    environment: outcome.environment,
    engines: outcome.engines,
    summaries: summarizeOutcome(outcome),
    results: outcome.results.map(({ histogram: _histogram, ...rest }) => rest),
  }
  fs.writeFileSync(outPath, JSON.stringify(report, null, 2) + '\n')
}
