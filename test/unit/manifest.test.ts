import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { decodeEdit, encodeEdit, emptyEdit, type TableVersionEdit } from '../../src/manifest/table-version-edit.js'
import { TableVersion } from '../../src/manifest/table-version.js'
import { TableVersionSet } from '../../src/manifest/table-version-set.js'
import type { TableMeta } from '../../src/manifest/table-meta.js'
import { ready, tempDir } from './helpers.js'
import { nodeFileSystem } from '../../src/vfs/node-file-system.js'

let cleanup = (): void => {}
afterEach(() => cleanup())

const table = (number: number, lo: string, hi: string, seq: number): TableMeta => ({
  number,
  fileBytes: 1000 + number,
  smallestKey: Buffer.from(lo),
  smallestSeq: seq,
  largestKey: Buffer.from(hi),
  largestSeq: seq + 10,
  entryCount: 5,
  deleteCount: 1,
})

describe('table version edits', () => {
  beforeAll(ready)

  it('round-trip every field', () => {
    const edit: TableVersionEdit = {
      logNumber: 12,
      nextFileNumber: 40,
      lastSequence: 2 ** 40 + 3,
      deleted: [{ level: 0, number: 3 }, { level: 2, number: 9 }],
      added: [{ level: 1, table: table(14, 'a', 'm', 100) }, { level: 0, table: table(15, '\u0000', '\u00ff', 7) }],
    }
    expect(decodeEdit(encodeEdit(edit), 'test')).toEqual(edit)
    expect(decodeEdit(encodeEdit(emptyEdit()), 'test')).toEqual(emptyEdit())
  })

  it('rejects unknown tags and levels', () => {
    expect(() => decodeEdit(Buffer.from([99, 1]), 'test')).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
    expect(() => decodeEdit(Buffer.from([4, 9, 1]), 'test')).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
  })
})

describe('table version', () => {
  it('applies edits without changing the original, keeping L0 newest first', () => {
    const v0 = TableVersion.empty()
    const v1 = v0.apply({ deleted: [], added: [{ level: 0, table: table(1, 'a', 'z', 1) }, { level: 0, table: table(2, 'a', 'z', 50) }] })
    expect(v0.levels[0]).toEqual([])
    expect(v1.levels[0].map((t) => t.number)).toEqual([2, 1])
    const v2 = v1.apply({ deleted: [{ level: 0, number: 1 }], added: [{ level: 1, table: table(5, 'n', 'p', 0) }, { level: 1, table: table(4, 'a', 'c', 0) }] })
    expect(v2.levels[1].map((t) => t.number)).toEqual([4, 5])
    expect([...v2.tableNumbers()].sort()).toEqual([2, 4, 5])
  })

  it('refuses overlapping tables in L1+ and deleting a missing table', () => {
    const v = TableVersion.empty().apply({ deleted: [], added: [{ level: 1, table: table(4, 'a', 'f', 0) }] })
    expect(() => v.apply({ deleted: [], added: [{ level: 1, table: table(5, 'e', 'g', 0) }] })).toThrow(/overlap/)
    expect(() => v.apply({ deleted: [{ level: 2, number: 4 }], added: [] })).toThrow(/missing/)
  })
})

