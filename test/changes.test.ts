import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import xxhash from 'xxhash-wasm'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { open, StrataError, type BatchOp, type ChangeBatch, type ChangeStream, type Database, type OpenOptions } from '../src/index.js'
import buildIfStale from './setup/fresh-build.js'
import { rng, tempDir } from './unit/helpers.js'

/**
 * db.changes(): the change stream read from the WAL files (src/engine/change-cursor.ts).
 * Everything runs against real files in temp directories; no mocks.
 */

const KiB = 1 << 10
const MiB = 1 << 20

const cleanups: Array<() => void> = []
const openDbs: Database[] = []
afterEach(async () => {
  for (const db of openDbs.splice(0)) await db.close().catch(() => undefined)
  for (const c of cleanups.splice(0)) c()
})

function temp(prefix: string): string {
  const t = tempDir(prefix)
  cleanups.push(t.cleanup)
  return t.dir
}

async function openDb(dir: string, options?: OpenOptions): Promise<Database> {
  const db = await open(dir, options)
  openDbs.push(db)
  return db
}

/** The WAL files in `dir`, ascending by number, with their sizes. */
function logFiles(dir: string): Array<{ number: number; size: number }> {
  return fs
    .readdirSync(dir)
    .filter((f) => /^\d+\.log$/.test(f))
    .map((f) => ({ number: Number(f.slice(0, -4)), size: fs.statSync(path.join(dir, f)).size }))
    .sort((a, b) => a.number - b.number)
}

async function collect(stream: AsyncIterable<ChangeBatch>): Promise<ChangeBatch[]> {
  const out: ChangeBatch[] = []
  for await (const b of stream) out.push(b)
  return out
}

/** The code of what creating the stream or reading it to its end throws; undefined when it ends without error. */
async function streamError(make: () => ChangeStream): Promise<{ code: string | undefined; at: 'create' | 'next' | undefined; read: number }> {
  let stream: ChangeStream
  try {
    stream = make()
  } catch (err) {
    return { code: (err as StrataError).code, at: 'create', read: 0 }
  }
  let read = 0
  try {
    for (;;) {
      const r = await stream.next()
      if (r.done) return { code: undefined, at: undefined, read }
      read++
    }
  } catch (err) {
    return { code: (err as StrataError).code, at: 'next', read }
  }
}

/** The whole content of `db` (or a snapshot) as latin1 key -> hex value. */
async function contents(db: Pick<Database, 'iterator'>): Promise<Map<string, string>> {
  const m = new Map<string, string>()
  for await (const [k, v] of db.iterator()) m.set(k.toString('latin1'), v.toString('hex'))
  return m
}

