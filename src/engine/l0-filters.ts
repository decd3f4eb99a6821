import type { TableMeta } from '../manifest/table-meta.js'
import type { Filter } from '../sstable/filter-block.js'
import type { TableCache } from '../sstable/table-cache.js'

/** From this many L0 tables on, a point read tests their filters in one pass before it visits any. */
export const L0_FILTER_PASS_MIN_TABLES = 4

/**
 * The Bloom filters of one table version's L0 tables, kept beside it so that
 * a point read can test them all in one tight loop first (`l0MayHold`).
 *
 * Why a separate pass: after a write burst L0 holds tens of tables whose key
 * ranges all overlap, and a read that finds its key deeper tests every one of
 * their filters. Visiting table after table (range check on the table's keys,
 * table cache lookup, reader, filter) chains several dependent loads per
 * table, so their cache misses follow one another; a loop that only loads
 * filter bits lets the processor overlap the misses of many tables.
 * Bigdata's database (37 L0 tables) and `bench/l0-read-probe.mjs` (52):
 * +15-35% reads/s (docs/performance.md, "Read path and point index"). With
 * 3 point-indexed tables, visited anyway, the pass cost ~20%: hence the
 * threshold.
 *
 * Only filters of tables already open are known (a read opens a table when it
 * visits it, and records its filter here). The table cache counts the
 * readers it closes; when that count moved, the filters recorded are
 * forgotten, so a closed reader's filter is not kept alive past the cache's
 * byte budget.
 */
export class L0Filters {
  readonly filters: (Filter | undefined)[]
  constructor(
    count: number,
    /** The table cache's readersClosed when `filters` were last known current. */
    public readersClosed: number,
  ) {
    this.filters = new Array<Filter | undefined>(count).fill(undefined)
  }
}

const byLevel = new WeakMap<readonly TableMeta[], L0Filters>()
/** Scratch answer of l0MayHold (point reads are synchronous: one at a time per thread). */
let mayHold = new Uint8Array(64)

/** The recorded filters of `l0` (a table version's level 0), current against the readers `tables` closed. */
export function l0Filters(l0: readonly TableMeta[], tables: TableCache): L0Filters {
  let f = byLevel.get(l0)
  if (f === undefined) byLevel.set(l0, (f = new L0Filters(l0.length, tables.readersClosed)))
  else if (f.readersClosed !== tables.readersClosed) {
    f.filters.fill(undefined)
    f.readersClosed = tables.readersClosed
  }
  return f
}

/**
 * For each table of `l0`, 0 when its filter rules out the key whose filter
 * hash is `hash`, else 1 (its filter says maybe, or is not known yet). The
 * array is scratch, valid until the next call.
 */
export function l0MayHold(f: L0Filters, hash: number): Uint8Array {
  const filters = f.filters
  const n = filters.length
  if (mayHold.length < n) mayHold = new Uint8Array(n * 2)
  const out = mayHold
  for (let i = 0; i < n; i++) {
    const filter = filters[i]
    out[i] = filter === undefined || filter.mayContain(hash) ? 1 : 0
  }
  return out
}
