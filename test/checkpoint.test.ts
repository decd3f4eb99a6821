/**
 * Checkpoints (`db.checkpoint(dir)`, src/engine/checkpoint.ts), on real files
 * and real processes:
 *
 *   1. while 8 writers put, delete and batch on overlapping keys into a
 *      database with a 64 KiB memtable (WAL switches, flushes and compactions
 *      all the time), checkpoints are taken (one pair of them concurrently),
 *      opened at once (the source is still written) and read completely; each
 *      must hold exactly the source's state at its `sequence`, which the change
 *      stream (`changes({ since: 0 })`, WALs retained) tells afterwards, values
 *      and versions. Writing into a checkpoint never changes the source (byte
 *      for byte) and writing into the source never changes a checkpoint.
 *      With a 64 KiB memtable the active WAL is copied in one chunk, so the
 *      call never yields to the event loop: a 3 MiB variant, and a test that
 *      issues writes (growing and switching the active WAL) and a flush right
 *      after the call, cover what happens while a checkpoint is under way;
 *   2. a child process (fixtures/checkpoint-writer.mjs) writes and takes
 *      checkpoints in a loop; it is SIGKILLed at random moments, most aimed
 *      inside a checkpoint. After each kill the source holds every acknowledged
 *      write, and every checkpoint directory either is refused as incomplete
 *      (STRATA_NOT_A_DATABASE, CHECKPOINT-PARTIAL present, nothing changed) or
 *      opens holding exactly the source's history at its `sequence`, with every
 *      write acknowledged before its call started and none issued after it
 *      resolved;
 *   3. argument, existing-directory and closed-database errors;
 *   4. tables and complete WALs are hard links (same inode), only the active
 *      WAL's prefix and the marker are copied; the time on ~50 MB is logged.
 *      Into another file system (/dev/shm) everything is copied, in chunks
 *      between which flushes and compactions install;
 *   5. a checkpoint does not write the source directory (every file hashed).
 *
 * Set CHECKPOINT_SEED to replay the random choices (timing still varies) and
 * CHECKPOINT_KEEP=1 to keep the directories.
 */
import { spawn } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { open, type ChangeBatch, type CheckpointResult, type Database, type OpenOptions } from '../src/index.js'
import { keyName, makeRng, parseValue, type JournalOp } from './fixtures/crash-format.mjs'

const WRITER_SCRIPT = fileURLToPath(new URL('./fixtures/checkpoint-writer.mjs', import.meta.url))
const PARTIAL = 'CHECKPOINT-PARTIAL'
const SEED = process.env.CHECKPOINT_SEED ? Number(process.env.CHECKPOINT_SEED) : Math.floor(Math.random() * 2 ** 31)
console.log(`checkpoint tests: CHECKPOINT_SEED=${SEED} replays the random choices`)

const roots: string[] = []
function tempRoot(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  roots.push(dir)
  return dir
}
afterAll(() => {
  for (const r of roots) {
    if (process.env.CHECKPOINT_KEEP) console.log(`kept ${r}`)
    else fs.rmSync(r, { recursive: true, force: true })
  }
})

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function errorOf(p: Promise<unknown>): Promise<{ code?: string; message: string } | undefined> {
  try {
    await p
    return undefined
  } catch (err) {
    return err as { code?: string; message: string }
  }
}

/** Name → sha256 of every file of `dir` but LOCK. */
function hashDir(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of fs.readdirSync(dir).sort()) {
    if (name === 'LOCK') continue
    out[name] = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, name))).digest('hex')
  }
  return out
}

/**
 * Waits until no frozen memtable waits for its flush and the names in `dir`
 * stayed the same for 100 ms: after a flush installs, the WALs it made
 * obsolete are unlinked on the thread pool, a little later.
 */
async function backgroundSettled(db: Database, dir: string): Promise<void> {
  const deadline = Date.now() + 20_000
  let names = ''
  let sameSince = Date.now()
  for (;;) {
    const now = db.stats().memtable.immutableCount > 0 ? '' : fs.readdirSync(dir).sort().join(',')
    if (now !== names) {
      names = now
      sameSince = Date.now()
    } else if (now !== '' && Date.now() - sameSince >= 100) {
      return
    }
    if (Date.now() > deadline) throw new Error(`${dir}: background work did not settle within 20 s`)
    await sleep(20)
  }
}

/** Name → size of every entry of `dir`. */
function listing(dir: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const name of fs.readdirSync(dir).sort()) out[name] = fs.statSync(path.join(dir, name)).size
  return out
}

/** Errors are collected, and reported at most this many at a time. */
function report(errors: string[], label: string): void {
  if (errors.length > 0) throw new Error(`${label}: ${errors.length} problem(s):\n  ${errors.slice(0, 25).join('\n  ')}`)
}

// ---------------------------------------------------------------------------
// What a database holds, read every way there is.

interface View {
  lastSequence: number
  forward: Array<[string, Buffer]>
  reverse: Array<[string, Buffer]>
  /** getSync of every key of the universe (undefined: absent). */
  sync: Map<string, Buffer | undefined>
  /** getEntry of every key of the universe. */
  entries: Map<string, { value: Buffer; version: number } | undefined>
}

/**
 * Reads everything: a forward scan, getEntry of every key of the universe and,
 * unless `quick`, a reverse scan and getSync of every key (then `reverse` is
 * the forward scan reversed and `sync` the getEntry values, so comparisons
 * pass on them).
 */
async function readView(db: Database, keys: readonly string[], quick = false): Promise<View> {
  const forward: Array<[string, Buffer]> = []
  for await (const [k, v] of db.iterator()) forward.push([k.toString('latin1'), v])
  const reverse: Array<[string, Buffer]> = []
  if (quick) reverse.push(...[...forward].reverse())
  else for await (const [k, v] of db.iterator({ reverse: true })) reverse.push([k.toString('latin1'), v])
  const sync = new Map<string, Buffer | undefined>()
  const entries = new Map<string, { value: Buffer; version: number } | undefined>()
  for (const k of keys) {
    const entry = await db.getEntry(k)
    entries.set(k, entry)
    sync.set(k, quick ? entry?.value : db.getSync(k))
  }
  return { lastSequence: db.stats().lastSequence, forward, reverse, sync, entries }
}

interface Versioned {
  value: Buffer
  version: number
}

