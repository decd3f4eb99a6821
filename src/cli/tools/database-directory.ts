/**
 * A database directory as the inspection tools find it: the check that the
 * path given is an existing directory, its files sorted by kind (tables, blob
 * files, WALs, manifests, CURRENT, the STRATADB marker, strays), and the
 * manifest CURRENT names. Everything here only reads, through the FileSystem
 * seam.
 */
import * as path from 'node:path'
import { StrataError, ioError } from '../../base/errors.js'
import { CURRENT_FILE, MARKER_FILE, parseFileName } from '../../base/file-names.js'
import type { FileSystem } from '../../vfs/file-system.js'
import { UsageError, type Finding } from './output.js'

/** Throws UsageError unless `dir` is an existing directory (the tools' argument check). */
export function requireDirectory(fs: FileSystem, dir: string): void {
  let isDir: boolean
  try {
    isDir = fs.stat(dir).isDirectory
  } catch (err) {
    throw new UsageError(isMissing(err) ? `${dir} does not exist` : `cannot stat ${dir}: ${(err as Error).message}`)
  }
  if (!isDir) throw new UsageError(`${dir} is not a directory`)
}

/** True for a file-system error saying the file does not exist. */
export function isMissing(err: unknown): boolean {
  const e = err instanceof StrataError && err.cause !== undefined ? err.cause : err
  return (e as NodeJS.ErrnoException)?.code === 'ENOENT'
}

/** The files of a database directory, by kind (numbers ascending). */
export interface DirectoryListing {
  names: string[]
  tables: number[]
  /** Blob files (`NNNNNN.blob`). */
  blobs: number[]
  wals: number[]
  manifests: number[]
  hasCurrent: boolean
  hasMarker: boolean
  /** Names stratadb does not own (a `lost` folder, strays). */
  others: string[]
}

export function listDirectory(fs: FileSystem, dir: string): DirectoryListing {
  let names: string[]
  try {
    names = fs.readdir(dir).sort()
  } catch (err) {
    throw ioError(`cannot list ${dir}`, err)
  }
  const out: DirectoryListing = { names, tables: [], blobs: [], wals: [], manifests: [], hasCurrent: false, hasMarker: false, others: [] }
  for (const name of names) {
    const f = parseFileName(name)
    if (f === undefined) out.others.push(name)
    else if (f.kind === 'table') out.tables.push(f.number)
    else if (f.kind === 'blob') out.blobs.push(f.number)
    else if (f.kind === 'wal') out.wals.push(f.number)
    else if (f.kind === 'manifest') out.manifests.push(f.number)
    else if (f.kind === 'current') out.hasCurrent = true
    else if (name === MARKER_FILE) out.hasMarker = true
  }
  for (const list of [out.tables, out.blobs, out.wals, out.manifests]) list.sort((a, b) => a - b)
  return out
}

/** Reads CURRENT: the manifest number it names, `missing` when there is none, or the problem with it. */
export function readCurrent(fs: FileSystem, dir: string): { manifestNumber: number } | { missing: true } | { problem: Finding } {
  let text: string
  try {
    text = fs.readFile(path.join(dir, CURRENT_FILE)).toString('latin1')
  } catch (err) {
    if (isMissing(err)) return { missing: true }
    return { problem: { file: CURRENT_FILE, message: `cannot read: ${(err as Error).message}` } }
  }
  const m = /^MANIFEST-(\d{6,})\n$/.exec(text)
  if (m === null) return { problem: { file: CURRENT_FILE, offset: 0, message: `does not name a manifest (holds ${JSON.stringify(text.slice(0, 40))})` } }
  return { manifestNumber: Number(m[1]) }
}
