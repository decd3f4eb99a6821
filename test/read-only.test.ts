/**
 * Read-only opens (`open(dir, { readOnly: true })`, `db.refresh()`), on real
 * files and real processes:
 *
 *   1. a read-only view never changes a byte: every file's name, size,
 *      content, inode, mtime and ctime (and the directory's) are the same
 *      after an open, reads, iteration, snapshots, refresh, rejected writes
 *      and close; on a cleanly closed database, one with unflushed WAL data
 *      and a torn WAL tail, a previous-format database (no STRATADB marker),
 *      a checkpoint, and a directory made read-only;
 *   2. views opened and refreshed while another process writes and compacts
 *      are consistent prefixes of its history, forward and reverse scans and
 *      point reads agree, iterators and snapshots outlive the tables they read
 *      being deleted, the writer is neither blocked nor harmed;
 *   3. writes reject with STRATA_READ_ONLY and leave nothing behind; the
 *      open's own errors (missing, empty, incomplete checkpoint) touch nothing;
 *   4. checkpoints open read-only at their sequence; several views and a
 *      writable open of the same directory coexist in one process;
 *   5. snapshots and iterators of a refreshed view keep their state, and the
 *      files of the old view are closed once the last of them is released.
 *
 * The write history of 2 and 4 is fixtures/read-only-format.mjs: write n is
 * one batch holding `counter` = n, so a view reading counter = n must hold
 * exactly the state after writes 1..n.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { open, StrataError, type BatchOp, type Database, type OpenOptions, type StrataIterator } from '../src/index.js'

const WRITER_SCRIPT = fileURLToPath(new URL('./fixtures/read-only-writer.mjs', import.meta.url))
const FORMAT_V1 = path.join(import.meta.dirname, 'fixtures', 'format-v1')

/** fixtures/read-only-format.mjs (plain JavaScript the child runs too), typed here. */
interface HistoryFormat {
  KEYS: number
  COUNTER_KEY: string
  keyName(i: number): string
  opsOf(n: number): Array<{ key: string; len: number }>
  makeValue(key: string, n: number, len: number): Buffer
  parseValue(key: string, buf: Buffer): number | undefined
  batchOf(n: number): BatchOp[]
}
const FORMAT_URL = new URL('./fixtures/read-only-format.mjs', import.meta.url).href
const H = (await import(FORMAT_URL)) as HistoryFormat
const ALL_KEYS = Array.from({ length: H.KEYS }, (_, i) => H.keyName(i))

const RO: OpenOptions = { readOnly: true }
/** Small sizes so that a few thousand writes make many tables and levels. */
const SMALL: OpenOptions = {
  memtableBytes: 64 * 1024,
  targetTableBytes: 64 * 1024,
  levelBaseBytes: 256 * 1024,
  levelSizeMultiplier: 4,
}

// ---- helpers ---------------------------------------------------------------

const roots: string[] = []
function tempRoot(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-ro-'))
  roots.push(d)
  return d
}
afterAll(() => {
  for (const d of roots.splice(0)) {
    chmodTree(d, 0o755, 0o644)
    fs.rmSync(d, { recursive: true, force: true })
  }
})

function chmodTree(dir: string, dirMode: number, fileMode: number): void {
  if (!fs.existsSync(dir)) return
  fs.chmodSync(dir, dirMode)
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) chmodTree(p, dirMode, fileMode)
    else fs.chmodSync(p, fileMode)
  }
}

/**
 * Everything about a directory a write, rename, delete, create, truncate,
 * chmod or even a reopen-for-writing of a file would change (not atime: reads
 * may move it). A rewrite in place with the same bytes still moves mtime/ctime.
 */
function fingerprint(dir: string): unknown {
  const st = fs.statSync(dir, { bigint: true })
  const names = fs.readdirSync(dir).sort()
  return {
    dir: { ino: st.ino, mode: st.mode, nlink: st.nlink, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs },
    names,
    files: names.map((name) => {
      const p = path.join(dir, name)
      const s = fs.lstatSync(p, { bigint: true })
      const sha256 = s.isFile() ? createHash('sha256').update(fs.readFileSync(p)).digest('hex') : undefined
      return { name, ino: s.ino, mode: s.mode, nlink: s.nlink, size: s.size, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs, sha256 }
    }),
  }
}

/** Targets of this process's descriptors that are in `dir` ('... (deleted)' once unlinked). */
function fdsInto(dir: string): string[] {
  const prefix = fs.realpathSync(dir) + path.sep
  const out: string[] = []
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`)
      if (target.startsWith(prefix)) out.push(target)
    } catch {
      // Closed meanwhile (the readdir's own descriptor).
    }
  }
  return out
}

/** fd -> target of this process's descriptors on table files of `dir`. */
function tableFds(dir: string): Map<string, string> {
  const prefix = fs.realpathSync(dir) + path.sep
  const out = new Map<string, string>()
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`)
      if (target.startsWith(prefix) && /\.sst( \(deleted\))?$/.test(target)) out.set(fd, target)
    } catch {
      // Closed meanwhile.
    }
  }
  return out
}

function deletedTableFds(dir: string): string[] {
  return fdsInto(dir).filter((t) => /\.sst \(deleted\)$/.test(t))
}

function sstNames(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith('.sst'))
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

type Pairs = Array<[string, string]>

async function scan(it: AsyncIterable<[Buffer, Buffer]>): Promise<Pairs> {
  const out: Pairs = []
  for await (const [k, v] of it) out.push([k.toString('latin1'), v.toString('latin1')])
  return out
}

