/**
 * The blob values of what `strata repair` keeps. Every blob file of the
 * directory is read whole first; a reference into an intact one must name
 * one of its records, and one into a damaged one is read and checked as the
 * engine reads it, its value copied into one new (salvage) blob file when it
 * verifies. An entry whose value cannot be read is dropped and counted. The
 * distinct values kept entries reference are counted per blob file, so that
 * its garbage is known when the manifest is written.
 */
import * as path from 'node:path'
import { isExpiringKind, withExpiry } from '../../base/entry.js'
import { blobFileName } from '../../base/file-names.js'
import { BlobFileWriter } from '../../blob/blob-file-writer.js'
import { blobValueChecksum } from '../../blob/blob-format.js'
import { decodeBlobReference, type BlobReference } from '../../blob/blob-reference.js'
import { readExactly, syncDirectory, type File, type FileSystem } from '../../vfs/file-system.js'
import { BlobRecordIndex, inspectBlobFile, isIntactBlob, type BlobFileInspection } from './blob-inspection.js'
import { payloadOf } from './entry-kinds.js'
import { showBytes, type Finding } from './output.js'
import type { EntryView } from './table-inspection.js'

/** What became of the blob entries of one table that was copied. */
export interface BlobEffects {
  /** Entries dropped: their value could not be read. */
  lost: number
  lostBytes: number
  /** Values copied out of damaged blob files. */
  copied: number
  /** Why values could not be read (the first few). */
  problems: Finding[]
}

export const newBlobEffects = (): BlobEffects => ({ lost: 0, lostBytes: 0, copied: 0, problems: [] })

/** Problems listed per table for blob values that could not be read; the rest are counted. */
const MAX_BLOB_PROBLEMS = 5

/** A blob file of the directory as the repair found it, and what the kept tables take from it. */
export interface BlobFileState {
  number: number
  name: string
  inspection: BlobFileInspection
  /** Entries whose value in it could not be read, and their value bytes. */
  valuesLost: number
  bytesLost: number
  /** A damaged file: references to its values copied into the salvage blob file, by old value offset. */
  copied: Map<number, Buffer>
}

/**
 * The blob files of the directory and the blob values of the entries the
 * repair keeps: whether a reference reads, the values of damaged blob files
 * copied into one new blob file, and the distinct values each blob file has
 * referenced by a kept entry (so that its garbage is known).
 */
