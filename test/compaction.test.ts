import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { open, type Database } from '../src/index.js'
import { tempDir } from './unit/helpers.js'

let cleanup = (): void => {}
let db: Database | undefined
afterEach(async () => {
  await db?.close()
  db = undefined
  cleanup()
})

/** Tiny sizes so that multi-level compactions happen within a few MB of data. */
const small = {
  memtableBytes: 64 * 1024,
  levelBaseBytes: 256 * 1024,
  levelSizeMultiplier: 4,
  targetTableBytes: 64 * 1024,
  l0CompactionTrigger: 2,
  l0SlowdownTrigger: 6,
  l0StopTrigger: 10,
}

async function fresh(options = {}): Promise<{ db: Database; dir: string }> {
  const t = tempDir('strata-cmp-')
  cleanup = t.cleanup
  db = await open(t.dir, { ...small, ...options })
  return { db, dir: t.dir }
}

const key = (i: number): string => `key${String(i).padStart(7, '0')}`

function tableBytes(dir: string): number {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.sst'))
    .reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0)
}

async function writeAll(db: Database, count: number, value: (i: number) => string, inFlight = 64): Promise<void> {
  const pending: Promise<void>[] = []
  for (let i = 0; i < count; i++) {
    pending.push(db.put(key(i), value(i)))
    if (pending.length >= inFlight) await Promise.all(pending.splice(0))
  }
  await Promise.all(pending)
}

describe('leveled compaction', () => {
  it('moves data into deeper levels and keeps every key readable', async () => {
    const { db } = await fresh()
    await writeAll(db, 30_000, (i) => `v${i}-${'x'.repeat(40)}`)
    const s = db.stats()
    expect(s.compaction.compactions).toBeGreaterThan(5)
    expect(s.levels.slice(2).some((l) => l.tables > 0)).toBe(true)
    for (let i = 0; i < 30_000; i += 97) expect(db.getSync(key(i))?.toString()).toBe(`v${i}-${'x'.repeat(40)}`)
    let n = 0
    for await (const [k] of db.iterator()) expect(k.toString()).toBe(key(n++))
    expect(n).toBe(30_000)
  })

  it('reclaims space from overwrites: disk use within 1.5x of live data once settled', async () => {
    const { db, dir } = await fresh()
    const rounds = 5
    for (let r = 0; r < rounds; r++) await writeAll(db, 20_000, (i) => `r${r}-${i}-${'y'.repeat(60)}`)
    await db.compactRange()
    const afterOverwrites = tableBytes(dir)
    // Live data: the same keys written once, fully compacted, in a fresh database.
    const live = tempDir('strata-cmp-live-')
    const ref = await open(live.dir, small)
    await writeAll(ref, 20_000, (i) => `r${rounds - 1}-${i}-${'y'.repeat(60)}`)
    await ref.compactRange()
    const liveBytes = tableBytes(live.dir)
    await ref.close()
    live.cleanup()
    expect(afterOverwrites).toBeLessThan(1.5 * liveBytes)
    expect(db.getSync(key(123))?.toString()).toBe(`r4-123-${'y'.repeat(60)}`)
  })

  it('drops deletes at the bottom level so a deleted range costs nothing to scan', async () => {
    const { db, dir } = await fresh()
    await writeAll(db, 20_000, (i) => `v${i}`)
    await db.compactRange()
    const before = tableBytes(dir)
    const pending: Promise<void>[] = []
    for (let i = 1000; i < 19_000; i++) pending.push(db.delete(key(i)))
    await Promise.all(pending)
    await db.compactRange()
    expect(tableBytes(dir)).toBeLessThan(before / 3)
    const s = db.stats()
    const entries: string[] = []
    for await (const [k] of db.iterator({ gte: key(990), lt: key(19_010) })) entries.push(k.toString())
    expect(entries).toEqual([...Array(10).keys()].map((i) => key(990 + i)).concat([...Array(10).keys()].map((i) => key(19_000 + i))))
    expect(s.compaction.entriesDropped).toBeGreaterThan(18_000)
  })

  it('keeps the versions a held snapshot needs, and drops them after release', async () => {
    const { db, dir } = await fresh()
    await writeAll(db, 5000, (i) => `old${i}`)
    const snap = db.snapshot()
    await writeAll(db, 5000, (i) => `new${i}`)
    for (let i = 0; i < 5000; i += 7) await db.delete(key(i))
    await db.compactRange()
    for (let i = 0; i < 5000; i += 101) {
      expect(snap.getSync(key(i))?.toString()).toBe(`old${i}`)
      expect(db.getSync(key(i))?.toString()).toBe(i % 7 === 0 ? undefined : `new${i}`)
    }
    let n = 0
    for await (const [k, v] of snap.iterator()) {
      expect(v.toString()).toBe(`old${Number(k.toString().slice(3))}`)
      n++
    }
    expect(n).toBe(5000)
    const held = tableBytes(dir)
    snap.release()
    await db.compactRange()
    expect(tableBytes(dir)).toBeLessThan(held * 0.7)
  })

  it('does not delete tables an open iterator reads, and the iterator sees its point in time', async () => {
    const { db, dir } = await fresh()
    await writeAll(db, 10_000, (i) => `a${i}`)
    await db.compactRange()
    const it = db.iterator()
    const first = await it.next()
    expect(first.value?.[0].toString()).toBe(key(0))
    await writeAll(db, 10_000, (i) => `b${i}`)
    await db.compactRange()
    let n = 1
    for await (const [k, v] of it) {
      expect(v.toString()).toBe(`a${Number(k.toString().slice(3))}`)
      n++
    }
    expect(n).toBe(10_000)
    // Once the iterator is done its old tables go away.
    await db.put('z', 'z')
    await db.compactRange()
    expect(tableBytes(dir)).toBeLessThan(10_000 * 60)
    expect(db.getSync(key(5))?.toString()).toBe('b5')
  })
})

