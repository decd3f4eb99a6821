/**
 * Range deletes as the operator tools see them (docs/design.md, "Range
 * deletes"): a WAL entry of kind 6 (its key is the range's start, its value
 * the end, exclusive; an empty value: no end) and a range tombstone of the
 * manifest (tags 9 and 10) are the same thing, `(start, end, seq)`: every
 * version below `seq` of every key in [start, end) is deleted. How they are
 * shown in dumps, as text (`["a", "k")`, `["a", no end)`) and JSON, and what
 * makes one malformed.
 */
import type { RangeTombstone } from '../../base/range-tombstones.js'
import { tombstoneOverlaps } from '../../base/range-tombstones.js'
import { jsonBytes, showBytes, type BytesFormat, type KeyBounds } from './output.js'

/** A range delete in a dump's or report's JSON. */
export interface JsonRangeTombstone {
  sequence: number
  start: string
  startEncoding: 'utf8' | 'hex'
  /** null: no end (the range runs to the last key). */
  end: string | null
  endEncoding: 'utf8' | 'hex' | null
}

/** The tombstone a WAL entry of kind 6 writes: its own copies of the bounds (an empty value: no end). */
export function tombstoneOfEntry(key: Uint8Array, value: Uint8Array | null, sequence: number): RangeTombstone {
  return { start: Buffer.from(key), end: value === null || value.length === 0 ? undefined : Buffer.from(value), seq: sequence }
}

/** `["a", "k")`, or `["a", no end)`. */
export function rangeText(t: RangeTombstone, format: BytesFormat): string {
  return `[${showBytes(t.start, format)}, ${t.end === undefined ? 'no end' : showBytes(t.end, format)})`
}

export function rangeJson(t: RangeTombstone, format: BytesFormat): JsonRangeTombstone {
  const start = jsonBytes(t.start, format)
  const end = t.end === undefined ? undefined : jsonBytes(t.end, format)
  return { sequence: t.seq, start: start.text, startEncoding: start.encoding, end: end?.text ?? null, endEncoding: end?.encoding ?? null }
}

/** Whether the range meets the dump's inclusive --from/--to bounds. */
export function rangeInBounds(t: RangeTombstone, b: KeyBounds): boolean {
  return tombstoneOverlaps(t, b.from, b.to)
}

/** What is wrong with a tombstone the engine would never write (its range is empty: start not below end), if anything. */
export function tombstoneProblem(t: RangeTombstone): string | undefined {
  if (t.end !== undefined && Buffer.compare(t.start, t.end) >= 0) return `range tombstone @${t.seq} ${rangeText(t, { hex: false })} is empty: its start is not below its end`
  return undefined
}

/** Tombstones by sequence, ascending. */
export function bySequence(ts: Iterable<RangeTombstone>): RangeTombstone[] {
  return [...ts].sort((a, b) => a.seq - b.seq)
}
