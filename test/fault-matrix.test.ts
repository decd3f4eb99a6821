/**
 * The fault matrix (issue #15): a clean run of a workload that exercises
 * every write path (sync and non-sync puts, deletes, batches, WAL switches,
 * flushes, compactions, manifest appends and rewrites forced by a small
 * maxManifestBytes, obsolete-file deletion, a close and a reopen) counts the
 * calls of each site of the file-system seam (an operation on a class of
 * file). Then every site is failed in turn with every fault that applies to
 * it (ENOSPC, EIO, a short write for writes, and a crash: the call never
 * returns and nothing after it reaches the disk). After each case the
 * database is reopened on the healthy file system and checked against a
 * model of what was acknowledged:
 *   - it opens (so no file the manifest names is missing);
 *   - every acknowledged write reads back with its value (or as deleted);
 *   - a write that was not acknowledged is either there or not, and no
 *     batch is partly visible;
 *   - while failed, the database served reads and `close()` released it.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { open, type Database, type OpenOptions } from '../src/index.js'
import { FaultInjectingFileSystem, SimulatedCrash, type Fault, type FileOp } from '../src/vfs/fault-injecting-file-system.js'
import type { FileClass } from '../src/vfs/file-system.js'
import { nodeFileSystem } from '../src/vfs/node-file-system.js'

const OPTIONS: OpenOptions = {
  memtableBytes: 8 << 10,
  blockBytes: 512,
  targetTableBytes: 4 << 10,
  levelBaseBytes: 16 << 10,
  l0CompactionTrigger: 2,
  l0SlowdownTrigger: 6,
  l0StopTrigger: 12,
  maxManifestBytes: 1024,
  blockCacheBytes: 64 << 10,
}

/** One write of the workload, as the model sees it. */
interface ModelWrite {
  /** key -> value (null: deleted). */
  ops: Array<[string, string | null]>
  batch: boolean
  state: 'pending' | 'acked' | 'failed'
}

interface RunResult {
  writes: ModelWrite[]
  /** Errors the workload saw after a fault, by code. */
  errorCodes: Set<string>
  /** Reads served after the database had failed, checked against acknowledged values. */
  readsWhileFailed: number
  closedCleanly: boolean
}

const value = (i: number, round: number): string => `v${round}-${i}-${'x'.repeat(40 + ((i * 37) % 160))}`

/**
 * The workload. Deterministic in what it issues; the file-system calls it
 * makes vary a little between runs (background flushes and compactions
 * interleave with the writes), so faults are placed in the first half of each
 * site's calls.
 */
async function runWorkload(dir: string, fileSystem: FaultInjectingFileSystem): Promise<RunResult> {
  const writes: ModelWrite[] = []
  const result: RunResult = { writes, errorCodes: new Set(), readsWhileFailed: 0, closedCleanly: false }
  const track = (p: Promise<void>, w: ModelWrite): Promise<void> =>
    p.then(
      () => void (w.state = 'acked'),
      (err: { code?: string }) => {
        w.state = 'failed'
        result.errorCodes.add(err.code ?? String(err))
      },
    )
  const put = (db: Database, key: string, v: string | null, sync: boolean): Promise<void> => {
    const w: ModelWrite = { ops: [[key, v]], batch: false, state: 'pending' }
    writes.push(w)
    return track(v === null ? db.delete(key, { sync }) : db.put(key, v, { sync }), w)
  }
  const batch = (db: Database, round: number, i: number): Promise<void> => {
    const ops: Array<[string, string | null]> = []
    for (let j = 0; j < 4; j++) ops.push([`b${round}-${i}-${j}`, value(i * 10 + j, round)])
    // A batch also overwrites a shared key, so batches and single writes interleave on it.
    ops.push([`k${i % 50}`, `batch-${round}-${i}`])
    const w: ModelWrite = { ops, batch: true, state: 'pending' }
    writes.push(w)
    return track(db.batch(ops.map(([key, v]) => ({ type: 'put' as const, key, value: v! }))), w)
  }

  let db: Database | undefined
  try {
    for (let round = 0; round < 2; round++) {
      // Round 0 leaves its last writes in the WAL (no flush on close): round 1's open replays them.
      db = await open(dir, { ...OPTIONS, fileSystem, flushOnClose: round === 1 })
      for (let i = 0; i < 240; i++) {
        const pending: Array<Promise<void>> = []
        const key = `k${(i * 7) % 50}`
        if (i % 11 === 5) pending.push(put(db, key, null, false))
        else pending.push(put(db, key, value(i, round), i % 9 === 0))
        // Concurrent writes share a group commit.
        if (i % 5 === 0) pending.push(put(db, `s${i % 13}`, value(i + 1, round), false))
        if (i % 17 === 3) pending.push(batch(db, round, i))
        await Promise.all(pending)
        if (db.stats().failure !== undefined) await readWhileFailed(db, writes, result)
      }
      if (round === 1) await db.compactRange()
      await db.close()
      db = undefined
    }
    result.closedCleanly = true
  } catch (err) {
    if (!(err instanceof SimulatedCrash)) result.errorCodes.add((err as { code?: string }).code ?? String(err))
    // An open that failed left nothing open.
    if (db === undefined) result.closedCleanly = !fileSystem.crashed
  } finally {
    if (db !== undefined) {
      // The database failed or the "process" crashed: close must still release it.
      await db.close().then(
        () => (result.closedCleanly = !fileSystem.crashed),
        (err: unknown) => {
          if (!fileSystem.crashed) throw err
        },
      )
    }
  }
  return result
}

