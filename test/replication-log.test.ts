/**
 * The log shipping replication is built on, in one process: a leader's WAL
 * records (`walRecords`) appended verbatim by a follower (`appendRecord`).
 * The follower must end up with the same entries under the same versions,
 * the same WAL record bytes and the same change stream; a record that does
 * not follow its log (a gap, a repeat) or does not parse changes nothing; a
 * follower can start from a checkpoint and catch up from its sequence.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { open, type Database } from '../src/index.js'
import { openReplicated } from '../src/replicated-db.js'
import { frameRecord, scanRecords } from '../src/wal/record-framing.js'
import { BATCH_END, KIND_NOOP } from '../src/wal/wal-record.js'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-replication-log-'))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))
let counter = 0
const newDir = (): string => path.join(root, `db-${counter++}`)
const RETAIN = { walRetentionMs: 3_600_000 }

async function contents(db: Database): Promise<string[]> {
  const out: string[] = []
  for await (const [k, v] of db.iterator()) out.push(`${k.toString('hex')}=${v.toString('hex')}@${(await db.getEntry(k))!.version}`)
  return out
}

function walPayloads(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.log'))
    .sort()
    .flatMap((n) => scanRecords(fs.readFileSync(path.join(dir, n)), n).payloads.map((p) => p.toString('hex')))
}

async function changeList(db: Database): Promise<string[]> {
  const out: string[] = []
  for await (const b of db.changes({ since: 0 })) out.push(`${b.sequence}:${b.ops.map((o) => `${o.type}/${o.key.toString('hex')}/${o.value?.toString('hex') ?? ''}/${o.version}`).join(',')}`)
  return out
}

/** Writes a mixed workload: concurrent bursts (shared group-commit records), batches, deletes, transactions. */
async function workload(db: Database, rounds: number): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    await Promise.all([
      db.put(`k${r % 37}`, `v${r}`.repeat(1 + (r % 50))),
      db.batch([
        { type: 'put', key: `b${r % 11}`, value: `b${r}` },
        { type: 'del', key: `k${(r + 5) % 37}` },
      ]),
      db.delete(`b${(r + 3) % 11}`),
      db.transaction(async (tx) => {
        const n = Number((await tx.get('counter'))?.toString() ?? '0')
        tx.put('counter', String(n + 1))
      }),
    ])
  }
}

/** Follows the leader's records into the follower until it reaches `until`. */
async function ship(leader: Database, follower: Database, live: boolean, until = Infinity): Promise<void> {
  const stream = leader.walRecords({ since: follower.stats().lastSequence, live })
  for await (const r of stream) {
    await follower.appendRecord(r.payload)
    if (r.lastSequence >= until) break
  }
}

