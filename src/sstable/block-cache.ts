import { assert } from '../base/assert.js'

/**
 * Cache of verified data blocks with a byte budget, shared by all tables.
 * Each table owns a `BlockSlots`: its cached blocks by block number, so a hit
 * is an array index (several times cheaper than a Map lookup,
 * docs/performance.md) that leads straight to the block's Buffer. The cache
 * owns one recency ring across all tables. Replacement is CLOCK (second
 * chance): a hit only sets the slot's flag in a byte array, so the hot path
 * touches no per-block object; eviction walks from the oldest entry, giving
 * flagged entries another round.
 *
 * Buffers are reused: a block is read into a buffer from `allocate` (sizes
 * rounded up to 512 bytes), and an evicted block's buffer goes back to a free
 * list for the next read. A random-read stream misses on most reads; dropping
 * each evicted block to the GC kept tens of MiB of dead blocks resident
 * (docs/performance.md, "Memory"). A buffer is reused only when nothing can
 * still read it: iterators pin the block they stand on (`pin`/`unpin`); point
 * lookups use a block synchronously and hand out copies.
 */
export interface CacheEntry {
  readonly block: Buffer
  /** Index of the block in its table (its slot in `owner`). */
  readonly slot: number
  readonly owner: BlockSlots
  /** The whole buffer the block was read into (from `allocate`), or null when not reusable. */
  readonly buffer: Buffer | null
  /** Iterators standing on this block; its buffer is reused only at 0. */
  pins: number
  evicted: boolean
  /** Its buffer went back to the free list: the block must not be read any more. */
  released: boolean
  newer: CacheEntry | null
  older: CacheEntry | null
}

/** A table's cached blocks by block number. */
export class BlockSlots {
  /** The cached block contents (what a point read needs), by block number. */
  readonly blocks: (Buffer | undefined)[]
  /** Their cache entries (for pins and eviction). */
  readonly entries: (CacheEntry | undefined)[]
  /** CLOCK's "used since last considered" flag per block. */
  readonly referenced: Uint8Array

  constructor(count: number) {
    this.blocks = new Array<Buffer | undefined>(count).fill(undefined)
    this.entries = new Array<CacheEntry | undefined>(count).fill(undefined)
    this.referenced = new Uint8Array(count)
  }
}

/** Buffer sizes are multiples of this, so blocks of nearby sizes share free lists. */
const SIZE_CLASS_BYTES = 512

export class BlockCache {
  private newest: CacheEntry | null = null
  private oldest: CacheEntry | null = null
  private bytes = 0
  /** Free buffers by size class (bytes / SIZE_CLASS_BYTES). */
  private readonly free = new Map<number, Buffer[]>()
  private freeBytes = 0
  private readonly maxFreeBytes: number
  hits = 0
  misses = 0

  constructor(readonly capacityBytes: number) {
    this.maxFreeBytes = Math.max(64 << 10, capacityBytes >>> 4)
  }

  get usedBytes(): number {
    return this.bytes
  }

  /** Block `slot` of a table, or undefined (the caller may read and insert it: a miss is counted then). */
  lookup(owner: BlockSlots, slot: number): Buffer | undefined {
    const block = owner.blocks[slot]
    if (block === undefined) return undefined
    this.hits++
    owner.referenced[slot] = 1
    return block
  }

  /** Like lookup, returning the entry (to pin it). */
  lookupEntry(owner: BlockSlots, slot: number): CacheEntry | undefined {
    return this.lookup(owner, slot) === undefined ? undefined : owner.entries[slot]
  }

  /** A buffer of at least `size` bytes (stale contents) to read a block into. */
  allocate(size: number): Buffer {
    const cls = Math.ceil(size / SIZE_CLASS_BYTES)
    const list = this.free.get(cls)
    const reused = list?.pop()
    if (reused !== undefined) {
      this.freeBytes -= reused.length
      return reused
    }
    return Buffer.allocUnsafeSlow(cls * SIZE_CLASS_BYTES)
  }

  /**
   * Adds a block read into `buffer` (from `allocate`; null if it is not to be
   * reused) and returns its entry. May evict older blocks.
   */
  insert(owner: BlockSlots, slot: number, block: Buffer, buffer: Buffer | null): CacheEntry {
    assert(owner.entries[slot] === undefined, 'block inserted twice')
    this.misses++
    const e: CacheEntry = { block, slot, owner, buffer, pins: 0, evicted: false, released: false, newer: null, older: null }
    if (block.length > this.capacityBytes) {
      e.evicted = true // never cached: its buffer is freed when its last pin goes
      return e
    }
    owner.entries[slot] = e
    owner.blocks[slot] = block
    owner.referenced[slot] = 0
    this.pushNewest(e)
    this.bytes += block.length
    while (this.bytes > this.capacityBytes && this.oldest !== null) {
      const victim = this.oldest
      if (victim.owner.referenced[victim.slot] === 1 && victim !== e) {
        victim.owner.referenced[victim.slot] = 0
        this.unlink(victim)
        this.pushNewest(victim)
      } else {
        // The block just read may itself go, but its caller is about to use
        // (or pin) it: its buffer is freed only by an unpin, else left to the GC.
        this.evict(victim, victim !== e)
      }
    }
    return e
  }

  /** Keeps `e`'s buffer from reuse until `unpin`. REQUIRES: `e` was just looked up or inserted. */
  pin(e: CacheEntry): void {
    assert(!e.released, 'pin of a block whose buffer was reused')
    e.pins++
  }

  unpin(e: CacheEntry): void {
    assert(e.pins > 0, 'unpin of a block that is not pinned')
    if (--e.pins === 0 && e.evicted) this.release(e)
  }

  dropOwner(owner: BlockSlots): void {
    for (const e of owner.entries) if (e !== undefined) this.evict(e)
  }

  private evict(e: CacheEntry, reuse = true): void {
    this.unlink(e)
    e.owner.entries[e.slot] = undefined
    e.owner.blocks[e.slot] = undefined
    this.bytes -= e.block.length
    e.evicted = true
    if (reuse && e.pins === 0) this.release(e)
  }

  /** Puts an evicted, unpinned block's buffer on the free list (or leaves it to the GC). */
  private release(e: CacheEntry): void {
    e.released = true
    if (e.buffer !== null) this.recycle(e.buffer)
  }

  /** Returns a buffer from `allocate` that holds nothing anyone reads. */
  recycle(buf: Buffer): void {
    if (buf.length % SIZE_CLASS_BYTES !== 0 || this.freeBytes + buf.length > this.maxFreeBytes) return
    const cls = buf.length / SIZE_CLASS_BYTES
    let list = this.free.get(cls)
    if (list === undefined) this.free.set(cls, (list = []))
    list.push(buf)
    this.freeBytes += buf.length
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
