import * as path from 'node:path'
import { corruption, ioError } from '../base/errors.js'
import { blobFileName } from '../base/file-names.js'
import { readInto, type File, type FileSystem } from '../vfs/file-system.js'
import { blobValueChecksum } from './blob-format.js'
import { decodeBlobReference, type BlobReference } from './blob-reference.js'

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
    const r = decodeBlobReference(reference, where, this.ref)
    const file = this.file(r.fileNumber)
    const value = Buffer.allocUnsafe(r.valueLength)
    let n: number
    try {
      n = readInto(file, value, r.valueOffset)
    } catch (err) {
      throw ioError(`cannot read ${file.path}`, err)
    }
    if (n !== r.valueLength) throw corruption(`blob value at ${r.valueOffset} (${r.valueLength} bytes) runs past the end of the file`, file.path, r.valueOffset)
    if (blobValueChecksum(value) !== r.checksum) throw corruption('blob value checksum mismatch', file.path, r.valueOffset)
    this.reads++
    this.readBytes += n
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
