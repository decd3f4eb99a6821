import type { BlockCache } from './block-cache.js'
import { TableReader } from './table-reader.js'
import type { FileSystem } from '../vfs/file-system.js'
import type { BlobResolver } from '../base/entry.js'

/**
 * Open table readers by file number, bounded two ways: at most
 * `maxOpenTables` open files, and at most `capacityBytes` of index, filter and
 * point index memory. A table loads its point index only when the budget has
 * room for it; past the byte bound the least recently used point index is
 * dropped first, then (as past the file bound) the least recently used reader
 * (its descriptor closes once no iterator still holds it); opening a table
 * again re-reads its index and filter.
 *
 * Recency is a use counter stamped on each reader (a hit does no Map surgery:
 * re-inserting into the Map on every hit cost ~10% of a cached point read,
 * docs/performance.md); eviction scans for the smallest stamp, which only
 * happens when a table is opened.
 */
export class TableCache {
  private readonly readers = new Map<number, TableReader>()
  private bytes = 0
  private uses = 0
  private pointIndexed = 0
  private closed = 0

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    private readonly blockCache: BlockCache,
    private readonly maxOpenTables: number,
    readonly capacityBytes: number,
    /** Reads the values tables keep in blob files. */
    private readonly blobs?: BlobResolver,
  ) {}

  get(fileNumber: number): TableReader {
    let r = this.readers.get(fileNumber)
    if (r !== undefined) {
      r.lastUse = ++this.uses
      return r
    }
    // A table loads its point index only while the budget has room for it
    // beside the readers already open; the rest fall back to their Bloom filters.
    r = TableReader.open(this.fs, this.dir, fileNumber, this.blockCache, this.capacityBytes - this.bytes)
    r.lastUse = ++this.uses
    if (this.blobs !== undefined) r.blobs = this.blobs
    this.readers.set(fileNumber, r)
    this.bytes += r.residentBytes
    if (r.usesPointIndex) this.pointIndexed++
    while (this.readers.size > 1 && (this.readers.size > this.maxOpenTables || this.bytes > this.capacityBytes)) {
      // Over the byte budget, point indexes go before readers: a table without
      // one still answers from its filter, a closed one must be opened again.
      if (this.readers.size <= this.maxOpenTables && this.pointIndexed > 0) this.dropPointIndex(this.leastRecentlyUsed(true))
      else this.evict(this.leastRecentlyUsed(false))
    }
    return r
  }

  private dropPointIndex(fileNumber: number): void {
    this.bytes -= this.readers.get(fileNumber)!.dropPointIndex()
    this.pointIndexed--
  }

  /** The least recently used reader (among those with a point index when `withPointIndex`). */
  private leastRecentlyUsed(withPointIndex: boolean): number {
    let oldest: TableReader | undefined
    for (const r of this.readers.values()) {
      if (withPointIndex && !r.usesPointIndex) continue
      if (oldest === undefined || r.lastUse < oldest.lastUse) oldest = r
    }
    return oldest!.fileNumber
  }

  /** Forgets a reader (its file was deleted or is about to be). */
  evict(fileNumber: number): void {
    const r = this.readers.get(fileNumber)
    if (r === undefined) return
    this.readers.delete(fileNumber)
    this.bytes -= r.residentBytes
    if (r.usesPointIndex) this.pointIndexed--
    this.closed++
    r.unref()
  }

  /** Memory held by open readers outside the block cache (index, filter, point index). */
  get residentBytes(): number {
    return this.bytes
  }

  /** Readers closed so far: whoever keeps a reader's filter drops it when this moves. */
  get readersClosed(): number {
    return this.closed
  }

  get openCount(): number {
    return this.readers.size
  }

  /** Open readers whose point reads use their table's point index. */
  get pointIndexedCount(): number {
    return this.pointIndexed
  }

  close(): void {
    for (const n of [...this.readers.keys()]) this.evict(n)
  }
}
