/**
 * Expiring keys (issue #21, "Expiry"), on real files, with a clock the test
 * moves by hand (the `clock` option: no test sleeps for an expiry):
 *
 *   1. put with ttlMs / expiresAt, batch puts, transaction puts: every read
 *      path (get, getSync, getEntry's expiresAt, iterators both ways and keys
 *      only, snapshots) sees the value until its expiry and nothing from then
 *      on, read from the memtable, from tables and after a reopen (WAL replay
 *      and tables);
 *   2. an expired key is absent for conditions (ifVersion 0 holds);
 *   3. no resurrection: an expired put hides older versions that a snapshot
 *      still keeps in the same table, and compaction turns it into a delete,
 *      never drops it while something older could show through;
 *   4. separated (blob) values expire too, and their bytes become garbage;
 *   5. the change stream hands out expiresAt;
 *   6. bad expiry options are STRATA_INVALID_ARGUMENT and write nothing;
 *   7. a seeded model test: puts with and without expiry, deletes, batches,
 *      clock steps, snapshots, flushes, compactions and reopens, checked
 *      against a map with expiry times after every step.
 */
import { describe, expect, it } from 'vitest'
import type { Database, OpenOptions, Snapshot } from '../src/index.js'
import { SeededRandom } from '../src/cli/bench/key-stream.js'
import { databaseScope } from './database-scope.js'

const { newDir, openDb } = databaseScope('strata-ttl-')

/** A clock the test moves: `clock.now` ms since the epoch. */
function manualClock(start = 1_700_000_000_000): { now: number; read: () => number } {
  const c = { now: start, read: () => c.now }
  return c
}

async function entries(db: Database | Snapshot, reverse = false, values = true): Promise<string[]> {
  const out: string[] = []
  for await (const [k, v] of db.iterator({ reverse, values })) out.push(values ? `${k}=${v}` : `${k}`)
  return out
}