/** Compares a view with the expected state (key → value and version); appends differences to `errors`. */
function compareView(view: View, expected: Map<string, Versioned>, keys: readonly string[], label: string, errors: string[]): void {
  const want = [...expected.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const got = view.forward
  if (got.map(([k]) => k).join('\n') !== want.map(([k]) => k).join('\n')) {
    const gotKeys = new Set(got.map(([k]) => k))
    const missing = want.filter(([k]) => !gotKeys.has(k)).map(([k]) => k)
    const extra = got.filter(([k]) => !expected.has(k)).map(([k]) => k)
    errors.push(`${label}: forward scan has ${got.length} keys, expected ${want.length}; missing [${missing.slice(0, 8).join(', ')}] extra [${extra.slice(0, 8).join(', ')}]`)
  }
  for (const [k, v] of got) {
    const e = expected.get(k)
    if (e !== undefined && !e.value.equals(v)) errors.push(`${label}: scan ${k} = ${show(v)}, expected ${show(e.value)} (version ${e.version})`)
  }
  const backwards = [...view.reverse].reverse()
  if (backwards.length !== got.length || backwards.some(([k, v], i) => k !== got[i][0] || !v.equals(got[i][1]))) {
    errors.push(`${label}: the reverse scan (${view.reverse.length} keys) is not the forward scan (${got.length}) backwards`)
  }
  for (const k of keys) {
    const e = expected.get(k)
    const s = view.sync.get(k)
    if ((s === undefined) !== (e === undefined) || (s && e && !s.equals(e.value))) {
      errors.push(`${label}: getSync(${k}) = ${show(s)}, expected ${show(e?.value)}`)
    }
    const entry = view.entries.get(k)
    if ((entry === undefined) !== (e === undefined) || (entry && e && (entry.version !== e.version || !entry.value.equals(e.value)))) {
      errors.push(`${label}: getEntry(${k}) = ${entry ? `${show(entry.value)}@${entry.version}` : 'absent'}, expected ${e ? `${show(e.value)}@${e.version}` : 'absent'}`)
    }
  }
}

function show(v: Buffer | undefined): string {
  if (v === undefined) return 'absent'
  const head = v.subarray(0, 24).toString('latin1').replace(/[^\x20-\x7e]/g, '.')
  return `"${head}"(${v.length}B)`
}

/** Number of the newest WAL file of `dir` (the active one). */
function newestWal(dir: string): number {
  let newest = 0
  for (const name of fs.readdirSync(dir)) {
    const m = /^(\d+)\.log$/.exec(name)
    if (m) newest = Math.max(newest, Number(m[1]))
  }
  return newest
}

/** Every batch after `since`, checked to be gap-free: versions since+1, since+2, ... */
async function readHistory(db: Database, since: number, errors: string[], label: string): Promise<ChangeBatch[]> {
  const batches: ChangeBatch[] = []
  let next = since + 1
  for await (const b of db.changes({ since })) {
    for (const op of b.ops) {
      if (op.version !== next) errors.push(`${label}: change stream gives version ${op.version}, expected ${next}`)
      next = op.version + 1
    }
    if (b.sequence !== b.ops[b.ops.length - 1]?.version) errors.push(`${label}: batch sequence ${b.sequence} is not its last op's version`)
    batches.push(b)
  }
  return batches
}

/** Applies the batches of `history` up to and including `sequence` to `state`, from index `from`; returns the next index. */
function replay(state: Map<string, Versioned>, history: ChangeBatch[], from: number, sequence: number, errors: string[], label: string): number {
  let i = from
  for (; i < history.length && history[i].sequence <= sequence; i++) {
    for (const op of history[i].ops) {
      if (op.type === 'put') state.set(op.key.toString('latin1'), { value: op.value!, version: op.version })
      else state.delete(op.key.toString('latin1'))
    }
  }
  if (i < history.length && history[i].ops[0].version <= sequence) {
    errors.push(`${label}: sequence ${sequence} falls inside batch ${history[i].ops[0].version}..${history[i].sequence}`)
  }
  return i
}

// ---------------------------------------------------------------------------
// 1. Checkpoints under 8 concurrent writers.

const UNIVERSE = Array.from({ length: 300 }, (_, i) => `key-${String(i).padStart(4, '0')}`)

const SMALL_OPTIONS: OpenOptions = {
  memtableBytes: 64 * 1024,
  targetTableBytes: 64 * 1024,
  levelBaseBytes: 256 * 1024,
  levelSizeMultiplier: 4,
  // The change stream tells the expected state afterwards: keep every WAL.
  walRetentionMs: 3_600_000,
  walRetentionBytes: 2 ** 40,
}

function writerValue(rng: () => number, writer: number, n: number): Buffer {
  const head = `w${writer}.${n}|`
  const length = head.length + Math.floor(rng() * rng() * 1200)
  const buf = Buffer.alloc(length, 0x61 + (n % 26))
  buf.write(head, 0, 'latin1')
  return buf
}

async function runWriter(db: Database, writer: number, seed: number, stop: { now: boolean }, counts: { ops: number }): Promise<void> {
  const rng = makeRng(seed * 31 + writer)
  const key = (): string => UNIVERSE[Math.floor(rng() * UNIVERSE.length)]
  for (let n = 0; !stop.now; n++) {
    const r = rng()
    const options = rng() < 0.03 ? { sync: true } : undefined
    if (r < 0.5) await db.put(key(), writerValue(rng, writer, n), options)
    else if (r < 0.65) await db.delete(key(), options)
    else {
      const keys = new Set<string>()
      const size = 2 + Math.floor(rng() * 6)
      while (keys.size < size) keys.add(key())
      await db.batch(
        [...keys].map((k, i) => (rng() < 0.75 ? { type: 'put' as const, key: k, value: writerValue(rng, writer, n * 10 + i) } : { type: 'del' as const, key: k })),
        options,
      )
    }
    counts.ops++
  }
}

interface Taken {
  dir: string
  result: CheckpointResult
  view: View
  ms: number
}

async function concurrentWriters(syncWrites: boolean, memtableBytes = 64 * 1024): Promise<void> {
  const label = `8 writers, syncWrites ${syncWrites}, memtableBytes ${memtableBytes}`
  const root = tempRoot('strata-cp-writers-')
  const source = path.join(root, 'source')
  const options = { ...SMALL_OPTIONS, syncWrites, memtableBytes }
  const rng = makeRng(SEED + (syncWrites ? 1 : 0) + memtableBytes)
  const db = await open(source, options)
  const stop = { now: false }
  const counts = { ops: 0 }
  const errors: string[] = []
  const writers = Array.from({ length: 8 }, (_, w) => runWriter(db, w, SEED + (syncWrites ? 100 : 0) + memtableBytes, stop, counts))
  const taken: Taken[] = []
  const during = { flushes: 0, compactions: 0, writes: 0, walSwitches: 0 }
  try {
    for (let round = 0; round < 5; round++) {
      await sleep(120 + rng() * 250)
      // Round 2 takes two checkpoints at once.
      const dirs = round === 2 ? [path.join(root, `cp-${round}a`), path.join(root, `cp-${round}b`)] : [path.join(root, `cp-${round}`)]
      const s0 = db.stats()
      const wal0 = newestWal(source)
      const t0 = performance.now()
      const results = await Promise.all(dirs.map((d) => db.checkpoint(d)))
      const ms = performance.now() - t0
      const s1 = db.stats()
      if (s1.writes.flushes > s0.writes.flushes) during.flushes++
      if (s1.compaction.compactions > s0.compaction.compactions) during.compactions++
      if (s1.writes.writes > s0.writes.writes) during.writes++
      if (newestWal(source) > wal0) during.walSwitches++
      for (const [i, dir] of dirs.entries()) {
        const result = results[i]
        const names = fs.readdirSync(dir)
        if (names.includes(PARTIAL)) errors.push(`${dir}: ${PARTIAL} still there after the checkpoint resolved`)
        if (result.files !== names.length) errors.push(`${dir}: result.files ${result.files}, the directory has ${names.length}`)
        const bytes = names.reduce((n, name) => n + fs.statSync(path.join(dir, name)).size, 0)
        if (result.bytes !== bytes) errors.push(`${dir}: result.bytes ${result.bytes}, the files hold ${bytes}`)
        if (result.copiedBytes > result.bytes) errors.push(`${dir}: copiedBytes ${result.copiedBytes} > bytes ${result.bytes}`)
        // Opened and read while the source is still written.
        const cp = await open(dir, { ...options, createIfMissing: false })
        try {
          const view = await readView(cp, UNIVERSE)
          if (view.lastSequence !== result.sequence) errors.push(`${dir}: opens at lastSequence ${view.lastSequence}, checkpoint said ${result.sequence}`)
          taken.push({ dir, result, view, ms })
          // Writes into the checkpoint (the source must not see them: checked at the end).
          for (let j = 0; j < 40; j++) await cp.put(UNIVERSE[j * 7], `written into ${path.basename(dir)}`)
          await cp.delete(UNIVERSE[1])
        } finally {
          await cp.close()
        }
      }
    }
  } finally {
    stop.now = true
    await Promise.all(writers)
  }
  report(errors, label)

  // The expected states, from the change stream.
  const history = await readHistory(db, 0, errors, label)
  const last = db.stats().lastSequence
  const lastInHistory = history.length > 0 ? history[history.length - 1].sequence : 0
  if (lastInHistory !== last) errors.push(`${label}: change stream ends at ${lastInHistory}, lastSequence is ${last}`)
  const finalModel = new Map<string, Versioned>()
  replay(finalModel, history, 0, Infinity, errors, label)
  // The model is right: it matches the source itself.
  compareView(await readView(db, UNIVERSE), finalModel, UNIVERSE, `${label}: source at the end`, errors)
  report(errors, label)

  const state = new Map<string, Versioned>()
  let at = 0
  for (const t of [...taken].sort((a, b) => a.result.sequence - b.result.sequence)) {
    at = replay(state, history, at, t.result.sequence, errors, t.dir)
    compareView(t.view, state, UNIVERSE, `${path.basename(t.dir)} (sequence ${t.result.sequence})`, errors)
  }
  report(errors, label)
  const stats = db.stats()
  console.log(
    `${label}: ${counts.ops} writes (sequence ${last}), ${taken.length} checkpoints at sequences ${taken.map((t) => t.result.sequence).join(', ')}; ` +
      `checkpoint ms ${taken.map((t) => t.ms.toFixed(1)).join(', ')}; files ${taken.map((t) => t.result.files).join(', ')}; ` +
      `copied bytes ${taken.map((t) => t.result.copiedBytes).join(', ')}; during the 5 checkpoint calls: writes resolved in ${during.writes}, the WAL switched in ${during.walSwitches}, a flush finished in ${during.flushes}, a compaction in ${during.compactions}; ` +
      `${stats.writes.flushes} flushes, ${stats.compaction.compactions} compactions; tables per level at the end ${stats.levels.map((l) => l.tables).join('/')}`,
  )
  expect(new Set(taken.map((t) => t.result.sequence)).size, 'checkpoints at distinct sequences').toBeGreaterThanOrEqual(4)

  // Independence: a checkpoint of the idle source, written into heavily; the source is unchanged byte for byte.
  const finalDir = path.join(root, 'cp-final')
  const finalResult = await db.checkpoint(finalDir)
  expect(finalResult.sequence).toBe(last)
  await db.close()
  const sourceBefore = hashDir(source)
  const cpModel = new Map<string, Versioned>(finalModel)
  const cp = await open(finalDir, { ...options, createIfMissing: false })
  for (let i = 0; i < 3000; i += 50) {
    await cp.batch(
      Array.from({ length: 50 }, (_, j) => {
        const k = UNIVERSE[((i + j) * 13) % UNIVERSE.length]
        return j % 5 === 4 ? { type: 'del' as const, key: k } : { type: 'put' as const, key: k, value: Buffer.alloc(300 + j * 4, `cp${i + j}|`) }
      }),
    )
  }
  // Flush and compact everything: the tables and WALs linked from the source are replaced and deleted in the checkpoint.
  await cp.compactRange()
  const cpView = await readView(cp, UNIVERSE)
  await cp.close()
  expect(hashDir(source), 'writing into the checkpoint changed the source directory').toEqual(sourceBefore)
  cpModel.clear()
  for (const [k, e] of cpView.entries) if (e) cpModel.set(k, e)

  const again = await open(source, options)
  try {
    compareView(await readView(again, UNIVERSE), finalModel, UNIVERSE, `${label}: source reopened after writes into checkpoints`, errors)
    report(errors, label)
    for (let i = 0; i < 2000; i += 50) {
      await again.batch(Array.from({ length: 50 }, (_, j) => ({ type: 'put' as const, key: UNIVERSE[((i + j) * 11) % UNIVERSE.length], value: Buffer.alloc(200, `src${i + j}|`) })))
    }
    await again.compactRange()
  } finally {
    await again.close()
  }
  const cpAgain = await open(finalDir, { ...options, createIfMissing: false })
  try {
    compareView(await readView(cpAgain, UNIVERSE), cpModel, UNIVERSE, `${label}: checkpoint reopened after writes into the source`, errors)
  } finally {
    await cpAgain.close()
  }
  report(errors, label)
}

describe('checkpoint under concurrent writers', () => {
  it('each checkpoint holds exactly the state at its sequence; checkpoint and source are independent (syncWrites false)', async () => {
    await concurrentWriters(false)
  })

  it('each checkpoint holds exactly the state at its sequence; checkpoint and source are independent (syncWrites true)', async () => {
    await concurrentWriters(true)
  })

  // An active WAL over 1 MiB is copied in chunks with turns of the event loop in between: only then can
  // flushes and compactions install, and WALs switch, while a checkpoint of this process runs.
  it('each checkpoint holds exactly the state at its sequence (a 3 MiB memtable: the active WAL copy yields)', async () => {
    await concurrentWriters(false, 3 * 1024 * 1024)
  })
})

describe('checkpoint with writes issued during the call', () => {
  it('holds none of the writes issued after the call, while they grow and switch the active WAL under its copy', async () => {
    const root = tempRoot('strata-cp-during-')
    const source = path.join(root, 'source')
    const db = await open(source, { memtableBytes: 2 * 1024 * 1024, maxImmutableMemtables: 2, autoCompaction: false })
    const keys = Array.from({ length: 2000 }, (_, i) => `key-${String(i).padStart(5, '0')}`)
    const rounds: string[] = []
    try {
      for (let round = 0; round < 4; round++) {
        // Some tables, then an active WAL of ~1.5 MiB (its copy takes two chunks, with a turn of the event loop between).
        for (let i = 0; i < 3000; i++) await db.put(keys[(i * 7 + round) % keys.length], Buffer.alloc(700, `r${round}.${i}|`))
        for (let i = 0; i < 200 && db.stats().memtable.immutableCount > 0; i++) await sleep(10)
        for (let i = 0; i < 1500 && db.stats().memtable.activeBytes < 1.5 * 1024 * 1024; i++) await db.put(keys[i % keys.length], Buffer.alloc(1000, `a${round}.${i}|`))
        const before = db.snapshot()
        const expected = new Map<string, Versioned>()
        for (const k of keys) {
          const e = await before.getEntry(k)
          if (e) expected.set(k, e)
        }
        const wal0 = newestWal(source)
        const dir = path.join(root, `cp-${round}`)
        const events: string[] = []
        const p = db.checkpoint(dir).then((r) => {
          events.push(`resolved (WAL ${newestWal(source) > wal0 ? 'switched' : 'not switched'})`)
          return r
        })
        // Issued after the call: overwrites and deletes of every key, enough to fill the memtable (a WAL switch), and a forced flush.
        const writes: Promise<void>[] = []
        for (let i = 0; i < keys.length; i++) {
          writes.push(i % 10 === 9 ? db.delete(keys[i]) : db.put(keys[i], Buffer.alloc(1200, `late${round}.${i}|`)))
        }
        writes[writes.length - 1].then(() => events.push('late writes resolved'))
        const flush = db.compactRange(keys[0], keys[0]).then(() => events.push('flush done'))
        const result = await p
        await Promise.all([...writes, flush])
        expect(result.sequence, 'the checkpoint is at the sequence of the call').toBe(before.sequence)
        before.release()
        const cp = await open(dir, { createIfMissing: false })
        try {
          const errors: string[] = []
          compareView(await readView(cp, keys), expected, keys, `cp-${round}`, errors)
          report(errors, `round ${round}`)
        } finally {
          await cp.close()
        }
        rounds.push(`${events.join(' < ')}; copied ${result.copiedBytes} B`)
      }
    } finally {
      await db.close()
    }
    console.log(`writes issued during the call, order of events per round:\n  ${rounds.join('\n  ')}`)
  })
})

// ---------------------------------------------------------------------------
// 2. SIGKILL during checkpoints.

const KILL_WRITERS = 8
const KILL_KEYS_PER_WRITER = 150
const KILL_KEYS: string[] = []
for (let w = 0; w < KILL_WRITERS; w++) for (let s = 0; s < KILL_KEYS_PER_WRITER; s++) KILL_KEYS.push(keyName(w, s))
KILL_KEYS.sort()
const KILL_OPTIONS: OpenOptions = {
  // A large active WAL makes the copy of its prefix (and its fsync) take a few ms.
  memtableBytes: 2 * 1024 * 1024,
  targetTableBytes: 1024 * 1024,
  levelBaseBytes: 4 * 1024 * 1024,
  levelSizeMultiplier: 4,
  // The parent reads the history of each round from the change stream after the kill.
  walRetentionMs: 120_000,
  walRetentionBytes: 512 * 1024 * 1024,
}
/**
 * Rounds: up to MAX_ROUNDS while within ROUND_BUDGET_MS; at least MIN_ROUNDS unless
 * HARD_BUDGET_MS is spent first (a loaded machine), never fewer than FLOOR_ROUNDS.
 */
const MAX_ROUNDS = 25
const MIN_ROUNDS = 15
const FLOOR_ROUNDS = 6
const ROUND_BUDGET_MS = 28_000
const HARD_BUDGET_MS = 38_000

/** What a key holds in the journal's terms: the op whose value it has, or null when absent. */
type KeyState = { opId: string; length: number } | null

interface Journal {
  /** Per writer: ops in issue order, the journal line of each issue and of each ack (-1: not acked). */
  writers: Array<{ ops: JournalOp[]; issuedAt: number[]; ackedAt: number[] }>
  checkpoints: Map<number, { dir: string; startLine: number; done?: { sequence: number; ms: number; line: number; flushes: number; compactions: number; walSwitches: number; writes: number } }>
}

function readKillJournal(file: string): Journal {
  const j: Journal = { writers: Array.from({ length: KILL_WRITERS }, () => ({ ops: [], issuedAt: [], ackedAt: [] })), checkpoints: new Map() }
  const lines = fs.readFileSync(file, 'utf8').split('\n')
  lines.pop() // cut by the kill, or empty
  for (const [at, line] of lines.entries()) {
    let m = /^([IA]) (\d+) (\d+)(?: (.*))?$/.exec(line)
    if (m) {
      const w = j.writers[Number(m[2])]
      const index = Number(m[3])
      if (m[1] === 'I') {
        if (index !== w.ops.length) throw new Error(`journal: writer ${m[2]} issued op ${index} after ${w.ops.length - 1}`)
        w.ops.push(JSON.parse(m[4]) as JournalOp)
        w.issuedAt.push(at)
        w.ackedAt.push(-1)
      } else {
        if (index !== w.ops.length - 1) throw new Error(`journal: writer ${m[2]} acked op ${index}, last issued ${w.ops.length - 1}`)
        w.ackedAt[index] = at
      }
      continue
    }
    m = /^C (\d+) (.*)$/.exec(line)
    if (m) {
      j.checkpoints.set(Number(m[1]), { dir: m[2], startLine: at })
      continue
    }
    m = /^D (\d+) (\d+) ([\d.]+) (\d+) (\d+) (\d+) (\d+)$/.exec(line)
    if (m) {
      const c = j.checkpoints.get(Number(m[1]))
      if (!c) throw new Error(`journal: checkpoint ${m[1]} done but never started`)
      c.done = { sequence: Number(m[2]), ms: Number(m[3]), line: at, flushes: Number(m[4]), compactions: Number(m[5]), walSwitches: Number(m[6]), writes: Number(m[7]) }
      continue
    }
    throw new Error(`bad journal line: ${line}`)
  }
  return j
}

function applyJournalOp(state: Map<string, KeyState>, op: JournalOp): string[] {
  if (op.t === 'put') {
    state.set(op.k, { opId: op.id, length: op.n })
    return [op.k]
  }
  if (op.t === 'del') {
    state.set(op.k, null)
    return [op.k]
  }
  if (op.t === 'rdel') throw new Error('the checkpoint writer issues no range deletes')
  const keyOps = op.ops.map((o) => {
    if (o.t === 'rdel') throw new Error('the checkpoint writer issues no range deletes')
    return o
  })
  for (const o of keyOps) state.set(o.k, o.t === 'put' ? { opId: op.id, length: o.n } : null)
  return keyOps.map((o) => o.k)
}

function sameKeyState(a: KeyState | undefined, b: KeyState | undefined): boolean {
  if (!a || !b) return !a && !b
  return a.opId === b.opId && a.length === b.length
}

function showKeyState(s: KeyState | undefined): string {
  return s ? `${s.opId}/${s.length}B` : 'absent'
}

/** Decodes a view of the kill test's key space into key states (every value must be intact and under its own key). */
function decodeView(view: View, label: string, errors: string[]): Map<string, KeyState> {
  const out = new Map<string, KeyState>()
  for (const k of KILL_KEYS) out.set(k, null)
  const universe = new Set(KILL_KEYS)
  for (const [k, v] of view.forward) {
    if (!universe.has(k)) {
      errors.push(`${label}: unknown key ${JSON.stringify(k)}`)
      continue
    }
    try {
      out.set(k, parseValue(k, v))
    } catch (err) {
      errors.push(`${label}: ${(err as Error).message}`)
      out.set(k, { opId: 'CORRUPT', length: v.length })
    }
  }
  return out
}

/**
 * Per writer, the observed keys must hold the state after its first j ops
 * (from `start`) for some j in [lo, hi]. Returns the j found per writer
 * (undefined where none matched: then an error was added).
 */
function matchPrefix(
  start: Map<string, KeyState>,
  journal: Journal,
  observed: Map<string, KeyState>,
  bounds: (w: number) => [number, number],
  label: string,
  errors: string[],
): Array<number | undefined> {
  return journal.writers.map((wj, w) => {
    const keys = Array.from({ length: KILL_KEYS_PER_WRITER }, (_, s) => keyName(w, s))
    const [lo, hi] = bounds(w)
    const state = new Map<string, KeyState>(keys.map((k) => [k, start.get(k) ?? null]))
    for (let i = 0; i < lo; i++) applyJournalOp(state, wj.ops[i])
    const mismatched = new Set(keys.filter((k) => !sameKeyState(state.get(k), observed.get(k))))
    const firstMismatch = [...mismatched].slice(0, 4)
    for (let j = lo; ; j++) {
      if (mismatched.size === 0) return j
      if (j >= hi) break
      for (const k of applyJournalOp(state, wj.ops[j])) {
        if (sameKeyState(state.get(k), observed.get(k))) mismatched.delete(k)
        else mismatched.add(k)
      }
    }
    const detail = firstMismatch.map((k) => `${k} holds ${showKeyState(observed.get(k))}`).join('; ')
    errors.push(`${label}: writer ${w}'s keys are not the state after any of its ops ${lo}..${hi} (of ${wj.ops.length}); after op ${lo}: ${detail}`)
    return undefined
  })
}

interface ChildRun {
  stderr: string
  cpMs: number[]
  /** The child could not load dist/ (rebuilt meanwhile by a concurrent `npm run build`): run it again. */
  loadFailed?: boolean
}

type Aim = { after: 'ready'; delayMs: number } | { after: 'cp-start'; checkpoint: number; delayMs: number }

function runKillChild(config: Record<string, unknown>, aim: Aim): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER_SCRIPT, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] })
    const run: ChildRun = { stderr: '', cpMs: [] }
    let pending = ''
    let armed = false
    let opening = false
    const arm = (): void => {
      if (armed) return
      armed = true
      setTimeout(() => child.kill('SIGKILL'), aim.delayMs)
    }
    child.stderr.setEncoding('utf8').on('data', (d: string) => (run.stderr += d))
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      pending += d
      let nl: number
      while ((nl = pending.indexOf('\n')) >= 0) {
        const [event, a, b] = pending.slice(0, nl).split(' ')
        pending = pending.slice(nl + 1)
        if (event === 'opening') opening = true
        if (event === 'cp-end') run.cpMs.push(Number(b))
        if (aim.after === 'ready' && event === 'ready') arm()
        if (aim.after === 'cp-start' && event === 'cp-start' && Number(a) === aim.checkpoint) arm()
      }
    })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (signal === 'SIGKILL') resolve(run)
      else if (!opening && /SyntaxError|ERR_MODULE_NOT_FOUND|Cannot find module/.test(run.stderr)) resolve({ ...run, loadFailed: true })
      else reject(new Error(`checkpoint-writer exited with code ${code} signal ${signal} instead of being killed:\n${run.stderr}`))
    })
  })
}

