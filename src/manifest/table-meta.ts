/** What the manifest records about one table file. Immutable once created. */
export interface TableMeta {
  readonly number: number
  readonly fileBytes: number
  readonly smallestKey: Buffer
  readonly smallestSeq: number
  readonly largestKey: Buffer
  readonly largestSeq: number
  readonly entryCount: number
  /** Delete entries among them: tables dense with deletes are compacted early. */
  readonly deleteCount: number
  /** Blob files the table's references name, ascending (absent: none); blob garbage collection picks tables by them. */
  readonly blobFiles?: readonly number[]
  /** The smallest sequence of any entry; absent for tables recorded before it was (read as 0). */
  readonly minSeq?: number
  /**
   * Every range tombstone with a sequence up to this covers nothing in the
   * table (the compaction that wrote it dropped what they covered); 0 or
   * absent: no such promise. A tombstone leaves the manifest once no table
   * may hold what it covers (docs/design.md, "Range deletes").
   */
  readonly rangeDeleteFloor?: number
}

/** True when `t` may hold a version that range tombstone sequence `seq` covers (of some key: ranges are checked apart). */
export function mayHoldCovered(t: TableMeta, seq: number): boolean {
  return (t.minSeq ?? 0) < seq && (t.rangeDeleteFloor ?? 0) < seq
}

/** True when the table's user-key range intersects [start, end] (either bound may be absent). */
export function overlapsRange(t: TableMeta, start: Buffer | undefined, end: Buffer | undefined): boolean {
  if (start !== undefined && Buffer.compare(t.largestKey, start) < 0) return false
  if (end !== undefined && Buffer.compare(t.smallestKey, end) > 0) return false
  return true
}
