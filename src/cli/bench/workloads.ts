import { performance } from 'node:perf_hooks'
import type { BenchConfig, WorkloadName } from './config.js'
import { runConcurrent, runSync } from './drivers.js'
import type { BenchDb, EngineAdapter } from './engines.js'
import { KeyFormat, ValuePool, randomIndices, streamSeed } from './key-stream.js'
import { LatencyRecorder } from './latency.js'
import { measureReopenAfterKill } from './reopen.js'

/**
 * The workloads, after db_bench. Each one times only its operations: opening
 * and closing the database happen outside (the runner times them apart).
 */

/** The key and value streams shared by every workload of an invocation. */
export interface WorkloadContext {
  readonly config: BenchConfig
  readonly keys: KeyFormat
  readonly values: ValuePool
}

/** Builds the context of `config`. */
export function createContext(config: BenchConfig): WorkloadContext {
  return { config, keys: new KeyFormat(config.keyBytes), values: new ValuePool(config.valueBytes, config.seed) }
}

/** What one workload measured on one engine. */
export interface Measurement {
  /** Operations timed (entries for scans and batches). */
  ops: number
  /** Key and value bytes written, or read and found. */
  bytes: number
  elapsedMs: number
  /** Per-operation latencies; undefined where not measured (readseq). */
  latency: LatencyRecorder | undefined
  /** Point reads that found their key. */
  found?: number
  /** Workload-specific figures for the JSON report. */
  details?: Record<string, unknown>
}

/** A workload that runs on an open database the runner provides. */
export interface DatabaseWorkload {
  readonly name: WorkloadName
  /**
   * 'fresh': a new empty database; 'existing': the database the previous
   * workloads left (the runner loads num keys in order first when there is none).
   */
  readonly database: 'fresh' | 'existing'
  /** One line saying what is timed. */
  describe(config: BenchConfig): string
  run(db: BenchDb, ctx: WorkloadContext): Promise<Measurement>
}

/** A workload that creates and opens its own databases under `scratchDir`. */
export interface OwnWorkload {
  readonly name: WorkloadName
  readonly database: 'own'
  describe(config: BenchConfig): string
  run(adapter: EngineAdapter, scratchDir: string, ctx: WorkloadContext): Promise<Measurement>
}

export type Workload = DatabaseWorkload | OwnWorkload

const count = (n: number): string => n.toLocaleString('en-US')

/** Puts keys `keyIndex(op)` for op in [0, num), `concurrency` in flight. */
async function putAll(db: BenchDb, ctx: WorkloadContext, keyIndex: (op: number) => number): Promise<Measurement> {
  const { num, concurrency, keyBytes, valueBytes } = ctx.config
  const { keys, values } = ctx
  const latency = new LatencyRecorder()
  const elapsedMs = await runConcurrent(num, concurrency, (op) => db.put(keys.encode(keyIndex(op)), values.valueFor(op)), latency)
  return { ops: num, bytes: num * (keyBytes + valueBytes), elapsedMs, latency }
}

/**
 * The fillrandom write stream (num puts of uniformly random keys from [0, num),
 * with repetition), shared with the reopen workload's child process.
 */
export function putRandom(db: BenchDb, ctx: WorkloadContext, streamLabel: string): Promise<Measurement> {
  const indices = randomIndices(ctx.config.num, ctx.config.num, streamSeed(ctx.config.seed, streamLabel))
  return putAll(db, ctx, (op) => indices[op])
}

/** Writes keys 0..num-1 in order as batches, one batch in flight. */
async function putBatches(db: BenchDb, ctx: WorkloadContext, latency: LatencyRecorder): Promise<number> {
  const { num, batchEntries } = ctx.config
  const batches = Math.ceil(num / batchEntries)
  return runConcurrent(
    batches,
    1,
    (b) => {
      const first = b * batchEntries
      const n = Math.min(batchEntries, num - first)
      const keys: Buffer[] = new Array(n)
      const values: Buffer[] = new Array(n)
      for (let i = 0; i < n; i++) {
        keys[i] = ctx.keys.encode(first + i)
        values[i] = ctx.values.valueFor(first + i)
      }
      return db.batch(keys, values)
    },
    latency,
  )
}

