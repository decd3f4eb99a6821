/**
 * What one `strata bench` invocation runs: the parsed command line, validated.
 * Every size carries its unit in its name.
 */

/**
 * Engines the bench knows how to drive, stratadb first (the others are its
 * peers). `stratadb-level` is stratadb through its abstract-level adapter
 * (StrataLevel), driven with the same calls as classic-level.
 */
export const ENGINE_NAMES = ['stratadb', 'stratadb-level', 'classic-level', 'lmdb'] as const
export type EngineName = (typeof ENGINE_NAMES)[number]

/** Engines compared when `--engines` is not given. */
export const DEFAULT_ENGINES: readonly EngineName[] = ['stratadb', 'classic-level', 'lmdb']

/** Which API stratadb is driven through: its own (`open()`), abstract-level (`StrataLevel`), or both side by side. */
export const API_NAMES = ['native', 'level', 'both'] as const
export type ApiName = (typeof API_NAMES)[number]

/**
 * Workloads in the order of the default run. The order matters: fills leave a
 * database behind and the later workloads use it (see bench/README.md).
 */
export const WORKLOAD_NAMES = [
  'fillseq',
  'fillbatch',
  'fillrandom',
  'fillsync',
  'overwrite',
  'readrandom',
  'readrandom-async',
  'readmissing',
  'readseq',
  'readreverse',
  'seekrandom',
  'seekrandom-async',
  'readwhilewriting',
  'deleterandom',
  'largevalues',
  'largevalues16k',
  'largevalues1m',
  'increment',
  'increment-keys',
  'reopen',
  'bigdata',
] as const
export type WorkloadName = (typeof WORKLOAD_NAMES)[number]

/**
 * Workloads run only when named: bigdata (it writes ~2.3 GB per engine) and
 * the fixed-size variants of largevalues (the default run has largevalues at
 * --large-value-bytes).
 */
export const NAMED_ONLY_WORKLOADS: readonly WorkloadName[] = ['largevalues16k', 'largevalues1m', 'bigdata']

/** Workloads run when none is named: all but NAMED_ONLY_WORKLOADS. */
export const DEFAULT_WORKLOADS: readonly WorkloadName[] = WORKLOAD_NAMES.filter((w) => !NAMED_ONLY_WORKLOADS.includes(w))

/** Other names accepted on the command line, after db_bench's. */
export const WORKLOAD_ALIASES: Readonly<Record<string, WorkloadName>> = { readrandomsync: 'readrandom' }

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
  /**
   * How far values compress, as db_bench's --compression_ratio: in (0, 1];
   * below 1, values are cut from 100-byte pieces of ⌊100 × ratio⌋ random
   * printable characters repeated to fill 100 (0.5: half-compressible, the
   * default); 1, incompressible random bytes (the bench's values before this
   * option). Every workload's values, bigdata's and largevalues' too.
   */
  compressionRatio: number
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
  /** Path of the SVG chart of throughput and p99 per second; undefined means none. */
  chartPath: string | undefined
  /** Draw a progress bar on stderr (only when stderr is a terminal). */
  progress: boolean
  /** Keys written by bigdata (each once, in a random order); independent of num. */
  bigdataNum: number
  /** Random point reads of bigdata's read phase. */
  bigdataReads: number
  /** Keys per throughput window of bigdata. */
  bigdataWindow: number
  /** Block cache of every workload but bigdata (stratadb blockCacheBytes, classic-level cacheSize); undefined: each engine's default. */
  cacheBytes: number | undefined
  /** Memtable (write buffer) budget of bigdata, per engine that has one. */
  bigdataMemtableBytes: number
  /** Block cache budget of bigdata, per engine that has one. */
  bigdataCacheBytes: number
  /** Concurrent tasks of the increment workloads. */
  incrementTasks: number
  /** Read-modify-write increments per task. */
  incrementsPerTask: number
  /** Value size of the largevalues workload (largevalues16k and largevalues1m have their own). */
  largeValueBytes: number
  /**
   * stratadb's open option minBlobBytes (values of at least this many bytes go
   * to blob files), for every workload and bigdata; undefined: not passed, the
   * engine's default. The peers have no such option.
   */
  minBlobBytes: number | undefined
  /**
   * Further stratadb open options (--stratadb-options, a JSON object), for
   * every workload and bigdata, applied after the bench's own; undefined:
   * none. For A/B runs of one build with an option set two ways.
   */
  stratadbOptions: Record<string, unknown> | undefined
}

/** stratadb's open options from --min-blob-bytes and --stratadb-options (the latter wins); undefined when neither was given. */
export function stratadbOpenOptions(config: BenchConfig): Record<string, unknown> | undefined {
  if (config.minBlobBytes === undefined && config.stratadbOptions === undefined) return undefined
  return { ...(config.minBlobBytes !== undefined ? { minBlobBytes: config.minBlobBytes } : {}), ...config.stratadbOptions }
}

/** Bytes of one largevalues value unless --large-value-bytes says otherwise. */
export const LARGE_VALUE_BYTES = 256 * 1024
/** Largest --large-value-bytes: stratadb's default maxValueBytes (the bench also keeps 16 values' worth of random bytes). */
export const MAX_LARGE_VALUE_BYTES = 16 * 2 ** 20
/** The largevalues workloads with a value size of their own, whatever --large-value-bytes says. */
export const FIXED_LARGE_VALUE_BYTES = { largevalues16k: 16 * 1024, largevalues1m: 2 ** 20 } as const
/** The largevalues workloads: largevalues (at --large-value-bytes) and its fixed-size variants. */
export type LargeValuesWorkloadName = 'largevalues' | keyof typeof FIXED_LARGE_VALUE_BYTES

