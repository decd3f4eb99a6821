/**
 * `strata check`, `strata dump` and `strata repair`, end to end: the built
 * command (dist/, built by `pretest` or test/setup/fresh-build.ts) runs as a
 * child process on real database directories written by open().
 *
 * Damage is placed the way test/corruption.test.ts places it: the tests parse
 * the files themselves, independently of the engine and of the tools, from
 * docs/format.md, checking every checksum they parse, so the byte each test
 * flips lies in the region it names. Pristine databases are built once and
 * copied for each case.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import xxhash, { type XXHashAPI } from 'xxhash-wasm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { open, type Database } from '../src/index.js'
import { decodeBlock as decodeBlockRaw, decodedContents, readVarint } from './format-parsers.js'

const CLI = fileURLToPath(new URL('../dist/cli/strata.js', import.meta.url))

// ---- running the command --------------------------------------------------------

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Child processes running at once: one per core (each start loads the whole CLI). */
const MAX_CHILDREN = Math.max(2, os.availableParallelism())
let running = 0
const waiting: Array<() => void> = []

/** Runs `strata ...args`; callers may start many at once, at most MAX_CHILDREN run together. */
async function strata(...args: string[]): Promise<Run> {
  if (running >= MAX_CHILDREN) await new Promise<void>((r) => waiting.push(r))
  running++
  try {
    return await spawnStrata(args)
  } finally {
    running--
    waiting.shift()?.()
  }
}

function spawnStrata(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

/** Runs `strata ...args --json` and parses its one JSON document. */
async function strataJson(...args: string[]): Promise<Run & { doc: any }> {
  const r = await strata(...args, '--json')
  let doc: unknown
  try {
    doc = JSON.parse(r.stdout)
  } catch {
    throw new Error(`not one JSON document (exit ${r.code}): ${r.stdout.slice(0, 500)}\n${r.stderr}`)
  }
  return { ...r, doc }
}

// ---- temp dirs and file helpers ------------------------------------------------------

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-cli-tools-'))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

let counter = 0
function newDir(name: string): string {
  const dir = path.join(root, `${name}-${counter++}`)
  fs.mkdirSync(dir)
  return dir
}

function copyOf(template: string): string {
  const dir = path.join(root, `copy-${counter++}`)
  fs.cpSync(template, dir, { recursive: true })
  return dir
}

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

/** Relative path → sha256 of every file under `dir` (and the set of names): to prove nothing changed. */
function hashTree(dir: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {}
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(rel, e.name)
    if (e.isDirectory()) Object.assign(out, hashTree(dir, p))
    else out[p] = createHash('sha256').update(fs.readFileSync(path.join(dir, p))).digest('hex')
  }
  return out
}

const filesEnding = (dir: string, ext: string): string[] =>
  fs.readdirSync(dir).filter((n) => n.endsWith(ext)).sort().map((n) => path.join(dir, n))

const currentManifest = (dir: string): string => path.join(dir, fs.readFileSync(path.join(dir, 'CURRENT'), 'utf8').trim())

/** Start offsets of the framed records of a log (WAL or manifest). */
function recordStarts(file: string): number[] {
  const buf = fs.readFileSync(file)
  const starts: number[] = []
  for (let o = 0; o + 12 <= buf.length; o += 12 + buf.readUInt32LE(o)) starts.push(o)
  return starts
}

// ---- independent parsers of the on-disk formats (as in corruption.test.ts) -----------------

let xx: XXHashAPI
beforeAll(async () => {
  xx = await xxhash()
})

/** A block's entries with their values as latin1 text (these tests write text values). */
interface BlockEntry {
  /** latin1 of the key bytes. */
  key: string
  seq: number
  kind: number
  value: string
}

function decodeBlock(contents: Buffer): BlockEntry[] {
  return decodeBlockRaw(contents).map((e) => ({ ...e, value: e.value.toString('latin1') }))
}

interface Region {
  offset: number
  size: number
}

interface ParsedTable {
  file: string
  name: string
  /** `size`: the stored size (the handle's); `compression`: the trailer's byte (0 none, 1 LZ4); `rawSize`: the contents' size decoded. */
  dataBlocks: Array<Region & { entries: BlockEntry[]; compression: number; rawSize: number }>
  filter: Region
  pointIndex: Region
  index: Region
  footerOffset: number
  entries: BlockEntry[]
}

function verifiedContents(buf: Buffer, r: Region): Buffer {
  expect(buf.readUInt32LE(r.offset + r.size + 1)).toBe(Number(BigInt.asUintN(32, xx.h64Raw(buf.subarray(r.offset, r.offset + r.size + 1), 0n))))
  return decodedContents(buf.subarray(r.offset, r.offset + r.size), buf[r.offset + r.size])
}

/** Parses a whole (format 3) table, checking that its regions tile the file with every checksum matching. */
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
    const h = Buffer.from(e.value, 'latin1')
    const offset = readVarint(h, at)
    const size = readVarint(h, at)
    expect(offset).toBe(expectedOffset)
    const contents = verifiedContents(buf, { offset, size })
    const entries = decodeBlock(contents)
    expect(entries[entries.length - 1].key).toBe(e.key)
    dataBlocks.push({ offset, size, entries, compression: buf[offset + size], rawSize: contents.length })
    expectedOffset = offset + size + 5
  }
  expect(filter.offset).toBe(expectedOffset)
  verifiedContents(buf, filter)
  expect(pointIndex.offset).toBe(filter.offset + filter.size + 5)
  verifiedContents(buf, pointIndex)
  expect(index.offset).toBe(pointIndex.offset + pointIndex.size + 5)
  expect(index.offset + index.size + 5).toBe(f)
  return { file, name: path.basename(file), dataBlocks, filter, pointIndex, index, footerOffset: f, entries: dataBlocks.flatMap((b) => b.entries) }
}

interface WalRecord {
  start: number
  end: number
  firstSequence: number
  /** [key (latin1), value or null for a delete] in order (an expiring put's value without its expiry time). */
  ops: Array<[string, string | null]>
  /** Per op: the expiry time of an expiring put (kind 4), else undefined. */
  expiresAt: Array<number | undefined>
  /** Per op: its kind (a range delete, kind 6, is in `ops` as [start, end], its end '' for none). */
  kinds: number[]
}

/** Splits a WAL into records (both checksums checked) and decodes their ops (record versions 1 to 3). */
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
    const version = payload[0]
    expect([1, 2, 3]).toContain(version)
    const count = payload.readUInt32LE(9)
    // Version 3 adds a u64 epoch after the count (0 on a single node).
    if (version >= 3) expect(payload.readBigUInt64LE(13)).toBe(0n)
    const at = { o: version >= 3 ? 21 : 13 }
    const ops: WalRecord['ops'] = []
    const expiresAt: WalRecord['expiresAt'] = []
    const kinds: number[] = []
    for (let i = 0; i < count; i++) {
      // Version 2 marks the last entry of each write with the kind byte's top bit.
      const kind = payload[at.o++] & (version >= 2 ? 0x7f : 0xff)
      const kl = readVarint(payload, at)
      const key = payload.subarray(at.o, at.o + kl).toString('latin1')
      at.o += kl
      kinds.push(kind)
      if (kind === 6) {
        // Kind 6, a range delete: key = the range's start, value = its end (exclusive; empty: none).
        expect(version).toBe(3)
        const vl = readVarint(payload, at)
        ops.push([key, payload.subarray(at.o, at.o + vl).toString('latin1')])
        expiresAt.push(undefined)
        at.o += vl
      } else if (kind === 1 || kind === 4) {
        // Kind 4, an expiring put: its value bytes are u64 expiresAt, then the value.
        const vl = readVarint(payload, at)
        const skip = kind === 4 ? 8 : 0
        ops.push([key, payload.subarray(at.o + skip, at.o + vl).toString('latin1')])
        expiresAt.push(kind === 4 ? Number(payload.readBigUInt64LE(at.o)) : undefined)
        at.o += vl
      } else {
        expect(kind).toBe(0)
        ops.push([key, null])
        expiresAt.push(undefined)
      }
    }
    expect(at.o).toBe(len)
    records.push({ start: o, end: o + 12 + len, firstSequence: Number(payload.readBigUInt64LE(1)), ops, expiresAt, kinds })
    o += 12 + len
  }
  return records
}

/** The newest version of every key among (key, seq, value | null) entries: what a database holding them shows. */
function newestOf(entries: Iterable<{ key: string; seq: number; value: string | null }>): Map<string, string> {
  const best = new Map<string, { seq: number; value: string | null }>()
  for (const e of entries) {
    const b = best.get(e.key)
    if (b === undefined || e.seq > b.seq) best.set(e.key, { seq: e.seq, value: e.value })
  }
  const out = new Map<string, string>()
  for (const [k, b] of best) if (b.value !== null) out.set(k, b.value)
  return out
}

/** Every key and value of an open database (latin1), by a full scan. */
async function contentOf(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for await (const [k, v] of db.iterator()) out.set(k.toString('latin1'), v.toString('latin1'))
  return out
}

async function contentOfDir(dir: string): Promise<Map<string, string>> {
  const db = await open(dir, { autoCompaction: false })
  try {
    return await contentOf(db)
  } finally {
    await db.close()
  }
}

const sorted = (m: Map<string, string>): Array<[string, string]> => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

// ---- the databases ---------------------------------------------------------------------------

/**
 * Tables at several levels and an unflushed WAL: a first session writes 4000
 * keys with tiny level targets and compacts, so compactions spread tables over
 * levels 1 and deeper; a second one (no automatic compaction) overwrites and
 * deletes some of them into L0 tables, and leaves its last writes in the WAL.
 * `model` is what was written last per key (latin1; deleted keys absent).
 */
let levelsTemplate: string
const model = new Map<string, string>()
const BINARY_KEY = Buffer.from([0xff, 0x00, 0x7f])
const BINARY_VALUE = Buffer.from([0x00, 0x01, 0xfe])
let levelsSeen: number[]

const keyOf = (i: number): string => `k/${String(i).padStart(5, '0')}`
const valueOf = (i: number, round: number): string => `v${round}-${i}-`.padEnd(60 + (i % 50), 'x')

beforeAll(async () => {
  levelsTemplate = newDir('levels-template')
  let db = await open(levelsTemplate, { memtableBytes: 64 * 1024, levelBaseBytes: 64 * 1024, levelSizeMultiplier: 2, targetTableBytes: 16 * 1024, flushOnClose: false })
  for (let i = 0; i < 4000; i++) {
    const k = keyOf((i * 7919) % 4000)
    await db.put(k, valueOf(i, 1))
    model.set(k, valueOf(i, 1))
  }
  await db.compactRange()
  await db.close()
  db = await open(levelsTemplate, { memtableBytes: 64 * 1024, autoCompaction: false, flushOnClose: false })
  for (let i = 0; i < 1200; i++) {
    await db.put(keyOf(i * 3), valueOf(i, 2))
    model.set(keyOf(i * 3), valueOf(i, 2))
  }
  for (let i = 0; i < 300; i++) {
    await db.delete(keyOf(i * 11))
    model.delete(keyOf(i * 11))
  }
  await db.put(BINARY_KEY, BINARY_VALUE)
  model.set(BINARY_KEY.toString('latin1'), BINARY_VALUE.toString('latin1'))
  levelsSeen = db.stats().levels.filter((l) => l.tables > 0).map((l) => l.level)
  await db.close()
  expect(levelsSeen).toContain(0)
  expect(levelsSeen.filter((l) => l > 0).length).toBeGreaterThanOrEqual(1)
  expect(levelsSeen.length).toBeGreaterThanOrEqual(2)
  expect(filesEnding(levelsTemplate, '.log')).toHaveLength(1)
  expect(parseWal(filesEnding(levelsTemplate, '.log')[0]).length).toBeGreaterThan(10)
})

/** The tables of the levels template with their level (from the manifest, through `strata dump`). */
async function tableLevels(dir: string): Promise<Map<string, number>> {
  const { doc } = await strataJson('dump', currentManifest(dir))
  return new Map(doc.state.tables.map((t: { file: string; level: number }) => [t.file, t.level]))
}

/** A table with many data blocks (the largest one). */
function bigTable(dir: string): ParsedTable {
  const file = filesEnding(dir, '.sst').sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0]
  const t = parseTable(file)
  expect(t.dataBlocks.length).toBeGreaterThanOrEqual(3)
  return t
}

/** A WAL-only database: 20 single puts and, in the middle, a batch that also deletes an earlier key. */
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
    await db.put(`w/${String(i).padStart(2, '0')}`, `value ${i} `.repeat(1 + ((i * 53) % 300)))
  }
  await db.close()
  walRecords = parseWal(filesEnding(walTemplate, '.log')[0])
  expect(walRecords).toHaveLength(21)
  expect(walRecords[BATCH_RECORD].ops).toHaveLength(3)
})

/** What the WAL template holds after applying its records but those in `skip`. */
function walContentWithout(skip: Set<number>): Map<string, string> {
  const m = new Map<string, string>()
  walRecords.forEach((r, i) => {
    if (skip.has(i)) return
    for (const [k, v] of r.ops) v === null ? m.delete(k) : m.set(k, v)
  })
  return m
}

// ---- strata check ------------------------------------------------------------------------

