import type { BlockCache } from './block-cache.js'
import { TableReader } from './table-reader.js'

/**
 * Open table readers by file number, at most `maxOpenTables` of them; the least
 * recently used reader is dropped past that (its descriptor closes once no
 * iterator still holds it). Opening a table reads its index and filter.
 */
export class TableCache {
  private readonly readers = new Map<number, TableReader>()

  constructor(
    private readonly dir: string,
    private readonly blockCache: BlockCache,
    private readonly maxOpenTables: number,
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
    if (this.readers.size > this.maxOpenTables) {
      const oldest = this.readers.keys().next().value as number
      this.evict(oldest)
    }
    return r
  }

  /** Forgets a reader (its file was deleted or is about to be). */
  evict(fileNumber: number): void {
    const r = this.readers.get(fileNumber)
    if (r === undefined) return
    this.readers.delete(fileNumber)
    r.unref()
  }

  /** Memory held by open readers outside the block cache (index + filter). */
  get residentBytes(): number {
    let n = 0
    for (const r of this.readers.values()) n += r.residentBytes
    return n
  }

  get openCount(): number {
    return this.readers.size
  }

  close(): void {
    for (const n of [...this.readers.keys()]) this.evict(n)
  }
}