describe('table version set', () => {
  beforeAll(ready)

  it('recovers what was logged, ignoring a torn last record', async () => {
    const t = tempDir()
    cleanup = t.cleanup
    const vs = new TableVersionSet(nodeFileSystem, t.dir, { tableVersion: TableVersion.empty(), logNumber: 0, nextFileNumber: 1, lastSequence: 0 }, 16 << 20)
    vs.writeSnapshotManifest()
    await vs.logAndApply({ logNumber: 3, deleted: [], added: [{ level: 0, table: table(vs.newFileNumber(), 'a', 'b', 1) }] }, 20)
    await vs.logAndApply({ deleted: [], added: [{ level: 0, table: table(vs.newFileNumber(), 'c', 'd', 30) }] }, 40)
    vs.close()
    const manifest = path.join(t.dir, fs.readFileSync(path.join(t.dir, 'CURRENT'), 'utf8').trim())
    const good = TableVersionSet.recover(nodeFileSystem, t.dir)!
    expect(good.logNumber).toBe(3)
    expect(good.lastSequence).toBe(40)
    expect(good.tableVersion.levels[0].map((x) => x.number)).toEqual([3, 2])
    expect(good.nextFileNumber).toBe(4)
    // Tear the last record: recovery falls back to the state before it.
    const bytes = fs.readFileSync(manifest)
    fs.writeFileSync(manifest, bytes.subarray(0, bytes.length - 3))
    const torn = TableVersionSet.recover(nodeFileSystem, t.dir)!
    expect(torn.tableVersion.levels[0].map((x) => x.number)).toEqual([2])
    expect(torn.lastSequence).toBe(20)
  })

  it('treats a CURRENT naming a missing manifest as corruption', () => {
    const t = tempDir()
    cleanup = t.cleanup
    fs.writeFileSync(path.join(t.dir, 'CURRENT'), 'MANIFEST-000009\n')
    expect(() => TableVersionSet.recover(nodeFileSystem, t.dir)).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
    expect(TableVersionSet.recover(nodeFileSystem, path.join(t.dir, 'nope'))).toBeUndefined()
  })
})

describe('blob files in the manifest', () => {
  const table = (number: number, blobFiles?: number[]): TableMeta => ({
    number,
    fileBytes: 100,
    smallestKey: Buffer.from('a'),
    smallestSeq: 1,
    largestKey: Buffer.from('z'),
    largestSeq: 9,
    entryCount: 3,
    deleteCount: 0,
    ...(blobFiles === undefined ? {} : { blobFiles }),
  })
  const blob = (number: number, valueCount: number, valueBytes: number) => ({ number, fileBytes: valueBytes + 100, valueCount, valueBytes, garbageCount: 0, garbageBytes: 0 })

  it('encodes and decodes added blob files, garbage and the blob files of each table', () => {
    const edit: TableVersionEdit = {
      deleted: [],
      added: [{ level: 0, table: table(7, [5, 6]) }, { level: 1, table: table(8) }],
      blobsAdded: [blob(5, 3, 3000), blob(6, 2, 5000)],
      blobGarbage: [{ number: 5, count: 1, bytes: 1000 }],
    }
    expect(decodeEdit(encodeEdit(edit), 'test')).toEqual(edit)
  })

  it('drops a blob file once every value in it is garbage; garbage in an unknown file or past its values does not apply', () => {
    let v = TableVersion.empty().apply({ deleted: [], added: [{ level: 0, table: table(7, [5]) }], blobsAdded: [blob(5, 3, 3000)] })
    v = v.apply({ deleted: [], added: [], blobGarbage: [{ number: 5, count: 2, bytes: 2000 }] })
    expect(v.blobs.get(5)).toMatchObject({ garbageCount: 2, garbageBytes: 2000 })
    expect([...v.files()].map((f) => f.name)).toEqual(['000007.sst', '000005.blob'])
    expect(() => v.apply({ deleted: [], added: [], blobGarbage: [{ number: 5, count: 2, bytes: 1000 }] })).toThrow(/more garbage than values/)
    expect(() => v.apply({ deleted: [], added: [], blobGarbage: [{ number: 4, count: 1, bytes: 1 }] })).toThrow(/does not hold/)
    v = v.apply({ deleted: [], added: [], blobGarbage: [{ number: 5, count: 1, bytes: 1000 }] })
    expect(v.blobs.has(5)).toBe(false)
    expect([...v.blobFileNumbers()]).toEqual([])
  })

  it('a tag naming the blob files of a table its edit does not add is corruption', () => {
    const bytes = encodeEdit({ deleted: [], added: [{ level: 0, table: table(7, [5]) }] })
    // Rewrite the table number inside tag 8 (the bytes after the tag 5 record): find "8, 7" and make it "8, 9".
    const at = bytes.lastIndexOf(Buffer.from([8, 7]))
    bytes[at + 1] = 9
    expect(() => decodeEdit(bytes, 'test')).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
  })
})