function scanSync(it: StrataIterator): Pairs {
  const out: Pairs = []
  for (let e = it.nextSync(); e !== undefined; e = it.nextSync()) out.push([e[0].toString('latin1'), e[1].toString('latin1')])
  it.close()
  return out
}

function sorted(m: Map<string, string>): Pairs {
  return [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

/** The error code of a call that must fail: `sync` calls throw, the others return a rejected promise. */
async function failure(call: () => unknown, how: 'sync' | 'async'): Promise<string> {
  let result: unknown
  try {
    result = call()
  } catch (err) {
    if (how === 'async') throw new Error(`threw synchronously instead of rejecting: ${String(err)}`)
    expect(err).toBeInstanceOf(StrataError)
    return (err as StrataError).code
  }
  if (how === 'sync') throw new Error('did not throw synchronously')
  expect(result).toBeInstanceOf(Promise)
  try {
    await result
  } catch (err) {
    expect(err).toBeInstanceOf(StrataError)
    return (err as StrataError).code
  }
  throw new Error('resolved instead of rejecting')
}

/** Every write-like call on a read-only view rejects with STRATA_READ_ONLY; none creates anything. */
async function expectWritesRejected(db: Database, dir: string): Promise<void> {
  const cpTarget = path.join(dir, 'checkpoint-attempt')
  expect(await failure(() => db.put('k00001', 'x'), 'async')).toBe('STRATA_READ_ONLY')
  expect(await failure(() => db.put('brand-new', 'x', { sync: true }), 'async')).toBe('STRATA_READ_ONLY')
  expect(await failure(() => db.delete('k00001'), 'async')).toBe('STRATA_READ_ONLY')
  expect(
    await failure(
      () =>
        db.batch([
          { type: 'put', key: 'a', value: 'b' },
          { type: 'del', key: 'k00002' },
        ]),
      'async',
    ),
  ).toBe('STRATA_READ_ONLY')
  expect(await failure(() => db.batch([{ type: 'check', key: 'a', ifVersion: 0 }]), 'async')).toBe('STRATA_READ_ONLY')
  expect(
    await failure(
      () =>
        db.transaction(async (tx) => {
          await tx.get('k00003')
          tx.put('k00003', 'y')
          tx.delete('k00004')
        }),
      'async',
    ),
  ).toBe('STRATA_READ_ONLY')
  expect(await failure(() => db.compactRange(), 'async')).toBe('STRATA_READ_ONLY')
  expect(await failure(() => db.compactRange('a', 'z'), 'async')).toBe('STRATA_READ_ONLY')
  expect(await failure(() => db.checkpoint(cpTarget), 'async')).toBe('STRATA_READ_ONLY')
  expect(fs.existsSync(cpTarget)).toBe(false)
  expect(await failure(() => db.changes(), 'sync')).toBe('STRATA_READ_ONLY')
  expect(await failure(() => db.changes({ since: 0, live: true }), 'sync')).toBe('STRATA_READ_ONLY')
  // A transaction that only reads commits nothing: it is not a write.
  expect(db.isOpen).toBe(true)
}

/**
 * Everything a reader can do on a read-only view, checking the answers agree
 * with each other (and with `expected` when given): forward and reverse
 * scans, get/getSync/getEntry, bounded and seeked iterators, a snapshot,
 * refresh (nothing changed: same sequence), rejected writes, close.
 * Returns what the view held.
 */
async function exerciseView(dir: string, expected?: Map<string, string>, opts: OpenOptions = RO): Promise<Pairs> {
  const db = await open(dir, opts)
  const forward = await scan(db.iterator())
  expect(scanSync(db.iterator({ reverse: true })).reverse()).toEqual(forward)
  if (expected !== undefined) expect(forward).toEqual(sorted(expected))
  for (const [k, v] of forward) {
    expect(db.getSync(k)?.toString('latin1')).toBe(v)
    expect((await db.get(k))?.toString('latin1')).toBe(v)
  }
  expect(db.getSync('no-such-key')).toBeUndefined()
  if (forward.length > 0) {
    const [k] = forward[Math.floor(forward.length / 2)]
    const entry = await db.getEntry(k)
    expect(entry?.version).toBeGreaterThan(0)
    const from = forward.findIndex(([key]) => key >= k)
    expect(scanSync(db.iterator({ gte: k, limit: 5 }))).toEqual(forward.slice(from, from + 5))
    const it = db.iterator()
    it.seek(k)
    expect(it.nextSync()?.[0].toString('latin1')).toBe(k)
    it.close()
  }
  const seq = db.stats().lastSequence
  const snap = db.snapshot()
  expect(snap.sequence).toBe(seq)
  expect(await scan(snap.iterator())).toEqual(forward)
  // Nothing changed on disk: the refreshed view is the same.
  expect(await db.refresh()).toBe(seq)
  expect(await scan(db.iterator())).toEqual(forward)
  expect(await scan(snap.iterator())).toEqual(forward)
  snap.release()
  await expectWritesRejected(db, dir)
  expect(await db.transaction(async (tx) => (await tx.get(forward[0]?.[0] ?? 'x'))?.toString('latin1'))).toBe(forward[0]?.[1])
  await db.close()
  expect(db.isOpen).toBe(false)
  expect(fdsInto(dir)).toEqual([])
  return forward
}

/** Runs `fn` and checks the directory is exactly as before. */
async function unchanged<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const before = fingerprint(dir)
  const result = await fn()
  expect(fingerprint(dir)).toEqual(before)
  return result
}

/** The state of the history after writes 1..n; the ops of writes are computed once. */
class History {
  private readonly writesOf = new Map<string, number[]>()
  private known = 0

  private extend(n: number): void {
    for (; this.known < n; ) {
      const w = ++this.known
      for (const { key } of H.opsOf(w)) {
        let list = this.writesOf.get(key)
        if (list === undefined) this.writesOf.set(key, (list = []))
        list.push(w)
      }
    }
  }

  /** key -> value after writes 1..n (`counter` included when n > 0). */
  stateAt(n: number): Map<string, string> {
    this.extend(n)
    const m = new Map<string, string>()
    if (n > 0) m.set(H.COUNTER_KEY, String(n))
    for (const [key, list] of this.writesOf) {
      // The last write <= n of this key.
      let lo = 0
      let hi = list.length
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (list[mid] <= n) lo = mid + 1
        else hi = mid
      }
      if (lo === 0) continue
      const w = list[lo - 1]
      const len = H.opsOf(w).find((o) => o.key === key)!.len
      if (len >= 0) m.set(key, H.makeValue(key, w, len).toString('latin1'))
    }
    return m
  }
}

