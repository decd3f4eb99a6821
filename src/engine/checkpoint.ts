import { randomUUID } from 'node:crypto'
import * as path from 'node:path'
import { StrataError, ioError } from '../base/errors.js'
import { assert } from '../base/assert.js'
import { CHECKPOINT_PARTIAL_FILE, MARKER_FILE, parseFileName, walFileName } from '../base/file-names.js'
import type { TableVersion } from '../manifest/table-version.js'
import { writeSnapshotManifestFile } from '../manifest/table-version-set.js'
import { listDirectory, readInto, syncDirectory, writeFully, type File, type FileSystem } from '../vfs/file-system.js'

/** What `checkpoint()` made. */
export interface CheckpointResult {
  /** The checkpoint holds exactly the writes up to this sequence (`changes({ since })` continues from it). */
  sequence: number
  /** Total size of the checkpoint's files. */
  bytes: number
  /** Files in the checkpoint. */
  files: number
  /** Bytes copied rather than hard-linked (the active WAL's prefix; everything across file systems). */
  copiedBytes: number
}

/**
 * What a checkpoint copies (captureCheckpointState): the table version, the
 * WALs not yet in tables (the last is the active one, of which only the
 * committed prefix is copied), and the sequence that state holds. Its tables
 * and WALs are not deleted until `release()`.
 */
export interface CheckpointState {
  sequence: number
  tableVersion: TableVersion
  logNumber: number
  nextFileNumber: number
  /** WALs at or above `logNumber`, ascending, the active one last. */
  walNumbers: number[]
  activeWalBytes: number
  release(): void
}

export interface CheckpointHost {
  readonly dir: string
  readonly fs: FileSystem
  readonly tableVersions: { readonly logNumber: number; readonly nextFileNumber: number }
  /** Sequence of the newest resolved write. */
  readonly visibleSequence: number
  /** The active WAL and how many of its bytes hold resolved writes. */
  committedWal(): { number: number; bytes: number }
  /** Pins the current table version (its tables are not deleted) until the release. */
  pinTableVersion(): { tableVersion: TableVersion; release: () => void }
  /** Holds every WAL deletion until the release. */
  holdWalDeletion(): () => void
}

/**
 * The state a checkpoint copies, in one synchronous step (nothing installs or
 * deletes meanwhile): the current table version and the WALs it does not
 * cover. Every table holds only resolved writes (a memtable is frozen once its
 * writes settled), and the active WAL's committed bytes end exactly at the
 * visible sequence, so these files hold exactly the writes up to it.
 */
export function captureCheckpointState(host: CheckpointHost): CheckpointState {
  const logNumber = host.tableVersions.logNumber
  const active = host.committedWal()
  const walNumbers: number[] = []
  for (const name of listDirectory(host.fs, host.dir)) {
    const f = parseFileName(name)
    if (f?.kind === 'wal' && f.number >= logNumber && f.number <= active.number) walNumbers.push(f.number)
  }
  walNumbers.sort((a, b) => a - b)
  assert(walNumbers[walNumbers.length - 1] === active.number, 'the active WAL is not in the directory')
  const { tableVersion, release } = host.pinTableVersion()
  const releaseWals = host.holdWalDeletion()
  return {
    sequence: host.visibleSequence,
    tableVersion,
    logNumber,
    nextFileNumber: host.tableVersions.nextFileNumber,
    walNumbers,
    activeWalBytes: active.bytes,
    release: () => {
      releaseWals()
      release()
    },
  }
}

const COPY_CHUNK_BYTES = 1 << 20

/**
 * Writes a consistent, openable copy of the database into `target`, which
 * must not exist, while writes go on (docs/design.md, "Checkpoints"):
 *   1. create `target` holding only CHECKPOINT-PARTIAL (made beside it
 *      under a temporary name, synced, renamed: createTargetDirectory), which
 *      makes open() refuse the directory until the end;
 *   2. capture the state (CheckpointState) and keep its files;
 *   3. hard-link the tables and the complete WALs (copy across file systems),
 *      copy the committed prefix of the active WAL;
 *   4. write a manifest naming exactly the captured tables, CURRENT, and the
 *      STRATADB marker; fsync every file and the directory;
 *   5. delete CHECKPOINT-PARTIAL and sync the directory.
 * Nothing in the source directory is written. A crash or error before step 5
 * leaves a directory that open() refuses as an incomplete checkpoint.
 */
export async function writeCheckpoint(host: CheckpointHost, targetPath: string): Promise<CheckpointResult> {
  const fs = host.fs
  const target = path.resolve(targetPath)
  const source = path.resolve(host.dir)
  if (target.startsWith(source + path.sep)) {
    throw new StrataError('STRATA_INVALID_ARGUMENT', `checkpoint directory ${targetPath} is inside the database directory ${host.dir}`)
  }
  createTargetDirectory(fs, target)
  const sentinel = path.join(target, CHECKPOINT_PARTIAL_FILE)

  const state = captureCheckpointState(host)
  const written: string[] = []
  let copiedBytes = 0
  try {
    // Tables and blob files are immutable: hard-linked.
    for (const { name } of state.tableVersion.files()) {
      copiedBytes += await linkOrCopy(fs, path.join(host.dir, name), path.join(target, name))
      written.push(name)
    }
    const active = state.walNumbers[state.walNumbers.length - 1]
    for (const n of state.walNumbers) {
      const name = walFileName(n)
      const from = path.join(host.dir, name)
      const to = path.join(target, name)
      copiedBytes += n === active ? await copyFile(fs, from, to, state.activeWalBytes) : await linkOrCopy(fs, from, to)
      written.push(name)
    }
    // Linked files share their data with the source: sync them too (the source may run without syncWrites).
    for (const name of written) await syncFile(fs, path.join(target, name))
    const manifestNumber = state.nextFileNumber
    const { file } = writeSnapshotManifestFile(fs, target, manifestNumber, {
      tableVersion: state.tableVersion,
      logNumber: state.logNumber,
      nextFileNumber: manifestNumber + 1,
      lastSequence: state.sequence,
    })
    file.close()
    copiedBytes += await copyFile(fs, path.join(host.dir, MARKER_FILE), path.join(target, MARKER_FILE), Infinity)
    await syncFile(fs, path.join(target, MARKER_FILE))
    syncDirectory(fs, target)
  } finally {
    state.release()
  }
  try {
    fs.unlink(sentinel)
  } catch (err) {
    throw ioError(`cannot complete checkpoint ${target}`, err)
  }
  syncDirectory(fs, target)
  let bytes = 0
  const names = listDirectory(fs, target)
  for (const name of names) bytes += statSize(fs, path.join(target, name))
  return { sequence: state.sequence, bytes, files: names.length, copiedBytes }
}

