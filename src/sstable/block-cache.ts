import { assert } from '../base/assert.js'

/**
 * Cache of verified data blocks with a byte budget, shared by all tables.
 * Each table owns a `BlockSlots`: its cached blocks by block number, so a hit
 * is an array index (several times cheaper than a Map lookup,
 * docs/performance.md). The cache owns one recency ring across all tables.
 * Replacement is CLOCK (second chance): a hit only sets the slot's flag in a
 * byte array, so the hot path touches no per-block object; eviction walks
 * from the oldest entry, giving flagged entries another round.
 *
 * Block memory comes from slabs: large buffers carved into chunks whose sizes
 * are multiples of 512 bytes. A block is read into a chunk (`allocate`) and
 * charges the chunk's size to the budget; an evicted block's chunk goes to a
 * free list for the next read of a similar size. With a Buffer per block,
 * its object was one more cache miss on every hit: a point read of a cached
 * block now goes from the table's slot arrays (`slabIds`, `bases`) straight
 * to the slab's bytes (docs/performance.md).
 *
 * Memory stays within the budget plus one slab: slabs and the few blocks kept
 * in Buffers of their own (larger than a slab, or read while every slab that
 * could be reclaimed is pinned) together. When the sizes being read drift
 * away from the free chunks' sizes, a slab is reclaimed whole: the blocks in
 * it are evicted and it is carved anew (or freed, to make room for a block of
 * its own). A chunk is reused only when nothing can still read it: iterators
 * pin the block they stand on (`pin`/`unpin`); point lookups use a block
 * synchronously and hand out copies.
 *
 * An insert allocates no object that outlives it: entries are reused once
 * their chunk came back, and a block's own Buffer view is made only when an
 * iterator asks for it. With an entry object and a view per insert, a random
 * read stream missing the cache (bigdata's reads: ~34k misses a second)
 * left ~10 MB a second of old-generation garbage, blocks that lived just
 * long enough to be promoted, and the heap grew by ~65 MiB between major
 * collections (docs/performance.md).
 */
export class CacheEntry {
  /** Index of the block in its table (its slot in `owner`). */
  slot = 0
  owner: BlockSlots = NO_OWNER
  /** The buffer the block was read into (from `allocate`; it starts there), or its own Buffer when it is not the cache's (then `own`). */
  buffer: Buffer = NO_MEMORY
  /** Whether `buffer` is the block itself, not a cache buffer. */
  own = false
  /** The block's length in `buffer`. */
  blockBytes = 0
  /** The slab holding `buffer`, or null. */
  slab: Slab | null = null
  /** What the block counts against the budget: its buffer's size (its own without one). */
  chargedBytes = 0
  /** Iterators standing on this block; its buffer is reused only at 0. */
  pins = 0
  evicted = false
  /** Its buffer went back to the cache: the block must not be read any more. */
  released = false
  newer: CacheEntry | null = null
  older: CacheEntry | null = null
  private view: Buffer | undefined = undefined

  /** The block's bytes as a Buffer of their own length (made at the first call; point reads go without). */
  get block(): Buffer {
    assert(!this.released, 'read of a cached block whose buffer was reused')
    if (this.view === undefined) this.view = this.own ? this.buffer : this.buffer.subarray(0, this.blockBytes)
    return this.view
  }

  /** Re-targets this entry at a new block. */
  reset(owner: BlockSlots, slot: number, block: Buffer, buffer: Buffer | null, slab: Slab | null): void {
    this.slot = slot
    this.owner = owner
    this.own = buffer === null
    this.buffer = buffer ?? block
    this.blockBytes = block.length
    this.slab = slab
    this.chargedBytes = buffer === null ? block.length : buffer.length
    this.pins = 0
    this.evicted = false
    this.released = false
    this.newer = this.older = null
    // The chunk object itself when the block fills it (chunks are long-lived: kept on the free lists).
    this.view = this.own ? block : block.length === this.buffer.length ? this.buffer : undefined
  }
}

/** A table's cached blocks by block number. */
export class BlockSlots {
  /** The cached blocks' entries, by block number (undefined: not cached). */
  readonly entries: (CacheEntry | undefined)[]
  /** CLOCK's "used since last considered" flag per block. */
  readonly referenced: Uint8Array
  /**
   * Where each cached block lies: its slab (`BlockCache.slabs` index, 0 for a
   * block in a Buffer of its own) and its offset in that slab. Valid wherever
   * `entries` holds one.
   */
  readonly slabIds: Uint16Array
  readonly bases: Uint32Array

