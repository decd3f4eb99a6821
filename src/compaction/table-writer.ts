import * as path from 'node:path'
import { syncDirectory, type FileSystem } from '../vfs/file-system.js'
import { OutputFile } from '../vfs/output-file.js'
import { tableFileName } from '../base/file-names.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'
import type { TableMeta } from '../manifest/table-meta.js'
import { OUTPUT_WRITE_BYTES, TableBuilder, type TableBuilderOptions } from '../sstable/table-builder.js'
import { ShadowFilter } from './shadow-filter.js'
import { EXPIRY_BYTES, KIND_BLOB, KIND_BLOB_EXPIRING, KIND_PUT, KIND_PUT_EXPIRING, withExpiry } from '../base/entry.js'
import { BlobFileWriter, type WrittenBlobFile } from '../blob/blob-file-writer.js'
import { blobFileOf } from '../blob/blob-reference.js'


/**
 * One table file being written: entries go to a TableBuilder and its output is
 * streamed to disk in 1 MiB chunks (awaited, so the event loop turns). `finish`
 * fdatasyncs the file; the caller makes the directory entry durable
 * (`syncDirectory`) before a manifest references the table.
 */
export class TableFileWriter {
  private readonly builder: TableBuilder
  private readonly file: OutputFile
  private pendingBytes = 0
  private lastEstimate = 0
  /** Blob files the table's references name. */
  private readonly blobFiles = new Set<number>()

  constructor(
    fs: FileSystem,
    dir: string,
    readonly number: number,
    options: TableBuilderOptions,
  ) {
    this.file = new OutputFile(fs, path.join(dir, tableFileName(number)), 'table')
    this.builder = new TableBuilder(options)
  }

  get entryCount(): number {
    return this.builder.entryCount
  }

  get estimatedFileBytes(): number {
    return this.builder.estimatedFileBytes
  }

  /** Adds one entry (internal-key order); resolves at once unless a chunk is due. */
  add(key: Uint8Array, sequence: number, kind: number, value: Uint8Array): Promise<void> | undefined {
    this.builder.add(key, sequence, kind, value)
    if (kind === KIND_BLOB) this.blobFiles.add(blobFileOf(value, this.file.path))
    else if (kind === KIND_BLOB_EXPIRING) this.blobFiles.add(blobFileOf(value.subarray(EXPIRY_BYTES), this.file.path))
    const estimate = this.builder.estimatedFileBytes
    this.pendingBytes += estimate - this.lastEstimate
    this.lastEstimate = estimate
    return this.pendingBytes >= OUTPUT_WRITE_BYTES ? this.drain() : undefined
  }

  /** Writes the rest, fdatasyncs and closes. REQUIRES: at least one entry. */
  async finish(): Promise<TableMeta> {
    const props = this.builder.finish()
    await this.drain()
    this.builder.release()
    await this.file.finish()
    const meta: TableMeta = { number: this.number, ...props }
    return this.blobFiles.size === 0 ? meta : { ...meta, blobFiles: [...this.blobFiles].sort((a, b) => a - b) }
  }

  /** Closes the file after a failure (the caller leaves it for obsolete-file deletion), or drops an output that got no entry. */
  async abandon(): Promise<void> {
    this.file.abandon()
    // Kept lent (so dropped) when a write failed; reused otherwise.
    this.builder.release()
  }

  private async drain(): Promise<void> {
    const chunks = this.builder.takeOutput()
    this.pendingBytes = 0
    await this.file.append(chunks)
    // Only after a write that succeeded: a failed one leaves the builder's buffer lent (and so never reused).
    this.builder.outputWritten()
  }
}

/** Where a flush puts large values (plain data: it crosses a worker boundary). */
export interface BlobOutput {
  /** Values of puts at least this long go to the blob file; the table holds a reference. */
  minBlobBytes: number
  /** The file number reserved for the blob file (written only when some value goes there). */
  number: number
}

/** What a flush wrote: a table (none when nothing was kept) and the blob file its references name, if any. */
export interface WrittenTable {
  table?: TableMeta
  blobFile?: WrittenBlobFile
}

/**
 * Writes the entries of `input` (positioned by the caller, consumed to the end)
 * into table file `number`, dropping versions no reader can see; with `blobs`,
 * the values of puts of at least `minBlobBytes` go to a blob file and the
 * table holds references (KIND_BLOB). The files and their directory entries
 * are durable when this resolves (the blob file before the table that names
 * it). Leaves no file when nothing was kept.
 */
export async function writeTable(
  fs: FileSystem,
  dir: string,
  number: number,
  input: InternalIterator,
  options: TableBuilderOptions,
  snapshots: readonly number[],
  blobs?: BlobOutput,
): Promise<WrittenTable> {
  const out = new TableFileWriter(fs, dir, number, options)
  const shadow = new ShadowFilter(snapshots)
  const minBlobBytes = blobs?.minBlobBytes ?? Infinity
  let blobFile: BlobFileWriter | undefined
  try {
    for (; input.valid(); input.next()) {
      const key = input.key()
      const seq = input.sequence()
      if (!shadow.keep(key, seq)) continue
      const kind = input.kind()
      const value = input.value()
      if (kind === KIND_PUT && value.length >= minBlobBytes) {
        blobFile ??= new BlobFileWriter(fs, dir, blobs!.number)
        const written = blobFile.add(key, value)
        if (written.due !== undefined) await written.due
        const due = out.add(key, seq, KIND_BLOB, written.reference)
        if (due !== undefined) await due
        continue
      }
      if (kind === KIND_PUT_EXPIRING && value.length - EXPIRY_BYTES >= minBlobBytes) {
        blobFile ??= new BlobFileWriter(fs, dir, blobs!.number)
        const written = blobFile.add(key, value.subarray(EXPIRY_BYTES))
        if (written.due !== undefined) await written.due
        const due = out.add(key, seq, KIND_BLOB_EXPIRING, withExpiry(value, written.reference))
        if (due !== undefined) await due
        continue
      }
      const due = out.add(key, seq, kind, value)
      if (due !== undefined) await due
    }
    if (out.entryCount === 0) {
      await out.abandon()
      return {}
    }
    // The blob file is durable before the table that references it.
    const written = blobFile === undefined ? undefined : await blobFile.finish()
    const table = await out.finish()
    syncDirectory(fs, dir)
    return { table, blobFile: written }
  } catch (err) {
    blobFile?.abandon()
    await out.abandon()
    throw err
  } finally {
    input.close()
  }
}

