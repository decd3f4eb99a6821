import * as fs from 'node:fs'
import type { BigdataResult } from './bigdata-child.js'
import type { BenchConfig, WorkloadName } from './config.js'
import type { Environment } from './environment.js'
import { pieceRandomBytes } from './key-stream.js'
import type { BenchOutcome, EngineInfo, RunResult } from './runner.js'
import { baseEngine, summarizeOutcome, type Summary } from './summary.js'
import { WORKLOADS, formatValueBytes } from './workloads.js'

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

/** Bytes in MiB below 10 GiB, else GiB. */
export function formatSize(bytes: number | undefined): string {
  if (bytes === undefined || !Number.isFinite(bytes)) return '-'
  if (bytes >= 10 * 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`
  return `${(bytes / 2 ** 20).toFixed(bytes >= 100 * 2 ** 20 ? 0 : 1)} MiB`
}

/** What the values are, for the header: --compression-ratio and what it means. */
export function formatValueKind(compressionRatio: number): string {
  if (compressionRatio === 1) return 'compression ratio 1: incompressible random bytes'
  return `compression ratio ${compressionRatio}: db_bench's, 100-byte pieces of ${pieceRandomBytes(compressionRatio)} random printable bytes repeated`
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
    `settings: num ${int(config.num)}, keys ${config.keyBytes} B, values ${config.valueBytes} B (${formatValueKind(config.compressionRatio)}), ` +
      `concurrency ${config.concurrency}, batch ${int(config.batchEntries)}, seed ${config.seed}, runs ${config.runs}`,
  )
  if (config.cacheBytes !== undefined) {
    lines.push(`cache:    ${formatSize(config.cacheBytes)} block cache for stratadb and classic-level (--cache-mib; bigdata has its own)`)
  }
  if (config.minBlobBytes !== undefined) {
    lines.push(`blobs:    minBlobBytes ${int(config.minBlobBytes)} for stratadb and stratadb-level, every workload and bigdata (--min-blob-bytes; the peers have no such option)`)
  }
  if (config.stratadbOptions !== undefined) {
    lines.push(`options:  ${JSON.stringify(config.stratadbOptions)} for stratadb and stratadb-level, every workload and bigdata (--stratadb-options)`)
  }
  if (config.workloads.includes('increment') || config.workloads.includes('increment-keys')) {
    lines.push(`increment: ${int(config.incrementTasks)} tasks × ${int(config.incrementsPerTask)} increments (--tasks, --increments)`)
  }
  if (config.workloads.includes('bigdata')) {
    lines.push(
      `bigdata:  ${int(config.bigdataNum)} keys, windows of ${int(config.bigdataWindow)}, ${int(config.bigdataReads)} reads, ` +
        `write buffer ${formatSize(config.bigdataMemtableBytes)}, cache ${formatSize(config.bigdataCacheBytes)}`,
    )
  }
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
  const base = baseEngine(outcome.engines) ?? 'stratadb'
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
    { title: `${base} ÷ peer`, align: 'right', cell: (s) => (s.stratadbSpeedRatio !== undefined ? `${s.stratadbSpeedRatio.toFixed(2)}×` : '') },
  ]
  const out: string[] = []
  for (const workload of new Set(outcome.config.workloads)) {
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
      if (s.skipped !== undefined && s.runs === 0) out.push(`  ${s.engine.padEnd(widths[0])}  skipped: ${s.skipped}`)
      for (const error of new Set(s.errors)) out.push(`  ${s.engine.padEnd(widths[0])}  FAILED${s.runs > 0 ? ' in some runs' : ''}: ${error}`)
    }
    const foundNote = formatFound(ok, workload === 'bigdata' ? outcome.config.bigdataReads : outcome.config.num, workload)
    if (foundNote) out.push(`  ${foundNote}`)
    for (const note of workloadNotes(outcome, workload)) out.push(`  ${note}`)
    const statsNote = formatStratadbStats(outcome, workload)
    if (statsNote) out.push(`  ${statsNote}`)
    if (workload === 'bigdata') out.push(...formatBigdata(outcome))
  }
  out.push('')
  out.push(`${base} ÷ peer: ${base} ops/s divided by that engine's (> 1 means ${base} is faster); reopen: opens per second.`)
  return out.join('\n')
}

