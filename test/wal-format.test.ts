/**
 * WAL record versions (docs/format.md, "WAL record payload"): version 3
 * carries the replication epoch and may hold NOOP entries (a sequence and
 * nothing else); versions 2 and 1 still read. A NOOP reaches no memtable and
 * no table, but it takes its sequence: recovery continues after it, and the
 * change stream reads past it without seeing a gap.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { open, type ChangeBatch } from '../src/index.js'
import { initChecksum } from '../src/base/checksum.js'
import { frameRecord, scanRecords } from '../src/wal/record-framing.js'
import { BATCH_END, KIND_NOOP, forEachWalEntry, walRecordEpoch, walRecordLastSequence } from '../src/wal/wal-record.js'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-wal-format-'))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))
let counter = 0
const newDir = (): string => path.join(root, `db-${counter++}`)

type Entry = { kind: 'put'; key: string; value: string; end: boolean } | { kind: 'del'; key: string; end: boolean } | { kind: 'noop' }

/** A version-3 record payload written by hand from docs/format.md. */
function payloadV3(firstSequence: number, epoch: number, entries: Entry[]): Buffer {
  const parts: Buffer[] = []
  const head = Buffer.alloc(21)
  head[0] = 3
  head.writeBigUInt64LE(BigInt(firstSequence), 1)
  head.writeUInt32LE(entries.length, 9)
  head.writeBigUInt64LE(BigInt(epoch), 13)
  parts.push(head)
  for (const e of entries) {
    if (e.kind === 'noop') {
      parts.push(Buffer.from([KIND_NOOP | BATCH_END]))
      continue
    }
    parts.push(Buffer.from([(e.kind === 'put' ? 1 : 0) | (e.end ? BATCH_END : 0), e.key.length]), Buffer.from(e.key))
    if (e.kind === 'put') parts.push(Buffer.from([e.value.length]), Buffer.from(e.value))
  }
  return Buffer.concat(parts)
}

async function collect(stream: AsyncIterable<ChangeBatch>): Promise<ChangeBatch[]> {
  const out: ChangeBatch[] = []
  for await (const b of stream) out.push(b)
  return out
}

describe('record version 3', () => {
  it('decodes the epoch and the last sequence; NOOPs go to onNoop only and must end their batch', async () => {
    await initChecksum()
    const p = payloadV3(10, 7, [{ kind: 'put', key: 'a', value: 'x', end: false }, { kind: 'del', key: 'b', end: true }, { kind: 'noop' }, { kind: 'put', key: 'c', value: 'y', end: true }])
    expect(walRecordEpoch(p)).toBe(7)
    expect(walRecordLastSequence(p)).toBe(13)
    const seen: string[] = []
    const count = forEachWalEntry(
      p,
      'test',
      (buf, seq, ks, ke, vs, _ve, end) => seen.push(`${seq}:${buf.subarray(ks, ke).toString()}:${vs < 0 ? 'del' : 'put'}:${end}`),
      (seq, end) => seen.push(`${seq}:noop:${end}`),
    )
    expect(count).toBe(4)
    expect(seen).toEqual(['10:a:put:false', '11:b:del:true', '12:noop:true', '13:c:put:true'])
    // Without onNoop the NOOP is skipped.
    let visited = 0
    forEachWalEntry(p, 'test', () => visited++)
    expect(visited).toBe(3)
    // A NOOP without the batch-end flag is corruption.
    const bad = Buffer.from(p)
    bad[bad.indexOf(KIND_NOOP | BATCH_END, 21)] = KIND_NOOP
    expect(() => forEachWalEntry(bad, 'test', () => undefined)).toThrow(/NOOP entry inside a batch/)
  })

  it('a database writes version 3 with epoch 0', async () => {
    const dir = newDir()
    const db = await open(dir, { flushOnClose: false })
    await db.put('k', 'v')
    await db.close()
    const wal = fs.readdirSync(dir).find((n) => n.endsWith('.log') && fs.statSync(path.join(dir, n)).size > 0)!
    const payload = fs.readFileSync(path.join(dir, wal)).subarray(12)
    expect(payload[0]).toBe(3)
    expect(walRecordEpoch(payload)).toBe(0)
  })

  it('recovery continues after NOOPs (their sequences are taken) and the change stream reads past them', async () => {
    await initChecksum()
    const dir = newDir()
    const db = await open(dir, { flushOnClose: false, walRetentionMs: 3_600_000 })
    await db.put('a', '1')
    await db.put('b', '2')
    await db.close()
    // Append what a replicated log holds after a leader change: a NOOP opening epoch 5, then writes in it.
    const wal = fs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.log'))
      .sort()
      .find((n) => fs.statSync(path.join(dir, n)).size > 0)!
    fs.appendFileSync(path.join(dir, wal), frameRecord(payloadV3(3, 5, [{ kind: 'noop' }, { kind: 'put', key: 'c', value: '3', end: true }])))
    fs.appendFileSync(path.join(dir, wal), frameRecord(payloadV3(5, 5, [{ kind: 'noop' }])))

    const again = await open(dir, { walRetentionMs: 3_600_000 })
    expect(again.stats().lastSequence).toBe(5)
    expect(again.getSync('c')?.toString()).toBe('3')
    expect((await again.getEntry('c'))?.version).toBe(4)
    await again.put('d', '4')
    expect((await again.getEntry('d'))?.version).toBe(6)
    const batches = await collect(again.changes({ since: 0 }))
    expect(batches.map((b) => [b.sequence, b.ops.map((o) => `${o.type}:${o.key.toString()}@${o.version}`)])).toEqual([
      [1, ['put:a@1']],
      [2, ['put:b@2']],
      [4, ['put:c@4']],
      [6, ['put:d@6']],
    ])
    // Starting right after a NOOP, or on it, is no gap either.
    expect((await collect(again.changes({ since: 3 }))).map((b) => b.sequence)).toEqual([4, 6])
    expect((await collect(again.changes({ since: 5 }))).map((b) => b.sequence)).toEqual([6])
    // Whole records (what replication ships) keep the NOOPs and their epochs.
    const records: Array<[number, number, number]> = []
    for await (const r of again.walRecords({ since: 2 })) records.push([r.firstSequence, r.lastSequence, r.epoch])
    expect(records).toEqual([
      [3, 4, 5],
      [5, 5, 5],
      [6, 6, 0],
    ])
    await again.compactRange()
    expect(again.getSync('c')?.toString()).toBe('3')
    await again.close()
  })
})

