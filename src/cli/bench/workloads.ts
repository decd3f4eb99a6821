import { performance } from 'node:perf_hooks'
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import { measureBigdata } from './bigdata.js'
import {
  INCREMENT_KEYS,
  SEEK_ENTRIES,
  largeValueBytesOf,
  scaledOps,
  type BenchConfig,
  type LargeValuesWorkloadName,
  type WorkloadName,
} from './config.js'
import { runConcurrent, runSync } from './drivers.js'
import type { BenchDb } from './engines.js'
import { SeededRandom, ValuePool, randomIndices, streamSeed } from './key-stream.js'
import { LatencyRecorder } from './latency.js'
import { activeProgress } from './progress.js'
import { measureReopenAfterKill } from './reopen.js'
import { increments, requireTransactions } from './increment-workload.js'
import type { DatabaseWorkload, Measurement, Workload, WorkloadContext } from './workload.js'

/**
 * The workloads, after db_bench. Each one times only its operations: opening
 * and closing the database happen outside (the runner times them apart).
 */


const count = (n: number): string => n.toLocaleString('en-US')

/** A value size as "16 KiB", "1 MiB", or "100,000 B" when not a whole number of KiB. */
export function formatValueBytes(bytes: number): string {
  if (bytes >= 2 ** 20 && bytes % 2 ** 20 === 0) return `${bytes / 2 ** 20} MiB`
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`
  return `${count(bytes)} B`
}

/** Puts `n` keys `keyIndex(op)`, `concurrency` in flight, through `put` (the engine's put unless given). */
async function putAll(
  db: BenchDb,
  ctx: WorkloadContext,
  n: number,
  keyIndex: (op: number) => number,
  put: (key: Buffer, value: Buffer) => Promise<unknown> = (key, value) => db.put(key, value),
  values: ValuePool = ctx.values,
): Promise<Measurement> {
  const { concurrency, keyBytes } = ctx.config
  const { keys } = ctx
  const latency = new LatencyRecorder()
  const elapsedMs = await runConcurrent(n, concurrency, (op) => put(keys.encode(keyIndex(op)), values.valueFor(op)), latency)
  return { ops: n, bytes: n * (keyBytes + values.valueBytes), elapsedMs, latency }
}

/**
 * The fillrandom write stream (num puts of uniformly random keys from [0, num),
 * with repetition), shared with the reopen workload's child process.
 */
export function putRandom(db: BenchDb, ctx: WorkloadContext, streamLabel: string): Promise<Measurement> {
  const indices = randomIndices(ctx.config.num, ctx.config.num, streamSeed(ctx.config.seed, streamLabel))
  return putAll(db, ctx, ctx.config.num, (op) => indices[op])
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

/**
 * `n` point reads of `keyFor(op)`: 'sync' uses the engine's synchronous get
 * back to back (an awaited get, one at a time, where it has none); 'async'
 * keeps `concurrency` awaited gets in flight.
 */
async function pointReads(db: BenchDb, ctx: WorkloadContext, n: number, keyFor: (op: number) => Buffer, mode: 'sync' | 'async'): Promise<Measurement> {
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
      n,
      (op) => {
        const key = keyFor(op)
        tally(key, getSync(key))
      },
      latency,
    )
  } else {
    elapsedMs = await runConcurrent(
      n,
      mode === 'sync' ? 1 : ctx.config.concurrency,
      (op) => {
        const key = keyFor(op)
        return db.get(key).then((value) => tally(key, value))
      },
      latency,
    )
  }
  return { ops: n, bytes, elapsedMs, latency, found }
}

/** Reads num uniformly random keys from [0, num). */
function readRandom(db: BenchDb, ctx: WorkloadContext, mode: 'sync' | 'async'): Promise<Measurement> {
  const { num, seed } = ctx.config
  const indices = randomIndices(num, num, streamSeed(seed, 'readrandom'))
  return pointReads(db, ctx, num, (op) => ctx.keys.encode(indices[op]), mode)
}

/** One scan of the whole database; no per-entry latency. */
async function scanAll(db: BenchDb, reverse: boolean): Promise<Measurement> {
  let bytes = 0
  let previous: Buffer | undefined
  let outOfOrder = 0
  const startMs = performance.now()
  const entries = await db.scan((key, value) => {
    bytes += key.length + value.length
    // Spot-check the order on a sample (a copy per entry would cost more than the scan).
    if ((bytes & 0xfff) < key.length + value.length) {
      const k = Buffer.from(key)
      if (previous !== undefined && Buffer.compare(previous, k) !== (reverse ? 1 : -1)) outOfOrder++
      previous = k
    }
  }, reverse)
  const elapsedMs = performance.now() - startMs
  if (outOfOrder > 0) throw new Error(`${outOfOrder} sampled entries out of ${reverse ? 'descending' : 'ascending'} order`)
  return { ops: entries, bytes, elapsedMs, latency: undefined }
}

/**
 * Reads while one writer writes: `concurrency` readers make num awaited gets
 * of random keys (measured) while a single writer keeps one put of a random
 * key in flight until the readers are done. Each reader yields to the event
 * loop every READER_YIELD_OPS reads, so a writer whose puts complete in a
 * later event turn (all three engines) gets turns even when a get resolves at once.
 */
const READER_YIELD_OPS = 16

async function readWhileWriting(db: BenchDb, ctx: WorkloadContext): Promise<Measurement> {
  const { num, concurrency, seed, keyBytes, valueBytes } = ctx.config
  const reads = randomIndices(num, num, streamSeed(seed, 'readwhilewriting'))
  const writerRandom = new SeededRandom(streamSeed(seed, 'readwhilewriting-writer'))
  let readersDone = false
  let writes = 0
  let writerError: unknown
  const writeLatency = new LatencyRecorder()
  const writer = (async () => {
    try {
      while (!readersDone) {
        const startMs = performance.now()
        await db.put(ctx.keys.encode(writerRandom.below(num)), ctx.values.valueFor(writes))
        writeLatency.recordMs(performance.now() - startMs)
        writes++
      }
    } catch (err) {
      writerError = err
    }
  })()
  // The readers: as runConcurrent, with the yields outside the timed part.
  const latency = new LatencyRecorder()
  let found = 0
  let bytes = 0
  let next = 0
  let readerError: unknown
  const reader = async (): Promise<void> => {
    let mine = 0
    while (readerError === undefined && next < num) {
      const op = next++
      const key = ctx.keys.encode(reads[op])
      const startMs = performance.now()
      try {
        const value = await db.get(key)
        latency.recordSince(startMs)
        if (value !== undefined) {
          found++
          bytes += key.length + value.length
        }
      } catch (err) {
        readerError ??= err
        return
      }
      if (++mine % READER_YIELD_OPS === 0) await yieldToEventLoop()
    }
  }
  activeProgress().phase(num)
  const startMs = performance.now()
  latency.start(startMs)
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, num) }, reader))
  } finally {
    readersDone = true
    await writer
  }
  const endMs = performance.now()
  latency.finish(endMs)
  const elapsedMs = endMs - startMs
  if (readerError !== undefined) throw readerError
  if (writerError !== undefined) throw writerError
  const h = writeLatency.histogram
  return {
    ops: num,
    bytes,
    elapsedMs,
    latency,
    found,
    details: {
      writes,
      writesPerSec: elapsedMs > 0 ? writes / (elapsedMs / 1000) : 0,
      writeMbPerSec: elapsedMs > 0 ? (writes * (keyBytes + valueBytes)) / 1e6 / (elapsedMs / 1000) : 0,
      writeLatencyNs: h.count > 0 ? { p50: h.percentile(50), p99: h.percentile(99), max: h.max } : undefined,
    },
  }
}

/** Random-key seeks of SEEK_ENTRIES entries each, `concurrency` in flight; ops are seeks. */
async function seekRandom(db: BenchDb, ctx: WorkloadContext, mode: 'sync' | 'async'): Promise<Measurement> {
  const { num, concurrency, seed } = ctx.config
  const seeks = scaledOps.seekrandom(num)
  const starts = randomIndices(seeks, num, streamSeed(seed, 'seekrandom'))
  const latency = new LatencyRecorder()
  let entries = 0
  let bytes = 0
  const visit = (key: Uint8Array, value: Uint8Array): void => {
    entries++
    bytes += key.length + value.length
  }
  const seekSync = db.seekSync
  const elapsedMs =
    mode === 'sync' && seekSync !== undefined
      ? runSync(seeks, (op) => void seekSync(ctx.keys.encode(starts[op]), SEEK_ENTRIES, visit), latency)
      : await runConcurrent(seeks, mode === 'sync' ? 1 : concurrency, (op) => db.seek(ctx.keys.encode(starts[op]), SEEK_ENTRIES, visit), latency)
  return { ops: seeks, bytes, elapsedMs, latency, details: { entries, entriesPerSeek: entries / seeks } }
}

/** Random deletes of num keys from [0, num), `concurrency` in flight. */
async function deleteRandom(db: BenchDb, ctx: WorkloadContext): Promise<Measurement> {
  const { num, concurrency, seed, keyBytes } = ctx.config
  const indices = randomIndices(num, num, streamSeed(seed, 'deleterandom'))
  const latency = new LatencyRecorder()
  const elapsedMs = await runConcurrent(num, concurrency, (op) => db.del(ctx.keys.encode(indices[op])), latency)
  // Spot-check: the last keys deleted are gone.
  for (let op = Math.max(0, num - 100); op < num; op++) {
    if ((await db.get(ctx.keys.encode(indices[op]))) !== undefined) throw new Error(`key ${indices[op]} is still there after its delete`)
  }
  return { ops: num, bytes: num * keyBytes, elapsedMs, latency }
}

/**
 * Large values (256 KiB, --large-value-bytes, or the workload's own size):
 * random-key puts into a new database, then (in details) as many synchronous
 * gets of random keys. The key streams are named after the workload.
 */
async function largeValues(db: BenchDb, ctx: WorkloadContext, workload: LargeValuesWorkloadName): Promise<Measurement> {
  const { num, seed } = ctx.config
  const valueBytes = largeValueBytesOf(workload, ctx.config)
  const n = scaledOps.largevalues(num, valueBytes)
  let values = ctx.largeValues.get(valueBytes)
  if (values === undefined) {
    values = new ValuePool(valueBytes, seed, ctx.config.compressionRatio)
    ctx.largeValues.set(valueBytes, values)
  }
  const writes = randomIndices(n, n, streamSeed(seed, workload))
  const written = await putAll(db, ctx, n, (op) => writes[op], undefined, values)
  const readIndices = randomIndices(n, n, streamSeed(seed, `${workload}-read`))
  const read = await pointReads(db, ctx, n, (op) => ctx.keys.encode(readIndices[op]), 'sync')
  const readSeconds = read.elapsedMs / 1000
  return {
    ...written,
    details: {
      valueBytes,
      readOps: n,
      readFound: read.found,
      readOpsPerSec: readSeconds > 0 ? n / readSeconds : 0,
      readMbPerSec: readSeconds > 0 ? read.bytes / 1e6 / readSeconds : 0,
      readP99Ns: read.latency?.histogram.percentile(99),
    },
  }
}

/** largevalues, or one of its fixed-size variants. */
function largeValuesWorkload(name: LargeValuesWorkloadName): DatabaseWorkload {
  return {
    name,
    database: 'scratch',
    describe(c: BenchConfig) {
      const valueBytes = largeValueBytesOf(name, c)
      const n = scaledOps.largevalues(c.num, valueBytes)
      return (
        `${count(n)} puts of ${formatValueBytes(valueBytes)} values (${+((n * valueBytes) / 2 ** 20).toFixed(1)} MiB, sized as num / 200 values of 256 KiB) ` +
        `with random keys into a new scratch database, ${c.concurrency} in flight; then as many synchronous gets of random keys`
      )
    },
    run: (db, ctx) => largeValues(db, ctx, name),
  }
}

/** Every workload, by name. */
export const WORKLOADS: Record<WorkloadName, Workload> = {
  fillseq: {
    name: 'fillseq',
    database: 'fresh',
    describe: (c) => `${count(c.num)} puts in key order into a new database, ${c.concurrency} in flight`,
    run: (db, ctx) => putAll(db, ctx, ctx.config.num, (op) => op),
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
  fillsync: {
    name: 'fillsync',
    database: 'scratch',
    describe: (c) =>
      `${count(scaledOps.fillsync(c.num))} (num / 100) puts of random keys into a new scratch database, each durable (fsync) before it resolves, ${c.concurrency} in flight`,
    run(db, ctx) {
      const { num, seed } = ctx.config
      const n = scaledOps.fillsync(num)
      const indices = randomIndices(n, num, streamSeed(seed, 'fillsync'))
      return putAll(db, ctx, n, (op) => indices[op], (key, value) => db.putDurable(key, value))
    },
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
  readmissing: {
    name: 'readmissing',
    database: 'existing',
    describe: (c) => `${count(c.num)} synchronous gets of keys that do not exist (a random key followed by ".")`,
    run(db, ctx) {
      const { num, seed } = ctx.config
      const indices = randomIndices(num, num, streamSeed(seed, 'readmissing'))
      return pointReads(db, ctx, num, (op) => ctx.keys.encodeMissing(indices[op]), 'sync')
    },
  },
  readseq: {
    name: 'readseq',
    database: 'existing',
    describe: () => 'one forward scan of the whole database (stratadb iterator, abstract-level nextv, lmdb getRange); no per-entry latency',
    run: (db) => scanAll(db, false),
  },
  readreverse: {
    name: 'readreverse',
    database: 'existing',
    describe: () => 'one reverse scan of the whole database (iterator / getRange with reverse: true); no per-entry latency',
    run: (db) => scanAll(db, true),
  },
  seekrandom: {
    name: 'seekrandom',
    database: 'existing',
    describe: (c) =>
      `${count(scaledOps.seekrandom(c.num))} (num / 20) synchronous range reads of ${SEEK_ENTRIES} entries from a random key (stratadb iterator({ gte, limit }).nextSync(), lmdb getRange; classic-level has no synchronous iterator: awaited nextv, one seek at a time); ops = seeks`,
    run: (db, ctx) => seekRandom(db, ctx, 'sync'),
  },
  'seekrandom-async': {
    name: 'seekrandom-async',
    database: 'existing',
    describe: (c) =>
      `${count(scaledOps.seekrandom(c.num))} (num / 20) awaited range reads of ${SEEK_ENTRIES} entries from a random key (stratadb for await of iterator({ gte, limit }), classic-level nextv, lmdb getRange in an async function), ${c.concurrency} in flight; ops = seeks`,
    run: (db, ctx) => seekRandom(db, ctx, 'async'),
  },
  readwhilewriting: {
    name: 'readwhilewriting',
    database: 'existing',
    describe: (c) =>
      `${count(c.num)} awaited gets of random keys, ${c.concurrency} in flight (measured), while one writer keeps one put of a random key in flight`,
    run: (db, ctx) => readWhileWriting(db, ctx),
  },
  deleterandom: {
    name: 'deleterandom',
    database: 'existing',
    describe: (c) => `${count(c.num)} deletes of uniformly random keys from the existing database, ${c.concurrency} in flight`,
    run: (db, ctx) => deleteRandom(db, ctx),
  },
  largevalues: largeValuesWorkload('largevalues'),
  largevalues16k: largeValuesWorkload('largevalues16k'),
  largevalues1m: largeValuesWorkload('largevalues1m'),
  increment: {
    name: 'increment',
    database: 'scratch',
    describe: (c) =>
      `${count(c.incrementTasks)} concurrent tasks, each ${count(c.incrementsPerTask)} read-modify-write increments of one hot key in a transaction; ops = commits`,
    check: requireTransactions,
    run: (db, ctx) => increments(db, ctx, 1),
  },
  'increment-keys': {
    name: 'increment-keys',
    database: 'scratch',
    describe: (c) =>
      `${count(c.incrementTasks)} concurrent tasks, each ${count(c.incrementsPerTask)} read-modify-write increments of one of ${count(INCREMENT_KEYS)} keys drawn at random, in a transaction; ops = commits`,
    check: requireTransactions,
    run: (db, ctx) => increments(db, ctx, INCREMENT_KEYS),
  },
  reopen: {
    name: 'reopen',
    database: 'own',
    describe: (c) =>
      `open() of a database right after the child process that wrote it (${count(c.num)} fillrandom puts, ${c.concurrency} in flight) was killed with SIGKILL; ops/s = opens/s`,
    run: (adapter, scratchDir, ctx) => measureReopenAfterKill(adapter, scratchDir, ctx.config),
  },
  bigdata: {
    name: 'bigdata',
    database: 'own',
    describe: (c) =>
      `in a child process per engine: ${count(c.bigdataNum)} puts of distinct keys in random order (${((c.bigdataNum * (c.keyBytes + c.valueBytes)) / 2 ** 30).toFixed(2)} GiB raw), ` +
      `${c.concurrency} in flight, write buffer ${c.bigdataMemtableBytes / 2 ** 20} MiB and cache ${c.bigdataCacheBytes / 2 ** 20} MiB where the engine has them; ` +
      `then ${count(c.bigdataReads)} synchronous gets of random keys after reopening; ops/s and latency are the puts'`,
    run: (adapter, scratchDir, ctx) => measureBigdata(adapter, scratchDir, ctx.config),
  },
}