/** The last successful result of `workload` on each engine, in engine order. */
function lastResults(outcome: BenchOutcome, workload: WorkloadName): RunResult[] {
  return outcome.engines.flatMap((e) => {
    const r = outcome.results.filter((r) => r.ok && r.workload === workload && r.engine === e.name).at(-1)
    return r ? [r] : []
  })
}

/** Workload-specific lines under a table (last run of each engine). */
function workloadNotes(outcome: BenchOutcome, workload: WorkloadName): string[] {
  const notes: string[] = []
  const results = lastResults(outcome, workload)
  const detail = <T>(r: RunResult, key: string): T | undefined => (r.details as Record<string, T> | undefined)?.[key]
  switch (workload) {
    case 'fillsync':
      for (const e of outcome.engines) if (e.available) notes.push(`${e.name}: ${e.syncWrites}`)
      break
    case 'readwhilewriting':
      for (const r of results) {
        const lat = detail<{ p50: number; p99: number }>(r, 'writeLatencyNs')
        notes.push(
          `${r.engine}: the writer made ${int(detail<number>(r, 'writes') ?? 0)} puts during the reads ` +
            `(${formatRate(detail<number>(r, 'writesPerSec') ?? 0)} puts/s${lat ? `, p50 ${formatNs(lat.p50)}, p99 ${formatNs(lat.p99)}` : ''})`,
        )
      }
      break
    case 'seekrandom':
      for (const r of results) {
        notes.push(`${r.engine}: ${(detail<number>(r, 'entriesPerSeek') ?? 0).toFixed(1)} entries per seek, ${formatRate((detail<number>(r, 'entries') ?? 0) / (r.elapsedMs / 1000))} entries/s`)
      }
      break
    case 'largevalues':
    case 'largevalues16k':
    case 'largevalues1m':
      for (const r of results) {
        const valueBytes = detail<number>(r, 'valueBytes')
        notes.push(
          `${r.engine}: read back (synchronous gets of random keys${valueBytes !== undefined ? `, ${formatValueBytes(valueBytes)} values` : ''}): ${formatRate(detail<number>(r, 'readOpsPerSec') ?? 0)} gets/s, ` +
            `${(detail<number>(r, 'readMbPerSec') ?? 0).toFixed(0)} MB/s, p99 ${formatNs(detail<number>(r, 'readP99Ns') ?? 0)}, ` +
            `found ${int(detail<number>(r, 'readFound') ?? 0)} of ${int(detail<number>(r, 'readOps') ?? 0)}`,
        )
      }
      break
    case 'increment':
    case 'increment-keys':
      for (const r of results) {
        notes.push(
          `${r.engine}: ${int(detail<number>(r, 'commits') ?? 0)} commits, ${int(detail<number>(r, 'conflicts') ?? 0)} conflicts = retries, ` +
            `at most ${int(detail<number>(r, 'maxAttemptsPerTransaction') ?? 0)} attempts for one increment; final count ${int(detail<number>(r, 'finalCount') ?? 0)} (checked)`,
        )
      }
      for (const e of outcome.engines) if (e.available && results.some((r) => r.engine === e.name)) notes.push(`${e.name} transaction: ${e.transactions}`)
      break
  }
  return notes
}

/** One engine's bigdata result with the run it came from. */
interface BigdataRow {
  r: RunResult
  b: BigdataResult
}

/** The parts of stratadb's db.stats() at the end of the writes that the bigdata report shows. */
interface StratadbWriteStats {
  writeAmplification: number
  writes: { stalls: number; stallMs: number; slowdowns: number; slowdownMs: number; flushes: number; waits?: WaitsByCause }
  compaction: { compactions: number; running: number; bytesRead: number; bytesWritten: number; ms: number }
  levels: Array<{ tables: number; bytes: number }>
}

const isStrata = (name: string): boolean => name === 'stratadb' || name === 'stratadb-level'

/** stratadb's stats at the end of the writes; undefined for the other engines. */
function stratadbStats({ r, b }: BigdataRow): StratadbWriteStats | undefined {
  return isStrata(r.engine) ? (b.engineStatsAfterWrite as StratadbWriteStats | undefined) : undefined
}

