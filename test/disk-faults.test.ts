/**
 * Disk faults, one finding of issue #15 per test (each failed on the code
 * before the fix), and the read-only state with `resume()`. Faults are
 * injected through the file-system seam (FaultInjectingFileSystem) into a
 * real directory; every check reopens on the real file system.
 */
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { open, type BackgroundErrorInfo, type Database, type OpenOptions } from '../src/index.js'
import { TableVersionSet } from '../src/manifest/table-version-set.js'
import { TableVersion } from '../src/manifest/table-version.js'
import { initChecksum } from '../src/base/checksum.js'
import { FaultInjectingFileSystem } from '../src/vfs/fault-injecting-file-system.js'
import { nodeFileSystem } from '../src/vfs/node-file-system.js'

const dirs: string[] = []
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-disk-'))
  dirs.push(dir)
  return dir
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

const SMALL: OpenOptions = { memtableBytes: 16 << 10, blockBytes: 512, autoCompaction: false }

async function fill(db: Database, prefix: string, n: number): Promise<Map<string, string>> {
  const written = new Map<string, string>()
  for (let i = 0; i < n; i++) {
    const k = `${prefix}${String(i).padStart(5, '0')}`
    const v = `${k}-${'v'.repeat(100)}`
    await db.put(k, v)
    written.set(k, v)
  }
  return written
}

async function expectAll(dir: string, expected: Map<string, string>): Promise<void> {
  const db = await open(dir, { createIfMissing: false })
  try {
    for (const [k, v] of expected) expect(db.getSync(k)?.toString(), k).toBe(v)
  } finally {
    await db.close()
  }
}

/** The next call of `site` on `faultFs` (counted from now). */
const next = (faultFs: FaultInjectingFileSystem, site: string): number => (faultFs.counts.get(site) ?? 0) + 1

