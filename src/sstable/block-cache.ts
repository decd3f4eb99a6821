/**
 * Cache of verified data blocks with a byte budget, shared by all tables.
 * Each table owns a Map from block offset to entry; the cache owns one
 * recency ring across all of them. Replacement is CLOCK (second chance): a
 * hit only sets a flag, so the hot path does no list surgery; eviction walks
 * from the oldest entry, giving flagged entries another round.
 */
export interface CacheEntry {
  readonly block: Buffer
  readonly offset: number
  readonly owner: Map<number, CacheEntry>
  referenced: boolean
  newer: CacheEntry | null
  older: CacheEntry | null
}

export class BlockCache {
  private newest: CacheEntry | null = null
  private oldest: CacheEntry | null = null
  private bytes = 0
  hits = 0
  misses = 0

  constructor(readonly capacityBytes: number) {}

  get usedBytes(): number {
    return this.bytes
  }

  /** Looks a block up in a table's map. */
  lookup(owner: Map<number, CacheEntry>, offset: number): Buffer | undefined {
    const e = owner.get(offset)
    if (e === undefined) {
      this.misses++
      return undefined
    }
    this.hits++
    e.referenced = true
    return e.block
  }

  insert(owner: Map<number, CacheEntry>, offset: number, block: Buffer): void {
    if (block.length > this.capacityBytes || owner.has(offset)) return
    const e: CacheEntry = { block, offset, owner, referenced: false, newer: null, older: null }
    owner.set(offset, e)
    this.pushNewest(e)
    this.bytes += block.length
    while (this.bytes > this.capacityBytes && this.oldest !== null) {
      const victim = this.oldest
      if (victim.referenced && victim !== e) {
        victim.referenced = false
        this.unlink(victim)
        this.pushNewest(victim)
      } else {
        this.evict(victim)
      }
    }
  }

  /** Drops every block of one table (its file is gone). */
  dropOwner(owner: Map<number, CacheEntry>): void {
    for (const e of [...owner.values()]) this.evict(e)
  }

  private evict(e: CacheEntry): void {
    this.unlink(e)
    e.owner.delete(e.offset)
    this.bytes -= e.block.length
  }

  private pushNewest(e: CacheEntry): void {
    e.older = this.newest
    e.newer = null
    if (this.newest) this.newest.newer = e
    this.newest = e
    if (this.oldest === null) this.oldest = e
  }

  private unlink(e: CacheEntry): void {
    if (e.newer) e.newer.older = e.older
    else this.newest = e.older
    if (e.older) e.older.newer = e.newer
    else this.oldest = e.newer
    e.newer = e.older = null
  }
}