function modelValues(model: Map<string, { value: Buffer; version: number }>): Map<string, string> {
  return new Map([...model].sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'))).map(([k, e]) => [k, e.value.toString('hex')]))
}

/** Polls `cond` (no fixed sleeps): resolves once true, fails after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)))]).finally(() => clearTimeout(timer))
}

type Op = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer }
/** One committed write as the test issued it: the ops as they must come out of the stream. */
interface Expected {
  sequence: number
  ops: Array<Op & { version: number }>
  what: string
}

function opView(op: { type: string; key: Buffer; value?: Buffer; version: number }): string {
  return `${op.type} ${op.key.toString('latin1')} ${op.value === undefined ? '-' : `${op.value.length}:${op.value.subarray(0, 8).toString('hex')}`} @${op.version}`
}

// ---------------------------------------------------------------------------

describe('changes(): model test', () => {
  /**
   * A random sequence of puts, deletes, batches, transactions, bursts of
   * concurrent writes (several callers' writes in one WAL record), writes that
   * commit nothing, compactions and reopens, with a 64 KiB memtable (a WAL
   * switch and a flush every few writes). Every write's ops and sequences are
   * recorded; the stream must hand out exactly those, one item per write, and
   * replaying it into an empty database must reproduce the source's state at
   * every batch boundary.
   */
  it.each([{ seed: 0x5eed01 }, { seed: 0xc0ffee }])('stream = what was committed, replays to the same state (seed $seed)', async ({ seed }) => {
    const random = rng(seed)
    const int = (n: number): number => Math.floor(random() * n)
    const dir = temp('strata-changes-model-')
    const options = (): OpenOptions => ({ memtableBytes: 64 * KiB, walRetentionMs: 3_600_000, flushOnClose: random() < 0.5 })
    let db = await openDb(dir, options())

    const model = new Map<string, { value: Buffer; version: number }>()
    const expected: Expected[] = []
    let counter = 0
    const keyPool = Array.from({ length: 40 }, (_, i) => Buffer.from(`key-${String(i).padStart(3, '0')}`))
    keyPool.push(Buffer.alloc(300, 'L'), Buffer.from([0, 1, 2, 0xff]), Buffer.from([0xff, 0xfe]))
    const pickKey = (): Buffer => keyPool[int(keyPool.length)]
    const makeValue = (): Buffer => {
      const r = random()
      const n = r < 0.1 ? 0 : r < 0.5 ? int(100) : r < 0.85 ? 100 + int(1900) : 2000 + int(18_481)
      const v = Buffer.alloc(n, ++counter & 0xff)
      if (n >= 4) v.writeUInt32LE(counter)
      return v
    }
    const randomOps = (n: number): Op[] => Array.from({ length: n }, () => (random() < 0.75 ? { type: 'put', key: pickKey(), value: makeValue() } : { type: 'del', key: pickKey() }))

    /** A write to issue: how, and the ops it commits (in sequence order). */
    type Write = { what: string; ops: Op[]; issue: () => Promise<unknown> }
    const makeWrite = (inBurst = false): Write => {
      // In a burst, a transaction commits after the writes issued after it (its fn runs first): its place is unknown.
      const r = inBurst ? random() * 0.75 : random()
      if (r < 0.4) {
        const op = randomOps(1)[0]
        return { what: op.type, ops: [op], issue: () => (op.type === 'put' ? db.put(op.key, op.value, { sync: random() < 0.05 }) : db.delete(op.key)) }
      }
      if (r < 0.75) {
        // 1-20 ops, keys repeated within the batch (each op still gets its own sequence).
        const ops = randomOps(1 + int(20))
        return { what: 'batch', ops, issue: () => db.batch(ops as BatchOp[]) }
      }
      // A transaction: reads, then buffered writes (one per key: first-write order, last value wins).
      const raw = randomOps(1 + int(8))
      const ops: Op[] = []
      for (const op of raw) {
        const i = ops.findIndex((o) => o.key.equals(op.key))
        if (i >= 0) ops[i] = { ...op, key: ops[i].key }
        else ops.push(op)
      }
      return {
        what: 'transaction',
        ops,
        issue: () =>
          db.transaction(async (tx) => {
            await tx.get(pickKey())
            for (const op of raw) {
              if (op.type === 'put') tx.put(op.key, op.value)
              else tx.delete(op.key)
            }
          }),
      }
    }

    /** After writes resolved: assign their sequences (in call order) and update the model. */
    const record = async (writes: Write[]): Promise<void> => {
      const total = writes.reduce((n, w) => n + w.ops.length, 0)
      const last = db.stats().lastSequence
      let seq = last - total
      expect(seq, 'writes consumed exactly one sequence per op').toBe(expected.length === 0 ? 0 : expected[expected.length - 1].sequence)
      const touched = new Set<string>()
      for (const w of writes) {
        const ops = w.ops.map((op) => ({ ...op, version: ++seq }))
        for (const op of ops) {
          const k = op.key.toString('latin1')
          touched.add(k)
          if (op.type === 'put') model.set(k, { value: op.value, version: op.version })
          else model.delete(k)
        }
        expected.push({ sequence: seq, ops, what: w.what })
      }
      // The versions the source reports are the sequences assigned above.
      for (const k of touched) {
        const entry = await db.getEntry(Buffer.from(k, 'latin1'))
        const want = model.get(k)
        expect(entry === undefined ? undefined : { value: entry.value.toString('hex'), version: entry.version }, `getEntry ${k}`).toEqual(
          want === undefined ? undefined : { value: want.value.toString('hex'), version: want.version },
        )
      }
    }

    const STEPS = 400
    const done = { compactions: 0, reopens: 0, bursts: 0, multiOp: 0 }
    for (let step = 0; step < STEPS; step++) {
      const r = random()
      if (r < 0.03) {
        await db.compactRange()
        done.compactions++
      } else if (r < 0.05) {
        done.reopens++
        await db.close()
        db = await openDb(dir, options())
        expect(db.stats().lastSequence).toBe(expected[expected.length - 1]?.sequence ?? 0)
      } else if (r < 0.09) {
        // Writes that commit nothing: no item in the stream, no sequence.
        const before = db.stats().lastSequence
        const k = pickKey()
        const version = model.get(k.toString('latin1'))?.version ?? 0
        const kind = int(4)
        if (kind === 0) await db.batch([])
        else if (kind === 1) await db.batch([{ type: 'check', key: k, ifVersion: version }])
        else if (kind === 2) await expect(db.batch([{ type: 'put', key: k, value: 'x', ifVersion: version + 1 }])).rejects.toMatchObject({ code: 'STRATA_CONFLICT' })
        else await db.transaction(async (tx) => void (await tx.get(k)))
        expect(db.stats().lastSequence).toBe(before)
      } else if (r < 0.2) {
        // A burst: several writes issued in one turn, so group commit puts them in one WAL record.
        const writes = Array.from({ length: 2 + int(7) }, () => makeWrite(true))
        await Promise.all(writes.map((w) => w.issue()))
        await record(writes)
        done.bursts++
      } else {
        const w = makeWrite()
        await w.issue()
        await record([w])
      }
    }
    const finalSequence = db.stats().lastSequence
    done.multiOp = expected.filter((e) => e.ops.length > 1).length
    expect(done.compactions).toBeGreaterThan(3)
    expect(done.reopens).toBeGreaterThan(3)
    expect(done.bursts).toBeGreaterThan(20)
    expect(done.multiOp).toBeGreaterThan(100)
    expect(expected.length).toBeGreaterThan(STEPS / 2)
    expect(expected[expected.length - 1].sequence).toBe(finalSequence)
    expect(await contents(db)).toEqual(modelValues(model))
    // The history spans many WAL files (every one retained: walRetentionMs is an hour).
    expect(logFiles(dir).length).toBeGreaterThan(10)

    // Replay the whole stream into an empty database, checking it at random batch boundaries.
    const db2 = await openDb(temp('strata-changes-replica-'), { memtableBytes: 64 * KiB })
    const replayModel = new Map<string, { value: Buffer; version: number }>()
    let i = 0
    let prev = 0
    let compared = 0
    const stream = db.changes({ since: 0 })
    expect(db.stats().changes.cursors).toBe(1)
    for await (const batch of stream) {
      const want = expected[i]
      expect(want, `item ${i} (sequence ${batch.sequence}) was never written`).toBeDefined()
      expect(batch.sequence).toBeGreaterThan(prev)
      expect(batch.ops.length).toBeGreaterThan(0)
      batch.ops.forEach((op, j) => expect(op.version).toBe(batch.ops[0].version + j))
      expect(batch.ops[batch.ops.length - 1].version).toBe(batch.sequence)
      expect({ sequence: batch.sequence, ops: batch.ops.map(opView) }, `item ${i}: ${want.what}`).toEqual({ sequence: want.sequence, ops: want.ops.map(opView) })
      batch.ops.forEach((op, j) => {
        const w = want.ops[j]
        if (w.type === 'put') expect(op.value?.equals(w.value), `item ${i} op ${j} value`).toBe(true)
        else expect(op.value).toBeUndefined()
      })
      prev = batch.sequence
      await db2.batch(batch.ops.map((op): BatchOp => (op.type === 'put' ? { type: 'put', key: op.key, value: op.value! } : { type: 'del', key: op.key })))
      for (const op of batch.ops) {
        if (op.type === 'put') replayModel.set(op.key.toString('latin1'), { value: op.value!, version: op.version })
        else replayModel.delete(op.key.toString('latin1'))
      }
      i++
      if (random() < 0.06 || i === expected.length) {
        expect(await contents(db2), `replica at sequence ${batch.sequence}`).toEqual(modelValues(replayModel))
        compared++
      }
    }
    expect(i).toBe(expected.length)
    expect(compared).toBeGreaterThan(5)
    expect(db.stats().changes.cursors).toBe(0)
    // The versions the stream carried are the source's versions.
    expect(new Map([...replayModel].map(([k, e]) => [k, e.version]))).toEqual(new Map([...model].map(([k, e]) => [k, e.version])))
    expect(await contents(db2)).toEqual(modelValues(model))

    // Started at random batch boundaries: exactly the batches after it.
    for (let n = 0; n < 4; n++) {
      const from = int(expected.length)
      const since = expected[from].sequence
      const got = await collect(db.changes({ since }))
      expect(got.map((b) => b.sequence)).toEqual(expected.slice(from + 1).map((e) => e.sequence))
      expect(got.map((b) => b.ops.map(opView))).toEqual(expected.slice(from + 1).map((e) => e.ops.map(opView)))
    }
    // At the newest sequence: nothing, and the cursor ends.
    expect(await collect(db.changes({ since: finalSequence }))).toEqual([])
    expect(db.stats().changes.cursors).toBe(0)
  })
})

// ---------------------------------------------------------------------------

describe('changes(): live', () => {
  it('a live consumer gets every write of 8 concurrent writers exactly once, in order, never before it resolved; closing the db ends it', async () => {
    const dir = temp('strata-changes-live-')
    const db = await openDb(dir, { memtableBytes: 64 * KiB, walRetentionMs: 0 })
    const random = rng(0x11fe)
    const WRITERS = 8
    const PER_WRITER = 450

    /** Every write: its ops (keys unique to the write, so reads can tell whether it is visible). */
    const writes = new Map<string, Op[]>()
    const stream = db.changes({ live: true })
    let lastReceived = 0
    let writtenSoFar = 0
    let releasePause: (() => void) | undefined
    const pause = new Promise<void>((r) => (releasePause = r))
    let maxRetainedWhilePaused = 0

    const consumer = (async (): Promise<string[]> => {
      const received: string[] = []
      for await (const batch of stream) {
        // Never ahead of resolved writes: a snapshot taken now sees the whole batch.
        const snap = db.snapshot()
        try {
          expect(snap.sequence).toBeGreaterThanOrEqual(batch.sequence)
        } finally {
          snap.release()
        }
        for (const op of batch.ops) {
          const seen = db.getSync(op.key)
          if (op.type === 'put') expect(seen?.equals(op.value!), `put ${op.key} visible`).toBe(true)
          else expect(seen).toBeUndefined()
        }
        // Exactly once, in order, no gaps: every sequence belongs to one write.
        expect(batch.ops[0].version).toBe(lastReceived + 1)
        batch.ops.forEach((op, j) => expect(op.version).toBe(lastReceived + 1 + j))
        expect(batch.sequence).toBe(lastReceived + batch.ops.length)
        lastReceived = batch.sequence
        const id = batch.ops[0].key.toString().split('/')[0]
        const want = writes.get(id)
        expect(want, `unknown write ${id}`).toBeDefined()
        expect(batch.ops.map((op) => opView({ ...op, version: 0 }))).toEqual(want!.map((op) => opView({ ...op, version: 0 })))
        received.push(id)
        // Fall behind for a while (the WALs it still needs get flushed meanwhile), and now and then a little.
        if (received.length === 200) await pause
        else if (random() < 0.05) await new Promise((r) => setImmediate(r))
      }
      return received
    })()
    // A failure in the consumer is reported once the writers are done (not as an unhandled rejection).
    let consumerError: unknown
    consumer.catch((err) => {
      consumerError = err
      releasePause!()
    })

    const writer = async (w: number): Promise<void> => {
      const wr = rng(1000 + w)
      for (let i = 0; i < PER_WRITER; i++) {
        const id = `w${w}-${String(i).padStart(4, '0')}`
        const value = (n: number): Buffer => Buffer.alloc(n, `${id};`)
        const r = wr()
        let ops: Op[]
        let p: Promise<unknown>
        if (r < 0.6) {
          ops = [{ type: 'put', key: Buffer.from(`${id}/0`), value: value(100 + Math.floor(wr() * 1400)) }]
          p = db.put(ops[0].key, (ops[0] as { value: Buffer }).value, { sync: wr() < 0.05 })
        } else if (r < 0.7) {
          ops = [{ type: 'del', key: Buffer.from(`${id}/0`) }]
          p = db.delete(ops[0].key)
        } else if (r < 0.9) {
          ops = Array.from({ length: 2 + Math.floor(wr() * 6) }, (_, j): Op => (j % 3 === 2 ? { type: 'del', key: Buffer.from(`${id}/${j}`) } : { type: 'put', key: Buffer.from(`${id}/${j}`), value: value(Math.floor(wr() * 800)) }))
          p = db.batch(ops as BatchOp[])
        } else {
          ops = [
            { type: 'put', key: Buffer.from(`${id}/0`), value: value(300) },
            { type: 'put', key: Buffer.from(`${id}/1`), value: value(10) },
          ]
          p = db.transaction(async (tx) => {
            await tx.get(`${id}/0`)
            tx.put(`${id}/0`, value(300))
            tx.put(`${id}/1`, value(10))
          })
        }
        writes.set(id, ops)
        await p
        writtenSoFar++
        if (writtenSoFar % 50 === 0) maxRetainedWhilePaused = Math.max(maxRetainedWhilePaused, db.stats().changes.retainedWalFiles)
        if (writtenSoFar === WRITERS * PER_WRITER * 0.6) releasePause!()
      }
    }
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)))
    releasePause!()
    if (consumerError !== undefined) throw consumerError
    const stats = db.stats()
    expect(stats.writes.flushes).toBeGreaterThan(20)
    // While the consumer was behind, the WALs it still needed were kept (walRetentionMs is 0: only the cursor keeps them).
    expect(maxRetainedWhilePaused).toBeGreaterThan(0)
    await until(() => consumerError !== undefined || lastReceived === db.stats().lastSequence, 20_000, 'the consumer to catch up')
    if (consumerError !== undefined) throw consumerError
    expect(db.stats().changes.cursors).toBe(1)
    await db.close()
    const received = await withTimeout(consumer, 5000)
    expect(received, 'the consumer loop ended when the database closed').not.toBe('timeout')
    const ids = received as string[]
    expect(ids.length).toBe(WRITERS * PER_WRITER)
    expect(new Set(ids).size).toBe(ids.length)
    for (let w = 0; w < WRITERS; w++) {
      const mine = ids.filter((id) => id.startsWith(`w${w}-`))
      expect(mine).toEqual([...mine].sort())
      expect(mine.length).toBe(PER_WRITER)
    }
  })

  it('a live stream started at the newest sequence waits, then hands out the next write', async () => {
    const db = await openDb(temp('strata-changes-live2-'), { memtableBytes: 64 * KiB })
    await db.put('a', '1')
    const stream = db.changes({ since: 1, live: true })
    const next = stream.next()
    expect(await withTimeout(next, 50)).toBe('timeout')
    await db.batch([
      { type: 'put', key: 'b', value: '2' },
      { type: 'del', key: 'a' },
    ])
    const r = await next
    expect(r.done).toBe(false)
    expect(r.value.sequence).toBe(3)
    expect(r.value.ops.map(opView)).toEqual(['put b 1:32 @2', 'del a - @3'])
    // `break` ends it and releases the cursor.
    await db.put('c', '3')
    for await (const batch of stream) {
      expect(batch.sequence).toBe(4)
      break
    }
    expect(db.stats().changes.cursors).toBe(0)
  })

  it('close() ends a live stream whose next() is waiting for a commit', async () => {
    const db = await openDb(temp('strata-changes-live3-'), { memtableBytes: 64 * KiB })
    await db.put('a', '1')
    const stream = db.changes({ since: 1, live: true })
    const pending = stream.next()
    expect(await withTimeout(pending, 50)).toBe('timeout')
    stream.close()
    expect(db.stats().changes.cursors).toBe(0)
    const r = await withTimeout(pending, 2000)
    // Wake it in any case, so a failure here does not leave the promise hanging.
    if (r === 'timeout') await db.put('wake', '1')
    expect(r, 'pending next() after close() (it only ends at the next commit)').toEqual({ value: undefined, done: true })
  })
})

