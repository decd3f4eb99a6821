/**
 * The entry kinds of tables and WALs as the operator tools see them: their
 * names in dumps, which kinds hold a blob reference (and where it starts in
 * the entry's value bytes), and the expiry time in front of an expiring
 * entry's value, read without trusting it (a damaged file may hold anything).
 */
import { EXPIRY_BYTES, KIND_BLOB, KIND_BLOB_EXPIRING, KIND_DELETE, KIND_PUT, KIND_PUT_EXPIRING, KIND_RANGE_DELETE, expiryOf, isExpiringKind } from '../../base/entry.js'

/** What a dump calls an entry kind. */
export type KindName = 'put' | 'delete' | 'blob' | 'put-expiring' | 'blob-expiring' | 'delete-range' | `kind ${number}`

/**
 * The name of an entry kind of a table or WAL: `put`, `delete`, `blob` (a put
 * whose value is in a blob file), `put-expiring` and `blob-expiring` (the
 * same with an expiry time), `delete-range` (a range delete: WALs only, its
 * key is the range's start and its value the end).
 */
export function kindName(kind: number): KindName {
  if (kind === KIND_PUT) return 'put'
  if (kind === KIND_DELETE) return 'delete'
  if (kind === KIND_BLOB) return 'blob'
  if (kind === KIND_PUT_EXPIRING) return 'put-expiring'
  if (kind === KIND_BLOB_EXPIRING) return 'blob-expiring'
  if (kind === KIND_RANGE_DELETE) return 'delete-range'
  return `kind ${kind}`
}

/** True for a range delete (kind 6): WAL records only; a flush (or a repair) moves it into the manifest. */
export function isRangeDeleteKind(kind: number): boolean {
  return kind === KIND_RANGE_DELETE
}

/** True for the kinds whose value bytes hold a blob reference (3, and 5 behind its expiry time). */
export function isBlobKind(kind: number): boolean {
  return kind === KIND_BLOB || kind === KIND_BLOB_EXPIRING
}

/** The bytes of an entry's value that follow its expiry time, if its kind has one (the value a put stores, or a blob reference). */
export function payloadOf<T extends Uint8Array>(kind: number, value: T): T {
  return isExpiringKind(kind) ? (value.subarray(Math.min(EXPIRY_BYTES, value.length)) as T) : value
}

/**
 * The expiry time of an entry of an expiring kind, or the problem with it:
 * its value is shorter than the expiry time, or the time is beyond what a
 * number holds exactly (the engine's reads fail on it).
 */
export function readExpiry(value: Uint8Array): { expiresAt: number } | { problem: string } {
  if (value.length < EXPIRY_BYTES) return { problem: `expiring value shorter than its expiry time (${value.length} bytes, needs ${EXPIRY_BYTES})` }
  try {
    return { expiresAt: expiryOf(value) }
  } catch {
    return { problem: `expiry time out of range (0x${Buffer.from(value.subarray(0, EXPIRY_BYTES)).toString('hex')})` }
  }
}

/** An expiry time as ISO 8601 (UTC), or undefined when no date has it. */
export function isoTime(ms: number): string | undefined {
  const d = new Date(ms)
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString()
}

/** An expiry time as the text dumps show: `expires <ms> (<ISO time>)`. */
export function expiryText(ms: number): string {
  return `expires ${ms} (${isoTime(ms) ?? 'no such date'})`
}
