import { NUM_LEVELS } from '../manifest/table-version-edit.js'
import { mayHoldCovered, overlapsRange, type TableMeta } from '../manifest/table-meta.js'
import { tombstoneOverlaps } from '../base/range-tombstones.js'
import type { TableVersion } from '../manifest/table-version.js'
import { garbageRatio } from '../manifest/blob-file-meta.js'

/**
 * Leveled compaction policy, as pure functions of a TableVersion (no I/O, no
 * state of their own), so they can be unit-tested on synthetic tables.
 *
 * Scores: L0 = tables / l0CompactionTrigger; Ln = bytes / target(n) with
 * target(1) = levelBaseBytes and target(n+1) = target(n) × levelSizeMultiplier.
 * The level with the highest score >= 1 is compacted into the next one. When
 * no level needs it, a table where deletes are at least TOMBSTONE_RATIO of the
 * entries is pushed down, so deleted ranges stop costing scans.
 */
export interface CompactionPolicy {
  levelBaseBytes: number
  levelSizeMultiplier: number
  l0CompactionTrigger: number
  targetTableBytes: number
}

/** What one compaction merges and where the result goes. */
export interface CompactionPlan {
  level: number
  outputLevel: number
  /** Tables taken from `level`. */
  inputs: TableMeta[]
  /** Tables of `outputLevel` overlapping the inputs' key range. */
  overlapping: TableMeta[]
  /** Tables of `outputLevel + 1` overlapping that range (outputs are cut to keep overlap with them small). */
  grandparents: TableMeta[]
  reason: 'l0' | 'size' | 'tombstones' | 'manual' | 'blob-gc' | 'range-delete'
}

export const TOMBSTONE_RATIO = 0.5
const TOMBSTONE_MIN_ENTRIES = 64

export function levelTargetBytes(level: number, policy: CompactionPolicy): number {
  if (level === 0) return 0
  return policy.levelBaseBytes * policy.levelSizeMultiplier ** (level - 1)
}

export function levelBytes(tables: readonly TableMeta[]): number {
  let n = 0
  for (const t of tables) n += t.fileBytes
  return n
}

/** Score per level (the last level never needs compaction: it has nowhere to go). */
export function levelScores(tableVersion: TableVersion, policy: CompactionPolicy): number[] {
  return tableVersion.levels.map((tables, level) => {
    if (level === NUM_LEVELS - 1) return 0
    if (level === 0) return tables.length / policy.l0CompactionTrigger
    return levelBytes(tables) / levelTargetBytes(level, policy)
  })
}

/**
 * Estimated bytes compaction must still rewrite to bring every level within
 * its target: the excess of each level, times the level ratio it will be
 * merged with, plus L0 once it is over its trigger. Drives write pacing.
 */
export function pendingCompactionBytes(tableVersion: TableVersion, policy: CompactionPolicy): number {
  let pending = 0
  const l0 = tableVersion.levels[0]
  if (l0.length >= policy.l0CompactionTrigger) pending += levelBytes(l0) + Math.min(levelBytes(tableVersion.levels[1]), policy.levelBaseBytes)
  for (let level = 1; level < NUM_LEVELS - 1; level++) {
    const excess = levelBytes(tableVersion.levels[level]) - levelTargetBytes(level, policy)
    if (excess > 0) pending += excess * (policy.levelSizeMultiplier + 1)
  }
  return pending
}

/** Smallest and largest user key over some tables. */
export function keyRange(tables: readonly TableMeta[]): [Buffer, Buffer] {
  let lo = tables[0].smallestKey
  let hi = tables[0].largestKey
  for (const t of tables) {
    if (Buffer.compare(t.smallestKey, lo) < 0) lo = t.smallestKey
    if (Buffer.compare(t.largestKey, hi) > 0) hi = t.largestKey
  }
  return [lo, hi]
}

