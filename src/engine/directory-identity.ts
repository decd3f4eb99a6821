import { randomUUID } from 'node:crypto'
import * as path from 'node:path'
import { decodeChecksummedText, encodeChecksummedText } from '../base/checksummed-text.js'
import { StrataError, corruption, ioError } from '../base/errors.js'
import { CHECKPOINT_PARTIAL_FILE, CURRENT_FILE, LOCK_FILE, LOCK_TAKEOVER_PREFIX, MARKER_FILE, MARKER_TEMP_FILE, manifestFileName } from '../base/file-names.js'
import { listDirectory, replaceFileAtomically, syncDirectory, type FileSystem } from '../vfs/file-system.js'
import { scanRecords } from '../wal/record-framing.js'

/**
 * The identity of a database directory (docs/format.md, "STRATADB marker"):
 * a small text file `STRATADB` naming the directory format version and a
 * random database id. It is written on create right after the lock is taken
 * and before any other file, so a directory without it that holds files is not
 * a database stratadb created, and open() refuses it without touching it.
 *
 * Databases of the previous format (no marker) are recognised by their
 * manifest: CURRENT names a MANIFEST-NNNNNN that exists and starts with a
 * record in stratadb's framing (LevelDB's CURRENT and MANIFEST names are the
 * same as ours, but its manifest bytes are not our framing). They open and get
 * their marker written.
 */

/** The directory format version this code writes and reads. */
export const DIRECTORY_FORMAT_VERSION = 1

/** First line of every marker. */
const MAGIC = 'stratadb database directory'

/** The identity a marker holds. */
export interface DatabaseIdentity {
  /** Directory format version. */
  version: number
  /** Random id given when the database was created (or upgraded); stable for its lifetime. */
  id: string
}

/** What a directory holds, as `inspectDirectory` found it. */
export type DirectoryState =
  /** No files, or only stratadb's own LOCK and temporaries (a creator that holds the lock but wrote no marker yet). */
  | { kind: 'empty' }
  /** A stratadb database with its marker. */
  | { kind: 'marked'; identity: DatabaseIdentity }
  /** A stratadb database of the previous format: no marker, but CURRENT names a manifest in our framing. */
  | { kind: 'previous-format' }

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** The marker's bytes: `MAGIC`, `version N`, `id UUID`, then `xxh32 HEX` of every byte before that line. */
export function encodeMarker(identity: DatabaseIdentity): Buffer {
  return encodeChecksummedText(MAGIC, [`version ${identity.version}`, `id ${identity.id}`])
}

/**
 * Parses a marker strictly: anything but the exact layout with a matching
 * checksum is STRATA_CORRUPTION; a valid marker of a newer directory format
 * is STRATA_NOT_A_DATABASE (this version cannot open it).
 */
export function decodeMarker(buf: Buffer, file: string, dir: string): DatabaseIdentity {
  const lines = decodeChecksummedText(buf, MAGIC, 'the STRATADB marker', file)
  const v = /^version (\d{1,9})$/.exec(lines[0])
  if (v === null || Number(v[1]) < 1) throw corruption('the STRATADB marker has no valid version line', file)
  const version = Number(v[1])
  if (version > DIRECTORY_FORMAT_VERSION) {
    throw new StrataError(
      'STRATA_NOT_A_DATABASE',
      `${dir} was written by a newer stratadb (directory format version ${version}; this version reads ${DIRECTORY_FORMAT_VERSION}); nothing was changed`,
    )
  }
  const id = /^id (.*)$/.exec(lines[1] ?? '')
  if (lines.length !== 2 || id === null || !UUID.test(id[1])) throw corruption('the STRATADB marker does not hold exactly a version and an id', file)
  return { version, id: id[1] }
}

/** Names stratadb itself may leave in a directory before its marker exists: the LOCK, its takeover flags and temporaries, the marker's temporary. */
function isTransient(name: string): boolean {
  return name === LOCK_FILE || name.startsWith(LOCK_TAKEOVER_PREFIX) || name === MARKER_TEMP_FILE || (name.startsWith(`${LOCK_FILE}.`) && name.endsWith('.tmp'))
}

/**
 * What `dir` (an existing directory) holds. Only lists it and reads files:
 * never creates, writes or deletes anything, so it runs before the lock is
 * taken. Throws STRATA_NOT_A_DATABASE for an interrupted checkpoint and for
 * a directory that has files but is neither marked nor a previous-format
 * database (naming LevelDB/classic-level when it recognises one),
 * STRATA_CORRUPTION for a damaged marker.
 */