/** Counter of a state read from a scan (0 when absent). */
function counterOf(pairs: Pairs): number {
  const c = pairs.find(([k]) => k === H.COUNTER_KEY)
  return c === undefined ? 0 : Number(c[1])
}

/**
 * Checks a read (a view, a snapshot: anything with getSync and iterator) of
 * the history: every value well-formed and not newer than the counter, the
 * forward scan, the reverse scan and point reads of every key agree, and the
 * whole is exactly the state after writes 1..counter. Returns the counter.
 */
async function checkHistoryRead(
  reader: { getSync(key: string): Buffer | undefined; iterator(o?: { reverse?: boolean }): StrataIterator },
  history: History,
  label: string,
): Promise<number> {
  const forward = await scan(reader.iterator())
  const reverse = scanSync(reader.iterator({ reverse: true })).reverse()
  const problems: string[] = []
  if (reverse.length !== forward.length || reverse.some(([k, v], i) => k !== forward[i][0] || v !== forward[i][1])) {
    problems.push(`reverse scan (${reverse.length} entries) differs from forward scan (${forward.length})`)
  }
  const n = counterOf(forward)
  const counter = reader.getSync(H.COUNTER_KEY)?.toString('latin1')
  if (counter !== (n > 0 ? String(n) : undefined)) problems.push(`getSync(counter) = ${counter}, scan says ${n}`)
  for (const [k, v] of forward) {
    if (k === H.COUNTER_KEY) continue
    const w = H.parseValue(k, Buffer.from(v, 'latin1'))
    if (w === undefined || w > n) problems.push(`value of ${k} is not a well-formed value of a write <= ${n}: ${v.slice(0, 40)}`)
  }
  const byKey = new Map(forward)
  for (const k of ALL_KEYS) {
    const got = reader.getSync(k)?.toString('latin1')
    if (got !== byKey.get(k)) problems.push(`getSync(${k}) = ${got?.slice(0, 30)}, scan says ${byKey.get(k)?.slice(0, 30)}`)
  }
  expect(problems.slice(0, 10), label).toEqual([])
  const expected = sorted(history.stateAt(n))
  if (forward.length !== expected.length || forward.some(([k, v], i) => k !== expected[i][0] || v !== expected[i][1])) {
    // Only build the (large) diff when it fails.
    expect(forward, `${label}: state at counter ${n}`).toEqual(expected)
  }
  return n
}

/** Writes 1..n of the history into a writable db, `inFlight` batches at a time, issued in order. */
async function writeHistory(db: Database, from: number, to: number, inFlight = 4): Promise<void> {
  const pending: Array<Promise<void>> = []
  for (let n = from; n <= to; n++) {
    pending.push(db.batch(H.batchOf(n)))
    if (pending.length >= inFlight) await pending.shift()
  }
  await Promise.all(pending)
}

// ---- 1. never changes a byte ----------------------------------------------

/** A database of `count` keys over several tables and levels; `extra` writes after the last flush. */
async function buildDatabase(dir: string, options: OpenOptions = {}): Promise<Map<string, string>> {
  const model = new Map<string, string>()
  const db = await open(dir, { ...SMALL, ...options })
  for (let round = 0; round < 3; round++) {
    const ops: BatchOp[] = []
    for (let i = 0; i < 1200; i++) {
      const key = `key${String((i * 7 + round * 311) % 1500).padStart(5, '0')}`
      if ((i + round) % 9 === 0) {
        ops.push({ type: 'del', key })
        model.delete(key)
      } else {
        const value = `${key}-r${round}-${'v'.repeat(30 + (i % 50))}`
        ops.push({ type: 'put', key, value })
        model.set(key, value)
      }
      if (ops.length === 100) await db.batch(ops.splice(0))
    }
    if (ops.length > 0) await db.batch(ops)
    if (round === 1) await db.compactRange()
  }
  await db.close()
  return model
}