async function killCycles(): Promise<void> {
  const rng = makeRng(SEED + 7)
  const root = tempRoot('strata-cp-kill-')
  const source = path.join(root, 'source')
  const label = `SIGKILL during checkpoints (seed ${SEED})`
  /** The source's state after the last verified round: journal terms and with versions. */
  let model = new Map<string, KeyState>(KILL_KEYS.map((k) => [k, null]))
  let versioned = new Map<string, Versioned>()
  let modelSequence = 0
  let medianCpMs = 30
  const totals = { rounds: 0, aimed: 0, checkpoints: 0, complete: 0, partial: 0, killsInCheckpoint: 0, completedUnjournaled: 0, notCreated: 0, withFlush: 0, withCompaction: 0, withWalSwitch: 0, withWrites: 0, acked: 0, verifyMs: 0, childMs: 0 }
  const cpMsAll: number[] = []
  let loadRetries = 0
  const started = Date.now()
  const more = (round: number): boolean => {
    const elapsed = Date.now() - started
    if (round < FLOOR_ROUNDS) return true
    if (round < MIN_ROUNDS) return elapsed < HARD_BUDGET_MS
    return round < MAX_ROUNDS && elapsed < ROUND_BUDGET_MS
  }
  for (let round = 0; more(round); round++) {
    const journalFile = path.join(root, `journal-${round}.txt`)
    // Most kills are aimed inside a checkpoint (anywhere in its measured duration), every fourth at a random moment.
    const aimAtCheckpoint = round % 4 !== 3
    const aim: Aim = aimAtCheckpoint
      ? { after: 'cp-start', checkpoint: Math.floor(rng() * 3), delayMs: rng() * 1.2 * medianCpMs }
      : { after: 'ready', delayMs: 50 + rng() * 450 }
    const childStart = Date.now()
    const run = await runKillChild(
      {
        dir: source,
        cpRoot: root,
        cpPrefix: `cp-${round}`,
        journal: journalFile,
        round,
        seed: Math.floor(rng() * 2 ** 31),
        writers: KILL_WRITERS,
        keysPerWriter: KILL_KEYS_PER_WRITER,
        options: KILL_OPTIONS,
        minValueBytes: 100,
        maxValueBytes: 2000,
        cpPauseMs: 30,
        maxRunMs: 20_000,
      },
      aim,
    )
    totals.childMs += Date.now() - childStart
    if (run.loadFailed) {
      if (++loadRetries > 5) throw new Error(`checkpoint-writer cannot load dist/:\n${run.stderr}`)
      console.log(`${label}: round ${round}: the child could not load dist/ (being rebuilt?), running the round again:\n${run.stderr.split('\n').slice(0, 6).join('\n')}`)
      fs.rmSync(journalFile, { force: true })
      await sleep(2000)
      round--
      continue
    }
    cpMsAll.push(...run.cpMs)
    if (run.cpMs.length > 0) {
      const sorted = [...cpMsAll].sort((a, b) => a - b)
      medianCpMs = Math.max(3, sorted[Math.floor(sorted.length / 2)])
    }
    const verifyStart = Date.now()
    totals.rounds++
    if (aimAtCheckpoint) totals.aimed++
    const where = `${label}, round ${round} (killed ${aim.delayMs.toFixed(1)} ms after ${aim.after === 'ready' ? 'ready' : `the start of checkpoint ${aim.checkpoint}`})`
    const journal = readKillJournal(journalFile)
    const errors: string[] = []

    // The checkpoints wrote nothing into the source directory (only the database's own files are there).
    const strays = fs.readdirSync(source).filter((n) => !/^(\d{6,}\.(sst|log)|MANIFEST-\d{6,}|CURRENT|LOCK|STRATADB)$/.test(n))
    if (strays.length > 0) errors.push(`${where}: unexpected files in the source directory: ${strays.join(', ')}`)

    // (a) The source: every acknowledged write, at most the in-flight one per writer beyond; exactly its change history.
    const db = await open(source, { ...KILL_OPTIONS, createIfMissing: false })
    let history: ChangeBatch[]
    let sourceView: View
    try {
      sourceView = await readView(db, KILL_KEYS, true)
      history = await readHistory(db, modelSequence, errors, `${where}: source`)
    } finally {
      await db.close()
    }
    const observed = decodeView(sourceView, `${where}: source`, errors)
    matchPrefix(model, journal, observed, (w) => {
      const wj = journal.writers[w]
      const n = wj.ops.length
      return n > 0 && wj.ackedAt[n - 1] < 0 ? [n - 1, n] : [n, n]
    }, `${where}: source`, errors)
    const roundStart = versioned
    const sourceModel = new Map(roundStart)
    replay(sourceModel, history, 0, Infinity, errors, `${where}: source`)
    compareView(sourceView, sourceModel, KILL_KEYS, `${where}: source vs. its change history`, errors)
    report(errors, where)

    // (b) Every checkpoint directory: refused as incomplete, or exactly the history at its sequence.
    const complete: Array<{ n: number; view: View }> = []
    for (const [n, c] of [...journal.checkpoints.entries()].sort((a, b) => a[0] - b[0])) {
      totals.checkpoints++
      if (!fs.existsSync(c.dir)) {
        if (c.done) errors.push(`${where}: checkpoint ${n} resolved but ${c.dir} does not exist`)
        totals.notCreated++
        continue
      }
      const before = listing(c.dir)
      const names = Object.keys(before)
      if (names.includes(PARTIAL)) {
        if (c.done) errors.push(`${where}: checkpoint ${n} resolved but ${PARTIAL} is still there`)
        const err = await errorOf(open(c.dir, { ...KILL_OPTIONS, createIfMissing: false }).then((d) => d.close()))
        if (err?.code !== 'STRATA_NOT_A_DATABASE') errors.push(`${where}: incomplete checkpoint ${n} opened with ${err ? `${err.code}: ${err.message}` : 'success'}`)
        const after = listing(c.dir)
        if (JSON.stringify(after) !== JSON.stringify(before)) errors.push(`${where}: opening incomplete checkpoint ${n} changed it: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`)
        totals.partial++
        continue
      }
      if (names.length === 0) {
        // Killed between mkdir and the creation of CHECKPOINT-PARTIAL: open() would create an empty database there.
        errors.push(`${where}: checkpoint ${n} left an empty directory without ${PARTIAL} (open() would create a new, empty database in it)`)
        continue
      }
      if (!c.done) totals.completedUnjournaled++
      let cp: Database
      try {
        cp = await open(c.dir, { ...KILL_OPTIONS, createIfMissing: false })
      } catch (err) {
        const e = err as { code?: string; message: string }
        errors.push(`${where}: complete checkpoint ${n} (files ${names.join(',')}) does not open: ${e.code}: ${e.message}`)
        continue
      }
      let view: View
      try {
        view = await readView(cp, KILL_KEYS, true)
      } finally {
        await cp.close()
      }
      totals.complete++
      if (c.done && c.done.sequence !== view.lastSequence) errors.push(`${where}: checkpoint ${n} resolved with sequence ${c.done.sequence}, opens at ${view.lastSequence}`)
      const cpObserved = decodeView(view, `${where}: checkpoint ${n}`, errors)
      // Every write acknowledged before the call started is in it; none issued after it resolved.
      matchPrefix(model, journal, cpObserved, (w) => {
        const wj = journal.writers[w]
        let lo = 0
        while (lo < wj.ops.length && wj.ackedAt[lo] >= 0 && wj.ackedAt[lo] < c.startLine) lo++
        let hi = wj.ops.length
        if (c.done) {
          hi = 0
          while (hi < wj.ops.length && wj.issuedAt[hi] < c.done.line) hi++
        }
        return [lo, hi]
      }, `${where}: checkpoint ${n}`, errors)
      complete.push({ n, view })
      if (c.done && c.done.flushes > 0) totals.withFlush++
      if (c.done && c.done.compactions > 0) totals.withCompaction++
      if (c.done && c.done.walSwitches > 0) totals.withWalSwitch++
      if (c.done && c.done.writes > 0) totals.withWrites++
    }
    // Exactly the source's history at each checkpoint's sequence (versions included).
    const state = new Map(roundStart)
    let at = 0
    for (const { n, view } of complete.sort((a, b) => a.view.lastSequence - b.view.lastSequence)) {
      if (view.lastSequence < modelSequence) {
        errors.push(`${where}: checkpoint ${n} opens at sequence ${view.lastSequence}, before the round started (${modelSequence})`)
        continue
      }
      at = replay(state, history, at, view.lastSequence, errors, `${where}: checkpoint ${n}`)
      compareView(view, state, KILL_KEYS, `${where}: checkpoint ${n} (sequence ${view.lastSequence}) vs. the source's history`, errors)
    }
    report(errors, where)
    const partialWithoutDone = [...journal.checkpoints.values()].some((c) => !c.done && fs.existsSync(path.join(c.dir, PARTIAL)))
    if (partialWithoutDone) totals.killsInCheckpoint++

    for (const wj of journal.writers) totals.acked += wj.ackedAt.filter((a) => a >= 0).length
    model = observed
    versioned = sourceModel
    modelSequence = sourceView.lastSequence
    for (const c of journal.checkpoints.values()) fs.rmSync(c.dir, { recursive: true, force: true })
    fs.rmSync(journalFile)
    totals.verifyMs += Date.now() - verifyStart
  }
  const sorted = [...cpMsAll].sort((a, b) => a - b)
  console.log(
    `${label}: ${totals.rounds} rounds in ${((Date.now() - started) / 1000).toFixed(1)} s (${totals.aimed} kills aimed inside a checkpoint), ` +
      `${totals.killsInCheckpoint} kills landed inside a checkpoint (left ${PARTIAL}); checkpoint directories: ${totals.checkpoints} started, ` +
      `${totals.complete} complete and verified (${totals.completedUnjournaled} completed but killed before the child saw it resolve), ` +
      `${totals.partial} refused as incomplete, ${totals.notCreated} not created; a flush finished during ${totals.withFlush} ` +
      `and a compaction during ${totals.withCompaction}, the WAL switched during ${totals.withWalSwitch} and writes resolved during ${totals.withWrites} of the verified ones; ${totals.acked} acknowledged writes checked; ` +
      `checkpoint ms median ${sorted[Math.floor(sorted.length / 2)]?.toFixed(1)} max ${sorted[sorted.length - 1]?.toFixed(1)}; ` +
      `final sequence ${modelSequence}; children ran ${totals.childMs} ms, verification took ${totals.verifyMs} ms`,
  )
  expect(totals.killsInCheckpoint, 'kills that landed inside a checkpoint').toBeGreaterThanOrEqual(3)
  expect(totals.complete, 'complete checkpoints verified').toBeGreaterThanOrEqual(3)
}