/** bigdata's own tables: windows, stalls, write amplification; memory, disk and the reads; the issue's targets. */
function formatBigdata(outcome: BenchOutcome): string[] {
  const rows: BigdataRow[] = lastResults(outcome, 'bigdata').flatMap((r) => {
    const b = (r.details as { bigdata?: BigdataResult } | undefined)?.bigdata
    return b ? [{ r, b }] : []
  })
  if (rows.length === 0) return []
  const base = rows.find(({ r }) => r.engine === baseEngine(outcome.engines))
  return [...bigdataWriteLines(outcome, rows), ...bigdataMemoryLines(rows), ...bigdataReadLines(rows, base), ...bigdataNotes(rows)]
}

/** The writes table (windows, stalls, write amplification) and each engine's throughput per window. */
function bigdataWriteLines(outcome: BenchOutcome, rows: BigdataRow[]): string[] {
  const out: string[] = []
  out.push('')
  out.push(`  bigdata writes (windows of ${int(outcome.config.bigdataWindow)} keys)${outcome.config.runs > 1 ? ', last run' : ''}:`)
  out.push(
    ...table(
      ['engine', 'puts/s', 'slowest window', 'median window', 'slowest ÷ median', 'p99.9', 'stalls', 'slowdowns', 'write amp (engine)', 'write amp (write syscalls)'],
      rows.map((row) => {
        const { r, b } = row
        const w = b.write.windowStats
        const st = stratadbStats(row)
        return [
          r.engine,
          formatRate(b.write.opsPerSec),
          w ? formatRate(w.min) : '-',
          w ? formatRate(w.median) : '-',
          w ? `${(w.minOverMedian * 100).toFixed(0)}%` : '-',
          b.write.latencyNs ? formatNs(b.write.latencyNs.p999) : '-',
          st ? `${int(st.writes.stalls)} (${formatNs(st.writes.stallMs * 1e6)})` : '-',
          st ? `${int(st.writes.slowdowns)} (${formatNs(st.writes.slowdownMs * 1e6)})` : '-',
          st ? st.writeAmplification.toFixed(2) : '-',
          b.io.writeAmpSyscalls !== undefined ? b.io.writeAmpSyscalls.toFixed(2) : '-',
        ]
      }),
    ),
  )
  out.push(`  throughput per window, thousands of puts/s (the last one may be partial):`)
  for (const { r, b } of rows) out.push(`  ${r.engine.padEnd(14)} ${b.write.windows.map((w) => (w.opsPerSec / 1000).toFixed(0)).join(' ')}`)
  for (const row of rows) {
    const waits = stratadbStats(row)?.writes.waits
    if (waits !== undefined) out.push(`  ${row.r.engine} write waits by cause: ${formatWaits(waits)}`)
  }
  for (const { r, b } of rows) {
    const l = b.write.loop
    // Older reports (--out files) have no loop figures.
    if (l === undefined) continue
    out.push(
      `  ${r.engine} main thread during the puts: event loop blocked >= 50 ms ${l.blocksOver50Ms} times (longest ${l.longestBlockMs.toFixed(1)} ms, ${(l.longestBlockAtMs / 1000).toFixed(1)} s in); ` +
        `GC ${l.gcPauses} pauses, ${(l.gcTotalMs / 1000).toFixed(2)} s in all, longest ${l.longestGcMs.toFixed(1)} ms, ${l.gcOver50Ms} of 50 ms or more`,
    )
  }
  return out
}

/** stratadb's stats().writes.waits: count, total and longest time per cause. */
type WaitsByCause = Record<string, { count: number; ms: number; maxMs: number; over50Ms: number }>

/** "flushSlot 4 (333 ms, longest 120 ms, 3 of 50 ms or more), …", causes that never waited left out. */
function formatWaits(waits: WaitsByCause): string {
  const parts = Object.entries(waits)
    .filter(([, w]) => w.count > 0)
    .map(([cause, w]) => `${cause} ${int(w.count)} (${formatNs(w.ms * 1e6)}, longest ${formatNs(w.maxMs * 1e6)}, ${int(w.over50Ms)} of 50 ms or more)`)
  return parts.length === 0 ? 'none' : parts.join(', ')
}