describe('a read-only open never changes a byte', () => {
  it('of a cleanly closed database', async () => {
    const dir = path.join(tempRoot(), 'db')
    const model = await buildDatabase(dir)
    expect(sstNames(dir).length).toBeGreaterThan(1)
    await unchanged(dir, () => exerciseView(dir, model))
  })

  it('of a database with unflushed WAL data, then with a torn WAL tail (dropped, the rest read)', async () => {
    const dir = path.join(tempRoot(), 'db')
    const model = await buildDatabase(dir)
    // Writes that stay in the WAL only: one record each (each awaited), no flush at close.
    const db = await open(dir, { ...SMALL, memtableBytes: 1 << 20, flushOnClose: false })
    for (let i = 0; i < 200; i++) {
      const key = `tail${String(i).padStart(3, '0')}`
      await db.put(key, `tail-value-${i}-${'t'.repeat(60)}`)
      model.set(key, `tail-value-${i}-${'t'.repeat(60)}`)
    }
    await db.delete('key00007')
    model.delete('key00007')
    await db.put('last', 'the last record')
    model.set('last', 'the last record')
    await db.close()

    const logs = fs.readdirSync(dir).filter((n) => n.endsWith('.log')).sort()
    const lastLog = logs[logs.length - 1]
    const lastLogPath = path.join(dir, lastLog)
    expect(fs.statSync(lastLogPath).size).toBeGreaterThan(200 * 60)

    await unchanged(dir, () => exerciseView(dir, model))
    {
      const view = await open(dir, RO)
      expect(view.stats().recovery.droppedTails).toEqual([])
      expect(view.stats().recovery.walRecords).toBeGreaterThanOrEqual(202)
      await view.close()
    }

    // Tear the last record: the view drops it, reads everything before it, and still writes nothing.
    fs.truncateSync(lastLogPath, fs.statSync(lastLogPath).size - 3)
    model.delete('last')
    await unchanged(dir, async () => {
      await exerciseView(dir, model)
      const view = await open(dir, RO)
      const { droppedTails, warnings } = view.stats().recovery
      expect(droppedTails).toHaveLength(1)
      expect(droppedTails[0].file).toBe(lastLog)
      expect(droppedTails[0].bytes).toBeGreaterThan(0)
      expect(warnings.length).toBeGreaterThan(0)
      expect(view.getSync('last')).toBeUndefined()
      expect(view.getSync('tail199')?.toString()).toBe(`tail-value-199-${'t'.repeat(60)}`)
      expect(view.getSync('key00007')).toBeUndefined()
      await view.close()
    })

    // A writable open agrees with the view (and it does change the directory: the check above can see changes).
    const before = fingerprint(dir)
    const w = await open(dir)
    expect(await scan(w.iterator())).toEqual(sorted(model))
    await w.close()
    expect(fingerprint(dir)).not.toEqual(before)
  })

  it('of a previous-format database without the STRATADB marker (no upgrade)', async () => {
    const dir = path.join(tempRoot(), 'v1')
    fs.cpSync(FORMAT_V1, dir, { recursive: true })
    const model = new Map<string, string>()
    for (let i = 0; i < 3000; i++) {
      if (i % 7 === 0) continue
      model.set(`key${String(i).padStart(5, '0')}`, `value-${i}-${i % 3 === 0 ? 'second' : 'first'}`)
    }
    await unchanged(dir, () => exerciseView(dir, model))
    expect(fs.existsSync(path.join(dir, 'STRATADB'))).toBe(false)
    // A writable open would have written the marker.
    const w = await open(dir)
    await w.close()
    expect(fs.existsSync(path.join(dir, 'STRATADB'))).toBe(true)
  })

  it('of a checkpoint directory', async () => {
    const root = tempRoot()
    const dir = path.join(root, 'db')
    const cpDir = path.join(root, 'cp')
    const model = await buildDatabase(dir)
    const db = await open(dir, SMALL)
    await db.put('after-build', 'in the WAL only')
    model.set('after-build', 'in the WAL only')
    const result = await db.checkpoint(cpDir)
    await db.put('after-checkpoint', 'not in the checkpoint')
    await db.close()
    const source = fingerprint(dir)
    await unchanged(cpDir, async () => {
      await exerciseView(cpDir, model)
      const view = await open(cpDir, RO)
      expect(view.stats().lastSequence).toBe(result.sequence)
      await view.close()
    })
    // The checkpoint's tables are hard links of the source's: their inodes were not touched either.
    expect(fingerprint(dir)).toEqual(source)
  })

  it('of a directory made read-only (0555, files 0444): no mtime, ctime or inode moves', async () => {
    const dir = path.join(tempRoot(), 'db')
    const model = await buildDatabase(dir, { flushOnClose: false })
    expect(fs.readdirSync(dir).some((n) => n.endsWith('.log') && fs.statSync(path.join(dir, n)).size > 0)).toBe(true)
    chmodTree(dir, 0o555, 0o444)
    try {
      await unchanged(dir, () => exerciseView(dir, model))
    } finally {
      chmodTree(dir, 0o755, 0o644)
    }
  })
})

// ---- 2. another process writes and compacts ----------------------------------

/** The writer child: its stdout lines as they come. */
class WriterChild {
  readonly proc: ChildProcess
  acked = 0
  compactions = 0
  final: { n: number; maxGapMs: number; maxPauseMs: number } | undefined
  closed = false
  stderr = ''
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  private waiters: Array<() => void> = []