describe('strata check', () => {
  it('exits 0 on a clean database with tables at several levels and an unflushed WAL, text and --json, changing nothing', async () => {
    const dir = copyOf(levelsTemplate)
    const before = hashTree(dir)
    const [text, json] = await Promise.all([strata('check', dir), strataJson('check', dir)])
    expect(text.code, text.stdout + text.stderr).toBe(0)
    expect(text.stdout).toMatch(/result: OK: 0 problems/)
    expect(text.stderr).toBe('')
    expect(json.code).toBe(0)
    const doc = json.doc
    expect(doc.ok).toBe(true)
    expect(doc.problems).toEqual([])
    expect(doc.warnings).toEqual([])
    // Every table the manifest names was read whole: the entries match an independent parse.
    const tables = filesEnding(dir, '.sst').map(parseTable)
    expect(doc.tables.map((t: { file: string }) => t.file).sort()).toEqual(tables.map((t) => t.name).sort())
    expect(doc.tables.reduce((n: number, t: { entries: number }) => n + t.entries, 0)).toBe(tables.reduce((n, t) => n + t.entries.length, 0))
    expect(new Set(doc.tables.map((t: { level: number }) => t.level))).toEqual(new Set(levelsSeen))
    const wal = parseWal(filesEnding(dir, '.log')[0])
    expect(doc.wals).toHaveLength(1)
    expect(doc.wals[0].records).toBe(wal.length)
    expect(doc.wals[0].entries).toBe(wal.reduce((n, r) => n + r.ops.length, 0))
    expect(hashTree(dir)).toEqual(before)
  })

  it('finds every kind of damage corruption.test.ts injects, naming the file and offset, and changes nothing', async () => {
    const dir0 = copyOf(levelsTemplate)
    const t = bigTable(dir0)
    const mid = t.dataBlocks[t.dataBlocks.length >> 1]
    const wal = filesEnding(dir0, '.log')[0]
    const walRecs = parseWal(wal)
    const manifestStarts = recordStarts(currentManifest(dir0))
    expect(manifestStarts.length).toBeGreaterThanOrEqual(3)
    const victimTable = (dir: string): string => path.join(dir, t.name)

    interface Case {
      name: string
      damage: (dir: string) => void
      file: string
      offset?: number
      message: RegExp
      /** Also run the text output (a few cases: the JSON document says the same). */
      text?: boolean
    }
    const cases: Case[] = [
      { name: 'data block contents', damage: (d) => flipByte(victimTable(d), mid.offset + (mid.size >> 1)), file: t.name, offset: mid.offset, message: /data block \d+: block checksum mismatch/ },
      { name: 'block trailer checksum', damage: (d) => flipByte(victimTable(d), mid.offset + mid.size + 3), file: t.name, offset: mid.offset, message: /data block \d+: block checksum mismatch/ },
      { name: 'filter block', damage: (d) => flipByte(victimTable(d), t.filter.offset + (t.filter.size >> 1)), file: t.name, offset: t.filter.offset, message: /filter block: block checksum mismatch/ },
      { name: 'point index', damage: (d) => flipByte(victimTable(d), t.pointIndex.offset + (t.pointIndex.size >> 1)), file: t.name, offset: t.pointIndex.offset, message: /point index: block checksum mismatch/ },
      { name: 'index block', damage: (d) => flipByte(victimTable(d), t.index.offset + (t.index.size >> 1)), file: t.name, offset: t.index.offset, message: /index block: block checksum mismatch/ },
      { name: 'footer', damage: (d) => flipByte(victimTable(d), t.footerOffset + 5), file: t.name, offset: t.footerOffset, message: /footer: footer checksum mismatch/ },
      { name: 'missing table', damage: (d) => fs.rmSync(victimTable(d)), file: t.name, message: /missing: the manifest names it/ },
      {
        name: 'table lost its last byte',
        damage: (d) => fs.truncateSync(victimTable(d), fs.statSync(victimTable(d)).size - 1),
        file: t.name,
        message: /the file is \d+ bytes, the manifest says \d+/,
      },
      { name: 'CURRENT names a missing manifest', damage: (d) => fs.writeFileSync(path.join(d, 'CURRENT'), 'MANIFEST-999999\n'), file: 'CURRENT', message: /MANIFEST-999999, which does not exist/ },
      {
        name: 'manifest record followed by intact records',
        damage: (d) => flipByte(currentManifest(d), manifestStarts[1] + 12),
        file: path.basename(currentManifest(dir0)),
        offset: manifestStarts[1],
        message: /damaged record\(s\).*followed by intact records/,
      },
      {
        name: 'complete last manifest record with a bad checksum',
        damage: (d) => flipByte(currentManifest(d), manifestStarts[manifestStarts.length - 1] + 14),
        file: path.basename(currentManifest(dir0)),
        offset: manifestStarts[manifestStarts.length - 1],
        message: /last record is complete but its checksum does not match/,
      },
      {
        name: 'WAL record damaged in the middle, intact records after it',
        damage: (d) => flipByte(path.join(d, path.basename(wal)), (walRecs[5].start + 12 + walRecs[5].end) >> 1),
        file: path.basename(wal),
        offset: walRecs[5].start,
        message: /damaged record\(s\).*followed by intact records/,
        text: true,
      },
    ]
    const results = await Promise.all(
      cases.map(async (c) => {
        const dir = copyOf(levelsTemplate)
        c.damage(dir)
        const before = hashTree(dir)
        const [json, text] = await Promise.all([strataJson('check', dir), c.text ? strata('check', dir) : undefined])
        return { c, json, text, unchanged: JSON.stringify(hashTree(dir)) === JSON.stringify(before) }
      }),
    )
    for (const { c, json, text, unchanged } of results) {
      const label = `${c.name}: ${json.stdout}`
      expect(json.code, label).toBe(1)
      expect(json.doc.ok, label).toBe(false)
      const hit = json.doc.problems.find((p: { file?: string; offset?: number; message: string }) => p.file === c.file && c.message.test(p.message) && (c.offset === undefined || p.offset === c.offset))
      expect(hit, label).toBeDefined()
      expect(unchanged, label).toBe(true)
      // The text names the same file and offset.
      if (text === undefined) continue
      expect(text.code, c.name).toBe(1)
      expect(text.stdout, c.name).toContain(c.offset === undefined ? `error: ${c.file}: ` : `error: ${c.file} at offset ${c.offset}: `)
      expect(text.stdout, c.name).toMatch(/result: DAMAGED/)
    }
  })

  it('reports every damaged block of a table, not only the first', async () => {
    const dir = copyOf(levelsTemplate)
    const t = bigTable(dir)
    const victims = [t.dataBlocks[0], t.dataBlocks[t.dataBlocks.length - 1]]
    for (const b of victims) flipByte(t.file, b.offset + 10)
    flipByte(t.file, t.filter.offset + 20)
    const { code, doc } = await strataJson('check', dir)
    expect(code).toBe(1)
    const offsets = doc.problems.filter((p: { file: string }) => p.file === t.name).map((p: { offset: number }) => p.offset)
    expect(offsets).toEqual(expect.arrayContaining([...victims.map((b) => b.offset), t.filter.offset]))
  })

  it('a torn tail in the last WAL is a warning: exit 0', async () => {
    const dir = copyOf(levelsTemplate)
    const wal = filesEnding(dir, '.log')[0]
    const recs = parseWal(wal)
    const last = recs[recs.length - 1]
    fs.truncateSync(wal, last.start + 20)
    const [json, text] = await Promise.all([strataJson('check', dir), strata('check', dir)])
    expect(json.code, json.stdout).toBe(0)
    expect(json.doc.ok).toBe(true)
    expect(json.doc.warnings).toEqual([expect.objectContaining({ file: path.basename(wal), offset: last.start, message: expect.stringMatching(/torn tail.*what a crash leaves/) })])
    expect(json.doc.wals[0].records).toBe(recs.length - 1)
    expect(text.code).toBe(0)
    expect(text.stdout).toContain(`warning: ${path.basename(wal)} at offset ${last.start}: `)
    expect(text.stdout).toMatch(/result: OK: 0 problems, 1 warning/)
  })

  it('works while a process (this one) has the database open, writing, flushing and compacting', async () => {
    const dir = copyOf(levelsTemplate)
    const db = await open(dir, { memtableBytes: 128 * 1024, levelBaseBytes: 256 * 1024, levelSizeMultiplier: 4, targetTableBytes: 32 * 1024 })
    let stop = false
    let written = 0
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        await db.put(keyOf((i * 37) % 6000), valueOf(i, 3))
        written++
        if (i % 200 === 0) await new Promise((r) => setTimeout(r, 5))
      }
    })()
    try {
      for (let round = 0; round < 2; round++) {
        const { code, doc, stderr } = await strataJson('check', dir)
        expect(code, JSON.stringify(doc.problems) + stderr).toBe(0)
        expect(doc.ok).toBe(true)
        expect(doc.lock?.pid).toBe(process.pid)
      }
    } finally {
      stop = true
      await writer
      await db.close()
    }
    expect(written).toBeGreaterThan(1000)
    const after = await strata('check', dir)
    expect(after.code, after.stdout).toBe(0)
  })
})

// ---- strata dump ----------------------------------------------------------------------------