/** The memory and disk table. */
function bigdataMemoryLines(rows: BigdataRow[]): string[] {
  return [
    '',
    '  bigdata memory (peaks over the whole child process) and disk:',
    ...table(
      ['engine', 'peak RSS (sampled)', 'VmHWM', 'peak anon', 'peak file-backed', 'peak JS heap', 'peak external', 'disk after writes', 'disk at end'],
      rows.map(({ r, b }) => [
        r.engine,
        formatSize(b.memory.peakRssSampledBytes),
        formatSize(b.memory.vmHwmBytes),
        formatSize(b.memory.peakRssAnonBytes),
        formatSize(b.memory.peakRssFileBytes),
        formatSize(b.memory.peakHeapUsedBytes),
        formatSize(b.memory.peakExternalBytes),
        formatSize(b.diskBytesAfterWrite),
        formatSize(b.diskBytesFinal),
      ]),
    ),
  ]
}

/** The reads table; `base` (the base engine's row) gives the ratio column. */
function bigdataReadLines(rows: BigdataRow[], base: BigdataRow | undefined): string[] {
  return [
    '',
    '  bigdata reads (random keys over the whole set, after reopening):',
    ...table(
      ['engine', 'reads/s', 'p50', 'p99', 'p99.9', 'max', 'found', 'base ÷ peer'],
      rows.map(({ r, b }) => [
        r.engine,
        formatRate(b.read.opsPerSec),
        b.read.latencyNs ? formatNs(b.read.latencyNs.p50) : '-',
        b.read.latencyNs ? formatNs(b.read.latencyNs.p99) : '-',
        b.read.latencyNs ? formatNs(b.read.latencyNs.p999) : '-',
        b.read.latencyNs ? formatNs(b.read.latencyNs.max) : '-',
        `${int(b.read.found)}/${int(b.reads)}`,
        base && base.r !== r && b.read.opsPerSec > 0 ? `${(base.b.read.opsPerSec / b.read.opsPerSec).toFixed(2)}×` : '',
      ]),
    ),
  ]
}

/** stratadb's flush and compaction state, each engine's settings and timings, what the columns mean, the targets. */
function bigdataNotes(rows: BigdataRow[]): string[] {
  const out: string[] = []
  for (const row of rows) {
    const st = stratadbStats(row)
    if (st) {
      out.push(
        `  ${row.r.engine} at the end of the writes: ${int(st.writes.flushes)} flushes, ${int(st.compaction.compactions)} compactions done, ${int(st.compaction.running)} running ` +
          `(${formatSize(st.compaction.bytesRead)} read, ${formatSize(st.compaction.bytesWritten)} written, ${formatNs(st.compaction.ms * 1e6)}), ` +
          `tables per level ${st.levels.map((l) => l.tables).join('/')}, bytes per level ${st.levels.map((l) => formatSize(l.bytes)).join(' / ')}`,
      )
    }
  }
  for (const { r, b } of rows) out.push(`  ${r.engine}: ${b.tuning}; open ${formatNs(b.openMs * 1e6)}, close after writes ${formatNs(b.closeMs * 1e6)}, reopen ${formatNs(b.reopenMs * 1e6)}, reads with ${b.read.call}`)
  out.push(
    '  RSS: process.memoryUsage().rss sampled every 100 ms in the engine\'s own process, with RssAnon and RssFile from /proc/self/status and the V8 heap; ' +
      'VmHWM: the kernel\'s peak RSS of that process. RSS counts pages of mapped files too (file-backed: Node\'s own binary, ~40 MiB, LevelDB\'s mmapped tables, lmdb\'s memory map). write amp (engine): stratadb\'s db.stats().writeAmplification at the end of the writes ((WAL + flush + compaction bytes) ÷ user bytes; ' +
      'compactions still running are not in it); (write syscalls): bytes the process passed to write(2) during open, writes and close (/proc/self/io wchar; ' +
      'the close waits for running compactions) ÷ key and value bytes.',
  )
  for (const { r, b } of rows) {
    if (!isStrata(r.engine)) continue
    const checks = bigdataChecks(b)
    out.push(`  targets (${r.engine}): ${checks.map((c) => `${c.what}: ${c.ok ? 'ok' : 'MISSED'}`).join('; ')}`)
  }
  return out
}