describe('whole WAL records (walRecords: what replication ships)', () => {
  it('hands out every record verbatim, dense, from a record boundary; a sequence inside a record is refused', async () => {
    const dir = newDir()
    const db = await open(dir, { memtableBytes: 16 << 10, walRetentionMs: 3_600_000 })
    let cp: { sequence: number } | undefined
    for (let round = 0; round < 40; round++) {
      // Bursts of concurrent writes share group-commit records; batches are one write each.
      await Promise.all([
        db.put(`a${round}`, 'x'.repeat(round * 20)),
        db.batch([
          { type: 'put', key: `b${round}`, value: 'y' },
          { type: 'del', key: `a${round - 1}` },
        ]),
        db.put(`c${round}`, 'z'),
      ])
      if (round === 20) cp = await db.checkpoint(path.join(root, `cp-${counter++}`))
    }
    const records = []
    for await (const r of db.walRecords({ since: 0 })) records.push(r)
    // Dense, and together exactly the change stream's ops.
    expect(records[0].firstSequence).toBe(1)
    for (let i = 1; i < records.length; i++) expect(records[i].firstSequence).toBe(records[i - 1].lastSequence + 1)
    expect(records.at(-1)!.lastSequence).toBe(db.stats().lastSequence)
    expect(records.some((r) => r.lastSequence > r.firstSequence)).toBe(true)
    // Verbatim: the payloads of the WAL files, in order.
    const onDisk = fs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.log'))
      .sort()
      .flatMap((n) => scanRecords(fs.readFileSync(path.join(dir, n)), n).payloads)
    expect(records.map((r) => r.payload.toString('hex'))).toEqual(onDisk.map((p) => p.toString('hex')))
    // A record boundary, e.g. a checkpoint's sequence, is a valid start; a sequence inside a record is not.
    const fromCheckpoint = []
    for await (const r of db.walRecords({ since: cp!.sequence })) fromCheckpoint.push(r.firstSequence)
    expect(fromCheckpoint[0]).toBe(cp!.sequence + 1)
    const multi = records.find((r) => r.lastSequence > r.firstSequence)!
    const inside = db.walRecords({ since: multi.firstSequence })
    await expect(inside.next()).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
    await db.close()
  })
})

describe('older record versions', () => {
  /** What test/fixtures/wal-v2 holds: written by stratadb at WAL record version 2 (git 68a6c53), never flushed. */
  function walV2Model(): Map<string, string> {
    const m = new Map<string, string>()
    for (let i = 0; i < 300; i++) {
      if (i % 50 === 0) {
        m.set(`b${i}`, `x${i}`)
        m.delete(`k${String(i - 1).padStart(4, '0')}`)
        m.set(`c${i}`, `y${i}`)
      }
      m.set(`k${String(i).padStart(4, '0')}`, `value-${i}`)
    }
    m.set('p1', 'a')
    m.set('p2', 'b')
    m.delete('k0007')
    return m
  }

  it('version 2 (no epoch: read as 0) opens with every write, and its batches stream as committed', async () => {
    const dir = newDir()
    fs.cpSync(path.join(import.meta.dirname, 'fixtures', 'wal-v2'), dir, { recursive: true })
    const wal = fs.readFileSync(path.join(dir, '000001.log'))
    expect(wal[12]).toBe(2)
    expect(walRecordEpoch(wal.subarray(12))).toBe(0)
    const db = await open(dir, { walRetentionMs: 3_600_000 })
    const model = walV2Model()
    const got = new Map<string, string>()
    for await (const [k, v] of db.iterator()) got.set(k.toString(), v.toString())
    expect(got).toEqual(model)
    expect(db.stats().lastSequence).toBe(321)
    const batches = await collect(db.changes({ since: 0 }))
    // 300 puts, 6 batches of 3, and 3 concurrent writes: one item each.
    expect(batches).toHaveLength(309)
    expect(batches.filter((b) => b.ops.length === 3).map((b) => b.ops.map((o) => o.type))).toEqual(Array(6).fill(['put', 'del', 'put']))
    expect(batches.at(-1)!.sequence).toBe(321)
    await db.close()
  })
})