describe('checkpoint and SIGKILL', () => {
  it('the source keeps every acknowledged write; each checkpoint directory is either refused as incomplete or exact', async () => {
    await killCycles()
  })
})

// ---------------------------------------------------------------------------
// 3-5. Errors, hard links, the source untouched.

describe('checkpoint errors', () => {
  it('rejects an existing directory, bad arguments and a closed database, creating nothing', async () => {
    const root = tempRoot('strata-cp-errors-')
    const source = path.join(root, 'source')
    const db = await open(source)
    await db.put('a', '1')
    const existing = path.join(root, 'existing')
    fs.mkdirSync(existing)
    fs.writeFileSync(path.join(existing, 'keep.txt'), 'mine')
    const emptyDir = path.join(root, 'empty')
    fs.mkdirSync(emptyDir)
    const aFile = path.join(root, 'a-file')
    fs.writeFileSync(aFile, 'x')
    const rootBefore = listing(root)
    const sourceBefore = hashDir(source)
    try {
      for (const target of [existing, emptyDir, aFile, source]) {
        const err = await errorOf(db.checkpoint(target))
        expect(err?.code, `checkpoint into ${target}`).toBe('STRATA_EXISTS')
      }
      expect(listing(existing)).toEqual({ 'keep.txt': 4 })
      expect(fs.readdirSync(emptyDir)).toEqual([])
      expect(fs.readFileSync(aFile, 'utf8')).toBe('x')
      expect(hashDir(source)).toEqual(sourceBefore)
      for (const bad of ['', 42, null, undefined, {}, ['x'], Buffer.from('x')]) {
        const err = await errorOf(db.checkpoint(bad as unknown as string))
        expect(err?.code, `checkpoint(${JSON.stringify(bad)})`).toBe('STRATA_INVALID_ARGUMENT')
      }
      expect(listing(root)).toEqual(rootBefore)
      // Two checkpoints into one new directory at once: one is made, the other is STRATA_EXISTS.
      const same = path.join(root, 'same')
      const both = await Promise.allSettled([db.checkpoint(same), db.checkpoint(same)])
      expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected'])
      expect(both.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'ok')).sort()).toEqual(['STRATA_EXISTS', 'ok'])
      expect(fs.readdirSync(same)).not.toContain(PARTIAL)
      const sameDb = await open(same, { createIfMissing: false })
      expect(sameDb.getSync('a')?.toString()).toBe('1')
      await sameDb.close()
      // Still works afterwards.
      const ok = await db.checkpoint(path.join(root, 'ok'))
      expect(ok.sequence).toBe(1)
    } finally {
      await db.close()
    }
    const closedTarget = path.join(root, 'after-close')
    const err = await errorOf(db.checkpoint(closedTarget))
    expect(err?.code).toBe('STRATA_NOT_OPEN')
    expect(fs.existsSync(closedTarget)).toBe(false)
    // The one that worked opens; a checkpoint of a checkpoint too; an empty database's checkpoint is empty.
    const cp = await open(path.join(root, 'ok'), { createIfMissing: false })
    try {
      expect(cp.stats().lastSequence).toBe(1)
      expect(cp.getSync('a')?.toString()).toBe('1')
      const again = await cp.checkpoint(path.join(root, 'ok-of-ok'))
      expect(again.sequence).toBe(1)
    } finally {
      await cp.close()
    }
    const cp2 = await open(path.join(root, 'ok-of-ok'), { createIfMissing: false })
    expect(cp2.getSync('a')?.toString()).toBe('1')
    await cp2.close()
    const empty = await open(path.join(root, 'empty-db'))
    const e = await empty.checkpoint(path.join(root, 'empty-cp'))
    await empty.close()
    expect(e.sequence).toBe(0)
    const emptyCp = await open(path.join(root, 'empty-cp'), { createIfMissing: false })
    expect(emptyCp.stats().lastSequence).toBe(0)
    expect(emptyCp.getSync('a')).toBeUndefined()
    await emptyCp.close()
  })
})

