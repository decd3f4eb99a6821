import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { writeTable } from '../../src/compaction/table-writer.js'
import { TableBuilder } from '../../src/sstable/table-builder.js'
import { KIND_PUT } from '../../src/base/entry.js'
import { BlockCache } from '../../src/sstable/block-cache.js'
import { TableReader } from '../../src/sstable/table-reader.js'
import { TableCache } from '../../src/sstable/table-cache.js'
import { TableScanner } from '../../src/sstable/table-scanner.js'
import { Memtable } from '../../src/memtable/memtable.js'
import { tableFileName } from '../../src/base/file-names.js'
import { filterHash } from '../../src/sstable/filter-block.js'
import { l0Filters, l0MayHold } from '../../src/engine/l0-filters.js'
import type { TableMeta } from '../../src/manifest/table-meta.js'
import { rng, ready, tempDir } from './helpers.js'
import { nodeFileSystem } from '../../src/vfs/node-file-system.js'

const options = { blockBytes: 512, blockRestartInterval: 4, bloomBitsPerKey: 10 }
const key = (i: number): Buffer => Buffer.from(`key${String(i).padStart(6, '0')}`)

let cleanup = (): void => {}
afterEach(() => cleanup())

/** Writes keys 0, 2, 4, ... (even only) with two versions each via a memtable. */
async function makeTable(count: number): Promise<{ dir: string; reader: TableReader; cache: BlockCache }> {
  const t = tempDir()
  cleanup = t.cleanup
  const mem = new Memtable([1])
  let seq = 1
  for (let i = 0; i < count; i += 2) mem.add(key(i), seq++, Buffer.from(`old${i}`))
  for (let i = 0; i < count; i += 2) mem.add(key(i), seq++, i % 10 === 0 ? null : Buffer.from(`new${i}`))
  const it = mem.iterator()
  it.seekToFirst()
  // A snapshot at the last "old" write keeps both versions of every key.
  const meta = await writeTable(nodeFileSystem, t.dir, 7, it, options, [count / 2])
  expect(meta.table?.entryCount).toBe(count)
  const cache = new BlockCache(1 << 20)
  return { dir: t.dir, reader: TableReader.open(nodeFileSystem, t.dir, 7, cache), cache }
}