describe('expiring keys', () => {
  it('are readable until their expiry and absent from then on, on every read path, from memtable, tables and after reopen', async () => {
    const dir = newDir()
    const clock = manualClock()
    const t0 = clock.now
    let db = await openDb(dir, { clock: clock.read, flushOnClose: false })
    await db.put('a', 'A', { ttlMs: 100 })
    await db.put('b', 'B')
    await db.put('c', 'C', { expiresAt: t0 + 200 })
    await db.batch([
      { type: 'put', key: 'd', value: 'D', ttlMs: 300 },
      { type: 'put', key: 'e', value: 'E' },
    ])
    await db.transaction((tx) => tx.put('f', 'F', { ttlMs: 400 }))

    const check = async (label: string): Promise<void> => {
      clock.now = t0
      expect(await db.getEntry('a'), label).toEqual({ value: Buffer.from('A'), version: 1, expiresAt: t0 + 100 })
      expect((await db.getEntry('b'))?.expiresAt, label).toBeUndefined()
      expect(await entries(db), label).toEqual(['a=A', 'b=B', 'c=C', 'd=D', 'e=E', 'f=F'])
      clock.now = t0 + 99
      expect(db.getSync('a')?.toString(), label).toBe('A')
      clock.now = t0 + 100
      expect(db.getSync('a'), label).toBeUndefined()
      expect(await db.get('a'), label).toBeUndefined()
      expect(await db.getEntry('a'), label).toBeUndefined()
      clock.now = t0 + 250
      expect(await entries(db), label).toEqual(['b=B', 'd=D', 'e=E', 'f=F'])
      expect(await entries(db, true), label).toEqual(['f=F', 'e=E', 'd=D', 'b=B'])
      expect(await entries(db, false, false), label).toEqual(['b', 'd', 'e', 'f'])
      expect(await entries(db, true, false), label).toEqual(['f', 'e', 'd', 'b'])
      clock.now = t0 + 1000
      expect(await entries(db), label).toEqual(['b=B', 'e=E'])
      expect(await db.transaction((tx) => tx.getEntry('f')), label).toBeUndefined()
    }
    await check('memtable')
    await db.close()
    db = await openDb(dir, { clock: clock.read, flushOnClose: false })
    await check('replayed from the WAL')
    // Tables, compacted: at t0 + 1000 expiries have passed, so put the clock back first.
    clock.now = t0
    await db.compactRange()
    expect(db.stats().compaction.entriesExpired).toBe(0)
    await check('tables')
    await db.close()
    db = await openDb(dir, { clock: clock.read })
    await check('tables after reopen')
  })

  it('a snapshot sees an expiry at the moment of each read, and a transaction reads its own expiring writes', async () => {
    const clock = manualClock()
    const t0 = clock.now
    const db = await openDb(newDir(), { clock: clock.read })
    await db.put('k', 'v1', { ttlMs: 50 })
    const snap = db.snapshot()
    expect(snap.getSync('k')?.toString()).toBe('v1')
    clock.now = t0 + 50
    expect(snap.getSync('k')).toBeUndefined()
    expect(await entries(snap)).toEqual([])
    snap.release()
    await db.transaction(async (tx) => {
      tx.put('t', 'T', { expiresAt: t0 + 60 })
      expect(await tx.getEntry('t')).toEqual({ value: Buffer.from('T'), version: 0, expiresAt: t0 + 60 })
      clock.now = t0 + 60
      expect(await tx.get('t')).toBeUndefined()
      const seen: string[] = []
      for await (const [key] of tx.iterator()) seen.push(key.toString())
      expect(seen).toEqual([])
    })
  })

  it('an expired key is absent for conditions: ifVersion 0 holds, its old version does not', async () => {
    const clock = manualClock()
    const db = await openDb(newDir(), { clock: clock.read })
    await db.put('k', 'v', { ttlMs: 10 })
    const version = (await db.getEntry('k'))!.version
    clock.now += 10
    await expect(db.batch([{ type: 'put', key: 'k', value: 'w', ifVersion: version }])).rejects.toMatchObject({ code: 'STRATA_CONFLICT' })
    await db.batch([{ type: 'put', key: 'k', value: 'w', ifVersion: 0 }])
    expect((await db.getEntry('k'))?.value.toString()).toBe('w')
    expect((await db.getEntry('k'))?.expiresAt).toBeUndefined()
  })

  it('never resurrects an older version: the expired put becomes a delete while a snapshot keeps the older one', async () => {
    const clock = manualClock()
    const db = await openDb(newDir(), { clock: clock.read })
    await db.put('k', 'old')
    const snap = db.snapshot()
    await db.put('k', 'new', { ttlMs: 10 })
    await db.compactRange()
    clock.now += 10
    // The compaction meets `new` expired and `old` kept for the snapshot in the same input.
    await db.compactRange()
    expect(db.stats().compaction.entriesExpired).toBe(1)
    expect(db.getSync('k')).toBeUndefined()
    expect(await entries(db)).toEqual([])
    expect(snap.getSync('k')?.toString()).toBe('old')
    snap.release()
    await db.compactRange()
    expect(db.getSync('k')).toBeUndefined()
    expect(await entries(db, true)).toEqual([])
    expect(db.stats().levels.reduce((n, l) => n + l.tables, 0)).toBe(0)
  })

  it('separated values expire too: reads, iterators, and their bytes become blob garbage once compacted', async () => {
    const clock = manualClock()
    const dir = newDir()
    const db = await openDb(dir, { clock: clock.read, minBlobBytes: 1024 })
    const big = (c: string): Buffer => Buffer.alloc(5000, c)
    await db.put('big1', big('x'), { ttlMs: 100 })
    await db.put('big2', big('y'))
    await db.put('small', 's', { ttlMs: 100 })
    await db.compactRange()
    expect(db.stats().blobs.files).toBe(1)
    expect((await db.getEntry('big1'))?.expiresAt).toBe(clock.now + 100)
    expect(db.getSync('big1')?.equals(big('x'))).toBe(true)
    const seen = new Map<string, Buffer>()
    for await (const [k, v] of db.iterator({ reverse: true })) seen.set(k.toString(), v)
    expect(seen.get('big1')?.equals(big('x'))).toBe(true)
    clock.now += 100
    expect(db.getSync('big1')).toBeUndefined()
    expect(await entries(db, false, false)).toEqual(['big2'])
    await db.compactRange()
    const st = db.stats()
    expect(st.compaction.entriesExpired).toBe(2)
    expect(st.compaction.blobGarbageBytes).toBe(5000)
    expect(db.getSync('big2')?.equals(big('y'))).toBe(true)
  })

  it('the change stream hands out the expiry of each expiring put', async () => {
    const clock = manualClock()
    const db = await openDb(newDir(), { clock: clock.read })
    await db.put('a', '1', { expiresAt: clock.now + 5 })
    await db.put('b', '2')
    const ops = []
    for await (const batch of db.changes()) ops.push(...batch.ops)
    expect(ops.map((o) => [o.key.toString(), o.value?.toString(), o.expiresAt])).toEqual([
      ['a', '1', clock.now + 5],
      ['b', '2', undefined],
    ])
  })

  it('rejects bad expiry options with STRATA_INVALID_ARGUMENT and writes nothing', async () => {
    const db = await openDb(newDir(), {})
    const bad: unknown[] = [{ ttlMs: 0 }, { ttlMs: -5 }, { ttlMs: 1.5 }, { ttlMs: '10' }, { expiresAt: 0 }, { expiresAt: NaN }, { ttlMs: 5, expiresAt: 5 }, null]
    for (const o of bad) {
      await expect(db.put('k', 'v', o as never), JSON.stringify(o)).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
    }
    await expect(db.batch([{ type: 'del', key: 'k', ttlMs: 5 } as never])).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
    await expect(db.batch([{ type: 'put', key: 'j', value: 'v' }, { type: 'put', key: 'k', value: 'v', ttlMs: -1 }])).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
    await expect(db.transaction((tx) => tx.put('k', 'v', { ttlMs: 0 }))).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
    expect(await entries(db)).toEqual([])
    const snap = db.snapshot()
    expect(snap.sequence).toBe(0)
    snap.release()
  })
})

