import * as fs from 'node:fs'
import * as path from 'node:path'
import { assert } from '../base/assert.js'
import { StrataError, corruption, ioError } from '../base/errors.js'
import { fdatasync, syncDirectory, writeFully } from '../base/fs-util.js'
import { CURRENT_FILE, manifestFileName } from '../base/file-names.js'
import { frameRecord, scanRecords } from '../wal/record-format.js'
import { Version } from './version.js'
import { decodeEdit, emptyEdit, encodeEdit, type VersionEdit } from './version-edit.js'

/** A manifest larger than this is rewritten as one snapshot record at the next edit. */
const MANIFEST_ROLL_BYTES = 16 << 20

/** State recovered from CURRENT and the manifest it names. */
export interface RecoveredState {
  version: Version
  logNumber: number
  nextFileNumber: number
  lastSequence: number
  manifestNumber: number
}

/**
 * Owns the manifest: the append-only log of version edits, and CURRENT, which
 * names the live manifest and is switched by an atomic rename. `logAndApply`
 * makes an edit durable (write + fdatasync) before it becomes the current
 * version; edits are applied one at a time, in call order.
 */
export class VersionSet {
  current: Version
  logNumber: number
  nextFileNumber: number
  /** Highest sequence number recorded in the manifest (the engine tracks the live one). */
  lastSequence: number
  private manifestFd = -1
  private manifestNumber = 0
  private manifestBytes = 0
  private queue: Promise<void> = Promise.resolve()

  constructor(private readonly dir: string, state: Omit<RecoveredState, 'manifestNumber'>) {
    this.current = state.version
    this.logNumber = state.logNumber
    this.nextFileNumber = state.nextFileNumber
    this.lastSequence = state.lastSequence
  }

  /** Reads CURRENT and replays the manifest; undefined when there is no CURRENT. */
  static recover(dir: string): RecoveredState | undefined {
    let current: string
    try {
      current = fs.readFileSync(path.join(dir, CURRENT_FILE), 'utf8')
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
      buf = fs.readFileSync(file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw corruption('CURRENT names a missing manifest', file)
      throw ioError(`cannot read ${file}`, err)
    }
    // A torn tail is an edit whose append never completed: its operation did not happen.
    // A complete record that fails its checksum is not: tables and WALs may depend on it.
    const { payloads } = scanRecords(buf, file, 'strict')
    if (payloads.length === 0) throw corruption('manifest holds no complete record', file)
    let version = Version.empty()
    let logNumber = 0
    let nextFileNumber = 0
    let lastSequence = 0
    for (const p of payloads) {
      const edit = decodeEdit(p, file)
      try {
        version = version.apply(edit)
      } catch (err) {
        throw new StrataError('STRATA_CORRUPTION', `manifest edit does not apply: ${(err as Error).message}`, { cause: err })
      }
      if (edit.logNumber !== undefined) logNumber = edit.logNumber
      if (edit.nextFileNumber !== undefined) nextFileNumber = edit.nextFileNumber
      if (edit.lastSequence !== undefined) lastSequence = edit.lastSequence
    }
    return { version, logNumber, nextFileNumber, lastSequence, manifestNumber }
  }

  newFileNumber(): number {
    return this.nextFileNumber++
  }

  /**
   * Starts a new manifest holding the whole current state as one record, makes
   * it durable and points CURRENT at it. Called at open and when the manifest
   * grows past MANIFEST_ROLL_BYTES. Returns the old manifest number (0 if none).
   */
  writeSnapshotManifest(): number {
    const old = this.manifestNumber
    const number = this.newFileNumber()
    const file = path.join(this.dir, manifestFileName(number))
    const edit = emptyEdit()
    this.fillCounters(edit)
    this.current.levels.forEach((tables, level) => tables.forEach((table) => edit.added.push({ level, table })))
    const record = frameRecord(encodeEdit(edit))
    let fd: number
    try {
      fd = fs.openSync(file, 'wx')
      writeFully(fd, record, null)
      fs.fdatasyncSync(fd)
    } catch (err) {
      throw ioError(`cannot write manifest ${file}`, err)
    }
    setCurrent(this.dir, number)
    if (this.manifestFd >= 0) fs.closeSync(this.manifestFd)
    this.manifestFd = fd
    this.manifestNumber = number
    this.manifestBytes = record.length
    return old
  }

  /**
   * Appends `edit` (with the counters filled in), syncs it, then installs the
   * resulting version. Serialized: concurrent callers run one after another.
   */
  logAndApply(edit: VersionEdit, lastSequence: number): Promise<Version> {
    const run = this.queue.then(async () => {
      assert(this.manifestFd >= 0, 'manifest not open')
      if (lastSequence > this.lastSequence) this.lastSequence = lastSequence
      if (edit.logNumber !== undefined) assert(edit.logNumber >= this.logNumber, 'log number went backwards')
      const next = this.current.apply(edit)
      if (this.manifestBytes > MANIFEST_ROLL_BYTES) {
        if (edit.logNumber !== undefined) this.logNumber = edit.logNumber
        this.current = next
        const old = this.writeSnapshotManifest()
        fs.rmSync(path.join(this.dir, manifestFileName(old)), { force: true })
        return next
      }
      this.fillCounters(edit)
      const record = frameRecord(encodeEdit(edit))
      try {
        writeFully(this.manifestFd, record, null)
      } catch (err) {
        throw ioError('write to manifest failed', err)
      }
      this.manifestBytes += record.length
      await fdatasync(this.manifestFd, manifestFileName(this.manifestNumber))
      if (edit.logNumber !== undefined) this.logNumber = edit.logNumber
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

  close(): void {
    if (this.manifestFd >= 0) fs.closeSync(this.manifestFd)
    this.manifestFd = -1
  }

  private fillCounters(edit: VersionEdit): void {
    edit.logNumber ??= this.logNumber
    edit.nextFileNumber = this.nextFileNumber
    edit.lastSequence = this.lastSequence
  }
}

/** Points CURRENT at manifest `number`: write a temp file, sync, rename, sync the directory. */
function setCurrent(dir: string, number: number): void {
  const tmp = path.join(dir, `CURRENT.${number}.tmp`)
  try {
    const fd = fs.openSync(tmp, 'w')
    writeFully(fd, Buffer.from(`${manifestFileName(number)}\n`), 0)
    fs.fdatasyncSync(fd)
    fs.closeSync(fd)
    fs.renameSync(tmp, path.join(dir, CURRENT_FILE))
  } catch (err) {
    throw ioError('cannot switch CURRENT', err)
  }
  syncDirectory(dir)
}