describe('checkpoint files', () => {
  it('hard-links tables and complete WALs of a ~50 MB database, copies only the active WAL prefix and the marker', async () => {
    const root = tempRoot('strata-cp-links-')
    const source = path.join(root, 'source')
    // No compaction, and flushes settled before the checkpoint: the source's files stay put while their inodes are compared.
    const db = await open(source, { memtableBytes: 8 * 1024 * 1024, walRetentionMs: 3_600_000, autoCompaction: false })
    const rng = makeRng(SEED + 3)
    const value = (i: number): Buffer => {
      const buf = crypto.randomBytes(64 * 1024)
      buf.write(`value ${i}|`, 0, 'latin1')
      return buf
    }
    const t0 = performance.now()
    for (let i = 0; i < 800; i += 16) {
      await db.batch(Array.from({ length: 16 }, (_, j) => ({ type: 'put' as const, key: `big-${String(i + j).padStart(5, '0')}`, value: value(i + j) })))
    }
    // A few more into the active memtable so that the active WAL is not empty.
    for (let i = 0; i < 20; i++) await db.put(`small-${i}`, `v${Math.floor(rng() * 1000)}`)
    const writeMs = performance.now() - t0
    // First while a flush may still run (a frozen memtable's complete WAL is linked then): every file the
    // source still has must be the same inode; one it deleted meanwhile must be the checkpoint's alone.
    const busy = path.join(root, 'cp-busy')
    const busyFrozen = db.stats().memtable.immutableCount
    await db.checkpoint(busy)
    let busyLinkedWals = 0
    const busyWals = fs.readdirSync(busy).filter((n) => n.endsWith('.log')).sort()
    for (const name of fs.readdirSync(busy).filter((n) => n.endsWith('.sst') || (n.endsWith('.log') && n !== busyWals[busyWals.length - 1]))) {
      const b = fs.statSync(path.join(busy, name))
      if (fs.existsSync(path.join(source, name))) expect(b.ino, `${name} is a hard link`).toBe(fs.statSync(path.join(source, name)).ino)
      else expect(b.nlink, `${name}, deleted in the source since, is the checkpoint's alone`).toBe(1)
      if (name.endsWith('.log')) busyLinkedWals++
    }
    // Then with the source settled: exact.
    for (let i = 0; i < 500 && db.stats().memtable.immutableCount > 0; i++) await sleep(20)
    try {
      const target = path.join(root, 'cp')
      const t1 = performance.now()
      const result = await db.checkpoint(target)
      const cpMs = performance.now() - t1
      const names = fs.readdirSync(target).sort()
      const tables = names.filter((n) => n.endsWith('.sst'))
      const wals = names.filter((n) => n.endsWith('.log')).sort()
      expect(tables.length).toBeGreaterThan(0)
      expect(names).not.toContain(PARTIAL)
      for (const t of tables) {
        const a = fs.statSync(path.join(source, t))
        const b = fs.statSync(path.join(target, t))
        expect(b.ino, `${t} is a hard link`).toBe(a.ino)
        expect(b.nlink).toBeGreaterThanOrEqual(2)
      }
      const active = wals[wals.length - 1]
      for (const w of wals.slice(0, -1)) expect(fs.statSync(path.join(target, w)).ino, `complete WAL ${w} is a hard link`).toBe(fs.statSync(path.join(source, w)).ino)
      expect(fs.statSync(path.join(target, active)).ino, `the active WAL ${active} is a copy`).not.toBe(fs.statSync(path.join(source, active)).ino)
      const activeBytes = fs.statSync(path.join(target, active)).size
      const markerBytes = fs.statSync(path.join(target, 'STRATADB')).size
      expect(result.copiedBytes).toBe(activeBytes + markerBytes)
      expect(result.files).toBe(names.length)
      expect(result.bytes).toBe(names.reduce((n, name) => n + fs.statSync(path.join(target, name)).size, 0))
      expect(result.bytes).toBeGreaterThan(45 * 1024 * 1024)
      console.log(
        `hard links: wrote ${(result.bytes / 2 ** 20).toFixed(1)} MiB in ${writeMs.toFixed(0)} ms; checkpoint took ${cpMs.toFixed(1)} ms ` +
          `(${tables.length} tables and ${wals.length - 1} complete WALs linked, ${result.copiedBytes} bytes copied, ${result.files} files); ` +
          `the one taken with ${busyFrozen} memtable(s) waiting for flush linked ${busyLinkedWals} complete WAL(s)`,
      )
      // Same content.
      const cp = await open(target, { createIfMissing: false })
      try {
        expect(cp.stats().lastSequence).toBe(result.sequence)
        const a: string[] = []
        for await (const [k, v] of db.iterator()) a.push(`${k}:${crypto.createHash('sha1').update(v).digest('hex')}`)
        const b: string[] = []
        for await (const [k, v] of cp.iterator()) b.push(`${k}:${crypto.createHash('sha1').update(v).digest('hex')}`)
        expect(b.length).toBe(820)
        expect(b).toEqual(a)
      } finally {
        await cp.close()
      }
    } finally {
      await db.close()
    }
  })

  it('copies every file when the target is on another file system (EXDEV)', async (ctx) => {
    const other = '/dev/shm'
    if (!fs.existsSync(other) || fs.statSync(other).dev === fs.statSync(os.tmpdir()).dev) {
      console.log(`EXDEV: ${other} is missing or on the same file system as ${os.tmpdir()}; skipped`)
      ctx.skip()
      return
    }
    const root = tempRoot('strata-cp-xdev-src-')
    const otherRoot = fs.mkdtempSync(path.join(other, 'strata-cp-xdev-'))
    roots.push(otherRoot)
    const source = path.join(root, 'source')
    const db = await open(source, { memtableBytes: 256 * 1024, autoCompaction: false })
    try {
      for (let i = 0; i < 4000; i++) await db.put(`k${i % 1500}`, Buffer.alloc(200 + (i % 300), `v${i}|`))
      await backgroundSettled(db, source)
      const before = hashDir(source)
      const target = path.join(otherRoot, 'cp')
      const result = await db.checkpoint(target)
      const names = fs.readdirSync(target)
      expect(names.some((n) => n.endsWith('.sst'))).toBe(true)
      expect(result.copiedBytes).toBe(result.bytes - fs.statSync(path.join(target, 'CURRENT')).size - names.filter((n) => n.startsWith('MANIFEST-')).reduce((n, m) => n + fs.statSync(path.join(target, m)).size, 0))
      for (const n of names) expect(fs.statSync(path.join(target, n)).nlink, `${n} is a copy`).toBe(1)
      for (const n of names.filter((x) => x.endsWith('.sst'))) expect(fs.readFileSync(path.join(target, n)).equals(fs.readFileSync(path.join(source, n))), `${n} copied intact`).toBe(true)
      expect(hashDir(source)).toEqual(before)
      const cp = await open(target, { createIfMissing: false })
      try {
        expect(cp.stats().lastSequence).toBe(result.sequence)
        const a: string[] = []
        for await (const [k, v] of db.iterator()) a.push(`${k}=${v.toString('latin1', 0, 12)}/${v.length}`)
        const b: string[] = []
        for await (const [k, v] of cp.iterator()) b.push(`${k}=${v.toString('latin1', 0, 12)}/${v.length}`)
        expect(b.length).toBe(1500)
        expect(b).toEqual(a)
      } finally {
        await cp.close()
      }
      console.log(`EXDEV: ${result.files} files, ${result.bytes} bytes, ${result.copiedBytes} copied into ${other}`)
    } finally {
      await db.close()
    }
  })

  it('across file systems, flushes and compactions that install during the chunked table copies change nothing in it', async (ctx) => {
    const other = '/dev/shm'
    if (!fs.existsSync(other) || fs.statSync(other).dev === fs.statSync(os.tmpdir()).dev) {
      ctx.skip()
      return
    }
    const root = tempRoot('strata-cp-xdev2-src-')
    const otherRoot = fs.mkdtempSync(path.join(other, 'strata-cp-xdev2-'))
    roots.push(otherRoot)
    const source = path.join(root, 'source')
    const db = await open(source, { memtableBytes: 1024 * 1024, targetTableBytes: 1024 * 1024, levelBaseBytes: 4 * 1024 * 1024, l0CompactionTrigger: 2 })
    const keys = Array.from({ length: 6000 }, (_, i) => `key-${String(i).padStart(5, '0')}`)
    const lines: string[] = []
    try {
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 8000; i += 50) {
          await db.batch(Array.from({ length: 50 }, (_, j) => ({ type: 'put' as const, key: keys[((i + j) * 7 + round * 13) % keys.length], value: crypto.randomBytes(400 + ((i + j) % 600)) })))
        }
        // Flushes and compactions are pending or running now. Nothing is written during the call, so the
        // checkpoint is at the snapshot's sequence; compactRange makes more installs happen during it.
        const before = db.snapshot()
        const expected = new Map<string, Versioned>()
        for (const k of keys) {
          const e = await before.getEntry(k)
          if (e) expected.set(k, e)
        }
        const s0 = db.stats()
        const compacting = db.compactRange()
        const result = await db.checkpoint(path.join(otherRoot, `cp-${round}`))
        const s1 = db.stats()
        await compacting
        lines.push(
          `round ${round}: ${result.files} files, ${(result.copiedBytes / 2 ** 20).toFixed(1)} MiB copied; while it ran ` +
            `${s1.writes.flushes - s0.writes.flushes} flushes and ${s1.compaction.compactions - s0.compaction.compactions} compactions finished`,
        )
        expect(result.sequence).toBe(before.sequence)
        before.release()
        const cp = await open(path.join(otherRoot, `cp-${round}`), { createIfMissing: false })
        try {
          const errors: string[] = []
          compareView(await readView(cp, keys, true), expected, keys, `cp-${round}`, errors)
          report(errors, `round ${round}`)
        } finally {
          await cp.close()
        }
        fs.rmSync(path.join(otherRoot, `cp-${round}`), { recursive: true })
      }
    } finally {
      await db.close()
    }
    console.log(`EXDEV with background work:\n  ${lines.join('\n  ')}`)
  })

  it('does not write the source directory: every file byte-identical before and after', async () => {
    const root = tempRoot('strata-cp-untouched-')
    const source = path.join(root, 'source')
    const options: OpenOptions = { memtableBytes: 64 * 1024, autoCompaction: false }
    const db = await open(source, options)
    try {
      for (let i = 0; i < 3000; i++) await db.put(`k${i % 700}`, `value ${i} `.repeat(8))
      for (let i = 0; i < 10; i++) await db.delete(`k${i}`)
      // Let flushes settle (no compaction runs): tables and a non-empty active WAL.
      await backgroundSettled(db, source)
      expect(db.stats().memtable.immutableCount).toBe(0)
      expect(db.stats().memtable.activeBytes).toBeGreaterThan(0)
      const before = hashDir(source)
      const statsBefore = Object.fromEntries(Object.keys(before).map((n) => [n, fs.statSync(path.join(source, n)).mtimeMs]))
      expect(Object.keys(before).some((n) => n.endsWith('.sst'))).toBe(true)
      const result = await db.checkpoint(path.join(root, 'cp'))
      expect(hashDir(source)).toEqual(before)
      expect(Object.fromEntries(Object.keys(before).map((n) => [n, fs.statSync(path.join(source, n)).mtimeMs]))).toEqual(statsBefore)
      const cp = await open(path.join(root, 'cp'), { ...options, createIfMissing: false })
      try {
        expect(cp.stats().lastSequence).toBe(result.sequence)
        expect(result.sequence).toBe(3010)
        expect(cp.getSync('k5')).toBeUndefined()
        expect(cp.getSync('k699')?.toString()).toBe(`value 2799 `.repeat(8))
      } finally {
        await cp.close()
      }
      expect(hashDir(source)).toEqual(before)
    } finally {
      await db.close()
    }
  })
})
