import { assert } from '../base/assert.js'
import { keysEqual } from '../base/coding.js'
import { initChecksum } from '../base/checksum.js'
import { nodeFileSystem } from '../vfs/node-file-system.js'
import { syncDirectory, type FileSystem } from '../vfs/file-system.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'
import { MergingIterator } from '../iterators/merging-iterator.js'
import type { TableMeta } from '../manifest/table-meta.js'
import type { TableBuilderOptions } from '../sstable/table-builder.js'
import { TableScanner } from '../sstable/table-scanner.js'
import { EXPIRY_BYTES, KIND_BLOB, KIND_BLOB_EXPIRING, KIND_DELETE, KIND_PUT, KIND_PUT_EXPIRING, expiryOf, withExpiry } from '../base/entry.js'
import type { BlobGarbage } from '../manifest/blob-file-meta.js'
import { BlobFileCache } from '../blob/blob-file-cache.js'
import { BlobFileWriter, type WrittenBlobFile } from '../blob/blob-file-writer.js'
import { decodeBlobReference, type BlobReference } from '../blob/blob-reference.js'
import { ShadowFilter } from './shadow-filter.js'
import { RangeTombstoneIndex, type RangeTombstone } from '../base/range-tombstones.js'
import { flushesDone } from './flush-priority.js'
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
  /** Blob files whose values this compaction moves into a new blob file (blob garbage collection). */
  relocateBlobFiles?: number[]
  /** The file number reserved for that new blob file. */
  blobOutputNumber?: number
  /**
   * Inline values of puts at least this long move to that blob file too (a
   * table written before blob files, or with a larger minBlobBytes). Absent:
   * inline values stay inline.
   */
  minBlobBytes?: number
  /**
   * The engine's clock when the job was made (ms since the epoch): a put
   * that expired by then becomes a delete. Absent: nothing expires.
   */
  nowMs?: number
  /** The table version's range tombstones: versions they cover are dropped where no snapshot needs them. */
  rangeTombstones?: RangeTombstone[]
}

export interface CompactionResult {
  outputs: TableMeta[]
  bytesRead: number
  bytesWritten: number
  entriesIn: number
  entriesDropped: number
  /** Expired puts turned into deletes (and dropped with them where no older version can be below). */
  entriesExpired: number
  /** Versions dropped because a range tombstone covers them. */
  entriesRangeDeleted: number
  /** True when the job stopped early on `cancel`: its outputs are partial and must not be installed. */
  cancelled?: boolean
  /** Blob references dropped or relocated, per blob file. */
  blobGarbage: BlobGarbage[]
  /** The blob file relocated (and separated) values went to, if any. */
  blobFile?: WrittenBlobFile
  /** Value bytes moved out of blob files being collected. */
  blobBytesRelocated: number
}


/**
 * Merges the input tables into new tables, in internal-key order:
 *  - versions no reader can see are dropped (ShadowFilter);
 *  - a put that expired by `nowMs` becomes a delete of the same sequence
 *    (every reader from now on sees it as one);
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
  const scanners = openInputs(fs, job)
  const children: InternalIterator[] = scanners
  const merge = new MergingIterator(children, false)
  const outputs = new CompactionOutputs(fs, job)
  const blobs = new BlobHandling(fs, job)
  const counts = { entriesIn: 0, entriesDropped: 0, entriesExpired: 0, entriesRangeDeleted: 0 }
  const floor = { rangeDeleteFloor: 0 }
  const bytesRead = scanners.reduce((n, r) => n + r.fileBytes, 0)
  let blobFile: WrittenBlobFile | undefined
  try {
    if (!(await mergeEntries(merge, job, outputs, blobs, counts, floor))) {
      blobs.abandon()
      return { outputs: [], bytesRead, bytesWritten: 0, ...counts, cancelled: true, blobGarbage: [], blobBytesRelocated: 0 }
    }
    // The relocated values are durable before the tables naming them are installed.
    blobFile = await blobs.finish()
    await outputs.finish()
  } catch (err) {
    blobs.abandon()
    await outputs.abandon()
    throw err
  } finally {
    merge.close()
    blobs.close()
  }
  const bytesWritten = outputs.tables.reduce((n, t) => n + t.fileBytes, 0) + (blobFile?.fileBytes ?? 0)
  const tables = floor.rangeDeleteFloor > 0 ? outputs.tables.map((t) => ({ ...t, rangeDeleteFloor: floor.rangeDeleteFloor })) : outputs.tables
  return { outputs: tables, bytesRead: bytesRead + blobs.bytesRead, bytesWritten, ...counts, blobGarbage: blobs.garbage(), blobFile, blobBytesRelocated: blobs.bytesRead }
}

/**
 * A compaction's blob work: counts the references it drops as garbage of
 * their blob files, and moves the values of files being collected
 * (`relocateBlobFiles`) into one new blob file, counting the old reference
 * as garbage too (blob garbage collection through compaction, as RocksDB's
 * integrated BlobDB: a reference changes only inside a table rewrite, so no
 * read ever meets a dangling one).
 */