export class BlobValues {
  readonly files = new Map<number, BlobFileState>()
  /** Distinct values referenced by kept entries: blob file → value offset → value length. */
  private readonly referenced = new Map<number, Map<number, number>>()
  private writer: BlobFileWriter | undefined
  private readonly handles = new Map<number, File>()
  private readonly ref: BlobReference = { fileNumber: 0, valueOffset: 0, valueLength: 0, checksum: 0 }

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    private readonly allocate: () => number,
  ) {}

  /** Reads every blob file of the directory whole (`scanBlobFile`). */
  load(numbers: readonly number[]): void {
    for (const number of numbers) this.files.set(number, this.newState(number, inspectBlobFile(this.fs, this.dir, number)))
  }

  private newState(number: number, inspection: BlobFileInspection): BlobFileState {
    return { number, name: blobFileName(number), inspection, valuesLost: 0, bytesLost: 0, copied: new Map() }
  }

  /** The blob file a reference names, when it decodes (into this.ref). */
  private decode(reference: Uint8Array): BlobReference | undefined {
    try {
      return decodeBlobReference(reference, '', this.ref)
    } catch {
      return undefined
    }
  }

  /**
   * Whether a reference reads as it is: it names a record of an intact blob
   * file, with the record's length and checksum. Returns the problem if not.
   */
  checkAsIs(reference: Uint8Array): string | undefined {
    const r = this.decode(reference)
    if (r === undefined) return 'malformed blob reference'
    const f = this.files.get(r.fileNumber)
    const what = `value at offset ${r.valueOffset} of ${blobFileName(r.fileNumber)}`
    if (f === undefined || f.inspection.missing) return `${what}: the blob file is missing`
    if (!isIntactBlob(f.inspection)) return `${what}: the blob file is damaged (${f.inspection.problems[0].message})`
    const i = f.inspection.records.find(r.valueOffset)
    if (i < 0 || f.inspection.records.valueLength(i) !== r.valueLength || f.inspection.records.checksum(i) !== r.checksum) {
      return `${what}: no record of the blob file holds a value there with the reference's length and checksum`
    }
    return undefined
  }

  /**
   * The reference to write for a kept entry: the same one when it reads as it
   * is; a new one when its value, in a damaged blob file, reads and verifies
   * (the value is copied into the salvage blob file); else the problem (the
   * entry cannot be kept) with the value bytes lost.
   */
  async resolve(key: Uint8Array, reference: Uint8Array): Promise<{ reference: Uint8Array; copied: boolean } | { problem: string; bytes: number }> {
    const problem = this.checkAsIs(reference)
    if (problem === undefined) return { reference, copied: false }
    const r = this.decode(reference)
    if (r === undefined) return { problem, bytes: 0 }
    let f = this.files.get(r.fileNumber)
    if (f === undefined) {
      // Referenced, but not in the directory: reported as missing.
      f = this.newState(r.fileNumber, { name: blobFileName(r.fileNumber), number: r.fileNumber, missing: true, fileBytes: 0, problems: [], records: new BlobRecordIndex(), verifiedEnd: 0 })
      this.files.set(r.fileNumber, f)
    }
    const lose = (why: string): { problem: string; bytes: number } => {
      f.valuesLost++
      f.bytesLost += r.valueLength
      return { problem: why, bytes: r.valueLength }
    }
    if (f.inspection.missing || isIntactBlob(f.inspection)) return lose(problem)
    // A damaged blob file: read the value as the engine would, and copy it when it verifies.
    const copied = f.copied.get(r.valueOffset)
    if (copied !== undefined) return { reference: copied, copied: true }
    const { valueOffset, valueLength, checksum } = r
    let value: Buffer
    try {
      let handle = this.handles.get(f.number)
      if (handle === undefined) {
        handle = this.fs.open(path.join(this.dir, f.name), 'r')
        this.handles.set(f.number, handle)
      }
      value = readExactly(handle, valueLength, valueOffset)
    } catch (err) {
      return lose(`value at offset ${valueOffset} of ${f.name}: cannot read: ${(err as Error).message}`)
    }
    if (value.length !== valueLength) return lose(`value at offset ${valueOffset} of ${f.name} (${valueLength} bytes) runs past the end of the file`)
    if (blobValueChecksum(value) !== checksum) return lose(`value at offset ${valueOffset} of ${f.name}: blob value checksum mismatch`)
    this.writer ??= new BlobFileWriter(this.fs, this.dir, this.allocate())
    const written = this.writer.add(key, value)
    if (written.due !== undefined) await written.due
    f.copied.set(valueOffset, written.reference)
    return { reference: written.reference, copied: true }
  }

  /**
   * The value to write for an entry of kind 3 or 5 copied into a new table:
   * its value bytes as they are, or (the value copied out of a damaged blob
   * file) with the new reference in place of the old one (kind 5: behind the
   * same expiry time); undefined when the value cannot be read (the entry is
   * dropped and counted in `fx`).
   */
  async valueFor(e: EntryView, fx: BlobEffects, table: string): Promise<Uint8Array | undefined> {
    const r = await this.resolve(e.key, payloadOf(e.kind, e.value))
    if ('reference' in r) {
      if (!r.copied) return e.value
      fx.copied++
      return isExpiringKind(e.kind) ? withExpiry(e.value, r.reference) : r.reference
    }
    fx.lost++
    fx.lostBytes += r.bytes
    if (fx.problems.length < MAX_BLOB_PROBLEMS) fx.problems.push({ file: table, message: `${showBytes(e.key, { hex: false })} @${e.sequence}: ${r.problem}: entry dropped` })
    return undefined
  }

  /** Counts the value a kept entry references (`reference`: the blob reference alone, without an expiry time). */
  count(reference: Uint8Array): void {
    const r = this.decode(reference)
    if (r === undefined) return
    let values = this.referenced.get(r.fileNumber)
    if (values === undefined) this.referenced.set(r.fileNumber, (values = new Map()))
    values.set(r.valueOffset, r.valueLength)
  }

  /** The blob files references name, ascending and unique (a table's `blobFiles`). */
  filesOf(references: readonly Uint8Array[]): number[] {
    const files = new Set<number>()
    for (const reference of references) {
      const r = this.decode(reference)
      if (r !== undefined) files.add(r.fileNumber)
    }
    return [...files].sort((a, b) => a - b)
  }

  /** Distinct values kept entries reference in blob file `number`, and their bytes. */
  referencedIn(number: number): { count: number; bytes: number } {
    const values = this.referenced.get(number)
    let bytes = 0
    for (const n of values?.values() ?? []) bytes += n
    return { count: values?.size ?? 0, bytes }
  }

  /** Finishes the salvage blob file, if values were copied (durable, with its directory entry). */
  async finish(): Promise<{ number: number; fileBytes: number; valueCount: number; valueBytes: number } | undefined> {
    for (const h of this.handles.values()) h.close()
    this.handles.clear()
    const w = this.writer
    this.writer = undefined
    if (w === undefined) return undefined
    const written = await w.finish()
    syncDirectory(this.fs, this.dir)
    return written
  }

  /** Closes everything after a failure (a salvage blob file being written stays, unreferenced). */
  abandon(): void {
    for (const h of this.handles.values()) h.close()
    this.handles.clear()
    this.writer?.abandon()
    this.writer = undefined
  }
}
