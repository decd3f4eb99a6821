/**
 * Writes entries that arrive in internal-key order into new table files
 * (through the compaction's TableFileWriter), cutting a new table past a size
 * but never between two versions of one key, so that the tables written do
 * not overlap. A repeat of the previous (key, sequence) is dropped (the same
 * write salvaged twice, from a table and a WAL), as is an entry out of order.
 * A range delete (kind 6) is refused: tables cannot hold one (the repair
 * carries them into the manifest).
 */
import { DEFAULT_OPTIONS } from '../../options.js'
import { TableFileWriter } from '../../compaction/table-writer.js'
import type { TableMeta } from '../../manifest/table-meta.js'
import type { TableBuilderOptions } from '../../sstable/table-builder.js'
import { syncDirectory, type FileSystem } from '../../vfs/file-system.js'
import { isBlobKind, isRangeDeleteKind, payloadOf } from './entry-kinds.js'
import { KeyCopy, compareInternalKeys } from './internal-keys.js'

/** The table format tunables new tables are written with (the defaults of open()). */
export const REPAIR_TABLE_OPTIONS: TableBuilderOptions = {
  blockBytes: DEFAULT_OPTIONS.blockBytes,
  blockRestartInterval: DEFAULT_OPTIONS.blockRestartInterval,
  bloomBitsPerKey: DEFAULT_OPTIONS.bloomBitsPerKey,
  compression: DEFAULT_OPTIONS.compression,
}

export class TableSink {
  private writer: TableFileWriter | undefined
  private readonly last = new KeyCopy()
  private lastSeq = 0
  readonly tables: TableMeta[] = []
  /** Entries written. */
  entries = 0
  /** Repeats of the previous (key, sequence), dropped. */
  duplicates = 0
  /** Entries that did not sort after the previous one, dropped. */
  outOfOrder = 0
  /** Called with the blob reference of every entry of kind 3 or 5 written (of kind 5: without its expiry time; not those dropped). */
  onBlobReference: ((reference: Uint8Array) => void) | undefined

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    private readonly allocate: () => number,
    /** A table is cut once it reaches this size, at the next new key. */
    private readonly cutBytes = Infinity,
    private readonly options: TableBuilderOptions = REPAIR_TABLE_OPTIONS,
  ) {}

  /** Adds one entry; returns a promise when a chunk of output is being written (await it before the next). */
  add(key: Uint8Array, sequence: number, kind: number, value: Uint8Array): Promise<void> | undefined {
    if (isRangeDeleteKind(kind)) throw new Error(`range delete @${sequence} cannot be written into a table (it belongs in the manifest)`)
    if (this.last.isSet) {
      const c = compareInternalKeys(key, sequence, this.last.view(), this.lastSeq)
      if (c <= 0) {
        if (c === 0) this.duplicates++
        else this.outOfOrder++
        return undefined
      }
      if (this.writer !== undefined && this.writer.estimatedFileBytes >= this.cutBytes && Buffer.compare(key, this.last.view()) !== 0) {
        return this.cut().then(() => this.add(key, sequence, kind, value))
      }
    }
    this.writer ??= new TableFileWriter(this.fs, this.dir, this.allocate(), this.options)
    this.last.set(key)
    this.lastSeq = sequence
    this.entries++
    if (isBlobKind(kind)) this.onBlobReference?.(payloadOf(kind, value))
    return this.writer.add(key, sequence, kind, value)
  }

  /** Whether (key, sequence) repeats the entry written last (`add` would drop it). */
  isRepeat(key: Uint8Array, sequence: number): boolean {
    return this.last.isSet && sequence === this.lastSeq && Buffer.compare(key, this.last.view()) === 0
  }

  /** Finishes the last table and makes the new files' directory entries durable; returns every table written. */
  async finish(): Promise<TableMeta[]> {
    await this.cut()
    if (this.tables.length > 0) syncDirectory(this.fs, this.dir)
    return this.tables
  }

  /** Closes an unfinished table after a failure (the file stays, unreferenced). */
  async abandon(): Promise<void> {
    await this.writer?.abandon()
    this.writer = undefined
  }

  private async cut(): Promise<void> {
    const w = this.writer
    this.writer = undefined
    if (w !== undefined && w.entryCount > 0) this.tables.push(await w.finish())
  }
}
