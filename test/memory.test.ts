import { spawn } from 'node:child_process'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { tempDir } from './unit/helpers.js'

let cleanup = (): void => {}
afterEach(() => cleanup())

const MiB = 1 << 20

/**
 * Runs test/fixtures/memory-writer.mjs in a fresh process (so RSS is its own),
 * which writes ~10x the memtable + block cache + table cache budget of random
 * 100-byte values, reads and scans, and reports its peak RSS.
 */
function runWriter(
  dir: string,
  options: object,
  valueBytes = 100,
): Promise<{ peakRss: number; baselineRss: number; budget: { totalBytes: number }; written: number; scanned: number; blobs: { filesWritten: number; valuesRead: number } }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.resolve('test/fixtures/memory-writer.mjs'), dir, JSON.stringify(options), String(valueBytes)])
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`writer exited ${code}: ${err}`))))
  })
}

/** Small memory settings, so that writing 10x the budget takes seconds. */
const options = {
  memtableBytes: 4 * MiB,
  blockCacheBytes: 4 * MiB,
  tableCacheBytes: 4 * MiB,
  targetTableBytes: 2 * MiB,
  levelBaseBytes: 8 * MiB,
}

describe('bounded memory', () => {
  it('keeps RSS under the budget derived from the options while writing 10x the budget', async () => {
    const t = tempDir('strata-mem-')
    cleanup = t.cleanup
    const r = await runWriter(t.dir, options)
    expect(r.written).toBeGreaterThanOrEqual(10 * 12 * MiB)
    expect(r.scanned).toBeGreaterThan(500_000)
    const bound = r.baselineRss + r.budget.totalBytes
    console.log(`memory: peak RSS ${(r.peakRss / MiB).toFixed(0)} MiB, baseline ${(r.baselineRss / MiB).toFixed(0)} MiB, budget ${(r.budget.totalBytes / MiB).toFixed(0)} MiB, bound ${(bound / MiB).toFixed(0)} MiB`)
    expect(r.peakRss).toBeLessThan(bound)
  })
  it('keeps RSS under the budget while writing 10x the budget of 256 KiB values (blob files)', async () => {
    const t = tempDir('strata-mem-')
    cleanup = t.cleanup
    const r = await runWriter(t.dir, options, 256 << 10)
    expect(r.written).toBeGreaterThanOrEqual(10 * 12 * MiB)
    // The values went to blob files, and the gets and the scan read them back from there (but those still in the memtable).
    expect(r.blobs.filesWritten).toBeGreaterThan(10)
    expect(r.blobs.valuesRead).toBeGreaterThan(r.scanned)
    const bound = r.baselineRss + r.budget.totalBytes
    console.log(`memory (256 KiB values): peak RSS ${(r.peakRss / MiB).toFixed(0)} MiB, baseline ${(r.baselineRss / MiB).toFixed(0)} MiB, budget ${(r.budget.totalBytes / MiB).toFixed(0)} MiB, bound ${(bound / MiB).toFixed(0)} MiB`)
    expect(r.peakRss).toBeLessThan(bound)
  })
})