  constructor(count: number) {
    this.entries = new Array<CacheEntry | undefined>(count).fill(undefined)
    this.referenced = new Uint8Array(count)
    this.slabIds = new Uint16Array(count)
    this.bases = new Uint32Array(count)
  }
}

/** One slab, with counts that tell whether it can be reclaimed. */
interface Slab {
  readonly id: number
  readonly memory: Buffer
  /** Entries whose blocks are in this slab and whose chunks have not come back. */
  live: number
  /** Pins on those entries: a slab with any is not reclaimed. */
  pins: number
}

/** Chunk sizes are multiples of this, so blocks of nearby sizes share free lists. */
const SIZE_CLASS_BYTES = 512
/** Largest slab; smaller caches get slabs of 1/8 of their budget, at least MIN_SLAB_BYTES. */
const MAX_SLAB_BYTES = 1 << 20
const MIN_SLAB_BYTES = 64 << 10
/** Slab ids are u16; 0 means "no slab". */
const MAX_SLAB_ID = 0xffff
/** Oldest entries looked at for a slab to reclaim. */
const RECLAIM_SEARCH_ENTRIES = 64
const NO_MEMORY = Buffer.alloc(0)
const NO_OWNER = new BlockSlots(0)
/** Released entries kept for reuse, at most. */
const MAX_SPARE_ENTRIES = 1024

/** Slab size for a cache of `capacityBytes`. */
export function slabBytesFor(capacityBytes: number): number {
  const slab = Math.floor(capacityBytes / 8 / SIZE_CLASS_BYTES) * SIZE_CLASS_BYTES
  return Math.min(MAX_SLAB_BYTES, Math.max(MIN_SLAB_BYTES, slab))
}

export class BlockCache {
  private newest: CacheEntry | null = null
  private oldest: CacheEntry | null = null
  private bytes = 0
  /** Free chunks by size class (bytes / SIZE_CLASS_BYTES), and beside them their slabs. */
  private readonly free: Buffer[][]
  private readonly freeSlabs: Slab[][]
  /** Slab memory by id, for the point-read path; id 0 and freed ids hold an empty buffer. */
  readonly slabs: Buffer[] = [NO_MEMORY]
  private readonly slabInfo: (Slab | undefined)[] = [undefined]
  private readonly freeSlabIds: number[] = []
  private readonly slabByMemory = new Map<ArrayBuffer, Slab>()
  private slabCount = 0
  readonly slabBytes: number
  /** Slabs plus blocks in Buffers of their own stay within this. */
  private readonly memoryLimitBytes: number
  /** Bytes of cached blocks in Buffers of their own. */
  private ownBytes = 0
  /** The slab being carved, and where its unused rest starts. */
  private carving: Slab | null = null
  private carveOffset = 0
  /** The last chunk `allocate` handed out and its slab (spares insert a Map lookup). */
  private lastChunk: Buffer | null = null
  private lastChunkSlab: Slab | null = null
  /**
   * A block that left the cache during its own insert: its reader is still
   * using it, so its chunk is released at the next allocate (reads are
   * synchronous) unless an iterator pinned it meanwhile.
   */
  private pendingRelease: CacheEntry | null = null
  /** Released entries, for the next inserts. */
  private readonly spareEntries: CacheEntry[] = []
  hits = 0
  misses = 0
  /** Slabs reclaimed whole (sizes drifted away from the free chunks). */
  slabsReclaimed = 0

  constructor(readonly capacityBytes: number) {
    this.slabBytes = slabBytesFor(capacityBytes)
    this.memoryLimitBytes = capacityBytes + this.slabBytes
    const classes = this.slabBytes / SIZE_CLASS_BYTES + 1
    this.free = Array.from({ length: classes }, () => [])
    this.freeSlabs = Array.from({ length: classes }, () => [])
  }

  /** Bytes charged by cached blocks (at most the capacity). */
  get usedBytes(): number {
    return this.bytes
  }

  /** Memory held: slabs (cached blocks, free chunks, uncarved rest) and blocks in Buffers of their own. */
  get memoryBytes(): number {
    return this.slabCount * this.slabBytes + this.ownBytes
  }

  /** Bytes of the chunks on the free lists (for tests: with usedBytes, at most memoryBytes). */
  get freeChunkBytes(): number {
    let bytes = 0
    for (const list of this.free) for (const chunk of list) bytes += chunk.length
    return bytes
  }

  /** The entry of block `slot` of a table, or undefined (the caller may read and insert it: a miss is counted then). */
  lookup(owner: BlockSlots, slot: number): CacheEntry | undefined {
    const e = owner.entries[slot]
    if (e === undefined) return undefined
    this.hits++
    owner.referenced[slot] = 1
    return e
  }