function overlapping(tables: readonly TableMeta[], lo: Buffer | undefined, hi: Buffer | undefined): TableMeta[] {
  return tables.filter((t) => overlapsRange(t, lo, hi))
}

function anyBusy(tables: readonly TableMeta[], busy: ReadonlySet<number>): boolean {
  return tables.some((t) => busy.has(t.number))
}

/** Completes a plan with the overlapping tables below; undefined when any is busy. */
function plan(
  tableVersion: TableVersion,
  level: number,
  inputs: TableMeta[],
  busy: ReadonlySet<number>,
  reason: CompactionPlan['reason'],
  inPlace = false,
): CompactionPlan | undefined {
  if (inputs.length === 0 || anyBusy(inputs, busy)) return undefined
  if (inPlace) {
    const grandparents = level + 1 < NUM_LEVELS ? overlapping(tableVersion.levels[level + 1], ...keyRange(inputs)) : []
    return { level, outputLevel: level, inputs, overlapping: [], grandparents, reason }
  }
  const outputLevel = level + 1
  const [lo, hi] = keyRange(inputs)
  const below = overlapping(tableVersion.levels[outputLevel], lo, hi)
  if (anyBusy(below, busy)) return undefined
  const [allLo, allHi] = keyRange([...inputs, ...below])
  const grandparents = outputLevel + 1 < NUM_LEVELS ? overlapping(tableVersion.levels[outputLevel + 1], allLo, allHi) : []
  return { level, outputLevel, inputs, overlapping: below, grandparents, reason }
}

/**
 * The next compaction to run, or undefined. `busy` holds table numbers that
 * running compactions own; `cursors[level]` is the largest key the previous
 * size compaction of that level took, so successive ones rotate through the
 * key space instead of always taking the first table.
 */
export function pickCompaction(
  tableVersion: TableVersion,
  policy: CompactionPolicy,
  busy: ReadonlySet<number>,
  cursors: ReadonlyArray<Buffer | undefined>,
): CompactionPlan | undefined {
  const scores = levelScores(tableVersion, policy)
  const order = scores.map((score, level) => ({ score, level })).filter((s) => s.score >= 1)
  order.sort((a, b) => b.score - a.score)
  for (const { level } of order) {
    const p = level === 0 ? plan(tableVersion, 0, [...tableVersion.levels[0]], busy, 'l0') : pickInLevel(tableVersion, level, busy, cursors[level])
    if (p !== undefined) return p
  }
  return pickTombstoneHeavy(tableVersion, busy)
}

function pickInLevel(
  tableVersion: TableVersion,
  level: number,
  busy: ReadonlySet<number>,
  cursor: Buffer | undefined,
): CompactionPlan | undefined {
  const tables = tableVersion.levels[level]
  let start = 0
  if (cursor !== undefined) {
    start = tables.findIndex((t) => Buffer.compare(t.smallestKey, cursor) > 0)
    if (start < 0) start = 0
  }
  for (let i = 0; i < tables.length; i++) {
    const p = plan(tableVersion, level, [tables[(start + i) % tables.length]], busy, 'size')
    if (p !== undefined) return p
  }
  return undefined
}

function pickTombstoneHeavy(tableVersion: TableVersion, busy: ReadonlySet<number>): CompactionPlan | undefined {
  let best: { level: number; table: TableMeta; ratio: number } | undefined
  for (let level = 1; level < NUM_LEVELS - 1; level++) {
    for (const t of tableVersion.levels[level]) {
      if (t.entryCount < TOMBSTONE_MIN_ENTRIES || busy.has(t.number)) continue
      const ratio = t.deleteCount / t.entryCount
      if (ratio >= TOMBSTONE_RATIO && (best === undefined || ratio > best.ratio)) best = { level, table: t, ratio }
    }
  }
  return best && plan(tableVersion, best.level, [best.table], busy, 'tombstones')
}