export function inspectDirectory(fs: FileSystem, dir: string): DirectoryState {
  const names = listDirectory(fs, dir)
  if (names.includes(CHECKPOINT_PARTIAL_FILE)) {
    throw new StrataError(
      'STRATA_NOT_A_DATABASE',
      `${dir} is an incomplete checkpoint (${CHECKPOINT_PARTIAL_FILE} is there: the checkpoint was interrupted); nothing was changed. Delete it and take the checkpoint again`,
    )
  }
  if (names.includes(MARKER_FILE)) return { kind: 'marked', identity: readMarker(fs, dir) }
  const present = names.filter((n) => !isTransient(n))
  if (present.length === 0) return { kind: 'empty' }
  const manifest = currentManifest(fs, dir, names)
  if (manifest === 'ours') return { kind: 'previous-format' }
  const levelDb = manifest === 'foreign' || names.some((n) => n === 'LOG' || n === 'LOG.old' || n.endsWith('.ldb'))
  if (levelDb) {
    throw new StrataError(
      'STRATA_NOT_A_DATABASE',
      `${dir} is a LevelDB/classic-level database, not a stratadb one; nothing was changed. ` +
        'stratadb cannot open LevelDB files: copy the data into a new stratadb database instead ' +
        '(README.md, "Copying a classic-level database")',
    )
  }
  const shown = present.sort().slice(0, 5).join(', ')
  throw new StrataError(
    'STRATA_NOT_A_DATABASE',
    `${dir} is not a stratadb database: it holds files (${shown}${present.length > 5 ? ', ...' : ''}) but no ${MARKER_FILE} marker; ` +
      'nothing was changed. Open an empty or missing directory to create a database',
  )
}

function readMarker(fs: FileSystem, dir: string): DatabaseIdentity {
  const file = path.join(dir, MARKER_FILE)
  let buf: Buffer
  try {
    buf = fs.readFile(file)
  } catch (err) {
    throw ioError(`cannot read ${file}`, err)
  }
  return decodeMarker(buf, file, dir)
}

/**
 * Whether CURRENT names an existing manifest that starts with a record in
 * stratadb's framing ('ours'), names one that does not ('foreign': LevelDB
 * writes the same names), or there is no such manifest ('none').
 */
function currentManifest(fs: FileSystem, dir: string, names: string[]): 'ours' | 'foreign' | 'none' {
  if (!names.includes(CURRENT_FILE)) return 'none'
  let current: string
  try {
    current = fs.readFile(path.join(dir, CURRENT_FILE)).toString('latin1')
  } catch (err) {
    throw ioError(`cannot read ${path.join(dir, CURRENT_FILE)}`, err)
  }
  const m = /^MANIFEST-(\d{6,})\n$/.exec(current)
  if (m === null) return 'none'
  const name = manifestFileName(Number(m[1]))
  if (!names.includes(name)) return 'none'
  const file = path.join(dir, name)
  let buf: Buffer
  try {
    buf = fs.readFile(file)
  } catch (err) {
    throw ioError(`cannot read ${file}`, err)
  }
  try {
    return scanRecords(buf, file).payloads.length > 0 ? 'ours' : 'foreign'
  } catch (err) {
    // Thrown only when an intact record follows damage: our framing, damaged (recovery reports it).
    if (err instanceof StrataError && err.code === 'STRATA_CORRUPTION') return 'ours'
    throw err
  }
}

/**
 * With the lock held: looks at the directory again unless `seen` (what
 * `inspectDirectory` found before the lock) already had a marker, which no
 * one removes (a concurrent open may have created the database meanwhile),
 * and writes the marker where one is due: in an empty directory that is to be created, and in a previous-format
 * database (its upgrade). Returns the identity, or undefined when the
 * directory stays without one (empty with `createIfMissing: false`, or a
 * previous-format database opened with `errorIfExists`: the recovery that
 * follows refuses those).
 */
export function establishIdentity(
  fs: FileSystem,
  dir: string,
  options: { createIfMissing: boolean; errorIfExists: boolean },
  seen: DirectoryState,
): DatabaseIdentity | undefined {
  const state = seen.kind === 'marked' ? seen : inspectDirectory(fs, dir)
  if (state.kind === 'marked') return state.identity
  if (state.kind === 'empty' && !options.createIfMissing) return undefined
  if (state.kind === 'previous-format' && options.errorIfExists) return undefined
  const identity = { version: DIRECTORY_FORMAT_VERSION, id: randomUUID() }
  writeMarker(fs, dir, identity)
  return identity
}

/** Writes the marker atomically: temp file, fdatasync, rename, directory fsync. */
function writeMarker(fs: FileSystem, dir: string, identity: DatabaseIdentity): void {
  replaceFileAtomically(fs, path.join(dir, MARKER_FILE), path.join(dir, MARKER_TEMP_FILE), encodeMarker(identity))
  syncDirectory(fs, dir)
}
