import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ObsoleteFileDeleter, type LiveFiles } from '../../src/engine/obsolete-files.js'
import { FaultInjectingFileSystem } from '../../src/vfs/fault-injecting-file-system.js'
import type { FileSystem } from '../../src/vfs/file-system.js'
import { nodeFileSystem } from '../../src/vfs/node-file-system.js'
import type { StrataError } from '../../src/base/errors.js'
import { tempDir } from './helpers.js'

let cleanup = (): void => {}
afterEach(() => cleanup())

/** Tables 1-4 and WALs 5-6 on disk, plus a stale CURRENT temp file; table 2 and WAL 6 are live. */
function directory(): { dir: string; live: LiveFiles; dropped: number[] } {
  const t = tempDir('strata-obsolete-')
  cleanup = t.cleanup
  for (const name of ['000001.sst', '000002.sst', '000003.sst', '000004.sst', '000005.log', '000006.log', 'CURRENT.000007.tmp']) {
    fs.writeFileSync(path.join(t.dir, name), 'x')
  }
  const dropped: number[] = []
  const live: LiveFiles = {
    liveTables: new Set([2]),
    logNumber: 6,
    manifestNumber: 0,
    beforeTableDelete: (n) => dropped.push(n),
    beforeBlobDelete: () => undefined,
    walRetention: { pinnedFrom: Infinity, bytes: 0, ms: 0, nowMs: Date.now() },
  }
  return { dir: t.dir, live, dropped }
}

const names = (dir: string): string[] => fs.readdirSync(dir).sort()

describe('ObsoleteFileDeleter', () => {
  it('drops obsolete tables at the call and unlinks the files afterwards, off the event loop', async () => {
    const { dir, live, dropped } = directory()
    let release = (): void => {}
    const gate = new Promise<void>((resolve) => (release = resolve))
    const started: string[] = []
    // unlinks wait for the gate: what the call itself did is visible before any of them ran.
    const slow: FileSystem = {
      ...nodeFileSystem,
      unlinkAsync: async (file) => {
        started.push(path.basename(file))
        await gate
        await nodeFileSystem.unlinkAsync(file)
      },
    }
    const failures: StrataError[] = []
    const deleter = new ObsoleteFileDeleter(slow, dir, (e) => failures.push(e))
    deleter.deleteObsolete(live)
    expect(dropped.sort()).toEqual([1, 3, 4])
    // The temp file goes at once; the numbered files are still there.
    expect(names(dir)).toEqual(['000001.sst', '000002.sst', '000003.sst', '000004.sst', '000005.log', '000006.log'])
    // A second pass meanwhile queues nothing twice.
    deleter.deleteObsolete(live)
    await new Promise((resolve) => setImmediate(resolve))
    release()
    await deleter.idle()
    expect(names(dir)).toEqual(['000002.sst', '000006.log'])
    expect(started.sort()).toEqual(['000001.sst', '000003.sst', '000004.sst', '000005.log'])
    expect(failures).toEqual([])
  })

  it('reports a failed unlink after trying the others, and the next pass tries it again', async () => {
    const { dir, live } = directory()
    const faultFs = new FaultInjectingFileSystem(nodeFileSystem).inject({ op: 'unlink', fileClass: 'table', nth: 1, fault: 'EIO' })
    const failures: StrataError[] = []
    const deleter = new ObsoleteFileDeleter(faultFs, dir, (e) => failures.push(e))
    deleter.deleteObsolete(live)
    await deleter.idle()
    expect(failures.map((e) => e.code)).toEqual(['STRATA_IO_ERROR'])
    expect(names(dir)).toEqual(['000001.sst', '000002.sst', '000006.log'])
    deleter.deleteObsolete(live)
    await deleter.idle()
    expect(names(dir)).toEqual(['000002.sst', '000006.log'])
    expect(failures.length).toBe(1)
  })
})
