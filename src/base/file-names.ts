/** The names of the files in a database directory (see docs/format.md, "Directory"). */

export type FileKind = 'table' | 'wal' | 'manifest' | 'current' | 'lock' | 'temp'

const pad = (n: number): string => String(n).padStart(6, '0')

export const tableFileName = (n: number): string => `${pad(n)}.sst`
export const walFileName = (n: number): string => `${pad(n)}.log`
export const manifestFileName = (n: number): string => `MANIFEST-${pad(n)}`
export const CURRENT_FILE = 'CURRENT'
export const LOCK_FILE = 'LOCK'

/** Parses a file name of the directory; undefined for files stratadb does not own. */
export function parseFileName(name: string): { kind: FileKind; number: number } | undefined {
  let m = /^(\d{6,})\.(sst|log)$/.exec(name)
  if (m) return { kind: m[2] === 'sst' ? 'table' : 'wal', number: Number(m[1]) }
  m = /^MANIFEST-(\d{6,})$/.exec(name)
  if (m) return { kind: 'manifest', number: Number(m[1]) }
  if (name === CURRENT_FILE) return { kind: 'current', number: 0 }
  if (name === LOCK_FILE) return { kind: 'lock', number: 0 }
  if (name.endsWith('.tmp')) return { kind: 'temp', number: 0 }
  return undefined
}
