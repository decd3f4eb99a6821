#!/usr/bin/env node
/**
 * The `strata` command line. For now one subcommand: `strata bench`, a
 * db_bench-style comparison of stratadb with classic-level and lmdb.
 */
import { Command, InvalidArgumentError, Option } from 'commander'
import { DEFAULT_CONFIG, ENGINE_NAMES, WORKLOAD_NAMES, validateConfig, type BenchConfig, type EngineName, type WorkloadName } from './bench/config.js'
import { ownVersion } from './bench/engines.js'
import { formatHeader, formatTables, writeJsonReport } from './bench/report.js'
import { runBench } from './bench/runner.js'

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

function engineList(value: string): EngineName[] {
  const names = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  for (const name of names) {
    if (!(ENGINE_NAMES as readonly string[]).includes(name)) {
      throw new InvalidArgumentError(`unknown engine ${name}; known: ${ENGINE_NAMES.join(', ')}`)
    }
  }
  return [...new Set(names)] as EngineName[]
}

function workloadList(names: string[]): WorkloadName[] {
  if (names.length === 0) return [...DEFAULT_CONFIG.workloads]
  for (const name of names) {
    if (!(WORKLOAD_NAMES as readonly string[]).includes(name)) {
      throw new InvalidArgumentError(`unknown workload ${name}; known: ${WORKLOAD_NAMES.join(', ')}`)
    }
  }
  return names as WorkloadName[]
}

/** Options of `strata bench` as commander hands them over. */
interface BenchCliOptions {
  num: number
  keyBytes: number
  valueBytes: number
  concurrency: number
  batch: number
  seed: number
  engines: EngineName[]
  runs: number
  dir?: string
  out?: string
}

async function bench(workloadNames: string[], options: BenchCliOptions): Promise<void> {
  const config: BenchConfig = {
    workloads: workloadList(workloadNames),
    engines: options.engines,
    num: options.num,
    keyBytes: options.keyBytes,
    valueBytes: options.valueBytes,
    concurrency: options.concurrency,
    batchEntries: options.batch,
    seed: options.seed,
    runs: options.runs,
    dir: options.dir,
    outPath: options.out,
  }
  validateConfig(config)
  const outcome = await runBench(
    config,
    (line) => process.stderr.write(`  ${line}\n`),
    (engines, environment) => process.stdout.write(formatHeader(config, engines, environment) + '\n\n'),
  )
  process.stdout.write(formatTables(outcome) + '\n')
  if (config.outPath !== undefined) {
    writeJsonReport(config.outPath, outcome)
    process.stdout.write(`JSON report written to ${config.outPath}\n`)
  }
  if (!outcome.engines.some((e) => e.available)) process.exitCode = 1
}

function main(): Promise<unknown> {
  const d = DEFAULT_CONFIG
  const program = new Command('strata').description('stratadb command line').version(ownVersion())
  program
    .command('bench')
    .description('db_bench-style benchmark of stratadb side by side with classic-level and lmdb')
    .argument('[workloads...]', `workloads, in order (default: all: ${WORKLOAD_NAMES.join(' ')})`)
    .option('--num <n>', 'operations per workload; random keys come from [0, num)', positiveInteger, d.num)
    .option('--key-bytes <n>', 'key size in bytes', positiveInteger, d.keyBytes)
    .option('--value-bytes <n>', 'value size in bytes', nonNegativeInteger, d.valueBytes)
    .option('--concurrency <n>', 'asynchronous operations in flight', positiveInteger, d.concurrency)
    .option('--batch <n>', 'entries per batch (fillbatch)', positiveInteger, d.batchEntries)
    .option('--seed <n>', 'seed of the key and value streams', nonNegativeInteger, d.seed)
    .addOption(new Option('--engines <list>', 'comma-separated engines').argParser(engineList).default(d.engines, d.engines.join(',')))
    .option('--runs <n>', 'repetitions of the workload list (engines interleaved)', positiveInteger, d.runs)
    .option('--dir <path>', 'new or empty directory for the databases, kept afterwards (default: a temporary directory, removed)')
    .option('--out <file>', 'write every raw figure as JSON to this file')
    .action(bench)
  return program.parseAsync(process.argv)
}

// A peer's stray rejection must not end the whole bench.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`warning: unhandled rejection: ${reason instanceof Error ? reason.message : String(reason)}\n`)
})

main().catch((err: unknown) => {
  process.stderr.write(`strata: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
