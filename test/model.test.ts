/**
 * Model-based test: long random sequences of operations run against the engine
 * and against a trivially correct in-memory model (a Map), and every read is
 * compared. The configurations use tiny memtables, blocks, levels and tables
 * so that reads merge the active memtable, frozen memtables, many L0 tables and
 * several compacted levels, with flushes and compactions running underneath:
 * that is where merge, shadowing, seek and snapshot bugs live.
 *
 * Runs are seeded. A random seed is chosen per run unless STRATA_SEED is set;
 * a failure message carries the seed, the operation number and the last
 * operations, and `STRATA_SEED=<seed> npx vitest run test/model.test.ts`
 * replays the exact same run (STRATA_MODEL_TRACE=<file> also writes every
 * operation of the failing run to <file>).
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { open, type Database, type IteratorOptions, type OpenOptions, type Snapshot } from '../src/index.js'
import { SeededRandom } from '../src/cli/bench/key-stream.js'

// ---- seeded randomness ----------------------------------------------------

/** The bench's seeded sfc32 (same streams as before it was shared), with the helpers the model needs. */
class Rng extends SeededRandom {
  u32(): number {
    return this.nextUint32()
  }

  float(): number {
    return this.u32() / 0x1_0000_0000
  }

  /** Integer in [lo, hi], both inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1))
  }

  chance(p: number): boolean {
    return this.float() < p
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)]
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    let i = 0
    for (; i + 4 <= n; i += 4) out.writeUInt32LE(this.u32(), i)
    for (; i < n; i++) out[i] = this.u32() & 0xff
    return out
  }
}

const BASE_SEED = process.env.STRATA_SEED !== undefined ? Number(process.env.STRATA_SEED) >>> 0 : (Math.random() * 0x1_0000_0000) >>> 0

// ---- keys, values, bounds -------------------------------------------------

/** Keys and bounds are compared as latin1 strings: one char per byte, so JS string order is bytewise order. */
const str = (b: Buffer): string => b.toString('latin1')
const bin = (s: string): Buffer => Buffer.from(s, 'latin1')

/**
 * A small key space (so writes hit existing keys) built to stress ordering:
 * keys that are prefixes of each other, 0x00/0xff bytes at every position,
 * and a few long keys that share a long prefix (they outgrow the scratch key
 * buffers of the block builder and iterator).
 */
function makeKeyPool(rng: Rng): Buffer[] {
  const fixed = [
    '\x00', '\x00\x00', '\x00\x01', '\x01', '\x7f', '\x80', '\xfe', '\xff', '\xff\x00', '\xff\xff', '\xff\xff\xff',
    'a', 'aa', 'aaa', 'aab', 'ab', 'b', 'user/', 'user/1', 'user/10', 'user/100', 'user/2', 'user/\x00', 'user/\xff',
  ]
  const prefixes = ['', '', 'user/', 'user/1', 'idx\x00', '\xff\xff', 'k', 'a']
  const alphabet = [0x00, 0x01, 0x30, 0x31, 0x32, 0x61, 0x62, 0x7f, 0x80, 0xfe, 0xff]
  const seen = new Set<string>(fixed)
  const keys = fixed.map(bin)
  while (keys.length < 150) {
    const suffix = Buffer.alloc(rng.int(0, 10))
    for (let i = 0; i < suffix.length; i++) suffix[i] = rng.chance(0.8) ? rng.pick(alphabet) : rng.int(0, 255)
    const k = Buffer.concat([bin(rng.pick(prefixes)), suffix])
    if (k.length === 0 || seen.has(str(k))) continue
    seen.add(str(k))
    keys.push(k)
  }
  const longPrefix = Buffer.concat([bin('long/'), rng.bytes(rng.int(200, 600))])
  for (let i = 0; i < 6; i++) {
    const k = Buffer.concat([longPrefix, rng.bytes(rng.int(0, 1500))])
    if (!seen.has(str(k))) {
      seen.add(str(k))
      keys.push(k)
    }
  }
  return keys
}

/** Mostly small values, some up to a few KiB, rarely ~100 KiB (bigger than the whole memtable). */
function makeValue(rng: Rng): Buffer {
  const r = rng.float()
  const size = r < 0.1 ? 0 : r < 0.5 ? rng.int(1, 16) : r < 0.93 ? rng.int(17, 512) : r < 0.998 ? rng.int(513, 4096) : rng.int(90_000, 110_000)
  return rng.bytes(size)
}

/**
 * Values for key-value separation (blob files): a mix that crosses
 * `minBlobBytes` (`m`) every way. Mostly small (inline in tables), a share of
 * exactly m - 1, m and m + 1 bytes (the boundary), some a few times m (in blob
 * files), a few much larger than a block, rarely larger than the memtable.
 */
function makeBlobMixValue(rng: Rng, m: number): Buffer {
  const r = rng.float()
  const size =
    r < 0.06 ? 0
    : r < 0.45 ? rng.int(1, m - 2)
    : r < 0.5 ? m - 1
    : r < 0.55 ? m
    : r < 0.6 ? m + 1
    : r < 0.93 ? rng.int(m + 2, 4 * m)
    : r < 0.997 ? rng.int(4 * m, 40 * m)
    : rng.int(20_000, 40_000)
  return rng.bytes(size)
}

/** A value of repeated short patterns, up to ~2 KiB (rarely ~100 KiB): blocks of them shrink well under LZ4. */
function makeCompressibleValue(rng: Rng): Buffer {
  const r = rng.float()
  const size = r < 0.1 ? 0 : r < 0.6 ? rng.int(1, 64) : r < 0.998 ? rng.int(65, 2048) : rng.int(90_000, 110_000)
  const pattern = rng.bytes(rng.int(1, 12))
  const out = Buffer.alloc(size)
  for (let i = 0; i < size; i++) out[i] = rng.chance(0.05) ? rng.int(0, 255) : pattern[i % pattern.length]
  return out
}

/** A bound: an existing key, a prefix of one, a random short byte string, or (rarely) empty. */
function makeBound(rng: Rng, keys: readonly Buffer[]): Buffer {
  const r = rng.float()
  if (r < 0.5) return rng.pick(keys)
  if (r < 0.75) {
    const k = rng.pick(keys)
    return k.subarray(0, rng.int(0, k.length))
  }
  if (r < 0.98) return rng.bytes(rng.int(1, 3))
  return Buffer.alloc(0)
}

/**
 * Random range options. At most one lower and one upper bound: passing both
 * gt and gte (or lt and lte) is covered by its own test below, because the
 * engine currently disagrees with itself there (see that test).
 */
function makeRange(rng: Rng, keys: readonly Buffer[]): IteratorOptions {
  const o: IteratorOptions = {}
  const shape = rng.float()
  if (shape < 0.1) {
    // Point range: at most one entry.
    const k = rng.pick(keys)
    o.gte = k
    o.lte = k
  } else if (shape < 0.15) {
    // Empty by construction: nothing is both > k and < k.
    const k = makeBound(rng, keys)
    o.gt = k
    o.lt = k
  } else {
    const lower = rng.int(0, 2)
    const upper = rng.int(0, 2)
    if (lower === 1) o.gt = makeBound(rng, keys)
    if (lower === 2) o.gte = makeBound(rng, keys)
    if (upper === 1) o.lt = makeBound(rng, keys)
    if (upper === 2) o.lte = makeBound(rng, keys)
    // About half of the two-sided ranges come out inverted (empty), which is wanted.
  }
  const dir = rng.int(0, 2)
  if (dir === 1) o.reverse = true
  if (dir === 2) o.reverse = false
  if (rng.chance(0.3)) o.limit = rng.pick([0, 1, 2, 5, rng.int(0, 40)])
  return o
}

/** Passes bytes as a Buffer, as a Uint8Array view at an offset into a larger buffer, or as a string when lossless. */
function asInput(rng: Rng, b: Buffer): Buffer | Uint8Array | string {
  const r = rng.float()
  if (r < 0.4) return b
  if (r < 0.7) {
    const pad = rng.int(1, 7)
    const backing = new Uint8Array(b.length + pad + 3)
    backing.set(b, pad)
    return backing.subarray(pad, pad + b.length)
  }
  // Only ASCII survives the string -> UTF-8 round trip byte for byte.
  return b.every((c) => c < 0x80) ? b.toString('latin1') : b
}

// ---- the model ------------------------------------------------------------

type Model = Map<string, Buffer>

/** What an iterator with `o` must yield from `model`, computed the obvious way. */
function expectedRange(model: Model, o: IteratorOptions): Array<[string, Buffer]> {
  const b = (v: IteratorOptions['gt']): string | undefined => (v === undefined ? undefined : str(Buffer.from(v as Uint8Array)))
  const gt = b(o.gt)
  const gte = b(o.gte)
  const lt = b(o.lt)
  const lte = b(o.lte)
  let keys = [...model.keys()].filter(
    (k) => (gt === undefined || k > gt) && (gte === undefined || k >= gte) && (lt === undefined || k < lt) && (lte === undefined || k <= lte),
  )
  keys.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))
  if (o.reverse === true) keys.reverse()
  if (o.limit !== undefined) keys = keys.slice(0, o.limit)
  // Keys-only iterators (values: false) yield every value empty.
  if (o.values === false) return keys.map((k) => [k, Buffer.alloc(0)])
  return keys.map((k) => [k, model.get(k)!])
}

