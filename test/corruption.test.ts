/**
 * Damaged files: the engine must report STRATA_CORRUPTION and never hand out
 * wrong data, while a torn or garbage log tail (what a crash leaves) must be
 * recovered from silently with every intact record.
 *
 * The tests parse the files themselves, independently of the engine, from
 * docs/format.md, and check every checksum they parse: that is how each test
 * knows the byte it flips really lies in the region it names (data block,
 * block trailer, filter, point index, index, footer, WAL header or payload).
 *
 * Pristine databases are built once and copied for each case; the copy is
 * damaged, so one case cannot leak into another.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import xxhash, { type XXHashAPI } from 'xxhash-wasm'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { open, StrataError, type Database, type OpenOptions } from '../src/index.js'
import { decodeBlock, decodedContents, readVarint } from './format-parsers.js'

// ---- temp dirs and file helpers --------------------------------------------

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-corruption-'))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

let counter = 0
function newDir(name: string): string {
  const dir = path.join(root, `${name}-${counter++}`)
  fs.mkdirSync(dir)
  return dir
}

/** A fresh copy of a pristine database directory, to be damaged. */
function copyOf(template: string): string {
  const dir = path.join(root, `copy-${counter++}`)
  fs.cpSync(template, dir, { recursive: true })
  return dir
}

/** XORs one byte of a file. */
function flipByte(file: string, offset: number, mask = 0x01): void {
  const fd = fs.openSync(file, 'r+')
  try {
    const b = Buffer.alloc(1)
    expect(fs.readSync(fd, b, 0, 1, offset)).toBe(1)
    b[0] ^= mask
    fs.writeSync(fd, b, 0, 1, offset)
  } finally {
    fs.closeSync(fd)
  }
}

/** Names and contents of every file: to prove that a failed open changed nothing. */
function dirState(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of fs.readdirSync(dir).sort()) out[name] = fs.readFileSync(path.join(dir, name)).toString('base64')
  return out
}

const filesEnding = (dir: string, ext: string): string[] =>
  fs.readdirSync(dir).filter((n) => n.endsWith(ext)).sort().map((n) => path.join(dir, n))

// Databases opened by a test are closed after it even when it fails, so a LOCK never outlives a test.
const opened: Database[] = []
afterEach(async () => {
  for (const db of opened.splice(0)) await db.close()
})
/**
 * Background compaction would read the damaged table on its own schedule and
 * turn the database read-only; the read-path tests keep it off so that what
 * they observe is the read path alone (compaction meeting damage has its own test).
 */
const READ_PATH_ONLY = { autoCompaction: false }

async function openDb(dir: string, options: OpenOptions = READ_PATH_ONLY): Promise<Database> {
  const db = await open(dir, options)
  opened.push(db)
  return db
}

// ---- error assertions --------------------------------------------------------

function expectCode(err: unknown, code: string): void {
  expect(err).toBeInstanceOf(StrataError)
  expect((err as StrataError).code).toBe(code)
}

async function expectRejectCode(p: Promise<unknown>, code: string): Promise<void> {
  let err: unknown
  try {
    const v = await p
    throw new Error(`expected ${code}, but it resolved with ${v === undefined ? 'undefined' : String(v)}`)
  } catch (e) {
    err = e
  }
  expectCode(err, code)
}

/** open() must reject with `code`; a database it opened anyway is closed so its lock cannot leak into later tests. */
async function expectOpenFails(dir: string, code: string): Promise<void> {
  let err: unknown
  try {
    const db = await open(dir)
    await db.close()
    err = new Error(`expected open to fail with ${code}, but it succeeded`)
  } catch (e) {
    err = e
  }
  expectCode(err, code)
}

function expectThrowCode(fn: () => unknown, code: string): void {
  let err: unknown
  try {
    const v = fn()
    err = new Error(`expected ${code}, but it returned ${v === undefined ? 'undefined' : String(v)}`)
  } catch (e) {
    err = e
  }
  expectCode(err, code)
}

/**
 * Runs a full scan and reports what it yielded and how it ended. A damaged
 * table may surface when the iterator is created or while it is consumed;
 * both count as long as the code is right.
 */
async function scan(db: Database, options = {}): Promise<{ entries: Array<[string, string]>; error: unknown }> {
  const entries: Array<[string, string]> = []
  try {
    for await (const [k, v] of db.iterator(options)) entries.push([k.toString('latin1'), v.toString('latin1')])
    return { entries, error: undefined }
  } catch (error) {
    return { entries, error }
  }
}

// ---- independent parsers of the on-disk formats -------------------------------

let xx: XXHashAPI
beforeAll(async () => {
  xx = await xxhash()
})

/** Contents at [offset, offset+size), then the 5-byte trailer: compression byte and xxh32 of contents+compression. */
interface Region {
  offset: number
  size: number
}

interface ParsedTable {
  file: string
  dataBlocks: Array<Region & { keys: string[] }>
  filter: Region
  pointIndex: Region
  index: Region
  footerOffset: number
  keys: string[]
}

function verifiedContents(buf: Buffer, r: Region): Buffer {
  // Format versions 2 and 3: the low 32 bits of XXH64 (seed 0) of the contents and the compression byte.
  expect(buf.readUInt32LE(r.offset + r.size + 1)).toBe(Number(BigInt.asUintN(32, xx.h64Raw(buf.subarray(r.offset, r.offset + r.size + 1), 0n))))
  return decodedContents(buf.subarray(r.offset, r.offset + r.size), buf[r.offset + r.size])
}

/**
 * Parses a whole table and checks that data blocks, filter, point index, index and footer
 * tile the file exactly with every checksum matching, so region offsets taken
 * from here are exact.
 */
