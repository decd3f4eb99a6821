import * as path from 'node:path'
import { blobFileName } from '../base/file-names.js'
import type { FileSystem } from '../vfs/file-system.js'
import { OutputFile } from '../vfs/output-file.js'
import { BLOB_FOOTER_BYTES, BLOB_HEADER_BYTES, blobValueChecksum, encodeBlobFooter, encodeBlobHeader, encodeRecordHeader } from './blob-format.js'
import { encodeBlobReference } from './blob-reference.js'

/** A finished blob file. */
export interface WrittenBlobFile {
  number: number
  fileBytes: number
  valueCount: number
  valueBytes: number
}

/** Pending bytes are written once this much has accumulated. */
const WRITE_CHUNK_BYTES = 1 << 20

/**
 * One blob file being written by a flush or a compaction (on its worker
 * thread): `add` appends a record and returns the blob reference the table
 * stores instead of the value. Values are not copied: a value's bytes must
 * stay unchanged until the next write of pending chunks (`add` returns its
 * promise when one is due, and the caller awaits it before moving on; a
 * flush's values live in the memtable's records, a compaction's relocated
 * values in buffers of their own). `finish` writes the footer and
 * fdatasyncs; the caller syncs the directory before a manifest names the
 * file.
 */
export class BlobFileWriter {
  private readonly file: OutputFile
  private pending: Uint8Array[] = []
  private pendingBytes = 0
  private offset = BLOB_HEADER_BYTES
  private records = 0
  private valueBytes = 0

  constructor(
    fs: FileSystem,
    dir: string,
    readonly number: number,
  ) {
    this.file = new OutputFile(fs, path.join(dir, blobFileName(number)), 'blob file')
    this.push(encodeBlobHeader())
  }

  get recordCount(): number {
    return this.records
  }

  /** Appends `key`'s value; returns its encoded reference and the write started, if one is due. */
  add(key: Uint8Array, value: Uint8Array): { reference: Buffer; due: Promise<void> | undefined } {
    const checksum = blobValueChecksum(value)
    const header = encodeRecordHeader(key, value.length, checksum)
    const valueOffset = this.offset + header.length
    this.push(header)
    this.push(value)
    this.offset = valueOffset + value.length
    this.records++
    this.valueBytes += value.length
    const reference = encodeBlobReference({ fileNumber: this.number, valueOffset, valueLength: value.length, checksum })
    return { reference, due: this.pendingBytes >= WRITE_CHUNK_BYTES ? this.drain() : undefined }
  }

  /** Writes the footer and the rest, fdatasyncs and closes. REQUIRES: at least one record. */
  async finish(): Promise<WrittenBlobFile> {
    this.push(encodeBlobFooter({ recordCount: this.records, valueBytes: this.valueBytes }))
    await this.drain()
    await this.file.finish()
    return { number: this.number, fileBytes: this.offset + BLOB_FOOTER_BYTES, valueCount: this.records, valueBytes: this.valueBytes }
  }

  /** Closes the file after a failure (the caller leaves it for obsolete-file deletion). */
  abandon(): void {
    this.file.abandon()
  }

  private push(chunk: Uint8Array): void {
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
  }

  private async drain(): Promise<void> {
    const chunks = this.pending
    this.pending = []
    this.pendingBytes = 0
    await this.file.append(chunks)
  }
}