// ---- comparison helpers ---------------------------------------------------

const hex = (b: Buffer | string | undefined, max = 24): string => {
  if (b === undefined) return 'undefined'
  const buf = typeof b === 'string' ? bin(b) : b
  const h = buf.subarray(0, max).toString('hex')
  return buf.length > max ? `${h}…(${buf.length} bytes)` : `${h || '""'}`
}

function describeRange(o: IteratorOptions): string {
  const parts: string[] = []
  for (const k of ['gt', 'gte', 'lt', 'lte'] as const) if (o[k] !== undefined) parts.push(`${k}=${hex(Buffer.from(o[k] as Uint8Array))}`)
  if (o.reverse !== undefined) parts.push(`reverse=${o.reverse}`)
  if (o.limit !== undefined) parts.push(`limit=${o.limit}`)
  if (o.values === false) parts.push('values=false')
  return `{${parts.join(' ')}}`
}

class Mismatch extends Error {}

function checkValue(actual: Buffer | undefined, expected: Buffer | undefined, what: string): void {
  if (actual !== undefined && !Buffer.isBuffer(actual)) throw new Mismatch(`${what}: returned a non-Buffer`)
  const same = actual === undefined ? expected === undefined : expected !== undefined && actual.equals(expected)
  if (!same) throw new Mismatch(`${what}: expected ${hex(expected)}, got ${hex(actual)}`)
}

function checkEntries(actual: Array<[Buffer, Buffer]>, expected: Array<[string, Buffer]>, what: string): void {
  const n = Math.max(actual.length, expected.length)
  for (let i = 0; i < n; i++) {
    const a = actual[i]
    const e = expected[i]
    if (a === undefined || e === undefined || str(a[0]) !== e[0] || !a[1].equals(e[1])) {
      throw new Mismatch(
        `${what}: entry ${i} differs (expected ${expected.length} entries, got ${actual.length}): ` +
          `expected ${e ? `${hex(e[0])}=${hex(e[1])}` : 'end'}, got ${a ? `${hex(a[0])}=${hex(a[1])}` : 'end'}`,
      )
    }
  }
}

async function collect(it: AsyncIterable<[Buffer, Buffer]>): Promise<Array<[Buffer, Buffer]>> {
  const out: Array<[Buffer, Buffer]> = []
  for await (const entry of it) out.push(entry)
  return out
}

// ---- one run --------------------------------------------------------------