/** The value size of one of the largevalues workloads under `config`. */
export function largeValueBytesOf(workload: LargeValuesWorkloadName, config: Pick<BenchConfig, 'largeValueBytes'>): number {
  return workload === 'largevalues' ? config.largeValueBytes : FIXED_LARGE_VALUE_BYTES[workload]
}

/** Entries read by each seek of seekrandom. */
export const SEEK_ENTRIES = 100
/** Keys of the increment-keys variant. */
export const INCREMENT_KEYS = 1000

/** Operations of the workloads that do fewer than num (each one costs much more than a plain put or get). */
export const scaledOps = {
  /** fillsync: one fsync per write (db_bench uses num / 1000). */
  fillsync: (num: number): number => Math.max(1, Math.floor(num / 100)),
  /** seekrandom and seekrandom-async: each seek reads SEEK_ENTRIES entries. */
  seekrandom: (num: number): number => Math.max(1, Math.floor(num / 20)),
  /**
   * largevalues: the bytes of num / 200 values of 256 KiB (1,000 puts, 250 MiB
   * at the default num) whatever the value size: num / 200 puts of 256 KiB,
   * num × 0.08 of 16 KiB, num / 800 of 1 MiB.
   */
  largevalues: (num: number, valueBytes: number = LARGE_VALUE_BYTES): number =>
    Math.max(1, Math.floor((num * LARGE_VALUE_BYTES) / (200 * valueBytes))),
}

/** bigdata's default window: 1,000,000 keys, smaller for small runs so there are at least 20 windows. */
export function defaultBigdataWindow(bigdataNum: number): number {
  return Math.max(1, Math.min(1_000_000, Math.ceil(bigdataNum / 20)))
}

/** Increments per task when not given: num increments in all, so the default run stays short (`--num 512000` is the full 512 × 1,000). */
export function defaultIncrementsPerTask(num: number, tasks: number): number {
  return Math.max(1, Math.ceil(num / tasks))
}

const MIB = 2 ** 20

/** db_bench's default --compression_ratio: values compress to about half. */
export const DEFAULT_COMPRESSION_RATIO = 0.5

/**
 * Defaults of the command line. `num` is sized so that the default run (every
 * workload but bigdata, three engines, one run) takes a few minutes on a 2-core machine.
 */
export const DEFAULT_CONFIG: BenchConfig = {
  workloads: [...DEFAULT_WORKLOADS],
  engines: [...DEFAULT_ENGINES],
  num: 200_000,
  keyBytes: 16,
  valueBytes: 100,
  compressionRatio: DEFAULT_COMPRESSION_RATIO,
  concurrency: 64,
  batchEntries: 1000,
  seed: 1,
  runs: 1,
  dir: undefined,
  outPath: undefined,
  chartPath: undefined,
  progress: true,
  bigdataNum: 20_000_000,
  bigdataReads: 1_000_000,
  bigdataWindow: 1_000_000,
  cacheBytes: undefined,
  bigdataMemtableBytes: 64 * MIB,
  bigdataCacheBytes: 64 * MIB,
  incrementTasks: 512,
  incrementsPerTask: defaultIncrementsPerTask(200_000, 512),
  largeValueBytes: LARGE_VALUE_BYTES,
  minBlobBytes: undefined,
  stratadbOptions: undefined,
}

/**
 * The engines `--api` selects from `engines`: `native` leaves them as they
 * are, `level` drives stratadb through StrataLevel instead and drops lmdb
 * (it has no abstract-level API), `both` adds stratadb-level next to stratadb.
 */
export function applyApi(engines: readonly EngineName[], api: ApiName): EngineName[] {
  let out: EngineName[]
  switch (api) {
    case 'native':
      out = [...engines]
      break
    case 'level':
      out = engines.flatMap((e): EngineName[] => (e === 'stratadb' ? ['stratadb-level'] : e === 'lmdb' ? [] : [e]))
      break
    case 'both':
      out = engines.flatMap((e): EngineName[] => (e === 'stratadb' ? ['stratadb', 'stratadb-level'] : [e]))
      break
  }
  return [...new Set(out)]
}

/** Largest key the bench generates (lmdb's own limit is 1978 bytes). */
export const MAX_KEY_BYTES = 1024

/** Throws an Error naming the first inconsistent setting. */
export function validateConfig(config: BenchConfig): void {
  const largest = Math.max(config.num, config.workloads.includes('bigdata') ? config.bigdataNum : 0)
  const digits = String(Math.max(0, largest - 1)).length
  if (config.keyBytes < digits) {
    throw new Error(`--key-bytes ${config.keyBytes} is too small for ${largest} keys: keys are ${digits}-digit decimal numbers`)
  }
  if (config.keyBytes > MAX_KEY_BYTES) throw new Error(`--key-bytes must be at most ${MAX_KEY_BYTES}`)
  if (config.num > 2 ** 32) throw new Error('--num must be at most 2^32')
  if (config.bigdataNum > 2 ** 32) throw new Error('--bigdata-num must be at most 2^32')
  if (!Number.isSafeInteger(config.largeValueBytes) || config.largeValueBytes < 1 || config.largeValueBytes > MAX_LARGE_VALUE_BYTES) {
    throw new Error(`--large-value-bytes must be an integer in [1, ${MAX_LARGE_VALUE_BYTES}] (16 MiB, stratadb's default maxValueBytes)`)
  }
  if (!(typeof config.compressionRatio === 'number' && config.compressionRatio > 0 && config.compressionRatio <= 1)) {
    throw new Error(`--compression-ratio must be a number in (0, 1] (1: incompressible values), not ${config.compressionRatio}`)
  }
  if (config.engines.length === 0) throw new Error('--engines names no engine (lmdb has no abstract-level API, so --api level drops it)')
  if (config.workloads.length === 0) throw new Error('no workload to run')
}