describe('appendRecord: a follower appends the leader\'s records verbatim', () => {
  it('same entries, same versions, same WAL bytes, same change stream; across flushes, compactions and a reopen', async () => {
    const leaderDir = newDir()
    const followerDir = newDir()
    const leader = await open(leaderDir, { memtableBytes: 32 << 10, ...RETAIN })
    let follower = await open(followerDir, { memtableBytes: 32 << 10, ...RETAIN })
    // A live follower while the leader writes, then a final catch-up.
    const following = ship(leader, follower, true)
    await workload(leader, 150)
    await leader.compactRange()
    await workload(leader, 50)
    const target = leader.stats().lastSequence
    await follower.appendRecord(Buffer.alloc(0)).catch(() => undefined) // a bad call in between changes nothing
    while (follower.stats().lastSequence < target) await new Promise((r) => setTimeout(r, 10))
    expect(follower.stats().lastSequence).toBe(target)
    await follower.compactRange()
    expect(await contents(follower)).toEqual(await contents(leader))
    expect(walPayloads(followerDir)).toEqual(walPayloads(leaderDir))
    expect(await changeList(follower)).toEqual(await changeList(leader))
    await leader.close()
    await following
    await follower.close()
    follower = await open(followerDir, RETAIN)
    const again = await open(leaderDir, RETAIN)
    expect(await contents(follower)).toEqual(await contents(again))
    expect(follower.stats().lastSequence).toBe(target)
    await follower.close()
    await again.close()
  })

  it('a record that does not follow the log, or does not parse, is refused and changes nothing', async () => {
    const leader = await open(newDir(), RETAIN)
    const follower = await open(newDir(), RETAIN)
    await leader.put('a', '1')
    await leader.put('b', '2')
    await leader.put('c', '3')
    const records = []
    for await (const r of leader.walRecords({ since: 0 })) records.push(r)
    expect(records.map((r) => r.firstSequence)).toEqual([1, 2, 3])
    await expect(follower.appendRecord(records[1].payload)).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
    await follower.appendRecord(records[0].payload)
    await expect(follower.appendRecord(records[0].payload)).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
    const damaged = Buffer.from(records[1].payload)
    damaged.writeUInt32LE(5, 9) // claims 5 entries, holds 1
    await expect(follower.appendRecord(damaged)).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
    expect(follower.stats().lastSequence).toBe(1)
    await follower.appendRecord(records[1].payload)
    await follower.appendRecord(records[2].payload)
    expect(follower.getSync('c')?.toString()).toBe('3')
    expect((await follower.getEntry('c'))?.version).toBe(3)
    // A NOOP record (a new leader's first entry) takes its sequence and nothing else.
    const noop = Buffer.alloc(22)
    noop[0] = 3
    noop.writeBigUInt64LE(4n, 1)
    noop.writeUInt32LE(1, 9)
    noop.writeBigUInt64LE(9n, 13)
    noop[21] = KIND_NOOP | BATCH_END
    expect(frameRecord(noop).length).toBe(34)
    await follower.appendRecord(noop)
    expect(follower.stats().lastSequence).toBe(4)
    await follower.put('d', '4')
    expect((await follower.getEntry('d'))?.version).toBe(5)
    expect((await changeList(follower)).map((c) => c.split(':')[0])).toEqual(['1', '2', '3', '5'])
    await leader.close()
    await follower.close()
  })

  it('a follower started from a checkpoint catches up from its sequence', async () => {
    const leaderDir = newDir()
    const leader = await open(leaderDir, { memtableBytes: 32 << 10, ...RETAIN })
    await workload(leader, 60)
    const cpDir = newDir()
    const cp = await leader.checkpoint(cpDir)
    await workload(leader, 60)
    const follower = await open(cpDir, RETAIN)
    expect(follower.stats().lastSequence).toBe(cp.sequence)
    await ship(leader, follower, false)
    expect(follower.stats().lastSequence).toBe(leader.stats().lastSequence)
    expect(await contents(follower)).toEqual(await contents(leader))
    await leader.close()
    await follower.close()
  })

  it('a leader resolves writes only through its commit gate: invisible, unflushed and unstreamed until then, shipped at once', async () => {
    const leader = await open(newDir(), { memtableBytes: 16 << 10, ...RETAIN })
    await leader.put('before', '0')
    let open_: () => void = () => undefined
    let gateCalls: number[] = []
    leader.setReplication({
      commitGate: (sequence) => {
        gateCalls.push(sequence)
        return new Promise<void>((resolve) => (open_ = resolve))
      },
    })
    const shipped = leader.walRecords({ since: 1, live: true })
    const put = leader.put('a', '1')
    let resolved = false
    void put.then(() => (resolved = true))
    const firstShipped = await shipped.next()
    // Shipped before it is committed (a follower's ack is what commits it)...
    expect(firstShipped.value?.firstSequence).toBe(2)
    expect(gateCalls).toEqual([2])
    // ...but not resolved, not visible, not in the change stream, not flushed.
    await new Promise((r) => setTimeout(r, 20))
    expect(resolved).toBe(false)
    expect(leader.getSync('a')).toBeUndefined()
    expect(leader.stats().lastSequence).toBe(2)
    const stream: number[] = []
    for await (const b of leader.changes({ since: 1 })) stream.push(b.sequence)
    expect(stream).toEqual([])
    const compacting = leader.compactRange()
    await new Promise((r) => setTimeout(r, 20))
    expect(leader.stats().writes.flushes).toBe(0)
    open_()
    await put
    expect(leader.getSync('a')?.toString()).toBe('1')
    await compacting
    expect(leader.stats().writes.flushes).toBe(1)
    shipped.close()
    // A gate that rejects (leadership lost): the write fails and the database takes no more writes.
    gateCalls = []
    leader.setReplication({ commitGate: () => Promise.reject(new Error('leadership lost')) })
    await expect(leader.put('b', '2')).rejects.toMatchObject({ code: 'STRATA_READ_ONLY' })
    expect(leader.stats().failure?.where).toBe('replication')
    expect(leader.getSync('b')).toBeUndefined()
    await expect(leader.put('c', '3')).rejects.toMatchObject({ code: 'STRATA_READ_ONLY' })
    await leader.close()
  })

  it('a follower freezes (and so flushes) only what is committed: appends wait at a full memtable until the limit moves', async () => {
    const leader = await open(newDir(), RETAIN)
    for (let i = 0; i < 400; i++) await leader.put(`k${i}`, 'v'.repeat(100))
    const follower = await open(newDir(), { memtableBytes: 8 << 10, ...RETAIN })
    follower.setReplication({ freezeLimit: 0 })
    const records = []
    for await (const r of leader.walRecords({ since: 0 })) records.push(r)
    let appended = 0
    const appending = (async () => {
      for (const r of records) {
        await follower.appendRecord(r.payload)
        appended = r.lastSequence
      }
    })()
    await new Promise((r) => setTimeout(r, 100))
    // Stuck at the first full memtable: nothing frozen, nothing flushed.
    expect(appended).toBeGreaterThan(0)
    expect(appended).toBeLessThan(400)
    expect(follower.stats().memtable.immutableCount).toBe(0)
    expect(follower.stats().writes.flushes).toBe(0)
    const stuckAt = appended
    follower.setReplication({ freezeLimit: stuckAt + 1 })
    await new Promise((r) => setTimeout(r, 100))
    // Still holding (the next memtable holds uncommitted entries), or frozen only up to the limit.
    expect(follower.stats().lastSequence).toBeLessThan(400)
    follower.setReplication({ freezeLimit: 400 })
    await appending
    expect(follower.stats().lastSequence).toBe(400)
    await follower.compactRange()
    expect(follower.stats().writes.flushes).toBeGreaterThan(1)
    expect(await contents(follower)).toEqual(await contents(leader))
    await leader.close()
    await follower.close()
  })

  it('a leader writes its epoch into every record and commits it with a NOOP; followers keep both, reopen numbers after them', async () => {
    const leaderDir = newDir()
    const leader = await open(leaderDir, { memtableBytes: 16 << 10, ...RETAIN })
    await leader.put('a', '1')
    leader.setReplication({ epoch: 7 })
    const noop = await leader.writeNoop()
    expect(noop).toBe(2)
    await Promise.all([leader.put('b', '2'), leader.batch([{ type: 'put', key: 'c', value: '3' }, { type: 'del', key: 'a' }])])
    leader.setReplication({ epoch: 9 })
    expect(await leader.writeNoop()).toBe(6)
    await leader.put('d', '4')
    const records = []
    for await (const r of leader.walRecords({ since: 0 })) records.push([r.firstSequence, r.lastSequence, r.epoch])
    // No record mixes epochs; each NOOP is a record of its own, in the new epoch.
    expect(records).toEqual([
      [1, 1, 0],
      [2, 2, 7],
      [3, 5, 7],
      [6, 6, 9],
      [7, 7, 9],
    ])
    expect((await leader.getEntry('d'))?.version).toBe(7)
    const batches: number[] = []
    for await (const b of leader.changes({ since: 0 })) batches.push(b.sequence)
    expect(batches).toEqual([1, 3, 5, 7])
    // A follower appends them verbatim; both reopen with the same numbering.
    const followerDir = newDir()
    const follower = await open(followerDir, RETAIN)
    for await (const r of leader.walRecords({ since: 0 })) await follower.appendRecord(r.payload)
    expect(walPayloads(followerDir)).toEqual(walPayloads(leaderDir))
    await leader.close()
    await follower.close()
    for (const dir of [leaderDir, followerDir]) {
      const db = await open(dir, RETAIN)
      expect(db.stats().lastSequence).toBe(7)
      await db.put('e', '5')
      expect((await db.getEntry('e'))?.version).toBe(8)
      const versions: string[] = []
      for await (const [k] of db.iterator()) versions.push(`${k.toString()}@${(await db.getEntry(k))!.version}`)
      expect(versions).toEqual(['b@3', 'c@4', 'd@7', 'e@8'])
      await db.close()
    }
  })
})