  constructor(config: object) {
    this.proc = spawn(process.execPath, [WRITER_SCRIPT, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] })
    let buffered = ''
    this.proc.stdout!.setEncoding('utf8')
    this.proc.stdout!.on('data', (chunk: string) => {
      buffered += chunk
      let nl: number
      while ((nl = buffered.indexOf('\n')) >= 0) {
        this.line(buffered.slice(0, nl))
        buffered = buffered.slice(nl + 1)
      }
    })
    this.proc.stderr!.setEncoding('utf8')
    this.proc.stderr!.on('data', (chunk: string) => (this.stderr += chunk))
    this.exit = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })))
    void this.exit.then(() => this.wake())
  }

  ready = false

  private line(l: string): void {
    const [what, a, b, c] = l.split(' ')
    if (what === 'ready') this.ready = true
    else if (what === 'acked') this.acked = Math.max(this.acked, Number(a))
    else if (what === 'compacted') {
      this.compactions = Number(a)
      this.acked = Math.max(this.acked, Number(b))
    } else if (what === 'final') this.final = { n: Number(a), maxGapMs: Number(b), maxPauseMs: Number(c) }
    else if (what === 'closed') this.closed = true
    this.wake()
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }

  /** Resolves once `cond` holds; rejects when the child exits first or after `ms`. */
  async until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms
    while (!cond()) {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`writer exited (${this.proc.exitCode ?? this.proc.signalCode}) before ${what}: ${this.stderr}`)
      if (Date.now() > deadline) throw new Error(`writer: no ${what} within ${ms} ms: ${this.stderr}`)
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve)
        setTimeout(resolve, 100)
      })
    }
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL')
  }
}

function lockFingerprint(dir: string): unknown {
  const p = path.join(dir, 'LOCK')
  const s = fs.statSync(p, { bigint: true })
  return { ino: s.ino, size: s.size, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs, content: fs.readFileSync(p, 'latin1') }
}

describe('read-only views while another process writes and compacts', () => {
  it('are consistent prefixes of its history, survive its compactions, and neither block nor harm it', async () => {
    const dir = path.join(tempRoot(), 'db')
    const history = new History()
    const child = new WriterChild({
      dir,
      // A small maxManifestBytes: besides appends, the manifest is rewritten and CURRENT switched every few seconds.
      options: { ...SMALL, maxManifestBytes: 8 * 1024 },
      inFlight: 4,
      // Paced: each flush or compaction is a manifest edit, and a view's load starts over when one lands
      // during it (see the report on the retry limit); ~2000 writes/s is a flush every ~50 ms.
      writesPerSecond: 2000,
      compactEveryMs: 500,
      reportEveryMs: 20,
      maxRunMs: 60_000,
    })
    const stats = { opens: 0, refreshes: 0, loadMs: [] as number[], checkMs: [] as number[], maxDeletedFds: 0, counters: [] as number[], grewOnRefresh: 0, tornTails: 0 }
    try {
      await child.until(() => child.ready, 'ready')
      const lockBefore = lockFingerprint(dir)
      const firstManifest = fs.readFileSync(path.join(dir, 'CURRENT'), 'latin1').trim()
      await child.until(() => child.compactions >= 1, 'first compaction')

      // A view kept for the whole run, with an iterator half-way and a snapshot.
      const pinnedMin = child.acked
      const pinned = await open(dir, RO)
      const pinnedN = await checkHistoryRead(pinned, history, 'pinned view')
      expect(pinnedN).toBeGreaterThanOrEqual(pinnedMin)
      const pinnedState = sorted(history.stateAt(pinnedN))
      const pinnedIt = pinned.iterator()
      const pinnedHead: Pairs = []
      for (let i = 0; i < 100; i++) {
        const e = pinnedIt.nextSync()!
        pinnedHead.push([e[0].toString('latin1'), e[1].toString('latin1')])
      }
      const pinnedSnap = pinned.snapshot()
      const compactionsAtPin = child.compactions
      // No other view is open: these descriptors are the pinned view's tables (automatic compactions may have deleted some already).
      const pinnedFds = new Map([...tableFds(dir)].map(([fd, target]) => [fd, target.replace(/ \(deleted\)$/, '')]))
      expect(pinnedFds.size).toBeGreaterThan(0)

      // 30 views: opened anew (every third) or refreshed, each checked in full.
      const start = Date.now()
      let view: Database | undefined
      let previousN = 0
      for (let i = 0; i < 30; i++) {
        const minN = child.acked
        const t0 = performance.now()
        let overRefresh: { it: StrataIterator; head: Pairs; n: number } | undefined
        if (view === undefined || i % 3 === 0) {
          await view?.close()
          view = await open(dir, RO)
          stats.opens++
        } else {
          // An iterator opened before the refresh keeps reading the old state.
          const it = view.iterator()
          const head: Pairs = []
          for (let j = 0; j < 50; j++) {
            const e = it.nextSync()!
            head.push([e[0].toString('latin1'), e[1].toString('latin1')])
          }
          overRefresh = { it, head, n: previousN }
          const seq = await view.refresh()
          expect(seq).toBe(view.stats().lastSequence)
          stats.refreshes++
        }
        stats.loadMs.push(performance.now() - t0)
        const t1 = performance.now()
        const n = await checkHistoryRead(view, history, `view ${i}`)
        stats.checkMs.push(performance.now() - t1)
        stats.counters.push(n)
        if (overRefresh !== undefined && n > previousN) stats.grewOnRefresh++
        // A load that met an append in progress drops it as a torn tail (and says so in stats().recovery).
        if (view.stats().recovery.droppedTails.length > 0) stats.tornTails++
        // Every write the writer acknowledged before the open or refresh is in the view.
        expect(n, `view ${i}`).toBeGreaterThanOrEqual(minN)
        expect(n, `view ${i}`).toBeGreaterThanOrEqual(previousN)
        if (overRefresh !== undefined) {
          const rest = scanSync(overRefresh.it)
          expect([...overRefresh.head, ...rest], `iterator across refresh ${i}`).toEqual(sorted(history.stateAt(overRefresh.n)))
        }
        previousN = n
        stats.maxDeletedFds = Math.max(stats.maxDeletedFds, deletedTableFds(dir).length)
        const next = start + (i + 1) * 330
        if (Date.now() < next) await sleep(next - Date.now())
      }

      // The writer compacted (deleting every table the pinned view opened) while the pinned view stayed open.
      await child.until(() => child.compactions >= compactionsAtPin + 2, 'two compactions after the pinned open')
      stats.maxDeletedFds = Math.max(stats.maxDeletedFds, deletedTableFds(dir).length)
      // Every table the pinned view opened is gone from the directory, still open (and read below) through its descriptor.
      const nowFds = tableFds(dir)
      for (const [fd, target] of pinnedFds) expect(nowFds.get(fd), `fd ${fd}`).toBe(`${target} (deleted)`)
      const pinnedRest = scanSync(pinnedIt)
      expect([...pinnedHead, ...pinnedRest], 'pinned iterator').toEqual(pinnedState)
      expect(await checkHistoryRead(pinnedSnap, history, 'pinned snapshot')).toBe(pinnedN)
      expect(await checkHistoryRead(pinned, history, 'pinned view, late')).toBe(pinnedN)
      // Its refresh moves it to what the writer acknowledged since; the snapshot stays.
      const minRefreshed = child.acked
      await pinned.refresh()
      const refreshedN = await checkHistoryRead(pinned, history, 'pinned view, refreshed')
      expect(refreshedN).toBeGreaterThanOrEqual(minRefreshed)
      expect(refreshedN).toBeGreaterThan(pinnedN)
      expect(await checkHistoryRead(pinnedSnap, history, 'pinned snapshot after refresh')).toBe(pinnedN)
      pinnedSnap.release()
      // The pinned view's old tables are closed now that nothing reads them.
      const afterRelease = tableFds(dir)
      for (const [fd, target] of pinnedFds) expect(afterRelease.get(fd), `fd ${fd}`).not.toBe(`${target} (deleted)`)
      await pinned.close()
      await view!.close()
      expect(fdsInto(dir)).toEqual([])

      // The writer kept going all along, and its lock was never touched.
      expect(stats.counters[stats.counters.length - 1]).toBeGreaterThan(stats.counters[0])
      // refresh() sees the writes made since the view was loaded (330 ms apart: ~600 writes).
      expect(stats.grewOnRefresh).toBeGreaterThan(stats.refreshes / 2)
      expect(lockFingerprint(dir)).toEqual(lockBefore)
      const lastManifest = fs.readFileSync(path.join(dir, 'CURRENT'), 'latin1').trim()
      expect(lastManifest > firstManifest, `manifest rewritten (${firstManifest} -> ${lastManifest})`).toBe(true)
      child.proc.stdin!.write('stop\n')
      await child.until(() => child.closed, 'close')
      expect(await child.exit).toEqual({ code: 0, signal: null })
      expect(child.stderr).toBe('')
      const final = child.final!
      expect(final.n).toBeGreaterThan(refreshedN)
      // Never held up for long (the compactRange pauses are the writer's own, at most 3 s).
      expect(final.maxGapMs).toBeLessThan(5000)
      expect(fs.existsSync(path.join(dir, 'LOCK'))).toBe(false)

      // It reopens cleanly, holding everything it acknowledged (and nothing more).
      const w = await open(dir, SMALL)
      expect(w.stats().recovery.droppedTails).toEqual([])
      expect(await checkHistoryRead(w, history, 'writer reopened')).toBe(final.n)
      await w.close()

      const avg = (a: number[]): number => Math.round((a.reduce((x, y) => x + y, 0) / a.length) * 10) / 10
      console.log(
        `read-only under a writer: ${stats.opens} opens, ${stats.refreshes} refreshes (${stats.grewOnRefresh} saw new writes), ${stats.tornTails} views dropped a torn WAL tail, load avg ${avg(stats.loadMs)} ms (max ${Math.round(Math.max(...stats.loadMs))}), ` +
          `check avg ${avg(stats.checkMs)} ms; writer: ${final.n} writes, ${child.compactions} compactRange, longest ack gap ${final.maxGapMs} ms (paused at most ${final.maxPauseMs} ms for a compactRange flush); ` +
          `views saw counters ${stats.counters[0]}..${stats.counters[stats.counters.length - 1]}; deleted tables held open at most ${stats.maxDeletedFds}; ${firstManifest} -> ${lastManifest}`,
      )
    } finally {
      child.kill()
    }
  })
})

