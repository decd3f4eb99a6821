/**
 * Independent parsers of the on-disk formats for the tests that damage or
 * inspect files (test/corruption.test.ts, test/cli-tools.test.ts): written
 * from docs/format.md, not from src/, so that a test knows what the bytes
 * it flips hold whatever the engine thinks.
 */
import { createRequire } from 'node:module'
import { expect } from 'vitest'

/** lz4js: an LZ4 implementation that is not the engine's (src/sstable/lz4.ts), to read compressed blocks independently. */
const lz4js = createRequire(import.meta.url)('lz4js') as { decompressBlock(src: Uint8Array, dst: Uint8Array, sIndex: number, sLength: number, dIndex: number): number }

/**
 * The contents of a block as stored with compression byte `compression`
 * (docs/format.md, "Block trailer"): itself when 0, else (1, LZ4) varint
 * rawLength then an LZ4 block, decoded here with lz4js.
 */
export function decodedContents(stored: Buffer, compression: number): Buffer {
  expect([0, 1]).toContain(compression)
  if (compression === 0) return stored
  const at = { o: 0 }
  const rawLength = readVarint(stored, at)
  const out = Buffer.alloc(rawLength)
  const n = lz4js.decompressBlock(stored, out, at.o, stored.length - at.o, 0)
  expect(n).toBe(rawLength)
  return out
}

export function readVarint(buf: Buffer, at: { o: number }): number {
  let value = 0
  let scale = 1
  for (;;) {
    const b = buf[at.o++]
    value += (b & 0x7f) * scale
    if (b < 0x80) return value
    scale *= 128
  }
}

export interface BlockEntry {
  key: string
  seq: number
  kind: number
  value: Buffer
}

/**
 * Decodes block contents (data or index): entries whose keys share a prefix
 * with the restart key heading their run, then the restart array, then (flag
 * in the top bit of the last u32) the hash index: 3-byte buckets and their u16 count.
 */
export function decodeBlock(contents: Buffer): BlockEntry[] {
  const tail = contents.readUInt32LE(contents.length - 4)
  const restartCount = tail & 0x7fff_ffff
  const hashBytes = tail >= 0x8000_0000 ? 2 + 3 * contents.readUInt16LE(contents.length - 6) : 0
  const end = contents.length - 4 - hashBytes - 4 * restartCount
  const restarts = new Set<number>()
  for (let r = 0; r < restartCount; r++) restarts.add(contents.readUInt32LE(end + 4 * r))
  const entries: BlockEntry[] = []
  let last = Buffer.alloc(0)
  const at = { o: 0 }
  while (at.o < end) {
    const isRestart = restarts.has(at.o)
    const shared = readVarint(contents, at)
    const unshared = readVarint(contents, at)
    const valueLength = readVarint(contents, at)
    const kind = contents[at.o++]
    const seq = readVarint(contents, at)
    const key = Buffer.concat([last.subarray(0, shared), contents.subarray(at.o, at.o + unshared)])
    at.o += unshared
    entries.push({ key: key.toString('latin1'), seq, kind, value: contents.subarray(at.o, at.o + valueLength) })
    at.o += valueLength
    if (isRestart) last = key // the next keys of its run share with it
  }
  expect(at.o).toBe(end)
  return entries
}

/** A table file's data blocks: where each is stored, its compression byte and its decoded contents. */
export interface DataBlock {
  offset: number
  size: number
  compression: number
  contents: Buffer
}

/**
 * Reads a format-3 table (docs/format.md, "Table file"): the 64-byte footer
 * (index handle at 0 and 8, point index size at 32, entry count at 40), then
 * every data block the index block names.
 */
export function readTable(file: Buffer): { entries: number; pointIndexBytes: number; blocks: DataBlock[] } {
  const footer = file.subarray(file.length - 64)
  expect(footer.readUInt32LE(48)).toBe(3)
  const indexOffset = Number(footer.readBigUInt64LE(0))
  const indexSize = footer.readUInt32LE(8)
  const index = decodeBlock(decodedContents(file.subarray(indexOffset, indexOffset + indexSize), file[indexOffset + indexSize]))
  const blocks = index.map((e) => {
    const at = { o: 0 }
    const offset = readVarint(e.value, at)
    const size = readVarint(e.value, at)
    const compression = file[offset + size]
    return { offset, size, compression, contents: decodedContents(file.subarray(offset, offset + size), compression) }
  })
  return { entries: Number(footer.readBigUInt64LE(40)), pointIndexBytes: footer.readUInt32LE(32), blocks }
}