/** After a failure reads go on: a key whose last write was acknowledged still reads back. */
async function readWhileFailed(db: Database, writes: ModelWrite[], result: RunResult): Promise<void> {
  const last = new Map<string, ModelWrite>()
  for (const w of writes) for (const [k] of w.ops) last.set(k, w)
  for (const [k, w] of last) {
    if (w.state !== 'acked') continue
    const expected = w.ops.find(([key]) => key === k)![1]
    const got = await db.get(k)
    expect(got?.toString() ?? null).toBe(expected)
    result.readsWhileFailed++
    return
  }
}

/** Checks the reopened database against the model; returns the number of keys checked. */
async function verify(dir: string, writes: ModelWrite[]): Promise<number> {
  const db = await open(dir, { ...OPTIONS, fileSystem: nodeFileSystem, createIfMissing: true })
  try {
    const actual = new Map<string, string>()
    for await (const [k, v] of db.iterator()) actual.set(k.toString(), v.toString())
    // Per key: the values it may hold are those of its last acknowledged write and of any later write.
    const history = new Map<string, Array<{ v: string | null; w: ModelWrite }>>()
    for (const w of writes) for (const [k, v] of w.ops) (history.get(k) ?? history.set(k, []).get(k)!).push({ v, w })
    for (const [k, h] of history) {
      let from = -1
      h.forEach((e, i) => e.w.state === 'acked' && (from = i))
      const allowed = new Set<string | null>(h.slice(Math.max(0, from)).map((e) => e.v))
      if (from < 0) allowed.add(null)
      const got = actual.get(k) ?? null
      if (!allowed.has(got)) {
        throw new Error(`key ${k}: found ${got?.slice(0, 20)}, allowed ${[...allowed].map((a) => a?.slice(0, 20)).join(' | ')} (last acknowledged write #${from})`)
      }
      expect(db.getSync(k)?.toString() ?? null).toBe(got)
    }
    for (const k of actual.keys()) expect(history.has(k), `unexpected key ${k}`).toBe(true)
    // Batches are all or nothing: their own keys (b*) are written once, so each is there iff the batch is.
    for (const w of writes) {
      if (!w.batch) continue
      const own = w.ops.filter(([k]) => k.startsWith('b'))
      const present = own.filter(([k, v]) => actual.get(k) === v).length
      if (w.state === 'acked') expect(present).toBe(own.length)
      else expect([0, own.length]).toContain(present)
    }
    return history.size
  } finally {
    await db.close()
  }
}

const faultsFor = (op: FileOp): Fault[] => (op === 'write' ? ['ENOSPC', 'EIO', 'short-write', 'crash'] : ['ENOSPC', 'EIO', 'crash'])

/** Sites the workload must reach: if it stops reaching one, the matrix would silently shrink. */
const REQUIRED_SITES = [
  'mkdir:directory',
  'readdir:directory',
  'syncDir:directory',
  'open:wal',
  'write:wal',
  'sync:wal',
  'read:wal',
  'unlink:wal',
  'open:table',
  'write:table',
  'sync:table',
  'read:table',
  'unlink:table',
  'open:manifest',
  'write:manifest',
  'sync:manifest',
  'read:manifest',
  'unlink:manifest',
  'read:current',
  'rename:current',
  'write:temp',
  'sync:temp',
]

describe('fault matrix: every site of the file-system seam, every fault', () => {
  it('loses no acknowledged write, shows no partial batch, and always reopens', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-faults-'))
    const started = performance.now()
    try {
      const cleanFs = new FaultInjectingFileSystem(nodeFileSystem)
      const clean = await runWorkload(path.join(root, 'clean'), cleanFs)
      expect(clean.closedCleanly).toBe(true)
      expect(clean.writes.every((w) => w.state === 'acked')).toBe(true)
      await verify(path.join(root, 'clean'), clean.writes)
      const sites = [...cleanFs.counts.entries()].sort(([a], [b]) => a.localeCompare(b))
      for (const s of REQUIRED_SITES) expect(cleanFs.counts.get(s) ?? 0, `clean run never reached ${s}`).toBeGreaterThan(0)

      let cases = 0
      const failures: string[] = []
      for (const [site, count] of sites) {
        const [op, fileClass] = site.split(':') as [FileOp, FileClass]
        const nth = Math.max(1, Math.floor(count / 2))
        for (const fault of faultsFor(op)) {
          const name = `${site}#${nth}/${count} ${fault}`
          const dir = path.join(root, `case-${cases++}`)
          const faultFs = new FaultInjectingFileSystem(nodeFileSystem).inject({ op, fileClass, nth, fault })
          try {
            const run = await runWorkload(dir, faultFs)
            expect(faultFs.fired.length, `${name}: the fault never fired`).toBeGreaterThan(0)
            if (fault !== 'crash') expect(run.closedCleanly, `${name}: close() after the failure`).toBe(true)
            await verify(dir, run.writes)
          } catch (err) {
            failures.push(`${name}: ${(err as Error).message}`)
          }
          fs.rmSync(dir, { recursive: true, force: true })
        }
      }
      const seconds = ((performance.now() - started) / 1000).toFixed(1)
      console.log(`fault matrix: ${cases} (site, fault) cases over ${sites.length} sites in ${seconds} s: ${sites.map(([s, n]) => `${s}=${n}`).join(' ')}`)
      expect(failures).toEqual([])
    } finally {
      fs.rmSync(root, { recursive: true, force: true })
    }
  }, 300_000)
})