class BlobHandling {
  private readonly byFile = new Map<number, BlobGarbage>()
  private readonly relocate: ReadonlySet<number>
  private readonly ref: BlobReference = { fileNumber: 0, valueOffset: 0, valueLength: 0, checksum: 0 }
  private reader: BlobFileCache | undefined
  private writer: BlobFileWriter | undefined
  bytesRead = 0

  constructor(
    private readonly fs: FileSystem,
    private readonly job: CompactionJob,
  ) {
    this.relocate = new Set(job.relocateBlobFiles ?? [])
  }

  /** A reference the compaction drops. */
  dropped(reference: Uint8Array): void {
    const r = decodeBlobReference(reference, 'compaction input', this.ref)
    this.countGarbage(r.fileNumber, r.valueLength)
  }

  /** Moves an inline value into the blob output; returns its reference (and the write started, if one is due). */
  separate(key: Uint8Array, value: Uint8Array): { reference: Uint8Array; due: Promise<void> | undefined } {
    // A copy: the value is a view of the input's block buffer, which the next block reuses before the write.
    return this.output().add(key, Buffer.from(value))
  }

  /** The reference to keep for `reference`: itself, or a new one when its file is being collected (then a write may be due). */
  keep(key: Uint8Array, reference: Uint8Array): { reference: Uint8Array; due: Promise<void> | undefined } {
    const r = decodeBlobReference(reference, 'compaction input', this.ref)
    if (!this.relocate.has(r.fileNumber)) return { reference, due: undefined }
    this.reader ??= new BlobFileCache(this.fs, this.job.dir, 16)
    const value = this.reader.readValue(r)
    this.bytesRead += value.length
    this.countGarbage(r.fileNumber, value.length)
    return this.output().add(key, value)
  }

  private output(): BlobFileWriter {
    if (this.writer === undefined) {
      const number = this.job.blobOutputNumber
      assert(number !== undefined, 'a compaction writing blobs has a blob output number')
      this.writer = new BlobFileWriter(this.fs, this.job.dir, number)
    }
    return this.writer
  }

  garbage(): BlobGarbage[] {
    return [...this.byFile.values()]
  }

  async finish(): Promise<WrittenBlobFile | undefined> {
    return this.writer === undefined ? undefined : this.writer.finish()
  }

  abandon(): void {
    this.writer?.abandon()
  }

  close(): void {
    this.reader?.close()
  }

  private countGarbage(number: number, bytes: number): void {
    const g = this.byFile.get(number)
    if (g === undefined) this.byFile.set(number, { number, count: 1, bytes })
    else (g.count++, (g.bytes += bytes))
  }
}

const EMPTY = new Uint8Array(0)

