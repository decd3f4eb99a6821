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
}

/** True when the table's user-key range intersects [start, end] (either bound may be absent). */
export function overlapsRange(t: TableMeta, start: Buffer | undefined, end: Buffer | undefined): boolean {
  if (start !== undefined && Buffer.compare(t.largestKey, start) < 0) return false
  if (end !== undefined && Buffer.compare(t.smallestKey, end) > 0) return false
  return true
}
