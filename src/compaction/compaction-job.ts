import { assert } from '../base/assert.js'
import { initChecksum } from '../base/checksum.js'
import { nodeFileSystem } from '../vfs/node-file-system.js'
import { syncDirectory, type FileSystem } from '../vfs/file-system.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'
import { MergingIterator } from '../iterators/merging-iterator.js'
import type { TableMeta } from '../manifest/table-meta.js'
import type { TableBuilderOptions } from '../sstable/table-builder.js'
import { TableScanner } from '../sstable/table-scanner.js'
import { KIND_DELETE } from '../base/entry.js'
import { ShadowFilter } from './shadow-filter.js'
import { TableFileWriter } from './table-writer.js'

/** A key range of a table in a level below the output (plain data: it crosses a worker boundary). */
export interface KeySpan {
  smallestKey: Uint8Array
  largestKey: Uint8Array
  fileBytes: number
}

/** Everything one compaction needs, as plain data. */
export interface CompactionJob {
  dir: string
  /** Input table numbers (from the level and the output level); any order. */
  inputNumbers: number[]
  /** File numbers reserved for outputs, used in order. */
  outputNumbers: number[]
  tableOptions: TableBuilderOptions
  targetTableBytes: number
  /** Live snapshot sequences, ascending. */
  snapshots: number[]
  /** Tables of the level right below the output, sorted: outputs are cut to limit overlap with them. */
  grandparents: KeySpan[]
  /** Tables of every level below the output (sorted per level): a delete is dropped only where none holds its key. */
  deeperLevels: KeySpan[][]
  /** Shared flag (non-zero: stop): the engine is closing. The job then stops at its next output chunk. */
  cancel?: Int32Array
}

export interface CompactionResult {
  outputs: TableMeta[]
  bytesRead: number
  bytesWritten: number
  entriesIn: number
  entriesDropped: number
  /** True when the job stopped early on `cancel`: its outputs are partial and must not be installed. */
  cancelled?: boolean
}


/**
 * Merges the input tables into new tables, in internal-key order:
 *  - versions no reader can see are dropped (ShadowFilter);
 *  - a delete visible to every reader is dropped when no deeper level holds
 *    its key (then nothing older can reappear);
 *  - an output is cut when it reaches targetTableBytes, or when it would
 *    overlap more than 10 × targetTableBytes of grandparents (so a later
 *    compaction of it stays small), but never between two versions of one
 *    user key (adjacent tables of a level never share a key).
 * Every output is fdatasynced and the directory fsynced before this resolves.
 */
export async function runCompactionJob(job: CompactionJob, fs: FileSystem = nodeFileSystem): Promise<CompactionResult> {
  await initChecksum()
  // Inputs are only scanned, once, forward: no filter, no decoded index, no block cache (TableScanner).
  const scanners: TableScanner[] = []
  try {
    for (const n of job.inputNumbers) scanners.push(TableScanner.open(fs, job.dir, n))
  } catch (err) {
    for (const s of scanners) s.close()
    throw err
  }
  const children: InternalIterator[] = scanners
  const merge = new MergingIterator(children, false)
  const shadow = new ShadowFilter(job.snapshots)
  const deeper = job.deeperLevels.map((spans) => ({ spans, i: 0 }))
  const maxGrandparentOverlapBytes = 10 * job.targetTableBytes
  let grandparentIndex = 0
  let overlapBytes = 0
  const outputs: TableMeta[] = []
  let out: TableFileWriter | undefined
  let lastKey: Buffer | undefined
  let entriesIn = 0
  let entriesDropped = 0
  const bytesRead = scanners.reduce((n, r) => n + r.fileBytes, 0)

  const finishOutput = async (): Promise<void> => {
    if (out === undefined) return
    outputs.push(await out.finish())
    out = undefined
    overlapBytes = 0
  }

  try {
    for (merge.seek((c) => c.seekToFirst()); merge.valid(); merge.advance()) {
      const top = merge.top()
      const key = top.key()
      const seq = top.sequence()
      entriesIn++
      if (!shadow.keep(key, seq)) {
        entriesDropped++
        continue
      }
      const newKey = lastKey === undefined || !lastKey.equals(key)
      if (top.kind() === KIND_DELETE && shadow.visibleToAll(seq) && !inDeeperLevel(deeper, key)) {
        entriesDropped++
        continue
      }
      if (newKey) {
        // Advance over grandparents that end before this key, counting what the current output overlaps.
        while (grandparentIndex < job.grandparents.length && Buffer.compare(job.grandparents[grandparentIndex].largestKey, key) < 0) {
          if (out !== undefined) overlapBytes += job.grandparents[grandparentIndex].fileBytes
          grandparentIndex++
        }
        if (out !== undefined && (out.estimatedFileBytes >= job.targetTableBytes || overlapBytes > maxGrandparentOverlapBytes)) {
          await finishOutput()
        }
        lastKey = Buffer.from(key)
      }
      if (out === undefined) {
        assert(outputs.length < job.outputNumbers.length, 'compaction ran out of reserved file numbers')
        out = new TableFileWriter(fs, job.dir, job.outputNumbers[outputs.length], job.tableOptions)
      }
      const due = out.add(key, seq, top.kind(), top.value())
      if (due !== undefined) {
        await due
        if (job.cancel !== undefined && Atomics.load(job.cancel, 0) !== 0) {
          // Closing: leave the partial outputs (no manifest lists them; the next open deletes them).
          await out.abandon()
          return { outputs: [], bytesRead, bytesWritten: 0, entriesIn, entriesDropped, cancelled: true }
        }
      }
    }
    await finishOutput()
    if (outputs.length > 0) syncDirectory(fs, job.dir)
  } catch (err) {
    await out?.abandon()
    throw err
  } finally {
    merge.close()
  }
  return { outputs, bytesRead, bytesWritten: outputs.reduce((n, t) => n + t.fileBytes, 0), entriesIn, entriesDropped }
}

/** True when some table of a deeper level may hold `key`. Keys arrive in ascending order. */
function inDeeperLevel(deeper: Array<{ spans: KeySpan[]; i: number }>, key: Buffer): boolean {
  for (const level of deeper) {
    while (level.i < level.spans.length && Buffer.compare(level.spans[level.i].largestKey, key) < 0) level.i++
    if (level.i < level.spans.length && Buffer.compare(level.spans[level.i].smallestKey, key) <= 0) return true
  }
  return false
}

/** How many output file numbers to reserve for a job reading `inputBytes`. */
export function outputNumbersNeeded(inputBytes: number, targetTableBytes: number, grandparents: number): number {
  return Math.ceil(inputBytes / targetTableBytes) + grandparents + 2
}
