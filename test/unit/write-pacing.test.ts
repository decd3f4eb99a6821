import { describe, expect, it } from 'vitest'
import { Version } from '../../src/manifest/version.js'
import type { TableMeta } from '../../src/manifest/table-meta.js'
import { compactionDebt } from '../../src/engine/write-pacing.js'
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
const l0 = (count: number): Version =>
  Version.empty().apply({ deleted: [], added: Array.from({ length: count }, () => ({ level: 0, table: table(1) })) })

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
    const big = Version.empty().apply({ deleted: [], added: [{ level: 1, table: table(30) }] })
    // L1 target 256 MiB by default: 30 MiB is within it.
    expect(compactionDebt(big, o)).toBe(0)
    const tight = resolveOptions({ levelBaseBytes: 10 * MiB, softPendingCompactionBytes: 100 * MiB, hardPendingCompactionBytes: 400 * MiB })
    // (30 - 10) MiB excess × (10 + 1) = 220 MiB pending: 40% of the way from soft to hard.
    const debt = compactionDebt(big, tight)
    expect(debt).toBeGreaterThan(0.35)
    expect(debt).toBeLessThan(0.45)
  })
})
