/**
 * Range deletes through `strata repair` (docs/cli.md, "strata repair"). A
 * range delete is a WAL entry of kind 6 until its memtable is flushed, then
 * a range tombstone of the manifest (tag 9): tables never hold one. So the
 * repair gathers them apart from the entries it writes into tables: the
 * manifest's live tombstones (repairing in place), every tombstone any
 * readable manifest record added (rebuilding), and the kind-6 entries of
 * every intact WAL record; and the new manifest lists them (tag 9).
 *
 * A tombstone (start, end, seq) states a fact that stays true: every version
 * below `seq` of a key in [start, end) was deleted. Carrying one the
 * database no longer needs (one a later edit removed, one of a WAL already
 * flushed) is therefore always safe; those that cover nothing in the tables
 * the repair keeps are left out, as the engine itself removes them
 * (TableVersion.idleRangeTombstones). What cannot be done is recovering a
 * tombstone that only a lost or damaged manifest held: the versions it
 * deleted may show again, and the report says so.
 */
import type { RangeTombstone } from '../../base/range-tombstones.js'
import type { TableVersionEdit } from '../../manifest/table-version-edit.js'
import { TableVersion } from '../../manifest/table-version.js'
import { bySequence } from './range-deletes.js'

/** What became of the range deletes (the report's `rangeDeletes`). */
export interface RangeDeleteOutcome {
  /** Tombstones taken from the manifest (repairing in place) or from the readable records of the manifests present (rebuilding). */
  fromManifest: number
  /** Range deletes (kind 6) taken from intact WAL records (not already known from a manifest). */
  fromWals: number
  /** Left out: they cover nothing in the tables kept. */
  dropped: number
  /** Listed by the new manifest. */
  kept: number
  /**
   * True when range tombstones a manifest held may have been lost: the
   * database was rebuilt, tables were kept, and the manifest CURRENT names
   * could not be read whole. Versions such a tombstone deleted may show again.
   */
  mayBeLost: boolean
}

/** The warning a report prints when range deletes may have been lost. */
export const LOST_RANGE_DELETES_WARNING =
  'range deletes already flushed into the lost manifest are lost: a flush moves range deletes out of the WAL into the manifest, ' +
  'and the live manifest could not be read whole (or no usable CURRENT says which one it is), so range tombstones only it held cannot be recovered; ' +
  'keys they deleted may show their old values again. Range deletes found in readable manifest records and in WALs were kept'

/** The range deletes a repair carries into its new manifest. */
export class RangeDeleteSalvage {
  private readonly found = new Map<number, { t: RangeTombstone; from: 'manifest' | 'wal' }>()
  /** Set by the rebuild when the manifest CURRENT names did not read whole (see RangeDeleteOutcome.mayBeLost). */
  manifestIncomplete = false

  /** Adds a tombstone (one already known by its sequence is not added twice). */
  add(t: RangeTombstone, from: 'manifest' | 'wal'): void {
    if (!this.found.has(t.seq)) this.found.set(t.seq, { t, from })
  }

  /** The newest sequence of a tombstone found (0: none): the new manifest's last sequence must not be below it. */
  get newest(): number {
    let n = 0
    for (const seq of this.found.keys()) n = Math.max(n, seq)
    return n
  }

  /**
   * Adds to `edit` (which adds every table kept) the tombstones that cover
   * something in its tables; returns the table version it makes and what
   * became of the range deletes.
   */
  settle(edit: TableVersionEdit, tablesKept: boolean): { tableVersion: TableVersion; outcome: RangeDeleteOutcome } {
    const all = bySequence([...this.found.values()].map((f) => f.t))
    edit.rangeTombstonesAdded = all
    const idle = new Set(TableVersion.empty().apply(edit).idleRangeTombstones())
    edit.rangeTombstonesAdded = all.filter((t) => !idle.has(t.seq))
    const from = (source: 'manifest' | 'wal'): number => [...this.found.values()].filter((f) => f.from === source).length
    return {
      tableVersion: TableVersion.empty().apply(edit),
      outcome: {
        fromManifest: from('manifest'),
        fromWals: from('wal'),
        dropped: idle.size,
        kept: edit.rangeTombstonesAdded.length,
        mayBeLost: this.manifestIncomplete && tablesKept,
      },
    }
  }
}
