import * as path from 'node:path'
import { assert } from '../base/assert.js'
import { StrataError, corruption, ioError } from '../base/errors.js'
import { CURRENT_FILE, manifestFileName } from '../base/file-names.js'
import { syncDirectory, writeFully, type File, type FileSystem } from '../vfs/file-system.js'
import { frameRecord, scanRecords } from '../wal/record-framing.js'
import { TableVersion } from './table-version.js'
import { decodeEdit, emptyEdit, encodeEdit, type TableVersionEdit } from './table-version-edit.js'

/** State recovered from CURRENT and the manifest it names. */
export interface RecoveredState {
  tableVersion: TableVersion
  logNumber: number
  nextFileNumber: number
  lastSequence: number
  manifestNumber: number
}

/**
 * Owns the manifest: the append-only log of table-version edits, and CURRENT, which
 * names the live manifest and is switched by an atomic rename.
 *
 * Durable first, then memory: `logAndApply` installs an edit's table version (and
 * its log number) only after the edit's record is written and fdatasynced, or
 * after a rewritten manifest and the CURRENT naming it are durable. A failed
 * write or sync leaves the manifest's tail unknown (the record may or may not
 * be there, and may be replayed at the next open), so the manifest is then
 * closed for appends: every later edit rejects until the engine is reopened
 * or resumed from what is on disk (docs/design.md, "When I/O fails").
 *
 * LevelDB's VersionSet; see TableVersion for why the name differs.
 */
