import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { open } from '../src/index.js'

/**
 * Databases written by older stratadb with a 64 KiB memtable, five tables each.
 * Keys key00000..key02999 were put ("value-i-first"), every third put again
 * ("value-i-second"), every seventh deleted.
 * - format-v1, written at git cd8ab89 (table format version 1: no hash index in
 *   data blocks, keys prefix-compressed against the previous key).
 * - format-v2, written at git d44f826 (version 2: 48-byte footer, no point index).
 * - format-v3, written at git 4dd1427 (version 3 before block compression,
 *   expiring keys and range deletes: raw blocks only, no manifest tag 11;
 *   eight tables and a WAL holding the last writes).
 */
const FIXTURES = [
  { version: 1, dir: path.join(import.meta.dirname, 'fixtures', 'format-v1') },
  { version: 2, dir: path.join(import.meta.dirname, 'fixtures', 'format-v2') },
  { version: 3, dir: path.join(import.meta.dirname, 'fixtures', 'format-v3') },
]
const CURRENT_VERSION = 3

function expected(): Map<string, string> {
  const m = new Map<string, string>()
  for (let i = 0; i < 3000; i++) {
    if (i % 7 === 0) continue
    m.set(`key${String(i).padStart(5, '0')}`, `value-${i}-${i % 3 === 0 ? 'second' : 'first'}`)
  }
  return m
}

function tableVersions(dir: string): number[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.sst'))
    .map((f) => {
      const buf = fs.readFileSync(path.join(dir, f))
      // Every footer ends in u32 version | u32 checksum | u64 magic.
      return buf.readUInt32LE(buf.length - 16)
    })
}

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

describe('table format compatibility', () => {
  it.each(FIXTURES)('reads format-version-$version tables (point reads, scans) and rewrites them in the current version on compaction', async ({ version, dir: fixture }) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `strata-v${version}-`))
    dirs.push(dir)
    fs.cpSync(fixture, dir, { recursive: true })
    expect(new Set(tableVersions(dir))).toEqual(new Set([version]))
    const model = expected()

    const check = async (db: Awaited<ReturnType<typeof open>>): Promise<void> => {
      for (let i = 0; i < 3000; i++) {
        const key = `key${String(i).padStart(5, '0')}`
        expect(db.getSync(key)?.toString(), key).toBe(model.get(key))
      }
      const forward: string[] = []
      for await (const [k, v] of db.iterator()) forward.push(`${k.toString()}=${v.toString()}`)
      expect(forward).toEqual([...model].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`))
      const reverse: string[] = []
      for await (const [k] of db.iterator({ reverse: true, gte: 'key01000', lt: 'key02000' })) reverse.push(k.toString())
      expect(reverse).toEqual([...model.keys()].filter((k) => k >= 'key01000' && k < 'key02000').sort().reverse())
    }

    const db = await open(dir)
    await check(db)
    await db.put('key00000', 'value-0-third')
    model.set('key00000', 'value-0-third')
    await db.compactRange()
    expect(new Set(tableVersions(dir))).toEqual(new Set([CURRENT_VERSION]))
    await check(db)
    await db.close()
  })
  it.each(FIXTURES)('moves the inline values of format-version-$version tables into blob files when compaction rewrites them (minBlobBytes below their size)', async ({ version, dir: fixture }) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `strata-v${version}-blob-`))
    dirs.push(dir)
    fs.cpSync(fixture, dir, { recursive: true })
    const model = expected()
    // Every value is 13-14 bytes: all of them qualify.
    const db = await open(dir, { minBlobBytes: 8 })
    expect(db.stats().blobs.files).toBe(0)
    await db.compactRange()
    const blobFiles = fs.readdirSync(dir).filter((f) => f.endsWith('.blob'))
    expect(blobFiles.length).toBeGreaterThan(0)
    const live = [...model.values()].reduce((n, v) => n + v.length, 0)
    const { blobs } = db.stats()
    expect(blobs.valueBytes - blobs.garbageBytes).toBe(live)
    for (let i = 0; i < 3000; i++) {
      const key = `key${String(i).padStart(5, '0')}`
      expect(db.getSync(key)?.toString(), key).toBe(model.get(key))
    }
    await db.close()
    const reopened = await open(dir)
    let n = 0
    for await (const [k, v] of reopened.iterator()) {
      expect(v.toString(), k.toString()).toBe(model.get(k.toString()))
      n++
    }
    expect(n).toBe(model.size)
    expect(reopened.stats().blobs.valuesRead).toBe(model.size)
    await reopened.close()
  })
})
