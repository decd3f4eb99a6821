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
 * Block memory comes from slabs: large buffers carved into chunks whose sizes
 * are multiples of 512 bytes. A block is read into a chunk (`allocate`), and an
 * evicted block's chunk goes back to a free list for the next read of a
 * similar size. Allocating a Buffer per block cost ~4 µs on a cold read
 * (V8's external-memory accounting and the GCs it triggers) and its object
 * was one more cache miss on every hit; a point read of a cached block now
 * goes from the table's slot arrays straight to the slab's bytes
 * (`slabIds`, `bases`; docs/performance.md). Slab memory stays within the
 * budget plus one slab; a block that finds neither a free chunk nor room for
 * a slab, or is larger than a slab, gets a Buffer of its own, left to the GC.
 * A chunk is reused only when nothing can still read it: iterators pin the
 * block they stand on (`pin`/`unpin`); point lookups use a block
 * synchronously and hand out copies.
 */
export interface CacheEntry {
  readonly block: Buffer
  /** Index of the block in its table (its slot in `owner`). */
  readonly slot: number
  readonly owner: BlockSlots
  /** The whole buffer the block was read into (from `allocate`; a slab chunk is reused), or null. */
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
  /**
   * Where each cached block lies: its slab (`BlockCache.slabs` index, 0 for a
   * block in a Buffer of its own) and its offset in that slab. Valid wherever
   * `blocks` holds a block.
   */
  readonly slabIds: Uint16Array
  readonly bases: Uint32Array

  constructor(count: number) {
    this.blocks = new Array<Buffer | undefined>(count).fill(undefined)
    this.entries = new Array<CacheEntry | undefined>(count).fill(undefined)
    this.referenced = new Uint8Array(count)
    this.slabIds = new Uint16Array(count)
    this.bases = new Uint32Array(count)
  }
}

/** Chunk sizes are multiples of this, so blocks of nearby sizes share free lists. */
const SIZE_CLASS_BYTES = 512
/** Largest slab; smaller caches get slabs of 1/8 of their budget, at least MIN_SLAB_BYTES. */
const MAX_SLAB_BYTES = 1 << 20
const MIN_SLAB_BYTES = 64 << 10
/** Slab ids are u16 (0: no slab). */
const MAX_SLABS = 0xffff

export class BlockCache {
  private newest: CacheEntry | null = null
  private oldest: CacheEntry | null = null
  private bytes = 0
  /** Free chunks by size class (bytes / SIZE_CLASS_BYTES). */
  private readonly free = new Map<number, Buffer[]>()
  /** Slabs by id; id 0 is unused (it marks a block outside the slabs). */
  readonly slabs: Buffer[] = [Buffer.alloc(0)]
  private readonly slabIdByMemory = new Map<ArrayBuffer, number>()
  readonly slabBytes: number
  private readonly maxSlabs: number
  /** Unused bytes at the end of the newest slab. */
  private carveOffset = 0
  /**
   * A block that left the cache during its own insert: its reader is still
   * using it, so its chunk is released at the next allocate (reads are
   * synchronous) unless an iterator pinned it meanwhile.
   */
  private pendingRelease: CacheEntry | null = null
  hits = 0
  misses = 0

  constructor(readonly capacityBytes: number) {
    const slab = Math.floor(capacityBytes / 8 / SIZE_CLASS_BYTES) * SIZE_CLASS_BYTES
    this.slabBytes = Math.min(MAX_SLAB_BYTES, Math.max(MIN_SLAB_BYTES, slab))
    this.maxSlabs = Math.min(MAX_SLABS, Math.floor(capacityBytes / this.slabBytes) + 1)
    this.carveOffset = this.slabBytes // no slab yet
  }

  get usedBytes(): number {
    return this.bytes
  }

  /** Memory held in slabs (cached blocks, free chunks and the uncarved rest). */
  get slabMemoryBytes(): number {
    return (this.slabs.length - 1) * this.slabBytes
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

  /**
   * A buffer of at least `size` bytes (stale contents) to read a block into:
   * a free chunk of its size class, else a new chunk of a slab, else a free
   * chunk of a larger class, else a Buffer of its own.
   */
  allocate(size: number): Buffer {
    const pending = this.pendingRelease
    if (pending !== null) {
      this.pendingRelease = null
      if (pending.pins === 0 && !pending.released) this.release(pending)
    }
    const cls = Math.ceil(size / SIZE_CLASS_BYTES)
    const chunkBytes = cls * SIZE_CLASS_BYTES
    const reused = this.free.get(cls)?.pop()
    if (reused !== undefined) return reused
    if (chunkBytes <= this.slabBytes) {
      if (this.carveOffset + chunkBytes > this.slabBytes && this.slabs.length <= this.maxSlabs) this.addSlab()
      if (this.carveOffset + chunkBytes <= this.slabBytes) {
        const slab = this.slabs[this.slabs.length - 1]
        const chunk = slab.subarray(this.carveOffset, this.carveOffset + chunkBytes)
        this.carveOffset += chunkBytes
        return chunk
      }
      for (const [c, list] of this.free) {
        if (c > cls && list.length > 0) return list.pop()!
      }
    }
    return Buffer.allocUnsafeSlow(chunkBytes)
  }

  private addSlab(): void {
    const slab = Buffer.allocUnsafeSlow(this.slabBytes)
    this.slabIdByMemory.set(slab.buffer, this.slabs.length)
    this.slabs.push(slab)
    this.carveOffset = 0
  }

  /** The slab holding `buf`, 0 when it is not a slab chunk. */
  private slabIdOf(buf: Buffer): number {
    return this.slabIdByMemory.get(buf.buffer as ArrayBuffer) ?? 0
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
      e.evicted = true // never cached: its buffer is freed after its reader is done
      this.pendingRelease = e
      return e
    }
    const slabId = this.slabIdOf(block)
    owner.slabIds[slot] = slabId
    owner.bases[slot] = slabId === 0 ? 0 : block.byteOffset - this.slabs[slabId].byteOffset
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
        // (or pin) it: its buffer is freed after that (pendingRelease) or by an unpin.
        this.evict(victim, victim !== e)
        if (victim === e) this.pendingRelease = e
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

  /** Returns a buffer from `allocate` that holds nothing anyone reads (a slab chunk is kept for reuse). */
  recycle(buf: Buffer): void {
    if (buf.length % SIZE_CLASS_BYTES !== 0 || this.slabIdOf(buf) === 0) return
    const cls = buf.length / SIZE_CLASS_BYTES
    let list = this.free.get(cls)
    if (list === undefined) this.free.set(cls, (list = []))
    list.push(buf)
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