// ---------------------------------------------------------------------------

describe('changes(): retention and truncation', () => {
  const put = (db: Database, i: number, bytes = 100): Promise<void> => db.put(`key${String(i).padStart(6, '0')}`, Buffer.alloc(bytes, i & 0xff))

  it('without a cursor (walRetentionMs 0) flushed changes are gone: STRATA_CHANGES_TRUNCATED', async () => {
    const dir = temp('strata-changes-trunc-')
    const db = await openDb(dir, { memtableBytes: 64 * KiB, walRetentionMs: 0 })
    for (let i = 0; i < 3000; i++) await put(db, i)
    await db.compactRange()
    await put(db, 3000)
    expect(db.stats().writes.flushes).toBeGreaterThanOrEqual(3)
    expect(logFiles(dir).length).toBe(1)
    expect(db.stats().changes.retainedWalFiles).toBe(0)
    const e = await streamError(() => db.changes({ since: 0 }))
    expect(e.code).toBe('STRATA_CHANGES_TRUNCATED')
    expect(db.stats().changes.cursors).toBe(0)
    // What the active WAL still holds is there.
    const tail = await collect(db.changes({ since: 3000 }))
    expect(tail.map((b) => b.sequence)).toEqual([3001])
  })

  it('when the only WAL left is empty (after a flush, or a reopen), changes it no longer has are still reported as truncated', async () => {
    const dir = temp('strata-changes-trunc2-')
    const db = await openDb(dir, { memtableBytes: 64 * KiB, walRetentionMs: 0 })
    for (let i = 0; i < 2000; i++) await put(db, i)
    await db.compactRange()
    // Only the new, empty active WAL is left: sequences 1..2000 are in tables only.
    expect(logFiles(dir)).toEqual([{ number: expect.any(Number), size: 0 }])
    const afterFlush = await streamError(() => db.changes({ since: 0 }))
    await db.close()
    const reopened = await openDb(dir, { memtableBytes: 64 * KiB, walRetentionMs: 0 })
    expect(reopened.stats().lastSequence).toBe(2000)
    const afterReopen = await streamError(() => reopened.changes({ since: 1000 }))
    // The same with the format-v1 fixture, whose WAL is empty (all its writes are in tables).
    const fixture = temp('strata-changes-trunc3-')
    fs.cpSync(path.join(import.meta.dirname, 'fixtures', 'format-v1'), fixture, { recursive: true })
    const old = await openDb(fixture, { walRetentionMs: 3_600_000 })
    expect(old.stats().lastSequence).toBeGreaterThan(3000)
    const onFixture = await streamError(() => old.changes({ since: 0 }))
    const truncated = { code: 'STRATA_CHANGES_TRUNCATED', at: expect.anything(), read: 0 }
    expect({ afterFlush, afterReopen, onFixture }).toEqual({ afterFlush: truncated, afterReopen: truncated, onFixture: truncated })
  })

  it('a cursor paused at the start keeps the WALs it needs and reads everything; once closed, the next flush deletes them', async () => {
    const dir = temp('strata-changes-keep-')
    const db = await openDb(dir, { memtableBytes: 64 * KiB, walRetentionMs: 0 })
    for (let i = 0; i < 50; i++) await put(db, i)
    const stream = db.changes({ since: 0 })
    // A second cursor, read a little and then closed, keeps nothing after close().
    const other = db.changes({ since: 0 })
    expect((await other.next()).value?.sequence).toBe(1)
    for (let i = 50; i < 3000; i++) await put(db, i)
    other.close()
    await db.compactRange()
    const logs = logFiles(dir)
    const st = db.stats()
    expect(st.writes.flushes).toBeGreaterThanOrEqual(4)
    expect(st.changes.cursors).toBe(1)
    // Every WAL but the active one is retained for the paused cursor.
    expect(st.changes.retainedWalFiles).toBeGreaterThanOrEqual(4)
    expect(logs.length).toBe(st.changes.retainedWalFiles + 1)
    expect(st.changes.retainedWalBytes).toBe(logs.slice(0, -1).reduce((n, f) => n + f.size, 0))

    const got = await collect(stream)
    expect(got.map((b) => b.sequence)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1))
    got.forEach((b, i) => {
      expect(b.ops).toHaveLength(1)
      expect(b.ops[0].key.toString()).toBe(`key${String(i).padStart(6, '0')}`)
      expect(b.ops[0].value?.equals(Buffer.alloc(100, i & 0xff))).toBe(true)
    })
    // The stream ended (non-live): its cursor is gone; the next flush deletes what it kept.
    expect(db.stats().changes.cursors).toBe(0)
    await put(db, 3000)
    await db.compactRange()
    expect(logFiles(dir).length).toBe(1)
    expect(db.stats().changes).toEqual({ cursors: 0, retainedWalFiles: 0, retainedWalBytes: 0 })
  })

  it('within walRetentionBytes: a cursor left behind by more than it allows ends with STRATA_CHANGES_TRUNCATED, and the WALs on disk stay bounded', async () => {
    const dir = temp('strata-changes-bytes-')
    const RETENTION = 200 * KiB
    const db = await openDb(dir, { memtableBytes: 64 * KiB, walRetentionMs: 0, walRetentionBytes: RETENTION })
    for (let i = 0; i < 20; i++) await put(db, i)
    const stream = db.changes({ since: 0 })
    expect((await stream.next()).value?.sequence).toBe(1)
    let largestWal = 0
    let maxBelowActive = 0
    // Obsolete WALs are unlinked on the thread pool, moments after the flush that made them obsolete.
    const check = (): Promise<void> =>
      vi.waitFor(() => {
        const logs = logFiles(dir)
        for (const f of logs) largestWal = Math.max(largestWal, f.size)
        const below = logs.slice(0, -1).reduce((n, f) => n + f.size, 0)
        maxBelowActive = Math.max(maxBelowActive, below)
        // Retained (<= RETENTION) plus at most one frozen memtable's WAL waiting for its flush.
        expect(below, `WAL bytes below the active one: ${JSON.stringify(logs)}`).toBeLessThanOrEqual(RETENTION + largestWal)
        expect(db.stats().changes.retainedWalBytes).toBeLessThanOrEqual(RETENTION)
      })
    // > 1 MiB while the cursor is paused.
    for (let i = 20; i < 1300; i++) {
      await put(db, i, 1000)
      if (i % 25 === 0) await check()
    }
    await db.compactRange()
    await check()
    expect(db.stats().writes.flushes).toBeGreaterThanOrEqual(15)
    // Quiescent (no frozen memtable): only retained WALs below the active one.
    expect(logFiles(dir).slice(0, -1).reduce((n, f) => n + f.size, 0)).toBeLessThanOrEqual(RETENTION)
    expect(db.stats().changes.retainedWalFiles).toBeGreaterThan(0)

    // The cursor reads what its open WAL still holds, then finds the gap.
    let prev = 1
    let err: unknown
    try {
      for (;;) {
        const r = await stream.next()
        if (r.done) break
        expect(r.value.sequence).toBe(prev + 1)
        prev = r.value.sequence
      }
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(StrataError)
    expect((err as StrataError).code).toBe('STRATA_CHANGES_TRUNCATED')
    expect(prev).toBeLessThan(1300)
    expect(db.stats().changes.cursors).toBe(0)
    expect((await stream.next()).done).toBe(true)
  })

  it('a torn tail a crash left in a retained WAL ends that WAL, as recovery dropped it', async () => {
    const dir = temp('strata-changes-torn-')
    const options = { memtableBytes: 64 * KiB, walRetentionMs: 3_600_000, flushOnClose: false }
    const db = await openDb(dir, options)
    for (let i = 0; i < 10; i++) await put(db, i)
    await db.batch([
      { type: 'put', key: 'x', value: 'y' },
      { type: 'del', key: 'key000000' },
    ])
    await db.close()
    // An append cut short: a valid record header claiming more bytes than follow.
    const wal = logFiles(dir).filter((f) => f.size > 0).pop()!
    const file = path.join(dir, `${String(wal.number).padStart(6, '0')}.log`)
    const bytes = fs.readFileSync(file)
    expect(bytes.readUInt32LE(0)).toBeGreaterThan(20)
    fs.appendFileSync(file, bytes.subarray(0, 30))
    const reopened = await openDb(dir, options)
    expect(reopened.stats().recovery.droppedTails).toHaveLength(1)
    await reopened.put('after', 'crash')
    const got = await collect(reopened.changes({ since: 0 }))
    expect(got.map((b) => b.sequence)).toEqual([...Array.from({ length: 10 }, (_, i) => i + 1), 12, 13])
    expect(got[10].ops.map(opView)).toEqual(['put x 1:79 @11', 'del key000000 - @12'])
    expect(got[11].ops.map(opView)).toEqual(['put after 5:6372617368 @13'])
  })

  it('a paused cursor whose WALs were all deleted (walRetentionBytes 0) reports the gap instead of ending early', async () => {
    const dir = temp('strata-changes-bytes0-')
    const db = await openDb(dir, { memtableBytes: 64 * KiB, walRetentionMs: 0, walRetentionBytes: 0 })
    for (let i = 0; i < 10; i++) await put(db, i)
    const stream = db.changes({ since: 0 })
    expect((await stream.next()).value?.sequence).toBe(1)
    for (let i = 10; i < 3000; i++) await put(db, i)
    await db.compactRange()
    // Every obsolete WAL is gone; the active one is empty.
    expect(logFiles(dir).map((f) => f.size)).toEqual([0])
    const e = await streamError(() => stream)
    // Reading up to the end without an error would silently skip sequences up to 3000.
    expect(e.code, `the stream ended after ${e.read} more batches without an error`).toBe('STRATA_CHANGES_TRUNCATED')
  })
})