/**
 * Creates `target` (an absolute path that must not exist) holding only
 * CHECKPOINT-PARTIAL, durably: the directory is made under a temporary name
 * beside it, gets the file, and is renamed to `target`. `target` therefore
 * never exists without the file until the checkpoint is complete (a crash
 * before the rename leaves a `.NAME.checkpoint-*.tmp` directory beside it).
 * Missing parent directories are created and synced.
 */
function createTargetDirectory(fs: FileSystem, target: string): void {
  const checkAbsent = (): void => {
    if (exists(fs, target)) throw new StrataError('STRATA_EXISTS', `checkpoint directory ${target} already exists`)
  }
  checkAbsent()
  const parent = path.dirname(target)
  createParents(fs, parent)
  const temp = path.join(parent, `.${path.basename(target)}.checkpoint-${randomUUID().slice(0, 8)}.tmp`)
  try {
    fs.mkdir(temp)
  } catch (err) {
    throw ioError(`cannot create ${temp}`, err)
  }
  createEmpty(fs, path.join(temp, CHECKPOINT_PARTIAL_FILE))
  syncDirectory(fs, temp)
  checkAbsent()
  try {
    fs.rename(temp, target)
  } catch (err) {
    throw ioError(`cannot rename ${temp} to ${target}`, err)
  }
  syncDirectory(fs, parent)
}

function exists(fs: FileSystem, file: string): boolean {
  try {
    fs.stat(file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw ioError(`cannot stat ${file}`, err)
  }
}

/** Creates `dir` and its missing ancestors, syncing the directory each new one was created in. */
function createParents(fs: FileSystem, dir: string): void {
  const missing: string[] = []
  for (let d = dir; !exists(fs, d); d = path.dirname(d)) missing.unshift(d)
  if (missing.length === 0) return
  try {
    fs.mkdir(dir)
  } catch (err) {
    throw ioError(`cannot create ${dir}`, err)
  }
  for (const d of missing) syncDirectory(fs, path.dirname(d))
}

function createEmpty(fs: FileSystem, file: string): void {
  let f: File | undefined
  try {
    f = fs.open(file, 'wx')
    f.datasyncSync()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new StrataError('STRATA_EXISTS', `${file} exists: another checkpoint writes there`)
    throw ioError(`cannot create ${file}`, err)
  } finally {
    f?.close()
  }
}

/** Hard-links `from` as `to`; copies it when they are on different file systems. Returns the bytes copied. */
async function linkOrCopy(fs: FileSystem, from: string, to: string): Promise<number> {
  try {
    fs.link(from, to)
    return 0
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EMLINK') throw ioError(`cannot link ${from} to ${to}`, err)
  }
  return copyFile(fs, from, to, Infinity)
}

/** Copies the first `limitBytes` of `from` (all of it with Infinity) into a new file `to`, in chunks, yielding between them. */
async function copyFile(fs: FileSystem, from: string, to: string, limitBytes: number): Promise<number> {
  let src: File | undefined
  let dst: File | undefined
  let copied = 0
  try {
    src = fs.open(from, 'r')
    dst = fs.open(to, 'wx')
    const buf = Buffer.allocUnsafe(COPY_CHUNK_BYTES)
    while (copied < limitBytes) {
      const n = readInto(src, buf.subarray(0, Math.min(buf.length, limitBytes - copied)), copied)
      if (n === 0) break
      writeFully(dst, buf.subarray(0, n), copied)
      copied += n
      if (n === buf.length) await new Promise<void>((resolve) => setImmediate(resolve))
    }
  } catch (err) {
    throw ioError(`cannot copy ${from} to ${to}`, err)
  } finally {
    src?.close()
    dst?.close()
  }
  if (limitBytes !== Infinity && copied !== limitBytes) throw ioError(`cannot copy ${from}`, new Error(`it holds ${copied} bytes, ${limitBytes} expected`))
  return copied
}

/** fdatasync on the thread pool: a checkpoint of many tables does not hold up the event loop. */
async function syncFile(fs: FileSystem, file: string): Promise<void> {
  let f: File | undefined
  try {
    f = fs.open(file, 'r')
    await f.datasync()
  } catch (err) {
    throw ioError(`cannot sync ${file}`, err)
  } finally {
    f?.close()
  }
}

function statSize(fs: FileSystem, file: string): number {
  try {
    return fs.stat(file).size
  } catch (err) {
    throw ioError(`cannot stat ${file}`, err)
  }
}