export class TableVersionSet {
  current: TableVersion
  logNumber: number
  nextFileNumber: number
  /** Highest sequence number recorded in the manifest (the engine tracks the live one). */
  lastSequence: number
  private manifest: File | undefined
  private manifestNumber = 0
  private manifestBytes = 0
  /** Set by a failed append, sync or rewrite: the manifest takes no more edits. */
  private failure: StrataError | undefined
  private queue: Promise<void> = Promise.resolve()

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    state: Omit<RecoveredState, 'manifestNumber'>,
    /** A manifest larger than this is rewritten as one snapshot record at the next edit. */
    private readonly maxManifestBytes: number,
  ) {
    this.current = state.tableVersion
    this.logNumber = state.logNumber
    this.nextFileNumber = state.nextFileNumber
    this.lastSequence = state.lastSequence
  }

  /** Reads CURRENT and replays the manifest; undefined when there is no CURRENT. */
  static recover(fs: FileSystem, dir: string): RecoveredState | undefined {
    let current: string
    try {
      current = fs.readFile(path.join(dir, CURRENT_FILE)).toString('utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw ioError('cannot read CURRENT', err)
    }
    const m = /^MANIFEST-(\d{6,})\n$/.exec(current)
    if (!m) throw corruption('CURRENT does not name a manifest', CURRENT_FILE)
    const manifestNumber = Number(m[1])
    const file = path.join(dir, manifestFileName(manifestNumber))
    let buf: Buffer
    try {
      buf = fs.readFile(file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw corruption('CURRENT names a missing manifest', file)
      throw ioError(`cannot read ${file}`, err)
    }
    // A torn tail is an edit whose append never completed: its operation did not happen.
    // A complete record that fails its checksum is not: tables and WALs may depend on it.
    const { payloads } = scanRecords(buf, file, 'strict')
    if (payloads.length === 0) throw corruption('manifest holds no complete record', file)
    let tableVersion = TableVersion.empty()
    let logNumber = 0
    let nextFileNumber = 0
    let lastSequence = 0
    for (const p of payloads) {
      const edit = decodeEdit(p, file)
      try {
        tableVersion = tableVersion.apply(edit)
      } catch (err) {
        throw new StrataError('STRATA_CORRUPTION', `manifest edit does not apply: ${(err as Error).message}`, { cause: err })
      }
      if (edit.logNumber !== undefined) logNumber = edit.logNumber
      if (edit.nextFileNumber !== undefined) nextFileNumber = edit.nextFileNumber
      if (edit.lastSequence !== undefined) lastSequence = edit.lastSequence
    }
    return { tableVersion, logNumber, nextFileNumber, lastSequence, manifestNumber }
  }

  newFileNumber(): number {
    return this.nextFileNumber++
  }

  /**
   * Writes a new manifest holding `tableVersion` (and `logNumber`, `lastSequence`)
   * as one record, makes it durable and points CURRENT at it; only then does
   * the state become this set's. Called at open and when the manifest grows
   * past `maxManifestBytes`. The old manifest is left for obsolete-file
   * deletion. On failure the set keeps its state and takes no more edits.
   */
  writeSnapshotManifest(tableVersion = this.current, logNumber = this.logNumber, lastSequence = this.lastSequence): void {
    if (this.failure) throw this.failure
    const number = this.newFileNumber()
    let written: { file: File; bytes: number }
    try {
      written = writeSnapshotManifestFile(this.fs, this.dir, number, { tableVersion, logNumber, nextFileNumber: this.nextFileNumber, lastSequence })
    } catch (err) {
      // Until the directory sync, CURRENT may name either manifest: take no more edits.
      throw this.fail(err as StrataError)
    }
    this.manifest?.close()
    this.manifest = written.file
    this.manifestNumber = number
    this.manifestBytes = written.bytes
    this.current = tableVersion
    this.logNumber = logNumber
    this.lastSequence = lastSequence
  }

  /**
   * Appends `edit` (with the counters filled in) and fdatasyncs it, or rewrites
   * the manifest when it is due; then installs the resulting table version.
   * Serialized: concurrent callers run one after another, in call order.
   */
  logAndApply(edit: TableVersionEdit, lastSequence: number): Promise<TableVersion> {
    const run = this.queue.then(async () => {
      if (this.failure) throw this.failure
      assert(this.manifest !== undefined, 'manifest not open')
      if (edit.logNumber !== undefined) assert(edit.logNumber >= this.logNumber, 'log number went backwards')
      const next = withIdleRangeTombstonesRemoved(this.current, edit)
      const logNumber = edit.logNumber ?? this.logNumber
      const sequence = Math.max(lastSequence, this.lastSequence)
      if (this.manifestBytes > this.maxManifestBytes) {
        this.writeSnapshotManifest(next, logNumber, sequence)
        return next
      }
      edit.logNumber = logNumber
      edit.nextFileNumber = this.nextFileNumber
      edit.lastSequence = sequence
      const record = frameRecord(encodeEdit(edit))
      const name = manifestFileName(this.manifestNumber)
      try {
        writeFully(this.manifest, record, null)
      } catch (err) {
        throw this.fail(ioError(`write to ${name} failed`, err))
      }
      this.manifestBytes += record.length
      try {
        await this.manifest.datasync()
      } catch (err) {
        // The record may be in the file and replayed at the next open, or not: the edit's outcome is unknown.
        throw this.fail(ioError(`fsync of ${name} failed`, err))
      }
      this.lastSequence = sequence
      this.logNumber = logNumber
      this.current = next
      return next
    })
    this.queue = run.then(
      () => undefined,
      () => undefined,
    )
    return run
  }

  get manifestFileNumber(): number {
    return this.manifestNumber
  }

  /** Set when an append, sync or rewrite failed: no edit is taken any more. */
  get failed(): StrataError | undefined {
    return this.failure
  }

  close(): void {
    this.manifest?.close()
    this.manifest = undefined
  }

  private fail(err: StrataError): StrataError {
    this.failure ??= err
    return err
  }
}

/**
 * The table version `edit` makes, with the range tombstones that then cover
 * nothing removed by the same edit (a tombstone the edit adds is then not
 * added at all): e.g. the compaction that dropped the last versions a
 * tombstone covered removes the tombstone.
 */
function withIdleRangeTombstonesRemoved(current: TableVersion, edit: TableVersionEdit): TableVersion {
  const next = current.apply(edit)
  if (next.rangeTombstones.length === 0) return next
  const idle = new Set(next.idleRangeTombstones())
  if (idle.size === 0) return next
  const added = edit.rangeTombstonesAdded ?? []
  edit.rangeTombstonesAdded = added.filter((t) => !idle.has(t.seq))
  const addedNow = new Set(added.map((t) => t.seq))
  edit.rangeTombstonesRemoved = [...(edit.rangeTombstonesRemoved ?? []), ...[...idle].filter((s) => !addedNow.has(s))]
  return current.apply(edit)
}

/** What a snapshot manifest records: the whole table version and the counters. */
export interface ManifestSnapshot {
  tableVersion: TableVersion
  logNumber: number
  nextFileNumber: number
  lastSequence: number
}

/**
 * Writes manifest `number` in `dir` holding `snapshot` as one record,
 * fdatasyncs it and points CURRENT at it (durably). Returns the manifest,
 * still open for appends, and its size. Throws STRATA_IO_ERROR.
 */
export function writeSnapshotManifestFile(fs: FileSystem, dir: string, number: number, snapshot: ManifestSnapshot): { file: File; bytes: number } {
  const name = path.join(dir, manifestFileName(number))
  const edit = emptyEdit()
  edit.logNumber = snapshot.logNumber
  edit.nextFileNumber = snapshot.nextFileNumber
  edit.lastSequence = snapshot.lastSequence
  snapshot.tableVersion.levels.forEach((tables, level) => tables.forEach((table) => edit.added.push({ level, table })))
  edit.blobsAdded = []
  edit.blobGarbage = []
  for (const b of snapshot.tableVersion.blobs.values()) {
    edit.blobsAdded.push({ ...b, garbageCount: 0, garbageBytes: 0 })
    if (b.garbageCount > 0) edit.blobGarbage.push({ number: b.number, count: b.garbageCount, bytes: b.garbageBytes })
  }
  edit.rangeTombstonesAdded = [...snapshot.tableVersion.rangeTombstones]
  const record = frameRecord(encodeEdit(edit))
  let file: File | undefined
  try {
    file = fs.open(name, 'wx')
    writeFully(file, record, null)
    file.datasyncSync()
    setCurrent(fs, dir, number)
  } catch (err) {
    file?.close()
    throw err instanceof StrataError ? err : ioError(`cannot write manifest ${name}`, err)
  }
  return { file, bytes: record.length }
}

/** Points CURRENT at manifest `number`: write a temp file, sync, rename, sync the directory. */
function setCurrent(fs: FileSystem, dir: string, number: number): void {
  const tmp = path.join(dir, `CURRENT.${number}.tmp`)
  let file: File | undefined
  try {
    file = fs.open(tmp, 'w')
    writeFully(file, Buffer.from(`${manifestFileName(number)}\n`), 0)
    file.datasyncSync()
    file.close()
    fs.rename(tmp, path.join(dir, CURRENT_FILE))
  } catch (err) {
    file?.close()
    throw ioError('cannot switch CURRENT', err)
  }
  syncDirectory(fs, dir)
}