interface Scenario {
  name: string
  options: OpenOptions
  ops: number
  /** Block sizes to switch between at reopen, so tables with different layouts coexist. */
  reopenBlockBytes: number[]
  /**
   * Key-value separation: values come from makeBlobMixValue around
   * `options.minBlobBytes`, reopens switch minBlobBytes between these (so
   * tables and blob files written under different thresholds coexist), some
   * iterators are keys-only, and the run ends with checks of the blob files
   * (accounting, GC settling, no file left behind).
   */
  blobs?: { reopenMinBlobBytes: number[] }
  /**
   * Block compression: values that compress (repeated short patterns, so most
   * data blocks are stored LZ4-compressed), and reopens switch `compression`
   * between these, so tables of both settings mix.
   */
  compression?: { reopen: Array<'lz4' | 'none'> }
  /** What the run must have exercised for it to mean anything. */
  expect: {
    minFlushes: number
    minCompactions: number
    minMaxL0Tables: number
    minDeepestLevel: number
    /** What tables answer "may this table hold the key?" with: their point index, or their Bloom filter. */
    pointReadsBy: 'point index' | 'filter'
  }
}

interface LiveSnapshot {
  snap: Snapshot
  model: Model
  takenAt: number
}

let openDb: Database | undefined
let tempDirs: string[] = []
afterEach(async () => {
  await openDb?.close()
  openDb = undefined
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true })
  tempDirs = []
})

interface RunSummary {
  flushes: number
  compactions: number
  /** Most L0 tables seen at once: reads merged that many overlapping tables. */
  maxL0Tables: number
  /** Deepest level that held a table. */
  deepestLevel: number
  reopens: number
  snapshotChecks: number
  pipelinedGets: number
  /** Most open tables seen at once that used their point index, and their Bloom filter. */
  maxPointIndexedTables: number
  maxFilterTables: number
  /** Blob files written by flushes, blob values read, bytes GC relocated, blob-gc compactions, keys-only iterators checked. */
  blobFilesWritten: number
  blobValuesRead: number
  blobBytesRelocated: number
  blobGcCompactions: number
  maxBlobFiles: number
  maxBlobGarbageBytes: number
  keysOnlyIterators: number
}

/**
 * One seeded run of a scenario: the engine, the model it is checked against,
 * the live snapshots (each with its copy of the model), the log of the last
 * operations, and what the run exercised. Every random choice comes from `rng`
 * in a fixed order, so a seed replays the same run.
 */
class ModelRun {
  readonly rng: Rng
  readonly dir: string
  readonly keys: Buffer[]
  readonly model: Model = new Map()
  snapshots: LiveSnapshot[] = []
  readonly summary: RunSummary = {
    flushes: 0,
    compactions: 0,
    maxL0Tables: 0,
    deepestLevel: 0,
    reopens: 0,
    snapshotChecks: 0,
    pipelinedGets: 0,
    maxPointIndexedTables: 0,
    maxFilterTables: 0,
    blobFilesWritten: 0,
    blobValuesRead: 0,
    blobBytesRelocated: 0,
    blobGcCompactions: 0,
    maxBlobFiles: 0,
    maxBlobGarbageBytes: 0,
    keysOnlyIterators: 0,
  }
  /** Number of the operation running (the log and the failure message name it). */
  op = 0
  // The last operations, printed on failure: enough to see what led up to it.
  // STRATA_MODEL_TRACE=<file> keeps every operation and writes them there on failure.
  readonly traceFile = process.env.STRATA_MODEL_TRACE
  readonly log: string[] = []
  logged = 0
  options: OpenOptions
  db!: Database
  /** The operation at which the database is next closed and reopened. */
  nextReopen = 0
  /**
   * Blob scenarios: the session each value was written in (an index into
   * sessionMinBlobBytes, the minBlobBytes of each open in order). Every value
   * is flushed in its session (close flushes the memtable, and waits for the
   * writes issued before it), so the values at least that long went to blob
   * files; a compaction in a later session with a lower minBlobBytes may
   * separate a shorter one too.
   */
  readonly sessionOf = new WeakMap<Buffer, number>()
  readonly sessionMinBlobBytes: number[] = []

  constructor(
    readonly scenario: Scenario,
    readonly seed: number,
  ) {
    this.rng = new Rng(seed)
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-model-'))
    tempDirs.push(this.dir)
    this.keys = makeKeyPool(this.rng)
    this.options = { ...scenario.options }
  }

  /** Opens the database for the first time and draws the first reopen point. */
  async open(): Promise<void> {
    this.sessionMinBlobBytes.push(this.options.minBlobBytes ?? Infinity)
    this.db = await open(this.dir, this.options)
    openDb = this.db
    this.nextReopen = this.rng.int(Math.floor(this.scenario.ops / 5), Math.floor(this.scenario.ops / 3))
  }

  observe(): void {
    const st = this.db.stats()
    const summary = this.summary
    summary.maxPointIndexedTables = Math.max(summary.maxPointIndexedTables, st.pointIndexedTables)
    summary.maxFilterTables = Math.max(summary.maxFilterTables, st.openTables - st.pointIndexedTables)
    summary.maxL0Tables = Math.max(summary.maxL0Tables, st.levels[0].tables)
    for (const l of st.levels) if (l.tables > 0) summary.deepestLevel = Math.max(summary.deepestLevel, l.level)
    summary.maxBlobFiles = Math.max(summary.maxBlobFiles, st.blobs.files)
    summary.maxBlobGarbageBytes = Math.max(summary.maxBlobGarbageBytes, st.blobs.garbageBytes)
  }

  /** Counters restart at every open: add them up just before each close. */
  addCounters(): void {
    const st = this.db.stats()
    this.summary.flushes += st.writes.flushes
    this.summary.compactions += st.compaction.compactions
    this.summary.blobFilesWritten += st.blobs.filesWritten
    this.summary.blobValuesRead += st.blobs.valuesRead
    this.summary.blobBytesRelocated += st.compaction.blobBytesRelocated
    this.summary.blobGcCompactions += st.compaction.byReason['blob-gc']
  }

  note(s: string): void {
    this.log.push(`#${this.op} ${s}`)
    this.logged++
    if (this.traceFile === undefined && this.log.length > 40) this.log.shift()
  }

  pickKey(): Buffer {
    return this.rng.chance(0.3) ? this.keys[this.rng.int(0, 19)] : this.rng.pick(this.keys)
  }

