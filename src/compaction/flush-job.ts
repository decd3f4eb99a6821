import * as path from 'node:path'
import { initChecksum } from '../base/checksum.js'
import { corruption } from '../base/errors.js'
import { walFileName } from '../base/file-names.js'
import type { TableMeta } from '../manifest/table-meta.js'
import { EntryArrayIterator, compareEntries, type SortableEntry } from '../memtable/sorted-entries.js'
import type { TableBuilderOptions } from '../sstable/table-builder.js'
import { visitRecords, visitWal } from '../wal/wal-reader.js'
import type { RecordSegment } from '../wal/record-arena.js'
import { writeTable } from './table-writer.js'

/** Everything a flush needs, as plain data (it crosses a worker boundary). */
export interface FlushJob {
  dir: string
  /** WALs holding exactly the frozen memtable's entries. */
  walNumbers: number[]
  /** The memtable's records in memory (shared, not copied); when absent, the WAL files are read. */
  segments?: RecordSegment[]
  /** Entries the memtable holds: the WALs must yield exactly this many. */
  entryCount: number
  tableNumber: number
  tableOptions: TableBuilderOptions
  /** Live snapshot sequences, ascending. */
  snapshots: number[]
}

/**
 * Builds the L0 table of a frozen memtable from its WAL files rather than from
 * the memtable itself, so that the whole flush (decode, sort, build, write,
 * fsync) can run on a worker thread without copying the memtable across.
 * The WALs are complete and immutable once their memtable is frozen, and they
 * hold exactly its entries (checked by count).
 */
export async function runFlushJob(job: FlushJob): Promise<TableMeta | undefined> {
  await initChecksum()
  const entries: SortableEntry[] = []
  const collect = (p: Buffer, s: number, ks: number, ke: number, vs: number, ve: number): void => {
    entries.push({ k: p.toString('latin1', ks, ke), s, b: vs < 0 ? null : p, o: vs, n: ve - vs, kw: p, ko: ks })
  }
  if (job.segments !== undefined) {
    for (const seg of job.segments) visitRecords(Buffer.from(seg.buffer, 0, seg.end), `memtable of WAL ${job.walNumbers[0]}`, collect)
  } else {
    for (const number of job.walNumbers) visitWal(path.join(job.dir, walFileName(number)), collect)
  }
  if (entries.length !== job.entryCount) {
    throw corruption(`WALs ${job.walNumbers.join(',')} hold ${entries.length} entries, memtable ${job.entryCount}`)
  }
  sortEntries(entries)
  const input = new EntryArrayIterator(entries)
  input.seekToFirst()
  return writeTable(job.dir, job.tableNumber, input, job.tableOptions, job.snapshots)
}

/** Bytes of each key, after the prefix all keys share, packed into a number that orders like them. */
const SORT_PREFIX_BYTES = 6

/**
 * Sorts entries into internal-key order. Comparing JS numbers is several times
 * cheaper than comparing strings, so each entry first gets the 6 bytes that
 * follow the longest prefix common to all keys, as a big-endian number
 * (missing bytes count as 0); only ties fall back to the full comparison.
 * A sort of a 64 MiB memtable was the flush's largest cost (docs/performance.md).
 */
function sortEntries(entries: SortableEntry[]): void {
  if (entries.length < 2) return
  let min = entries[0].k
  let max = min
  for (const e of entries) {
    if (e.k < min) min = e.k
    else if (e.k > max) max = e.k
  }
  let common = 0
  while (common < min.length && common < max.length && min.charCodeAt(common) === max.charCodeAt(common)) common++
  const keyed = entries.map((e) => {
    let p = 0
    for (let i = common; i < common + SORT_PREFIX_BYTES; i++) p = p * 256 + (i < e.k.length ? e.k.charCodeAt(i) : 0)
    return { e, p }
  })
  keyed.sort((a, b) => a.p - b.p || compareEntries(a.e, b.e))
  for (let i = 0; i < keyed.length; i++) entries[i] = keyed[i].e
}