  /**
   * A buffer of at least `size` bytes (stale contents) to read a block into:
   * a free chunk of its size class (or the next one up), else a new chunk of a
   * slab (reclaiming one when no more fit the limit), else a Buffer of its own.
   */
  allocate(size: number): Buffer {
    const pending = this.pendingRelease
    if (pending !== null) {
      this.pendingRelease = null
      if (pending.pins === 0 && !pending.released) this.release(pending)
    }
    const cls = Math.max(1, Math.ceil(size / SIZE_CLASS_BYTES))
    const chunkBytes = cls * SIZE_CLASS_BYTES
    if (chunkBytes <= this.slabBytes) {
      const chunk = this.takeFree(cls) ?? this.carve(chunkBytes)
      if (chunk !== undefined) return chunk
    }
    // Room for a Buffer of its own: free slabs nothing is using, then reclaim more.
    while (this.memoryBytes + chunkBytes > this.memoryLimitBytes) {
      const slab = this.reclaimSlab()
      if (slab === undefined) break
      this.freeSlab(slab)
    }
    return Buffer.allocUnsafeSlow(chunkBytes)
  }

  /** A free chunk of class `cls`, or of the next class up. */
  private takeFree(cls: number): Buffer | undefined {
    let c = cls
    if (this.free[c].length === 0) {
      c = cls + 1
      if (c === this.free.length || this.free[c].length === 0) return undefined
    }
    const chunk = this.free[c].pop()!
    this.noteChunk(chunk, this.freeSlabs[c].pop()!)
    return chunk
  }

  /** A new chunk from the slab being carved, a new slab, or a reclaimed one; undefined when none can be had. */
  private carve(chunkBytes: number): Buffer | undefined {
    if (this.carving === null || this.carveOffset + chunkBytes > this.slabBytes) {
      let slab: Slab | undefined
      if (this.memoryBytes + this.slabBytes <= this.memoryLimitBytes) slab = this.addSlab()
      slab ??= this.reclaimSlab()
      if (slab === undefined) return undefined
      this.carving = slab
      this.carveOffset = 0
    }
    const start = this.carveOffset
    this.carveOffset += chunkBytes
    const chunk = this.carving.memory.subarray(start, start + chunkBytes)
    this.noteChunk(chunk, this.carving)
    return chunk
  }

  /** Remembers the chunk just handed out and its slab (spares insert a lookup). */
  private noteChunk(chunk: Buffer, slab: Slab): void {
    this.lastChunk = chunk
    this.lastChunkSlab = slab
  }

  /** The slab `buf` is a chunk of, or null. */
  private slabOf(buf: Buffer): Slab | null {
    if (buf === this.lastChunk) return this.lastChunkSlab
    return this.slabByMemory.get(buf.buffer as ArrayBuffer) ?? null
  }

  private addSlab(): Slab | undefined {
    const id = this.freeSlabIds.pop() ?? (this.slabs.length <= MAX_SLAB_ID ? this.slabs.length : undefined)
    if (id === undefined) return undefined
    const slab: Slab = { id, memory: Buffer.allocUnsafeSlow(this.slabBytes), live: 0, pins: 0 }
    this.slabs[id] = slab.memory
    this.slabInfo[id] = slab
    this.slabByMemory.set(slab.memory.buffer as ArrayBuffer, slab)
    this.slabCount++
    return slab
  }

  /**
   * Empties a slab for reuse: one that holds no block, else the slab of one of
   * the oldest entries, unless an iterator pins a block in it. Its blocks are
   * evicted and its free chunks leave the free lists. Undefined when none
   * qualifies. Walks every cached entry: this only happens when the sizes read
   * drift away from the free chunks.
   */
  private reclaimSlab(): Slab | undefined {
    let chosen: Slab | undefined
    for (const slab of this.slabInfo) {
      if (slab !== undefined && slab.live === 0) {
        chosen = slab
        break
      }
    }
    let e = this.oldest
    for (let i = 0; chosen === undefined && e !== null && i < RECLAIM_SEARCH_ENTRIES; i++, e = e.newer) {
      if (e.slab !== null && e.slab.pins === 0) chosen = e.slab
    }
    if (chosen === undefined) return undefined
    for (let entry = this.oldest; entry !== null; ) {
      const next = entry.newer
      if (entry.slab === chosen) {
        this.evict(entry, false)
        entry.released = true
        chosen.live--
      }
      entry = next
    }
    assert(chosen.live === 0, 'a reclaimed slab still holds blocks')
    for (let cls = 0; cls < this.free.length; cls++) {
      const slabs = this.freeSlabs[cls]
      if (slabs.length === 0) continue
      this.free[cls] = this.free[cls].filter((_, i) => slabs[i] !== chosen)
      this.freeSlabs[cls] = slabs.filter((slab) => slab !== chosen)
    }
    if (this.carving === chosen) this.carving = null
    this.lastChunk = this.lastChunkSlab = null
    this.slabsReclaimed++
    return chosen
  }

