/** The names of the files in a database directory (see docs/format.md, "Directory"). */

export type FileKind = 'table' | 'blob' | 'wal' | 'manifest' | 'current' | 'lock' | 'temp' | 'marker' | 'replica'

const pad = (n: number): string => String(n).padStart(6, '0')

export const tableFileName = (n: number): string => `${pad(n)}.sst`
export const walFileName = (n: number): string => `${pad(n)}.log`
/** A blob file: values of at least `minBlobBytes`, written apart from the tables that reference them (src/blob). */
export const blobFileName = (n: number): string => `${pad(n)}.blob`
export const manifestFileName = (n: number): string => `MANIFEST-${pad(n)}`
export const CURRENT_FILE = 'CURRENT'
export const LOCK_FILE = 'LOCK'
/** `LOCK.takeover.<token>`: a flag of a process taking over a stale LOCK (src/base/lock-file.ts). */
export const LOCK_TAKEOVER_PREFIX = 'LOCK.takeover.'
/** The directory's identity marker (src/engine/directory-identity.ts). */
export const MARKER_FILE = 'STRATADB'
/** A replicated node's state: node id, promised epoch, epoch starts (src/engine/replica-state.ts). */
export const REPLICA_FILE = 'REPLICA'
/** The REPLICA file while it is written; renamed to REPLICA_FILE. Its kind is 'replica' too. */
export const REPLICA_TEMP_FILE = 'REPLICA.tmp'
/** Present in a checkpoint directory until the checkpoint is complete: open() refuses a directory holding it. */
export const CHECKPOINT_PARTIAL_FILE = 'CHECKPOINT-PARTIAL'
/** The marker while it is written; renamed to MARKER_FILE. Its kind is 'marker' too, so faults can target all marker I/O. */
export const MARKER_TEMP_FILE = 'STRATADB.tmp'

/** Parses a file name of the directory; undefined for files stratadb does not own. */
export function parseFileName(name: string): { kind: FileKind; number: number } | undefined {
  let m = /^(\d{6,})\.(sst|log|blob)$/.exec(name)
  if (m) return { kind: m[2] === 'sst' ? 'table' : m[2] === 'log' ? 'wal' : 'blob', number: Number(m[1]) }
  m = /^MANIFEST-(\d{6,})$/.exec(name)
  if (m) return { kind: 'manifest', number: Number(m[1]) }
  if (name === CURRENT_FILE) return { kind: 'current', number: 0 }
  if (name === LOCK_FILE) return { kind: 'lock', number: 0 }
  if (name.startsWith(LOCK_TAKEOVER_PREFIX) && !name.endsWith('.tmp')) return { kind: 'lock', number: 0 }
  if (name === MARKER_FILE || name === MARKER_TEMP_FILE) return { kind: 'marker', number: 0 }
  if (name === REPLICA_FILE || name === REPLICA_TEMP_FILE) return { kind: 'replica', number: 0 }
  if (name.endsWith('.tmp')) return { kind: 'temp', number: 0 }
  return undefined
}