// ---- 3. writes and open errors ------------------------------------------------

describe('read-only errors', () => {
  it('writes reject with STRATA_READ_ONLY and leave nothing behind; refresh() of a writable db is STRATA_INVALID_ARGUMENT', async () => {
    const dir = path.join(tempRoot(), 'db')
    await buildDatabase(dir)
    await unchanged(dir, async () => {
      const db = await open(dir, RO)
      const before = await scan(db.iterator())
      await expectWritesRejected(db, dir)
      expect(await scan(db.iterator())).toEqual(before)
      const s = db.snapshot()
      expect(s.sequence).toBe(db.stats().lastSequence)
      s.release()
      await db.close()
      // Closed: everything is STRATA_NOT_OPEN.
      expect(await failure(() => db.refresh(), 'async')).toBe('STRATA_NOT_OPEN')
      expect(await failure(() => db.put('a', 'b'), 'async')).toBe('STRATA_NOT_OPEN')
    })
    const w = await open(dir)
    expect(await failure(() => w.refresh(), 'async')).toBe('STRATA_INVALID_ARGUMENT')
    await w.close()
  })

  it('a missing or empty directory is STRATA_NOT_FOUND and stays as it was; an incomplete checkpoint is STRATA_NOT_A_DATABASE', async () => {
    const root = tempRoot()
    const missing = path.join(root, 'missing')
    expect(await failure(() => open(missing, RO), 'async')).toBe('STRATA_NOT_FOUND')
    expect(await failure(() => open(path.join(missing, 'deeper'), RO), 'async')).toBe('STRATA_NOT_FOUND')
    expect(fs.existsSync(missing)).toBe(false)
    // createIfMissing does not make a read-only open create anything.
    expect(await failure(() => open(missing, { readOnly: true, createIfMissing: true }), 'async')).toBe('STRATA_NOT_FOUND')
    expect(fs.existsSync(missing)).toBe(false)

    const empty = path.join(root, 'empty')
    fs.mkdirSync(empty)
    await unchanged(empty, async () => {
      expect(await failure(() => open(empty, RO), 'async')).toBe('STRATA_NOT_FOUND')
    })
    expect(fs.readdirSync(empty)).toEqual([])

    const file = path.join(root, 'a-file')
    fs.writeFileSync(file, 'x')
    expect(await failure(() => open(file, RO), 'async')).toBe('STRATA_INVALID_ARGUMENT')

    // An interrupted checkpoint: a complete one with CHECKPOINT-PARTIAL put back.
    const dir = path.join(root, 'db')
    await buildDatabase(dir)
    const cp = path.join(root, 'cp')
    const db = await open(dir)
    await db.checkpoint(cp)
    await db.close()
    fs.writeFileSync(path.join(cp, 'CHECKPOINT-PARTIAL'), '')
    await unchanged(cp, async () => {
      expect(await failure(() => open(cp, RO), 'async')).toBe('STRATA_NOT_A_DATABASE')
    })
    expect(fdsInto(cp)).toEqual([])

    // A directory of other files is refused untouched too.
    const foreign = path.join(root, 'foreign')
    fs.mkdirSync(foreign)
    fs.writeFileSync(path.join(foreign, 'notes.txt'), 'hello')
    await unchanged(foreign, async () => {
      expect(await failure(() => open(foreign, RO), 'async')).toBe('STRATA_NOT_A_DATABASE')
    })
  })
})