// ---------------------------------------------------------------------------

describe('changes(): memory', () => {
  beforeAll(() => {
    // The child runs dist/: build it when missing or older than src/ (as the global setup does).
    buildIfStale()
  }, 120_000)

  function runWriter(dir: string, mode: 'cursor' | 'none', options: object, totalBytes: number): Promise<{ baselineRss: number; peakRss: number; drainPeakRss: number; written: number; writeMs: number; drained: number; drainMs: number; retainedWalBytes: number; writes: number }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--expose-gc', path.resolve('test/fixtures/changes-writer.mjs'), dir, mode, JSON.stringify(options), String(totalBytes)])
      let out = ''
      let err = ''
      child.stdout.on('data', (d) => (out += d))
      child.stderr.on('data', (d) => (err += d))
      // 'close', not 'exit': stdout may still hold the result when the process exits.
      child.on('close', (code) => {
        if (code !== 0) return reject(new Error(`changes-writer (${mode}) exited ${code}: ${err}`))
        try {
          resolve(JSON.parse(out))
        } catch {
          reject(new Error(`changes-writer (${mode}) printed ${JSON.stringify(out)}; stderr: ${err}`))
        }
      })
    })
  }

  it('a paused live cursor costs no memory while the writer streams 128 MiB past it', async () => {
    const TOTAL = 128 * MiB
    const options = { memtableBytes: 4 * MiB, walRetentionBytes: 2 ** 40, autoCompaction: false }
    const without = await runWriter(temp('strata-changes-mem0-'), 'none', options, TOTAL)
    const withCursor = await runWriter(temp('strata-changes-mem1-'), 'cursor', options, TOTAL)
    const growth = (r: typeof without): number => r.peakRss - r.baselineRss
    console.log(
      `changes memory: RSS growth while writing ${TOTAL / MiB} MiB: ${(growth(without) / MiB).toFixed(1)} MiB without a cursor (${without.writeMs.toFixed(0)} ms), ` +
        `${(growth(withCursor) / MiB).toFixed(1)} MiB with a paused cursor (${withCursor.writeMs.toFixed(0)} ms); ` +
        `drain of ${withCursor.drained} batches in ${withCursor.drainMs.toFixed(0)} ms, peak ${(withCursor.drainPeakRss / MiB).toFixed(0)} MiB`,
    )
    expect(without.written).toBe(TOTAL)
    expect(withCursor.written).toBe(TOTAL)
    // The backlog the paused cursor still has to read is on disk, in retained WALs.
    expect(withCursor.retainedWalBytes).toBeGreaterThan(0.9 * TOTAL)
    expect(without.retainedWalBytes).toBe(0)
    // Then it drained every write exactly once, in order (checked in the child).
    expect(withCursor.drained).toBe(withCursor.writes - 5)
    // Bound: the engine's memory is the same in both runs (2 memtables of 4 MiB,
    // caches); a paused cursor may hold one read chunk (1 MiB, READ_CHUNK_BYTES)
    // and its decoded batches. 32 MiB (8 memtables) covers that and GC timing
    // noise, and is 4x below the 128 MiB backlog an engine buffering changes
    // for a slow consumer would hold (even a quarter of it would fail).
    expect(growth(withCursor) - growth(without)).toBeLessThan(32 * MiB)
  })
})