/** Opens every input table; on a failure, closes those already open. */
function openInputs(fs: FileSystem, job: CompactionJob): TableScanner[] {
  // Inputs are only scanned, once, forward: no filter, no decoded index, no block cache (TableScanner).
  const scanners: TableScanner[] = []
  try {
    for (const n of job.inputNumbers) scanners.push(TableScanner.open(fs, job.dir, n))
  } catch (err) {
    for (const s of scanners) s.close()
    throw err
  }
  return scanners
}

/**
 * Writes the merged inputs into `outputs`, dropping the entries no reader
 * needs (counted in `counts`). Returns false when it stopped on `job.cancel`,
 * after abandoning the output being written.
 */
async function mergeEntries(
  merge: MergingIterator,
  job: CompactionJob,
  outputs: CompactionOutputs,
  blobs: BlobHandling,
  counts: { entriesIn: number; entriesDropped: number; entriesExpired: number; entriesRangeDeleted: number },
  floor: { rangeDeleteFloor: number },
): Promise<boolean> {
  const tombstones = job.rangeTombstones ?? []
  const ranges = tombstones.length === 0 ? undefined : new RangeTombstoneIndex(tombstones)
  // Outputs promise that no tombstone up to this covers anything in them; lowered below one whose covered version a snapshot keeps.
  floor.rangeDeleteFloor = tombstones.reduce((m, t) => Math.max(m, t.seq), 0)
  const shadow = new ShadowFilter(job.snapshots)
  const deeper = job.deeperLevels.map((spans) => ({ spans, i: 0 }))
  const minBlobBytes = job.minBlobBytes ?? Infinity
  const nowMs = job.nowMs ?? -Infinity
  let lastKey: Buffer | undefined
  for (merge.seek((c) => c.seekToFirst()); merge.valid(); merge.advance()) {
    const top = merge.top()
    const key = top.key()
    const seq = top.sequence()
    let kind = top.kind()
    let value: Uint8Array = top.value()
    counts.entriesIn++
    if (!shadow.keep(key, seq)) {
      counts.entriesDropped++
      if (kind === KIND_BLOB) blobs.dropped(value)
      else if (kind === KIND_BLOB_EXPIRING) blobs.dropped(value.subarray(EXPIRY_BYTES))
      continue
    }
    if (ranges !== undefined) {
      // The oldest tombstone newer than this version decides: a snapshot between them needs the version.
      const cover = ranges.nextCoveringSequence(key, seq)
      if (cover !== Infinity) {
        if (shadow.sameStripe(seq, cover)) {
          counts.entriesDropped++
          counts.entriesRangeDeleted++
          if (kind === KIND_BLOB) blobs.dropped(value)
          else if (kind === KIND_BLOB_EXPIRING) blobs.dropped(value.subarray(EXPIRY_BYTES))
          continue
        }
        floor.rangeDeleteFloor = Math.min(floor.rangeDeleteFloor, cover - 1)
      }
    }
    if ((kind === KIND_PUT_EXPIRING || kind === KIND_BLOB_EXPIRING) && expiryOf(value) <= nowMs) {
      // Expired: a delete from now on for every reader, snapshots included; it still hides older versions.
      if (kind === KIND_BLOB_EXPIRING) blobs.dropped(value.subarray(EXPIRY_BYTES))
      counts.entriesExpired++
      kind = KIND_DELETE
      value = EMPTY
    }
    const newKey = lastKey === undefined || !keysEqual(lastKey, key)
    if (kind === KIND_DELETE && shadow.visibleToAll(seq) && !inDeeperLevel(deeper, key)) {
      counts.entriesDropped++
      continue
    }
    if (newKey) {
      await outputs.startKey(key)
      lastKey = Buffer.from(key)
    }
    if (kind === KIND_BLOB) {
      const kept = blobs.keep(key, value)
      if (kept.due !== undefined) await kept.due
      value = kept.reference
    } else if (kind === KIND_BLOB_EXPIRING) {
      const reference = value.subarray(EXPIRY_BYTES)
      const kept = blobs.keep(key, reference)
      if (kept.due !== undefined) await kept.due
      if (kept.reference !== reference) value = withExpiry(value, kept.reference)
    } else if (kind === KIND_PUT && value.length >= minBlobBytes) {
      const moved = blobs.separate(key, value)
      if (moved.due !== undefined) await moved.due
      kind = KIND_BLOB
      value = moved.reference
    } else if (kind === KIND_PUT_EXPIRING && value.length - EXPIRY_BYTES >= minBlobBytes) {
      const moved = blobs.separate(key, value.subarray(EXPIRY_BYTES))
      if (moved.due !== undefined) await moved.due
      kind = KIND_BLOB_EXPIRING
      value = withExpiry(value, moved.reference)
    }
    const due = outputs.add(key, seq, kind, value)
    if (due !== undefined) {
      await due
      // A flush on this thread goes first (flush-priority.ts).
      const flushing = flushesDone()
      if (flushing !== undefined) await flushing
      if (job.cancel !== undefined && Atomics.load(job.cancel, 0) !== 0) {
        // Closing: leave the partial outputs (no manifest lists them; the next open deletes them).
        await outputs.abandon()
        return false
      }
    }
  }
  return true
}