describe('truncateLog: a replicated node cuts an uncommitted tail', () => {
  const tableCount = (db: Database): number => db.stats().levels.reduce((n, l) => n + l.tables, 0)

  it('cuts back to a record boundary, keeps everything before it, and appends the leader\'s log after it; across a reopen', async () => {
    const leader = await open(newDir(), { memtableBytes: 32 << 10, ...RETAIN })
    const followerDir = newDir()
    let follower = await openReplicated(followerDir, { memtableBytes: 32 << 10, ...RETAIN })
    await workload(leader, 40)
    const agreed = leader.stats().lastSequence
    await ship(leader, follower, false)
    follower.setReplication({ freezeLimit: agreed })
    await follower.compactRange()
    const tablesBefore = tableCount(follower)
    expect(tablesBefore).toBeGreaterThan(0)
    // The follower's own tail in a later epoch (as an old leader's writes that never committed).
    follower.setReplication({ freezeLimit: agreed, epoch: 7 })
    for (let i = 0; i < 50; i++) await follower.put(`tail${i}`, 'x'.repeat(100))
    await follower.writeNoop()
    expect(follower.stats().lastSequence).toBe(agreed + 51)
    expect(tableCount(follower)).toBe(tablesBefore) // nothing past the freeze limit was flushed
    // Not at a boundary, and below what is in tables: refused, nothing changes.
    await workload(leader, 40)
    const cutRecords = await follower.truncateLog(agreed)
    expect(cutRecords).toBe(51)
    expect(follower.stats().lastSequence).toBe(agreed)
    expect(follower.getSync('tail0')).toBeUndefined()
    await ship(leader, follower, false)
    expect(await contents(follower)).toEqual(await contents(leader))
    await follower.close()
    follower = await openReplicated(followerDir, RETAIN)
    expect(follower.stats().lastSequence).toBe(leader.stats().lastSequence)
    expect(await contents(follower)).toEqual(await contents(leader))
    await follower.close()
    await leader.close()
  })

  it('refuses a cut inside a record, below the tables or past the end, changing nothing', async () => {
    const dir = newDir()
    const db = await openReplicated(dir, RETAIN)
    await db.put('a', '1')
    await db.compactRange()
    db.setReplication({ freezeLimit: 1 }) // what follows is uncommitted: a close does not flush it
    await db.batch([
      { type: 'put', key: 'b', value: '2' },
      { type: 'put', key: 'c', value: '3' },
    ])
    await db.put('d', '4')
    expect(db.stats().lastSequence).toBe(4)
    await expect(db.truncateLog(2)).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT', message: expect.stringContaining('record boundary') })
    await db.close()
    const again = await openReplicated(dir, RETAIN)
    expect(again.stats().lastSequence).toBe(4)
    await expect(again.truncateLog(0)).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT', message: expect.stringContaining('in tables') })
    await expect(again.truncateLog(9)).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
    expect(again.getSync('d')?.toString()).toBe('4')
    expect(await again.truncateLog(3)).toBe(1)
    expect(again.getSync('d')).toBeUndefined()
    expect(again.getSync('c')?.toString()).toBe('3')
    await again.close()
    // What is left opens as a plain database too.
    const plain = await open(dir, RETAIN)
    expect(plain.getSync('c')?.toString()).toBe('3')
    expect(plain.getSync('d')).toBeUndefined()
    await plain.close()
  })

  it('a replicated open keeps replayed entries out of tables, and a WAL of only NOOPs, so both can still be cut', async () => {
    const dir = newDir()
    let db = await openReplicated(dir, RETAIN)
    db.setReplication({ freezeLimit: 0, epoch: 3 })
    await db.put('a', '1')
    await db.put('b', '2')
    await db.close()
    db = await openReplicated(dir, RETAIN)
    db.setReplication({ freezeLimit: 0, epoch: 4 })
    expect(tableCount(db)).toBe(0)
    expect(db.getSync('b')?.toString()).toBe('2')
    await db.truncateLog(0)
    expect(db.getSync('a')).toBeUndefined()
    expect(db.stats().lastSequence).toBe(0)
    await db.writeNoop()
    await db.close()
    db = await openReplicated(dir, RETAIN)
    expect(db.stats().lastSequence).toBe(1)
    await db.truncateLog(0)
    await db.close()
    db = await openReplicated(dir, RETAIN)
    expect(db.stats().lastSequence).toBe(0)
    await db.put('c', '3')
    expect((await db.getEntry('c'))?.version).toBe(1)
    await db.close()
  })
})