  /** A value of the scenario's size mix. */
  makeValue(): Buffer {
    if (this.scenario.compression !== undefined) return makeCompressibleValue(this.rng)
    if (this.scenario.blobs === undefined) return makeValue(this.rng)
    const v = makeBlobMixValue(this.rng, this.scenario.options.minBlobBytes!)
    this.sessionOf.set(v, this.sessionMinBlobBytes.length - 1)
    return v
  }

  /** Blob scenarios: some iterators are keys-only (values: false), which must list the same keys and read no blob file. */
  maybeKeysOnly(o: IteratorOptions): IteratorOptions {
    if (this.scenario.blobs !== undefined && this.rng.chance(0.25)) {
      o.values = false
      this.summary.keysOnlyIterators++
    }
    return o
  }

  /** Issues one random write (not awaited) and applies it to `m`; returns its promise. */
  issueWrite(m: Model, avoid?: Set<string>): Promise<void> {
    const { rng, db } = this
    const r = rng.float()
    let k = this.pickKey()
    while (avoid?.has(str(k))) k = this.pickKey()
    if (r < 0.6) {
      const v = this.makeValue()
      this.note(`put ${hex(k)} (${v.length} bytes)`)
      m.set(str(k), v)
      return db.put(asInput(rng, k), asInput(rng, v))
    }
    if (r < 0.85) {
      this.note(`delete ${hex(k)}`)
      m.delete(str(k))
      return db.delete(asInput(rng, k))
    }
    // A batch, sometimes empty, often touching one key several times (the last op wins).
    const n = rng.int(0, 8)
    const ops: Array<{ type: 'put'; key: Buffer | Uint8Array | string; value: Buffer | Uint8Array | string } | { type: 'del'; key: Buffer | Uint8Array | string }> = []
    const desc: string[] = []
    for (let i = 0; i < n; i++) {
      let bk = rng.chance(0.3) && i > 0 ? k : this.pickKey()
      while (avoid?.has(str(bk))) bk = this.pickKey()
      k = bk
      if (rng.chance(0.7)) {
        const v = this.makeValue()
        ops.push({ type: 'put', key: asInput(rng, bk), value: asInput(rng, v) })
        m.set(str(bk), v)
        desc.push(`put ${hex(bk)}`)
      } else {
        ops.push({ type: 'del', key: asInput(rng, bk) })
        m.delete(str(bk))
        desc.push(`del ${hex(bk)}`)
      }
    }
    this.note(`batch [${desc.join(', ')}]`)
    return db.batch(ops)
  }

  async checkFull(what: string): Promise<void> {
    const { db, model } = this
    checkEntries(await collect(db.iterator()), expectedRange(model, {}), `${what}: full forward scan`)
    checkEntries(await collect(db.iterator({ reverse: true })), expectedRange(model, { reverse: true }), `${what}: full reverse scan`)
    for (const k of this.keys) checkValue(db.getSync(k), model.get(str(k)), `${what}: getSync ${hex(k)}`)
  }

  async reopen(): Promise<void> {
    const { rng, scenario } = this
    // Snapshots do not survive a close; release them first as a user must.
    for (const s of this.snapshots) s.snap.release()
    this.snapshots = []
    // close() must wait for writes still queued: issue some and do not await them first.
    const inflight: Promise<void>[] = []
    for (let i = rng.int(0, 6); i > 0; i--) inflight.push(this.issueWrite(this.model))
    this.addCounters()
    await this.db.close()
    await Promise.all(inflight)
    this.options = { ...scenario.options, blockBytes: rng.pick(scenario.reopenBlockBytes) }
    if (scenario.compression !== undefined) this.options.compression = rng.pick(scenario.compression.reopen)
    if (scenario.blobs !== undefined) {
      this.options.minBlobBytes = rng.pick(scenario.blobs.reopenMinBlobBytes)
    }
    this.sessionMinBlobBytes.push(this.options.minBlobBytes ?? Infinity)
    this.note(`reopen (blockBytes ${this.options.blockBytes}${scenario.blobs !== undefined ? `, minBlobBytes ${this.options.minBlobBytes}` : ''})`)
    this.db = await open(this.dir, this.options)
    openDb = this.db
    this.summary.reopens++
    await this.checkFull('after reopen')
  }

  /** Operation number `op`: a reopen when due, else one random operation checked against the model. */
  async step(): Promise<void> {
    const { rng, scenario, op } = this
    if (op === this.nextReopen) {
      await this.reopen()
      this.nextReopen = op + rng.int(Math.floor(scenario.ops / 5), Math.floor(scenario.ops / 3))
      return
    }
    if (op % 25 === 0) this.observe()
    const r = rng.float()
    if (r < 0.4) await this.writeThenGetSync()
    else if (r < 0.55) await this.checkGet()
    else if (r < 0.67) this.checkGetSync()
    else if (r < 0.77) await this.checkIterator()
    else if (r < 0.8) await this.checkIteratorAcrossWrites()
    else if (r < 0.82) await this.checkIteratorEarlyExit()
    else if (r < 0.86) await this.checkPipelinedGets()
    else if (r < 0.875) this.takeSnapshots()
    else if (r < 0.885) this.releaseSnapshot()
    else if (r < 0.94) await this.checkSnapshot()
    else if (r < 0.943) {
      this.note('full check')
      await this.checkFull('periodic full check')
    } else if (r < 0.945) await this.compactRandomRange()
    else await this.writeBurst()
  }

  /** One awaited write, then the result of it visible to getSync at once. */
  async writeThenGetSync(): Promise<void> {
    await this.issueWrite(this.model)
    if (this.rng.chance(0.2)) {
      const k = this.pickKey()
      this.note(`getSync ${hex(k)} right after the write`)
      checkValue(this.db.getSync(k), this.model.get(str(k)), `getSync ${hex(k)} right after a write`)
    }
  }

  async checkGet(): Promise<void> {
    const k = this.pickKey()
    this.note(`get ${hex(k)}`)
    checkValue(await this.db.get(asInput(this.rng, k)), this.model.get(str(k)), `get ${hex(k)}`)
  }

  checkGetSync(): void {
    const k = this.pickKey()
    this.note(`getSync ${hex(k)}`)
    checkValue(this.db.getSync(asInput(this.rng, k)), this.model.get(str(k)), `getSync ${hex(k)}`)
  }