describe('strata dump', () => {
  it('prints a table: footer, properties, index, blocks and entries; text and --json, --keys-only, --from/--to', async () => {
    const t = bigTable(levelsTemplate)
    const from = t.entries[10].key
    const to = t.entries[t.entries.length - 10].key
    const inRange = t.entries.filter((e) => e.key >= from && e.key <= to)
    const [text, json, ranged, rangedText] = await Promise.all([
      strata('dump', t.file),
      strataJson('dump', t.file),
      strataJson('dump', t.file, '--from', from, '--to', to, '--keys-only'),
      strata('dump', t.file, '--from', from, '--to', from, '--keys-only'),
    ])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain(`${t.name}: table, ${fs.statSync(t.file).size.toLocaleString('en-US')} bytes, format version 3`)
    expect(text.stdout).toContain(`filter       offset ${t.filter.offset}`)
    expect(text.stdout).toContain(`point index  offset ${t.pointIndex.offset}`)
    expect(text.stdout).toContain(`index        offset ${t.index.offset}`)
    expect(text.stdout).toContain(`footer       offset ${t.footerOffset}, 64 bytes`)
    for (const [i, b] of t.dataBlocks.entries()) expect(text.stdout).toContain(`block ${i}  offset ${b.offset}, ${b.size.toLocaleString('en-US')} bytes (+5 trailer), ${b.entries.length} entr`)
    const e0 = t.entries[0]
    expect(text.stdout).toContain(`  ${JSON.stringify(e0.key)} @${e0.seq} ${e0.kind === 1 ? `put ${JSON.stringify(e0.value)}` : 'delete'}`)

    expect(json.code).toBe(0)
    const doc = json.doc
    expect(doc).toMatchObject({ file: t.name, type: 'table', formatVersion: 3, dataBlocks: t.dataBlocks.length, footer: { entryCount: t.entries.length, offset: t.footerOffset } })
    expect(doc.footer.filter).toEqual(t.filter)
    expect(doc.footer.pointIndex).toEqual(t.pointIndex)
    expect(doc.footer.index).toEqual(t.index)
    expect(doc.smallest).toEqual({ key: t.entries[0].key, keyEncoding: 'utf8', sequence: t.entries[0].seq })
    expect(doc.index.map((e: Region) => ({ offset: e.offset, size: e.size }))).toEqual(t.dataBlocks.map((b) => ({ offset: b.offset, size: b.size })))
    const entries = doc.blocks.flatMap((b: { entries: unknown[] }) => b.entries)
    expect(entries).toEqual(
      t.entries.map((e) =>
        e.kind === 1
          ? { key: e.key, keyEncoding: 'utf8', sequence: e.seq, kind: 'put', value: e.value, valueEncoding: 'utf8' }
          : { key: e.key, keyEncoding: 'utf8', sequence: e.seq, kind: 'delete' },
      ),
    )
    expect(doc.problems).toEqual([])

    const rangedEntries = ranged.doc.blocks.flatMap((b: { entries: Array<{ key: string }> }) => b.entries)
    expect(rangedEntries.map((e: { key: string }) => e.key)).toEqual(inRange.map((e) => e.key))
    expect(rangedEntries.every((e: object) => !('value' in e))).toBe(true)
    expect(rangedEntries.filter((e: { kind: string }) => e.kind === 'put').length).toBeGreaterThan(0)
    expect(rangedText.code).toBe(0)
    expect(rangedText.stdout).toMatch(new RegExp(`^  ${JSON.stringify(from).replace(/[/]/g, '\\/')} @\\d+ (put|delete)$`, 'm'))
    expect(rangedText.stdout).not.toMatch(/ put "/)
  })

  it('prints a WAL: every record with offset, first sequence, entry count and entries; --from/--to, hex for binary keys', async () => {
    const wal = filesEnding(walTemplate, '.log')[0]
    const [text, json, ranged] = await Promise.all([strata('dump', wal), strataJson('dump', wal), strataJson('dump', wal, '--from', 'batch/', '--to', 'batch/z', '--keys-only')])
    expect(text.code, text.stderr).toBe(0)
    for (const r of walRecords) expect(text.stdout).toContain(`record at offset ${r.start}: ${(r.end - r.start).toLocaleString('en-US')} bytes`)
    expect(text.stdout).toContain(`sequences ${walRecords[BATCH_RECORD].firstSequence}..${walRecords[BATCH_RECORD].firstSequence + 2} (3 entries)`)
    const b = walRecords[BATCH_RECORD].firstSequence
    // The batch is one write: one "batch" line over its three ops, then the ops.
    expect(text.stdout).toContain(`  batch ${b}..${b + 2} (3 ops)\n    "batch/x" @${b} put "bx"\n    "w/03" @${b + 1} delete\n`)
    expect(json.doc.records).toHaveLength(walRecords.length)
    json.doc.records.forEach((r: { offset: number; firstSequence: number; entryCount: number; entries: Array<{ key: string; value?: string; kind: string; sequence: number }> }, i: number) => {
      const want = walRecords[i]
      expect(r.offset).toBe(want.start)
      expect(r.firstSequence).toBe(want.firstSequence)
      expect(r.entryCount).toBe(want.ops.length)
      expect(r.entries.map((e) => [e.key, e.kind === 'put' ? e.value : null])).toEqual(want.ops)
      expect(r.entries.map((e) => e.sequence)).toEqual(want.ops.map((_, j) => want.firstSequence + j))
      // Each record of this WAL holds one write: its last op ends the batch.
      expect((r as unknown as { batches: number[][] }).batches).toEqual([[want.firstSequence, want.firstSequence + want.ops.length - 1]])
    })
    expect(ranged.code).toBe(0)
    expect(ranged.doc.records).toHaveLength(1)
    expect(ranged.doc.records[0].entries).toEqual([
      { key: 'batch/x', keyEncoding: 'utf8', sequence: walRecords[BATCH_RECORD].firstSequence, kind: 'put', batchEnd: false },
      { key: 'batch/y', keyEncoding: 'utf8', sequence: walRecords[BATCH_RECORD].firstSequence + 2, kind: 'put', batchEnd: true },
    ])
    // Binary keys and values print as hex; --hex forces hex for text too.
    const levelsWal = filesEnding(levelsTemplate, '.log')[0]
    const [bin, hex] = await Promise.all([strata('dump', levelsWal, '--from', '0xff007f', '--to', '0xff007f'), strata('dump', wal, '--hex', '--from', 'w/00', '--to', 'w/00')])
    expect(bin.code).toBe(0)
    expect(bin.stdout).toMatch(/^ {4}0xff007f @\d+ put 0x0001fe$/m)
    expect(hex.stdout).toMatch(new RegExp(`^    0x${Buffer.from('w/00').toString('hex')} @\\d+ put 0x${Buffer.from('value 0').toString('hex')}`, 'm'))
  })

  it('prints a manifest: every edit, text and --json', async () => {
    const manifest = currentManifest(levelsTemplate)
    const [text, json] = await Promise.all([strata('dump', manifest), strataJson('dump', manifest)])
    expect(text.code, text.stderr).toBe(0)
    const starts = recordStarts(manifest)
    for (const o of starts) expect(text.stdout).toContain(`edit at offset ${o} (`)
    expect(json.doc.edits.map((e: { offset: number }) => e.offset)).toEqual(starts)
    const tables = filesEnding(levelsTemplate, '.sst').map((f) => path.basename(f))
    expect(json.doc.state.tables.map((t: { file: string }) => t.file).sort()).toEqual(tables)
    for (const name of tables) expect(text.stdout).toMatch(new RegExp(`add +L\\d ${name}: `))
    expect(json.doc.edits[0].added.length).toBeGreaterThan(0)
    expect(json.doc.edits[0].added[0]).toMatchObject({ file: expect.stringMatching(/\.sst$/), smallest: { keyEncoding: 'utf8' } })
  })

  it('reports a damaged block and prints the rest (exit 1)', async () => {
    const dir = copyOf(levelsTemplate)
    const t = bigTable(dir)
    const b = t.dataBlocks[1]
    flipByte(t.file, b.offset + 3)
    const { code, doc } = await strataJson('dump', t.file)
    expect(code).toBe(1)
    expect(doc.problems).toEqual([expect.objectContaining({ file: t.name, offset: b.offset })])
    expect(doc.blocks.map((x: { block: number }) => x.block)).toEqual(t.dataBlocks.map((_, i) => i).filter((i) => i !== 1))
  })
})

// ---- strata repair ---------------------------------------------------------------------------

describe('strata repair', () => {
  it('salvages a table with a flipped byte in one data block: every other entry kept, newer versions winning, nothing deleted', async () => {
    const dir = copyOf(levelsTemplate)
    const levels = await tableLevels(dir)
    // A block of an L0 table: its keys have older versions in deeper levels, which must show through.
    const l0 = [...levels.entries()].filter(([, l]) => l === 0).map(([f]) => parseTable(path.join(dir, f)))
    const t = l0.sort((a, b) => b.dataBlocks.length - a.dataBlocks.length)[0]
    expect(t.dataBlocks.length).toBeGreaterThanOrEqual(3)
    const damaged = t.dataBlocks[t.dataBlocks.length >> 1]
    const damagedKeys = new Set(damaged.entries.map((e) => e.key))

    // What must survive: every table entry outside the damaged block and every WAL entry, newest version winning.
    const surviving: Array<{ key: string; seq: number; value: string | null }> = []
    for (const f of filesEnding(dir, '.sst')) {
      for (const b of parseTable(f).dataBlocks) {
        if (path.basename(f) === t.name && b.offset === damaged.offset) continue
        for (const e of b.entries) surviving.push({ key: e.key, seq: e.seq, value: e.kind === 1 ? e.value : null })
      }
    }
    for (const r of parseWal(filesEnding(dir, '.log')[0])) r.ops.forEach(([key, value], j) => surviving.push({ key, seq: r.firstSequence + j, value }))
    const expected = newestOf(surviving)
    // Only keys of the damaged block may differ from what was written, and some show an older version.
    for (const k of new Set([...expected.keys(), ...model.keys()])) {
      if (expected.get(k) !== model.get(k)) expect(damagedKeys.has(k), k).toBe(true)
    }
    expect([...damagedKeys].some((k) => expected.has(k) && expected.get(k) !== model.get(k))).toBe(true)

    flipByte(path.join(dir, t.name), damaged.offset + (damaged.size >> 1))
    const before = hashTree(dir)
    const { code, doc, stderr } = await strataJson('repair', dir)
    expect(code, stderr + JSON.stringify(doc)).toBe(0)
    expect(doc.verified).toBe(true)
    expect(doc.mode).toBe('manifest')
    const outcome = doc.files.find((f: { file: string }) => f.file === t.name)
    expect(outcome).toMatchObject({ action: 'rewritten', level: 0, blocksLost: 1, entriesLost: damaged.entries.length, movedTo: path.join('lost', t.name) })
    const j = t.dataBlocks.indexOf(damaged)
    expect(outcome.lostKeyRanges).toEqual([
      {
        after: { text: t.dataBlocks[j - 1].entries.at(-1)!.key, encoding: 'utf8' },
        upTo: { text: damaged.entries.at(-1)!.key, encoding: 'utf8' },
        before: { text: t.dataBlocks[j + 1].entries[0].key, encoding: 'utf8' },
      },
    ])
    expect(doc.lost).toMatchObject({ blocks: 1, entries: damaged.entries.length, entriesUnknown: false })
    expect(fs.existsSync(path.join(dir, 'lost', t.name))).toBe(true)
    expect(fs.existsSync(path.join(dir, t.name))).toBe(false)
    // Nothing deleted: every file that was there is still there or under lost/, byte for byte
    // (but CURRENT, which the new manifest's switch rewrites).
    const after = new Set(Object.values(hashTree(dir)))
    for (const [name, hash] of Object.entries(before)) if (name !== 'CURRENT') expect(after.has(hash), name).toBe(true)

    const got = await contentOfDir(dir)
    expect(sorted(got)).toEqual(sorted(expected))
    expect(doc.liveKeys).toBe(expected.size)
    // And the repaired directory checks clean.
    const check = await strata('check', dir)
    expect(check.code, check.stdout).toBe(0)
  })

  it('keeps the intact records of a WAL damaged in the middle, and says what was lost', async () => {
    const dir = copyOf(walTemplate)
    const wal = filesEnding(dir, '.log')[0]
    const r = walRecords[5]
    flipByte(wal, (r.start + 12 + r.end) >> 1)
    const { code, stdout, stderr } = await strata('repair', dir)
    expect(code, stdout + stderr).toBe(0)
    const kept = walRecords.reduce((n, x, i) => n + (i === 5 ? 0 : x.ops.length), 0)
    expect(stdout).toContain(`${path.basename(wal)}: converted: ${kept} entries from intact records`)
    expect(stdout).toMatch(/1 damaged range skipped \([\d,]+ bytes, entries unknown\)/)
    expect(stdout).toMatch(/lost: 0 data blocks, 1 WAL range/)
    expect(stdout).toMatch(/verify: open\(\) succeeded/)
    expect(fs.existsSync(path.join(dir, 'lost', path.basename(wal)))).toBe(true)
    expect(sorted(await contentOfDir(dir))).toEqual(sorted(walContentWithout(new Set([5]))))
  })

  it('rebuilds from the tables and WALs when CURRENT is unusable: nothing lost, newest versions and deletes kept', async () => {
    const dir = copyOf(levelsTemplate)
    fs.writeFileSync(path.join(dir, 'CURRENT'), 'garbage')
    const { code, doc, stderr } = await strataJson('repair', dir)
    expect(code, stderr).toBe(0)
    expect(doc.mode).toBe('rebuild')
    expect(doc.lost).toMatchObject({ blocks: 0, records: 0, entries: 0 })
    expect(fs.readFileSync(path.join(dir, 'lost', 'CURRENT'), 'utf8')).toBe('garbage')
    expect(sorted(await contentOfDir(dir))).toEqual(sorted(model))
  })

  it('refuses a database another process holds open (exit 1), changing nothing', async () => {
    // A new database with its writes in the WAL: nothing runs in the background that would change files.
    const dir = newDir('locked')
    const db = await open(dir)
    await db.put('k', 'v')
    try {
      const before = hashTree(dir)
      const { code, stderr } = await strata('repair', dir)
      expect(code).toBe(1)
      expect(stderr).toMatch(/^strata repair: .*locked/)
      expect(hashTree(dir)).toEqual(before)
    } finally {
      await db.close()
    }
  })
})

// ---- LZ4-compressed tables ------------------------------------------------------------------

/**
 * One table (flushed at close, LZ4 on for flushes too: l0Compression 'always') holding values of a repeated pattern
 * (their blocks are stored compressed), runs of pseudo-random hex that LZ4
 * cannot shrink by 1/8 (their blocks are stored raw), and last one 32,000-byte
 * value of a pattern (a block whose raw size takes a 3-byte varint).
 */
let lz4Template: string
let lz4Table: ParsedTable
const LZ4_KEYS = 1500
const lz4Key = (i: number): string => `lz/${String(i).padStart(5, '0')}`
const lz4Value = (i: number): string =>
  Math.floor(i / 50) % 3 === 2 ? [0, 1, 2].map((j) => createHash('sha256').update(`${i}/${j}`).digest('hex')).join('') : `pattern-${i % 5}|`.repeat(12 + (i % 9))
const LZ4_BIG_KEY = 'lz/big'

beforeAll(async () => {
  lz4Template = newDir('lz4-template')
  const db = await open(lz4Template, { compression: 'lz4', l0Compression: 'always', minBlobBytes: 1 << 20, memtableBytes: 4 << 20, autoCompaction: false, flushOnClose: true })
  for (let i = 0; i < LZ4_KEYS; i++) await db.put(lz4Key(i), lz4Value(i))
  await db.put(LZ4_BIG_KEY, 'abcdefgh'.repeat(4000))
  await db.close()
  const tables = filesEnding(lz4Template, '.sst')
  expect(tables).toHaveLength(1)
  lz4Table = parseTable(tables[0])
  expect(lz4Table.entries).toHaveLength(LZ4_KEYS + 1)
  expect(lz4Table.dataBlocks.filter((b) => b.compression === 1).length).toBeGreaterThan(10)
  expect(lz4Table.dataBlocks.filter((b) => b.compression === 0).length).toBeGreaterThan(1)
})

/** `1,234`, as the tools print counts. */
const fmt = (n: number): string => n.toLocaleString('en-US')
/** As the tools print a size: `812 B`, `4.0 KiB`, `1.2 MiB`. */
const sizeText = (n: number): string => (n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`)
/** How far data compressed: raw / stored, to 3 decimals (as the tools' JSON gives it). */
const ratioOf = (stored: number, raw: number): number => Math.round((raw / stored) * 1000) / 1000

/** The index of a compressed data block in the middle of the LZ4 table. */
function middleCompressedBlock(): number {
  const t = lz4Table
  const candidates = t.dataBlocks.map((b, i) => ({ b, i })).filter(({ b, i }) => b.compression === 1 && i > 0 && i < t.dataBlocks.length - 1)
  return candidates[candidates.length >> 1].i
}

/** Sets the match offset of the first sequence of an LZ4 block (stored at `r`) to 65535: past the start of the output. */
function breakFirstMatchOffset(file: string, r: Region): void {
  const buf = fs.readFileSync(file)
  const stored = buf.subarray(r.offset, r.offset + r.size)
  const at = { o: 0 }
  readVarint(stored, at) // rawLength
  const token = stored[at.o++]
  let literals = token >>> 4
  if (literals === 15) {
    let b: number
    do {
      b = stored[at.o++]
      literals += b
    } while (b === 255)
  }
  at.o += literals
  expect(at.o + 2, 'the first sequence has a match').toBeLessThan(stored.length)
  expect(literals).toBeLessThan(65535)
  stored[at.o] = 0xff
  stored[at.o + 1] = 0xff
  fs.writeFileSync(file, buf)
  resealBlock(file, r)
}

/** Runs `strata repair` on `dir` and checks the damaged LZ4 table was rewritten with every entry but those of block `lost`. */
async function expectSalvagedWithout(dir: string, lost: number, label: string): Promise<void> {
  const t = lz4Table
  const { code, doc, stderr } = await strataJson('repair', dir)
  expect(code, `${label}: ${stderr}${JSON.stringify(doc)}`).toBe(0)
  expect(doc.verified, label).toBe(true)
  const outcome = doc.files.find((f: { file: string }) => f.file === t.name)
  expect(outcome, label).toMatchObject({ action: 'rewritten', blocksLost: 1, movedTo: path.join('lost', t.name) })
  const kept = outcome.newTables.map((n: string) => parseTable(path.join(dir, n)))
  // Every entry of every other block, as the independent parse of the undamaged table reads them.
  expect(kept.flatMap((x: ParsedTable) => x.entries), label).toEqual(t.dataBlocks.filter((_, i) => i !== lost).flatMap((b) => b.entries))
  // The new table is written compressed too.
  expect(kept.some((x: ParsedTable) => x.dataBlocks.some((b) => b.compression === 1)), label).toBe(true)
  const check = await strata('check', dir)
  expect(check.code, `${label}: ${check.stdout}`).toBe(0)
}

describe('LZ4-compressed tables', () => {
  it('dump shows each data block\'s compression with its stored and raw sizes, and the totals; check passes and reports the ratio; both as an independent parse reads the table', async () => {
    const t = lz4Table
    const stored = t.dataBlocks.reduce((n, b) => n + b.size, 0)
    const raw = t.dataBlocks.reduce((n, b) => n + b.rawSize, 0)
    const compressed = t.dataBlocks.filter((b) => b.compression === 1).length
    const ratio = ratioOf(stored, raw)
    expect(ratio).toBeGreaterThan(1.5)
    const [text, json, checkText, checkJson] = await Promise.all([strata('dump', t.file, '--keys-only'), strataJson('dump', t.file), strata('check', lz4Template), strataJson('check', lz4Template)])

    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain(`  data blocks  ${fmt(t.dataBlocks.length)}, ${fmt(stored + 5 * t.dataBlocks.length)} bytes with trailers\n`)
    expect(text.stdout).toContain(`  data bytes   ${fmt(stored)} stored, ${fmt(raw)} raw (ratio ${ratio.toFixed(2)}), ${compressed} of ${t.dataBlocks.length} blocks LZ4-compressed\n`)
    for (const [i, b] of t.dataBlocks.entries()) {
      const how = b.compression === 1 ? `lz4: ${fmt(b.size)} bytes stored, ${fmt(b.rawSize)} raw` : 'none'
      expect(text.stdout).toContain(`\nblock ${i}  offset ${b.offset}, ${fmt(b.size)} bytes (+5 trailer), ${b.entries.length} entr${b.entries.length === 1 ? 'y' : 'ies'}, compression ${how}\n`)
    }

    expect(json.code).toBe(0)
    expect(json.doc).toMatchObject({ dataBlocks: t.dataBlocks.length, compressedBlocks: compressed, storedDataBytes: stored, rawDataBytes: raw, compressionRatio: ratio, problems: [] })
    expect(json.doc.blocks.map((b: Record<string, unknown>) => ({ offset: b.offset, size: b.size, compression: b.compression, rawSize: b.rawSize, entryCount: b.entryCount }))).toEqual(
      t.dataBlocks.map((b) => ({ offset: b.offset, size: b.size, compression: b.compression === 1 ? 'lz4' : 'none', rawSize: b.rawSize, entryCount: b.entries.length })),
    )
    const values = json.doc.blocks.flatMap((b: { entries: Array<{ key: string; value: string }> }) => b.entries.map((e) => [e.key, e.value]))
    expect(values).toEqual(t.entries.map((e) => [e.key, e.value]))

    expect(checkText.code, checkText.stdout).toBe(0)
    expect(checkText.stdout).toContain(`  blocks    ${fmt(t.dataBlocks.length)} data blocks, ${compressed} LZ4-compressed: ${sizeText(stored)} stored, ${sizeText(raw)} raw (ratio ${ratio.toFixed(2)})\n`)
    expect(checkJson.doc.ok).toBe(true)
    const perTable = { dataBlocks: t.dataBlocks.length, compressedBlocks: compressed, storedDataBytes: stored, rawDataBytes: raw, compressionRatio: ratio }
    expect(checkJson.doc.tables).toEqual([expect.objectContaining({ file: t.name, entries: t.entries.length, ok: true, ...perTable })])
    expect(checkJson.doc.blocks).toEqual(perTable)
  })

  it('a flipped byte in a compressed block: check reports it, repair keeps every other block\'s entries, through the index and by scanning when the footer is damaged too', async () => {
    const t = lz4Table
    const j = middleCompressedBlock()
    const victim = t.dataBlocks[j]
    const end = victim.offset + victim.size + 5
    const variants = [
      { name: 'index readable', footer: false, message: new RegExp(`^data block ${j}: block checksum mismatch$`) },
      { name: 'footer damaged: blocks found by scanning', footer: true, message: new RegExp(`^no verifiable data block in bytes ${victim.offset}\\.\\.${end}$`) },
    ]
    await Promise.all(
      variants.map(async (v) => {
        const dir = copyOf(lz4Template)
        const file = path.join(dir, t.name)
        flipByte(file, victim.offset + (victim.size >> 1))
        if (v.footer) flipByte(file, t.footerOffset + 5)
        const [check, dump] = await Promise.all([strataJson('check', dir), strataJson('dump', file)])
        expect(check.code, v.name).toBe(1)
        expect(check.doc.problems, v.name).toEqual(expect.arrayContaining([expect.objectContaining({ file: t.name, offset: victim.offset, message: expect.stringMatching(v.message) })]))
        // Every other block read: the totals leave out the damaged one alone.
        const others = t.dataBlocks.filter((_, i) => i !== j)
        expect(check.doc.tables[0], v.name).toMatchObject({
          entries: others.reduce((n, b) => n + b.entries.length, 0),
          compressedBlocks: others.filter((b) => b.compression === 1).length,
          storedDataBytes: others.reduce((n, b) => n + b.size, 0),
          rawDataBytes: others.reduce((n, b) => n + b.rawSize, 0),
        })
        expect(dump.code, v.name).toBe(1)
        expect(dump.doc.problems, v.name).toEqual(expect.arrayContaining([expect.objectContaining({ file: t.name, offset: victim.offset })]))
        expect(
          dump.doc.blocks.map((b: Record<string, unknown>) => ({ offset: b.offset, size: b.size, compression: b.compression, rawSize: b.rawSize })),
          v.name,
        ).toEqual(others.map((b) => ({ offset: b.offset, size: b.size, compression: b.compression === 1 ? 'lz4' : 'none', rawSize: b.rawSize })))
        await expectSalvagedWithout(dir, j, v.name)
      }),
    )
  })

  it('a compressed block resealed with a valid checksum but LZ4 data that does not decode is corruption: check reports it, dump and repair skip it', async () => {
    const t = lz4Table
    const j = middleCompressedBlock()
    const big = t.dataBlocks.findIndex((b) => b.entries.some((e) => e.key === LZ4_BIG_KEY))
    const bigBlock = t.dataBlocks[big]
    expect(bigBlock.compression).toBe(1)
    // Its raw size is a 3-byte varint: the largest it can claim is 2,097,151 bytes, more than 255 × its stored size.
    const bigHeader = fs.readFileSync(t.file).subarray(bigBlock.offset, bigBlock.offset + 3)
    expect([bigHeader[0] >= 0x80, bigHeader[1] >= 0x80, bigHeader[2] < 0x80]).toEqual([true, true, true])
    expect(2_097_151).toBeGreaterThan(255 * bigBlock.size)
    const claimHuge = (file: string): void => {
      const buf = fs.readFileSync(file)
      buf.set([0xff, 0xff, 0x7f], bigBlock.offset)
      fs.writeFileSync(file, buf)
      resealBlock(file, bigBlock)
    }
    const variants = [
      { name: 'match offset before the output', block: j, damage: (f: string) => breakFirstMatchOffset(f, t.dataBlocks[j]), message: new RegExp(`^data block ${j}: block does not decompress: lz4: bad match offset$`) },
      { name: 'huge raw length', block: big, damage: claimHuge, message: new RegExp(`^data block ${big}: block does not decompress: it claims 2097151 raw bytes, more than its ${bigBlock.size} stored bytes can hold$`) },
      {
        name: 'match offset before the output, footer damaged: blocks found by scanning',
        block: j,
        damage: (f: string) => {
          breakFirstMatchOffset(f, t.dataBlocks[j])
          flipByte(f, t.footerOffset + 5)
        },
        message: new RegExp(`^no verifiable data block in bytes ${t.dataBlocks[j].offset}\\.\\.${t.dataBlocks[j].offset + t.dataBlocks[j].size + 5} \\(its checksum matches, but block does not decompress: lz4: bad match offset\\)$`),
      },
    ]
    await Promise.all(
      variants.map(async (v) => {
        const dir = copyOf(lz4Template)
        const file = path.join(dir, t.name)
        v.damage(file)
        const b = t.dataBlocks[v.block]
        const [check, checkText, dump] = await Promise.all([strataJson('check', dir), strata('check', dir), strataJson('dump', file)])
        expect(check.code, v.name).toBe(1)
        expect(check.doc.problems, v.name).toEqual(expect.arrayContaining([expect.objectContaining({ file: t.name, offset: b.offset, message: expect.stringMatching(v.message) })]))
        expect(checkText.stdout, v.name).toContain(`error: ${t.name} at offset ${b.offset}: `)
        expect(checkText.stdout, v.name).toMatch(/result: DAMAGED/)
        expect(dump.code, v.name).toBe(1)
        expect(dump.doc.problems, v.name).toEqual(expect.arrayContaining([expect.objectContaining({ file: t.name, offset: b.offset })]))
        expect(dump.doc.blocks.map((x: { offset: number }) => x.offset), v.name).toEqual(t.dataBlocks.filter((_, i) => i !== v.block).map((x) => x.offset))
        await expectSalvagedWithout(dir, v.block, v.name)
      }),
    )
  })
})

// ---- blob files (key-value separation) -------------------------------------------------------

/** Seed of a blob file's header, record-header and footer checksums (docs/format.md, "Blob file"). */
const BLOB_SEED = 0x424c4f42

interface BlobRec {
  recordOffset: number
  valueOffset: number
  key: string
  value: string
  checksum: number
}

/** The value checksum of a blob record and reference: the low 32 bits of XXH64(value, seed 0). */
const blobChecksum = (value: Buffer): number => Number(BigInt.asUintN(32, xx.h64Raw(value, 0n)))

/** Parses a whole blob file, checking the header, every record's checksums and the footer's totals. */
function parseBlob(file: string): { name: string; file: string; records: BlobRec[]; footerOffset: number; valueBytes: number } {
  const buf = fs.readFileSync(file)
  expect(buf.subarray(0, 8).toString('latin1')).toBe('STRBLOB1')
  expect(buf.readUInt32LE(8)).toBe(1)
  expect(buf.readUInt32LE(12)).toBe(xx.h32Raw(buf.subarray(0, 12), BLOB_SEED) >>> 0)
  const f = buf.length - 32
  expect(buf.subarray(f + 24, f + 32).toString('latin1')).toBe('STRBLOB1')
  expect(buf.readUInt32LE(f + 20)).toBe(xx.h32Raw(buf.subarray(f, f + 20), BLOB_SEED) >>> 0)
  const records: BlobRec[] = []
  let valueBytes = 0
  for (let o = 16; o < f; ) {
    const kl = buf.readUInt32LE(o)
    const vl = buf.readUInt32LE(o + 4)
    const key = buf.subarray(o + 16, o + 16 + kl)
    expect(buf.readUInt32LE(o + 12)).toBe(xx.h32Raw(Buffer.concat([buf.subarray(o, o + 12), key]), BLOB_SEED) >>> 0)
    const valueOffset = o + 16 + kl
    const value = buf.subarray(valueOffset, valueOffset + vl)
    expect(buf.readUInt32LE(o + 8)).toBe(blobChecksum(value))
    records.push({ recordOffset: o, valueOffset, key: key.toString('latin1'), value: value.toString('latin1'), checksum: buf.readUInt32LE(o + 8) })
    valueBytes += vl
    o = valueOffset + vl
  }
  expect(Number(buf.readBigUInt64LE(f))).toBe(records.length)
  expect(Number(buf.readBigUInt64LE(f + 8))).toBe(valueBytes)
  return { name: path.basename(file), file, records, footerOffset: f, valueBytes }
}

/** Decodes a blob reference (the value of a table entry of kind 3): varint file, varint offset, varint length, u32 checksum. */
function parseReference(value: string): { blobFile: string; blobOffset: number; blobLength: number; blobChecksum: number } {
  const b = Buffer.from(value, 'latin1')
  const at = { o: 0 }
  const file = readVarint(b, at)
  const blobOffset = readVarint(b, at)
  const blobLength = readVarint(b, at)
  expect(at.o + 4).toBe(b.length)
  return { blobFile: `${String(file).padStart(6, '0')}.blob`, blobOffset, blobLength, blobChecksum: b.readUInt32LE(at.o) }
}

/**
 * A database whose large values (>= 64 bytes) are in blob files: a first
 * session writes, overwrites and deletes keys `b/…` and compacts twice (the
 * versions the second compaction drops make garbage in the blob files); a
 * second one (no compaction) writes keys `n/…`, found only there, into L0
 * tables with blob files of their own, and leaves its last writes in the WAL.
 */
let blobTemplate: string
const blobModel = new Map<string, string>()
const BLOB_OPTIONS = { minBlobBytes: 64, memtableBytes: 16 * 1024, blobGarbagePercent: 100, autoCompaction: false, flushOnClose: false }

beforeAll(async () => {
  blobTemplate = newDir('blob-template')
  let db = await open(blobTemplate, BLOB_OPTIONS)
  const big = (tag: string, i: number): string => `${tag}-${i}-`.padEnd(70 + (i % 60), 'q')
  const put = async (k: string, v: string): Promise<void> => {
    await db.put(k, v)
    blobModel.set(k, v)
  }
  for (let i = 0; i < 200; i++) await put(`b/${String(i).padStart(3, '0')}`, i % 3 === 0 ? `small-${i}` : big('one', i))
  await db.compactRange()
  for (let i = 0; i < 200; i += 5) await put(`b/${String(i).padStart(3, '0')}`, big('two', i))
  for (let i = 1; i < 200; i += 17) {
    await db.delete(`b/${String(i).padStart(3, '0')}`)
    blobModel.delete(`b/${String(i).padStart(3, '0')}`)
  }
  await db.compactRange()
  await db.close()
  db = await open(blobTemplate, BLOB_OPTIONS)
  for (let i = 0; i < 150; i++) await put(`n/${String(i).padStart(3, '0')}`, big('new', i))
  await db.close()
  expect(filesEnding(blobTemplate, '.blob').length).toBeGreaterThanOrEqual(3)
})

/** The tables of a directory, with the references of their kind-3 entries. */
function blobEntriesOf(dir: string): Array<{ table: ParsedTable; entry: BlockEntry; ref: ReturnType<typeof parseReference> }> {
  return filesEnding(dir, '.sst').flatMap((f) => {
    const table = parseTable(f)
    return table.entries.filter((e) => e.kind === 3).map((entry) => ({ table, entry, ref: parseReference(entry.value) }))
  })
}

describe('blob files (key-value separation)', () => {
  it('check verifies the blob files and every reference, and counts live and garbage bytes', async () => {
    const dir = copyOf(blobTemplate)
    const before = hashTree(dir)
    const [text, json] = await Promise.all([strata('check', dir), strataJson('check', dir)])
    expect(text.code, text.stdout + text.stderr).toBe(0)
    expect(text.stdout).toMatch(/^ {2}blobs {5}\d+ blob files, [\d.]+ [KM]?i?B: [\d,]+ live values, [\d.]+ [KM]?i?B live, [\d.]+ [KM]?i?B garbage; the tables read hold [\d,]+ references into them$/m)
    expect(text.stdout).toMatch(/result: OK: 0 problems, 0 warnings/)
    const doc = json.doc
    expect(doc.problems).toEqual([])
    const blobs = filesEnding(dir, '.blob').map(parseBlob)
    expect(doc.blobFiles.map((b: { file: string }) => b.file)).toEqual(blobs.map((b) => b.name))
    for (const b of blobs) {
      const got = doc.blobFiles.find((x: { file: string }) => x.file === b.name)
      expect(got).toMatchObject({ bytes: fs.statSync(b.file).size, valueCount: b.records.length, valueBytes: b.valueBytes, ok: true })
    }
    // Every reference names a record of a blob file; the live values are exactly those referenced.
    const refs = blobEntriesOf(dir)
    for (const { ref } of refs) {
      const rec = blobs.find((b) => b.name === ref.blobFile)!.records.find((r) => r.valueOffset === ref.blobOffset)!
      expect(rec.value.length).toBe(ref.blobLength)
      expect(rec.checksum).toBe(ref.blobChecksum)
    }
    expect(doc.blobFiles.reduce((n: number, b: { references: number }) => n + b.references, 0)).toBe(refs.length)
    for (const b of doc.blobFiles) expect(b.references).toBe(b.valueCount - b.garbageCount)
    expect(doc.blobFiles.some((b: { garbageCount: number }) => b.garbageCount > 0)).toBe(true)
    expect(hashTree(dir)).toEqual(before)
  })

  it('check reports a flipped byte in a blob value, a missing blob file, and a .blob file the manifest does not name', async () => {
    const refs = blobEntriesOf(blobTemplate)
    const target = refs.find((r) => r.entry.key.startsWith('n/'))!.ref
    const other = refs.find((r) => r.ref.blobFile !== target.blobFile)!
    const flipped = copyOf(blobTemplate)
    flipByte(path.join(flipped, target.blobFile), target.blobOffset + (target.blobLength >> 1))
    fs.copyFileSync(path.join(flipped, target.blobFile), path.join(flipped, '999999.blob'))
    const missing = copyOf(blobTemplate)
    fs.rmSync(path.join(missing, other.ref.blobFile))
    const [text, json, gone] = await Promise.all([strata('check', flipped), strataJson('check', flipped), strataJson('check', missing)])
    expect(text.code).toBe(1)
    expect(text.stdout).toContain(`error: ${target.blobFile} at offset ${target.blobOffset}: blob value checksum mismatch`)
    expect(text.stdout).toContain('warning: 999999.blob: not named by the manifest')
    expect(text.stdout).toMatch(/result: DAMAGED: 1 problem, 1 warning/)
    expect(json.code).toBe(1)
    expect(json.doc.problems).toEqual([{ file: target.blobFile, offset: target.blobOffset, message: 'blob value checksum mismatch' }])
    expect(json.doc.blobFiles.find((b: { file: string }) => b.file === target.blobFile).ok).toBe(false)
    expect(gone.code).toBe(1)
    expect(gone.doc.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ file: other.ref.blobFile, message: expect.stringMatching(/^missing: the manifest names it/) }),
        expect.objectContaining({ file: other.table.name, message: expect.stringMatching(new RegExp(`reference values? in ${other.ref.blobFile}, which is missing$`)) }),
      ]),
    )
  })

  it('dump prints a blob file (text, --json, --keys-only, told by its magic) and a table\'s kind-3 entries as references', async () => {
    const blob = filesEnding(blobTemplate, '.blob').map(parseBlob).sort((a, b) => b.records.length - a.records.length)[0]
    const unnamed = path.join(newDir('unnamed'), 'values.bin')
    fs.copyFileSync(blob.file, unnamed)
    const withRefs = blobEntriesOf(blobTemplate)
    const table = withRefs[0].table
    const [text, json, keysOnly, byMagic, tableText, tableJson, manifestJson] = await Promise.all([
      strata('dump', blob.file),
      strataJson('dump', blob.file),
      strataJson('dump', blob.file, '--keys-only'),
      strataJson('dump', unnamed),
      strata('dump', table.file),
      strataJson('dump', table.file),
      strataJson('dump', currentManifest(blobTemplate)),
    ])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain(`${blob.name}: blob file, ${fs.statSync(blob.file).size.toLocaleString('en-US')} bytes, format version 1`)
    const r0 = blob.records[0]
    expect(text.stdout).toContain(
      `  record at ${r0.recordOffset}: ${JSON.stringify(r0.key)} value offset ${r0.valueOffset}, ${r0.value.length} bytes, checksum 0x${r0.checksum.toString(16).padStart(8, '0')} ${JSON.stringify(r0.value)}\n`,
    )
    expect(text.stdout).toContain(`${blob.records.length} records, ${blob.valueBytes.toLocaleString('en-US')} value bytes`)
    expect(json.doc).toMatchObject({ file: blob.name, type: 'blob', formatVersion: 1, footer: { offset: blob.footerOffset, recordCount: blob.records.length, valueBytes: blob.valueBytes }, problems: [] })
    expect(json.doc.records).toEqual(
      blob.records.map((r) => ({ offset: r.recordOffset, valueOffset: r.valueOffset, key: r.key, keyEncoding: 'utf8', valueLength: r.value.length, checksum: r.checksum, checksumOk: true, value: r.value, valueEncoding: 'utf8' })),
    )
    expect(keysOnly.doc.records.every((r: object) => !('value' in r))).toBe(true)
    expect(keysOnly.doc.records.map((r: { key: string }) => r.key)).toEqual(blob.records.map((r) => r.key))
    expect(byMagic.code).toBe(0)
    expect(byMagic.doc.type).toBe('blob')

    expect(tableText.code, tableText.stderr).toBe(0)
    const e = withRefs[0]
    expect(tableText.stdout).toContain(
      `  ${JSON.stringify(e.entry.key)} @${e.entry.seq} blob ${e.ref.blobFile} offset ${e.ref.blobOffset}, ${e.ref.blobLength} bytes, checksum 0x${e.ref.blobChecksum.toString(16).padStart(8, '0')}\n`,
    )
    const entries = tableJson.doc.blocks.flatMap((b: { entries: unknown[] }) => b.entries)
    expect(entries).toEqual(
      table.entries.map((x) =>
        x.kind === 3
          ? { key: x.key, keyEncoding: 'utf8', sequence: x.seq, kind: 'blob', ...parseReference(x.value) }
          : x.kind === 1
            ? { key: x.key, keyEncoding: 'utf8', sequence: x.seq, kind: 'put', value: x.value, valueEncoding: 'utf8' }
            : { key: x.key, keyEncoding: 'utf8', sequence: x.seq, kind: 'delete' },
      ),
    )
    expect(entries.some((x: { kind: string }) => x.kind === 'blob')).toBe(true)

    // The manifest: blob files added, garbage, each table's blob files; the state's blob files.
    expect(manifestJson.code).toBe(0)
    const edits = manifestJson.doc.edits
    expect(edits.some((x: { blobsAdded: unknown[] }) => x.blobsAdded.length > 0)).toBe(true)
    expect(edits.some((x: { blobGarbage: unknown[] }) => x.blobGarbage.length > 0)).toBe(true)
    expect(manifestJson.doc.state.blobFiles.map((b: { file: string }) => b.file)).toEqual(filesEnding(blobTemplate, '.blob').map((f) => path.basename(f)))
    const added = new Map<string, string[]>(edits.flatMap((x: { added: Array<{ file: string; blobFiles: string[] }> }) => x.added.map((a) => [a.file, a.blobFiles])))
    expect(added.get(table.name)).toEqual([...new Set(withRefs.filter((x) => x.table.name === table.name).map((x) => x.ref.blobFile))].sort())
  })

  it('repair without CURRENT lists every referenced blob file, and every large value reads back', async () => {
    const dir = copyOf(blobTemplate)
    fs.rmSync(path.join(dir, 'CURRENT'))
    const blobs = filesEnding(dir, '.blob').map((f) => path.basename(f))
    const { code, doc, stderr } = await strataJson('repair', dir)
    expect(code, stderr + JSON.stringify(doc)).toBe(0)
    expect(doc.mode).toBe('rebuild')
    expect(doc.verified).toBe(true)
    expect(doc.lost).toMatchObject({ blocks: 0, records: 0, blobValues: 0, entries: 0 })
    expect(doc.result.blobFiles.map((b: { file: string }) => b.file)).toEqual(blobs)
    expect(filesEnding(dir, '.blob').map((f) => path.basename(f))).toEqual(blobs)
    // Garbage: the values no kept table references.
    const referenced = blobEntriesOf(dir)
    for (const b of doc.result.blobFiles) expect(b.valueCount - b.garbageCount).toBe(referenced.filter((r) => r.ref.blobFile === b.file).length)
    expect(sorted(await contentOfDir(dir))).toEqual(sorted(blobModel))
    const check = await strataJson('check', dir)
    expect(check.code, JSON.stringify(check.doc.problems)).toBe(0)
    expect(check.doc.warnings).toEqual([])
  })

  it('repair copies the readable values of a damaged blob file and drops the entry whose value is damaged', async () => {
    const dir = copyOf(blobTemplate)
    const target = blobEntriesOf(dir).find((r) => r.entry.key.startsWith('n/'))!
    flipByte(path.join(dir, target.ref.blobFile), target.ref.blobOffset + 3)
    const { code, doc, stderr } = await strataJson('repair', dir)
    expect(code, stderr + JSON.stringify(doc)).toBe(0)
    expect(doc.mode).toBe('manifest')
    expect(doc.lost).toMatchObject({ blobValues: 1, entries: 1 })
    const damaged = doc.files.find((f: { file: string }) => f.file === target.ref.blobFile)
    expect(damaged).toMatchObject({ action: 'rewritten', blobValuesLost: 1, movedTo: path.join('lost', target.ref.blobFile) })
    expect(doc.result.blobFiles.map((b: { file: string }) => b.file)).toContain(damaged.newBlobFile)
    expect(doc.files.find((f: { file: string }) => f.file === target.table.name)).toMatchObject({ action: 'rewritten', blobValuesLost: 1 })
    const expected = new Map(blobModel)
    expected.delete(target.entry.key)
    expect(sorted(await contentOfDir(dir))).toEqual(sorted(expected))
    const check = await strata('check', dir)
    expect(check.code, check.stdout).toBe(0)
  })
})

// ---- expiring entries (kinds 4 and 5) ----------------------------------------------------------

/** The clock the expiring template is written with, and a time far beyond it (and beyond any test run's clock). */
const TTL_NOW = Date.UTC(2030, 0, 1)
const LATER = Date.UTC(2100, 0, 1)
/** Uncompressed blocks: a test below edits entry bytes inside a block in place. */
const TTL_OPTIONS = { minBlobBytes: 64, memtableBytes: 8 * 1024, autoCompaction: false, flushOnClose: false, clock: () => TTL_NOW, compression: 'none' as const }

/**
 * A database of expiring puts: keys `t/…` expire far in the future, keys
 * `x/…` had expired when they were written (by the template's clock), keys
 * `p/…` never expire; large values (>= 64 bytes) go to blob files, so the
 * tables hold kinds 1, 4 and 5. A second session leaves expiring puts (a
 * single put, and a batch) in the WAL. `ttlModel`: key → value and expiry.
 */
let ttlTemplate: string
const ttlModel = new Map<string, { value: string; expiresAt?: number }>()

beforeAll(async () => {
  ttlTemplate = newDir('ttl-template')
  let db = await open(ttlTemplate, TTL_OPTIONS)
  const big = (tag: string, i: number): string => `${tag}-${i}-`.padEnd(70 + (i % 40), 'e')
  for (let i = 0; i < 90; i++) {
    const n = String(i).padStart(3, '0')
    const t = { value: i % 2 === 0 ? big('t', i) : `t-small-${i}`, expiresAt: LATER + i }
    await db.put(`t/${n}`, t.value, { expiresAt: t.expiresAt })
    ttlModel.set(`t/${n}`, t)
    const x = { value: i % 3 === 0 ? big('x', i) : `x-small-${i}`, expiresAt: TTL_NOW - 1000 }
    await db.put(`x/${n}`, x.value, { expiresAt: x.expiresAt })
    ttlModel.set(`x/${n}`, x)
    await db.put(`p/${n}`, `plain-${i}`)
    ttlModel.set(`p/${n}`, { value: `plain-${i}` })
  }
  await db.close()
  db = await open(ttlTemplate, TTL_OPTIONS)
  await db.put('w/small', 'ws', { ttlMs: 60_000 })
  ttlModel.set('w/small', { value: 'ws', expiresAt: TTL_NOW + 60_000 })
  await db.batch([
    { type: 'put', key: 'w/big', value: 'W'.repeat(100), expiresAt: LATER },
    { type: 'put', key: 'w/plain', value: 'wp' },
  ])
  ttlModel.set('w/big', { value: 'W'.repeat(100), expiresAt: LATER })
  ttlModel.set('w/plain', { value: 'wp' })
  await db.close()
  const kinds = new Set(filesEnding(ttlTemplate, '.sst').flatMap((f) => parseTable(f).entries.map((e) => e.kind)))
  expect([...kinds].sort()).toEqual([1, 4, 5])
  const wal = parseWal(filesEnding(ttlTemplate, '.log')[0])
  expect(wal.flatMap((r) => r.expiresAt).filter((e) => e !== undefined)).toEqual([TTL_NOW + 60_000, LATER])
})

/** An expiring entry's expiry time and the bytes after it (a value, or a blob reference), from a table entry's latin1 value. */
function splitExpiring(value: string): { expiresAt: number; rest: string } {
  const b = Buffer.from(value, 'latin1')
  expect(b.length).toBeGreaterThanOrEqual(8)
  return { expiresAt: Number(b.readBigUInt64LE(0)), rest: b.subarray(8).toString('latin1') }
}

/** Every key of a directory with its value (latin1) and expiry, read through getEntry with a clock before every expiry time. */
async function entriesOfDir(dir: string): Promise<Map<string, { value: string; expiresAt?: number }>> {
  const db = await open(dir, { autoCompaction: false, clock: () => 1 })
  try {
    const out = new Map<string, { value: string; expiresAt?: number }>()
    for await (const [k] of db.iterator({ values: false })) {
      const e = (await db.getEntry(k))!
      out.set(k.toString('latin1'), e.expiresAt === undefined ? { value: e.value.toString('latin1') } : { value: e.value.toString('latin1'), expiresAt: e.expiresAt })
    }
    return out
  } finally {
    await db.close()
  }
}

const sortedEntries = <T>(m: Map<string, T>): Array<[string, T]> => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

/** Entries of a block with the offset of each entry's kind byte (in the block's contents). */
function kindOffsets(contents: Buffer): Array<{ key: string; kind: number; kindOffset: number; valueLength: number }> {
  const tail = contents.readUInt32LE(contents.length - 4)
  const hashBytes = tail >= 0x8000_0000 ? 2 + 3 * contents.readUInt16LE(contents.length - 6) : 0
  const end = contents.length - 4 - hashBytes - 4 * (tail & 0x7fff_ffff)
  const keys = decodeBlock(contents)
  const out: Array<{ key: string; kind: number; kindOffset: number; valueLength: number }> = []
  const at = { o: 0 }
  for (let i = 0; at.o < end; i++) {
    readVarint(contents, at)
    const unshared = readVarint(contents, at)
    const valueLength = readVarint(contents, at)
    const kindOffset = at.o++
    readVarint(contents, at)
    at.o += unshared + valueLength
    out.push({ key: keys[i].key, kind: contents[kindOffset], kindOffset, valueLength })
  }
  return out
}

/** Rewrites the trailer checksum of a data block after its contents changed (low 32 bits of XXH64 of contents and type byte). */
function resealBlock(file: string, r: Region): void {
  const buf = fs.readFileSync(file)
  buf.writeUInt32LE(Number(BigInt.asUintN(32, xx.h64Raw(buf.subarray(r.offset, r.offset + r.size + 1), 0n))), r.offset + r.size + 1)
  fs.writeFileSync(file, buf)
}

/** Frames a WAL record payload: u32 length, u32 payload checksum, u32 header checksum, payload. */
function walFrame(payload: Buffer): Buffer {
  const head = Buffer.alloc(12)
  head.writeUInt32LE(payload.length, 0)
  head.writeUInt32LE(xx.h32Raw(payload, 0) >>> 0, 4)
  head.writeUInt32LE(xx.h32Raw(head.subarray(0, 8), 0x53545241) >>> 0, 8)
  return Buffer.concat([head, payload])
}

describe('expiring entries (kinds 4 and 5)', () => {
  it('check passes, counting kind-5 references as live blob references', async () => {
    const dir = copyOf(ttlTemplate)
    const before = hashTree(dir)
    const [text, json] = await Promise.all([strata('check', dir), strataJson('check', dir)])
    expect(text.code, text.stdout + text.stderr).toBe(0)
    expect(text.stdout).toMatch(/result: OK: 0 problems, 0 warnings/)
    expect(json.doc.problems).toEqual([])
    expect(json.doc.warnings).toEqual([])
    const tables = filesEnding(dir, '.sst').map(parseTable)
    const refs = tables.flatMap((t) => t.entries.filter((e) => e.kind === 5).map((e) => parseReference(splitExpiring(e.value).rest)))
    expect(refs.length).toBe(45 + 30)
    expect(json.doc.tables.reduce((n: number, t: { blobReferences: number }) => n + t.blobReferences, 0)).toBe(refs.length)
    for (const b of json.doc.blobFiles) {
      expect(b.references).toBe(refs.filter((r) => r.blobFile === b.file).length)
      expect(b.references).toBe(b.valueCount - b.garbageCount)
    }
    expect(json.doc.wals[0].entries).toBe(3)
    expect(hashTree(dir)).toEqual(before)
  })

  it('dump shows put-expiring and blob-expiring entries with their expiry (ms and ISO), tables and WAL, text and --json', async () => {
    const table = filesEnding(ttlTemplate, '.sst').map(parseTable).find((t) => t.entries.some((e) => e.kind === 4) && t.entries.some((e) => e.kind === 5))!
    const wal = filesEnding(ttlTemplate, '.log')[0]
    const [text, json, keysOnly, walText, walJson] = await Promise.all([strata('dump', table.file), strataJson('dump', table.file), strata('dump', table.file, '--keys-only'), strata('dump', wal), strataJson('dump', wal)])
    const iso = (ms: number): string => new Date(ms).toISOString()
    expect(text.code, text.stderr).toBe(0)
    const put = table.entries.find((e) => e.kind === 4)!
    const p = splitExpiring(put.value)
    expect(p.rest).toBe(ttlModel.get(put.key)!.value)
    expect(text.stdout).toContain(`  ${JSON.stringify(put.key)} @${put.seq} put-expiring expires ${p.expiresAt} (${iso(p.expiresAt)}) ${JSON.stringify(p.rest)}\n`)
    const blob = table.entries.find((e) => e.kind === 5)!
    const b = splitExpiring(blob.value)
    const ref = parseReference(b.rest)
    expect(text.stdout).toContain(
      `  ${JSON.stringify(blob.key)} @${blob.seq} blob-expiring expires ${b.expiresAt} (${iso(b.expiresAt)}) ${ref.blobFile} offset ${ref.blobOffset}, ${ref.blobLength} bytes, checksum 0x${ref.blobChecksum.toString(16).padStart(8, '0')}\n`,
    )
    // --keys-only: the expiry stays, the value and the reference go.
    expect(keysOnly.stdout).toContain(`  ${JSON.stringify(put.key)} @${put.seq} put-expiring expires ${p.expiresAt} (${iso(p.expiresAt)})\n`)
    expect(keysOnly.stdout).toContain(`  ${JSON.stringify(blob.key)} @${blob.seq} blob-expiring expires ${b.expiresAt} (${iso(b.expiresAt)})\n`)

    expect(json.code).toBe(0)
    expect(json.doc.blocks.flatMap((x: { entries: unknown[] }) => x.entries)).toEqual(
      table.entries.map((e) => {
        const head = { key: e.key, keyEncoding: 'utf8', sequence: e.seq }
        if (e.kind === 1) return { ...head, kind: 'put', value: e.value, valueEncoding: 'utf8' }
        const x = splitExpiring(e.value)
        expect(x.expiresAt).toBe(ttlModel.get(e.key)!.expiresAt)
        const expiry = { expiresAt: x.expiresAt, expiresAtIso: iso(x.expiresAt) }
        if (e.kind === 4) return { ...head, kind: 'put-expiring', ...expiry, value: x.rest, valueEncoding: 'utf8' }
        expect(e.kind).toBe(5)
        return { ...head, kind: 'blob-expiring', ...expiry, ...parseReference(x.rest) }
      }),
    )

    // The WAL: the single expiring put, and the batch's expiring put beside a plain one.
    const recs = parseWal(wal)
    expect(walText.code, walText.stderr).toBe(0)
    const small = TTL_NOW + 60_000
    expect(walText.stdout).toContain(`    "w/small" @${recs[0].firstSequence} put-expiring expires ${small} (${iso(small)}) "ws"\n`)
    expect(walText.stdout).toContain(`    "w/big" @${recs[1].firstSequence} put-expiring expires ${LATER} (${iso(LATER)}) ${JSON.stringify('W'.repeat(100))}\n    "w/plain" @${recs[1].firstSequence + 1} put "wp"\n`)
    expect(walJson.code).toBe(0)
    expect(walJson.doc.records.flatMap((r: { entries: unknown[] }) => r.entries)).toEqual([
      { key: 'w/small', keyEncoding: 'utf8', sequence: recs[0].firstSequence, kind: 'put-expiring', expiresAt: small, expiresAtIso: iso(small), value: 'ws', valueEncoding: 'utf8', batchEnd: true },
      { key: 'w/big', keyEncoding: 'utf8', sequence: recs[1].firstSequence, kind: 'put-expiring', expiresAt: LATER, expiresAtIso: iso(LATER), value: 'W'.repeat(100), valueEncoding: 'utf8', batchEnd: false },
      { key: 'w/plain', keyEncoding: 'utf8', sequence: recs[1].firstSequence + 1, kind: 'put', value: 'wp', valueEncoding: 'utf8', batchEnd: true },
    ])
  })

  it('repair (rebuild) keeps every expiring entry, expired or not, with its expiry and its blob file', async () => {
    const dir = copyOf(ttlTemplate)
    fs.rmSync(path.join(dir, 'CURRENT'))
    const blobs = filesEnding(dir, '.blob').map((f) => path.basename(f))
    const { code, doc, stderr } = await strataJson('repair', dir)
    expect(code, stderr + JSON.stringify(doc)).toBe(0)
    expect(doc.mode).toBe('rebuild')
    expect(doc.verified).toBe(true)
    expect(doc.lost).toMatchObject({ blocks: 0, records: 0, blobValues: 0, entries: 0 })
    expect(doc.result.blobFiles.map((b: { file: string }) => b.file)).toEqual(blobs)
    for (const b of doc.result.blobFiles) expect(b.garbageCount).toBe(0)
    const kinds = filesEnding(dir, '.sst').flatMap((f) => parseTable(f).entries.map((e) => e.kind))
    expect(kinds.filter((k) => k === 5)).toHaveLength(75)
    expect(sortedEntries(await entriesOfDir(dir))).toEqual(sortedEntries(ttlModel))
    const check = await strataJson('check', dir)
    expect(check.code, JSON.stringify(check.doc.problems)).toBe(0)
    expect(check.doc.warnings).toEqual([])
  })

  it('repair copies the readable kind-5 values of a damaged blob file with their expiry, and drops the one whose value is damaged', async () => {
    const dir = copyOf(ttlTemplate)
    const withRefs = filesEnding(dir, '.sst').flatMap((f) => parseTable(f).entries.filter((e) => e.kind === 5).map((e) => ({ entry: e, ref: parseReference(splitExpiring(e.value).rest) })))
    const target = withRefs.find((r) => r.entry.key.startsWith('t/'))!
    const sameFile = withRefs.filter((r) => r.ref.blobFile === target.ref.blobFile && r !== target)
    expect(sameFile.length).toBeGreaterThan(0)
    flipByte(path.join(dir, target.ref.blobFile), target.ref.blobOffset + 3)
    const { code, doc, stderr } = await strataJson('repair', dir)
    expect(code, stderr + JSON.stringify(doc)).toBe(0)
    expect(doc.mode).toBe('manifest')
    expect(doc.lost).toMatchObject({ blobValues: 1, entries: 1 })
    const damaged = doc.files.find((f: { file: string }) => f.file === target.ref.blobFile)
    expect(damaged).toMatchObject({ action: 'rewritten', blobValuesLost: 1, movedTo: path.join('lost', target.ref.blobFile) })
    expect(doc.result.blobFiles.map((b: { file: string }) => b.file)).toContain(damaged.newBlobFile)
    // The copied values are referenced by kind-5 entries that kept their expiry.
    const copied = filesEnding(dir, '.sst').flatMap((f) => parseTable(f).entries.filter((e) => e.kind === 5 && parseReference(splitExpiring(e.value).rest).blobFile === damaged.newBlobFile))
    expect(copied.map((e) => e.key).sort()).toEqual(sameFile.map((r) => r.entry.key).sort())
    for (const e of copied) expect(splitExpiring(e.value).expiresAt).toBe(ttlModel.get(e.key)!.expiresAt)
    const expected = new Map(ttlModel)
    expected.delete(target.entry.key)
    expect(sortedEntries(await entriesOfDir(dir))).toEqual(sortedEntries(expected))
    const check = await strata('check', dir)
    expect(check.code, check.stdout).toBe(0)
  })

  it('check and dump report an expiring value shorter than its expiry time, in a table and in a WAL', async () => {
    // A table: a plain put of a 7-byte value ("plain-0") becomes an expiring one (kind 4), its block resealed.
    const tableDir = copyOf(ttlTemplate)
    const short = (e: BlockEntry): boolean => e.kind === 1 && e.value.length < 8
    const t = filesEnding(tableDir, '.sst').map(parseTable).find((x) => x.entries.some(short))!
    const buf = fs.readFileSync(t.file)
    const block = t.dataBlocks.find((b) => b.entries.some(short))!
    const victim = kindOffsets(buf.subarray(block.offset, block.offset + block.size)).find((e) => e.kind === 1 && e.valueLength < 8)!
    buf[block.offset + victim.kindOffset] = 4
    fs.writeFileSync(t.file, buf)
    resealBlock(t.file, block)
    // A WAL: its first record rewritten with an expiring put whose value is 3 bytes.
    const walDir = copyOf(ttlTemplate)
    const wal = filesEnding(walDir, '.log')[0]
    const recs = parseWal(wal)
    const old = fs.readFileSync(wal)
    const payload = Buffer.concat([old.subarray(recs[0].start + 12, recs[0].start + 12 + 21), Buffer.from([4 | 0x80, 7]), Buffer.from('w/small'), Buffer.from([3]), Buffer.from('abc')])
    fs.writeFileSync(wal, Buffer.concat([walFrame(payload), old.subarray(recs[0].end)]))

    const [tableCheck, tableDump, walCheck, walDump] = await Promise.all([strataJson('check', tableDir), strataJson('dump', t.file), strataJson('check', walDir), strata('dump', wal)])
    expect(tableCheck.code).toBe(1)
    expect(tableCheck.doc.problems).toEqual(
      expect.arrayContaining([expect.objectContaining({ file: t.name, offset: block.offset, message: expect.stringMatching(/does not decode: expiring entry shorter than its expiry time/) })]),
    )
    expect(tableDump.code).toBe(1)
    expect(tableDump.doc.problems).toEqual([expect.objectContaining({ file: t.name, offset: block.offset, message: expect.stringMatching(/expiring entry shorter than its expiry time/) })])
    expect(walCheck.code).toBe(1)
    expect(walCheck.doc.problems).toEqual([expect.objectContaining({ file: path.basename(wal), offset: 0, message: expect.stringMatching(/record does not decode: WAL expiring value shorter than its expiry time/) })])
    expect(walDump.code).toBe(1)
    expect(walDump.stdout).toMatch(/error: .*WAL expiring value shorter than its expiry time/)
  })
})

// ---- range deletes ---------------------------------------------------------------------------

/** One manifest record as docs/format.md lays it out ("Manifest"): the tags range deletes concern, decoded independently. */
interface ManifestEdit {
  start: number
  /** Tag 5. */
  tables: Array<{ level: number; number: number; smallestSeq: number; largestSeq: number }>
  /** Tag 9. */
  tombstonesAdded: Array<{ seq: number; start: string; end: string | null }>
  /** Tag 10. */
  tombstonesRemoved: number[]
  /** Tag 11. */
  floors: Array<{ table: number; minSeq: number; floor: number }>
}

/** Splits a manifest into records (both checksums checked) and decodes every tag (1 to 11). */
function parseManifest(file: string): ManifestEdit[] {
  const buf = fs.readFileSync(file)
  const edits: ManifestEdit[] = []
  let o = 0
  while (o < buf.length) {
    const len = buf.readUInt32LE(o)
    const payload = buf.subarray(o + 12, o + 12 + len)
    expect(payload.length).toBe(len)
    expect(buf.readUInt32LE(o + 4)).toBe(xx.h32Raw(payload, 0) >>> 0)
    expect(buf.readUInt32LE(o + 8)).toBe(xx.h32Raw(buf.subarray(o, o + 8), 0x53545241) >>> 0)
    const e: ManifestEdit = { start: o, tables: [], tombstonesAdded: [], tombstonesRemoved: [], floors: [] }
    const at = { o: 0 }
    const num = (): number => readVarint(payload, at)
    const bytes = (): string => {
      const n = num()
      const b = payload.subarray(at.o, at.o + n).toString('latin1')
      at.o += n
      return b
    }
    const skip = (n: number): void => {
      for (let i = 0; i < n; i++) num()
    }
    while (at.o < payload.length) {
      const tag = num()
      if (tag >= 1 && tag <= 3) skip(1)
      else if (tag === 4) skip(2)
      else if (tag === 5) {
        const [level, number] = [num(), num()]
        num()
        const [smallestSeq, largestSeq] = [num(), num()]
        skip(2)
        bytes()
        bytes()
        e.tables.push({ level, number, smallestSeq, largestSeq })
      } else if (tag === 6) skip(4)
      else if (tag === 7) skip(3)
      else if (tag === 8) {
        num()
        skip(num())
      } else if (tag === 9) {
        const seq = num()
        const start = bytes()
        const hasEnd = num()
        expect([0, 1]).toContain(hasEnd)
        e.tombstonesAdded.push({ seq, start, end: hasEnd === 1 ? bytes() : null })
      } else if (tag === 10) e.tombstonesRemoved.push(num())
      else if (tag === 11) {
        const f = { table: num(), minSeq: num(), floor: num() }
        // It follows the tag 5 (and the tag 8, if any) of its table.
        expect(e.tables.at(-1)?.number).toBe(f.table)
        e.floors.push(f)
      } else throw new Error(`unknown manifest tag ${tag} at ${o}`)
    }
    expect(at.o).toBe(len)
    edits.push(e)
    o += 12 + len
  }
  return edits
}

/**
 * Range deletes (WAL kind 6, manifest tags 9, 10 and 11). A first session
 * writes a/, b/, c/ and d/ 00..49 (flushed on close); a second range-deletes
 * [a/10, a/20) and compacts it: the compaction drops what it covers (its
 * output's tag 11 records the floor) and the tombstone leaves the manifest
 * (tag 10); it then range-deletes [b/10, b/20), rewrites b/15 and
 * range-deletes [d/40, no end): flushed on close into the manifest (tag 9).
 * `rdSession2` is a copy taken then: its manifest holds all those edits
 * (every open writes a fresh manifest of one record). A third session
 * (flushOnClose false) leaves in the WAL a range delete of [c/05, c/10), a
 * batch of a range delete from the empty key to a/05 and a put of c/07, and a
 * range delete of [x/00, x/99), which covers no key. The models: what reads
 * show after each session.
 */
let rdTemplate: string
let rdSession2: string
const rdSession2Model = new Map<string, string>()
const rdModel = new Map<string, string>()
const rdKey = (p: string, i: number): string => `${p}/${String(i).padStart(2, '0')}`
const RD_OPTIONS = { autoCompaction: false }
/** Deletes [gte, lt) from a model. */
const deleteFrom = (m: Map<string, string>, gte: string, lt?: string): void => {
  for (const k of [...m.keys()]) if (k >= gte && (lt === undefined || k < lt)) m.delete(k)
}

beforeAll(async () => {
  rdTemplate = newDir('range-delete-template')
  let db = await open(rdTemplate, RD_OPTIONS)
  for (const p of ['a', 'b', 'c', 'd']) {
    for (let i = 0; i < 50; i++) {
      await db.put(rdKey(p, i), `v1-${p}${i}`)
      rdSession2Model.set(rdKey(p, i), `v1-${p}${i}`)
    }
  }
  await db.close()
  db = await open(rdTemplate, RD_OPTIONS)
  await db.deleteRange('a/10', 'a/20')
  deleteFrom(rdSession2Model, 'a/10', 'a/20')
  await db.compactRange('a/', 'a/~')
  await db.deleteRange('b/10', 'b/20')
  deleteFrom(rdSession2Model, 'b/10', 'b/20')
  await db.put('b/15', 'v2-b15')
  rdSession2Model.set('b/15', 'v2-b15')
  await db.deleteRange('d/40')
  deleteFrom(rdSession2Model, 'd/40')
  await db.close()
  rdSession2 = copyOf(rdTemplate)
  for (const [k, v] of rdSession2Model) rdModel.set(k, v)
  db = await open(rdTemplate, { ...RD_OPTIONS, flushOnClose: false })
  await db.deleteRange('c/05', 'c/10')
  deleteFrom(rdModel, 'c/05', 'c/10')
  await db.batch([
    { type: 'delRange', gte: '', lt: 'a/05' },
    { type: 'put', key: 'c/07', value: 'v3-c07' },
  ])
  deleteFrom(rdModel, '', 'a/05')
  rdModel.set('c/07', 'v3-c07')
  await db.deleteRange('x/00', 'x/99')
  expect(sorted(await contentOf(db))).toEqual(sorted(rdModel))
  await db.close()
  // Neither the tables nor the template's first two sessions' WALs hold a range delete; the last WAL holds three.
  for (const f of filesEnding(rdTemplate, '.sst')) for (const e of parseTable(f).entries) expect([0, 1]).toContain(e.kind)
  expect(filesEnding(rdTemplate, '.log')).toHaveLength(1)
  expect(parseWal(filesEnding(rdTemplate, '.log')[0]).flatMap((r) => r.kinds)).toEqual([6, 6, 1, 6])
})

/** The range deletes of the template's WAL: sequence, start and end (null: none), from an independent parse. */
function rdWalRanges(dir: string): Array<{ seq: number; start: string; end: string | null }> {
  return parseWal(filesEnding(dir, '.log')[0]).flatMap((r) =>
    r.ops.flatMap(([start, end], j) => (r.kinds[j] === 6 ? [{ seq: r.firstSequence + j, start, end: end === '' ? null : end }] : [])),
  )
}

/** A tombstone as the tools print it in JSON. */
const rdJson = (t: { seq: number; start: string; end: string | null }): Record<string, unknown> => ({
  sequence: t.seq,
  start: t.start,
  startEncoding: 'utf8',
  end: t.end,
  endEncoding: t.end === null ? null : 'utf8',
})
const rdText = (t: { seq: number; start: string; end: string | null }): string => `@${t.seq} [${JSON.stringify(t.start)}, ${t.end === null ? 'no end' : JSON.stringify(t.end)})`

/** The session-2 model with what the manifest's tombstones deleted back: [b/10, b/20) and [d/40, …) as first written (a/10..a/19 a compaction dropped). */
function withManifestTombstonesLost(m: Map<string, string>): Map<string, string> {
  const out = new Map(m)
  for (let i = 10; i < 20; i++) if (i !== 15) out.set(rdKey('b', i), `v1-b${i}`)
  for (let i = 40; i < 50; i++) out.set(rdKey('d', i), `v1-d${i}`)
  return out
}

describe('range deletes (WAL kind 6, manifest tags 9, 10 and 11)', () => {
  it('dump shows the WAL\'s range deletes, text and --json, and --from/--to keeps those whose range meets them', async () => {
    const wal = filesEnding(rdTemplate, '.log')[0]
    const recs = parseWal(wal)
    const ranges = rdWalRanges(rdTemplate)
    expect(ranges.map((t) => [t.start, t.end])).toEqual([
      ['c/05', 'c/10'],
      ['', 'a/05'],
      ['x/00', 'x/99'],
    ])
    const [text, json, ranged] = await Promise.all([strata('dump', wal), strataJson('dump', wal), strataJson('dump', wal, '--from', 'c/06', '--to', 'c/06')])
    expect(text.code, text.stderr).toBe(0)
    const put = recs[1].firstSequence + 1
    expect(text.stdout).toContain(`  batch ${ranges[0].seq}..${ranges[0].seq} (1 op)\n    @${ranges[0].seq} delete-range ["c/05", "c/10")\n`)
    expect(text.stdout).toContain(`  batch ${ranges[1].seq}..${put} (2 ops)\n    @${ranges[1].seq} delete-range ["", "a/05")\n    "c/07" @${put} put "v3-c07"\n`)
    expect(text.stdout).toContain(`    @${ranges[2].seq} delete-range ["x/00", "x/99")\n`)
    expect(text.stdout).toMatch(/^3 records, 4 entries \(3 range deletes\), sequences /m)
    expect(json.code).toBe(0)
    expect(json.doc).toMatchObject({ recordCount: 3, entryCount: 4, rangeDeleteCount: 3, problems: [] })
    expect(json.doc.records.flatMap((r: { entries: unknown[] }) => r.entries)).toEqual([
      { ...rdJson(ranges[0]), kind: 'delete-range', batchEnd: true },
      { ...rdJson(ranges[1]), kind: 'delete-range', batchEnd: false },
      { key: 'c/07', keyEncoding: 'utf8', sequence: put, kind: 'put', value: 'v3-c07', valueEncoding: 'utf8', batchEnd: true },
      { ...rdJson(ranges[2]), kind: 'delete-range', batchEnd: true },
    ])
    // c/06 lies in [c/05, c/10) only: the batch (its range ends before it, its put is c/07) and [x/00, x/99) are not shown.
    expect(ranged.code).toBe(0)
    expect(ranged.doc.records.flatMap((r: { entries: unknown[] }) => r.entries)).toEqual([{ ...rdJson(ranges[0]), kind: 'delete-range', batchEnd: true }])
  })

  it('dump shows a manifest\'s range tombstones added (tag 9) and removed (tag 10), the tables\' sequence floors (tag 11), and the live ones, text and --json', async () => {
    const manifest = currentManifest(rdSession2)
    const edits = parseManifest(manifest)
    const added = edits.flatMap((e) => e.tombstonesAdded)
    const removed = edits.flatMap((e) => e.tombstonesRemoved)
    expect(added.map((t) => [t.start, t.end])).toEqual([
      ['a/10', 'a/20'],
      ['b/10', 'b/20'],
      ['d/40', null],
    ])
    // The compaction removed [a/10, a/20) in the edit that installed its output, whose floor is that tombstone's sequence.
    expect(removed).toEqual([added[0].seq])
    const compaction = edits.find((e) => e.tombstonesRemoved.length > 0)!
    expect(compaction.floors).toEqual([expect.objectContaining({ floor: added[0].seq })])
    const live = added.slice(1)

    const [text, json] = await Promise.all([strata('dump', manifest), strataJson('dump', manifest)])
    expect(text.code, text.stderr).toBe(0)
    for (const t of added) expect(text.stdout).toContain(`  range  add ${rdText(t)}\n`)
    expect(text.stdout).toContain(`  range  remove @${added[0].seq}\n`)
    for (const f of edits.flatMap((e) => e.floors)) {
      expect(text.stdout).toMatch(new RegExp(`add +L\\d 0*${f.table}\\.sst: .*; min sequence ${f.minSeq}, range-delete floor ${f.floor}\\n`))
    }
    expect(text.stdout).toMatch(/^state after \d+ edits: 2 tables \(L0: 1, L1: 1\), 2 live range tombstones, /m)
    for (const t of live) expect(text.stdout).toContain(`\n  range tombstone ${rdText(t)}\n`)

    expect(json.code).toBe(0)
    expect(json.doc.edits.map((e: { offset: number }) => e.offset)).toEqual(edits.map((e) => e.start))
    json.doc.edits.forEach((e: { rangeTombstonesAdded: unknown[]; rangeTombstonesRemoved: number[]; added: Array<{ file: string; minSeq: number | null; rangeDeleteFloor: number | null }> }, i: number) => {
      expect(e.rangeTombstonesAdded).toEqual(edits[i].tombstonesAdded.map(rdJson))
      expect(e.rangeTombstonesRemoved).toEqual(edits[i].tombstonesRemoved)
      expect(e.added.map((a) => [a.file, a.minSeq, a.rangeDeleteFloor])).toEqual(
        edits[i].tables.map((t) => {
          const f = edits[i].floors.find((x) => x.table === t.number)
          return [`${String(t.number).padStart(6, '0')}.sst`, f?.minSeq ?? null, f === undefined ? null : f.floor]
        }),
      )
    })
    expect(json.doc.state.rangeTombstones).toEqual(live.map(rdJson))
    // The template's manifest after the third open: one snapshot record, the same live tombstones.
    const now = await strataJson('dump', currentManifest(rdTemplate))
    expect(now.doc.edits).toHaveLength(1)
    expect(now.doc.state.rangeTombstones).toEqual(live.map(rdJson))
  })

  it('check passes and reports the live range tombstones and the WALs\' range deletes', async () => {
    const dir = copyOf(rdTemplate)
    const before = hashTree(dir)
    const live = parseManifest(currentManifest(dir)).flatMap((e) => e.tombstonesAdded)
    expect(live).toHaveLength(2)
    const [text, json, session2] = await Promise.all([strata('check', dir), strataJson('check', dir), strataJson('check', rdSession2)])
    expect(text.code, text.stdout + text.stderr).toBe(0)
    expect(text.stdout).toMatch(/result: OK: 0 problems, 0 warnings/)
    expect(text.stdout).toContain(`  ranges    2 live range tombstones in the manifest, 3 range deletes in the WALs\n${live.map((t) => `            ${rdText(t)}\n`).join('')}`)
    expect(json.code).toBe(0)
    expect(json.doc.manifest.rangeTombstones).toBe(2)
    expect(json.doc.rangeTombstones).toEqual(live.map(rdJson))
    expect(json.doc.wals).toEqual([expect.objectContaining({ records: 3, entries: 4, rangeDeletes: 3, ok: true })])
    // The compaction's output carries a range-delete floor; the table check compares it with the live tombstones.
    expect(session2.code, JSON.stringify(session2.doc.problems)).toBe(0)
    expect(session2.doc.warnings).toEqual([])
    expect(session2.doc.rangeTombstones).toEqual(live.map(rdJson))
    expect(hashTree(dir)).toEqual(before)
  })

  it('check and dump report a tag 10 removing a tombstone no edit added, and a tag 11 naming a table its edit does not add', async () => {
    const remove = copyOf(rdTemplate)
    const floor = copyOf(rdTemplate)
    // Records appended to the manifest: { tag 10, seq 999 }, and { tag 11, table 77, minSeq 1, floor 0 } (varints below 128).
    fs.appendFileSync(currentManifest(remove), walFrame(Buffer.from([10, 0xe7, 0x07])))
    fs.appendFileSync(currentManifest(floor), walFrame(Buffer.from([11, 77, 1, 0])))
    const [c1, d1, c2, d2] = await Promise.all([strataJson('check', remove), strataJson('dump', currentManifest(remove)), strataJson('check', floor), strataJson('dump', currentManifest(floor))])
    const name = path.basename(currentManifest(remove))
    const at = recordStarts(currentManifest(remove)).at(-1)
    for (const r of [c1, d1]) {
      expect(r.code).toBe(1)
      expect(r.doc.problems).toEqual([{ file: name, offset: at, message: 'edit removes range tombstone @999, which no edit added' }])
    }
    for (const r of [c2, d2]) {
      expect(r.code).toBe(1)
      expect(r.doc.problems).toEqual([expect.objectContaining({ file: name, offset: at, message: expect.stringMatching(/names table 77, which its edit does not add/) })])
    }
  })

  it('repair in place keeps the manifest\'s tombstones and carries the WAL\'s range deletes into the new manifest, never into a table', async () => {
    const dir = copyOf(rdTemplate)
    const textDir = copyOf(rdTemplate)
    const wal = path.basename(filesEnding(dir, '.log')[0])
    const fromManifest = parseManifest(currentManifest(dir)).flatMap((e) => e.tombstonesAdded)
    const fromWal = rdWalRanges(dir)
    const [{ code, doc, stderr }, text] = await Promise.all([strataJson('repair', dir), strata('repair', textDir)])
    expect(code, stderr + JSON.stringify(doc)).toBe(0)
    expect(doc.mode).toBe('manifest')
    expect(doc.verified).toBe(true)
    expect(doc.warnings).toEqual([])
    // [x/00, x/99) covers no key of any table kept: left out, as the engine would remove it.
    expect(doc.rangeDeletes).toEqual({ fromManifest: 2, fromWals: 3, dropped: 1, kept: 4, mayBeLost: false })
    const kept = [...fromManifest, ...fromWal.slice(0, 2)].sort((a, b) => a.seq - b.seq)
    expect(doc.result.rangeTombstones).toEqual(kept.map(rdJson))
    expect(doc.files.find((f: { file: string }) => f.file === wal)).toMatchObject({ action: 'converted', entriesKept: 1, rangeDeletesKept: 3 })
    // The new manifest lists them (tag 9), every table holds puts and deletes only, and the deleted keys stay deleted.
    expect(parseManifest(currentManifest(dir)).flatMap((e) => e.tombstonesAdded).sort((a, b) => a.seq - b.seq)).toEqual(kept)
    for (const f of filesEnding(dir, '.sst')) for (const e of parseTable(f).entries) expect([0, 1]).toContain(e.kind)
    expect(sorted(await contentOfDir(dir))).toEqual(sorted(rdModel))
    expect(doc.liveKeys).toBe(rdModel.size)
    const check = await strata('check', dir)
    expect(check.code, check.stdout).toBe(0)

    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain(`  ${wal}: converted: 1 entry from intact records written to `)
    expect(text.stdout).toContain('; 3 range deletes carried into the new manifest as range tombstones; moved to lost/')
    expect(text.stdout).toContain('range deletes: 4 range tombstones in the new manifest (2 from the manifest, 3 from WALs; 1 left out: they cover nothing in the tables kept)\n')
    expect(text.stdout).toMatch(/^result: MANIFEST-\d+ names 3 tables \(L0: 2, L1: 1\), 4 range tombstones, /m)
    expect(text.stdout).not.toContain('warning:')
  })

  it('rebuild without CURRENT recovers the tombstones of the manifest present and of the WAL, and warns that flushed range deletes may be lost', async () => {
    const dir = copyOf(rdTemplate)
    const textDir = copyOf(rdTemplate)
    for (const d of [dir, textDir]) fs.rmSync(path.join(d, 'CURRENT'))
    const [{ code, doc, stderr }, text] = await Promise.all([strataJson('repair', dir), strata('repair', textDir)])
    expect(code, stderr + JSON.stringify(doc)).toBe(0)
    expect(doc.mode).toBe('rebuild')
    expect(doc.verified).toBe(true)
    expect(doc.rangeDeletes).toEqual({ fromManifest: 2, fromWals: 3, dropped: 1, kept: 4, mayBeLost: true })
    expect(doc.warnings).toEqual([expect.stringMatching(/^range deletes already flushed into the lost manifest are lost: .*keys they deleted may show their old values again/)])
    // Here the manifest present was the live one: nothing was lost.
    expect(sorted(await contentOfDir(dir))).toEqual(sorted(rdModel))
    for (const f of filesEnding(dir, '.sst')) for (const e of parseTable(f).entries) expect([0, 1]).toContain(e.kind)
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toMatch(/^warning: range deletes already flushed into the lost manifest are lost: /m)
    const check = await strata('check', dir)
    expect(check.code, check.stdout).toBe(0)
  })

  it('rebuild without any manifest keeps the WAL\'s range deletes; what only the manifest deleted shows again, and the report says it may', async () => {
    const dir = copyOf(rdTemplate)
    fs.rmSync(path.join(dir, 'CURRENT'))
    for (const m of fs.readdirSync(dir).filter((n) => n.startsWith('MANIFEST-'))) fs.rmSync(path.join(dir, m))
    const { code, doc, stderr } = await strataJson('repair', dir)
    expect(code, stderr + JSON.stringify(doc)).toBe(0)
    expect(doc.mode).toBe('rebuild')
    expect(doc.rangeDeletes).toEqual({ fromManifest: 0, fromWals: 3, dropped: 1, kept: 2, mayBeLost: true })
    expect(doc.warnings).toHaveLength(1)
    expect(doc.result.rangeTombstones).toEqual(rdWalRanges(rdTemplate).slice(0, 2).map(rdJson))
    // [c/05, c/10) and ["", a/05) still hold; [b/10, b/20) and [d/40, …) are lost; [a/10, a/20)'s keys a compaction dropped.
    const expected = withManifestTombstonesLost(rdSession2Model)
    deleteFrom(expected, 'c/05', 'c/10')
    deleteFrom(expected, '', 'a/05')
    expected.set('c/07', 'v3-c07')
    expect(sorted(await contentOfDir(dir))).toEqual(sorted(expected))
  })

  it('rebuild carries the range deletes of a WAL it leaves out as already flushed', async () => {
    // The WAL is flushed by a reopen (its range deletes move into the manifest, it is deleted), then put back, and the manifests lost.
    const dir = copyOf(rdTemplate)
    const walFile = filesEnding(dir, '.log')[0]
    const saved = fs.readFileSync(walFile)
    const db = await open(dir, RD_OPTIONS)
    await db.close()
    expect(fs.existsSync(walFile)).toBe(false)
    fs.writeFileSync(walFile, saved)
    fs.rmSync(path.join(dir, 'CURRENT'))
    for (const m of fs.readdirSync(dir).filter((n) => n.startsWith('MANIFEST-'))) fs.rmSync(path.join(dir, m))
    const { code, doc, stderr } = await strataJson('repair', dir)
    expect(code, stderr + JSON.stringify(doc)).toBe(0)
    expect(doc.files.find((f: { file: string }) => f.file === path.basename(walFile))).toMatchObject({
      action: 'moved-aside',
      reason: expect.stringMatching(/is not newer than the tables' \(\d+\): already flushed; its 3 range deletes carried into the new manifest$/),
    })
    expect(doc.rangeDeletes).toEqual({ fromManifest: 0, fromWals: 3, dropped: 1, kept: 2, mayBeLost: true })
    const expected = withManifestTombstonesLost(rdSession2Model)
    deleteFrom(expected, 'c/05', 'c/10')
    deleteFrom(expected, '', 'a/05')
    expected.set('c/07', 'v3-c07')
    expect(sorted(await contentOfDir(dir))).toEqual(sorted(expected))
  })

  it('rebuild with the manifest\'s last record damaged: tombstones of the intact records kept, those of the damaged one lost, with the warning', async () => {
    const dir = copyOf(rdSession2)
    const manifest = currentManifest(dir)
    const edits = parseManifest(manifest)
    const last = edits.at(-1)!
    expect(last.tombstonesAdded.map((t) => t.start)).toEqual(['b/10', 'd/40'])
    flipByte(manifest, last.start + 12 + 2)
    const { code, doc, stderr } = await strataJson('repair', dir)
    expect(code, stderr + JSON.stringify(doc)).toBe(0)
    expect(doc.mode).toBe('rebuild')
    // [a/10, a/20), added and removed by intact records, is carried (it still overlaps the merged table); the damaged record's two are lost.
    expect(doc.rangeDeletes).toMatchObject({ fromManifest: 1, fromWals: 0, mayBeLost: true })
    expect(doc.warnings).toHaveLength(1)
    expect(sorted(await contentOfDir(dir))).toEqual(sorted(withManifestTombstonesLost(rdSession2Model)))
  })
})

// ---- usage ---------------------------------------------------------------------------------

describe('usage errors exit 2', () => {
  it('missing arguments, unknown options, missing paths, bad values; --help exits 0 and lists the exit codes', async () => {
    const missing = path.join(root, 'does-not-exist')
    const runs = await Promise.all([
      strata('check'),
      strata('check', missing),
      strata('dump', filesEnding(walTemplate, '.log')[0], '--bogus'),
      strata('dump', filesEnding(walTemplate, '.log')[0], '--from', 'b', '--to', 'a'),
      strata('repair', missing),
    ])
    const names = ['check', 'check', 'dump', 'dump', 'repair']
    runs.forEach((r, i) => {
      expect(r.code, `${i}: ${r.stderr}`).toBe(2)
      expect(r.stderr, `${i}`).toMatch(new RegExp(`^strata ${names[i]}: `))
      expect(r.stdout, `${i}`).toBe('')
    })
    expect(runs[1].stderr).toContain('does not exist')
    expect(fs.existsSync(missing)).toBe(false)
    const helps = await Promise.all(['check', 'dump', 'repair'].map((c) => strata(c, '--help')))
    for (const h of helps) {
      expect(h.code).toBe(0)
      expect(h.stdout).toMatch(/Exit codes:\n {2}0 .*\n {2}1 .*\n {2}2 {2}usage error/)
    }
  })
})
