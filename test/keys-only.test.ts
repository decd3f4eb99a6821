/**
 * Keys-only iteration (`iterator({ values: false })`): against a normal
 * iterator over the same state it must yield exactly the same keys, in the
 * same order, with every value empty, whatever the bounds, direction, limit,
 * where the data lives (memtable, frozen memtable, tables after flush and
 * compaction) and at snapshots and in transactions.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { open, type Database, type IteratorOptions, type StrataIterator } from '../src/index.js'
import { rng, tempDir } from './unit/helpers.js'

let cleanup = (): void => {}
let db: Database | undefined
afterEach(async () => {
  await db?.close()
  db = undefined
  cleanup()
})

/** Tiny sizes so that flushes and compactions happen within a few hundred KB. */
const small = {
  memtableBytes: 16 * 1024,
  levelBaseBytes: 64 * 1024,
  levelSizeMultiplier: 4,
  targetTableBytes: 16 * 1024,
  l0CompactionTrigger: 2,
}

async function fresh(): Promise<Database> {
  const t = tempDir('strata-keys-')
  cleanup = t.cleanup
  db = await open(t.dir, small)
  return db
}

const key = (i: number): string => `k${String(i).padStart(4, '0')}`

async function drain(it: AsyncIterable<[Buffer, Buffer]>): Promise<Array<[string, number]>> {
  const out: Array<[string, number]> = []
  for await (const [k, v] of it) out.push([k.toString('latin1'), v.length])
  return out
}

/** Random bounds, direction and limit over the key space [0, n). */
function randomOptions(next: () => number, n: number): IteratorOptions {
  const o: IteratorOptions = {}
  const pick = (): string => key(Math.floor(next() * (n + 2)) - 1)
  const lo = next()
  if (lo < 0.3) o.gte = pick()
  else if (lo < 0.6) o.gt = pick()
  const hi = next()
  if (hi < 0.3) o.lte = pick()
  else if (hi < 0.6) o.lt = pick()
  if (next() < 0.5) o.reverse = true
  if (next() < 0.4) o.limit = Math.floor(next() * 50)
  return o
}

/** Keys-only and normal iterators over `src` with `o` agree: same keys, and every keys-only value empty. */
async function agree(src: { iterator(o?: IteratorOptions): StrataIterator }, o: IteratorOptions): Promise<number> {
  const full = await drain(src.iterator(o))
  const keysOnly = await drain(src.iterator({ ...o, values: false }))
  expect(keysOnly.map(([k]) => k), JSON.stringify(o)).toEqual(full.map(([k]) => k))
  expect(keysOnly.every(([, len]) => len === 0)).toBe(true)
  return full.length
}

describe('keys-only iterator', () => {
  it('yields exactly the keys of a normal iterator (bounds, reverse, limit) through flushes and compactions', async () => {
    const d = await fresh()
    const next = rng(16)
    const n = 400
    let checked = 0
    let nonEmpty = 0
    for (let round = 0; round < 8; round++) {
      const pending: Array<Promise<void>> = []
      for (let i = 0; i < 300; i++) {
        const k = key(Math.floor(next() * n))
        pending.push(next() < 0.25 ? d.delete(k) : d.put(k, Buffer.alloc(1 + Math.floor(next() * 300), round)))
      }
      await Promise.all(pending)
      if (round === 3) await d.compactRange()
      for (let q = 0; q < 25; q++) {
        if ((await agree(d, randomOptions(next, n))) > 0) nonEmpty++
        checked++
      }
      expect(await agree(d, {})).toBeGreaterThan(0)
    }
    expect(checked).toBe(200)
    expect(nonEmpty).toBeGreaterThan(100)
    const s = d.stats()
    expect(s.writes.flushes).toBeGreaterThan(3)
    expect(s.compaction.compactions).toBeGreaterThan(0)
  })

  it('at a snapshot: sees the keys of that point in time', async () => {
    const d = await fresh()
    for (let i = 0; i < 100; i++) await d.put(key(i), 'v'.repeat(100))
    const snap = d.snapshot()
    for (let i = 0; i < 100; i += 2) await d.delete(key(i))
    for (let i = 100; i < 150; i++) await d.put(key(i), 'w')
    await d.compactRange()
    try {
      expect(await agree(snap, {})).toBe(100)
      expect(await agree(snap, { gte: key(10), lt: key(120), reverse: true, limit: 30 })).toBe(30)
      expect(await agree(d, {})).toBe(100)
    } finally {
      snap.release()
    }
  })

  it('seek and nextSync keep to keys only', async () => {
    const d = await fresh()
    for (let i = 0; i < 50; i++) await d.put(key(i), `value${i}`)
    const it = d.iterator({ values: false })
    it.seek(key(40))
    const e = it.nextSync()
    expect(e?.[0].toString()).toBe(key(40))
    expect(e?.[1].length).toBe(0)
    it.close()
  })

  it('in a transaction: own writes merged, values empty', async () => {
    const d = await fresh()
    for (let i = 0; i < 20; i++) await d.put(key(i), 'x')
    await d.transaction(async (tx) => {
      tx.put(key(5), 'mine')
      tx.put(key(25), 'new')
      tx.delete(key(6))
      const full = await drain(tx.iterator())
      const keysOnly = await drain(tx.iterator({ values: false }))
      expect(keysOnly.map(([k]) => k)).toEqual(full.map(([k]) => k))
      expect(keysOnly.every(([, len]) => len === 0)).toBe(true)
      expect(full.length).toBe(20)
    })
  })

  it('rejects a values option that is not a boolean', async () => {
    const d = await fresh()
    expect(() => d.iterator({ values: 0 as unknown as boolean })).toThrow(/values must be a boolean/)
  })
})
