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

/** Deterministic PRNG (mulberry32) so failures reproduce from the printed seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export const b = (s: string): Buffer => Buffer.from(s, 'latin1')
