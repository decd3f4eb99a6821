/**
 * `strata bench`: the deterministic streams, the figures, and a small run of
 * the built command (dist/, built by `pretest`) end to end.
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { KeyFormat, ValuePool, randomIndices, streamSeed } from '../src/cli/bench/key-stream.js'
import { formatNs } from '../src/cli/bench/report.js'
import { median } from '../src/cli/bench/summary.js'

const CLI = fileURLToPath(new URL('../dist/cli/strata.js', import.meta.url))

describe('bench streams', () => {
  it('gives the same keys for the same seed and label, other keys otherwise', () => {
    const a = randomIndices(1000, 500, streamSeed(7, 'fillrandom'))
    expect(randomIndices(1000, 500, streamSeed(7, 'fillrandom'))).toEqual(a)
    expect(randomIndices(1000, 500, streamSeed(7, 'overwrite'))).not.toEqual(a)
    expect(randomIndices(1000, 500, streamSeed(8, 'fillrandom'))).not.toEqual(a)
    expect(Math.max(...a)).toBeLessThan(500)
    expect(new Set(a).size).toBeGreaterThan(400) // about 1 - 1/e^2 of 500 distinct
  })

  it('writes keys as zero-padded decimal, so byte order is numeric order', () => {
    const keys = new KeyFormat(16)
    expect(keys.encode(0).toString()).toBe('0000000000000000')
    expect(keys.encode(1234567).toString()).toBe('0000000001234567')
    expect(Buffer.compare(keys.encode(99), keys.encode(100))).toBe(-1)
  })

  it('cuts deterministic values of the requested size', () => {
    const a = new ValuePool(100, 1)
    const b = new ValuePool(100, 1)
    expect(a.valueFor(5)).toHaveLength(100)
    expect(a.valueFor(5).equals(b.valueFor(5))).toBe(true)
    expect(a.valueFor(5).equals(a.valueFor(6))).toBe(false)
  })
})

describe('bench figures', () => {
  it('takes medians and formats durations', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 2, 3])).toBe(2.5)
    expect(formatNs(850)).toBe('850ns')
    expect(formatNs(1234)).toBe('1.23µs')
    expect(formatNs(45_600_000)).toBe('45.6ms')
    expect(formatNs(2_100_000_000)).toBe('2.10s')
  })
})

describe('strata bench command', () => {
  it('runs every workload on every engine and writes the JSON report', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bench-test-'))
    try {
      const out = path.join(dir, 'results.json')
      const run = spawnSync(process.execPath, [CLI, 'bench', '--num', '2000', '--out', out], { encoding: 'utf8', timeout: 120_000 })
      expect(run.status, run.stderr).toBe(0)
      expect(run.stdout).toContain('machine:')
      const report = JSON.parse(fs.readFileSync(out, 'utf8')) as {
        engines: Array<{ name: string; available: boolean }>
        results: Array<{ workload: string; engine: string; ok: boolean; error?: string; found?: number }>
      }
      const engines = report.engines.filter((e) => e.available).map((e) => e.name)
      expect(engines).toContain('stratadb')
      expect(report.results).toHaveLength(8 * engines.length)
      for (const r of report.results) expect(r.ok, `${r.workload} ${r.engine}: ${r.error}`).toBe(true)
      for (const workload of ['readrandom', 'readrandom-async']) {
        const found = report.results.filter((r) => r.workload === workload).map((r) => r.found)
        expect(new Set(found).size).toBe(1)
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('rejects an unknown workload', () => {
    const run = spawnSync(process.execPath, [CLI, 'bench', 'fillsideways'], { encoding: 'utf8', timeout: 30_000 })
    expect(run.status).not.toBe(0)
    expect(run.stderr).toContain('unknown workload fillsideways')
  })
})
