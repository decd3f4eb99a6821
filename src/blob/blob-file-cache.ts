import * as path from 'node:path'
import { corruption, ioError } from '../base/errors.js'
import { blobFileName } from '../base/file-names.js'
import { readInto, type File, type FileSystem } from '../vfs/file-system.js'
import { blobValueChecksum } from './blob-format.js'
import { decodeBlobReference, type BlobReference } from './blob-reference.js'

/** One read-ahead of an iterator's scanReader. */
const READ_AHEAD_BYTES = 256 << 10
/** Values at most this far apart in one file count as adjacent (a record header and key lie between). */
const NEAR_BYTES = 64 << 10

/**
 * Reads separated values: one positioned read of exactly the value's bytes
 * into a new Buffer (the caller's to keep; no other copy), verified against
 * the checksum in its reference. Synchronous, like table reads, so `getSync`
 * and iterators resolve references in place. Values never enter the block
 * cache. Open blob files are kept by number, at most `maxOpenFiles` (the
 * least recently opened closes first); whoever deletes a blob file drops it
 * here first.
 *
 * Only blob files listed by a table version someone holds are read, and those
 * are not deleted (docs/design.md, "Snapshots and what pins what").
 */
export class BlobFileCache {
  private readonly files = new Map<number, File>()
  private readonly ref: BlobReference = { fileNumber: 0, valueOffset: 0, valueLength: 0, checksum: 0 }
  /** Values read and their bytes, for stats. */
  reads = 0
  readBytes = 0

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    private readonly maxOpenFiles = 256,
  ) {}

  /** The value a blob reference (a KIND_BLOB entry's value bytes) names; `where` names the table in errors. */
  read(reference: Uint8Array, where: string): Buffer {
    return this.readValue(decodeBlobReference(reference, where, this.ref))
  }

  /** The value a decoded blob reference names. */
  readValue(r: BlobReference): Buffer {
    const file = this.file(r.fileNumber)
    const value = Buffer.allocUnsafe(r.valueLength)
    const n = this.readAt(file, value, r.valueOffset)
    if (n !== r.valueLength) throw corruption(`blob value at ${r.valueOffset} (${r.valueLength} bytes) runs past the end of the file`, file.path, r.valueOffset)
    return this.verified(value, r, file.path)
  }

  /**
   * A reader for one iterator: it walks keys in order, and a flush's blob
   * file holds its values in key order, so values that follow each other in
   * a file come from one read of `readAheadBytes` instead of one `pread`
   * each. Read-ahead starts only once two values in a row were adjacent in
   * one file (an iterator that reads a value or two reads only those).
   */
  scanReader(reverse: boolean, readAheadBytes = READ_AHEAD_BYTES): (reference: Uint8Array, where: string) => Buffer {
    const r: BlobReference = { fileNumber: 0, valueOffset: 0, valueLength: 0, checksum: 0 }
    let window: Buffer | undefined
    let windowFile = -1
    let windowStart = 0
    let windowEnd = 0
    let lastFile = -1
    let lastStart = 0
    let lastEnd = 0
    return (reference, where) => {
      decodeBlobReference(reference, where, r)
      const { fileNumber, valueOffset: start, valueLength: length } = r
      const end = start + length
      const adjacent = fileNumber === lastFile && (reverse ? end <= lastStart && lastStart - end < NEAR_BYTES : start >= lastEnd && start - lastEnd < NEAR_BYTES)
      lastFile = fileNumber
      lastStart = start
      lastEnd = end
      const inWindow = fileNumber === windowFile && start >= windowStart && end <= windowEnd
      if (!inWindow && (!adjacent || length * 4 > readAheadBytes)) return this.readValue(r)
      const file = this.file(fileNumber)
      if (!inWindow) {
        window ??= Buffer.allocUnsafe(readAheadBytes)
        windowStart = reverse ? Math.max(0, end - readAheadBytes) : start
        windowEnd = windowStart + this.readAt(file, window, windowStart)
        windowFile = fileNumber
        if (end > windowEnd) throw corruption(`blob value at ${start} (${length} bytes) runs past the end of the file`, file.path, start)
      }
      return this.verified(Buffer.from(window!.subarray(start - windowStart, end - windowStart)), r, file.path)
    }
  }

  private readAt(file: File, into: Buffer, position: number): number {
    try {
      return readInto(file, into, position)
    } catch (err) {
      throw ioError(`cannot read ${file.path}`, err)
    }
  }

  private verified(value: Buffer, r: BlobReference, fileName: string): Buffer {
    if (blobValueChecksum(value) !== r.checksum) throw corruption('blob value checksum mismatch', fileName, r.valueOffset)
    this.reads++
    this.readBytes += value.length
    return value
  }

  /** Closes blob file `number` if open (before it is deleted). */
  drop(number: number): void {
    const f = this.files.get(number)
    if (f === undefined) return
    this.files.delete(number)
    f.close()
  }

  close(): void {
    for (const f of this.files.values()) f.close()
    this.files.clear()
  }

  private file(number: number): File {
    let f = this.files.get(number)
    if (f !== undefined) return f
    const name = path.join(this.dir, blobFileName(number))
    try {
      f = this.fs.open(name, 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw corruption('a table references a missing blob file', name)
      throw ioError(`cannot open ${name}`, err)
    }
    if (this.files.size >= this.maxOpenFiles) this.drop(this.files.keys().next().value as number)
    this.files.set(number, f)
    return f
  }
}