function parseTable(file: string): ParsedTable {
  const buf = fs.readFileSync(file)
  const f = buf.length - 64
  expect(buf.subarray(f + 56, f + 64).toString('latin1')).toBe('STATSLB1')
  expect(buf.readUInt32LE(f + 52)).toBe(xx.h32Raw(buf.subarray(f, f + 52), 0) >>> 0)
  expect(buf.readUInt32LE(f + 48)).toBe(3)
  const index = { offset: Number(buf.readBigUInt64LE(f)), size: buf.readUInt32LE(f + 8) }
  const filter = { offset: Number(buf.readBigUInt64LE(f + 12)), size: buf.readUInt32LE(f + 20) }
  const pointIndex = { offset: Number(buf.readBigUInt64LE(f + 24)), size: buf.readUInt32LE(f + 32) }
  const dataBlocks: ParsedTable['dataBlocks'] = []
  let expectedOffset = 0
  for (const e of decodeBlock(verifiedContents(buf, index))) {
    const at = { o: 0 }
    const offset = readVarint(e.value, at)
    const size = readVarint(e.value, at)
    expect(offset).toBe(expectedOffset)
    const entries = decodeBlock(verifiedContents(buf, { offset, size }))
    expect(entries[entries.length - 1].key).toBe(e.key)
    dataBlocks.push({ offset, size, keys: entries.map((x) => x.key) })
    expectedOffset = offset + size + 5
  }
  expect(filter.offset).toBe(expectedOffset)
  verifiedContents(buf, filter)
  expect(pointIndex.offset).toBe(filter.offset + filter.size + 5)
  // u32 slotCount | u8 blockBits | 3 zero bytes | u32 per slot
  const slots = verifiedContents(buf, pointIndex)
  expect(slots.length).toBe(8 + 4 * slots.readUInt32LE(0))
  expect(index.offset).toBe(pointIndex.offset + pointIndex.size + 5)
  expect(index.offset + index.size + 5).toBe(f)
  return { file, dataBlocks, filter, pointIndex, index, footerOffset: f, keys: dataBlocks.flatMap((b) => b.keys) }
}

interface WalRecord {
  start: number
  end: number
  /** [key, value or null for a delete] in order. */
  ops: Array<[string, string | null]>
}

/** Splits a WAL into records (checking both checksums of each) and decodes their ops. */
function parseWal(file: string): WalRecord[] {
  const buf = fs.readFileSync(file)
  const records: WalRecord[] = []
  let o = 0
  while (o < buf.length) {
    const len = buf.readUInt32LE(o)
    const payload = buf.subarray(o + 12, o + 12 + len)
    expect(payload.length).toBe(len)
    expect(buf.readUInt32LE(o + 4)).toBe(xx.h32Raw(payload, 0) >>> 0)
    expect(buf.readUInt32LE(o + 8)).toBe(xx.h32Raw(buf.subarray(o, o + 8), 0x53545241) >>> 0)
    // Version 3: u64 epoch after the count (0 on a single node); the kind byte's top bit marks the last entry of each write.
    expect(payload[0]).toBe(3)
    const count = payload.readUInt32LE(9)
    expect(payload.readBigUInt64LE(13)).toBe(0n)
    const at = { o: 21 }
    const ops: WalRecord['ops'] = []
    for (let i = 0; i < count; i++) {
      const flagged = payload[at.o++]
      const kind = flagged & 0x7f
      if (i === count - 1) expect(flagged & 0x80).toBe(0x80)
      const kl = readVarint(payload, at)
      const key = payload.subarray(at.o, at.o + kl).toString('latin1')
      at.o += kl
      if (kind === 1) {
        const vl = readVarint(payload, at)
        ops.push([key, payload.subarray(at.o, at.o + vl).toString('latin1')])
        at.o += vl
      } else {
        ops.push([key, null])
      }
    }
    expect(at.o).toBe(len)
    records.push({ start: o, end: o + 12 + len, ops })
    o += 12 + len
  }
  return records
}

/** The database content after applying the first `n` records. */
function contentAfter(records: WalRecord[], n: number): Map<string, string> {
  const m = new Map<string, string>()
  for (const r of records.slice(0, n)) for (const [k, v] of r.ops) v === null ? m.delete(k) : m.set(k, v)
  return m
}

