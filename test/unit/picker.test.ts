import { describe, expect, it } from 'vitest'
import { TableVersion } from '../../src/manifest/table-version.js'
import type { TableMeta } from '../../src/manifest/table-meta.js'
import {
  levelScores,
  levelTargetBytes,
  pendingCompactionBytes,
  pickCompaction,
  pickRangeCompaction,
  type CompactionPolicy,
} from '../../src/compaction/picker.js'

const MB = 1 << 20
const policy: CompactionPolicy = { levelBaseBytes: 10 * MB, levelSizeMultiplier: 10, l0CompactionTrigger: 4, targetTableBytes: 2 * MB }

let nextNumber = 1
function t(lo: string, hi: string, mb: number, extra: Partial<TableMeta> = {}): TableMeta {
  const n = nextNumber++
  return {
    number: n,
    fileBytes: mb * MB,
    smallestKey: Buffer.from(lo),
    largestKey: Buffer.from(hi),
    smallestSeq: n * 10,
    largestSeq: n * 10 + 5,
    entryCount: 1000,
    deleteCount: 0,
    ...extra,
  }
}

function tableVersion(levels: TableMeta[][]): TableVersion {
  const added = levels.flatMap((tables, level) => tables.map((table) => ({ level, table })))
  return TableVersion.empty().apply({ deleted: [], added })
}

const none = new Set<number>()
const noCursors: Array<Buffer | undefined> = []

describe('compaction picker', () => {
  it('scores L0 by file count and deeper levels by bytes over target', () => {
    const v = tableVersion([[t('a', 'z', 1), t('a', 'z', 1)], [t('a', 'c', 15)], [t('a', 'b', 50)]])
    const scores = levelScores(v, policy)
    expect(scores[0]).toBe(0.5)
    expect(scores[1]).toBe(1.5)
    expect(scores[2]).toBe(0.5)
    expect(levelTargetBytes(3, policy)).toBe(1000 * MB)
  })

  it('does nothing when every level is within target', () => {
    const v = tableVersion([[t('a', 'z', 1)], [t('a', 'c', 5)]])
    expect(pickCompaction(v, policy, none, noCursors)).toBeUndefined()
    expect(pendingCompactionBytes(v, policy)).toBe(0)
  })

  it('takes all of L0 with the overlapping L1 tables and L2 grandparents', () => {
    const l1 = [t('a', 'c', 1), t('d', 'f', 1), t('x', 'y', 1)]
    const l2 = [t('a', 'b', 1), t('e', 'e', 1), t('z', 'z', 1)]
    const l0 = [t('b', 'd', 1), t('c', 'e', 1), t('a', 'b', 1), t('d', 'd', 1)]
    const p = pickCompaction(tableVersion([l0, l1, l2]), policy, none, noCursors)!
    expect(p.reason).toBe('l0')
    expect(p.level).toBe(0)
    expect(p.outputLevel).toBe(1)
    expect(p.inputs.map((x) => x.number).sort()).toEqual(l0.map((x) => x.number).sort())
    expect(p.overlapping.map((x) => x.number)).toEqual([l1[0].number, l1[1].number])
    expect(p.grandparents.map((x) => x.number)).toEqual([l2[0].number, l2[1].number])
  })

  it('picks the level with the highest score and rotates through its tables', () => {
    const l1 = [t('a', 'b', 8), t('c', 'd', 8), t('e', 'f', 8)] // 24 MB over a 10 MB target
    const l2 = [t('a', 'a', 1), t('c', 'c', 1)]
    const v = tableVersion([[], l1, l2])
    const first = pickCompaction(v, policy, none, noCursors)!
    expect(first.reason).toBe('size')
    expect(first.inputs[0].number).toBe(l1[0].number)
    expect(first.overlapping.map((x) => x.number)).toEqual([l2[0].number])
    const cursors: Array<Buffer | undefined> = [undefined, first.inputs[0].largestKey]
    const second = pickCompaction(v, policy, none, cursors)!
    expect(second.inputs[0].number).toBe(l1[1].number)
    cursors[1] = Buffer.from('f')
    expect(pickCompaction(v, policy, none, cursors)!.inputs[0].number).toBe(l1[0].number)
  })

  it('skips tables a running compaction owns', () => {
    const l1 = [t('a', 'b', 8), t('c', 'd', 8)]
    const l2 = [t('a', 'a', 1)]
    const v = tableVersion([[], l1, l2])
    const busy = new Set([l2[0].number])
    expect(pickCompaction(v, policy, busy, noCursors)!.inputs[0].number).toBe(l1[1].number)
    expect(pickCompaction(v, policy, new Set([l2[0].number, l1[1].number]), noCursors)).toBeUndefined()
  })

  it('pushes tombstone-heavy tables down when nothing else is due', () => {
    const heavy = t('m', 'n', 1, { deleteCount: 900 })
    const v = tableVersion([[], [t('a', 'b', 1), heavy], []])
    const p = pickCompaction(v, policy, none, noCursors)!
    expect(p.reason).toBe('tombstones')
    expect(p.inputs).toEqual([heavy])
    expect(p.outputLevel).toBe(2)
  })

  it('plans manual compactions of a range, level by level', () => {
    const l1 = [t('a', 'c', 1), t('d', 'f', 1), t('g', 'h', 1)]
    const v = tableVersion([[t('e', 'e', 1)], l1])
    expect(pickRangeCompaction(v, 1, Buffer.from('b'), Buffer.from('d'), none)!.inputs.map((x) => x.number)).toEqual([
      l1[0].number,
      l1[1].number,
    ])
    expect(pickRangeCompaction(v, 0, Buffer.from('x'), undefined, none)).toBeUndefined()
    expect(pickRangeCompaction(v, 6, undefined, undefined, none)).toBeUndefined()
  })

  it('estimates pending compaction bytes from level excess', () => {
    const v = tableVersion([[], [t('a', 'b', 12)], []])
    expect(pendingCompactionBytes(v, policy)).toBe(2 * MB * 11)
  })
})
