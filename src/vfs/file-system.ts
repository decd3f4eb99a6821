import * as path from 'node:path'
import { ioError } from '../base/errors.js'
import { parseFileName, type FileKind } from '../base/file-names.js'

/**
 * The file-system seam (as LevelDB's `Env` and Pebble's `vfs.FS`): every
 * open, read, write, fsync, rename, link, unlink, listing, stat, mkdir and rmdir the
 * engine does goes through a `FileSystem`, so that tests can fail any of
 * them (fault-injecting-file-system.ts). `nodeFileSystem` is the default and
 * the engine's only importer of `node:fs`.
 *
 * Errors are thrown as the underlying implementation reports them (Node's
 * errno errors, with `code`); the engine wraps them as STRATA_IO_ERROR where
 * it knows what failed.
 */
export interface FileSystem {
  /**
   * Opens a file: 'r' to read, 'wx' to create a new file for writing (EEXIST
   * when it exists), 'w' to create or truncate, 'r+' to read and write an
   * existing file.
   */
  open(file: string, flags: OpenFlags): File
  /** The whole file's bytes. */
  readFile(file: string): Buffer
  /** Atomically replaces `to` with `from`. */
  rename(from: string, to: string): void
  /** Creates the name `to` for the file `from` (EEXIST when `to` exists). */
  link(from: string, to: string): void
  unlink(file: string): void
  /**
   * unlink on the thread pool: deleting a large file frees its extents, which
   * blocks for milliseconds (~7.5 ms for 22 MiB on this machine's disk).
   */
  unlinkAsync(file: string): Promise<void>
  /** Names in `dir` (no `.` and `..`). */
  readdir(dir: string): string[]
  stat(file: string): FileStat
  /** Creates `dir` and its missing parents. */
  mkdir(dir: string): void
  /** Removes an empty directory. */
  rmdir(dir: string): void
  /** fsyncs a directory so that entries created, renamed or deleted in it are durable. */
  syncDir(dir: string): void
  /** The canonical absolute path of an existing `file`. */
  realpath(file: string): string
}

export type OpenFlags = 'r' | 'wx' | 'w' | 'r+'

export interface FileStat {
  size: number
  isDirectory: boolean
  isFile: boolean
  /** Last modification time, ms since the epoch. */
  mtimeMs: number
}

/** An open file. Positions are byte offsets; `null` means the file's own offset (appending). */
export interface File {
  readonly path: string
  /** Reads up to `length` bytes at `position` into `buf[offset..]`; returns the count (0 at end of file). */
  read(buf: Uint8Array, offset: number, length: number, position: number): number
  /** Writes `buf[offset..offset+length)`; returns the count written, which may be short. */
  write(buf: Uint8Array, offset: number, length: number, position: number | null): number
  /** Writes every chunk at the file's offset, off the event loop; short writes are continued. */
  writeChunks(chunks: readonly Uint8Array[]): Promise<void>
  /** fdatasync on the thread pool. */
  datasync(): Promise<void>
  /** fdatasync on this thread. */
  datasyncSync(): void
  /** The file's size in bytes (fstat). */
  size(): number
  /** Idempotent. Never fails: a close error is ignored (the data's fate was decided by the last sync). */
  close(): void
}

/** What a path is, for fault injection and error messages: a file kind of the directory, the directory itself, or other. */
export type FileClass = FileKind | 'directory' | 'other'

/** Classifies `file` by its name (docs/format.md, "Directory"). */
export function fileClassOf(file: string): FileClass {
  return parseFileName(path.basename(file))?.kind ?? 'other'
}

/** Writes all of `buf` at `position` (null: at the file's offset), continuing short writes. */
export function writeFully(file: File, buf: Uint8Array, position: number | null): void {
  let done = 0
  while (done < buf.length) {
    done += file.write(buf, done, buf.length - done, position === null ? null : position + done)
  }
}

/** Reads up to `buf.length` bytes at `position` into `buf`; returns the count (short only at end of file). */
export function readInto(file: File, buf: Uint8Array, position: number): number {
  let done = 0
  while (done < buf.length) {
    const n = file.read(buf, done, buf.length - done, position + done)
    if (n === 0) break
    done += n
  }
  return done
}

/** Reads exactly `length` bytes at `position` into a new buffer; fewer bytes mean the file is short. */
export function readExactly(file: File, length: number, position: number): Buffer {
  const buf = Buffer.allocUnsafe(length)
  const done = readInto(file, buf, position)
  return done === length ? buf : buf.subarray(0, done)
}

/** The names in `dir`; throws STRATA_IO_ERROR. */
export function listDirectory(fs: FileSystem, dir: string): string[] {
  try {
    return fs.readdir(dir)
  } catch (err) {
    throw ioError(`cannot list ${dir}`, err)
  }
}

/** fsyncs `dir` so that entries created, renamed or deleted in it are durable; throws STRATA_IO_ERROR. */
export function syncDirectory(fs: FileSystem, dir: string): void {
  try {
    fs.syncDir(dir)
  } catch (err) {
    throw ioError(`fsync of directory ${dir} failed`, err)
  }
}

/**
 * Replaces `target` by `bytes` atomically and durably: written to `temp`,
 * fdatasynced, renamed over `target` (the caller syncs the directory). On a
 * failure the temp file is removed when possible and STRATA_IO_ERROR thrown;
 * `target` is then unchanged.
 */
export function replaceFileAtomically(fs: FileSystem, target: string, temp: string, bytes: Uint8Array): void {
  let file: File | undefined
  try {
    file = fs.open(temp, 'w')
    writeFully(file, bytes, 0)
    file.datasyncSync()
    file.close()
    file = undefined
    fs.rename(temp, target)
  } catch (err) {
    file?.close()
    try {
      fs.unlink(temp)
    } catch {
      // Left behind: a temp name, ignored and overwritten next time.
    }
    throw ioError(`cannot write ${target}`, err)
  }
}
