import { describe, expect, it } from 'vitest'
import { TableVersion } from '../../src/manifest/table-version.js'
import type { TableMeta } from '../../src/manifest/table-meta.js'
import { FlushEstimator, WritePacer, compactionDebt } from '../../src/engine/write-pacing.js'
import { resolveOptions } from '../../src/options.js'

const MiB = 1 << 20
let n = 1
const table = (mb: number, lo = 'a', hi = 'z'): TableMeta => ({
  number: n++,
  fileBytes: mb * MiB,
  smallestKey: Buffer.from(lo),
  largestKey: Buffer.from(hi),
  smallestSeq: n * 10,
  largestSeq: n * 10 + 1,
  entryCount: 10,
  deleteCount: 0,
})
const l0 = (count: number): TableVersion =>
  TableVersion.empty().apply({ deleted: [], added: Array.from({ length: count }, () => ({ level: 0, table: table(1) })) })

describe('write pacing', () => {
  const o = resolveOptions({ l0CompactionTrigger: 4, l0SlowdownTrigger: 8, l0StopTrigger: 12, softPendingCompactionBytes: 100 * MiB, hardPendingCompactionBytes: 200 * MiB })

  it('is free below the soft threshold and grows in proportion to L0 files past it', () => {
    expect(compactionDebt(l0(7), o)).toBe(0)
    const steps = [8, 9, 10, 11].map((c) => compactionDebt(l0(c), o))
    for (let i = 1; i < steps.length; i++) expect(steps[i]).toBeGreaterThan(steps[i - 1])
    expect(steps[0]).toBeGreaterThan(0)
    expect(steps[3]).toBeLessThan(1)
    expect(compactionDebt(l0(12), o)).toBeGreaterThanOrEqual(1)
  })

  it('also counts pending compaction bytes against the byte thresholds', () => {
    const big = TableVersion.empty().apply({ deleted: [], added: [{ level: 1, table: table(30) }] })
    // L1 target 256 MiB by default: 30 MiB is within it.
    expect(compactionDebt(big, o)).toBe(0)
    const tight = resolveOptions({ levelBaseBytes: 10 * MiB, softPendingCompactionBytes: 100 * MiB, hardPendingCompactionBytes: 400 * MiB })
    // (30 - 10) MiB excess × (10 + 1) = 220 MiB pending: 40% of the way from soft to hard.
    const debt = compactionDebt(big, tight)
    expect(debt).toBeGreaterThan(0.35)
    expect(debt).toBeLessThan(0.45)
  })
})

describe('WritePacer (rate-based slowdown)', () => {
  /** Feeds unpaced groups of `bytes` every `everyMs` for `forMs`, starting at `t0`; returns the end time. */
  const unpaced = (p: WritePacer, bytes: number, everyMs: number, t0: number, forMs: number): number => {
    let t = t0
    for (; t < t0 + forMs; t += everyMs) p.record(bytes, false, t)
    return t
  }

  it('limits paced groups to the unpaced rate times (1 - debt), down to 5%', () => {
    const p = new WritePacer()
    const t = unpaced(p, 10_000, 1, 0, 2000) // 10 KB per ms
    expect(p.allowedBytesPerMs(0.5)).toBeGreaterThan(4_500)
    expect(p.allowedBytesPerMs(0.5)).toBeLessThan(5_500)
    expect(p.allowedBytesPerMs(0.99)).toBeCloseTo(500, -1) // the 5% floor
    // Token bucket: 100 groups of 10 KB at debt 0.5 take ~200 ms of waits.
    let now = t
    let waited = 0
    for (let i = 0; i < 100; i++) {
      const w = p.waitMs(now)
      waited += w
      now += w
      p.charge(10_000, 0.5, now)
    }
    expect(waited).toBeGreaterThan(180)
    expect(waited).toBeLessThan(220)
  })

  it('lets the first group after a pause go at once, and measures no rate while paced', () => {
    const p = new WritePacer()
    const t = unpaced(p, 1_000, 1, 0, 1000) // 1 KB per ms
    p.charge(50_000, 0.5, t) // 50 KB at 0.5 KB/ms: 100 ms until the next group
    expect(p.waitMs(t)).toBeGreaterThan(90)
    expect(p.waitMs(t + 1000)).toBe(0)
    for (let i = 0; i < 1000; i++) p.record(1_000_000, true, t + i) // paced groups do not count
    expect(p.allowedBytesPerMs(0)).toBeLessThan(1_200)
  })
})

describe('FlushEstimator (flush pacing)', () => {
  it('treats the first flush as late from its start, and expects nothing while none runs', () => {
    const f = new FlushEstimator()
    expect(f.remainingMs(1_000_000, 10)).toBe(0) // none runs
    f.started(0)
    expect(f.remainingMs(1_000_000, 0)).toBe(0) // no rate yet: half as long again as it has run
    expect(f.remainingMs(1_000_000, 10)).toBeCloseTo(5)
    f.finished(1_000_000, 100) // 10 KB per ms
    f.ended()
    expect(f.remainingMs(1_000_000, 200)).toBe(0) // none runs
  })

  it('predicts the end of the running flush from the smoothed rate of the ones before', () => {
    const f = new FlushEstimator()
    f.started(0)
    f.finished(1_000_000, 100) // 10 KB per ms
    f.ended()
    f.started(1000)
    expect(f.remainingMs(2_000_000, 1000)).toBeCloseTo(200)
    expect(f.remainingMs(2_000_000, 1100)).toBeCloseTo(100)
    // Late (past two thirds of the expected 200 ms): assumed to need half as long again as it ran, never 0.
    expect(f.remainingMs(2_000_000, 1150)).toBeCloseTo(75)
    expect(f.remainingMs(2_000_000, 5000)).toBeCloseTo(2000)
    f.finished(2_000_000, 400) // 5 KB per ms: the rate moves half way, to 7.5
    f.ended()
    f.started(2000)
    expect(f.remainingMs(750_000, 2000)).toBeCloseTo(100)
    expect(f.remainingMs(750_000, 2010)).toBeCloseTo(90)
  })

  it('charges paced groups at a given rate', () => {
    const p = new WritePacer()
    p.chargeAtRate(10_000, 100, 0) // 100 ms of bytes
    expect(p.waitMs(0)).toBeCloseTo(100)
    expect(() => p.chargeAtRate(1, 0, 0)).toThrow()
  })
})