  async checkIterator(): Promise<void> {
    const o = this.maybeKeysOnly(makeRange(this.rng, this.keys))
    this.note(`iterator ${describeRange(o)}`)
    checkEntries(await collect(this.db.iterator(o)), expectedRange(this.model, o), `iterator ${describeRange(o)}`)
  }

  /**
   * An iterator is a point in time: writes (and the flushes they cause)
   * between its creation and its reads must not show through.
   */
  async checkIteratorAcrossWrites(): Promise<void> {
    const { rng } = this
    const o = this.maybeKeysOnly(makeRange(rng, this.keys))
    const expected = expectedRange(this.model, o)
    this.note(`iterator across writes ${describeRange(o)}`)
    const it = this.db.iterator(o)
    const got: Array<[Buffer, Buffer]> = []
    const firstPart = rng.int(0, 5)
    for (let i = 0; i < firstPart; i++) {
      const n = await it.next()
      if (n.done === true) break
      got.push(n.value)
    }
    for (let i = rng.int(1, 8); i > 0; i--) await this.issueWrite(this.model)
    for await (const entry of it) got.push(entry)
    checkEntries(got, expected, `iterator across writes ${describeRange(o)}`)
  }

  /** Leaving an iterator early must release it cleanly (checked by later ops and close). */
  async checkIteratorEarlyExit(): Promise<void> {
    const { rng } = this
    const o = makeRange(rng, this.keys)
    this.note(`iterator early exit ${describeRange(o)}`)
    const expected = expectedRange(this.model, o)
    const stopAt = rng.int(0, 3)
    const got: Array<[Buffer, Buffer]> = []
    const it = this.db.iterator(o)
    for await (const entry of it) {
      if (got.length === stopAt) break
      got.push(entry)
    }
    if (rng.chance(0.5)) it.close()
    checkEntries(got, expected.slice(0, Math.min(stopAt, expected.length)), `iterator early exit ${describeRange(o)}`)
  }

  /**
   * Pipelined writes: several in flight, then get() issued before any of
   * them resolved must see all of them. Later writes avoid the probed
   * keys, so each probe has exactly one correct answer.
   */
  async checkPipelinedGets(): Promise<void> {
    const { rng, model } = this
    const inflight: Promise<void>[] = []
    for (let i = rng.int(2, 10); i > 0; i--) inflight.push(this.issueWrite(model))
    const probes = Array.from({ length: rng.int(1, 4) }, () => this.pickKey())
    this.note(`pipelined gets ${probes.map((k) => hex(k, 8)).join(' ')}`)
    const gets = probes.map((k) => ({ k, expected: model.get(str(k)), got: this.db.get(asInput(rng, k)) }))
    const avoid = new Set(probes.map(str))
    for (let i = rng.int(0, 4); i > 0; i--) inflight.push(this.issueWrite(model, avoid))
    await Promise.all(inflight)
    for (const g of gets) checkValue(await g.got, g.expected, `get ${hex(g.k)} issued after unawaited writes`)
    this.summary.pipelinedGets += gets.length
  }

  takeSnapshots(): void {
    if (this.snapshots.length < 4) {
      // Two snapshots at one sequence share an entry in the snapshot list; releasing one must not free the other.
      const copies = this.rng.chance(0.2) ? 2 : 1
      for (let i = 0; i < copies; i++) this.snapshots.push({ snap: this.db.snapshot(), model: new Map(this.model), takenAt: this.op })
      this.note(`snapshot x${copies} (now ${this.snapshots.length} live)`)
    }
  }

  releaseSnapshot(): void {
    const { snapshots } = this
    if (snapshots.length > 0) {
      const i = this.rng.int(0, snapshots.length - 1)
      this.note(`release snapshot taken at op ${snapshots[i].takenAt}`)
      snapshots[i].snap.release()
      snapshots.splice(i, 1)
    }
  }

  /** A get, getSync or iterator of a live snapshot, against the model as it was when the snapshot was taken. */
  async checkSnapshot(): Promise<void> {
    const { rng } = this
    if (this.snapshots.length > 0) {
      const s = rng.pick(this.snapshots)
      const kind = rng.int(0, 2)
      const tag = `snapshot from op ${s.takenAt}`
      this.summary.snapshotChecks++
      if (kind === 0) {
        const k = this.pickKey()
        this.note(`${tag}: get ${hex(k)}`)
        checkValue(await s.snap.get(asInput(rng, k)), s.model.get(str(k)), `${tag}: get ${hex(k)}`)
      } else if (kind === 1) {
        const k = this.pickKey()
        this.note(`${tag}: getSync ${hex(k)}`)
        checkValue(s.snap.getSync(asInput(rng, k)), s.model.get(str(k)), `${tag}: getSync ${hex(k)}`)
      } else {
        const o = this.maybeKeysOnly(makeRange(rng, this.keys))
        this.note(`${tag}: iterator ${describeRange(o)}`)
        checkEntries(await collect(s.snap.iterator(o)), expectedRange(s.model, o), `${tag}: iterator ${describeRange(o)}`)
      }
    }
  }

  /** A manual compaction of a random range, racing nothing: it must not change what any read returns. */
  async compactRandomRange(): Promise<void> {
    const { rng, keys } = this
    const lo = rng.chance(0.7) ? makeBound(rng, keys) : undefined
    const hi = rng.chance(0.7) ? makeBound(rng, keys) : undefined
    this.note(`compactRange ${hex(lo)}..${hex(hi)}`)
    await this.db.compactRange(lo, hi)
    this.observe()
  }

  /** Write bursts grow the data fast enough that flushes run during everything else. */
  async writeBurst(): Promise<void> {
    const inflight: Promise<void>[] = []
    for (let i = this.rng.int(1, 6); i > 0; i--) inflight.push(this.issueWrite(this.model))
    await Promise.all(inflight)
  }