describe('findings of issue #15', () => {
  it('1a: a manifest rewrite that fails after a compaction deletes no input table; the database reopens', async () => {
    const dir = tempDir()
    const faultFs = new FaultInjectingFileSystem(nodeFileSystem)
    // Every edit rewrites the manifest.
    const options = { ...SMALL, maxManifestBytes: 1, fileSystem: faultFs }
    let db = await open(dir, options)
    const written = await fill(db, 'a', 400)
    await db.compactRange()
    for (const [k, v] of await fill(db, 'b', 200)) written.set(k, v)
    await db.close() // flushes to L0: the next compaction has inputs on two levels
    db = await open(dir, options)
    faultFs.inject({ op: 'open', fileClass: 'manifest', nth: next(faultFs, 'open:manifest'), fault: 'ENOSPC' })
    await expect(db.compactRange()).rejects.toMatchObject({ code: 'STRATA_READ_ONLY' })
    expect(db.stats().failure).toMatchObject({ where: 'manifest', errno: 'ENOSPC' })
    await db.close()
    await expectAll(dir, written)
  })

  it('1b: a manifest rewrite that fails after a flush keeps the old WAL, also when an iterator closes later', async () => {
    const dir = tempDir()
    const faultFs = new FaultInjectingFileSystem(nodeFileSystem)
    const db = await open(dir, { ...SMALL, maxManifestBytes: 1, fileSystem: faultFs })
    await db.put('acknowledged', 'synced', { sync: true })
    const it = db.iterator()
    faultFs.inject({ op: 'open', fileClass: 'manifest', nth: next(faultFs, 'open:manifest'), fault: 'ENOSPC' })
    await expect(db.compactRange()).rejects.toMatchObject({ code: 'STRATA_READ_ONLY' })
    it.close()
    await db.close()
    await expectAll(dir, new Map([['acknowledged', 'synced']]))
  })

  it('2: after a short write to the manifest, no later edit is appended and the manifest recovers', async () => {
    await initChecksum()
    const dir = tempDir()
    const faultFs = new FaultInjectingFileSystem(nodeFileSystem)
    const vs = new TableVersionSet(faultFs, dir, { tableVersion: TableVersion.empty(), logNumber: 0, nextFileNumber: 1, lastSequence: 0 }, 16 << 20)
    vs.writeSnapshotManifest()
    faultFs.inject({ op: 'write', fileClass: 'manifest', nth: next(faultFs, 'write:manifest'), fault: 'short-write' })
    await expect(vs.logAndApply({ logNumber: 5, added: [], deleted: [] }, 10)).rejects.toMatchObject({ code: 'STRATA_IO_ERROR' })
    // The disk has room again: the manifest must still refuse, its tail is torn.
    await expect(vs.logAndApply({ logNumber: 6, added: [], deleted: [] }, 11)).rejects.toMatchObject({ code: 'STRATA_IO_ERROR' })
    expect(vs.logNumber).toBe(0)
    vs.close()
    const recovered = TableVersionSet.recover(nodeFileSystem, dir)!
    expect(recovered.logNumber).toBe(0)
  })

  it('3: a damaged last WAL record is reported by the open (stats().recovery), not dropped silently', async () => {
    const dir = tempDir()
    let db = await open(dir, { flushOnClose: false })
    for (let i = 0; i < 10; i++) await db.put(`k${i}`, `v${i}`, { sync: true })
    await db.close()
    const wal = fs.readdirSync(dir).filter((n) => n.endsWith('.log')).sort().at(-1)!
    const file = path.join(dir, wal)
    const bytes = fs.readFileSync(file)
    bytes[bytes.length - 2] ^= 0xff // inside the last record's payload
    fs.writeFileSync(file, bytes)
    db = await open(dir)
    const { recovery } = db.stats()
    expect(recovery.droppedTails).toEqual([{ file: wal, bytes: expect.any(Number), records: 1 }])
    expect(recovery.droppedTails[0].bytes).toBeGreaterThan(12)
    expect(recovery.warnings.join('\n')).toMatch(/dropped a torn or damaged tail/)
    expect(db.getSync('k8')?.toString()).toBe('v8')
    expect(db.getSync('k9')).toBeUndefined()
    await db.close()
  })

  it('7: an fdatasync EIO on a manifest append deletes nothing the edit names; the database reopens', async () => {
    const dir = tempDir()
    const faultFs = new FaultInjectingFileSystem(nodeFileSystem)
    const db = await open(dir, { ...SMALL, fileSystem: faultFs })
    const written = await fill(db, 'k', 300)
    faultFs.inject({ op: 'sync', fileClass: 'manifest', nth: next(faultFs, 'sync:manifest'), fault: 'EIO' })
    await expect(db.compactRange()).rejects.toMatchObject({ code: 'STRATA_READ_ONLY' })
    expect(db.stats().failure).toMatchObject({ where: 'manifest', errno: 'EIO' })
    await db.close()
    await expectAll(dir, written)
  })

  it('8: an unlink EIO while deleting obsolete files is reported, not an unhandled rejection; writes go on', async () => {
    const dir = tempDir()
    const faultFs = new FaultInjectingFileSystem(nodeFileSystem)
    const reports: BackgroundErrorInfo[] = []
    const unhandled: unknown[] = []
    const onUnhandled = (err: unknown): void => void unhandled.push(err)
    process.on('unhandledRejection', onUnhandled)
    try {
      const db = await open(dir, { ...SMALL, l0CompactionTrigger: 2, autoCompaction: true, fileSystem: faultFs, onBackgroundError: (i) => reports.push(i) })
      faultFs.inject({ op: 'unlink', fileClass: 'table', nth: 1, fault: 'EIO', sticky: true })
      const written = await fill(db, 'k', 1500)
      await db.compactRange()
      await new Promise((r) => setTimeout(r, 50))
      expect(unhandled).toEqual([])
      const { deleteFailures, failure } = db.stats()
      expect(failure).toBeUndefined()
      expect(deleteFailures.count).toBeGreaterThan(0)
      expect(deleteFailures.last).toMatchObject({ where: 'obsolete-file-deletion', errno: 'EIO' })
      expect(reports.some((r) => !r.readOnly && r.where === 'obsolete-file-deletion')).toBe(true)
      await db.put('after', 'still writable')
      written.set('after', 'still writable')
      await db.close()
      await expectAll(dir, written)
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })
})

describe('the read-only state and resume()', () => {
  it('serves reads, rejects writes with STRATA_READ_ONLY, reports once, and close() releases the directory', async () => {
    const dir = tempDir()
    const faultFs = new FaultInjectingFileSystem(nodeFileSystem)
    const reports: BackgroundErrorInfo[] = []
    const db = await open(dir, { ...SMALL, fileSystem: faultFs, onBackgroundError: (i) => reports.push(i) })
    await db.put('before', '1')
    faultFs.inject({ op: 'write', fileClass: 'wal', nth: next(faultFs, 'write:wal'), fault: 'ENOSPC', sticky: true })
    await expect(db.put('during', '2')).rejects.toMatchObject({ code: 'STRATA_READ_ONLY' })
    await expect(db.put('later', '3')).rejects.toMatchObject({ code: 'STRATA_READ_ONLY' })
    expect(db.getSync('before')?.toString()).toBe('1')
    expect(await db.get('during')).toBeUndefined()
    expect(reports).toHaveLength(1)
    expect(reports[0]).toMatchObject({ where: 'wal-write', errno: 'ENOSPC', readOnly: true })
    expect(reports[0].error.code).toBe('STRATA_READ_ONLY')
    expect(db.stats().failure).toMatchObject({ where: 'wal-write', errno: 'ENOSPC' })
    await db.close()
    const again = await open(dir)
    expect(again.getSync('before')?.toString()).toBe('1')
    await again.close()
  })

  it('resume() fails while the disk is still full, succeeds once it is cleared, and loses nothing', async () => {
    const dir = tempDir()
    const faultFs = new FaultInjectingFileSystem(nodeFileSystem)
    const db = await open(dir, { ...SMALL, fileSystem: faultFs })
    const written = await fill(db, 'a', 300)
    faultFs.inject({ op: 'write', fileClass: 'wal', nth: next(faultFs, 'write:wal'), fault: 'short-write' })
    faultFs.inject({ op: 'open', fileClass: 'wal', nth: next(faultFs, 'open:wal'), fault: 'ENOSPC', sticky: true })
    await expect(db.put('torn', 'x')).rejects.toMatchObject({ code: 'STRATA_READ_ONLY' })
    expect(await db.resume()).toBe(false)
    expect(db.stats().failure).toMatchObject({ where: 'resume', errno: 'ENOSPC' })
    // An open iterator keeps the engine's files: resume refuses until it is closed.
    faultFs.heal()
    const it = db.iterator()
    expect(await db.resume()).toBe(false)
    it.close()
    expect(await db.resume()).toBe(true)
    expect(db.stats().failure).toBeUndefined()
    expect(db.stats().recovery.droppedTails).toHaveLength(1) // the short write's torn record
    for (const [k, v] of await fill(db, 'b', 300)) written.set(k, v)
    for (const [k, v] of written) expect(db.getSync(k)?.toString(), k).toBe(v)
    expect(await db.resume()).toBe(true) // nothing to do
    await db.close()
    await expectAll(dir, written)
  })

  it('resume() after ENOSPC clears, then more writes, then a kill -9: every acknowledged write survives', async () => {
    const dir = tempDir()
    const script = fileURLToPath(new URL('./fixtures/resume-writer.mjs', import.meta.url))
    const child = spawn(process.execPath, [script, dir], { stdio: ['ignore', 'pipe', 'inherit'] })
    const acked: string[] = []
    let buffered = ''
    let resumed = false
    await new Promise<void>((resolve, reject) => {
      child.on('error', reject)
      child.on('exit', (code) => reject(new Error(`writer exited early with ${code}`)))
      child.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString()
        const lines = buffered.split('\n')
        buffered = lines.pop()!
        for (const line of lines) {
          if (line === 'resumed') resumed = true
          else if (line.startsWith('ack ')) acked.push(line.slice(4))
          if (resumed && acked.length >= 1500) {
            child.kill('SIGKILL')
            resolve()
          }
        }
      })
    })
    await new Promise((r) => child.once('close', r))
    expect(resumed).toBe(true)
    const db = await open(dir)
    try {
      for (const k of acked) expect(db.getSync(k)?.toString(), k).toBe(`value-of-${k}`)
    } finally {
      await db.close()
    }
  })
})
