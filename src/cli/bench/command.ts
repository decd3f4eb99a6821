/**
 * `strata bench` on the command line: its options, parsed into a BenchConfig,
 * and the run (progress on stderr, tables on stdout, JSON and SVG files).
 */
import { Command, InvalidArgumentError, Option } from 'commander'
import {
  API_NAMES,
  DEFAULT_CONFIG,
  DEFAULT_WORKLOADS,
  ENGINE_NAMES,
  NAMED_ONLY_WORKLOADS,
  WORKLOAD_ALIASES,
  WORKLOAD_NAMES,
  applyApi,
  defaultBigdataWindow,
  defaultIncrementsPerTask,
  validateConfig,
  type ApiName,
  type BenchConfig,
  type EngineName,
  type WorkloadName,
} from './config.js'
import { writeChart } from './chart.js'
import { setActiveProgress, stderrProgress } from './progress.js'
import { formatHeader, formatTables, writeJsonReport } from './report.js'
import { runBench } from './runner.js'

/** Parses a JSON object (--stratadb-options). */
function jsonObject(value: string): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    throw new InvalidArgumentError('must be a JSON object, e.g. \'{"compression":"none"}\'')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError('must be a JSON object')
  return parsed as Record<string, unknown>
}

/** Parses a positive integer; accepts `1e6` and `1_000_000`. */
function positiveInteger(value: string): number {
  const n = Number(value.replaceAll('_', ''))
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer')
  return n
}

function nonNegativeInteger(value: string): number {
  const n = Number(value.replaceAll('_', ''))
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer')
  return n
}

/** Parses db_bench's --compression_ratio: a number in (0, 1]. */
function compressionRatio(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1) throw new InvalidArgumentError('expected a number in (0, 1] (1: incompressible values)')
  return n
}

function engineList(value: string): EngineName[] {
  const names = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  for (const name of names) {
    if (!(ENGINE_NAMES as readonly string[]).includes(name)) {
      throw new InvalidArgumentError(`unknown engine ${name}; known: ${ENGINE_NAMES.join(', ')}`)
    }
  }
  return [...new Set(names)] as EngineName[]
}

/** Workload names (or db_bench aliases such as readrandomsync) → workloads; none → the default list (all but NAMED_ONLY_WORKLOADS). */
export function workloadList(names: string[]): WorkloadName[] {
  if (names.length === 0) return [...DEFAULT_WORKLOADS]
  return names.map((name) => {
    if ((WORKLOAD_NAMES as readonly string[]).includes(name)) return name as WorkloadName
    const alias = WORKLOAD_ALIASES[name]
    if (alias !== undefined) return alias
    throw new InvalidArgumentError(`unknown workload ${name}; known: ${WORKLOAD_NAMES.join(', ')} (and ${Object.keys(WORKLOAD_ALIASES).join(', ')})`)
  })
}

