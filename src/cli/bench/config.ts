/**
 * What one `strata bench` invocation runs: the parsed command line, validated.
 * Every size carries its unit in its name.
 */

/** Engines the bench knows how to drive, stratadb first (the others are its peers). */
export const ENGINE_NAMES = ['stratadb', 'classic-level', 'lmdb'] as const
export type EngineName = (typeof ENGINE_NAMES)[number]

/**
 * Workloads in the order of the default run. The order matters: fills leave a
 * database behind and the later workloads use it (see bench/README.md).
 */
export const WORKLOAD_NAMES = [
  'fillseq',
  'fillbatch',
  'fillrandom',
  'overwrite',
  'readrandom',
  'readrandom-async',
  'readseq',
  'reopen',
] as const
export type WorkloadName = (typeof WORKLOAD_NAMES)[number]

/** The settings of one bench invocation. */
export interface BenchConfig {
  /** Workloads to run, in this order. */
  workloads: WorkloadName[]
  /** Engines to compare, in this order (each run interleaves them). */
  engines: EngineName[]
  /** Operations per workload; random keys are drawn uniformly from [0, num). */
  num: number
  keyBytes: number
  valueBytes: number
  /** Asynchronous operations kept in flight by the concurrent workloads. */
  concurrency: number
  /** Entries per batch in fillbatch. */
  batchEntries: number
  /** Seed of every key and value stream; the same seed gives every engine the same streams. */
  seed: number
  /** Repetitions of the whole workload list. */
  runs: number
  /** Parent directory of the databases; undefined means a fresh temporary directory, removed afterwards. */
  dir: string | undefined
  /** Path of the JSON report; undefined means none. */
  outPath: string | undefined
}

/**
 * Defaults of the command line. `num` is sized so that the default run (every
 * workload, three engines, one run) takes about a minute on a 2-core machine.
 */
export const DEFAULT_CONFIG: BenchConfig = {
  workloads: [...WORKLOAD_NAMES],
  engines: [...ENGINE_NAMES],
  num: 200_000,
  keyBytes: 16,
  valueBytes: 100,
  concurrency: 64,
  batchEntries: 1000,
  seed: 1,
  runs: 1,
  dir: undefined,
  outPath: undefined,
}

/** Largest key the bench generates (lmdb's own limit is 1978 bytes). */
export const MAX_KEY_BYTES = 1024

/** Throws an Error naming the first inconsistent setting. */
export function validateConfig(config: BenchConfig): void {
  const digits = String(Math.max(0, config.num - 1)).length
  if (config.keyBytes < digits) {
    throw new Error(`--key-bytes ${config.keyBytes} is too small for --num ${config.num}: keys are ${digits}-digit decimal numbers`)
  }
  if (config.keyBytes > MAX_KEY_BYTES) throw new Error(`--key-bytes must be at most ${MAX_KEY_BYTES}`)
  if (config.num > 2 ** 32) throw new Error('--num must be at most 2^32')
  if (config.engines.length === 0) throw new Error('--engines names no engine')
  if (config.workloads.length === 0) throw new Error('no workload to run')
}
