import * as path from 'node:path'
import { initChecksum } from '../base/checksum.js'
import { corruption } from '../base/errors.js'
import { walFileName } from '../base/file-names.js'
import type { TableMeta } from '../manifest/table-meta.js'
import { EntryArrayIterator, compareEntries, type SortableEntry } from '../memtable/sorted-entries.js'
import type { TableBuilderOptions } from '../sstable/table-builder.js'
import { readWal } from '../wal/wal-reader.js'
import { writeTable } from './table-writer.js'

/** Everything a flush needs, as plain data (it crosses a worker boundary). */
export interface FlushJob {
  dir: string
  /** WALs holding exactly the frozen memtable's entries. */
  walNumbers: number[]
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
  for (const number of job.walNumbers) {
    const file = path.join(job.dir, walFileName(number))
    for (const batch of readWal(file).batches) {
      let s = batch.firstSequence
      for (const op of batch.ops) {
        const v = op.value
        entries.push({ k: op.key.toString('latin1'), s: s++, b: v === null ? null : (v.buffer as ArrayBuffer), o: v?.byteOffset ?? 0, n: v?.length ?? 0 })
      }
    }
  }
  if (entries.length !== job.entryCount) {
    throw corruption(`WALs ${job.walNumbers.join(',')} hold ${entries.length} entries, memtable ${job.entryCount}`)
  }
  entries.sort(compareEntries)
  const input = new EntryArrayIterator(entries)
  input.seekToFirst()
  return writeTable(job.dir, job.tableNumber, input, job.tableOptions, job.snapshots)
}
