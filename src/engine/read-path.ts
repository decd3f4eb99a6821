import type { InternalIterator } from '../iterators/internal-iterator.js'
import { TwoLevelIterator } from '../iterators/two-level-iterator.js'
import { overlapsRange, type TableMeta } from '../manifest/table-meta.js'
import type { TableVersion } from '../manifest/table-version.js'
import type { Memtable } from '../memtable/memtable.js'
import { compareBytes } from '../base/coding.js'
import { filterHash } from '../sstable/filter-block.js'
import { L0_FILTER_PASS_MIN_TABLES, l0Filters, l0MayHold, type L0Filters } from './l0-filters.js'
import type { TableCache } from '../sstable/table-cache.js'
import type { Found, KeyRange } from '../base/entry.js'
import { RangeTombstoneIndex, tombstoneOverlaps, type RangeTombstone } from '../base/range-tombstones.js'

/**
 * Point read, newest source first: the active memtable, frozen memtables
 * (newest first), L0 tables (newest first, only those whose range holds the
 * key), then at most one table per deeper level. The first source holding any
 * version <= `sequence` decides. The filter hash is computed once and shared.
 * With many L0 tables their filters are tested first, in one pass (l0-filters.ts).
 * Without `wantValue` a put's value is not copied out (VALUE_NOT_READ).
 */
export function readPoint(
  mem: Memtable,
  imms: readonly Memtable[],
  tableVersion: TableVersion,
  tables: TableCache,
  key: Buffer,
  sequence: number,
  wantValue = true,
): Found | undefined {
  let found = mem.get(key, sequence, wantValue)
  if (found !== undefined) return found
  for (let i = imms.length - 1; i >= 0; i--) {
    found = imms[i].get(key, sequence, wantValue)
    if (found !== undefined) return found
  }
  const levels = tableVersion.levels
  const l0 = levels[0]
  let hash = -1
  let filters: L0Filters | undefined
  let mayHold: Uint8Array | undefined
  if (l0.length >= L0_FILTER_PASS_MIN_TABLES) {
    hash = filterHash(key)
    filters = l0Filters(l0, tables)
    mayHold = l0MayHold(filters, hash)
  }
  for (let i = 0; i < l0.length; i++) {
    if (mayHold !== undefined && mayHold[i] === 0) continue
    const t = l0[i]
    // A JS byte loop: cheaper than Buffer.compare's native call for short keys.
    const smallest = t.smallestKey
    const largest = t.largestKey
    if (compareBytes(key, 0, key.length, smallest, 0, smallest.length) < 0) continue
    if (compareBytes(key, 0, key.length, largest, 0, largest.length) > 0) continue
    if (hash < 0) hash = filterHash(key)
    const reader = tables.get(t.number)
    if (filters !== undefined) filters.filters[i] = reader.filter
    found = reader.get(key, sequence, hash, wantValue)
    if (found !== undefined) return found
  }
  for (let l = 1; l < levels.length; l++) {
    const t = findTable(levels[l], key)
    if (t === undefined) continue
    if (hash < 0) hash = filterHash(key)
    found = tables.get(t.number).get(key, sequence, hash, wantValue)
    if (found !== undefined) return found
  }
  return undefined
}

/**
 * The largest sequence <= `sequence` of a range delete covering `key` in any
 * source (0: none): a version of `key` older than it reads as deleted.
 */
export function coveringRangeDelete(mem: Memtable, imms: readonly Memtable[], tableVersion: TableVersion, key: Buffer, sequence: number): number {
  let cover = tableVersion.rangeIndex()?.coveringSequence(key, sequence) ?? 0
  const m = mem.rangeIndex()
  if (m !== undefined) cover = Math.max(cover, m.coveringSequence(key, sequence))
  for (const imm of imms) {
    const i = imm.rangeIndex()
    if (i !== undefined) cover = Math.max(cover, i.coveringSequence(key, sequence))
  }
  return cover
}

/** The range deletes of every source (no allocation when there is none: every iterator asks). */
function rangeTombstonesOf(mem: Memtable, imms: readonly Memtable[], tableVersion: TableVersion): RangeTombstone[] {
  let n = tableVersion.rangeTombstones.length + mem.rangeTombstones.length
  for (const imm of imms) n += imm.rangeTombstones.length
  if (n === 0) return NO_TOMBSTONES
  const all = [...tableVersion.rangeTombstones, ...mem.rangeTombstones]
  for (const imm of imms) all.push(...imm.rangeTombstones)
  return all
}

const NO_TOMBSTONES: RangeTombstone[] = []

/** Every range delete of the sources with a sequence <= `sequence`, as one index; undefined when there is none. */
export function rangeDeletesAt(mem: Memtable, imms: readonly Memtable[], tableVersion: TableVersion, sequence: number): RangeTombstoneIndex | undefined {
  const visible = rangeTombstonesOf(mem, imms, tableVersion).filter((t) => t.seq <= sequence)
  return visible.length === 0 ? undefined : new RangeTombstoneIndex(visible)
}

/** The first key of `range` (its lower bound, or a tombstone's start) that a range delete newer than `sinceSequence` covers, if any. */
export function firstRangeDeleteSince(mem: Memtable, imms: readonly Memtable[], tableVersion: TableVersion, range: KeyRange, sinceSequence: number): Buffer | undefined {
  const low = range.gte ?? range.gt
  const high = range.lte ?? range.lt
  let first: Buffer | undefined
  for (const t of rangeTombstonesOf(mem, imms, tableVersion)) {
    if (t.seq <= sinceSequence || !tombstoneOverlaps(t, low, high)) continue
    const start = low !== undefined && Buffer.compare(low, t.start) > 0 ? low : Buffer.from(t.start)
    if (first === undefined || Buffer.compare(start, first) < 0) first = start
  }
  return first
}

/**
 * One child iterator per source overlapping `range`: each memtable, each L0
 * table, one two-level iterator per deeper level (opening its tables lazily).
 * The caller pins `tableVersion` for as long as the children live.
 */
export function openSources(
  mem: Memtable,
  imms: readonly Memtable[],
  tableVersion: TableVersion,
  tables: TableCache,
  range: KeyRange,
): InternalIterator[] {
  const children: InternalIterator[] = [mem.iterator()]
  for (const m of imms) children.push(m.iterator())
  const low = range.gte ?? range.gt
  const high = range.lte ?? range.lt
  try {
    for (const t of tableVersion.levels[0]) {
      if (overlapsRange(t, low, high)) children.push(tables.get(t.number).iterator())
    }
    for (let l = 1; l < tableVersion.levels.length; l++) {
      const level = tableVersion.levels[l]
      if (level.length === 0) continue
      children.push(
        new TwoLevelIterator({
          count: level.length,
          compareLastKey: (i, key) => Buffer.compare(level[i].largestKey, key),
          open: (i) => tables.get(level[i].number).iterator(),
        }),
      )
    }
  } catch (err) {
    for (const c of children) c.close()
    throw err
  }
  return children
}

/** The table of a sorted, non-overlapping level whose range holds `key`. */
function findTable(tables: readonly TableMeta[], key: Buffer): TableMeta | undefined {
  let lo = 0
  let hi = tables.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const largest = tables[mid].largestKey
    if (compareBytes(largest, 0, largest.length, key, 0, key.length) < 0) lo = mid + 1
    else hi = mid
  }
  if (lo === tables.length) return undefined
  const smallest = tables[lo].smallestKey
  if (compareBytes(smallest, 0, smallest.length, key, 0, key.length) > 0) return undefined
  return tables[lo]
}