  /** The last full check, every live snapshot's full scan, and the close. */
  async finish(): Promise<RunSummary> {
    await this.checkFull('end of run')
    for (const s of this.snapshots) {
      checkEntries(await collect(s.snap.iterator()), expectedRange(s.model, {}), `end of run: snapshot from op ${s.takenAt}`)
      s.snap.release()
    }
    this.snapshots = []
    if (this.scenario.blobs !== undefined) await this.checkBlobFiles()
    this.addCounters()
    await this.db.close()
    openDb = undefined
    return this.summary
  }

  /** Waits until no compaction has run for several polls in a row (blob GC schedules one after another). */
  async settle(what: string): Promise<void> {
    const deadline = Date.now() + 30_000
    for (let quiet = 0; quiet < 5; ) {
      const c = this.db.stats().compaction
      quiet = c.running === 0 ? quiet + 1 : 0
      if (Date.now() > deadline) throw new Mismatch(`${what}: compactions still running after 30 s (${JSON.stringify(c)})`)
      await new Promise((r) => setTimeout(r, 10))
    }
  }

  /**
   * End of a blob scenario, with no snapshot or iterator left: a full
   * compactRange leaves one version per key, so the blob values no table
   * references any more must all be counted as garbage, and what is not
   * garbage must be the model's values that went to blob files: every value
   * at least the minBlobBytes of the session that wrote it or of this last
   * session (whose full compaction separates inline values that long), and
   * no value shorter than the smallest minBlobBytes of the sessions since it
   * was written (a compaction in one of them may have separated it). Once
   * blob GC has settled no file may keep blobGarbagePercent garbage (it would
   * be collected, or gone when all of it is garbage), and exactly the blob
   * files the table version lists are on disk: none leaked, none lost.
   */
  async checkBlobFiles(): Promise<void> {
    const { db, model } = this
    this.note('end of run: compactRange, then blob GC settles')
    await db.compactRange()
    await this.settle('end of run')
    this.observe()
    await this.checkFull('after the last compactRange and blob GC')
    const st = db.stats().blobs
    let surely = 0
    let possibly = 0
    const last = this.options.minBlobBytes!
    for (const v of model.values()) {
      const session = this.sessionOf.get(v)!
      const written = this.sessionMinBlobBytes[session]
      const lowestSince = Math.min(...this.sessionMinBlobBytes.slice(session))
      if (v.length >= Math.min(written, last)) surely += v.length
      if (v.length >= lowestSince) possibly += v.length
    }
    const live = st.valueBytes - st.garbageBytes
    if (live < surely || live > possibly) {
      throw new Mismatch(
        `blob accounting: ${st.valueBytes} value bytes - ${st.garbageBytes} garbage = ${live} live, but the model's values ` +
          `that went to blob files total between ${surely} and ${possibly} (minBlobBytes of the sessions: ${this.sessionMinBlobBytes.join(', ')})`,
      )
    }
    const percent = this.options.blobGarbagePercent ?? 25
    if (st.garbageBytes > 0 && st.garbageBytes * 100 >= percent * st.valueBytes) {
      throw new Mismatch(`blob GC settled with ${st.garbageBytes} of ${st.valueBytes} value bytes garbage (blobGarbagePercent ${percent}): ${JSON.stringify(st)}`)
    }
    const files = fs.readdirSync(this.dir).filter((n) => n.endsWith('.blob'))
    const bytes = files.reduce((n, f) => n + fs.statSync(path.join(this.dir, f)).size, 0)
    if (files.length !== st.files || bytes !== st.fileBytes) {
      throw new Mismatch(`blob files on disk: ${files.length} of ${bytes} bytes (${files.join(' ')}); the table version lists ${st.files} of ${st.fileBytes} bytes`)
    }
  }

  /** The error a failed run throws: seed, operation number, replay command and the last operations (all of them to the trace file, if set). */
  failure(err: unknown): Error {
    const { log } = this
    const cause = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
    if (this.traceFile !== undefined) fs.writeFileSync(this.traceFile, `${cause}\n${log.join('\n')}\n`)
    return new Error(
      `model run "${this.scenario.name}" failed at op ${this.op} with seed ${this.seed} ` +
        `(replay: STRATA_SEED=${BASE_SEED} npx vitest run test/model.test.ts)\n${cause}\n` +
        `last ${Math.min(log.length, 40)} of ${this.logged} operations, oldest first:\n  ${log.slice(-40).join('\n  ')}`,
      { cause: err },
    )
  }
}

async function runModel(scenario: Scenario, seed: number): Promise<RunSummary> {
  const run = new ModelRun(scenario, seed)
  await run.open()
  try {
    for (run.op = 0; run.op < scenario.ops; run.op++) await run.step()
    return await run.finish()
  } catch (err) {
    throw run.failure(err)
  }
}

// ---- the runs -------------------------------------------------------------

/**
 * Five shorter runs cover more configurations for the same time than one long
 * one. Sizes are tiny so that a few thousand operations flush dozens of
 * memtables and compact them through several levels.
 */