// ---- model test ---------------------------------------------------------------

interface ModelValue {
  value: Buffer
  expiresAt: number | undefined
}

describe('expiring keys against a model', () => {
  const seed = process.env.STRATA_SEED !== undefined ? Number(process.env.STRATA_SEED) >>> 0 : (Math.random() * 0x1_0000_0000) >>> 0

  it(`agrees with a map with expiry times through flushes, compactions, snapshots and reopens (seed ${seed})`, async () => {
    const rng = new SeededRandom(seed)
    const int = (lo: number, hi: number): number => lo + (rng.nextUint32() % (hi - lo + 1))
    const chance = (p: number): boolean => rng.nextUint32() / 0x1_0000_0000 < p
    const clock = manualClock()
    const dir = newDir()
    const options: OpenOptions = { clock: clock.read, memtableBytes: 16 << 10, blockBytes: 512, targetTableBytes: 8 << 10, levelBaseBytes: 32 << 10, l0CompactionTrigger: 2, minBlobBytes: 300 }
    let db = await openDb(dir, options)
    const model = new Map<string, ModelValue>()
    const keys = Array.from({ length: 80 }, (_, i) => `key${String(i).padStart(3, '0')}`)
    const snapshots: Array<{ snap: Snapshot; model: Map<string, ModelValue> }> = []
    const visible = (m: Map<string, ModelValue>, key: string): Buffer | undefined => {
      const v = m.get(key)
      return v === undefined || (v.expiresAt !== undefined && v.expiresAt <= clock.now) ? undefined : v.value
    }
    const live = (m: Map<string, ModelValue>): string[] =>
      [...m.keys()].filter((k) => visible(m, k) !== undefined).sort().map((k) => `${k}=${visible(m, k)!.toString('hex')}`)
    const scan = async (r: Database | Snapshot, reverse: boolean): Promise<string[]> => {
      const out: string[] = []
      for await (const [k, v] of r.iterator({ reverse })) out.push(`${k}=${v.toString('hex')}`)
      return reverse ? out.reverse() : out
    }
    const value = (): Buffer => Buffer.alloc(chance(0.15) ? int(300, 900) : int(0, 40), int(0, 255))
    const expiry = (): number | undefined => (chance(0.5) ? clock.now + int(1, 400) : undefined)
    const ops = 1500
    for (let op = 0; op < ops; op++) {
      const where = `seed ${seed}, op ${op}`
      const r = rng.nextUint32() % 100
      const key = keys[int(0, keys.length - 1)]
      if (r < 40) {
        const v = value()
        const e = expiry()
        await db.put(key, v, e === undefined ? undefined : chance(0.5) ? { expiresAt: e } : { ttlMs: e - clock.now })
        model.set(key, { value: v, expiresAt: e })
      } else if (r < 48) {
        await db.delete(key)
        model.delete(key)
      } else if (r < 55) {
        const batch = Array.from({ length: int(1, 5) }, () => ({ key: keys[int(0, keys.length - 1)], value: value(), expiresAt: expiry() }))
        await db.batch(batch.map((b) => ({ type: 'put' as const, key: b.key, value: b.value, ...(b.expiresAt === undefined ? {} : { expiresAt: b.expiresAt }) })))
        for (const b of batch) model.set(b.key, { value: b.value, expiresAt: b.expiresAt })
      } else if (r < 70) {
        clock.now += int(1, 120)
      } else if (r < 82) {
        const expected = visible(model, key)
        const got = chance(0.5) ? db.getSync(key) : await db.get(key)
        expect(got?.toString('hex'), `${where}: get ${key}`).toBe(expected?.toString('hex'))
        const entry = await db.getEntry(key)
        expect(entry?.expiresAt, `${where}: expiresAt of ${key}`).toBe(expected === undefined ? undefined : model.get(key)!.expiresAt)
      } else if (r < 86) {
        expect(await scan(db, chance(0.5)), `${where}: scan`).toEqual(live(model))
      } else if (r < 89) {
        if (snapshots.length < 3) snapshots.push({ snap: db.snapshot(), model: new Map(model) })
        else snapshots.shift()!.snap.release()
      } else if (r < 92) {
        for (const s of snapshots) expect(await scan(s.snap, chance(0.5)), `${where}: snapshot scan`).toEqual(live(s.model))
      } else if (r < 94) {
        await db.compactRange()
      } else if (r < 95) {
        for (const s of snapshots.splice(0)) s.snap.release()
        await db.close()
        db = await openDb(dir, options)
      }
    }
    expect(await scan(db, false)).toEqual(live(model))
    clock.now += 1000
    await db.compactRange()
    expect(await scan(db, true)).toEqual(live(model))
    expect(db.stats().compaction.entriesExpired).toBeGreaterThan(0)
  })
})
