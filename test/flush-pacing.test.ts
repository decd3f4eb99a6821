import { describe, expect, it } from 'vitest'
import type { FileSystem } from '../src/index.js'
import { databaseScope } from './database-scope.js'
import { withFileHooks } from './unit/helpers.js'

const { newDir, openDb } = databaseScope('strata-flush-pacing-')

/** The real file system, with every fdatasync of a table file taking `delayMs` longer: flushes slower than the writes. */
function slowTableSyncs(delayMs: number): FileSystem {
  return withFileHooks('.sst', (inner) => ({
    datasync: async () => {
      await new Promise((resolve) => setTimeout(resolve, delayMs))
      await inner.datasync()
    },
  }))
}

const key = (i: number): string => `key${String(i).padStart(7, '0')}`

describe('flush pacing', () => {
  it('slows writes while a flush runs rather than stopping them once the next memtable is full', async () => {
    // Each flush takes >= 60 ms; 64 KiB memtables fill in a few ms at full speed.
    const db = await openDb(newDir(), { memtableBytes: 64 * 1024, autoCompaction: false, fileSystem: slowTableSyncs(60) })
    const value = Buffer.alloc(1000, 'v')
    const total = 2000
    let next = 0
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < total) await db.put(key(next++), value)
      }),
    )
    const s = db.stats().writes
    // ~2 MB through 64 KiB memtables: dozens of flushes, every one slower than the memtable after it fills.
    expect(db.stats().writes.flushes).toBeGreaterThan(10)
    // Writes were paced for the flushes...
    expect(s.waits.flushSlowdown.count).toBeGreaterThan(0)
    // ...in many short waits, where without pacing each flush would have stopped the stream once (a flushSlot wait).
    expect(s.waits.flushSlowdown.count).toBeGreaterThan(s.waits.flushSlot.count)
    expect(s.waits.flushSlot.count).toBeLessThan(s.flushes / 2)
    // Without pacing nearly every flush stopped the writes for its whole length (>= 60 ms; measured: 31 of 31).
    expect(s.waits.flushSlot.over50Ms + s.waits.flushSlowdown.over50Ms).toBeLessThan(s.flushes / 3)
    for (let i = 0; i < total; i += 97) expect(db.getSync(key(i))?.equals(value)).toBe(true)
  })
})
