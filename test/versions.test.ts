/**
 * Versions, compare-and-set and optimistic transactions.
 *
 *   1. getEntry: versions are the sequence numbers of the writes that produced
 *      the values, strictly increasing over all writes, unchanged by flush,
 *      compaction and close/reopen.
 *   2. Conditional batches (ifVersion on put/del, check ops): all-or-nothing,
 *      STRATA_CONFLICT naming exactly the failing keys, evaluated in queue
 *      order so that racing conditional writes on one key never both succeed.
 *   3. A seeded model-based test of random conditional batches issued
 *      concurrently (not awaited one by one) against an in-memory model.
 *   4. db.transaction: lost-update freedom under heavy contention (counters),
 *      the retry limit, fn errors, return values, read-only transactions.
 *   5. Range validation (phantoms) and tx.iterator merging own writes.
 *   6. No starvation: a slow transaction under constant contention commits.
 *
 * Seeded parts print their seed; VERSIONS_SEED=<seed> replays the random choices.
 */
import { Contention } from '../src/txn/transaction.js'
import { setImmediate as turn } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { ConflictError, StrataError, open, type BatchOp, type Database, type OpenOptions, type Transaction } from '../src/index.js'
import { rng as makeRng, tempDir } from './unit/helpers.js'

// ---- helpers ------------------------------------------------------------------

const cleanups: Array<() => void> = []
const openDbs: Database[] = []

afterEach(async () => {
  for (const db of openDbs.splice(0)) if (db.isOpen) await db.close()
  for (const c of cleanups.splice(0)) c()
})

async function fresh(options: OpenOptions = {}): Promise<{ db: Database; dir: string }> {
  const t = tempDir('strata-versions-')
  cleanups.push(t.cleanup)
  const db = await open(t.dir, options)
  openDbs.push(db)
  return { db, dir: t.dir }
}

