/**
 * Crash test: a child process (fixtures/crash-writer.mjs) writes puts, deletes,
 * range deletes and batches, some with 200 KiB values, from many concurrent writers into a
 * database with a small memtable (so flushes, WAL switches and manifest writes
 * happen all the time). We SIGKILL it at a random moment, sometimes while it
 * is still opening (recovering) the database, then reopen the database here
 * and check it against the child's journal:
 *
 *   - every acknowledged op is there, and at most the one op in flight per
 *     writer was applied beyond them (so batches are all-or-nothing);
 *   - the in-flight ops that survived were issued before those that did not
 *     (recovery leaves a prefix of the write order, no holes);
 *   - every value read, by get, getSync and full forward and reverse scans,
 *     is intact and stored under the key it was written for;
 *   - the scans return exactly the keys the state holds, in order.
 *
 * The database directory lives on across cycles, so every cycle also checks
 * data left behind by earlier crashes and recoveries (in tables and WALs).
 * A shorter variant runs with key-value separation: value sizes cross a small
 * minBlobBytes and blob garbage collection runs at 1% garbage, so the kills
 * also land in blob file writes, blob GC and the deletion of blob files.
 * Set CRASH_SEED to replay a run's random choices (timing still varies) and
 * CRASH_KEEP=1 to keep the directories.
 */
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { open, type Database } from '../dist/index.js'
import { keyName, makeRng, parseValue, rangeKeyName, writerOf, type JournalOp, type RangeDeleteJournalOp } from './fixtures/crash-format.mjs'

const WRITER_SCRIPT = fileURLToPath(new URL('./fixtures/crash-writer.mjs', import.meta.url))

const WRITERS = 24
const KEYS_PER_WRITER = 12
/**
 * Small sizes everywhere, so that a few MiB of writes per cycle make many
 * flushes, WAL switches, manifest edits and compactions into several levels:
 * that is where the kills should land.
 */
const DB_OPTIONS = {
  memtableBytes: 128 * 1024,
  targetTableBytes: 128 * 1024,
  levelBaseBytes: 512 * 1024,
  levelSizeMultiplier: 4,
}
const BIG_VALUE_BYTES = 200 * 1024
/** Cycles per test case: CYCLES, or fewer (not below MIN_CYCLES) once CYCLE_BUDGET_MS is spent on a loaded machine. */
const CYCLES = 30
const MIN_CYCLES = 16
const CYCLE_BUDGET_MS = 35_000
/** Every OPEN_KILL_EVERY-th cycle kills the child while it is opening the database. */
const OPEN_KILL_EVERY = 4
/** Extra open-kill cycles allowed when none of the scheduled ones happened to land inside open(). */
const MAX_EXTRA_OPEN_KILLS = 10

/** One crash test: the options of every open, the child's value sizes, and how many cycles. */
interface CrashVariant {
  name: string
  options: Record<string, unknown>
  bigValueBytes: number
  /** Value sizes around minBlobBytes (crash-writer.mjs) instead of the original ones. */
  blobMix?: { minBlobBytes: number }
  /** Writers also range-delete spans of their second key space (alone and inside batches). */
  rangeDeletes?: boolean
  cycles: number
  minCycles: number
  cycleBudgetMs: number
}

const PLAIN: CrashVariant = {
  name: '',
  options: DB_OPTIONS,
  rangeDeletes: true,
  bigValueBytes: BIG_VALUE_BYTES,
  cycles: CYCLES,
  minCycles: MIN_CYCLES,
  cycleBudgetMs: CYCLE_BUDGET_MS,
}

/**
 * Key-value separation: values from 64 bytes, 45% below minBlobBytes (128),
 * 15% within one byte of it, the rest above; blob GC on every file with any
 * garbage; small memtables, tables and levels so that flushes write blob
 * files and compactions collect them all the time. Fewer cycles: the suite's
 * time budget is tight.
 */
