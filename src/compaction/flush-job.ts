import * as path from 'node:path'
import { isMainThread } from 'node:worker_threads'
import { initChecksum } from '../base/checksum.js'
import { corruption } from '../base/errors.js'
import { KIND_RANGE_DELETE } from '../base/entry.js'
import { walFileName } from '../base/file-names.js'
import type { TableBuilderOptions } from '../sstable/table-builder.js'
import { visitRecordsInMemory, visitWal } from '../wal/wal-reader.js'
import type { RecordSegment } from '../wal/record-arena.js'
import { SortedRun } from './sorted-run.js'
import { writeTable, type BlobOutput, type WrittenTable } from './table-writer.js'
import { flushEnded, flushStarted } from './flush-priority.js'
import { nodeFileSystem } from '../vfs/node-file-system.js'
import type { FileSystem } from '../vfs/file-system.js'

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
  /** Where large values go (absent: every value stays in the table). */
  blobs?: BlobOutput
}

/**
 * Builds the L0 table of a frozen memtable from its WAL files rather than from
 * the memtable itself, so that the whole flush (decode, sort, build, write,
 * fsync) can run on a worker thread without copying the memtable across.
 * The WALs are complete and immutable once their memtable is frozen, and they
 * hold exactly its entries (checked by count). Scheduled, and its table
 * installed, by the engine's flush loop (engine/flush-loop.ts).
 */
export async function runFlushJob(job: FlushJob, fs: FileSystem = nodeFileSystem): Promise<WrittenTable> {
  flushStarted()
  try {
    return await flush(job, fs)
  } finally {
    flushEnded()
  }
}

/**
 * A worker thread's flushes, one at a time, reuse one run (SortedRun.clear).
 * On the main thread, where several engines' flushes may interleave and the
 * arrays would outlive their use, every flush has its own.
 */
let spareRun: SortedRun | undefined

async function flush(job: FlushJob, fs: FileSystem): Promise<WrittenTable> {
  const run = (isMainThread ? undefined : spareRun) ?? new SortedRun()
  spareRun = undefined
  try {
    return await flushInto(run, job, fs)
  } finally {
    run.clear()
    if (!isMainThread) spareRun = run
  }
}

async function flushInto(run: SortedRun, job: FlushJob, fs: FileSystem): Promise<WrittenTable> {
  await initChecksum()
  run.reserve(job.entryCount)
  let lastPayload: Buffer | undefined
  let id = -1
  const collect = (p: Buffer, s: number, ks: number, ke: number, vs: number, ve: number, _end: boolean, kind: number): void => {
    // Range deletes reach the manifest from the memtable, not the table.
    if (kind === KIND_RANGE_DELETE) return
    if (p !== lastPayload) {
      lastPayload = p
      id = run.addBuffer(p)
    }
    run.add(id, s, ks, ke, vs, ve, kind)
  }
  if (job.segments !== undefined) {
    for (const seg of job.segments) visitRecordsInMemory(Buffer.from(seg.buffer, 0, seg.end), `memtable of WAL ${job.walNumbers[0]}`, collect)
  } else {
    for (const number of job.walNumbers) visitWal(fs, path.join(job.dir, walFileName(number)), collect)
  }
  if (run.length !== job.entryCount) {
    throw corruption(`WALs ${job.walNumbers.join(',')} hold ${run.length} entries, memtable ${job.entryCount}`)
  }
  run.sort()
  const input = run.iterator()
  input.seekToFirst()
  return writeTable(fs, job.dir, job.tableNumber, input, job.tableOptions, job.snapshots, job.blobs)
}