describe('close under write pressure', () => {
  it('closes while writes are held back by compaction debt, and twice at once', async () => {
    const { db } = await fresh({ l0CompactionTrigger: 1, l0SlowdownTrigger: 1, l0StopTrigger: 2, memtableBytes: 16 * 1024 })
    const pending: Promise<void>[] = []
    for (let i = 0; i < 3000; i++) pending.push(db.put(key(i), 'v'.repeat(50)))
    const closing = [db.close(), db.close()]
    await Promise.all(closing)
    const settled = await Promise.allSettled(pending)
    expect(settled.every((s) => s.status === 'fulfilled')).toBe(true)
    expect(db.isOpen).toBe(false)
  })
  it('attributes every stall and slowdown to its cause in stats().writes.waits', async () => {
    // L0 stops at 2 tables and slows from 1: a stream of puts through 16 KiB memtables waits for both flushes and compactions.
    const { db } = await fresh({ l0CompactionTrigger: 1, l0SlowdownTrigger: 1, l0StopTrigger: 2, memtableBytes: 16 * 1024 })
    const pending: Promise<void>[] = []
    for (let i = 0; i < 5000; i++) pending.push(db.put(key(i), 'v'.repeat(200)))
    await Promise.all(pending)
    const { stalls, stallMs, slowdowns, slowdownMs, waits } = db.stats().writes
    const total = (causes: Array<keyof typeof waits>, field: 'count' | 'ms'): number => causes.reduce((n, c) => n + waits[c][field], 0)
    const stallCauses = ['flushSlot', 'freezeLimit', 'l0Stop', 'pendingCompactionStop'] as const
    const slowdownCauses = ['l0Slowdown', 'pendingCompactionSlowdown', 'flushSlowdown'] as const
    expect(stalls + slowdowns).toBeGreaterThan(0)
    expect(total([...stallCauses], 'count')).toBe(stalls)
    expect(total([...slowdownCauses], 'count')).toBe(slowdowns)
    expect(total([...stallCauses], 'ms')).toBeCloseTo(stallMs, 3)
    expect(total([...slowdownCauses], 'ms')).toBeCloseTo(slowdownMs, 3)
    // A single node never waits on a freeze limit, and the debt here is L0 files, never pending bytes (4 GiB soft threshold).
    expect(waits.freezeLimit.count).toBe(0)
    expect(waits.pendingCompactionStop.count + waits.pendingCompactionSlowdown.count).toBe(0)
    expect(waits.l0Stop.count + waits.l0Slowdown.count + waits.flushSlot.count).toBeGreaterThan(0)
    for (const w of Object.values(waits)) {
      expect(w.maxMs).toBeLessThanOrEqual(w.ms + 1e-9)
      expect(w.over50Ms).toBeLessThanOrEqual(w.count)
    }
  })
})