// ---- 4. checkpoints, and several opens at once -----------------------------------

describe('checkpoints and concurrent opens', () => {
  it('a checkpoint opens read-only at its sequence; two views and the writable db of the same directory coexist', async () => {
    const root = tempRoot()
    const dir = path.join(root, 'db')
    const history = new History()
    const w = await open(dir, SMALL)
    await writeHistory(w, 1, 3000)

    // Quiescent: the checkpoint holds exactly what a snapshot at its sequence holds.
    const snap = w.snapshot()
    const cp1 = path.join(root, 'cp1')
    const r1 = await w.checkpoint(cp1)
    expect(r1.sequence).toBe(snap.sequence)
    const atCheckpoint = await scan(snap.iterator())
    snap.release()
    expect(counterOf(atCheckpoint)).toBe(3000)

    // With writes going on: the checkpoint is a consistent prefix of them.
    const writing = writeHistory(w, 3001, 9000)
    await sleep(20)
    const cp2 = path.join(root, 'cp2')
    const r2 = await w.checkpoint(cp2)
    await writing

    const a = await open(cp1, RO)
    const b = await open(cp1, RO)
    expect(a.stats().lastSequence).toBe(r1.sequence)
    expect(await scan(a.iterator())).toEqual(atCheckpoint)
    expect(await scan(b.iterator())).toEqual(atCheckpoint)
    expect(await checkHistoryRead(a, history, 'checkpoint 1')).toBe(3000)
    expect(await a.refresh()).toBe(r1.sequence)
    await a.close()
    expect(await checkHistoryRead(b, history, 'checkpoint 1, second view')).toBe(3000)
    await b.close()

    const c = await open(cp2, RO)
    expect(c.stats().lastSequence).toBe(r2.sequence)
    const n2 = await checkHistoryRead(c, history, 'checkpoint 2')
    expect(n2).toBeGreaterThanOrEqual(3000)
    expect(n2).toBeLessThanOrEqual(9000)
    await c.close()

    // Views of the live directory beside the writable db of this process: no lock conflict.
    const lock = lockFingerprint(dir)
    const v1 = await open(dir, RO)
    const v2 = await open(dir, RO)
    expect(await checkHistoryRead(v1, history, 'live view 1')).toBe(9000)
    const more = writeHistory(w, 9001, 12000)
    expect(await checkHistoryRead(v2, history, 'live view 2')).toBe(9000)
    await more
    expect(await v2.refresh()).toBe(v2.stats().lastSequence)
    expect(await checkHistoryRead(v2, history, 'live view 2, refreshed')).toBe(12000)
    expect(await checkHistoryRead(v1, history, 'live view 1, not refreshed')).toBe(9000)
    await v1.close()
    await v2.close()
    expect(lockFingerprint(dir)).toEqual(lock)
    // The writable db goes on as if nothing happened.
    await writeHistory(w, 12001, 12100)
    await w.compactRange()
    expect(await checkHistoryRead(w, history, 'writable')).toBe(12100)
    await w.close()
    expect(fdsInto(dir)).toEqual([])
  })
})

// ---- 5. old snapshots and iterators after a refresh --------------------------------

