import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { initChecksum } from '../../src/base/checksum.js'
import type { File, FileSystem } from '../../src/vfs/file-system.js'
import { nodeFileSystem } from '../../src/vfs/node-file-system.js'

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'strata-unit-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

/** Modules that hash need the wasm module ready. */
export async function ready(): Promise<void> {
  await initChecksum()
}

/** Deterministic PRNG (mulberry32) so failures reproduce from the printed seed; shared with the crash fixtures. */
export { makeRng as rng } from '../fixtures/crash-format.mjs'

export const b = (s: string): Buffer => Buffer.from(s, 'latin1')

/**
 * The real file system, with some calls of the files whose names end with
 * `suffix` replaced: `hooks(inner)` returns the replacements, given the real
 * file (a slow disk's write or fdatasync, for tests of pacing and of the
 * event loop).
 */
export function withFileHooks(suffix: string, hooks: (inner: File) => Partial<File>): FileSystem {
  return {
    ...nodeFileSystem,
    open(file: string, flags): File {
      const inner = nodeFileSystem.open(file, flags)
      if (!file.endsWith(suffix)) return inner
      return {
        path: inner.path,
        read: (...a) => inner.read(...a),
        write: (...a) => inner.write(...a),
        writeChunks: (chunks) => inner.writeChunks(chunks),
        datasync: () => inner.datasync(),
        datasyncSync: () => inner.datasyncSync(),
        size: () => inner.size(),
        close: () => inner.close(),
        ...hooks(inner),
      }
    },
  }
}
