import { assert } from '../base/assert.js'
import { NUM_LEVELS, type TableVersionEdit } from './table-version-edit.js'
import type { TableMeta } from './table-meta.js'

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

  constructor(readonly levels: ReadonlyArray<readonly TableMeta[]>) {
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
    return new TableVersion(levels)
  }

  /** Every table file this table version references. */
  *tableNumbers(): Iterable<number> {
    for (const level of this.levels) for (const t of level) yield t.number
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
