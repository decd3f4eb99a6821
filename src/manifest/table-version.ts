import { assert } from '../base/assert.js'
import { NUM_LEVELS, type TableVersionEdit } from './table-version-edit.js'
import { mayHoldCovered, type TableMeta } from './table-meta.js'
import type { BlobFileMeta } from './blob-file-meta.js'
import { blobFileName, tableFileName } from '../base/file-names.js'
import { RangeTombstoneIndex, type RangeTombstone } from '../base/range-tombstones.js'

/**
 * An immutable set of tables per level. L0 tables may overlap and are kept
 * newest first (by largest sequence); L1 and deeper are sorted by smallest key
 * and never overlap. Table versions are reference-counted by readers
 * (iterators) so that files they use are not deleted under them.
 *
 * Named TableVersion (with TableVersionSet and TableVersionEdit) where LevelDB
 * and RocksDB say Version, VersionSet and VersionEdit: to users of stratadb a
 * "version" is a key's version, the sequence of the write that produced its
 * value (`getEntry().version`, `ifVersion`, the shadow filter's "versions no
 * reader can see"). Every name of the table-set concept says "table version",
 * so neither reading is mistaken for the other (issue #17).
 */
export class TableVersion {
  private refs = 0
  private index: RangeTombstoneIndex | undefined

  constructor(
    readonly levels: ReadonlyArray<readonly TableMeta[]>,
    /**
     * Blob files some table of this version may reference, by number: every
     * file written since, less those whose every value is garbage (a
     * compaction dropped or relocated each reference to it).
     */
    readonly blobs: ReadonlyMap<number, BlobFileMeta> = new Map(),
    /** Range deletes flushed and not yet removed (they still may cover some table's versions). */
    readonly rangeTombstones: readonly RangeTombstone[] = [],
  ) {
    assert(levels.length === NUM_LEVELS, 'a table version has NUM_LEVELS levels')
  }

  static empty(): TableVersion {
    return new TableVersion(Array.from({ length: NUM_LEVELS }, () => []))
  }

  /** Builds the table version that results from applying `edit`; this one is unchanged. */
  apply(edit: TableVersionEdit): TableVersion {
    const levels = this.levels.map((l) => [...l])
    for (const d of edit.deleted) {
      const i = levels[d.level].findIndex((t) => t.number === d.number)
      assert(i >= 0, `edit deletes table ${d.number} missing from level ${d.level}`)
      levels[d.level].splice(i, 1)
    }
    for (const a of edit.added) levels[a.level].push(a.table)
    levels[0].sort((a, b) => b.largestSeq - a.largestSeq)
    for (let l = 1; l < NUM_LEVELS; l++) {
      levels[l].sort((a, b) => Buffer.compare(a.smallestKey, b.smallestKey))
      for (let i = 1; i < levels[l].length; i++) {
        assert(
          Buffer.compare(levels[l][i - 1].largestKey, levels[l][i].smallestKey) < 0,
          `tables overlap in level ${l}`,
        )
      }
    }
    return new TableVersion(levels, this.applyBlobs(edit), this.applyRangeTombstones(edit))
  }

  /**
   * Sequences of the range tombstones that cover nothing in this table
   * version: no table whose key range meets a tombstone's may hold a version
   * older than it (by its minSeq or rangeDeleteFloor). Memtables hold only
   * versions newer than every flushed tombstone, so these may leave the manifest.
   */
  idleRangeTombstones(): number[] {
    const idle: number[] = []
    for (const r of this.rangeTombstones) {
      let needed = false
      for (const level of this.levels) {
        for (const t of level) {
          if (Buffer.compare(t.largestKey, r.start) < 0 || (r.end !== undefined && Buffer.compare(t.smallestKey, r.end) >= 0)) continue
          if (mayHoldCovered(t, r.seq)) {
            needed = true
            break
          }
        }
        if (needed) break
      }
      if (!needed) idle.push(r.seq)
    }
    return idle
  }

  /** The range tombstones as an index (built once per table version); undefined when there are none. */
  rangeIndex(): RangeTombstoneIndex | undefined {
    if (this.rangeTombstones.length === 0) return undefined
    this.index ??= new RangeTombstoneIndex(this.rangeTombstones)
    return this.index
  }

  private applyRangeTombstones(edit: TableVersionEdit): readonly RangeTombstone[] {
    const added = edit.rangeTombstonesAdded ?? []
    const removed = edit.rangeTombstonesRemoved ?? []
    if (added.length === 0 && removed.length === 0) return this.rangeTombstones
    const gone = new Set(removed)
    const next = this.rangeTombstones.filter((t) => !gone.has(t.seq))
    assert(next.length === this.rangeTombstones.length - gone.size, 'edit removes a range tombstone the table version does not hold')
    for (const t of added) {
      assert(!next.some((u) => u.seq === t.seq), `edit adds range tombstone ${t.seq} twice`)
      next.push(t)
    }
    return next
  }

  /** The blob files after `edit`: files added, garbage counted, files with nothing live left dropped. */
  private applyBlobs(edit: TableVersionEdit): ReadonlyMap<number, BlobFileMeta> {
    if ((edit.blobsAdded === undefined || edit.blobsAdded.length === 0) && (edit.blobGarbage === undefined || edit.blobGarbage.length === 0)) return this.blobs
    const blobs = new Map(this.blobs)
    for (const b of edit.blobsAdded ?? []) {
      assert(!blobs.has(b.number), `edit adds blob file ${b.number} twice`)
      blobs.set(b.number, b)
    }
    for (const g of edit.blobGarbage ?? []) {
      const b = blobs.get(g.number)
      assert(b !== undefined, `edit counts garbage in blob file ${g.number}, which the table version does not hold`)
      const next = { ...b, garbageCount: b.garbageCount + g.count, garbageBytes: b.garbageBytes + g.bytes }
      assert(next.garbageCount <= next.valueCount && next.garbageBytes <= next.valueBytes, `blob file ${g.number} has more garbage than values`)
      if (next.garbageCount === next.valueCount) blobs.delete(g.number)
      else blobs.set(g.number, next)
    }
    return blobs
  }

  /** Every table file this table version references. */
  *tableNumbers(): Iterable<number> {
    for (const level of this.levels) for (const t of level) yield t.number
  }

  /** The name and recorded size of every file this table version needs: its tables, then its blob files. */
  *files(): Iterable<{ name: string; fileBytes: number; kind: 'table' | 'blob' }> {
    for (const level of this.levels) for (const t of level) yield { name: tableFileName(t.number), fileBytes: t.fileBytes, kind: 'table' }
    for (const b of this.blobs.values()) yield { name: blobFileName(b.number), fileBytes: b.fileBytes, kind: 'blob' }
  }

  /** Every blob file this table version holds. */
  blobFileNumbers(): Iterable<number> {
    return this.blobs.keys()
  }

  ref(): void {
    this.refs++
  }

  /** Returns true when this was the last reference. */
  unref(): boolean {
    assert(this.refs > 0, 'table version unref below zero')
    return --this.refs === 0
  }

  get referenced(): boolean {
    return this.refs > 0
  }
}