const BLOB_MIN_BYTES = 128
const BLOBS: CrashVariant = {
  name: 'blob files, ',
  options: {
    memtableBytes: 32 * 1024,
    targetTableBytes: 8 * 1024,
    levelBaseBytes: 32 * 1024,
    levelSizeMultiplier: 4,
    l0CompactionTrigger: 2,
    minBlobBytes: BLOB_MIN_BYTES,
    blobGarbagePercent: 1,
  },
  bigValueBytes: 64 * 1024,
  blobMix: { minBlobBytes: BLOB_MIN_BYTES },
  cycles: 10,
  minCycles: 6,
  cycleBudgetMs: 10_000,
}

/** What a key holds: the op whose value it has, or null when absent. */
type KeyState = { opId: string; length: number } | null
type DbState = Map<string, KeyState>

interface WriterJournal {
  /** Ops in issue order; ops[i] was only issued after ops[i - 1] was acknowledged. */
  ops: JournalOp[]
  /** Whether the ack of the last op was journaled (all earlier ones were acknowledged, journaled or not). */
  lastAcked: boolean
  /** Journal line of the last op's issue: the order in which the writers' ops entered the db. */
  lastIssuedLine: number
}

const ALL_KEYS: string[] = []
for (let w = 0; w < WRITERS; w++) for (let s = 0; s < KEYS_PER_WRITER; s++) ALL_KEYS.push(keyName(w, s), rangeKeyName(w, s))
ALL_KEYS.sort()
const KEY_SET = new Set(ALL_KEYS)

function applyRangeDelete(state: DbState, op: RangeDeleteJournalOp): void {
  for (let s = op.a; s < op.b; s++) state.set(rangeKeyName(op.w, s), null)
}

function applyOp(state: DbState, op: JournalOp): void {
  if (op.t === 'put') state.set(op.k, { opId: op.id, length: op.n })
  else if (op.t === 'del') state.set(op.k, null)
  else if (op.t === 'rdel') applyRangeDelete(state, op)
  else {
    for (const o of op.ops) {
      if (o.t === 'rdel') applyRangeDelete(state, o)
      else state.set(o.k, o.t === 'put' ? { opId: op.id, length: o.n } : null)
    }
  }
}

function show(s: KeyState | undefined): string {
  return s ? `${s.opId}/${s.length}B` : 'absent'
}

function sameState(a: KeyState | undefined, b: KeyState | undefined): boolean {
  if (!a || !b) return !a && !b
  return a.opId === b.opId && a.length === b.length
}

/** Parses the child's journal; a last line without newline was cut by the kill and is dropped. */
function readJournal(file: string): WriterJournal[] {
  const journals: WriterJournal[] = Array.from({ length: WRITERS }, () => ({ ops: [], lastAcked: false, lastIssuedLine: -1 }))
  // The child creates the journal before it says 'opening', so it exists whenever the kill came.
  const lines = fs.readFileSync(file, 'utf8').split('\n')
  lines.pop()
  for (const [lineNumber, line] of lines.entries()) {
    const m = /^([IA]) (\d+) (\d+)(?: (.*))?$/.exec(line)
    if (!m) throw new Error(`bad journal line: ${line}`)
    const j = journals[Number(m[2])]
    const index = Number(m[3])
    if (m[1] === 'I') {
      if (index !== j.ops.length) throw new Error(`journal: writer ${m[2]} issued op ${index} after ${j.ops.length - 1}`)
      j.ops.push(JSON.parse(m[4]) as JournalOp)
      j.lastAcked = false
      j.lastIssuedLine = lineNumber
    } else {
      if (index !== j.ops.length - 1) throw new Error(`journal: writer ${m[2]} acked op ${index}, last issued ${j.ops.length - 1}`)
      j.lastAcked = true
    }
  }
  return journals
}

interface ChildRun {
  /** The child reported 'ready' (open() returned) before it died. */
  opened: boolean
  openMs?: number
  /** The child's last 'stats' line (with reportStats): blob work since its open. */
  blobs?: { filesWritten: number; bytesRelocated: number; gcCompactions: number; files: number }
  /** With gcWaitMs: the kill was timed from the child's first report of blob GC work. */
  sawBlobGc?: boolean
}

