import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { BlobFileWriter } from '../../src/blob/blob-file-writer.js'
import { BlobFileCache } from '../../src/blob/blob-file-cache.js'
import { scanBlobFile } from '../../src/blob/blob-format.js'
import { decodeBlobReference } from '../../src/blob/blob-reference.js'
import { blobFileName } from '../../src/base/file-names.js'
import { nodeFileSystem } from '../../src/vfs/node-file-system.js'
import { ready, tempDir } from './helpers.js'

let cleanup = (): void => {}
afterEach(() => cleanup())

/** A blob file of `count` values of `bytes` bytes each (value i filled with i), and their references in write order. */
async function writeBlobFile(dir: string, count: number, bytes: number): Promise<{ references: Buffer[]; values: Buffer[] }> {
  const w = new BlobFileWriter(nodeFileSystem, dir, 5)
  const references: Buffer[] = []
  const values: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const value = Buffer.alloc(bytes, i & 0xff)
    value.writeUInt32LE(i, 0)
    values.push(value)
    const { reference, due } = w.add(Buffer.from(`key${String(i).padStart(5, '0')}`), value)
    if (due !== undefined) await due
    references.push(reference)
  }
  const meta = await w.finish()
  expect(meta).toMatchObject({ number: 5, valueCount: count, valueBytes: count * bytes })
  expect(fs.statSync(path.join(dir, blobFileName(5))).size).toBe(meta.fileBytes)
  return { references, values }
}

describe('blob files', () => {
  beforeAll(ready)

  it('point reads and scans in both directions (with read-ahead windows) return every value exactly', async () => {
    const t = tempDir()
    cleanup = t.cleanup
    const { references, values } = await writeBlobFile(t.dir, 300, 3000)
    const cache = new BlobFileCache(nodeFileSystem, t.dir)
    references.forEach((r, i) => expect(cache.read(r, 'test').equals(values[i])).toBe(true))
    // A window of 16 KiB holds a few values: the scans cross many windows.
    const forward = cache.scanReader(false, 16 << 10)
    references.forEach((r, i) => expect(forward(r, 'test').equals(values[i]), `forward ${i}`).toBe(true))
    const backward = cache.scanReader(true, 16 << 10)
    for (let i = references.length - 1; i >= 0; i--) expect(backward(references[i], 'test').equals(values[i]), `reverse ${i}`).toBe(true)
    // Out of order (a scan jumping between files or keys): still exact.
    const jumping = cache.scanReader(false, 16 << 10)
    for (const i of [3, 4, 200, 5, 201, 202, 0]) expect(jumping(references[i], 'test').equals(values[i]), `jump ${i}`).toBe(true)
    expect(cache.reads).toBe(300 * 3 + 7)
    // The file's own walk agrees.
    const seen: number[] = []
    const totals = scanBlobFile(fs.readFileSync(path.join(t.dir, blobFileName(5))), 'test', (rec) => seen.push(rec.value.readUInt32LE(0)))
    expect(totals).toEqual({ recordCount: 300, valueBytes: 300 * 3000 })
    expect(seen).toEqual(values.map((_, i) => i))
    cache.close()
  })

  it('a flipped value byte fails that value with STRATA_CORRUPTION through every reader, its neighbours in the same window read', async () => {
    const t = tempDir()
    cleanup = t.cleanup
    const { references, values } = await writeBlobFile(t.dir, 40, 1000)
    const file = path.join(t.dir, blobFileName(5))
    const damaged = decodeBlobReference(references[20], 'test')
    const bytes = fs.readFileSync(file)
    bytes[damaged.valueOffset + 500] ^= 0x01
    fs.writeFileSync(file, bytes)
    const cache = new BlobFileCache(nodeFileSystem, t.dir)
    expect(() => cache.read(references[20], 'test')).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
    for (const reverse of [false, true]) {
      const scan = cache.scanReader(reverse, 8 << 10)
      const order = reverse ? [...references.keys()].reverse() : [...references.keys()]
      for (const i of order) {
        if (i === 20) expect(() => scan(references[i], 'test')).toThrow(/checksum mismatch/)
        else expect(scan(references[i], 'test').equals(values[i])).toBe(true)
      }
    }
    cache.close()
  })

  it('a truncated file fails the values past its end with STRATA_CORRUPTION, in a window too', async () => {
    const t = tempDir()
    cleanup = t.cleanup
    const { references, values } = await writeBlobFile(t.dir, 20, 1000)
    const file = path.join(t.dir, blobFileName(5))
    const cut = decodeBlobReference(references[15], 'test')
    fs.truncateSync(file, cut.valueOffset + 10)
    const cache = new BlobFileCache(nodeFileSystem, t.dir)
    expect(() => cache.read(references[15], 'test')).toThrow(/runs past the end/)
    const scan = cache.scanReader(false, 8 << 10)
    for (let i = 0; i < 15; i++) expect(scan(references[i], 'test').equals(values[i])).toBe(true)
    expect(() => scan(references[15], 'test')).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
    cache.close()
  })
})