async function expectContent(db: Database, expected: Map<string, string>): Promise<void> {
  const want = [...expected.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const got = await scan(db)
  expect(got.error).toBeUndefined()
  expect(got.entries).toEqual(want)
  for (const [k, v] of want) expect(db.getSync(k)?.toString('latin1')).toBe(v)
}

// ---- tables --------------------------------------------------------------------

/**
 * A database with two tables of disjoint key ranges (a/… in the older, b/… in
 * the newer) and one key, c/0, only in the WAL (flushOnClose off). Disjoint ranges mean a read of
 * b/… or c/0 never needs table a, so it must keep working when table a is damaged.
 */
const MEMTABLE = 16 * 1024
const tableValue = (k: string): string => `${k}|${'v'.repeat(150 + ((k.charCodeAt(k.length - 1) * 37) % 100))}`

let tableTemplate: string
let tableA: ParsedTable
let tableB: ParsedTable

beforeAll(async () => {
  tableTemplate = newDir('tables-template')
  const db = await open(tableTemplate, { memtableBytes: MEMTABLE, blockBytes: 1024, autoCompaction: false, flushOnClose: false })
  // Fill exactly one memtable per prefix: the write after a full memtable freezes it into its own table.
  const fill = async (prefix: string): Promise<void> => {
    let i = 0
    do {
      const k = `${prefix}/${String(i++).padStart(3, '0')}`
      await db.put(k, tableValue(k))
    } while (db.stats().memtable.activeBytes < MEMTABLE)
  }
  await fill('a')
  await fill('b')
  await db.put('c/0', tableValue('c/0'))
  await db.close()

  const tables = filesEnding(tableTemplate, '.sst').map(parseTable)
  expect(tables).toHaveLength(2)
  ;[tableA, tableB] = tables
  // The layout the tests rely on: disjoint prefixes, and enough data blocks in table a to damage a middle one.
  expect(tableA.keys.every((k) => k.startsWith('a/'))).toBe(true)
  expect(tableB.keys.every((k) => k.startsWith('b/'))).toBe(true)
  expect(tableA.dataBlocks.length).toBeGreaterThanOrEqual(5)
})

const allTableKeys = (): string[] => [...tableA.keys, ...tableB.keys, 'c/0']
const inCopy = (dir: string, t: ParsedTable): string => path.join(dir, path.basename(t.file))

/** Reads that do not touch table a must still return exactly the right data. */
async function expectIntactPartsReadable(db: Database): Promise<void> {
  for (const k of [...tableB.keys, 'c/0']) {
    expect((await db.get(k))?.toString()).toBe(tableValue(k))
    expect(db.getSync(k)?.toString()).toBe(tableValue(k))
  }
  const bOnly = await scan(db, { gte: 'b/', lte: 'c/0' })
  expect(bOnly.error).toBeUndefined()
  expect(bOnly.entries).toEqual([...tableB.keys, 'c/0'].map((k) => [k, tableValue(k)]))
}

/** A full scan in either direction yields a correct prefix of the data, then fails with STRATA_CORRUPTION. */
async function expectScansFail(db: Database): Promise<void> {
  const all = allTableKeys().map((k): [string, string] => [k, tableValue(k)])
  for (const reverse of [false, true]) {
    const { entries, error } = await scan(db, { reverse })
    expectCode(error, 'STRATA_CORRUPTION')
    const want = reverse ? [...all].reverse() : all
    expect(entries).toEqual(want.slice(0, entries.length))
  }
}

describe('damaged table: data block', () => {
  // Offsets inside the chosen data block's region: contents start, middle, hash index, restart count, and both trailer parts.
  const positions: Array<[string, (b: Region) => number]> = [
    ['first content byte', (b) => b.offset],
    ['middle of the contents', (b) => b.offset + (b.size >> 1)],
    ['restart count and hash-index flag (last content byte)', (b) => b.offset + b.size - 1],
    ['hash index (last bucket)', (b) => b.offset + b.size - 7],
    ['compression byte of the trailer', (b) => b.offset + b.size],
    ['checksum in the trailer', (b) => b.offset + b.size + 3],
  ]

  it.each(positions)('%s: its keys fail with STRATA_CORRUPTION, everything else reads correctly', async (_, where) => {
    const dir = copyOf(tableTemplate)
    const j = tableA.dataBlocks.length >> 1
    const block = tableA.dataBlocks[j]
    flipByte(inCopy(dir, tableA), where(block))
    const db = await openDb(dir)

    for (const k of block.keys) {
      await expectRejectCode(db.get(k), 'STRATA_CORRUPTION')
      expectThrowCode(() => db.getSync(k), 'STRATA_CORRUPTION')
      // A failed read must not leave anything cached that a retry would return.
      await expectRejectCode(db.get(k), 'STRATA_CORRUPTION')
    }
    // The other blocks of the same table are intact and independently verified.
    for (const k of tableA.keys.filter((k) => !block.keys.includes(k))) {
      expect((await db.get(k))?.toString()).toBe(tableValue(k))
      expect(db.getSync(k)?.toString()).toBe(tableValue(k))
    }
    await expectIntactPartsReadable(db)
    await expectScansFail(db)
  })
})

describe('damaged table: filter, point index, index and footer', () => {
  /**
   * These are read when a table is opened, today lazily at the first read that
   * needs it. An engine that checks tables at open instead may fail open with
   * STRATA_CORRUPTION; both are fine, returning anything from table a is not.
   */
  async function openOrCorruption(dir: string): Promise<Database | undefined> {
    try {
      return await openDb(dir)
    } catch (err) {
      expectCode(err, 'STRATA_CORRUPTION')
      return undefined
    }
  }

  async function expectTableAUnreadable(dir: string): Promise<void> {
    const db = await openOrCorruption(dir)
    if (db === undefined) return
    for (const k of [tableA.keys[0], tableA.keys[tableA.keys.length >> 1], tableA.keys[tableA.keys.length - 1]]) {
      await expectRejectCode(db.get(k), 'STRATA_CORRUPTION')
      expectThrowCode(() => db.getSync(k), 'STRATA_CORRUPTION')
    }
    await expectIntactPartsReadable(db)
    await expectScansFail(db)
  }

  const blockPositions: Array<[string, (r: Region) => number]> = [
    ['first content byte', (r) => r.offset],
    ['middle of the contents', (r) => r.offset + (r.size >> 1)],
    ['last content byte', (r) => r.offset + r.size - 1],
    ['compression byte of the trailer', (r) => r.offset + r.size],
    ['checksum in the trailer', (r) => r.offset + r.size + 4],
  ]

  it.each(blockPositions)('filter block, %s', async (_, where) => {
    const dir = copyOf(tableTemplate)
    flipByte(inCopy(dir, tableA), where(tableA.filter))
    await expectTableAUnreadable(dir)
  })

  it.each(blockPositions)('point index block, %s', async (_, where) => {
    const dir = copyOf(tableTemplate)
    flipByte(inCopy(dir, tableA), where(tableA.pointIndex))
    await expectTableAUnreadable(dir)
  })

  it.each(blockPositions)('index block, %s', async (_, where) => {
    const dir = copyOf(tableTemplate)
    flipByte(inCopy(dir, tableA), where(tableA.index))
    await expectTableAUnreadable(dir)
  })

  it('footer: every one of its 64 bytes is protected (handles, counts, version, checksum, magic)', async () => {
    for (let i = 0; i < 64; i++) {
      const dir = copyOf(tableTemplate)
      flipByte(inCopy(dir, tableA), tableA.footerOffset + i)
      const db = await openOrCorruption(dir)
      if (db === undefined) continue
      await expectRejectCode(db.get(tableA.keys[0]), 'STRATA_CORRUPTION')
      expectThrowCode(() => db.getSync(tableA.keys[1]), 'STRATA_CORRUPTION')
      expect((await db.get(tableB.keys[0]))?.toString()).toBe(tableValue(tableB.keys[0]))
      await db.close()
    }
  })
})

/** Non-empty levels only: { level: tables }. */
function tablesPerLevel(db: Database): Record<number, number> {
  const out: Record<number, number> = {}
  for (const l of db.stats().levels) if (l.tables > 0) out[l.level] = l.tables
  return out
}

describe('damaged table met by compaction', () => {
  it('compaction stops without installing anything: no table deleted, intact keys still read, damage reported', async () => {
    const dir = copyOf(tableTemplate)
    const block = tableA.dataBlocks[tableA.dataBlocks.length >> 1]
    flipByte(inCopy(dir, tableA), block.offset + (block.size >> 1))
    // A trigger of 1 starts an L0 compaction of both tables right at open.
    const db = await openDb(dir, { l0CompactionTrigger: 1 })
    const deadline = Date.now() + 20_000
    while (db.stats().backgroundError === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(db.stats().backgroundError).toMatch(/corrupt/i)
    // Nothing replaced the inputs: both tables are still listed (L0 only) and on
    // disk. The open also flushes the WAL's 'c/0' to a third L0 table in the
    // background; the failed compaction stops background work, so that table
    // may or may not have been installed first.
    const expectInputsListed = (d: Database): void => {
      const levels = tablesPerLevel(d)
      expect(Object.keys(levels)).toEqual(['0'])
      expect([2, 3]).toContain(levels[0])
    }
    expectInputsListed(db)
    expect((await db.get('c/0'))?.toString()).toBe(tableValue('c/0'))
    expect(fs.existsSync(inCopy(dir, tableA)) && fs.existsSync(inCopy(dir, tableB))).toBe(true)
    for (const k of tableA.keys) {
      if (block.keys.includes(k)) await expectRejectCode(db.get(k), 'STRATA_CORRUPTION')
      else expect((await db.get(k))?.toString()).toBe(tableValue(k))
    }
    await expectIntactPartsReadable(db)
    await db.close()
    // The same after a reopen: the failed compaction left nothing half-done.
    const again = await openDb(dir)
    expectInputsListed(again)
    for (const k of block.keys) await expectRejectCode(again.get(k), 'STRATA_CORRUPTION')
    await expectIntactPartsReadable(again)
  })
})

describe('missing or partial tables and manifest damage: open fails and changes nothing', () => {
  /** Open must fail with STRATA_CORRUPTION, leave every file as it was, and release the lock. */
  async function expectOpenCorruption(dir: string): Promise<void> {
    const before = dirState(dir)
    await expectOpenFails(dir, 'STRATA_CORRUPTION')
    expect(dirState(dir)).toEqual(before)
    // Still corruption, not STRATA_LOCKED: the failed open released the directory.
    await expectOpenFails(dir, 'STRATA_CORRUPTION')
  }

  it('a table listed by the manifest was deleted', async () => {
    const dir = copyOf(tableTemplate)
    fs.rmSync(inCopy(dir, tableB))
    await expectOpenCorruption(dir)
  })

  it('a table listed by the manifest lost its last byte', async () => {
    const dir = copyOf(tableTemplate)
    const file = inCopy(dir, tableA)
    fs.truncateSync(file, fs.statSync(file).size - 1)
    await expectOpenCorruption(dir)
  })

  it('CURRENT names a manifest that does not exist', async () => {
    const dir = copyOf(tableTemplate)
    fs.writeFileSync(path.join(dir, 'CURRENT'), 'MANIFEST-999999\n')
    await expectOpenCorruption(dir)
  })

  it('the manifest CURRENT names was deleted', async () => {
    const dir = copyOf(tableTemplate)
    const name = fs.readFileSync(path.join(dir, 'CURRENT'), 'utf8').trim()
    fs.rmSync(path.join(dir, name))
    await expectOpenCorruption(dir)
  })

  it('CURRENT holds something that is not a manifest name', async () => {
    const dir = copyOf(tableTemplate)
    fs.writeFileSync(path.join(dir, 'CURRENT'), 'garbage')
    await expectOpenCorruption(dir)
  })

  it('a manifest record followed by intact records is damaged', async () => {
    const dir = copyOf(tableTemplate)
    const manifest = path.join(dir, fs.readFileSync(path.join(dir, 'CURRENT'), 'utf8').trim())
    // Manifest records use the WAL framing; the template's manifest has the open snapshot and one edit per flush.
    const buf = fs.readFileSync(manifest)
    const starts: number[] = []
    for (let o = 0; o < buf.length; o += 12 + buf.readUInt32LE(o)) starts.push(o)
    expect(starts.length).toBeGreaterThanOrEqual(3)
    flipByte(manifest, starts[1] + 12)
    await expectOpenCorruption(dir)
  })

  it('a damaged (full-length, bad checksum) last manifest record never silently loses a table', async () => {
    // The last edit records the flush of table b; its WAL was deleted once the
    // edit was durable, so table b is the only copy of those keys. Treating
    // the damaged record as a torn tail drops table b, and open then deletes
    // the file as unreferenced. Acceptable outcomes: STRATA_CORRUPTION, or
    // every key still readable.
    const dir = copyOf(tableTemplate)
    const manifest = path.join(dir, fs.readFileSync(path.join(dir, 'CURRENT'), 'utf8').trim())
    const buf = fs.readFileSync(manifest)
    let last = 0
    for (let o = 0; o < buf.length; o += 12 + buf.readUInt32LE(o)) last = o
    flipByte(manifest, last + 12 + (buf.readUInt32LE(last) >> 1))
    let db: Database
    try {
      db = await openDb(dir)
    } catch (err) {
      expectCode(err, 'STRATA_CORRUPTION')
      return
    }
    const lost: string[] = []
    for (const k of allTableKeys()) if ((await db.get(k))?.toString() !== tableValue(k)) lost.push(k)
    expect({ lost: lost.length, first: lost[0] }).toEqual({ lost: 0, first: undefined })
  })
})

// ---- WAL ---------------------------------------------------------------------

/**
 * A database whose only data is in one WAL: 20 single puts of varied sizes
 * and, in the middle, a batch that also deletes an earlier key. The memtable
 * is large and flushOnClose is off, so nothing is flushed and close leaves
 * the WAL in place.
 */
let walTemplate: string
let walRecords: WalRecord[]
const BATCH_RECORD = 10

beforeAll(async () => {
  walTemplate = newDir('wal-template')
  const db = await open(walTemplate, { memtableBytes: 1 << 20, flushOnClose: false })
  for (let i = 0; i < 20; i++) {
    if (i === BATCH_RECORD) {
      await db.batch([
        { type: 'put', key: 'batch/x', value: 'bx' },
        { type: 'del', key: 'w/03' },
        { type: 'put', key: 'batch/y', value: 'by'.repeat(500) },
      ])
    }
    // Awaiting each write makes it its own record.
    await db.put(`w/${String(i).padStart(2, '0')}`, `value ${i} `.repeat((i * 53) % 300))
  }
  await db.close()
  const wals = filesEnding(walTemplate, '.log')
  expect(wals).toHaveLength(1)
  walRecords = parseWal(wals[0])
  expect(walRecords).toHaveLength(21)
  expect(walRecords[BATCH_RECORD].ops).toHaveLength(3)
  expect(filesEnding(walTemplate, '.sst')).toHaveLength(0)
})

const walIn = (dir: string): string => filesEnding(dir, '.log')[0]

describe('WAL: torn tails and garbage are recovered from', () => {
  /** Cut points relative to a record: at its start, inside its header, and inside its payload. */
  const cuts: Array<[string, (r: WalRecord) => number]> = [
    ['at the record start', (r) => r.start],
    ['after 1 header byte', (r) => r.start + 1],
    ['inside the length/checksum fields', (r) => r.start + 6],
    ['1 byte short of a full header', (r) => r.start + 11],
    ['after the header, no payload', (r) => r.start + 12],
    ['in the middle of the payload', (r) => (r.start + 12 + r.end) >> 1],
    ['1 byte short of the record end', (r) => r.end - 1],
  ]
  const victims: Array<[string, () => number]> = [
    ['the first record', () => 0],
    ['a middle record', () => 5],
    ['the batch record (all or nothing)', () => BATCH_RECORD],
    ['the last record', () => walRecords.length - 1],
  ]

  for (const [victimName, victim] of victims) {
    it.each(cuts)(`truncated ${victimName}, cut %s: every earlier record and nothing later`, async (_, cutAt) => {
      const r = victim()
      const dir = copyOf(walTemplate)
      fs.truncateSync(walIn(dir), cutAt(walRecords[r]))
      const db = await openDb(dir)
      await expectContent(db, contentAfter(walRecords, r))
    })
  }

  it('a torn WAL stays readable after more writes and another reopen (it is then not the last WAL)', async () => {
    const dir = copyOf(walTemplate)
    const r = 7
    fs.truncateSync(walIn(dir), walRecords[r].start + 20)
    let db = await openDb(dir)
    await db.put('after', 'tear')
    await db.close()
    db = await openDb(dir)
    await expectContent(db, contentAfter(walRecords, r).set('after', 'tear'))
  })

  const garbage: Array<[string, () => Buffer]> = [
    ['1 random byte', () => Buffer.from([0xa5])],
    ['11 random bytes (less than a header)', () => Buffer.from('c3a1ff0012e4b7990d5a21', 'hex')],
    ['4 KiB of pseudo-random bytes', () => pseudoRandom(4096, 1)],
    ['12 zero bytes (a zeroed header)', () => Buffer.alloc(12)],
    ['4 KiB of zeros (preallocated, never written)', () => Buffer.alloc(4096)],
    ['256 bytes of 0xff (length field out of range)', () => Buffer.alloc(256, 0xff)],
    ['a header claiming 100 payload bytes, then only 10', () => tornHeader(100, 10)],
  ]

  it.each(garbage)('appended %s: every record is there', async (_, bytes) => {
    const dir = copyOf(walTemplate)
    fs.appendFileSync(walIn(dir), bytes())
    const db = await openDb(dir)
    await expectContent(db, contentAfter(walRecords, walRecords.length))
  })

  it('a torn record whose payload embeds a complete framed record is still a torn tail', async () => {
    // A value may legitimately contain bytes that frame as a record (for
    // example a WAL file stored as a value). When such a record is torn after
    // the embedded copy, the torn-tail check must not mistake the copy for an
    // intact later record: a crash must never make the database unopenable.
    const dir = newDir('embedded')
    let db = await openDb(dir, { memtableBytes: 1 << 20, flushOnClose: false })
    await db.put('first', 'kept')
    await db.put('blob', Buffer.concat([Buffer.alloc(64, 7), fs.readFileSync(walIn(walTemplate)), Buffer.alloc(64, 7)]))
    await db.close()
    const records = parseWal(walIn(dir))
    expect(records).toHaveLength(2)
    fs.truncateSync(walIn(dir), records[1].end - 10)
    db = await openDb(dir)
    await expectContent(db, new Map([['first', 'kept']]))
  })
})

describe('WAL: damage followed by intact records is corruption', () => {
  const r = 5
  const spots: Array<[string, (rec: WalRecord) => number]> = [
    ['payload length', (rec) => rec.start],
    ['payload checksum', (rec) => rec.start + 5],
    ['header checksum', (rec) => rec.start + 9],
    ['payload format version', (rec) => rec.start + 12],
    ['middle of the payload', (rec) => (rec.start + 12 + rec.end) >> 1],
    ['last payload byte', (rec) => rec.end - 1],
  ]

  it.each(spots)('flipped byte in the %s of a middle record: open fails and changes nothing', async (_, at) => {
    const dir = copyOf(walTemplate)
    flipByte(walIn(dir), at(walRecords[r]))
    const before = dirState(dir)
    await expectOpenFails(dir, 'STRATA_CORRUPTION')
    expect(dirState(dir)).toEqual(before)
    // The lock was released: a second attempt meets the same corruption, not STRATA_LOCKED.
    await expectOpenFails(dir, 'STRATA_CORRUPTION')
  })

  it('the same damage in the batch record: open fails', async () => {
    const dir = copyOf(walTemplate)
    flipByte(walIn(dir), walRecords[BATCH_RECORD].start + 20)
    await expectOpenFails(dir, 'STRATA_CORRUPTION')
  })
})

// ---- small helpers for garbage -------------------------------------------------

/** Deterministic bytes (xorshift32), so a failing case reproduces. */
function pseudoRandom(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

/** A well-formed header (both header fields valid) whose payload was cut short: a classic torn append. */
function tornHeader(claimed: number, present: number): Buffer {
  const payload = pseudoRandom(claimed, 7)
  const header = Buffer.alloc(12)
  header.writeUInt32LE(claimed, 0)
  header.writeUInt32LE(xx.h32Raw(payload, 0) >>> 0, 4)
  header.writeUInt32LE(xx.h32Raw(header.subarray(0, 8), 0x53545241) >>> 0, 8)
  return Buffer.concat([header, payload.subarray(0, present)])
}

// ---- blob files (key-value separation) -------------------------------------------

/**
 * Values of at least `minBlobBytes` live in `.blob` files and the table holds
 * a reference carrying the value's checksum (docs/format.md, "Blob file").
 * A read fetches exactly the value bytes and checks them against that
 * checksum: damage to a value is STRATA_CORRUPTION naming the blob file,
 * never wrong bytes; damage to the record headers, keys and footer (for tools
 * only) changes no read; a missing or partial blob file fails the open.
 *
 * The template: 8 values from exactly minBlobBytes up (blob/00..blob/07, in
 * one blob file) between inline values (a/… before, z/… after, one of them
 * a byte short of minBlobBytes), all flushed into one table by the close.
 */
const MIN_BLOB = 1000
const BLOB_SEED = 0x424c4f42
const BLOB_KEYS = Array.from({ length: 8 }, (_, i) => `blob/${String(i).padStart(2, '0')}`)
const INLINE_KEYS = ['a/0', 'a/1', 'z/0', 'z/1']
/** Deterministic value bytes that start with their key, so a value read under the wrong key shows. */
function blobTestValue(k: string, round = 0): Buffer {
  const i = BLOB_KEYS.indexOf(k)
  const length = i >= 0 ? MIN_BLOB + i * 157 + round * 31 : k === 'a/1' ? MIN_BLOB - 1 : 40
  const head = Buffer.from(`${k}@${round}|`, 'latin1')
  return Buffer.concat([head, pseudoRandom(length - head.length, (i + 2) * 7919 + round + k.charCodeAt(0))])
}

interface BlobRecordRegion {
  /** Offset of the 16-byte record header; the key follows it, then the value. */
  recordOffset: number
  valueOffset: number
  valueLength: number
  key: string
}

interface ParsedBlobFile {
  file: string
  records: BlobRecordRegion[]
  footerOffset: number
}

/**
 * Parses a whole blob file from docs/format.md and checks every checksum (file
 * header, record headers, values, footer) and that records and footer tile the
 * file exactly, so region offsets taken from here are exact.
 */
function parseBlobFile(file: string): ParsedBlobFile {
  const buf = fs.readFileSync(file)
  expect(buf.subarray(0, 8).toString('latin1')).toBe('STRBLOB1')
  expect(buf.readUInt32LE(8)).toBe(1)
  expect(buf.readUInt32LE(12)).toBe(xx.h32Raw(buf.subarray(0, 12), BLOB_SEED) >>> 0)
  const footerOffset = buf.length - 32
  const footer = buf.subarray(footerOffset)
  expect(footer.subarray(24, 32).toString('latin1')).toBe('STRBLOB1')
  expect(footer.readUInt32LE(16)).toBe(1)
  expect(footer.readUInt32LE(20)).toBe(xx.h32Raw(footer.subarray(0, 20), BLOB_SEED) >>> 0)
  const records: BlobRecordRegion[] = []
  let o = 16
  let valueBytes = 0
  while (o < footerOffset) {
    const keyLength = buf.readUInt32LE(o)
    const valueLength = buf.readUInt32LE(o + 4)
    const key = buf.subarray(o + 16, o + 16 + keyLength)
    expect(buf.readUInt32LE(o + 12)).toBe(xx.h32Raw(Buffer.concat([buf.subarray(o, o + 12), key]), BLOB_SEED) >>> 0)
    const valueOffset = o + 16 + keyLength
    const value = buf.subarray(valueOffset, valueOffset + valueLength)
    expect(value.length).toBe(valueLength)
    expect(buf.readUInt32LE(o + 8)).toBe(Number(BigInt.asUintN(32, xx.h64Raw(value, 0n))))
    records.push({ recordOffset: o, valueOffset, valueLength, key: key.toString('latin1') })
    valueBytes += valueLength
    o = valueOffset + valueLength
  }
  expect(o).toBe(footerOffset)
  expect(Number(footer.readBigUInt64LE(0))).toBe(records.length)
  expect(Number(footer.readBigUInt64LE(8))).toBe(valueBytes)
  return { file, records, footerOffset }
}

let blobTemplate: string
let blobFile: ParsedBlobFile
/** The record whose bytes the value and record-header cases damage: one in the middle of the file. */
let blobVictim: BlobRecordRegion

beforeAll(async () => {
  blobTemplate = newDir('blob-template')
  const db = await open(blobTemplate, { minBlobBytes: MIN_BLOB, memtableBytes: 1 << 20, autoCompaction: false })
  for (const k of [...INLINE_KEYS, ...BLOB_KEYS]) await db.put(k, blobTestValue(k))
  await db.close()
  expect(filesEnding(blobTemplate, '.sst')).toHaveLength(1)
  const blobs = filesEnding(blobTemplate, '.blob')
  expect(blobs).toHaveLength(1)
  blobFile = parseBlobFile(blobs[0])
  // Exactly the values of at least minBlobBytes were separated, in key order, byte for byte.
  expect(blobFile.records.map((r) => r.key)).toEqual(BLOB_KEYS)
  const buf = fs.readFileSync(blobs[0])
  for (const r of blobFile.records) expect(buf.subarray(r.valueOffset, r.valueOffset + r.valueLength).equals(blobTestValue(r.key))).toBe(true)
  blobVictim = blobFile.records[3]
})

const allBlobTestKeys = (): string[] => [...INLINE_KEYS, ...BLOB_KEYS].sort()
const blobIn = (dir: string): string => path.join(dir, path.basename(blobFile.file))
const latin1Entry = (k: string): [string, string] => [k, blobTestValue(k).toString('latin1')]

/** Every key but `except` reads exactly, by get and getSync. */
async function expectBlobTestKeysExact(db: Database, except?: string): Promise<void> {
  for (const k of allBlobTestKeys()) {
    if (k === except) continue
    expect((await db.get(k))?.equals(blobTestValue(k)), `get ${k}`).toBe(true)
    expect(db.getSync(k)?.equals(blobTestValue(k)), `getSync ${k}`).toBe(true)
  }
}

/** Full scans in both directions and keys-only scans return exactly the template's data. */
async function expectBlobTestScansExact(db: Database): Promise<void> {
  for (const reverse of [false, true]) {
    const all = allBlobTestKeys()
    const got = await scan(db, { reverse })
    expect(got.error).toBeUndefined()
    expect(got.entries).toEqual((reverse ? [...all].reverse() : all).map(latin1Entry))
  }
}

describe('damaged blob file: value bytes', () => {
  const positions: Array<[string, (r: BlobRecordRegion) => number]> = [
    ['first value byte', (r) => r.valueOffset],
    ['middle of the value', (r) => r.valueOffset + (r.valueLength >> 1)],
    ['last value byte', (r) => r.valueOffset + r.valueLength - 1],
  ]

  it.each(positions)('%s: that key fails with STRATA_CORRUPTION naming the blob file, everything else reads correctly', async (_, where) => {
    const dir = copyOf(blobTemplate)
    flipByte(blobIn(dir), where(blobVictim), 0x10)
    // Nothing checks value bytes at open: the manifest's sizes still match.
    const db = await openDb(dir)
    const victim = blobVictim.key

    let err: unknown
    await db.get(victim).then(
      (v) => (err = new Error(`get resolved with ${v?.length} bytes`)),
      (e) => (err = e),
    )
    expectCode(err, 'STRATA_CORRUPTION')
    expect((err as Error).message).toContain(path.basename(blobFile.file))
    expectThrowCode(() => db.getSync(victim), 'STRATA_CORRUPTION')
    // Values never enter a cache: a retry reads and fails again.
    await expectRejectCode(db.get(victim), 'STRATA_CORRUPTION')
    await expectRejectCode(db.getEntry(victim), 'STRATA_CORRUPTION')
    const snap = db.snapshot()
    try {
      await expectRejectCode(snap.get(victim), 'STRATA_CORRUPTION')
    } finally {
      snap.release()
    }

    // Every other value, in the same blob file or inline, is intact and independently verified.
    await expectBlobTestKeysExact(db, victim)

    // Scans over the damaged value yield a correct prefix, then STRATA_CORRUPTION, in both directions.
    const all = allBlobTestKeys().map(latin1Entry)
    for (const reverse of [false, true]) {
      const { entries, error } = await scan(db, { reverse })
      expectCode(error, 'STRATA_CORRUPTION')
      const want = reverse ? [...all].reverse() : all
      expect(entries).toEqual(want.slice(0, entries.length))
      expect(entries.map(([k]) => k)).not.toContain(victim)
      // A scan that starts at the damaged value fails too.
      const from = await scan(db, reverse ? { lte: victim, reverse } : { gte: victim })
      expectCode(from.error, 'STRATA_CORRUPTION')
      expect(from.entries).toEqual([])
    }
    // Ranges that leave the damaged value out read exactly.
    for (const o of [{ lt: victim }, { gt: victim }, { lt: victim, reverse: true }, { gt: victim, reverse: true }]) {
      const keys = allBlobTestKeys().filter((k) => (o.lt !== undefined ? k < o.lt : k > o.gt!))
      const { entries, error } = await scan(db, o)
      expect(error).toBeUndefined()
      expect(entries).toEqual((o.reverse === true ? keys.reverse() : keys).map(latin1Entry))
    }
    // Keys-only iteration reads no blob value: it lists every key, values empty.
    for (const reverse of [false, true]) {
      const { entries, error } = await scan(db, { values: false, reverse })
      expect(error).toBeUndefined()
      const keys = allBlobTestKeys()
      expect(entries).toEqual((reverse ? keys.reverse() : keys).map((k) => [k, '']))
    }
    // Overwriting the damaged key makes it readable again; the damage stays behind, unread.
    await db.put(victim, blobTestValue(victim, 1))
    expect((await db.get(victim))?.equals(blobTestValue(victim, 1))).toBe(true)
  })
})

describe('damaged blob file: bytes the engine does not read', () => {
  /**
   * Record headers, keys and the footer are for tools (`strata check`): a read
   * fetches only the value bytes the reference names and checks them against
   * the reference's checksum (docs/format.md), so damage there changes no read.
   */
  const positions: Array<[string, () => number]> = [
    ['key length of a record header', () => blobVictim.recordOffset],
    ['value length of a record header', () => blobVictim.recordOffset + 4],
    ['value checksum of a record header', () => blobVictim.recordOffset + 8],
    ['header checksum of a record header', () => blobVictim.recordOffset + 12],
    ['key bytes of a record', () => blobVictim.recordOffset + 16],
    ['record header of the first record', () => blobFile.records[0].recordOffset + 5],
    ['footer record count', () => blobFile.footerOffset],
    ['footer value bytes', () => blobFile.footerOffset + 8],
    ['footer checksum', () => blobFile.footerOffset + 20],
    ['footer magic (last byte of the file)', () => blobFile.footerOffset + 31],
  ]

  it.each(positions)('%s: every read still returns the exact data', async (_, where) => {
    const dir = copyOf(blobTemplate)
    flipByte(blobIn(dir), where(), 0x04)
    const db = await openDb(dir)
    await expectBlobTestKeysExact(db)
    await expectBlobTestScansExact(db)
  })

  it('file header: a read returns the exact value or STRATA_CORRUPTION, never wrong bytes', async () => {
    // The header's role for reads is not specified: both outcomes are fine, other bytes are not.
    for (const offset of [0, 8, 12]) {
      const dir = copyOf(blobTemplate)
      flipByte(blobIn(dir), offset, 0x04)
      let db: Database
      try {
        db = await openDb(dir)
      } catch (err) {
        expectCode(err, 'STRATA_CORRUPTION')
        continue
      }
      for (const k of BLOB_KEYS) {
        try {
          expect((await db.get(k))?.equals(blobTestValue(k)), `get ${k} (header byte ${offset} flipped)`).toBe(true)
        } catch (err) {
          if (err instanceof StrataError) expectCode(err, 'STRATA_CORRUPTION')
          else throw err
        }
      }
      await db.close()
    }
  })
})

describe('missing or partial blob files: open fails and changes nothing', () => {
  /** Open must fail with STRATA_CORRUPTION naming the blob file, leave every file as it was, and release the lock. */
  async function expectBlobOpenCorruption(dir: string): Promise<void> {
    const before = dirState(dir)
    let err: unknown
    try {
      const db = await open(dir)
      await db.close()
      err = new Error('expected open to fail with STRATA_CORRUPTION, but it succeeded')
    } catch (e) {
      err = e
    }
    expectCode(err, 'STRATA_CORRUPTION')
    expect((err as Error).message).toContain(path.basename(blobFile.file))
    expect(dirState(dir)).toEqual(before)
    // Still corruption, not STRATA_LOCKED: the failed open released the directory.
    await expectOpenFails(dir, 'STRATA_CORRUPTION')
  }

  it('a blob file listed by the manifest was deleted', async () => {
    const dir = copyOf(blobTemplate)
    fs.rmSync(blobIn(dir))
    await expectBlobOpenCorruption(dir)
  })

  it('a blob file listed by the manifest lost its last byte', async () => {
    const dir = copyOf(blobTemplate)
    fs.truncateSync(blobIn(dir), fs.statSync(blobIn(dir)).size - 1)
    await expectBlobOpenCorruption(dir)
  })

  it('a blob file listed by the manifest was cut inside a value (no footer, later values gone)', async () => {
    const dir = copyOf(blobTemplate)
    fs.truncateSync(blobIn(dir), blobVictim.valueOffset + (blobVictim.valueLength >> 1))
    await expectBlobOpenCorruption(dir)
  })

  it('a blob file listed by the manifest is empty', async () => {
    const dir = copyOf(blobTemplate)
    fs.truncateSync(blobIn(dir), 0)
    await expectBlobOpenCorruption(dir)
  })
})

describe('damaged blob value met by blob garbage collection', () => {
  /**
   * Garbage collection reads the live values of a blob file with garbage and
   * writes them to a new one. Meeting a damaged value, it must not launder it
   * (write the damaged bytes under a fresh checksum): the key must keep failing
   * with STRATA_CORRUPTION, before and after a reopen, and every other key must
   * keep its exact value.
   */
  it('the damaged key never reads as anything but STRATA_CORRUPTION; the rest stays exact', async () => {
    // Two flushes: the blob template's table and blob file, then a second table
    // overwriting three blob values (their old values become garbage once the
    // tables are compacted together).
    const dir = copyOf(blobTemplate)
    let db = await openDb(dir, { minBlobBytes: MIN_BLOB, memtableBytes: 1 << 20, autoCompaction: false })
    const overwritten = BLOB_KEYS.slice(0, 3)
    for (const k of overwritten) await db.put(k, blobTestValue(k, 1))
    await db.close()
    expect(filesEnding(dir, '.blob')).toHaveLength(2)
    const victim = BLOB_KEYS[5]
    const v = blobFile.records.find((r) => r.key === victim)!
    flipByte(blobIn(dir), v.valueOffset + (v.valueLength >> 1), 0x20)
    const want = (k: string): Buffer => blobTestValue(k, overwritten.includes(k) ? 1 : 0)

    // GC on every file with any garbage; L0 compaction (which makes the garbage) right at open.
    db = await openDb(dir, { minBlobBytes: MIN_BLOB, blobGarbagePercent: 1, l0CompactionTrigger: 1 })
    const deadline = Date.now() + 20_000
    const gcRan = (): boolean => db.stats().backgroundError !== undefined || db.stats().compaction.byReason['blob-gc'] > 0
    while (!gcRan() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    const st = db.stats()
    expect(st.compaction.compactions, 'the L0 compaction ran').toBeGreaterThan(0)
    expect(gcRan(), `blob GC neither ran nor failed within 20 s: ${JSON.stringify(st.compaction)} ${JSON.stringify(st.blobs)}`).toBe(true)
    // The collection must have failed on the damaged value (it reads every live value of the file).
    expect(st.backgroundError).toMatch(/corrupt/i)
    // Nothing was deleted: the damaged file is still there for a repair to look at.
    expect(fs.existsSync(blobIn(dir))).toBe(true)

    const check = async (d: Database): Promise<void> => {
      await expectRejectCode(d.get(victim), 'STRATA_CORRUPTION')
      expectThrowCode(() => d.getSync(victim), 'STRATA_CORRUPTION')
      for (const k of allBlobTestKeys()) {
        if (k === victim) continue
        expect((await d.get(k))?.equals(want(k)), `get ${k}`).toBe(true)
      }
      const { entries, error } = await scan(d)
      expectCode(error, 'STRATA_CORRUPTION')
      const all = allBlobTestKeys().map((k): [string, string] => [k, want(k).toString('latin1')])
      expect(entries).toEqual(all.slice(0, entries.length))
    }
    await check(db)
    await db.close()
    // The same after a reopen: the failed collection left nothing half-done.
    await check(await openDb(dir))
  })
})
