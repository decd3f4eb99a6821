/**
 * What the manifest records about one blob file (docs/format.md, "Manifest"):
 * its size and values when written, and the garbage compactions found since
 * (references they dropped or relocated). Immutable; a garbage edit makes a
 * new one. A file whose every value is garbage leaves the table version.
 */
export interface BlobFileMeta {
  readonly number: number
  readonly fileBytes: number
  readonly valueCount: number
  readonly valueBytes: number
  readonly garbageCount: number
  readonly garbageBytes: number
}

/** Garbage found in one blob file by one compaction. */
export interface BlobGarbage {
  number: number
  count: number
  bytes: number
}

/** Fraction of a blob file's value bytes no table references any more. */
export function garbageRatio(b: BlobFileMeta): number {
  return b.valueBytes === 0 ? 1 : b.garbageBytes / b.valueBytes
}