/**
 * Runs the writer and SIGKILLs it `delayMs` after it reports `killAfter`
 * ('opening': recovery is under way; 'ready': it is writing). Rejects when the
 * child dies any other way, which means it hit an error.
 *
 * With `gcWaitMs` (blob variant, child started with reportStats) the delay
 * starts only once the child reports blob GC work (a blob-gc compaction or
 * relocated bytes), or `gcWaitMs` after `killAfter` if it never does: the kill
 * then lands while GC rewrites tables and blob files, however slow the machine.
 */
function runChild(config: Record<string, unknown>, killAfter: 'opening' | 'ready', delayMs: number, gcWaitMs?: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER_SCRIPT, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] })
    const run: ChildRun = { opened: false }
    let stderr = ''
    let pending = ''
    let armed = false
    const arm = (): void => {
      if (armed) return
      armed = true
      setTimeout(() => child.kill('SIGKILL'), delayMs)
    }
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      pending += d
      let nl: number
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl)
        const [event, arg] = line.split(' ')
        pending = pending.slice(nl + 1)
        if (event === 'ready') {
          run.opened = true
          run.openMs = Number(arg)
        }
        if (event === 'stats') {
          const [filesWritten, bytesRelocated, gcCompactions, files] = line.split(' ').slice(1).map(Number)
          run.blobs = { filesWritten, bytesRelocated, gcCompactions, files }
          if (gcWaitMs !== undefined && (gcCompactions > 0 || bytesRelocated > 0)) {
            run.sawBlobGc = true
            arm()
          }
        }
        if (event === killAfter) {
          if (gcWaitMs === undefined) arm()
          else setTimeout(arm, gcWaitMs)
        }
      }
    })
    child.on('error', reject)
    // 'close' comes after the child was reaped (its pid is gone, so the LOCK it left is stale)
    // and after its stdout was read to the end (so `opened` is final).
    child.on('close', (code, signal) => {
      if (signal === 'SIGKILL') resolve(run)
      else reject(new Error(`crash-writer exited with code ${code} signal ${signal} instead of being killed:\n${stderr}`))
    })
  })
}

/**
 * Reads the whole key space with get and getSync and decodes every value;
 * corrupt values are collected in `errors`.
 */
async function readKeys(db: Database, errors: string[]): Promise<DbState> {
  const observed: DbState = new Map()
  for (const key of ALL_KEYS) {
    const value = await db.get(key)
    const sync = db.getSync(key)
    if ((value === undefined) !== (sync === undefined) || (value && sync && !value.equals(sync))) {
      errors.push(`${key}: get and getSync disagree`)
    }
    if (value === undefined) {
      observed.set(key, null)
      continue
    }
    try {
      const { opId, length } = parseValue(key, value)
      observed.set(key, { opId, length })
    } catch (err) {
      errors.push(`get: ${(err as Error).message}`)
      observed.set(key, { opId: 'CORRUPT', length: value.length })
    }
  }
  return observed
}

/**
 * Each writer issues an op only after the previous one was acknowledged, so
 * its keys must hold the state after all its ops but the last, or after all
 * of them; only the latter once the last op's ack was journaled. Anything else
 * is a lost acknowledged write, a partly applied batch or a stray value.
 * Returns the states that matched: the model for the next cycle.
 */
function matchJournal(
  model: DbState,
  journals: WriterJournal[],
  observed: DbState,
  errors: string[],
): { next: DbState; lastApplied: Array<boolean | undefined> } {
  const next: DbState = new Map()
  /** Per writer: whether its in-flight last op was applied; undefined when that cannot be told. */
  const lastApplied: Array<boolean | undefined> = []
  journals.forEach((j, w) => {
    const keys = ALL_KEYS.filter((k) => writerOf(k) === w)
    const beforeLast: DbState = new Map(keys.map((k) => [k, model.get(k) ?? null]))
    for (const op of j.ops.slice(0, -1)) applyOp(beforeLast, op)
    const afterLast: DbState = new Map(beforeLast)
    if (j.ops.length > 0) applyOp(afterLast, j.ops[j.ops.length - 1])
    const allowed = j.lastAcked ? [afterLast] : [beforeLast, afterLast]
    const match = allowed.find((c) => keys.every((k) => sameState(c.get(k), observed.get(k))))
    if (match) {
      for (const k of keys) next.set(k, match.get(k)!)
      const tellable = !j.lastAcked && keys.some((k) => !sameState(beforeLast.get(k), afterLast.get(k)))
      lastApplied[w] = tellable ? match === afterLast : undefined
      return
    }
    const diff = (expected: DbState): string =>
      keys
        .filter((k) => !sameState(expected.get(k), observed.get(k)))
        .map((k) => `${k} has ${show(observed.get(k))}, not ${show(expected.get(k))}`)
        .join('; ')
    const last = j.ops.length > 0 ? JSON.stringify(j.ops[j.ops.length - 1]) : 'none'
    errors.push(
      `writer ${w}: ${j.ops.length} ops issued, the last one ${j.lastAcked ? 'acknowledged' : 'in flight'}: ${last}` +
        `\n    vs. the state before the last op: ${diff(beforeLast)}` +
        `\n    vs. the state after the last op: ${diff(afterLast)}`,
    )
    for (const k of keys) next.set(k, observed.get(k)!)
  })
  return { next, lastApplied }
}