async function reopen(db: Database, dir: string, options: OpenOptions = {}): Promise<Database> {
  await db.close()
  const again = await open(dir, options)
  openDbs.push(again)
  return again
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

const seedFor = (name: string): number => {
  const seed = process.env.VERSIONS_SEED !== undefined ? Number(process.env.VERSIONS_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0
  console.log(`${name}: seed ${seed} (VERSIONS_SEED=${seed} replays it)`)
  return seed
}

/** Awaits `p`, which must reject; returns the error. */
async function rejection(p: Promise<unknown>): Promise<any> {
  try {
    await p
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection, but the promise resolved')
}

const str = (b: Buffer): string => b.toString('latin1')
const uniqSorted = (xs: string[]): string[] => [...new Set(xs)].sort()

/** A STRATA_CONFLICT naming exactly `keys` (as a set), in err.keys and in the message. */
function expectConflict(err: any, keys: string[]): void {
  if (!(err instanceof StrataError)) throw err
  expect(err.code).toBe('STRATA_CONFLICT')
  expect(err).toBeInstanceOf(ConflictError)
  expectConflictKeys(err as ConflictError, keys)
}

function expectConflictKeys(err: ConflictError, keys: string[]): void {
  expect(Array.isArray(err.keys)).toBe(true)
  for (const k of err.keys) expect(Buffer.isBuffer(k)).toBe(true)
  expect(uniqSorted(err.keys.map(str))).toEqual(uniqSorted(keys))
  for (const k of keys) expect(err.message).toContain(k)
}

async function version(db: Database, key: string): Promise<number> {
  const e = await db.getEntry(key)
  if (e === undefined) throw new Error(`${key} has no entry`)
  return e.version
}

async function scan(it: AsyncIterable<[Buffer, Buffer]>): Promise<string[]> {
  const out: string[] = []
  for await (const [k, v] of it) out.push(`${str(k)}=${str(v)}`)
  return out
}

// ---- 1. getEntry ------------------------------------------------------------------

describe('getEntry and versions', () => {
  it('versions strictly increase across writes to different keys and to the same key; deleted keys have no entry', async () => {
    const { db } = await fresh()
    expect(await db.getEntry('a')).toBeUndefined()
    const versions: number[] = []
    const check = async (key: string, value: string): Promise<number> => {
      const e = await db.getEntry(key)
      expect(e).toBeDefined()
      expect(Buffer.isBuffer(e!.value)).toBe(true)
      expect(str(e!.value)).toBe(value)
      expect(Number.isSafeInteger(e!.version)).toBe(true)
      expect(e!.version).toBeGreaterThan(0)
      if (versions.length > 0) expect(e!.version).toBeGreaterThan(versions[versions.length - 1])
      versions.push(e!.version)
      return e!.version
    }
    await db.put('a', 'a1')
    const a1 = await check('a', 'a1')
    await db.put('b', 'b1')
    await check('b', 'b1')
    await db.put('a', 'a2')
    const a2 = await check('a', 'a2')
    expect(a2).toBeGreaterThan(a1)
    expect(await version(db, 'b')).toBe(versions[1]) // other writes leave b's version alone
    await db.delete('b')
    expect(await db.getEntry('b')).toBeUndefined()
    expect(await db.get('b')).toBeUndefined()
    await db.put('b', 'b2')
    await check('b', 'b2')
    // A batch: each written key gets its own version, all newer than anything before.
    await db.batch([
      { type: 'put', key: 'c', value: 'c1' },
      { type: 'put', key: 'd', value: 'd1' },
      { type: 'del', key: 'a' },
    ])
    const c = await version(db, 'c')
    const d = await version(db, 'd')
    expect(c).not.toBe(d)
    expect(Math.min(c, d)).toBeGreaterThan(versions[versions.length - 1])
    expect(await db.getEntry('a')).toBeUndefined()
    versions.push(Math.max(c, d))
    // Unawaited writes are seen by getEntry, in order.
    void db.put('e', 'e1')
    void db.put('e', 'e2')
    const e = await db.getEntry('e')
    expect(str(e!.value)).toBe('e2')
    expect(e!.version).toBeGreaterThan(versions[versions.length - 1])
    // A long random run over a few keys: every write's version beats every earlier one.
    const rng = makeRng(7)
    let high = e!.version
    const live = new Map<string, number>()
    for (let i = 0; i < 300; i++) {
      const key = `k${Math.floor(rng() * 6)}`
      if (rng() < 0.25) {
        await db.delete(key)
        live.delete(key)
        expect(await db.getEntry(key)).toBeUndefined()
      } else {
        await db.put(key, `v${i}`)
        const entry = (await db.getEntry(key))!
        expect(str(entry.value)).toBe(`v${i}`)
        expect(entry.version).toBeGreaterThan(high)
        high = entry.version
        live.set(key, entry.version)
      }
    }
    for (const [key, v] of live) expect(await version(db, key)).toBe(v)
  })

  it('a snapshot reports the version the key had when it was taken', async () => {
    const { db } = await fresh()
    await db.put('k', 'old')
    const old = await version(db, 'k')
    const snap = db.snapshot()
    await db.put('k', 'new')
    await db.delete('gone')
    const now = await version(db, 'k')
    expect(now).toBeGreaterThan(old)
    const seen = await snap.getEntry('k')
    expect(seen?.version).toBe(old)
    expect(str(seen!.value)).toBe('old')
    expect(snap.sequence).toBeGreaterThanOrEqual(old)
    expect(snap.sequence).toBeLessThan(now)
    snap.release()
  })

  it('versions survive flushes, compaction and close/reopen unchanged; new writes get newer versions', async () => {
    const options: OpenOptions = { memtableBytes: 8192, targetTableBytes: 4096, levelBaseBytes: 16384 }
    let { db, dir } = await fresh(options)
    const rng = makeRng(11)
    const expected = new Map<string, { value: string; version: number } | undefined>()
    for (let i = 0; i < 1500; i++) {
      const key = `key${String(Math.floor(rng() * 200)).padStart(3, '0')}`
      if (rng() < 0.15) {
        await db.delete(key)
        expected.set(key, undefined)
      } else {
        const value = `${key}:${i}:`.padEnd(20 + Math.floor(rng() * 150), 'x')
        await db.put(key, value)
        expected.set(key, { value, version: await version(db, key) })
      }
    }
    expect(db.stats().levels.some((l) => l.tables > 0)).toBe(true) // some of it lives in tables, some in the WAL
    const verify = async (what: string): Promise<number> => {
      let high = 0
      for (const [key, want] of expected) {
        const got = await db.getEntry(key)
        if (want === undefined) {
          expect(got, `${what}: ${key}`).toBeUndefined()
          continue
        }
        expect(got, `${what}: ${key}`).toBeDefined()
        expect({ value: str(got!.value), version: got!.version }, `${what}: ${key}`).toEqual(want)
        high = Math.max(high, got!.version)
      }
      return high
    }
    let high = await verify('before close')
    db = await reopen(db, dir, options)
    expect(await verify('after reopen')).toBe(high)
    await db.compactRange()
    expect(await verify('after compactRange')).toBe(high)
    db = await reopen(db, dir, options)
    high = await verify('after compaction and reopen')
    // The recovered sequence counter is past every stored version: no version is ever handed out twice.
    await db.put('fresh', 'x')
    expect(await version(db, 'fresh')).toBeGreaterThan(high)
    await db.put('key000', 'y')
    expect(await version(db, 'key000')).toBeGreaterThan(await version(db, 'fresh'))
  })
})

// ---- 2. conditional batches -------------------------------------------------------------

describe('conditional batches', () => {
  it('ifVersion 0: succeeds on an absent key, conflicts on a present one', async () => {
    const { db } = await fresh()
    await db.batch([{ type: 'put', key: 'new', value: 'v1', ifVersion: 0 }])
    const v1 = await version(db, 'new')
    expectConflict(await rejection(db.batch([{ type: 'put', key: 'new', value: 'v2', ifVersion: 0 }])), ['new'])
    expect(await db.getEntry('new')).toEqual({ value: Buffer.from('v1'), version: v1 })
    // Absent again after a delete: ifVersion 0 holds again.
    await db.delete('new')
    await db.batch([{ type: 'put', key: 'new', value: 'v3', ifVersion: 0 }])
    expect(str((await db.get('new'))!)).toBe('v3')
    expect(await version(db, 'new')).toBeGreaterThan(v1)
  })

  it('put with the current version succeeds, with a stale or a wrong version conflicts', async () => {
    const { db } = await fresh()
    await db.put('k', 'a')
    const va = await version(db, 'k')
    await db.batch([{ type: 'put', key: 'k', value: 'b', ifVersion: va }])
    const vb = await version(db, 'k')
    expect(vb).toBeGreaterThan(va)
    expectConflict(await rejection(db.batch([{ type: 'put', key: 'k', value: 'c', ifVersion: va }])), ['k'])
    expectConflict(await rejection(db.batch([{ type: 'put', key: 'k', value: 'c', ifVersion: vb + 1000 }])), ['k'])
    expectConflict(await rejection(db.batch([{ type: 'put', key: 'missing', value: 'c', ifVersion: vb }])), ['missing'])
    expect(await db.getEntry('k')).toEqual({ value: Buffer.from('b'), version: vb })
    expect(await db.getEntry('missing')).toBeUndefined()
  })

  it('del with ifVersion: deletes with the current version, conflicts with a stale one', async () => {
    const { db } = await fresh()
    await db.put('k', 'a')
    const va = await version(db, 'k')
    await db.put('k', 'b')
    const vb = await version(db, 'k')
    expectConflict(await rejection(db.batch([{ type: 'del', key: 'k', ifVersion: va }])), ['k'])
    expectConflict(await rejection(db.batch([{ type: 'del', key: 'k', ifVersion: 0 }])), ['k'])
    expect(await db.getEntry('k')).toEqual({ value: Buffer.from('b'), version: vb })
    await db.batch([{ type: 'del', key: 'k', ifVersion: vb }])
    expect(await db.getEntry('k')).toBeUndefined()
    // Deleting what is already absent, on condition that it is absent: fine. On an old version: conflict.
    await db.batch([{ type: 'del', key: 'k', ifVersion: 0 }])
    expectConflict(await rejection(db.batch([{ type: 'del', key: 'k', ifVersion: vb }])), ['k'])
  })

  it('check ops are preconditions only: they write nothing and gate the whole batch', async () => {
    const { db } = await fresh()
    await db.put('guard', 'g')
    const vg = await version(db, 'guard')
    await db.batch([{ type: 'check', key: 'guard', ifVersion: vg }])
    await db.batch([{ type: 'check', key: 'absent', ifVersion: 0 }])
    expect(await db.getEntry('guard')).toEqual({ value: Buffer.from('g'), version: vg }) // not rewritten
    expect(await db.getEntry('absent')).toBeUndefined()
    await db.put('probe', 'p')

    await db.batch([
      { type: 'check', key: 'guard', ifVersion: vg },
      { type: 'put', key: 'x', value: '1' },
    ])
    expect(str((await db.get('x'))!)).toBe('1')
    expectConflict(
      await rejection(
        db.batch([
          { type: 'check', key: 'guard', ifVersion: vg + 1 },
          { type: 'put', key: 'x', value: '2' },
          { type: 'del', key: 'probe' },
        ]),
      ),
      ['guard'],
    )
    expect(str((await db.get('x'))!)).toBe('1')
    expect(str((await db.get('probe'))!)).toBe('p')
    expectConflict(await rejection(db.batch([{ type: 'check', key: 'guard', ifVersion: 0 }])), ['guard'])
    expectConflict(await rejection(db.batch([{ type: 'check', key: 'absent', ifVersion: vg }])), ['absent'])
  })

  it('a batch with one failing precondition writes none of its operations', async () => {
    const { db } = await fresh()
    await db.batch([
      { type: 'put', key: 'a', value: 'a0' },
      { type: 'put', key: 'b', value: 'b0' },
      { type: 'put', key: 'c', value: 'c0' },
    ])
    const before = new Map<string, unknown>()
    const keys = ['a', 'b', 'c', 'd', 'e']
    for (const k of keys) before.set(k, await db.getEntry(k))
    const va = await version(db, 'a')
    const vb = await version(db, 'b')
    const vc = await version(db, 'c')
    const expectUntouched = async (): Promise<void> => {
      for (const k of keys) expect(await db.getEntry(k), k).toEqual(before.get(k))
      expect(await scan(db.iterator())).toEqual(['a=a0', 'b=b0', 'c=c0'])
    }
    // The failing condition first, last, in the middle; with unconditional ops around it.
    expectConflict(
      await rejection(
        db.batch([
          { type: 'put', key: 'a', value: 'a1', ifVersion: va + 1 },
          { type: 'put', key: 'b', value: 'b1', ifVersion: vb },
          { type: 'put', key: 'd', value: 'd1' },
        ]),
      ),
      ['a'],
    )
    await expectUntouched()
    expectConflict(
      await rejection(
        db.batch([
          { type: 'del', key: 'a' },
          { type: 'put', key: 'e', value: 'e1', ifVersion: 0 },
          { type: 'del', key: 'c', ifVersion: vc },
          { type: 'put', key: 'b', value: 'b1', ifVersion: 0 },
        ]),
      ),
      ['b'],
    )
    await expectUntouched()
    // Several failing keys: all of them named, and only them.
    expectConflict(
      await rejection(
        db.batch([
          { type: 'put', key: 'a', value: 'a1', ifVersion: va }, // holds
          { type: 'put', key: 'b', value: 'b1', ifVersion: va }, // fails
          { type: 'check', key: 'c', ifVersion: 0 }, // fails
          { type: 'del', key: 'd', ifVersion: vb }, // fails (d is absent)
          { type: 'put', key: 'e', value: 'e1', ifVersion: 0 }, // holds
        ]),
      ),
      ['b', 'c', 'd'],
    )
    await expectUntouched()
    // And the same batch with every condition fixed goes through whole.
    await db.batch([
      { type: 'put', key: 'a', value: 'a1', ifVersion: va },
      { type: 'put', key: 'b', value: 'b1', ifVersion: vb },
      { type: 'check', key: 'c', ifVersion: vc },
      { type: 'del', key: 'd', ifVersion: 0 },
      { type: 'put', key: 'e', value: 'e1', ifVersion: 0 },
    ])
    expect(await scan(db.iterator())).toEqual(['a=a1', 'b=b1', 'c=c0', 'e=e1'])
    expect(await version(db, 'c')).toBe(vc)
  })

  it('names binary keys in err.keys as the exact bytes', async () => {
    const { db } = await fresh()
    const key = Buffer.from([0, 255, 1, 128])
    await db.put(key, 'x')
    const err = await rejection(db.batch([{ type: 'put', key, value: 'y', ifVersion: 0 }]))
    expect(err.code).toBe('STRATA_CONFLICT')
    expect(err.keys).toHaveLength(1)
    expect(Buffer.compare(err.keys[0], key)).toBe(0)
  })

  it('rejects malformed preconditions as invalid arguments, writing nothing', async () => {
    const { db } = await fresh()
    const bad: unknown[] = [
      [{ type: 'put', key: 'k', value: 'v', ifVersion: -1 }],
      [{ type: 'put', key: 'k', value: 'v', ifVersion: 1.5 }],
      [{ type: 'put', key: 'k', value: 'v', ifVersion: '3' }],
      [{ type: 'del', key: 'k', ifVersion: NaN }],
      [{ type: 'check', key: 'k' }],
      [{ type: 'put', key: 'k', value: 'v' }, { type: 'check', key: 'k', ifVersion: Infinity }],
    ]
    for (const ops of bad) {
      const err = await rejection(db.batch(ops as BatchOp[]))
      expect(err.code, JSON.stringify(ops)).toBe('STRATA_INVALID_ARGUMENT')
    }
    expect(await db.getEntry('k')).toBeUndefined()
  })

  it('conditions see every write queued before them, even when not yet awaited', async () => {
    const { db } = await fresh()
    await db.put('k', 'a')
    const va = await version(db, 'k')
    const p1 = db.put('k', 'b')
    const p2 = db.batch([{ type: 'put', key: 'k', value: 'c', ifVersion: va }]) // stale: queued after p1
    const p3 = db.batch([{ type: 'put', key: 'n', value: '1', ifVersion: 0 }])
    const p4 = db.batch([{ type: 'put', key: 'n', value: '2', ifVersion: 0 }]) // n no longer absent
    const p5 = db.delete('n')
    const p6 = db.batch([{ type: 'put', key: 'n', value: '3', ifVersion: 0 }]) // absent again
    const r = await Promise.allSettled([p1, p2, p3, p4, p5, p6])
    expect(r.map((x) => x.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'])
    expectConflict((r[1] as PromiseRejectedResult).reason, ['k'])
    expectConflict((r[3] as PromiseRejectedResult).reason, ['n'])
    expect(str((await db.get('k'))!)).toBe('b')
    expect(str((await db.get('n'))!)).toBe('3')
  })

  it('many conditional writes racing on one key with the same expected version: exactly one succeeds', async () => {
    const { db } = await fresh({ memtableBytes: 16384 })
    const rng = makeRng(3)
    for (let round = 0; round < 20; round++) {
      const key = `race${round % 4}`
      const current = await db.getEntry(key)
      const expected = current?.version ?? 0 // the first rounds per key race on "must be absent"
      const N = 100
      const results = await Promise.allSettled(
        Array.from({ length: N }, async (_, i) => {
          // Spread the racers over several group commits: some go at once, some after a delay, some sync.
          if (round % 2 === 1 && rng() < 0.5) await sleep(Math.floor(rng() * 3))
          const op: BatchOp =
            round % 5 === 4 && current !== undefined
              ? { type: 'del', key, ifVersion: expected }
              : { type: 'put', key, value: `r${round}w${i}`, ifVersion: expected }
          const extra: BatchOp[] = [{ type: 'put', key: `mark${round}.${i}`, value: 'won' }]
          await db.batch(i % 2 === 0 ? [op, ...extra] : [...extra, op], i % 9 === 0 ? { sync: true } : undefined)
          return i
        }),
      )
      const winners = results.filter((r): r is PromiseFulfilledResult<number> => r.status === 'fulfilled').map((r) => r.value)
      expect(winners, `round ${round}`).toHaveLength(1)
      for (const r of results) if (r.status === 'rejected') expectConflict(r.reason, [key])
      const after = await db.getEntry(key)
      if (round % 5 === 4 && current !== undefined) expect(after).toBeUndefined()
      else {
        expect(str(after!.value)).toBe(`r${round}w${winners[0]}`)
        expect(after!.version).toBeGreaterThan(expected)
      }
      // Only the winner's unconditional companion write happened.
      const marks = await scan(db.iterator({ gte: `mark${round}.`, lt: `mark${round}/` }))
      expect(marks).toEqual([`mark${round}.${winners[0]}=won`])
    }
  })
})

// ---- 3. model-based ---------------------------------------------------------------

describe('conditional batches against a model', () => {
  /** A key's state in the model; `fresh` = written this round, its version not known yet (but newer than all known). */
  type ModelEntry = { value: string; version: number; fresh?: { batch: number } }

  it('random conditional batches, issued concurrently, match the model (outcomes, conflicting keys, final state)', async () => {
    const seed = seedFor('conditional batch model')
    const rng = makeRng(seed)
    const int = (lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1))
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]
    const KEYS = Array.from({ length: 14 }, (_, i) => `m${String(i).padStart(2, '0')}`)
    const options: OpenOptions = { memtableBytes: 8192, targetTableBytes: 4096, levelBaseBytes: 16384 }
    let { db, dir } = await fresh(options)
    const model = new Map<string, ModelEntry>()
    /** Every version each key ever had: the source of stale expectations. */
    const history = new Map<string, number[]>()
    let high = 0 // the highest version observed so far; fresh versions are above it
    let ops = 0
    let conflicts = 0
    let successes = 0
    const log: string[] = []
    function fail(msg: string): never {
      throw new Error(`seed ${seed}: ${msg}\nlast batches:\n  ${log.slice(-12).join('\n  ')}`)
    }
    try {
      for (let round = 0; round < 250; round++) {
        const chooseVersion = (key: string): number => {
          const cur = model.get(key)?.version ?? 0
          const r = rng()
          if (r < 0.7) return cur
          if (r < 0.8) {
            const h = history.get(key) ?? []
            const stale = h.filter((v) => v !== cur)
            if (stale.length > 0) return pick(stale)
            // No older version of this key: another number no fresh write can have (<= high).
            return cur > 0 ? cur - 1 : high === 0 ? 0 : int(1, high)
          }
          if (r < 0.9) return 0
          // Only versions already observed: one above `high` may be a fresh version written
          // in this very round (at round 0, high = 0 and version 1 is the round's first write).
          return high === 0 ? 0 : int(1, high)
        }
        // Build the round's writes (conditional batches, some plain writes), in call order.
        type Planned =
          | { kind: 'batch'; ops: BatchOp[]; desc: string }
          | { kind: 'put'; key: string; value: string; desc: string }
          | { kind: 'del'; key: string; desc: string }
        const planned: Planned[] = []
        const nBatches = int(1, 7)
        for (let b = 0; b < nBatches; b++) {
          if (rng() < 0.12) {
            const key = pick(KEYS)
            if (rng() < 0.7) planned.push({ kind: 'put', key, value: `p${round}.${b}`.padEnd(int(4, 600), '.'), desc: `put ${key}` })
            else planned.push({ kind: 'del', key, desc: `del ${key}` })
            continue
          }
          const n = int(1, 5)
          const keys = new Set<string>()
          while (keys.size < n) keys.add(pick(KEYS))
          const bops: BatchOp[] = []
          for (const key of keys) {
            const r = rng()
            const cond = rng() < 0.75 ? chooseVersion(key) : undefined
            if (r < 0.5) bops.push({ type: 'put', key, value: `b${round}.${b}.${key}`.padEnd(int(4, 600), '-'), ...(cond === undefined ? {} : { ifVersion: cond }) })
            else if (r < 0.75) bops.push({ type: 'del', key, ...(cond === undefined ? {} : { ifVersion: cond }) })
            else bops.push({ type: 'check', key, ifVersion: cond ?? chooseVersion(key) })
          }
          planned.push({ kind: 'batch', ops: bops, desc: bops.map((o) => `${o.type} ${o.key as string}${o.ifVersion === undefined ? '' : `@${o.ifVersion}`}`).join(', ') })
        }
        // Predict, in call order.
        const expected: Array<{ ok: true } | { ok: false; keys: string[] }> = []
        planned.forEach((p, index) => {
          if (p.kind === 'put') {
            model.set(p.key, { value: p.value, version: -1, fresh: { batch: index } })
            expected.push({ ok: true })
          } else if (p.kind === 'del') {
            model.delete(p.key)
            expected.push({ ok: true })
          } else {
            const failed: string[] = []
            for (const o of p.ops) {
              if (o.ifVersion === undefined) continue
              const cur = model.get(o.key as string)
              // A fresh version is newer than every candidate we could have chosen.
              const holds = cur === undefined ? o.ifVersion === 0 : !cur.fresh && cur.version === o.ifVersion
              if (!holds) failed.push(o.key as string)
            }
            if (failed.length > 0) {
              expected.push({ ok: false, keys: uniqSorted(failed) })
              return
            }
            for (const o of p.ops) {
              if (o.type === 'put') model.set(o.key as string, { value: o.value as string, version: -1, fresh: { batch: index } })
              else if (o.type === 'del') model.delete(o.key as string)
            }
            expected.push({ ok: true })
          }
        })
        // Issue them all without awaiting in between.
        const promises = planned.map((p) =>
          p.kind === 'put' ? db.put(p.key, p.value) : p.kind === 'del' ? db.delete(p.key) : db.batch(p.ops, rng() < 0.1 ? { sync: true } : undefined),
        )
        const results = await Promise.allSettled(promises)
        results.forEach((r, i) => {
          const want = expected[i]
          const line = `round ${round} #${i}: ${planned[i].desc} -> expected ${want.ok ? 'ok' : `conflict [${want.keys}]`}`
          log.push(line)
          ops++
          if (r.status === 'fulfilled') {
            if (!want.ok) fail(`${line}, but it succeeded`)
            successes++
            return
          }
          const err = r.reason
          if (err?.code !== 'STRATA_CONFLICT') fail(`${line}, but it failed with ${err?.stack ?? err}`)
          if (want.ok) fail(`${line}, but it conflicted on [${err.keys.map(str)}]`)
          const got = uniqSorted(err.keys.map(str))
          if (got.join() !== want.keys.join()) fail(`${line}, but it conflicted on [${got}]`)
          for (const k of want.keys) if (!err.message.includes(k)) fail(`${line}: message ${err.message} does not name ${k}`)
          conflicts++
        })
        // Compare the state; learn the fresh versions and check their order.
        const freshSeen: Array<{ batch: number; version: number; key: string }> = []
        for (const key of KEYS) {
          const want = model.get(key)
          const got = await db.getEntry(key)
          if (want === undefined) {
            if (got !== undefined) fail(`round ${round}: ${key} should be absent, has ${str(got.value).slice(0, 20)}@${got.version}`)
            continue
          }
          if (got === undefined) fail(`round ${round}: ${key} should hold ${want.value.slice(0, 20)}, is absent`)
          if (str(got!.value) !== want.value) fail(`round ${round}: ${key} holds ${str(got!.value).slice(0, 20)}, expected ${want.value.slice(0, 20)}`)
          if (want.fresh) {
            if (!(got!.version > high)) fail(`round ${round}: ${key} was rewritten but its version ${got!.version} is not above ${high}`)
            freshSeen.push({ batch: want.fresh.batch, version: got!.version, key })
            want.version = got!.version
            delete want.fresh
            history.set(key, [...(history.get(key) ?? []), got!.version])
          } else if (got!.version !== want.version) {
            fail(`round ${round}: ${key} was not written, but its version changed from ${want.version} to ${got!.version}`)
          }
        }
        const versionsThisRound = freshSeen.map((f) => f.version)
        if (new Set(versionsThisRound).size !== versionsThisRound.length) fail(`round ${round}: duplicate versions ${versionsThisRound}`)
        freshSeen.sort((a, b) => a.version - b.version)
        for (let i = 1; i < freshSeen.length; i++) {
          if (freshSeen[i].batch < freshSeen[i - 1].batch) {
            fail(`round ${round}: ${freshSeen[i].key} (write #${freshSeen[i].batch}) got an older version than ${freshSeen[i - 1].key} (write #${freshSeen[i - 1].batch})`)
          }
        }
        for (const f of freshSeen) high = Math.max(high, f.version)
        if (round % 10 === 9) {
          const want = KEYS.filter((k) => model.has(k)).map((k) => `${k}=${model.get(k)!.value}`)
          const forward = await scan(db.iterator())
          if (forward.join('|') !== want.join('|')) fail(`round ${round}: scan ${forward.map((x) => x.slice(0, 4))} != model ${want.map((x) => x.slice(0, 4))}`)
          const reverse = await scan(db.iterator({ reverse: true }))
          if (reverse.reverse().join('|') !== want.join('|')) fail(`round ${round}: reverse scan differs`)
        }
        if (round % 60 === 59) db = await reopen(db, dir, options) // versions must come back unchanged (checked next round)
        if (round % 80 === 40) await db.compactRange()
      }
    } catch (err) {
      if (err instanceof Error && !err.message.startsWith('seed')) err.message = `seed ${seed}: ${err.message}`
      throw err
    }
    console.log(`conditional batch model: ${ops} writes, ${successes} applied, ${conflicts} conflicts`)
    expect(conflicts).toBeGreaterThan(50)
    expect(successes).toBeGreaterThan(50)
  })
})

// ---- 4. transactions: counters, retries, errors ----------------------------------------

const increment =
  (key: string, calls?: { n: number }) =>
  async (tx: Transaction): Promise<number> => {
    if (calls) calls.n++
    const n = Number(str((await tx.get(key)) ?? Buffer.from('0')))
    tx.put(key, String(n + 1))
    return n + 1
  }

describe('transactions', () => {
  it('512 concurrent tasks x 100 increments of one key, unlimited retries: exactly 51,200', async () => {
    const { db } = await fresh()
    const calls = { n: 0 }
    const returned = new Set<number>()
    await Promise.all(
      Array.from({ length: 512 }, async () => {
        for (let i = 0; i < 100; i++) returned.add(await db.transaction(increment('counter', calls), { retries: Infinity }))
      }),
    )
    expect(str((await db.get('counter'))!)).toBe('51200')
    // Each commit saw a distinct count: 1..51200, each returned exactly once.
    expect(returned.size).toBe(51_200)
    expect(Math.min(...returned)).toBe(1)
    expect(Math.max(...returned)).toBe(51_200)
    expect(calls.n).toBeGreaterThanOrEqual(51_200)
    console.log(`512x100 increments: ${calls.n} attempts for 51200 commits`)
  })

  it('with retries: 2, every failure is STRATA_CONFLICT, fn runs at most 3 times, and the count equals the successes', async () => {
    const { db } = await fresh()
    let successes = 0
    let failures = 0
    const attemptsOfFailed: number[] = []
    let maxAttempts = 0
    await Promise.all(
      Array.from({ length: 256 }, async () => {
        for (let i = 0; i < 30; i++) {
          const calls = { n: 0 }
          try {
            await db.transaction(increment('counter', calls), { retries: 2 })
            successes++
          } catch (err: any) {
            expect(err.code).toBe('STRATA_CONFLICT')
            expect(err).toBeInstanceOf(ConflictError)
            expect(err.keys.map(str)).toContain('counter')
            failures++
            attemptsOfFailed.push(calls.n)
          }
          maxAttempts = Math.max(maxAttempts, calls.n)
        }
      }),
    )
    console.log(`retries 2: ${successes} committed, ${failures} gave up`)
    expect(successes + failures).toBe(256 * 30)
    expect(successes).toBeGreaterThan(0)
    expect(maxAttempts).toBeLessThanOrEqual(3)
    for (const n of attemptsOfFailed) expect(n).toBe(3)
    expect(str((await db.get('counter'))!)).toBe(String(successes))
    // retries: 0 means one attempt only.
    const calls = { n: 0 }
    const err = await rejection(
      db.transaction(
        async (tx) => {
          calls.n++
          await tx.get('counter')
          await db.put('counter', 'bumped') // someone else wins
          tx.put('counter', 'mine')
        },
        { retries: 0 },
      ),
    )
    expectConflict(err, ['counter'])
    expect(calls.n).toBe(1)
    expect(str((await db.get('counter'))!)).toBe('bumped')
  })

  it('the default retry limit is 10: fn runs 11 times against a key that always changes, then STRATA_CONFLICT', async () => {
    const { db } = await fresh()
    let calls = 0
    const err = await rejection(
      db.transaction(async (tx) => {
        calls++
        await tx.get('k')
        await db.put('k', String(calls))
        tx.put('out', 'x')
      }),
    )
    expectConflict(err, ['k'])
    expect(calls).toBe(11)
    expect(await db.get('out')).toBeUndefined()
  })

  it('increments over 100 keys from many tasks: every key counts exactly its commits', async () => {
    const { db } = await fresh({ memtableBytes: 64 * 1024 })
    const KEYS = 100
    const expected = new Array<number>(KEYS).fill(0)
    const rng = makeRng(99)
    await Promise.all(
      Array.from({ length: 200 }, async (_, task) => {
        for (let i = 0; i < 40; i++) {
          // Two distinct keys per transaction, plus (sometimes) a read-only key: cross-key conflicts.
          const a = Math.floor(rng() * KEYS)
          const b = (a + 1 + Math.floor(rng() * (KEYS - 1))) % KEYS
          const c = Math.floor(rng() * KEYS)
          await db.transaction(
            async (tx) => {
              const va = Number(str((await tx.get(`c${a}`)) ?? Buffer.from('0')))
              if (task % 3 === 0) await tx.get(`c${c}`)
              const vb = Number(str((await tx.get(`c${b}`)) ?? Buffer.from('0')))
              if (task % 5 === 0) await sleep(0)
              tx.put(`c${a}`, String(va + 1))
              tx.put(`c${b}`, String(vb + 1))
            },
            { retries: Infinity },
          )
          expected[a]++
          expected[b]++
        }
      }),
    )
    let total = 0
    for (let k = 0; k < KEYS; k++) {
      const v = Number(str((await db.get(`c${k}`)) ?? Buffer.from('0')))
      expect(v, `c${k}`).toBe(expected[k])
      total += v
    }
    expect(total).toBe(200 * 40 * 2)
  })

  it('a transaction whose fn throws rejects with that error and writes nothing', async () => {
    const { db } = await fresh()
    await db.put('a', '1')
    const boom = new Error('boom')
    let calls = 0
    const err = await rejection(
      db.transaction(async (tx) => {
        calls++
        tx.put('a', '2')
        tx.put('b', '2')
        tx.delete('a')
        await tx.get('a')
        throw boom
      }),
    )
    expect(err).toBe(boom)
    expect(calls).toBe(1) // not retried
    expect(str((await db.get('a'))!)).toBe('1')
    expect(await db.get('b')).toBeUndefined()
    // A synchronous throw, and a StrataError with another code: also not retried, nothing written.
    const err2 = await rejection(
      db.transaction((tx) => {
        tx.put('c', '1')
        throw new TypeError('sync')
      }),
    )
    expect(err2).toBeInstanceOf(TypeError)
    const err3 = await rejection(
      db.transaction(async (tx) => {
        tx.put('d', '1')
        tx.put('', 'empty keys are invalid')
      }),
    )
    expect(err3.code).toBe('STRATA_INVALID_ARGUMENT')
    expect(await db.get('c')).toBeUndefined()
    expect(await db.get('d')).toBeUndefined()
    // A throw after a conflict-retry: the error of that attempt, still nothing written.
    let n = 0
    const err4 = await rejection(
      db.transaction(async (tx) => {
        n++
        await tx.get('a')
        if (n === 1) await db.put('a', 'changed')
        tx.put('e', String(n))
        if (n === 2) throw boom
      }),
    )
    expect(err4).toBe(boom)
    expect(n).toBe(2)
    expect(await db.get('e')).toBeUndefined()
  })

  it('resolves with the return value of fn, and rejects invalid arguments', async () => {
    const { db } = await fresh()
    expect(await db.transaction(async () => 42)).toBe(42)
    expect(await db.transaction(() => 'sync')).toBe('sync')
    const obj = { x: 1 }
    expect(await db.transaction(async (tx) => (tx.put('k', 'v'), obj))).toBe(obj)
    expect(str((await db.get('k'))!)).toBe('v')
    for (const retries of [-1, 1.5, NaN, '3']) {
      const err = await rejection(db.transaction(async () => 1, { retries: retries as number }))
      expect(err.code).toBe('STRATA_INVALID_ARGUMENT')
    }
    expect((await rejection(db.transaction('nope' as never))).code).toBe('STRATA_INVALID_ARGUMENT')
  })

  it('a tx used after its transaction committed: reads reject (never throw), writes throw, nothing is written', async () => {
    const { db } = await fresh()
    let escaped: Transaction | undefined
    await db.transaction(async (tx) => {
      escaped = tx
      tx.put('k', 'v1')
    })
    const tx = escaped!
    const pending = [tx.get('k'), tx.getEntry('k')]
    for (const p of pending) expect((await rejection(p)).code).toBe('STRATA_INVALID_ARGUMENT')
    expect(() => tx.put('k', 'v2')).toThrow(expect.objectContaining({ code: 'STRATA_INVALID_ARGUMENT' }))
    expect(() => tx.delete('k')).toThrow(expect.objectContaining({ code: 'STRATA_INVALID_ARGUMENT' }))
    expect(str((await db.get('k'))!)).toBe('v1')
  })

  it('tx reads see own writes (version 0) over the snapshot; getEntry gives snapshot versions', async () => {
    const { db } = await fresh()
    await db.put('a', 'a0')
    await db.put('b', 'b0')
    const va = await version(db, 'a')
    await db.transaction(async (tx) => {
      expect(await tx.getEntry('a')).toEqual({ value: Buffer.from('a0'), version: va })
      await db.put('a', 'outside') // after the snapshot: not visible here
      expect(str((await tx.get('a'))!)).toBe('a0')
      tx.put('b', 'mine')
      expect(await tx.getEntry('b')).toEqual({ value: Buffer.from('mine'), version: 0 })
      tx.delete('b')
      expect(await tx.get('b')).toBeUndefined()
      expect(await tx.getEntry('b')).toBeUndefined()
      tx.put('c', 'c1')
    }, { retries: 0 }).then(
      () => expect.unreachable('read a, which changed: must conflict'),
      (err) => expectConflict(err, ['a']),
    )
    expect(str((await db.get('b'))!)).toBe('b0')
    expect(await db.get('c')).toBeUndefined()
  })

  it('a read-only transaction never conflicts and reads one consistent snapshot', async () => {
    const { db } = await fresh()
    await db.batch([
      { type: 'put', key: 'x', value: '0' },
      { type: 'put', key: 'y', value: '0' },
    ])
    let stop = false
    const writer = (async () => {
      for (let i = 1; !stop; i++) {
        await db.batch([
          { type: 'put', key: 'x', value: String(i) },
          { type: 'put', key: 'y', value: String(i) },
        ])
        if (i % 10 === 0) await sleep(0)
      }
    })()
    let calls = 0
    const readers: Array<Promise<{ x: string; y: string; all: string[] }>> = []
    for (let i = 0; i < 40; i++) {
      await sleep(1) // readers start at different points of the writer's progress
      readers.push(db.transaction(
        async (tx) => {
          calls++
          const x = str((await tx.get('x'))!)
          await sleep(2)
          const y = str((await tx.get('y'))!)
          const all = await scan(tx.iterator())
          return { x, y, all }
        },
        { retries: 0 },
      ))
    }
    const results = await Promise.all(readers)
    stop = true
    await writer
    expect(calls).toBe(40)
    for (const r of results) {
      expect(r.y).toBe(r.x)
      expect(r.all).toEqual([`x=${r.x}`, `y=${r.x}`])
    }
    expect(new Set(results.map((r) => r.x)).size).toBeGreaterThan(1) // they did see different points in time
  })
})

// ---- 5. range validation and tx.iterator --------------------------------------------

describe('transaction range reads', () => {
  const SEED_KEYS = ['r:10', 'r:20', 'r:30', 'r:40', 'r:50', 'r:60']

  /** Empties the database, then writes SEED_KEYS (value: the key's number). */
  async function reset(db: Database): Promise<void> {
    const ops: BatchOp[] = []
    for await (const [k] of db.iterator()) ops.push({ type: 'del', key: k })
    for (const key of SEED_KEYS) ops.push({ type: 'put', key, value: key.slice(2) })
    await db.batch(ops)
  }

  async function seeded(): Promise<Database> {
    const { db } = await fresh()
    await reset(db)
    return db
  }

  /**
   * From the SEED_KEYS state, runs one attempt (retries 0) that reads with
   * `read`, lets `interfere` write, then writes 'out'.
   */
  async function attempt(db: Database, read: (tx: Transaction) => Promise<unknown>, interfere: () => Promise<unknown>): Promise<'committed' | 'conflict'> {
    await reset(db)
    try {
      await db.transaction(
        async (tx) => {
          await read(tx)
          await interfere()
          tx.put('out', 'written')
        },
        { retries: 0 },
      )
      expect(str((await db.get('out'))!)).toBe('written')
      await db.delete('out')
      return 'committed'
    } catch (err: any) {
      if (err?.code !== 'STRATA_CONFLICT') throw err
      expect(await db.get('out')).toBeUndefined()
      return 'conflict'
    }
  }

  const full = (o: Parameters<Transaction['iterator']>[0]) => (tx: Transaction) => scan(tx.iterator(o))

  it('an insert, update or delete inside a fully scanned range makes the commit conflict (phantoms)', async () => {
    const db = await seeded()
    const range = { gte: 'r:00', lt: 'r:99' }
    expect(await attempt(db, full(range), () => db.put('r:35', 'phantom'))).toBe('conflict')
    expect(await attempt(db, full(range), () => db.put('r:20', 'updated'))).toBe('conflict')
    expect(await attempt(db, full(range), () => db.delete('r:40'))).toBe('conflict')
    expect(await attempt(db, full(range), () => db.put('r:00', 'at the lower bound'))).toBe('conflict')
    expect(await attempt(db, full({ ...range, reverse: true }), () => db.put('r:98', 'near the upper bound'))).toBe('conflict')
    // The conflict names a key of the range.
    const err = await rejection(
      db.transaction(
        async (tx) => {
          await scan(tx.iterator({ gt: 'r:50' }))
          await db.put('r:55', 'x')
          tx.put('out', '1')
        },
        { retries: 0 },
      ),
    )
    expectConflict(err, ['r:55'])
    // An empty range read ("no such key yet") is protected too.
    expect(await attempt(db, full({ gte: 's:', lt: 's;' }), () => db.put('s:1', 'x'))).toBe('conflict')
    // A conditional batch by someone else counts as a write too.
    expect(await attempt(db, full(range), () => db.batch([{ type: 'put', key: 'r:36', value: 'x', ifVersion: 0 }]))).toBe('conflict')
  })

  it('a write outside the scanned part does not conflict (bounds, limit, early break)', async () => {
    const db = await seeded()
    // Outside the bounds.
    expect(await attempt(db, full({ gte: 'r:20', lt: 'r:40' }), () => db.put('r:45', 'x'))).toBe('committed')
    expect(await attempt(db, full({ gt: 'r:20', lte: 'r:40' }), () => db.put('r:20', 'x'))).toBe('committed')
    expect(await attempt(db, full({ gt: 'r:20', lte: 'r:40' }), () => db.put('r:15', 'x'))).toBe('committed')
    expect(await attempt(db, full({ gt: 'r:20', lte: 'r:40' }), () => db.put('r:40', 'x'))).toBe('conflict')
    // Beyond where a limit stopped: forward...
    expect(await attempt(db, full({ gte: 'r:', limit: 2 }), () => db.put('r:25', 'x'))).toBe('committed')
    expect(await attempt(db, full({ gte: 'r:', limit: 2 }), () => db.put('r:60', 'x'))).toBe('committed')
    expect(await attempt(db, full({ gte: 'r:', limit: 2 }), () => db.put('r:15', 'x'))).toBe('conflict')
    expect(await attempt(db, full({ gte: 'r:', limit: 2 }), () => db.put('r:05', 'x'))).toBe('conflict')
    // ...and reverse (r:60, r:50 scanned).
    expect(await attempt(db, full({ lt: 'r:99', reverse: true, limit: 2 }), () => db.put('r:45', 'x'))).toBe('committed')
    expect(await attempt(db, full({ lt: 'r:99', reverse: true, limit: 2 }), () => db.put('r:55', 'x'))).toBe('conflict')
    expect(await attempt(db, full({ lt: 'r:99', reverse: true, limit: 2 }), () => db.put('r:70', 'x'))).toBe('conflict')
    // A for-await loop that breaks early scanned up to the last key it got.
    const breakAfter = (n: number, reverse = false) => async (tx: Transaction) => {
      let seen = 0
      for await (const _ of tx.iterator({ gte: 'r:', lt: 'r;', reverse })) if (++seen === n) break
    }
    expect(await attempt(db, breakAfter(3), () => db.put('r:42', 'x'))).toBe('committed')
    expect(await attempt(db, breakAfter(3), () => db.put('r:28', 'x'))).toBe('conflict')
    expect(await attempt(db, breakAfter(2, true), () => db.put('r:33', 'x'))).toBe('committed')
    expect(await attempt(db, breakAfter(2, true), () => db.put('r:65', 'x'))).toBe('conflict')
  })

  it('the part scanned by an iterator left open (not exhausted, not closed) is validated too', async () => {
    const db = await seeded()
    // next() twice by hand (r:10, r:20), the iterator is then dropped without return().
    const partial = async (tx: Transaction): Promise<void> => {
      const it = tx.iterator({ gte: 'r:', lt: 'r;' })
      expect(str((await it.next()).value[0])).toBe('r:10')
      expect(str((await it.next()).value[0])).toBe('r:20')
    }
    expect(await attempt(db, partial, () => db.put('r:15', 'inside what was scanned'))).toBe('conflict')
  })

  it('validation finds writes made after the snapshot even once they were flushed and compacted into tables', async () => {
    const { db } = await fresh({ memtableBytes: 8192, targetTableBytes: 4096, levelBaseBytes: 16384 })
    for (let i = 0; i < 60; i++) await db.put(`r:${String(i * 2).padStart(3, '0')}`, 'x'.repeat(300))
    const run = async (interfere: () => Promise<unknown>): Promise<string[] | 'committed'> => {
      try {
        await db.transaction(
          async (tx) => {
            await scan(tx.iterator({ gte: 'r:', lt: 'r;' }))
            await tx.get('point')
            await interfere()
            // Bulk writes elsewhere: the memtable holding the interfering write is long flushed.
            for (let i = 0; i < 100; i++) await db.put(`z${i}`, 'q'.repeat(200))
            await db.compactRange()
            tx.put('out', '1')
          },
          { retries: 0 },
        )
        return 'committed'
      } catch (err: any) {
        if (err?.code !== 'STRATA_CONFLICT') throw err
        return uniqSorted(err.keys.map(str))
      }
    }
    expect(await run(() => db.put('r:051', 'phantom'))).toEqual(['r:051'])
    expect(await run(() => db.delete('r:010'))).toEqual(['r:010'])
    expect(await run(() => db.put('point', 'changed'))).toEqual(['point'])
    expect(await run(async () => (await db.put('r:053', 'y'), await db.delete('r:053')))).toEqual(['r:053'])
    expect(await run(() => db.put('s:outside', 'y'))).toBe('committed')
  })

  it('a read-only range scan never conflicts', async () => {
    const db = await seeded()
    let calls = 0
    const got = await db.transaction(
      async (tx) => {
        calls++
        const before = await scan(tx.iterator())
        await db.put('r:33', 'x')
        await db.delete('r:10')
        return before
      },
      { retries: 0 },
    )
    expect(calls).toBe(1)
    expect(got).toEqual(['r:10=10', 'r:20=20', 'r:30=30', 'r:40=40', 'r:50=50', 'r:60=60'])
  })

  it('range validation prevents write skew: "insert if the range is empty" from many tasks inserts once', async () => {
    const { db } = await fresh()
    let commits = 0
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        db.transaction(
          async (tx) => {
            const existing = await scan(tx.iterator({ gte: 'slot:', lt: 'slot;' }))
            await sleep(i % 3)
            if (existing.length === 0) tx.put(`slot:${String(i).padStart(2, '0')}`, 'taken')
          },
          { retries: Infinity },
        ).then(() => commits++),
      ),
    )
    expect(commits).toBe(50)
    expect(await scan(db.iterator({ gte: 'slot:', lt: 'slot;' }))).toHaveLength(1)
  })

  it('tx.iterator merges own buffered puts and deletes in order, forward and reverse, with bounds and limit', async () => {
    const db = await seeded()
    const result = await db.transaction(async (tx) => {
      tx.put('r:15', 'mine15')
      tx.delete('r:30')
      tx.put('r:40', 'mine40')
      tx.put('r:70', 'mine70')
      tx.delete('r:99') // deleting what does not exist
      tx.put('q', 'outside')
      return {
        forward: await scan(tx.iterator({ gte: 'r:', lt: 'r;' })),
        reverse: await scan(tx.iterator({ gte: 'r:', lt: 'r;', reverse: true })),
        bounded: await scan(tx.iterator({ gt: 'r:15', lte: 'r:60', limit: 3 })),
        bounded2: await scan(tx.iterator({ gte: 'r:15', lt: 'r:60', reverse: true, limit: 3 })),
        all: await scan(tx.iterator()),
      }
    })
    const fwd = ['r:10=10', 'r:15=mine15', 'r:20=20', 'r:40=mine40', 'r:50=50', 'r:60=60', 'r:70=mine70']
    expect(result.forward).toEqual(fwd)
    expect(result.reverse).toEqual([...fwd].reverse())
    expect(result.bounded).toEqual(['r:20=20', 'r:40=mine40', 'r:50=50'])
    expect(result.bounded2).toEqual(['r:50=50', 'r:40=mine40', 'r:20=20'])
    expect(result.all).toEqual(['q=outside', ...fwd])
    // And after commit the database holds exactly that.
    expect(await scan(db.iterator())).toEqual(['q=outside', ...fwd])
  })
})

// ---- 6. no starvation --------------------------------------------------------------

describe('transaction fairness', () => {
  // The hot tasks yield to the event loop after every transaction (as a server would between
  // requests): a loop of writes that never does I/O runs entirely in microtasks and would keep
  // timers, including the test's own, from firing (see the report).
  it('a slow transaction with retries: Infinity commits within a bounded time against 64 hot read-modify-write tasks', async () => {
    const { db } = await fresh()
    let stop = false
    let background = 0
    let gaveUp = 0
    // The hot tasks never escalate themselves (retries: 1). The victim loses its first race while
    // it sleeps; its retry then waits for the hot key's turn (the key is contended) and wins.
    const tasks = Array.from({ length: 64 }, async () => {
      while (!stop) {
        try {
          await db.transaction(increment('hot'), { retries: 1 })
          background++
        } catch (err: any) {
          if (err?.code !== 'STRATA_CONFLICT') throw err
          gaveUp++
        }
        await turn()
      }
    })
    await sleep(300) // contention is established
    const before = background
    let victimCalls = 0
    const started = performance.now()
    const victim = db.transaction(
      async (tx) => {
        victimCalls++
        const n = Number(str((await tx.get('hot')) ?? Buffer.from('0')))
        await sleep(20) // far slower than the others: without fairness it would lose every time
        tx.put('hot', String(n + 1))
        tx.put('victim', 'done')
      },
      { retries: Infinity },
    )
    const timeout = sleep(10_000).then(() => 'timeout' as const)
    const outcome = await Promise.race([victim.then(() => 'done' as const), timeout])
    const elapsed = performance.now() - started
    const duringVictim = background - before
    stop = true
    // Nothing hangs: every background task finishes soon after being told to stop.
    const drained = await Promise.race([Promise.all(tasks).then(() => 'drained' as const), sleep(10_000).then(() => 'hung' as const)])
    console.log(`victim: ${outcome} after ${elapsed.toFixed(0)} ms, ${victimCalls} attempts; others committed ${duringVictim} meanwhile (${gaveUp} gave up in all)`)
    expect(outcome).toBe('done')
    expect(drained).toBe('drained')
    expect(elapsed).toBeLessThan(10_000)
    expect(victimCalls).toBeGreaterThan(1) // it really lost before it won
    expect(duringVictim).toBeGreaterThan(0)
    expect(str((await db.get('victim'))!)).toBe('done')
    expect(str((await db.get('hot'))!)).toBe(String(background + 1)) // no lost update either
  })

  it('a slow range reader escalates and commits against 64 tasks writing ever new keys into its range', async () => {
    // Per-key turns cannot help here: every conflict is on another key. The victim must escalate
    // (after 3 conflicts) to the database's turn, during which nobody races it.
    const { db } = await fresh()
    let stop = false
    let background = 0
    let next = 0
    const tasks = Array.from({ length: 64 }, async () => {
      while (!stop) {
        const key = `r/${String(next++).padStart(8, '0')}`
        try {
          await db.transaction((tx) => tx.put(key, 'x'), { retries: 1 })
          background++
        } catch (err: any) {
          if (err?.code !== 'STRATA_CONFLICT') throw err
        }
        await turn()
      }
    })
    await sleep(300)
    let victimCalls = 0
    const started = performance.now()
    const victim = db.transaction(
      async (tx) => {
        victimCalls++
        let n = 0
        for await (const _ of tx.iterator({ gte: 'r/', lt: 'r0' })) n++
        await sleep(20)
        tx.put('count', String(n))
      },
      { retries: Infinity },
    )
    const outcome = await Promise.race([victim.then(() => 'done' as const), sleep(10_000).then(() => 'timeout' as const)])
    const elapsed = performance.now() - started
    stop = true
    const drained = await Promise.race([Promise.all(tasks).then(() => 'drained' as const), sleep(10_000).then(() => 'hung' as const)])
    console.log(`range victim: ${outcome} after ${elapsed.toFixed(0)} ms, ${victimCalls} attempts; ${background} background commits`)
    expect(outcome).toBe('done')
    expect(drained).toBe('drained')
    expect(victimCalls).toBeGreaterThan(3) // it lost, escalated, then won
    // Its count is the number of keys in the range when it committed: nothing was written there after its scan.
    const counted = Number(str((await db.get('count'))!))
    let inRange = 0
    for await (const _ of db.iterator({ gte: 'r/', lt: 'r0' })) inRange++
    expect(counted).toBeLessThanOrEqual(inRange)
    expect(counted).toBeGreaterThan(0)
  })

  it('a transaction started inside an escalated attempt of another one settles instead of deadlocking', async () => {
    const { db } = await fresh()
    let attempts = 0
    const outer = db.transaction(async (tx) => {
      attempts++
      await tx.get('k')
      tx.put('x', String(attempts))
      if (attempts <= 3) {
        await db.put('k', String(attempts)) // lose three times: the fourth attempt is escalated (holds the FIFO turn)
        return
      }
      await db.transaction(async (inner) => inner.put('inner', '1'))
    })
    const outcome = await Promise.race([outer.then(() => 'resolved', (err) => `rejected: ${err}`), sleep(5000).then(() => 'hung')])
    expect(attempts).toBeGreaterThanOrEqual(4)
    expect(outcome, 'a nested db.transaction in an escalated attempt').not.toBe('hung')
    // And transactions on this database still run afterwards.
    const later = await Promise.race([db.transaction((tx) => tx.put('later', '1')).then(() => 'ok'), sleep(5000).then(() => 'hung')])
    expect(later).toBe('ok')
  })

  it('many slow transactions (retries: Infinity) among hot ones (retries: Infinity) all finish, and the count is exact', async () => {
    const { db } = await fresh()
    let stop = false
    let fast = 0
    const tasks = Array.from({ length: 32 }, async () => {
      while (!stop) {
        await db.transaction(increment('hot'), { retries: Infinity })
        fast++
        await turn()
      }
    })
    await sleep(100)
    const started = performance.now()
    const slow = await Promise.race([
      Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          db.transaction(
            async (tx) => {
              const n = Number(str((await tx.get('hot')) ?? Buffer.from('0')))
              await sleep(5 + i)
              tx.put('hot', String(n + 1))
            },
            { retries: Infinity },
          ),
        ),
      ).then(() => 'done' as const),
      sleep(15_000).then(() => 'timeout' as const),
    ])
    const elapsed = performance.now() - started
    stop = true
    await Promise.all(tasks)
    console.log(`8 slow transactions: ${slow} after ${elapsed.toFixed(0)} ms`)
    expect(slow).toBe('done')
    expect(elapsed).toBeLessThan(15_000)
    expect(str((await db.get('hot'))!)).toBe(String(fast + 8))
  })
})

describe('contention tracking', () => {
  it('forgets keys that conflicted once and were never read again (no unbounded growth)', async () => {
    const c = new Contention()
    c.noteConflict([Buffer.from('hot')])
    expect(c.keyTurns('hot')).toBeDefined() // contended right after its conflict
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 1000; i++) c.noteConflict([Buffer.from(`k${round}-${i}`)])
      await sleep(55) // longer than a key stays contended
    }
    // 30,001 distinct keys were noted; stale ones are swept as new ones arrive.
    expect(c.trackedKeys).toBeLessThanOrEqual(2 * 1024 + 1000)
    expect(c.keyTurns('hot')).toBeUndefined()
  })
})