  /** Gives a reclaimed slab's memory back (to the GC: nothing refers to it any more). */
  private freeSlab(slab: Slab): void {
    this.slabs[slab.id] = NO_MEMORY
    this.slabInfo[slab.id] = undefined
    this.slabByMemory.delete(slab.memory.buffer as ArrayBuffer)
    this.freeSlabIds.push(slab.id)
    this.slabCount--
  }

  /**
   * Adds a block read into `buffer` (from `allocate`; null if it is not the
   * cache's) and returns its entry. May evict older blocks.
   */
  insert(owner: BlockSlots, slot: number, block: Buffer, buffer: Buffer | null): CacheEntry {
    assert(owner.entries[slot] === undefined, 'block inserted twice')
    this.misses++
    assert(buffer === null || (block.buffer === buffer.buffer && block.byteOffset === buffer.byteOffset), 'a block starts its buffer')
    const slab = buffer === null ? null : this.slabOf(buffer)
    const e = this.spareEntries.pop() ?? new CacheEntry()
    e.reset(owner, slot, block, buffer, slab)
    const chargedBytes = e.chargedBytes
    if (slab !== null) slab.live++
    if (chargedBytes > this.capacityBytes) {
      e.evicted = true // never cached: its buffer comes back after its reader is done
      this.pendingRelease = e
      return e
    }
    owner.slabIds[slot] = slab === null ? 0 : slab.id
    owner.bases[slot] = slab === null ? 0 : block.byteOffset - slab.memory.byteOffset
    owner.entries[slot] = e
    owner.referenced[slot] = 0
    this.pushNewest(e)
    this.bytes += chargedBytes
    if (slab === null && !e.own) this.ownBytes += chargedBytes
    while (this.bytes > this.capacityBytes && this.oldest !== null) {
      const victim = this.oldest
      if (victim.owner.referenced[victim.slot] === 1 && victim !== e) {
        victim.owner.referenced[victim.slot] = 0
        this.unlink(victim)
        this.pushNewest(victim)
      } else {
        // The block just read may itself go, but its caller is about to use
        // (or pin) it: its buffer comes back after that (pendingRelease) or at an unpin.
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
    if (e.slab !== null) e.slab.pins++
  }

  unpin(e: CacheEntry): void {
    assert(e.pins > 0, 'unpin of a block that is not pinned')
    if (e.slab !== null) e.slab.pins--
    if (--e.pins === 0 && e.evicted && !e.released) this.release(e)
  }

  dropOwner(owner: BlockSlots): void {
    for (const e of owner.entries) if (e !== undefined) this.evict(e)
  }

  private evict(e: CacheEntry, reuse = true): void {
    this.unlink(e)
    e.owner.entries[e.slot] = undefined
    this.bytes -= e.chargedBytes
    if (e.slab === null && !e.own) this.ownBytes -= e.chargedBytes
    e.evicted = true
    if (reuse && e.pins === 0) this.release(e)
  }

  /** Returns an evicted, unpinned block's chunk to its free list (a Buffer of its own goes to the GC). */
  private release(e: CacheEntry): void {
    e.released = true
    if (e.slab !== null && !e.own) {
      e.slab.live--
      this.pushFree(e.buffer, e.slab)
    }
    // Nothing refers to it any more: no table slot, no ring, no pin (an iterator pins until it is done with the block).
    e.buffer = NO_MEMORY
    e.owner = NO_OWNER
    if (this.spareEntries.length < MAX_SPARE_ENTRIES) this.spareEntries.push(e)
  }

  /** Returns a buffer from `allocate` that was never inserted (a failed read). */
  recycle(buf: Buffer): void {
    const slab = this.slabOf(buf)
    if (slab !== null) this.pushFree(buf, slab)
  }

  private pushFree(chunk: Buffer, slab: Slab): void {
    const cls = chunk.length / SIZE_CLASS_BYTES
    this.free[cls].push(chunk)
    this.freeSlabs[cls].push(slab)
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
