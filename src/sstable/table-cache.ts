import type { BlockCache } from './block-cache.js'
import { TableReader } from './table-reader.js'

/**
 * Open table readers by file number, bounded two ways: at most
 * `maxOpenTables` open files, and at most `capacityBytes` of index and filter
 * memory. Past either bound the least recently used reader is dropped (its
 * descriptor closes once no iterator still holds it); opening a table again
 * re-reads its index and filter.
 */
export class TableCache {
  private readonly readers = new Map<number, TableReader>()
  private bytes = 0

  constructor(
    private readonly dir: string,
    private readonly blockCache: BlockCache,
    private readonly maxOpenTables: number,
    readonly capacityBytes: number,
  ) {}

  get(fileNumber: number): TableReader {
    let r = this.readers.get(fileNumber)
    if (r !== undefined) {
      // Refresh recency: Map iteration order is insertion order.
      this.readers.delete(fileNumber)
      this.readers.set(fileNumber, r)
      return r
    }
    r = TableReader.open(this.dir, fileNumber, this.blockCache)
    this.readers.set(fileNumber, r)
    this.bytes += r.residentBytes
    while (this.readers.size > 1 && (this.readers.size > this.maxOpenTables || this.bytes > this.capacityBytes)) {
      this.evict(this.readers.keys().next().value as number)
    }
    return r
  }

  /** Forgets a reader (its file was deleted or is about to be). */
  evict(fileNumber: number): void {
    const r = this.readers.get(fileNumber)
    if (r === undefined) return
    this.readers.delete(fileNumber)
    this.bytes -= r.residentBytes
    r.unref()
  }

  /** Memory held by open readers outside the block cache (index + filter). */
  get residentBytes(): number {
    return this.bytes
  }

  get openCount(): number {
    return this.readers.size
  }

  close(): void {
    for (const n of [...this.readers.keys()]) this.evict(n)
  }
}