/** Untimed: loads keys 0..num-1 into an empty database, for read workloads run without a fill first. */
export async function populate(db: BenchDb, ctx: WorkloadContext): Promise<void> {
  await putBatches(db, ctx, new LatencyRecorder())
}

/** Reads num uniformly random keys from [0, num). */
async function readRandom(db: BenchDb, ctx: WorkloadContext, mode: 'sync' | 'async'): Promise<Measurement> {
  const { num, concurrency, seed } = ctx.config
  const indices = randomIndices(num, num, streamSeed(seed, 'readrandom'))
  const keys = ctx.keys
  const latency = new LatencyRecorder()
  let found = 0
  let bytes = 0
  const tally = (key: Buffer, value: Uint8Array | undefined): void => {
    if (value === undefined) return
    found++
    bytes += key.length + value.length
  }
  let elapsedMs: number
  const getSync = db.getSync
  if (mode === 'sync' && getSync !== undefined) {
    elapsedMs = runSync(
      num,
      (op) => {
        const key = keys.encode(indices[op])
        tally(key, getSync(key))
      },
      latency,
    )
  } else {
    elapsedMs = await runConcurrent(
      num,
      mode === 'sync' ? 1 : concurrency,
      (op) => {
        const key = keys.encode(indices[op])
        return db.get(key).then((value) => tally(key, value))
      },
      latency,
    )
  }
  return { ops: num, bytes, elapsedMs, latency, found }
}

/** Every workload, by name. */
export const WORKLOADS: Record<WorkloadName, Workload> = {
  fillseq: {
    name: 'fillseq',
    database: 'fresh',
    describe: (c) => `${count(c.num)} puts in key order into a new database, ${c.concurrency} in flight`,
    run: (db, ctx) => putAll(db, ctx, (op) => op),
  },
  fillbatch: {
    name: 'fillbatch',
    database: 'fresh',
    describe: (c) =>
      `${count(c.num)} puts in key order into a new database, as batches of ${count(c.batchEntries)}, one batch in flight; latency per batch`,
    async run(db, ctx) {
      const latency = new LatencyRecorder()
      const elapsedMs = await putBatches(db, ctx, latency)
      const { num, keyBytes, valueBytes } = ctx.config
      return { ops: num, bytes: num * (keyBytes + valueBytes), elapsedMs, latency }
    },
  },
  fillrandom: {
    name: 'fillrandom',
    database: 'fresh',
    describe: (c) => `${count(c.num)} puts of uniformly random keys from [0, ${count(c.num)}) into a new database, ${c.concurrency} in flight`,
    run: (db, ctx) => putRandom(db, ctx, 'fillrandom'),
  },
  overwrite: {
    name: 'overwrite',
    database: 'existing',
    describe: (c) => `${count(c.num)} puts of uniformly random keys into the existing database, ${c.concurrency} in flight`,
    run: (db, ctx) => putRandom(db, ctx, 'overwrite'),
  },
  readrandom: {
    name: 'readrandom',
    database: 'existing',
    describe: (c) =>
      `${count(c.num)} synchronous gets (stratadb getSync, classic-level getSync, lmdb get) of uniformly random keys, right after reopening`,
    run: (db, ctx) => readRandom(db, ctx, 'sync'),
  },
  'readrandom-async': {
    name: 'readrandom-async',
    database: 'existing',
    describe: (c) =>
      `${count(c.num)} awaited gets (stratadb get, classic-level get, lmdb get in an async function) of uniformly random keys, ${c.concurrency} in flight`,
    run: (db, ctx) => readRandom(db, ctx, 'async'),
  },
  readseq: {
    name: 'readseq',
    database: 'existing',
    describe: () => 'one forward scan of the whole database (stratadb and classic-level iterators, lmdb getRange); no per-entry latency',
    async run(db) {
      let bytes = 0
      const startMs = performance.now()
      const entries = await db.scan((key, value) => {
        bytes += key.length + value.length
      })
      return { ops: entries, bytes, elapsedMs: performance.now() - startMs, latency: undefined }
    },
  },
  reopen: {
    name: 'reopen',
    database: 'own',
    describe: (c) =>
      `open() of a database right after the child process that wrote it (${count(c.num)} fillrandom puts, ${c.concurrency} in flight) was killed with SIGKILL; ops/s = opens/s`,
    run: (adapter, scratchDir, ctx) => measureReopenAfterKill(adapter, scratchDir, ctx.config),
  },
}