/**
 * A compaction's output tables, written one at a time into the reserved file
 * numbers. An output is cut only at the first entry of a user key (startKey).
 */
class CompactionOutputs {
  /** Finished outputs, in key order. */
  readonly tables: TableMeta[] = []
  private out: TableFileWriter | undefined
  private readonly maxGrandparentOverlapBytes: number
  private grandparentIndex = 0
  /** Bytes of the grandparents the current output overlaps. */
  private overlapBytes = 0

  constructor(
    private readonly fs: FileSystem,
    private readonly job: CompactionJob,
  ) {
    this.maxGrandparentOverlapBytes = 10 * job.targetTableBytes
  }

  /** Before the first entry of user key `key`: finishes the current output if it is full or overlaps too many grandparents. */
  async startKey(key: Buffer): Promise<void> {
    const grandparents = this.job.grandparents
    // Advance over grandparents that end before this key, counting what the current output overlaps.
    while (this.grandparentIndex < grandparents.length && Buffer.compare(grandparents[this.grandparentIndex].largestKey, key) < 0) {
      if (this.out !== undefined) this.overlapBytes += grandparents[this.grandparentIndex].fileBytes
      this.grandparentIndex++
    }
    // The numbers reserved are estimated from the inputs' stored bytes; data that stores larger (compression
    // switched off, or a block estimate off) may need more: the last one then takes the rest, past the target.
    const lastNumber = this.tables.length + 1 >= this.job.outputNumbers.length
    if (this.out !== undefined && !lastNumber && (this.out.estimatedFileBytes >= this.job.targetTableBytes || this.overlapBytes > this.maxGrandparentOverlapBytes)) {
      await this.finishOutput()
    }
  }

  /** Adds an entry to the current output, opening one if none is; returns the write it started, if any (TableFileWriter.add). */
  add(key: Buffer, sequence: number, kind: number, value: Uint8Array): Promise<void> | undefined {
    if (this.out === undefined) {
      assert(this.tables.length < this.job.outputNumbers.length, 'compaction ran out of reserved file numbers')
      this.out = new TableFileWriter(this.fs, this.job.dir, this.job.outputNumbers[this.tables.length], this.job.tableOptions)
    }
    return this.out.add(key, sequence, kind, value)
  }

  /** Finishes the last output and fsyncs the directory (when there are outputs). */
  async finish(): Promise<void> {
    await this.finishOutput()
    if (this.tables.length > 0) syncDirectory(this.fs, this.job.dir)
  }

  /** Closes the output being written, if any, after a failure or a cancel (its file is left for obsolete-file deletion). */
  async abandon(): Promise<void> {
    await this.out?.abandon()
  }

  private async finishOutput(): Promise<void> {
    if (this.out === undefined) return
    this.tables.push(await this.out.finish())
    this.out = undefined
    this.overlapBytes = 0
  }
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