describe('refresh', () => {
  it('keeps old snapshots and iterators on their state and closes the old files once the last is released', async () => {
    const dir = path.join(tempRoot(), 'db')
    // No automatic compaction: the only tables deleted are those compactRange() replaces.
    // Uncompressed: the values compress so well that the writes would fit one table.
    const w = await open(dir, { ...SMALL, autoCompaction: false, compression: 'none' })
    const keys = Array.from({ length: 2000 }, (_, i) => `key${String(i).padStart(5, '0')}`)
    const v1 = new Map<string, string>()
    for (let i = 0; i < keys.length; i += 100) {
      const ops: BatchOp[] = keys.slice(i, i + 100).map((k) => ({ type: 'put', key: k, value: `${k}-v1-${'a'.repeat(80)}` }))
      for (const op of ops) v1.set(op.key as string, (op as { value: string }).value)
      await w.batch(ops)
    }
    await w.compactRange()
    await w.put('in-wal', 'v1')
    v1.set('in-wal', 'v1')
    const oldTables = sstNames(dir).sort()
    expect(oldTables.length).toBeGreaterThan(1)
    /** The old tables this process holds open after their deletion, each once. */
    const oldTablesHeld = (): string[] =>
      [...new Set(deletedTableFds(dir).map((t) => path.basename(t.replace(/ \(deleted\)$/, ''))))].filter((n) => oldTables.includes(n)).sort()

    const ro = await open(dir, RO)
    const oldSeq = ro.stats().lastSequence
    expect(await scan(ro.iterator())).toEqual(sorted(v1))
    const snap = ro.snapshot()
    const it = ro.iterator()
    const head: Pairs = []
    for (let i = 0; i < 10; i++) {
      const e = it.nextSync()!
      head.push([e[0].toString('latin1'), e[1].toString('latin1')])
    }
    const reverseIt = ro.iterator({ reverse: true })
    const reverseHead = reverseIt.nextSync()!

    // The writer overwrites, deletes and compacts: every table the view opened is deleted.
    const v2 = new Map<string, string>()
    for (let i = 0; i < keys.length; i += 100) {
      const ops: BatchOp[] = []
      for (const k of keys.slice(i, i + 100)) {
        if (Number(k.slice(3)) % 5 === 0) ops.push({ type: 'del', key: k })
        else {
          ops.push({ type: 'put', key: k, value: `${k}-v2` })
          v2.set(k, `${k}-v2`)
        }
      }
      await w.batch(ops)
    }
    await w.delete('in-wal')
    await w.put('new-key', 'v2')
    v2.set('new-key', 'v2')
    await w.compactRange()
    expect(sstNames(dir).filter((n) => oldTables.includes(n))).toEqual([])
    expect(oldTablesHeld()).toEqual(oldTables)

    // Before the refresh the view is unchanged.
    expect(ro.getSync('key00001')?.toString()).toBe(v1.get('key00001'))
    const newSeq = await ro.refresh()
    expect(newSeq).toBeGreaterThan(oldSeq)
    expect(newSeq).toBe(ro.stats().lastSequence)
    expect(await scan(ro.iterator())).toEqual(sorted(v2))
    expect(ro.getSync('key00005')).toBeUndefined()
    expect(ro.getSync('in-wal')).toBeUndefined()
    expect(ro.getSync('new-key')?.toString()).toBe('v2')
    expect(ro.snapshot().sequence).toBe(newSeq)

    // The old snapshot and iterators still read the old state, from the deleted tables.
    expect(snap.sequence).toBe(oldSeq)
    expect(snap.getSync('key00005')?.toString()).toBe(v1.get('key00005'))
    expect((await snap.get('in-wal'))?.toString()).toBe('v1')
    expect(snap.getSync('new-key')).toBeUndefined()
    expect(await scan(snap.iterator())).toEqual(sorted(v1))
    expect([...head, ...scanSync(it)]).toEqual(sorted(v1))
    expect(oldTablesHeld()).toEqual(oldTables)

    // Released one by one: the old files close with the last.
    snap.release()
    expect(oldTablesHeld()).toEqual(oldTables)
    expect(reverseHead[0].toString('latin1')).toBe(sorted(v1)[v1.size - 1][0])
    const reverseRest = scanSync(reverseIt)
    expect([[reverseHead[0].toString('latin1'), reverseHead[1].toString('latin1')], ...reverseRest].reverse()).toEqual(sorted(v1))
    expect(oldTablesHeld()).toEqual([])
    // A released snapshot is closed for reads; the refreshed view goes on.
    expect(() => snap.getSync('key00001')).toThrow(StrataError)
    expect(ro.getSync('key00001')?.toString()).toBe('key00001-v2')

    // The new view's own files: live tables only; all closed at close.
    expect(fdsInto(dir).every((t) => !t.endsWith(' (deleted)'))).toBe(true)
    await ro.close()
    await w.close()
    expect(fdsInto(dir)).toEqual([])
  })
})

describe('close', () => {
  // Database.close() closes the views a refresh replaced too, as a writable
  // db's close() frees everything whatever snapshots are left: their table
  // descriptors (of deleted tables: disk space) must not outlive it.
  it('lets go of the files of views a refresh replaced, even with their snapshots unreleased', async () => {
    const dir = path.join(tempRoot(), 'db')
    const w = await open(dir)
    for (let i = 0; i < 100; i++) await w.put(`k${i}`, 'v1')
    await w.compactRange()
    const ro = await open(dir, RO)
    const snap = ro.snapshot()
    await w.put('k1', 'v2')
    await w.compactRange()
    await w.close()
    await ro.refresh()
    await ro.close()
    expect(() => snap.getSync('k1')).toThrow(StrataError)
    try {
      expect(deletedTableFds(dir)).toEqual([])
    } finally {
      snap.release()
      expect(deletedTableFds(dir)).toEqual([])
    }
  })
})