function apiName(value: string): ApiName {
  if (!(API_NAMES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${API_NAMES.join(', ')}`)
  return value as ApiName
}

/** Options of `strata bench` as commander hands them over. */
export interface BenchCliOptions {
  num: number
  keyBytes: number
  valueBytes: number
  compressionRatio: number
  concurrency: number
  batch: number
  seed: number
  engines: EngineName[]
  api: ApiName
  runs: number
  dir?: string
  out?: string
  chart?: string
  progress: boolean
  bigdataNum: number
  bigdataReads?: number
  bigdataWindow?: number
  bigdataMemtableMib: number
  bigdataCacheMib: number
  cacheMib?: number
  tasks: number
  increments?: number
  largeValueBytes: number
  minBlobBytes?: number
  stratadbOptions?: Record<string, unknown>
}

/** The bench configuration of parsed command-line arguments (exported for the tests). */
export function benchConfig(workloadNames: string[], options: BenchCliOptions): BenchConfig {
  const config: BenchConfig = {
    workloads: workloadList(workloadNames),
    engines: applyApi(options.engines, options.api),
    num: options.num,
    keyBytes: options.keyBytes,
    valueBytes: options.valueBytes,
    compressionRatio: options.compressionRatio,
    concurrency: options.concurrency,
    batchEntries: options.batch,
    seed: options.seed,
    runs: options.runs,
    dir: options.dir,
    outPath: options.out,
    chartPath: options.chart,
    progress: options.progress,
    bigdataNum: options.bigdataNum,
    bigdataReads: options.bigdataReads ?? Math.min(DEFAULT_CONFIG.bigdataReads, options.bigdataNum),
    bigdataWindow: options.bigdataWindow ?? defaultBigdataWindow(options.bigdataNum),
    bigdataMemtableBytes: options.bigdataMemtableMib * 2 ** 20,
    bigdataCacheBytes: options.bigdataCacheMib * 2 ** 20,
    cacheBytes: options.cacheMib === undefined ? undefined : options.cacheMib * 2 ** 20,
    incrementTasks: options.tasks,
    incrementsPerTask: options.increments ?? defaultIncrementsPerTask(options.num, options.tasks),
    largeValueBytes: options.largeValueBytes,
    minBlobBytes: options.minBlobBytes,
    stratadbOptions: options.stratadbOptions,
  }
  validateConfig(config)
  return config
}

export async function bench(workloadNames: string[], options: BenchCliOptions): Promise<void> {
  const config = benchConfig(workloadNames, options)
  const bar = stderrProgress(config.progress)
  setActiveProgress(bar)
  const outcome = await runBench(
    config,
    (line) => bar.log(`  ${line}`),
    (engines, environment) => process.stdout.write(formatHeader(config, engines, environment) + '\n\n'),
  )
  bar.end()
  process.stdout.write(formatTables(outcome) + '\n')
  if (config.outPath !== undefined) {
    writeJsonReport(config.outPath, outcome)
    process.stdout.write(`JSON report written to ${config.outPath}\n`)
  }
  if (config.chartPath !== undefined) {
    const rows = writeChart(config.chartPath, outcome)
    process.stdout.write(`SVG chart (${rows} rows) written to ${config.chartPath}\n`)
  }
  if (!outcome.engines.some((e) => e.available)) process.exitCode = 1
}

/** Adds the `bench` subcommand to `program`; `action` (the bench itself unless given) gets the parsed arguments. */
export function addBenchCommand(
  program: Command,
  action: (workloads: string[], options: BenchCliOptions) => Promise<void> | void = bench,
): Command {
  const d = DEFAULT_CONFIG
  return program
    .command('bench')
    .description('db_bench-style benchmark of stratadb side by side with classic-level and lmdb')
    .argument('[workloads...]', `workloads, in order (default: all but ${NAMED_ONLY_WORKLOADS.join(', ')}: ${DEFAULT_WORKLOADS.join(' ')})`)
    .option('--num <n>', 'operations per workload; random keys come from [0, num)', positiveInteger, d.num)
    .option('--key-bytes <n>', 'key size in bytes', positiveInteger, d.keyBytes)
    .option('--value-bytes <n>', 'value size in bytes', nonNegativeInteger, d.valueBytes)
    .option(
      '--compression-ratio <r>',
      'how far values compress, in (0, 1], as db_bench\'s --compression_ratio: below 1, 100-byte pieces of 100 × r (rounded down) random printable characters repeated to fill 100 (0.5: half-compressible); 1: incompressible random bytes (the values before this option)',
      compressionRatio,
      d.compressionRatio,
    )
    .option(
      '--large-value-bytes <n>',
      'value size of largevalues (at most 16 MiB); the number of puts scales so that the bytes written stay those of num / 200 values of 256 KiB (largevalues16k and largevalues1m: 16 KiB and 1 MiB whatever this says)',
      positiveInteger,
      d.largeValueBytes,
    )
    .option('--concurrency <n>', 'asynchronous operations in flight', positiveInteger, d.concurrency)
    .option('--batch <n>', 'entries per batch (fillbatch)', positiveInteger, d.batchEntries)
    .option('--seed <n>', 'seed of the key and value streams', nonNegativeInteger, d.seed)
    .addOption(
      new Option('--engines <list>', `comma-separated engines (${ENGINE_NAMES.join(', ')})`).argParser(engineList).default(d.engines, d.engines.join(',')),
    )
    .addOption(
      new Option('--api <api>', 'stratadb through open() (native), through StrataLevel next to ClassicLevel (level: lmdb dropped), or both')
        .argParser(apiName)
        .default('native'),
    )
    .option('--runs <n>', 'repetitions of the workload list (engines interleaved)', positiveInteger, d.runs)
    .option('--dir <path>', 'new or empty directory for the databases, kept afterwards (default: a temporary directory, removed)')
    .option('--out <file>', 'write every raw figure as JSON to this file')
    .option('--chart <file>', 'write an SVG chart of throughput and p99 latency per second, one line per engine')
    .option('--no-progress', 'no progress bar (it is drawn on stderr only when stderr is a terminal)')
    .option('--cache-mib <n>', 'block cache of every workload but bigdata: stratadb blockCacheBytes, classic-level cacheSize (default: each engine\'s own; lmdb has none, it reads through the OS page cache)', nonNegativeInteger)
    .option('--min-blob-bytes <n>', 'stratadb (and stratadb-level) open option minBlobBytes, every workload and bigdata: values of at least this many bytes go to blob files (default: not passed, the engine\'s own; the peers have no such option)', positiveInteger)
    .option('--stratadb-options <json>', 'further stratadb (and stratadb-level) open options as a JSON object, every workload and bigdata, applied after the bench\'s own, e.g. \'{"pointReadIndexes":"always"}\' (default: none; the peers get none of them)', jsonObject)
    .option('--bigdata-num <n>', 'keys written by bigdata', positiveInteger, d.bigdataNum)
    .option('--bigdata-reads <n>', 'random reads of bigdata (default: 1,000,000 or --bigdata-num when smaller)', positiveInteger)
    .option('--bigdata-window <n>', 'keys per throughput window of bigdata (default: 1,000,000, or --bigdata-num / 20 when smaller)', positiveInteger)
    .option('--bigdata-memtable-mib <n>', 'bigdata write buffer: stratadb memtableBytes, classic-level writeBufferSize', positiveInteger, d.bigdataMemtableBytes / 2 ** 20)
    .option('--bigdata-cache-mib <n>', 'bigdata cache: stratadb blockCacheBytes, classic-level cacheSize', nonNegativeInteger, d.bigdataCacheBytes / 2 ** 20)
    .option('--tasks <n>', 'concurrent tasks of the increment workloads', positiveInteger, d.incrementTasks)
    .option('--increments <n>', 'increments per task (default: --num / --tasks, rounded up; 1000 is the full 512 × 1,000)', positiveInteger)
    .action(action)
}