/** The compaction issue's targets for bigdata. */
export function bigdataChecks(b: BigdataResult): Array<{ what: string; ok: boolean }> {
  const peak = Math.max(b.memory.peakRssSampledBytes, b.memory.vmHwmBytes ?? 0)
  const w = b.write.windowStats
  const p999 = b.write.latencyNs?.p999
  return [
    { what: `peak RSS ${formatSize(peak)} < 400 MiB`, ok: peak < 400 * 2 ** 20 },
    { what: `slowest window ${w ? (w.minOverMedian * 100).toFixed(0) : '?'}% of the median >= 25%`, ok: w !== undefined && w.minOverMedian >= 0.25 },
    { what: `p99.9 put ${p999 !== undefined ? formatNs(p999) : '?'} < 50 ms`, ok: p999 !== undefined && p999 < 50e6 },
  ]
}

/** A table of strings, first column left-aligned, the others right-aligned. */
function table(titles: string[], rows: string[][]): string[] {
  const widths = titles.map((t, i) => Math.max(t.length, ...rows.map((r) => r[i].length)))
  const line = (values: string[]): string =>
    '  ' + values.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ').trimEnd()
  return [line(titles), ...rows.map(line)]
}

/** "found 126,424 of 200,000 (63.2%)", and a warning when engines disagree. */
function formatFound(rows: Summary[], num: number, workload: WorkloadName): string | undefined {
  const withFound = rows.filter((s) => s.found !== undefined)
  if (withFound.length === 0) return undefined
  const all = withFound.flatMap((s) => s.found!)
  if (all.every((f) => f === all[0])) return `found ${int(all[0])} of ${int(num)} (${((all[0] / num) * 100).toFixed(1)}%) on every engine`
  // The writer adds keys while the readers read, at each engine's own pace.
  if (workload === 'readwhilewriting') return `found: ${withFound.map((s) => `${s.engine} ${s.found!.map(int).join('/')}`).join(', ')} of ${int(num)} (depends on the writer's progress)`
  return `WARNING: engines found different key counts: ${withFound.map((s) => `${s.engine} ${s.found!.map(int).join('/')}`).join(', ')}`
}

/** Flush and stall counters of stratadb's last successful run of `workload`. */
function formatStratadbStats(outcome: BenchOutcome, workload: string): string | undefined {
  const last = outcome.results.filter((r) => r.ok && r.engine === 'stratadb' && r.workload === workload && r.engineStats !== undefined).at(-1)
  if (last === undefined) return undefined
  const stats = last.engineStats as {
    levels?: Array<{ tables: number }>
    writes?: { flushes: number; stalls: number; stallMs: number; slowdowns: number; slowdownMs: number; waits?: WaitsByCause }
    compaction?: { compactions: number }
  }
  if (stats.writes === undefined || stats.levels === undefined) return undefined
  const tables = stats.levels.map((l) => l.tables).join('/')
  return (
    `stratadb counters at the end: ${stats.writes.flushes} flushes, ${stats.compaction?.compactions ?? 0} compactions, ` +
    `${stats.writes.stalls} write stalls (${Math.round(stats.writes.stallMs)} ms), ${stats.writes.slowdowns} slowdowns (${Math.round(stats.writes.slowdownMs)} ms), tables per level ${tables}` +
    (stats.writes.waits === undefined || stats.writes.stalls + stats.writes.slowdowns === 0 ? '' : `; waits by cause: ${formatWaits(stats.writes.waits)}`)
  )
}

/** Writes every raw figure, the summaries and the settings as JSON. */
export function writeJsonReport(outPath: string, outcome: BenchOutcome): void {
  const report = {
    schema: 'stratadb-bench/2',
    units: { latencyNs: 'nanoseconds', mbPerSec: '10^6 bytes per second', ms: 'milliseconds' },
    config: outcome.config,
    environment: outcome.environment,
    engines: outcome.engines,
    summaries: summarizeOutcome(outcome),
    results: outcome.results.map(({ histogram: _histogram, ...rest }) => rest),
  }
  fs.writeFileSync(outPath, JSON.stringify(report, null, 2) + '\n')
}