const scenarios: Scenario[] = [
  {
    // Compaction off: L0 piles up, so every read merges dozens of overlapping
    // tables. Tiny blocks and no block cache: every read decodes from disk.
    name: 'no compaction, 8 KiB memtable, 512-byte blocks, no block cache',
    options: { memtableBytes: 8 * 1024, blockBytes: 512, blockRestartInterval: 4, blockCacheBytes: 0, autoCompaction: false },
    ops: 3000,
    reopenBlockBytes: [256, 512, 1024],
    expect: { minFlushes: 40, minCompactions: 0, minMaxL0Tables: 30, minDeepestLevel: 0, pointReadsBy: 'point index' },
  },
  {
    // Tiny levels and tables: data moves down to L3 and beyond, reads merge
    // memtables, L0 and several sorted levels. L0 triggers so low that writes
    // are slowed and stopped for compaction.
    name: 'leveled, tiny levels, write pacing, restart interval 1, 2 frozen memtables',
    options: {
      memtableBytes: 16 * 1024,
      blockBytes: 1024,
      blockRestartInterval: 1,
      maxImmutableMemtables: 2,
      blockCacheBytes: 64 * 1024,
      levelBaseBytes: 32 * 1024,
      levelSizeMultiplier: 2,
      targetTableBytes: 4096,
      l0CompactionTrigger: 2,
      l0SlowdownTrigger: 3,
      l0StopTrigger: 6,
    },
    ops: 4000,
    reopenBlockBytes: [1024, 4096],
    expect: { minFlushes: 20, minCompactions: 10, minMaxL0Tables: 2, minDeepestLevel: 2, pointReadsBy: 'point index' },
  },
  {
    // Two compactions at once, and one bloom bit per key: the filter says
    // "maybe" often, so lookups really search tables without the key. No table
    // cache budget, so no table loads its point index (and readers churn).
    name: 'leveled, 2 concurrent compactions, 32 KiB memtable, weak bloom filter, no point index',
    options: {
      memtableBytes: 32 * 1024,
      blockBytes: 1024,
      bloomBitsPerKey: 1,
      tableCacheBytes: 0,
      levelBaseBytes: 64 * 1024,
      levelSizeMultiplier: 3,
      targetTableBytes: 16 * 1024,
      l0CompactionTrigger: 3,
      maxConcurrentCompactions: 2,
    },
    ops: 4000,
    reopenBlockBytes: [512, 1024, 2048],
    expect: { minFlushes: 10, minCompactions: 3, minMaxL0Tables: 2, minDeepestLevel: 1, pointReadsBy: 'filter' },
  },
  {
    // Only 8 table readers may stay open, far fewer than the tables: readers are
    // evicted and reopened all the time, also while iterators still use them.
    name: 'leveled, 8 open tables, 12 KiB memtable, 256-byte blocks',
    options: {
      memtableBytes: 12 * 1024,
      blockBytes: 256,
      blockRestartInterval: 2,
      maxOpenTables: 8,
      blockCacheBytes: 16 * 1024,
      levelBaseBytes: 48 * 1024,
      targetTableBytes: 8 * 1024,
      l0CompactionTrigger: 4,
    },
    ops: 4000,
    reopenBlockBytes: [256, 4096],
    expect: { minFlushes: 20, minCompactions: 5, minMaxL0Tables: 3, minDeepestLevel: 1, pointReadsBy: 'point index' },
  },
]

/**
 * Block compression: compressible values, so most data blocks are stored
 * LZ4-compressed; a 16 KiB block cache, so blocks are decompressed into the
 * cache and evicted all the time (point reads and iterators, readers evicted
 * with 8 open tables); reopens switch between lz4 and none and between block
 * sizes, so compressed and raw blocks and tables mix.
 */
scenarios.push({
  name: 'LZ4 blocks: compressible values, 16 KiB block cache, 8 open tables, reopens switch compression',
  options: {
    memtableBytes: 16 * 1024,
    blockBytes: 512,
    maxOpenTables: 8,
    blockCacheBytes: 16 * 1024,
    levelBaseBytes: 48 * 1024,
    targetTableBytes: 8 * 1024,
    l0CompactionTrigger: 3,
    compression: 'lz4',
  },
  ops: 3000,
  reopenBlockBytes: [256, 512, 4096],
  compression: { reopen: ['lz4', 'lz4', 'none'] },
  expect: { minFlushes: 10, minCompactions: 3, minMaxL0Tables: 2, minDeepestLevel: 1, pointReadsBy: 'point index' },
})

/**
 * Key-value separation: the value mix crosses minBlobBytes (kept small so the
 * run stays fast), reopens switch it, and blob GC runs at 1% garbage, so blob
 * files are written at almost every flush and collected by compactions and
 * in-place rewrites while snapshots and iterators pin older table versions.
 */
scenarios.push({
  name: 'key-value separation: values around minBlobBytes, blob GC at 1% garbage, keys-only iterators',
  options: {
    memtableBytes: 16 * 1024,
    blockBytes: 1024,
    maxImmutableMemtables: 2,
    blockCacheBytes: 32 * 1024,
    levelBaseBytes: 16 * 1024,
    levelSizeMultiplier: 2,
    targetTableBytes: 4096,
    l0CompactionTrigger: 2,
    maxConcurrentCompactions: 2,
    minBlobBytes: 100,
    blobGarbagePercent: 1,
  },
  ops: 2500,
  reopenBlockBytes: [512, 1024, 4096],
  blobs: { reopenMinBlobBytes: [100, 100, 64, 160] },
  expect: { minFlushes: 10, minCompactions: 10, minMaxL0Tables: 2, minDeepestLevel: 1, pointReadsBy: 'point index' },
})

describe('model-based random operations', () => {
  scenarios.forEach((scenario, i) => {
    it(scenario.name, async () => {
      const seed = (BASE_SEED + Math.imul(i, 0x9e3779b9)) >>> 0
      const summary = await runModel(scenario, seed)
      // The run only means something if it really exercised flushes, compactions, reopen, snapshots and pipelining.
      const e = scenario.expect
      expect(summary.flushes).toBeGreaterThanOrEqual(e.minFlushes)
      expect(summary.compactions).toBeGreaterThanOrEqual(e.minCompactions)
      expect(summary.maxL0Tables).toBeGreaterThanOrEqual(e.minMaxL0Tables)
      expect(summary.deepestLevel).toBeGreaterThanOrEqual(e.minDeepestLevel)
      if (e.pointReadsBy === 'point index') {
        expect(summary.maxPointIndexedTables).toBeGreaterThan(0)
        expect(summary.maxFilterTables).toBe(0)
      } else {
        expect(summary.maxPointIndexedTables).toBe(0)
        expect(summary.maxFilterTables).toBeGreaterThan(0)
      }
      expect(summary.reopens).toBeGreaterThanOrEqual(2)
      expect(summary.snapshotChecks).toBeGreaterThan(30)
      expect(summary.pipelinedGets).toBeGreaterThan(50)
      if (scenario.blobs !== undefined) {
        // Blob files were really written and read, garbage arose, and GC moved values (so a run that silently kept every value inline fails).
        expect(summary.blobFilesWritten, 'blob files written by flushes').toBeGreaterThan(0)
        expect(summary.maxBlobFiles, 'blob files listed at once').toBeGreaterThan(1)
        expect(summary.blobValuesRead, 'values read from blob files').toBeGreaterThan(0)
        expect(summary.maxBlobGarbageBytes, 'blob garbage seen').toBeGreaterThan(0)
        expect(summary.blobGcCompactions, 'blob-gc compactions').toBeGreaterThan(0)
        expect(summary.blobBytesRelocated, 'bytes blob GC relocated').toBeGreaterThan(0)
        expect(summary.keysOnlyIterators).toBeGreaterThan(20)
      }
    })
  })
})