// ---------------------------------------------------------------------------

describe('changes(): WAL record version 1', () => {
  /** A framed WAL record (docs/format.md, "Record framing") with a version-1 payload: no batch-end flags. */
  async function v1Record(firstSequence: number, ops: Op[]): Promise<Buffer> {
    const { h32Raw } = await xxhash()
    const parts: Buffer[] = []
    const head = Buffer.alloc(13)
    head[0] = 1
    head.writeBigUInt64LE(BigInt(firstSequence), 1)
    head.writeUInt32LE(ops.length, 9)
    parts.push(head)
    const varint = (n: number): Buffer => {
      const out: number[] = []
      while (n >= 0x80) {
        out.push((n & 0x7f) | 0x80)
        n = Math.floor(n / 128)
      }
      out.push(n)
      return Buffer.from(out)
    }
    for (const op of ops) {
      parts.push(Buffer.from([op.type === 'put' ? 1 : 0]), varint(op.key.length), op.key)
      if (op.type === 'put') parts.push(varint(op.value.length), op.value)
    }
    const payload = Buffer.concat(parts)
    const header = Buffer.alloc(12)
    header.writeUInt32LE(payload.length, 0)
    header.writeUInt32LE(h32Raw(payload, 0), 4)
    header.writeUInt32LE(h32Raw(header.subarray(0, 8), 0x53545241), 8)
    return Buffer.concat([header, payload])
  }

  it('reads a version-1 WAL (format-v1 database) as one batch per record', async () => {
    const dir = temp('strata-changes-v1-')
    fs.cpSync(path.join(import.meta.dirname, 'fixtures', 'format-v1'), dir, { recursive: true })
    // The fixture's own WAL (000020.log) is empty: its writes are all in tables.
    expect(fs.statSync(path.join(dir, '000020.log')).size).toBe(0)
    const first = await openDb(dir)
    const base = first.stats().lastSequence
    expect(base).toBeGreaterThan(3000)
    await first.close()

    // A version-1 WAL after everything on disk, as a version-1 engine would have left it.
    const b = (s: string): Buffer => Buffer.from(s)
    const records: Array<{ first: number; ops: Op[] }> = [
      { first: base + 1, ops: [{ type: 'put', key: b('v1-a'), value: b('one') }] },
      {
        first: base + 2,
        ops: [
          { type: 'put', key: b('v1-b'), value: Buffer.alloc(5000, 7) },
          { type: 'del', key: b('v1-a') },
          { type: 'put', key: b('v1-b'), value: b('two') },
          { type: 'del', key: b('key00001') },
        ],
      },
      {
        first: base + 6,
        ops: [
          { type: 'put', key: b('v1-c'), value: Buffer.alloc(0) },
          { type: 'put', key: b('key00002'), value: b('three') },
        ],
      },
    ]
    const number = Math.max(...fs.readdirSync(dir).map((f) => Number(/^(\d+)\./.exec(f)?.[1] ?? 0))) + 1
    const walName = `${String(number).padStart(6, '0')}.log`
    fs.writeFileSync(path.join(dir, walName), Buffer.concat(await Promise.all(records.map((r) => v1Record(r.first, r.ops)))))

    const db = await openDb(dir, { walRetentionMs: 3_600_000 })
    expect(db.stats().recovery.walEntries).toBe(7)
    expect(db.stats().lastSequence).toBe(base + 7)
    expect(await db.getEntry('v1-b')).toEqual({ value: b('two'), version: base + 4 })
    expect(await db.get('v1-a')).toBeUndefined()
    expect(await db.get('key00001')).toBeUndefined()
    expect(await db.getEntry('key00002')).toEqual({ value: b('three'), version: base + 7 })
    // Replayed into a table at the open, and kept for the change stream.
    expect(logFiles(dir).map((f) => f.number)).toContain(number)

    const want = records.map((r) => ({ sequence: r.first + r.ops.length - 1, ops: r.ops.map((op, i) => opView({ ...op, version: r.first + i })) }))
    const got = await collect(db.changes({ since: base }))
    expect(got.map((g) => ({ sequence: g.sequence, ops: g.ops.map(opView) }))).toEqual(want)
    expect(got[1].ops[0].value?.equals(Buffer.alloc(5000, 7))).toBe(true)
    // From inside: the batches after the boundary; a new write follows as a version-2 batch.
    await db.batch([
      { type: 'put', key: 'v2-a', value: 'x' },
      { type: 'del', key: 'v2-a' },
    ])
    const later = await collect(db.changes({ since: base + 1 }))
    expect(later.map((g) => g.sequence)).toEqual([base + 5, base + 7, base + 9])
    expect(later[2].ops.map(opView)).toEqual([`put v2-a 1:78 @${base + 8}`, `del v2-a - @${base + 9}`])
    // What came before the version-1 WAL is only in tables.
    expect((await streamError(() => db.changes({ since: 0 }))).code).toBe('STRATA_CHANGES_TRUNCATED')
  })
})

