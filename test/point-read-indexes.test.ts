/**
 * When tables carry the point-read indexes (option `pointReadIndexes`): a
 * point index and a hash index in every data block. Read from the files with
 * the independent parsers of test/format-parsers.ts (docs/format.md):
 *
 *   1. 'auto' writes them while the database's keys × (filter + index +
 *      point index bytes per key) fit in `tableCacheBytes`, and leaves them
 *      out of every table written after that, flushes and compactions alike;
 *      tables of both layouts answer every read, before and after reopening;
 *   2. 'always' and 'never' do what they say whatever the database's size;
 *   3. any other value is STRATA_INVALID_ARGUMENT.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import type { Database, OpenOptions } from '../src/index.js'
import { readTable } from './format-parsers.js'
import { databaseScope } from './database-scope.js'

const { newDir, openDb } = databaseScope('strata-point-read-indexes-')

/** What one table file holds of the point-read indexes. */
interface TableLayout {
  number: number
  entries: number
  pointIndexBytes: number
  /** Data blocks with a hash index, of all data blocks. */
  hashedBlocks: number
  blocks: number
}

function tableLayout(dir: string, name: string): TableLayout {
  const table = readTable(fs.readFileSync(path.join(dir, name)))
  return {
    number: Number.parseInt(name, 10),
    entries: table.entries,
    pointIndexBytes: table.pointIndexBytes,
    hashedBlocks: table.blocks.filter((b) => b.contents.readUInt32LE(b.contents.length - 4) >= 0x8000_0000).length,
    blocks: table.blocks.length,
  }
}

function layouts(dir: string): TableLayout[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.sst'))
    .map((n) => tableLayout(dir, n))
    .sort((a, b) => a.number - b.number)
}

const key = (i: number): string => `key${String(i * 7919 % 6000).padStart(6, '0')}`
const value = (i: number): string => `value-${i}-`.padEnd(60, 'v')

/** Small memtables, no background compaction: every flush leaves an L0 table behind. */
const small: OpenOptions = { memtableBytes: 32 * 1024, autoCompaction: false, compression: 'none', blockBytes: 1024 }

async function writeKeys(db: Database, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i += 50) {
    const ops = []
    for (let j = i; j < Math.min(i + 50, to); j++) ops.push({ type: 'put' as const, key: key(j), value: value(j) })
    await db.batch(ops)
  }
}

async function expectAll(db: Database, count: number): Promise<void> {
  for (let i = 0; i < count; i++) expect(db.getSync(key(i))?.toString(), key(i)).toBe(value(i))
  expect(await db.get('key-absent')).toBeUndefined()
  let n = 0
  for await (const _ of db.iterator({ reverse: true })) n++
  expect(n).toBe(count)
}

describe('pointReadIndexes', () => {
  it("'auto' writes the point-read indexes while the keys' table metadata fits in tableCacheBytes, and leaves them out after", async () => {
    const dir = newDir()
    // 10 bits per key: 1.25 + 2 (index) + 5 (point index) = 8.25 bytes per key; the budget holds 1,000 keys.
    const options = { ...small, tableCacheBytes: 8250 }
    let db = await openDb(dir, options)
    await writeKeys(db, 0, 6000)
    await db.close()
    const written = layouts(dir)
    expect(written.length).toBeGreaterThan(5)
    let keysBefore = 0
    for (const t of written) {
      const fits = keysBefore * 8.25 <= options.tableCacheBytes
      expect(t.pointIndexBytes > 0, `table ${t.number} after ${keysBefore} keys`).toBe(fits)
      expect(t.hashedBlocks, `table ${t.number}`).toBe(fits ? t.blocks : 0)
      keysBefore += t.entries
    }
    expect(written.some((t) => t.pointIndexBytes > 0)).toBe(true)
    expect(written.some((t) => t.pointIndexBytes === 0)).toBe(true)

    // Reads with a cache that holds every table (a tiny one reopens a table per read).
    db = await openDb(dir, { ...options, tableCacheBytes: 64 << 20 })
    await expectAll(db, 6000)
    await db.close()
    // A compaction of the 6,000 keys writes them all without.
    db = await openDb(dir, options)
    await db.compactRange()
    for (const t of layouts(dir)) expect([t.pointIndexBytes, t.hashedBlocks]).toEqual([0, 0])
    await expectAll(db, 6000)
  })

  it("'always' and 'never' hold whatever the database's size", async () => {
    for (const pointReadIndexes of ['always', 'never'] as const) {
      const dir = newDir()
      const db = await openDb(dir, { ...small, tableCacheBytes: 0, pointReadIndexes })
      await writeKeys(db, 0, 3000)
      await db.compactRange()
      await writeKeys(db, 3000, 6000)
      await db.close()
      const written = layouts(dir)
      expect(written.length).toBeGreaterThan(3)
      for (const t of written) {
        expect(t.pointIndexBytes > 0, `${pointReadIndexes}: table ${t.number}`).toBe(pointReadIndexes === 'always')
        expect(t.hashedBlocks, `${pointReadIndexes}: table ${t.number}`).toBe(pointReadIndexes === 'always' ? t.blocks : 0)
      }
      await expectAll(await openDb(dir), 6000)
    }
  })

  it('any other value is STRATA_INVALID_ARGUMENT', async () => {
    const dir = newDir()
    for (const bad of ['yes', true, 1, null]) {
      await expect(openDb(dir, { pointReadIndexes: bad as never })).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
    }
    expect(fs.readdirSync(dir)).toEqual([])
  })
})
