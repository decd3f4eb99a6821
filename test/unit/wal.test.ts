import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { readWal } from '../../src/wal/wal-reader.js'
import { WalWriter } from '../../src/wal/wal-writer.js'
import type { WriteOp } from '../../src/base/entry.js'
import { encodedOpBytes } from '../../src/wal/wal-record.js'
import { encodeWalRecord } from '../../src/wal/record-builder.js'
import { frameRecord, framedPayloadsInMemory, scanRecords } from '../../src/wal/record-framing.js'
import { ready, tempDir } from './helpers.js'
import { nodeFileSystem } from '../../src/vfs/node-file-system.js'

let cleanup = (): void => {}
afterEach(() => cleanup())

function record(firstSeq: number, ops: WriteOp[]): Buffer {
  return encodeWalRecord(firstSeq, ops, ops.reduce((n, o) => n + encodedOpBytes(o), 0))
}

function writeLog(records: Buffer[]): string {
  const t = tempDir()
  cleanup = t.cleanup
  const file = path.join(t.dir, '000001.log')
  const w = WalWriter.create(nodeFileSystem, file, 1)
  for (const r of records) w.append(r)
  w.close()
  return file
}

/** Where the second record of `[x, 70,000 bytes, empty]` starts: after the first's 12-byte header and 1-byte payload. */
const RECORD_OFFSET_OF_SECOND = 13

const ops = (i: number): WriteOp[] => [
  { key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`.repeat(i + 1)) },
  { key: Buffer.from(`d${i}`), value: null },
]

describe('WAL', () => {
  beforeAll(ready)

  it('round-trips records with puts, deletes and sequences', () => {
    const file = writeLog([record(1, ops(0)), record(3, ops(1)), record(5, [])])
    const { batches, tornTail } = readWal(nodeFileSystem, file)
    expect(tornTail).toBe(false)
    expect(batches.map((b) => b.firstSequence)).toEqual([1, 3, 5])
    expect(batches[1].ops[0].value?.toString()).toBe('v1v1')
    expect(batches[1].ops[1].value).toBeNull()
    expect(batches[2].ops).toEqual([])
  })

  it('stops cleanly at every possible truncation point', () => {
    const records = [record(1, ops(0)), record(3, ops(1)), record(5, ops(2))]
    const full = Buffer.concat(records)
    const file = writeLog(records)
    for (let cut = 0; cut <= full.length; cut++) {
      fs.writeFileSync(file, full.subarray(0, cut))
      const { batches } = readWal(nodeFileSystem, file)
      let whole = 0
      let end = 0
      for (const r of records) {
        end += r.length
        if (end <= cut) whole++
      }
      expect(batches.length).toBe(whole)
    }
  })

  it('ignores appended garbage and zeros', () => {
    const records = [record(1, ops(0)), record(3, ops(1))]
    const file = writeLog(records)
    fs.appendFileSync(file, Buffer.alloc(5000))
    expect(readWal(nodeFileSystem, file).batches.length).toBe(2)
    fs.appendFileSync(file, Buffer.from('garbage that is not a record at all'))
    const r = readWal(nodeFileSystem, file)
    expect(r.batches.length).toBe(2)
    expect(r.tornTail).toBe(true)
  })

  it('reports a damaged record followed by intact ones as corruption', () => {
    const records = [record(1, ops(0)), record(3, ops(1)), record(5, ops(2))]
    const file = writeLog(records)
    const bytes = fs.readFileSync(file)
    bytes[records[0].length + 14] ^= 0xff // inside the second record's payload
    fs.writeFileSync(file, bytes)
    expect(() => readWal(nodeFileSystem, file)).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
  })

  it('frames and scans arbitrary payloads', () => {
    const payloads = [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(70_000, 7)]
    const scan = scanRecords(Buffer.concat(payloads.map(frameRecord)), 'mem')
    expect(scan.payloads).toEqual(payloads)
  })

  it('walks records framed in memory by their headers, and throws where they do not tile', () => {
    const payloads = [Buffer.from('x'), Buffer.alloc(70_000, 7), Buffer.alloc(0)]
    const buf = Buffer.concat(payloads.map(frameRecord))
    expect(framedPayloadsInMemory(buf, 'mem')).toEqual(payloads)
    expect(framedPayloadsInMemory(Buffer.alloc(0), 'mem')).toEqual([])
    // A header that does not check (memory reused under a flush): thrown, not dropped as a torn tail would be.
    const damagedHeader = Buffer.from(buf)
    damagedHeader[RECORD_OFFSET_OF_SECOND] ^= 1
    expect(() => framedPayloadsInMemory(damagedHeader, 'mem')).toThrow(/in-memory record header/)
    // Trailing bytes that are not a record, and a record cut short.
    expect(() => framedPayloadsInMemory(Buffer.concat([buf, Buffer.alloc(20)]), 'mem')).toThrow(/in-memory record header/)
    expect(() => framedPayloadsInMemory(buf.subarray(0, buf.length - frameRecord(payloads[2]).length - 1), 'mem')).toThrow(/runs past/)
  })
})
