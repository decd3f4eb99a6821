import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { initChecksum } from '../../src/base/checksum.js'

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