/**
 * Writes enter the WAL in call order (FIFO group commit), so a crash must
 * leave a prefix of that order: an in-flight op may only survive if every
 * in-flight op issued before it survived too. A recovery that skipped a WAL
 * record and went on replaying later ones fails this.
 */
function checkPrefix(journals: WriterJournal[], lastApplied: Array<boolean | undefined>, errors: string[]): void {
  const inFlight = journals
    .map((j, w) => ({ w, line: j.lastIssuedLine, applied: lastApplied[w] }))
    .filter((x) => x.applied !== undefined)
    .sort((a, b) => a.line - b.line)
  const firstLost = inFlight.find((x) => !x.applied)
  const lateSurvivor = inFlight.find((x) => x.applied && firstLost && x.line > firstLost.line)
  if (firstLost && lateSurvivor) {
    errors.push(
      `not a prefix of the write order: writer ${lateSurvivor.w}'s in-flight op (journal line ${lateSurvivor.line}) survived, ` +
        `writer ${firstLost.w}'s issued before it (line ${firstLost.line}) did not`,
    )
  }
}

/** Full forward and reverse scans: ordered, only known keys, intact values, exactly `state`. */
async function checkScans(db: Database, state: DbState, errors: string[]): Promise<void> {
  const forward: string[] = []
  for await (const [k, v] of db.iterator()) {
    const key = k.toString('latin1')
    if (forward.length > 0 && key <= forward[forward.length - 1]) errors.push(`scan: ${key} after ${forward[forward.length - 1]}`)
    forward.push(key)
    if (!KEY_SET.has(key)) {
      errors.push(`scan: unknown key ${JSON.stringify(key)}`)
      continue
    }
    try {
      const found = parseValue(key, v)
      if (!sameState(found, state.get(key))) errors.push(`scan: ${key} has ${show(found)}, get says ${show(state.get(key))}`)
    } catch (err) {
      errors.push(`scan: ${(err as Error).message}`)
    }
  }
  const live = ALL_KEYS.filter((k) => state.get(k))
  if (forward.join() !== live.join()) {
    const missing = live.filter((k) => !forward.includes(k))
    const extra = forward.filter((k) => !state.get(k))
    errors.push(`scan returned ${forward.length} keys, ${live.length} live; missing ${missing.join(',')}; extra ${extra.join(',')}`)
  }
  const reverse: string[] = []
  for await (const [k, v] of db.iterator({ reverse: true })) {
    const key = k.toString('latin1')
    reverse.push(key)
    try {
      parseValue(key, v)
    } catch (err) {
      errors.push(`reverse scan: ${(err as Error).message}`)
    }
  }
  if (reverse.reverse().join() !== forward.join()) errors.push('reverse scan does not return the forward scan backwards')
}