describe('table', () => {
  beforeAll(ready)

  it('point lookups respect sequence numbers, deletes and absent keys', async () => {
    const n = 2000
    const { reader } = await makeTable(n)
    expect(reader.index.count).toBeGreaterThan(10)
    for (let i = 0; i < n; i += 2) {
      const newest = reader.get(key(i), Number.MAX_SAFE_INTEGER)
      if (i % 10 === 0) expect(newest?.v).toBeNull()
      else expect(newest?.v?.toString()).toBe(`new${i}`)
      expect(reader.get(key(i), n / 2)?.v?.toString()).toBe(`old${i}`)
      expect(reader.get(key(i + 1), Number.MAX_SAFE_INTEGER)).toBeUndefined()
      expect(reader.get(key(i), 0)).toBeUndefined()
    }
    reader.unref()
  })

  it('point reads through the point index and through the Bloom filter agree with a model, also for versions split across blocks', async () => {
    const t = tempDir()
    cleanup = t.cleanup
    const random = rng(0x5eed_7ab1)
    // key -> versions, newest first: [sequence, value or null for a delete]
    const model = new Map<string, Array<[number, string | null]>>()
    const mem = new Memtable([1])
    let seq = 1
    for (let i = 0; i < 600; i++) {
      const k = `k${Math.floor(random() * 1e9).toString(36)}`
      const versions = model.get(k) ?? []
      model.set(k, versions)
      // Some keys get many versions with values near the block size, so their versions span blocks.
      const count = random() < 0.1 ? 6 : 1 + Math.floor(random() * 2)
      for (let v = 0; v < count; v++) {
        const value = random() < 0.15 ? null : `${k}-${seq}-`.padEnd(random() < 0.3 ? 300 : 20, 'x')
        versions.unshift([seq, value])
        mem.add(Buffer.from(k), seq++, value === null ? null : Buffer.from(value))
      }
    }
    // A snapshot at every sequence keeps every version.
    const all = Array.from({ length: seq - 1 }, (_, i) => i + 1)
    for (const [number, pointReadIndexes] of [[7, true], [8, false]] as const) {
      const it = mem.iterator()
      it.seekToFirst()
      await writeTable(nodeFileSystem, t.dir, number, it, { ...options, pointReadIndexes }, all)
    }
    const withIndex = TableReader.open(nodeFileSystem, t.dir, 7, new BlockCache(1 << 20))
    const withFilter = TableReader.open(nodeFileSystem, t.dir, 7, new BlockCache(1 << 20), 0)
    // Table 8: the same entries, written without the point index and the blocks' hash indexes.
    const compact = TableReader.open(nodeFileSystem, t.dir, 8, new BlockCache(1 << 20))
    expect(withIndex.usesPointIndex).toBe(true)
    expect(withFilter.usesPointIndex).toBe(false)
    expect(compact.usesPointIndex).toBe(false)
    const file = (n: number): Buffer => fs.readFileSync(path.join(t.dir, tableFileName(n)))
    const hashFlagged = (n: number, index: typeof withIndex.index): number => {
      let flagged = 0
      for (let b = 0; b < index.count; b++) flagged += file(n).readUInt32LE(index.blockOffset(b) + index.blockSize(b) - 4) >>> 31
      return flagged
    }
    expect(hashFlagged(7, withIndex.index)).toBe(withIndex.index.count)
    expect(hashFlagged(8, compact.index)).toBe(0)
    expect(file(8).length).toBeLessThan(file(7).length)
    let split = 0
    for (const [k, versions] of model) {
      const kb = Buffer.from(k)
      if (withIndex.index.findInternal(kb, versions[0][0]) !== withIndex.index.findInternal(kb, versions[versions.length - 1][0])) split++
      const sequences = [Number.MAX_SAFE_INTEGER, 0, ...versions.flatMap(([s]) => [s, s - 1])]
      for (const at of sequences) {
        const want = versions.find(([s]) => s <= at)
        for (const reader of [withIndex, withFilter, compact]) {
          const got = reader.get(kb, at)
          if (want === undefined) expect(got, `${k}@${at}`).toBeUndefined()
          else expect([got?.s, got?.v === null ? null : got?.v?.toString()], `${k}@${at}`).toEqual(want)
        }
      }
      expect(withIndex.get(Buffer.from(`${k}~`), Number.MAX_SAFE_INTEGER)).toBeUndefined()
      expect(withFilter.get(Buffer.from(`${k}~`), Number.MAX_SAFE_INTEGER)).toBeUndefined()
      expect(compact.get(Buffer.from(`${k}~`), Number.MAX_SAFE_INTEGER)).toBeUndefined()
    }
    expect(split).toBeGreaterThan(5)
    withIndex.unref()
    withFilter.unref()
    compact.unref()
  })

  it('the table cache lets a table load its point index only while its byte budget has room, and drops point indexes before readers', async () => {
    const { dir, cache, reader } = await makeTable(2000)
    reader.unref()
    fs.copyFileSync(path.join(dir, tableFileName(7)), path.join(dir, tableFileName(8)))
    const probe = [TableReader.open(nodeFileSystem, dir, 7, cache), TableReader.open(nodeFileSystem, dir, 7, cache, 0)]
    const [withIndex, withFilter] = probe.map((r) => r.residentBytes)
    for (const r of probe) r.unref()
    expect(withIndex).toBeGreaterThan(withFilter)
    // Room for one table with its point index and one with its filter.
    const tables = new TableCache(nodeFileSystem, dir, cache, 10, withIndex + withFilter)
    expect(tables.get(7).usesPointIndex).toBe(true)
    expect(tables.get(8).usesPointIndex).toBe(false)
    expect([tables.openCount, tables.pointIndexedCount, tables.residentBytes]).toEqual([2, 1, withIndex + withFilter])
    expect(tables.get(8).get(key(4), Number.MAX_SAFE_INTEGER)?.v?.toString()).toBe('new4')
    expect(tables.get(7).get(key(4), Number.MAX_SAFE_INTEGER)?.v?.toString()).toBe('new4')
    tables.evict(7)
    expect([tables.openCount, tables.pointIndexedCount, tables.residentBytes]).toEqual([1, 0, withFilter])
    tables.close()

    // One byte less: opening the second table drops the first one's point index, not the reader.
    const tight = new TableCache(nodeFileSystem, dir, cache, 10, withIndex + withFilter - 1)
    expect(tight.get(7).usesPointIndex).toBe(true)
    expect(tight.get(8).usesPointIndex).toBe(false)
    expect([tight.openCount, tight.pointIndexedCount, tight.residentBytes]).toEqual([2, 0, 2 * withFilter])
    expect(tight.get(7).get(key(4), Number.MAX_SAFE_INTEGER)?.v?.toString()).toBe('new4')
    expect(tight.get(7).get(key(5), Number.MAX_SAFE_INTEGER)).toBeUndefined()
    tight.close()
  })

  it('the L0 filter pass rules out only what a filter rules out, and forgets filters once the table cache closes a reader', async () => {
    const { dir, cache, reader } = await makeTable(2000)
    reader.unref()
    const tables = new TableCache(nodeFileSystem, dir, cache, 10, 1 << 30)
    // Only the level's identity and length matter to the pass.
    const l0 = [{ number: 7 }, { number: 7 }] as unknown as TableMeta[]
    const passOf = (k: Buffer): number[] => [...l0MayHold(l0Filters(l0, tables), filterHash(k)).subarray(0, 2)]
    // No filter known yet: every table may hold every key.
    expect(passOf(key(3))).toEqual([1, 1])
    l0Filters(l0, tables).filters[1] = tables.get(7).filter
    let ruledOut = 0
    for (let i = 0; i < 2000; i++) {
      const [first, second] = passOf(key(i))
      expect(first).toBe(1)
      if (i % 2 === 0) expect(second, `key ${i} is in the table`).toBe(1)
      else ruledOut += 1 - second
    }
    expect(ruledOut).toBeGreaterThan(950)
    // The cache closes the reader: its filter is forgotten, not kept alive.
    tables.evict(7)
    expect(l0Filters(l0, tables).filters).toEqual([undefined, undefined])
    expect(passOf(key(3))).toEqual([1, 1])
    tables.close()
  })

  it('iterates forward, backward and from random seeks', async () => {
    const n = 1000
    const { reader } = await makeTable(n)
    const it = reader.iterator()
    const fwd: string[] = []
    for (it.seekToFirst(); it.valid(); it.next()) fwd.push(`${it.key()}@${it.sequence()}`)
    expect(fwd.length).toBe(n)
    const back: string[] = []
    for (it.seekToLast(); it.valid(); it.prev()) back.push(`${it.key()}@${it.sequence()}`)
    expect(back).toEqual([...fwd].reverse())
    const random = rng(42)
    for (let r = 0; r < 200; r++) {
      const i = Math.floor(random() * (n + 4)) - 2
      const target = key(i)
      it.seekGE(target)
      const ge = fwd.find((e) => e.split('@')[0] >= target.toString())
      expect(it.valid() ? `${it.key()}@${it.sequence()}` : undefined).toBe(ge)
      it.seekLT(target)
      const lt = [...fwd].reverse().find((e) => e.split('@')[0] < target.toString())
      expect(it.valid() ? `${it.key()}@${it.sequence()}` : undefined).toBe(lt)
    }
    it.close()
    reader.unref()
    expect(reader.isClosed).toBe(true)
  })

  it('drops versions no snapshot can see', async () => {
    const t = tempDir()
    cleanup = t.cleanup
    const mem = new Memtable([1])
    for (let s = 1; s <= 10; s++) mem.add(Buffer.from('k'), s, Buffer.from(`v${s}`))
    const it = mem.iterator()
    it.seekToFirst()
    const meta = await writeTable(nodeFileSystem, t.dir, 3, it, options, [4, 7])
    // Kept: 10 (present), 7 (snapshot 7), 4 (snapshot 4).
    expect(meta.table?.entryCount).toBe(3)
  })

  it('detects a flipped byte in a data block on read', async () => {
    const { dir, reader, cache } = await makeTable(200)
    reader.unref()
    const file = path.join(dir, tableFileName(7))
    const bytes = fs.readFileSync(file)
    bytes[10] ^= 0x40
    fs.writeFileSync(file, bytes)
    const bad = TableReader.open(nodeFileSystem, dir, 7, cache)
    expect(() => bad.get(key(0), Number.MAX_SAFE_INTEGER)).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
    bad.unref()
  })

  it('a forward scan (compaction input) yields exactly what the reader iterates, and detects damage', async () => {
    const { dir, reader } = await makeTable(1000)
    const it = reader.iterator()
    const want: string[] = []
    for (it.seekToFirst(); it.valid(); it.next()) want.push(`${it.key()}@${it.sequence()}:${it.kind()}:${it.value()}`)
    it.close()
    reader.unref()
    const scan = TableScanner.open(nodeFileSystem, dir, 7)
    const got: string[] = []
    for (scan.seekToFirst(); scan.valid(); scan.next()) got.push(`${scan.key()}@${scan.sequence()}:${scan.kind()}:${scan.value()}`)
    scan.close()
    expect(got).toEqual(want)
    const file = path.join(dir, tableFileName(7))
    const bytes = fs.readFileSync(file)
    bytes[Math.floor(bytes.length / 3)] ^= 0x40 // a data block in the middle
    fs.writeFileSync(file, bytes)
    const bad = TableScanner.open(nodeFileSystem, dir, 7)
    expect(() => {
      for (bad.seekToFirst(); bad.valid(); bad.next()) {
        /* read everything */
      }
    }).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
    bad.close()
  })

  it('rejects a table with a damaged footer at open', async () => {
    const { dir, reader, cache } = await makeTable(200)
    reader.unref()
    const file = path.join(dir, tableFileName(7))
    const bytes = fs.readFileSync(file)
    bytes[bytes.length - 20] ^= 1
    fs.writeFileSync(file, bytes)
    expect(() => TableReader.open(nodeFileSystem, dir, 7, cache)).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
  })

  it('lays blocks into one reused buffer: output taken in pieces equals the table built whole, blocks larger than the buffer go apart, misuse throws', () => {
    const t = tempDir()
    cleanup = t.cleanup
    const random = rng(11)
    const value = (i: number): Buffer => {
      // Mostly small values; a few of 2 MiB, larger than the builder's buffer, in the middle.
      const b = Buffer.alloc(i % 997 === 500 ? 2 << 20 : 20 + (i % 300))
      for (let j = 0; j < b.length; j += 64) b[j] = Math.floor(random() * 256)
      return b
    }
    const entries = Array.from({ length: 4000 }, (_, i) => [key(i), value(i)] as const)
    const build = (every: number): Buffer => {
      const b = new TableBuilder({ ...options, blockBytes: 4096, compression: 'lz4' })
      const parts: Buffer[] = []
      const take = (): void => {
        // Copied before outputWritten: the builder lays its next blocks over the bytes it handed out.
        parts.push(Buffer.concat(b.takeOutput()))
        b.outputWritten()
      }
      entries.forEach(([k, v], i) => {
        b.add(k, 1, KIND_PUT, v)
        if (every > 0 && i % every === every - 1) take()
      })
      b.finish()
      take()
      b.release()
      return Buffer.concat(parts)
    }
    const whole = build(0)
    // Buffer.equals: a deep equality over ~9 MB runs for minutes.
    expect(build(1).equals(whole)).toBe(true)
    expect(build(333).equals(whole)).toBe(true)
    fs.writeFileSync(path.join(t.dir, tableFileName(7)), build(50))
    const reader = TableReader.open(nodeFileSystem, t.dir, 7, new BlockCache(1 << 20))
    for (const [k, v] of entries) expect(reader.get(k, 1)?.v?.equals(v)).toBe(true)
    reader.unref()

    const b = new TableBuilder(options)
    for (let i = 0; i < 100; i++) b.add(key(i), 1, KIND_PUT, Buffer.alloc(100))
    expect(b.takeOutput().length).toBeGreaterThan(0)
    expect(() => b.takeOutput()).toThrow(/taken again before it was written/)
    expect(() => {
      for (let i = 100; i < 200; i++) b.add(key(i), 1, KIND_PUT, Buffer.alloc(100))
    }).toThrow(/laid over bytes not yet written/)
  })
})
