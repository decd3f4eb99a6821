import * as fs from 'node:fs'
import { ioError } from './errors.js'

/** Small synchronous file-system helpers that turn errno failures into STRATA_IO_ERROR. */

/** fsyncs a directory so that created, renamed or deleted entries are durable. */
export function syncDirectory(dir: string): void {
  let fd: number | undefined
  try {
    fd = fs.openSync(dir, 'r')
    fs.fsyncSync(fd)
  } catch (err) {
    throw ioError(`fsync of directory ${dir} failed`, err)
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}

/** Writes all of `buf` at `position`, looping over short writes. */
export function writeFully(fd: number, buf: Uint8Array, position: number | null): void {
  let done = 0
  while (done < buf.length) {
    const n = fs.writeSync(fd, buf, done, buf.length - done, position === null ? null : position + done)
    done += n
  }
}

/** Reads up to `buf.length` bytes at `position` into `buf`; returns the count (short only at end of file). */
export function readInto(fd: number, buf: Buffer, position: number): number {
  let done = 0
  while (done < buf.length) {
    const n = fs.readSync(fd, buf, done, buf.length - done, position + done)
    if (n === 0) break
    done += n
  }
  return done
}

/** Reads exactly `length` bytes at `position` into a new buffer; fewer bytes mean the file is short. */
export function readExactly(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.allocUnsafe(length)
  const done = readInto(fd, buf, position)
  return done === length ? buf : buf.subarray(0, done)
}

/** Promisified fdatasync that reports STRATA_IO_ERROR. */
export function fdatasync(fd: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.fdatasync(fd, (err) => (err ? reject(ioError(`fsync of ${what} failed`, err)) : resolve()))
  })
}

/** Deletes a file, ignoring "not found". */
export function removeIfExists(path: string): void {
  try {
    fs.unlinkSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot delete ${path}`, err)
  }
}