async function crashCycles(syncWrites: boolean, variant: CrashVariant = PLAIN): Promise<void> {
  const seed = process.env.CRASH_SEED ? Number(process.env.CRASH_SEED) : Math.floor(Math.random() * 2 ** 31)
  const rng = makeRng(seed)
  const label = `crash test (${variant.name}syncWrites ${syncWrites}, seed ${seed})`
  console.log(`${label}: CRASH_SEED=${seed} replays it`)
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-crash-'))
  const dir = path.join(root, 'db')
  let model: DbState = new Map(ALL_KEYS.map((k) => [k, null]))
  const totals = { cycles: 0, openKills: 0, killedInOpen: 0, acknowledged: 0, inFlightApplied: 0, inFlightLost: 0, rangeDeletes: 0 }
  /** Blob work: what the children reported (flush blob files, GC), and what the verifying opens did, saw and read. */
  const blobs = {
    childFilesWritten: 0,
    childBytesRelocated: 0,
    childGcCompactions: 0,
    filesWritten: 0,
    bytesRelocated: 0,
    gcCompactions: 0,
    maxFiles: 0,
    valuesRead: 0,
    /** Cycles whose kill was timed from the child's blob GC, and those in which the GC came. */
    gcTimedKills: 0,
    gcTimedKillsAfterGc: 0,
  }
  let openMs = 20
  let tablesPerLevel = ''
  try {
    const started = Date.now()
    /** Cycle number at which the scheduled cycles ended; the rest only retry killing inside open(). */
    let scheduledEnd: number | undefined
    for (let cycle = 0; ; cycle++) {
      if (scheduledEnd === undefined && (cycle === variant.cycles || (cycle >= variant.minCycles && Date.now() - started > variant.cycleBudgetMs))) {
        scheduledEnd = cycle
      }
      if (scheduledEnd !== undefined && (totals.killedInOpen > 0 || cycle >= scheduledEnd + MAX_EXTRA_OPEN_KILLS)) break
      // Not on cycle 0: a kill inside open() is only interesting when there is data to recover.
      const killInOpen = scheduledEnd !== undefined || cycle % OPEN_KILL_EVERY === OPEN_KILL_EVERY - 1
      // Open kills spread over the time the last open took. Write kills mostly land mid-stream,
      // some soon after open, while the first flush (of a large recovered memtable) is starting.
      const delayMs = killInOpen ? rng() * openMs : rng() < 0.25 ? rng() * 100 : 100 + rng() * 700
      // Blob variant: every third cycle times its kill from the child's first blob GC (see runChild).
      const gcWaitMs = variant.blobMix !== undefined && !killInOpen && cycle % 3 === 1 ? 5_000 : undefined
      const journal = path.join(root, `journal-${cycle}.txt`)
      const run = await runChild(
        {
          dir,
          journal,
          cycle,
          seed: Math.floor(rng() * 2 ** 31),
          writers: WRITERS,
          keysPerWriter: KEYS_PER_WRITER,
          // More than one frozen memtable changes which WALs a flush may retire.
          options: { ...variant.options, syncWrites, maxImmutableMemtables: 1 + Math.floor(rng() * 3) },
          bigValueBytes: variant.bigValueBytes,
          maxRunMs: 20_000,
          ...(variant.blobMix !== undefined ? { blobMix: variant.blobMix, reportStats: true } : {}),
          rangeDeletes: variant.rangeDeletes === true,
        },
        killInOpen ? 'opening' : 'ready',
        delayMs,
        gcWaitMs,
      )
      if (run.openMs !== undefined) openMs = Math.max(5, run.openMs)
      totals.cycles++
      if (killInOpen) totals.openKills++
      if (killInOpen && !run.opened) totals.killedInOpen++
      if (gcWaitMs !== undefined) blobs.gcTimedKills++
      if (run.sawBlobGc === true) blobs.gcTimedKillsAfterGc++
      if (run.blobs !== undefined) {
        blobs.childFilesWritten += run.blobs.filesWritten
        blobs.childBytesRelocated += run.blobs.bytesRelocated
        blobs.childGcCompactions += run.blobs.gcCompactions
        blobs.maxFiles = Math.max(blobs.maxFiles, run.blobs.files)
      }

      const journals = readJournal(journal)
      const errors: string[] = []
      let lastApplied: Array<boolean | undefined> = []
      const db = await open(dir, { ...variant.options, syncWrites })
      try {
        const observed = await readKeys(db, errors)
        ;({ next: model, lastApplied } = matchJournal(model, journals, observed, errors))
        checkPrefix(journals, lastApplied, errors)
        await checkScans(db, model, errors)
        const stats = db.stats()
        if (stats.backgroundError) errors.push(`background error: ${stats.backgroundError}`)
        tablesPerLevel = stats.levels.map((l) => l.tables).join('/')
        blobs.maxFiles = Math.max(blobs.maxFiles, stats.blobs.files)
        blobs.valuesRead += stats.blobs.valuesRead
        blobs.filesWritten += stats.blobs.filesWritten
        blobs.bytesRelocated += stats.compaction.blobBytesRelocated
        blobs.gcCompactions += stats.compaction.byReason['blob-gc']
      } finally {
        await db.close()
      }
      if (errors.length > 0) {
        throw new Error(`${label}, cycle ${cycle} (killed ${delayMs.toFixed(0)} ms after '${killInOpen ? 'opening' : 'ready'}'):\n  ${errors.join('\n  ')}`)
      }
      for (const j of journals) if (j.ops.length > 0) totals.acknowledged += j.ops.length - 1 + (j.lastAcked ? 1 : 0)
      for (const j of journals) for (const op of j.ops) totals.rangeDeletes += op.t === 'rdel' ? 1 : op.t === 'batch' ? op.ops.filter((o) => o.t === 'rdel').length : 0
      totals.inFlightApplied += lastApplied.filter((a) => a === true).length
      totals.inFlightLost += lastApplied.filter((a) => a === false).length
      fs.rmSync(journal)
    }
    console.log(
      `${label}: ${totals.cycles} cycles, ${totals.openKills} aimed at open() of which ${totals.killedInOpen} landed before it returned; ` +
        `${totals.acknowledged} acknowledged ops verified, in-flight ops: ${totals.inFlightApplied} applied, ${totals.inFlightLost} not; ` +
        `${totals.rangeDeletes} range deletes issued; tables per level at the end: ${tablesPerLevel}` +
        (variant.blobMix !== undefined
          ? `; blob files: ${blobs.childFilesWritten} written by the children's flushes (${blobs.filesWritten} by the verifying opens), ` +
            `at most ${blobs.maxFiles} listed at once, ${blobs.childGcCompactions} blob-gc compactions and ${blobs.childBytesRelocated} bytes ` +
            `relocated by the children (${blobs.gcCompactions} and ${blobs.bytesRelocated} by the verifying opens), ` +
            `${blobs.valuesRead} values read from blob files by the verifications; ` +
            `${blobs.gcTimedKillsAfterGc} of ${blobs.gcTimedKills} kills timed from the child's first blob GC`
          : ''),
    )
    expect(totals.killedInOpen, 'no kill landed inside open()').toBeGreaterThan(0)
    if (variant.rangeDeletes === true) expect(totals.rangeDeletes, 'range deletes issued by the children').toBeGreaterThan(100)
    if (variant.blobMix !== undefined) {
      // The kills must have met blob files and blob GC, and the verification read values from blob files;
      // a run that silently kept every value inline fails here.
      expect(blobs.childFilesWritten, 'blob files written by the children').toBeGreaterThan(0)
      expect(blobs.maxFiles, 'blob files listed by a table version').toBeGreaterThan(0)
      const gcWork = blobs.childBytesRelocated + blobs.childGcCompactions + blobs.bytesRelocated + blobs.gcCompactions
      expect(gcWork, 'blob GC work done by the children and the verifying opens').toBeGreaterThan(0)
      expect(blobs.valuesRead, 'values the verifications read from blob files').toBeGreaterThan(0)
    }
  } finally {
    if (process.env.CRASH_KEEP) console.log(`${label}: kept ${root}`)
    else fs.rmSync(root, { recursive: true, force: true })
  }
}

describe('crash recovery (SIGKILL)', () => {
  it('keeps every acknowledged write, batches atomic, no value corrupt (syncWrites false)', async () => {
    await crashCycles(false)
  })

  it('keeps every acknowledged write, batches atomic, no value corrupt (syncWrites true)', async () => {
    await crashCycles(true)
  })

  it('keeps every acknowledged write, batches atomic, no value corrupt (blob files, value sizes around minBlobBytes, blob GC at 1%)', async () => {
    await crashCycles(false, BLOBS)
  })
})