// ---------------------------------------------------------------------------

describe('changes(): argument validation', () => {
  it('rejects bad since/live/options with STRATA_INVALID_ARGUMENT and changes nothing', async () => {
    const dir = temp('strata-changes-args-')
    const db = await openDb(dir, { memtableBytes: 64 * KiB })
    await db.put('a', '1')
    await db.put('b', '2')
    const before = { seq: db.stats().lastSequence, logs: logFiles(dir), changes: db.stats().changes }
    const bad: unknown[] = [
      { since: -1 },
      { since: 1.5 },
      { since: Number.NaN },
      { since: Infinity },
      { since: '1' },
      { since: 1n },
      { since: 3 },
      { since: 2 ** 53 },
      { live: 'yes' },
      { live: 1 },
      { since: 0, live: 'true' },
      null,
      'since',
      42,
    ]
    for (const options of bad) {
      let err: unknown
      let stream: unknown
      try {
        stream = db.changes(options as never)
      } catch (e) {
        err = e
      }
      expect(stream, `changes(${String(JSON.stringify(options, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)))}) returned a stream`).toBeUndefined()
      expect(err).toBeInstanceOf(StrataError)
      expect((err as StrataError).code, String(options)).toBe('STRATA_INVALID_ARGUMENT')
    }
    expect({ seq: db.stats().lastSequence, logs: logFiles(dir), changes: db.stats().changes }).toEqual(before)
    // The valid extremes.
    expect((await collect(db.changes({ since: 2 }))).length).toBe(0)
    expect((await collect(db.changes())).map((b) => b.sequence)).toEqual([1, 2])
    expect((await collect(db.changes({}))).map((b) => b.sequence)).toEqual([1, 2])
    expect(db.stats().changes.cursors).toBe(0)
    await db.close()
    expect(() => db.changes()).toThrow(expect.objectContaining({ code: 'STRATA_NOT_OPEN' }))
  })

  it('null is not a sequence number nor a boolean (as iterator({ reverse: null }) is rejected)', async () => {
    const db = await openDb(temp('strata-changes-null-'), { memtableBytes: 64 * KiB })
    await db.put('a', '1')
    expect(() => db.iterator({ reverse: null as never })).toThrow(expect.objectContaining({ code: 'STRATA_INVALID_ARGUMENT' }))
    for (const options of [{ since: null }, { live: null }]) {
      let code: string | undefined
      try {
        db.changes(options as never).close()
      } catch (e) {
        code = (e as StrataError).code
      }
      expect(code, JSON.stringify(options)).toBe('STRATA_INVALID_ARGUMENT')
    }
  })
})