describe('iterator bounds given twice on one side', () => {
  /**
   * gt with gte (or lt with lte) on one side: every bound given must hold,
   * whichever direction the iterator walks. The random runs above give at most
   * one bound per side because the engine currently gets this wrong: forward
   * iteration seeks to gte and never checks gt again (reverse: lte and lt), so
   * forward and reverse return different entries for the same range.
   */
  it('applies all four bounds in both directions, over memtable and tables', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-model-'))
    tempDirs.push(dir)
    const db = await open(dir, { memtableBytes: 4096 })
    openDb = db
    const model: Model = new Map()
    const letters = 'abcdefghij'.split('')
    // Older versions go to tables, newer ones stay in the memtable, so both kinds of source are bounded.
    for (let round = 0; round < 3; round++) {
      for (const l of letters) {
        const k = `${l}${round % 2 === 0 ? '' : '0'}`
        const v = `${k}@${round}`.padEnd(200, '.')
        await db.put(k, v)
        model.set(k, bin(v))
      }
    }
    expect(db.stats().levels[0].tables).toBeGreaterThan(0)
    const ranges: IteratorOptions[] = [
      { gt: 'c', gte: 'a' },
      { gt: 'a', gte: 'c' },
      { lt: 'h', lte: 'e' },
      { lt: 'e', lte: 'h' },
      { gt: 'b', gte: 'b0', lt: 'g', lte: 'f0' },
      { gt: 'b0', gte: 'b', lt: 'f0', lte: 'g' },
    ]
    for (const base of ranges) {
      for (const reverse of [false, true]) {
        const o = { ...base, reverse }
        checkEntries(await collect(db.iterator(o)), expectedRange(model, o), `iterator ${describeRange(o)}`)
      }
    }
  })
})

describe('long scans that yield to the event loop', () => {
  /**
   * A scan yields to the event loop every 1024 entries, so writes issued
   * during a scan commit, fill memtables and flush while it is suspended. The
   * key space of the random runs is too small to reach that path.
   */
  it('see exactly the point in time of their creation while writes and flushes run in between', async () => {
    const rng = new Rng(BASE_SEED ^ 0x5eed)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-model-'))
    tempDirs.push(dir)
    const db = await open(dir, { memtableBytes: 16 * 1024, blockBytes: 1024 })
    openDb = db
    const model: Model = new Map()
    const keyOf = (i: number): Buffer => Buffer.concat([bin(`scan/${String(i % 1000).padStart(3, '0')}/`), Buffer.from([i >> 8, i & 0xff])])
    for (let i = 0; i < 4000; i += 100) {
      const ops = []
      for (let j = i; j < i + 100; j++) {
        const v = rng.bytes(rng.int(0, 64))
        ops.push({ type: 'put' as const, key: keyOf(j), value: v })
        model.set(str(keyOf(j)), v)
      }
      await db.batch(ops)
    }
    try {
      for (const reverse of [false, true]) {
        const expected = expectedRange(model, { reverse })
        const flushesBefore = db.stats().writes.flushes
        const inflight: Promise<void>[] = []
        const got: Array<[Buffer, Buffer]> = []
        for await (const entry of db.iterator({ reverse })) {
          got.push(entry)
          // Writes issued here run while the scan waits at its next yield.
          if (got.length % 20 === 0) {
            const k = keyOf(rng.int(0, 4999))
            if (rng.chance(0.3)) {
              inflight.push(db.delete(k))
              model.delete(str(k))
            } else {
              const v = rng.bytes(rng.int(100, 400))
              inflight.push(db.put(k, v))
              model.set(str(k), v)
            }
          }
        }
        await Promise.all(inflight)
        checkEntries(got, expected, `long ${reverse ? 'reverse' : 'forward'} scan`)
        // Writes really landed during the scan, and flushed tables too.
        expect(db.stats().writes.flushes).toBeGreaterThan(flushesBefore)
        checkEntries(await collect(db.iterator({ reverse })), expectedRange(model, { reverse }), 'scan after the writes')
      }
    } catch (err) {
      throw new Error(`long scan test failed with seed ${BASE_SEED} (replay: STRATA_SEED=${BASE_SEED})\n${String(err)}`, { cause: err })
    }
  })
})

describe('manual compaction keeps the newest version on top', () => {
  /**
   * Reads look in L0 before L1, so an L0 compaction that moves a table into
   * L1 must also take every older L0 table overlapping it; otherwise an older
   * version left in L0 hides the newer one just moved down. The random runs
   * found this through compactRange (which takes only the L0 tables
   * overlapping the requested range); this is the minimal case.
   */
  it('compactRange of one range does not let an older L0 table shadow newer data', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-model-'))
    tempDirs.push(dir)
    // First put something in L1, so that compactRange has a level to compact into.
    let db = await open(dir, { l0CompactionTrigger: 1 })
    openDb = db
    await db.put('z', 'base')
    await db.compactRange()
    await db.close()
    db = await open(dir, { autoCompaction: false })
    openDb = db
    expect(db.stats().levels[0].tables).toBe(0)
    expect(db.stats().levels[1].tables).toBe(1)

    await db.put('a', 'old')
    await db.put('b', 'x')
    await db.compactRange('zz', 'zz') // flushes table [a..b] into L0; nothing overlaps 'zz'
    await db.put('a', 'new')
    await db.delete('b')
    await db.put('y', 'y')
    await db.compactRange('x', 'y') // flushes table [a..y] into L0, then compacts the range [x, y]
    expect((await db.get('a'))?.toString()).toBe('new')
    expect(await db.get('b')).toBeUndefined()
    checkEntries(await collect(db.iterator()), [['a', bin('new')], ['y', bin('y')], ['z', bin('base')]], 'scan after compactRange')
  })
})