/**
 * A manual compaction of the tables of `level` overlapping [start, end] (either
 * bound may be absent) into `level + 1`, or, with `inPlace`, rewritten within
 * `level` (for the deepest level: drops what released snapshots held);
 * undefined when there is nothing to do or a table it needs is busy.
 */
export function pickRangeCompaction(
  tableVersion: TableVersion,
  level: number,
  start: Buffer | undefined,
  end: Buffer | undefined,
  busy: ReadonlySet<number>,
  inPlace = false,
): CompactionPlan | undefined {
  if (level === 0 && inPlace) return undefined
  if (level >= NUM_LEVELS - 1 && !inPlace) return undefined
  const inputs = overlapping(tableVersion.levels[level], start, end)
  // L0 tables overlap in key and sequence: moving only some of them could
  // leave an older version of a key in L0 above a newer one in L1.
  if (level === 0 && inputs.length > 0) return plan(tableVersion, 0, [...tableVersion.levels[0]], busy, 'manual')
  return plan(tableVersion, level, inputs, busy, 'manual', inPlace)
}

/** Blob files at least `thresholdPercent` garbage: a compaction reading references into them moves their values. */
export function blobFilesToCollect(tableVersion: TableVersion, thresholdPercent: number): number[] {
  const out: number[] = []
  for (const b of tableVersion.blobs.values()) if (garbageRatio(b) * 100 >= thresholdPercent) out.push(b.number)
  return out
}

/**
 * Blob garbage collection when no level needs compacting: the blob file with
 * the most garbage (at least `thresholdPercent`) that some idle table still
 * references gets that table rewritten in place (all of L0 when the table is
 * in L0), which moves the file's live values into a new blob file. Each such
 * rewrite leaves fewer tables referencing the file; when none does, every
 * value in it is garbage and it is deleted.
 */
export function pickBlobCollection(tableVersion: TableVersion, thresholdPercent: number, busy: ReadonlySet<number>): CompactionPlan | undefined {
  const candidates = [...tableVersion.blobs.values()].filter((b) => garbageRatio(b) * 100 >= thresholdPercent)
  candidates.sort((a, b) => garbageRatio(b) - garbageRatio(a) || a.number - b.number)
  for (const blob of candidates) {
    for (let level = 0; level < NUM_LEVELS; level++) {
      for (const t of tableVersion.levels[level]) {
        if (busy.has(t.number) || t.blobFiles === undefined || !t.blobFiles.includes(blob.number)) continue
        const p = level === 0 ? plan(tableVersion, 0, [...tableVersion.levels[0]], busy, 'blob-gc') : plan(tableVersion, level, [t], busy, 'blob-gc', true)
        if (p !== undefined) return p
      }
    }
  }
  return undefined
}

/**
 * With no compaction due: a table that may still hold versions a range
 * tombstone covers gets rewritten in place (all of L0 when it is in L0),
 * which drops them, so that the space comes back and the tombstone can
 * leave the manifest (TableVersion.idleRangeTombstones). Only tombstones no
 * live snapshot predates: a snapshot older than one would keep its covered
 * versions, and the same table would be picked again and again.
 */
export function pickRangeDeleteCollection(tableVersion: TableVersion, oldestSnapshot: number, busy: ReadonlySet<number>): CompactionPlan | undefined {
  for (const r of tableVersion.rangeTombstones) {
    if (oldestSnapshot < r.seq) continue
    for (let level = 0; level < NUM_LEVELS; level++) {
      for (const t of tableVersion.levels[level]) {
        if (busy.has(t.number) || !mayHoldCovered(t, r.seq) || !tombstoneOverlaps(r, t.smallestKey, t.largestKey)) continue
        const p = level === 0 ? plan(tableVersion, 0, [...tableVersion.levels[0]], busy, 'range-delete') : plan(tableVersion, level, [t], busy, 'range-delete', true)
        if (p !== undefined) return p
      }
    }
  }
  return undefined
}
