import { describe, expect, it } from 'vitest'
import { BlockCache, BlockSlots, type CacheEntry } from '../../src/sstable/block-cache.js'

/** A block read through the cache: its entry (reused by a later read once its buffer came back), and its buffer and bytes as read. */
interface Read {
  entry: CacheEntry
  buffer: Buffer
  block: Buffer
}

/** Reads a fake block of `size` bytes filled with `fill` through the cache's allocator. */
function read(cache: BlockCache, owner: BlockSlots, offset: number, size: number, fill: number): Read {
  const buffer = cache.allocate(size)
  buffer.fill(fill, 0, size)
  const entry = cache.insert(owner, offset, buffer.subarray(0, size), buffer)
  return { entry, buffer, block: entry.block }
}

describe('BlockCache buffer reuse', () => {
  it('reuses the buffer of an evicted block for the next read of a similar size', () => {
    const cache = new BlockCache(8192)
    const owner = new BlockSlots(4)
    const a = read(cache, owner, 0, 4100, 1)
    read(cache, owner, 1, 4100, 2)
    expect((owner.entries[0] !== undefined)).toBe(false) // a was evicted to stay within 8 KiB
    const c = read(cache, owner, 2, 4400, 3)
    expect(c.buffer).toBe(a.buffer) // same 4608-byte size class
    expect(cache.usedBytes).toBeLessThanOrEqual(8192)
  })

  it('never reuses the buffer of a pinned block, until the pin is released', () => {
    const cache = new BlockCache(8192)
    const owner = new BlockSlots(4)
    const a = read(cache, owner, 0, 4100, 1)
    cache.pin(a.entry)
    read(cache, owner, 1, 4100, 2) // evicts a, which stays pinned
    expect((owner.entries[0] !== undefined)).toBe(false)
    const c = read(cache, owner, 2, 4100, 3)
    expect(c.buffer).not.toBe(a.buffer)
    expect(a.block.every((b) => b === 1)).toBe(true)
    cache.unpin(a.entry)
    const d = read(cache, owner, 3, 4100, 4)
    expect(d.buffer).toBe(a.buffer)
    expect(() => cache.unpin(a.entry)).toThrow()
  })

  it('frees the blocks of a dropped table, except pinned ones until unpinned', () => {
    const cache = new BlockCache(1 << 20)
    const t1 = new BlockSlots(4)
    const a = read(cache, t1, 0, 1000, 1)
    const b = read(cache, t1, 1, 1000, 2)
    cache.pin(b.entry)
    cache.dropOwner(t1)
    expect(t1.entries.every((e) => e === undefined)).toBe(true)
    expect(cache.usedBytes).toBe(0)
    const t2 = new BlockSlots(4)
    expect(read(cache, t2, 0, 1000, 3).buffer).toBe(a.buffer)
    expect(read(cache, t2, 1, 1000, 4).buffer).not.toBe(b.buffer)
    expect(b.block.every((x) => x === 2)).toBe(true)
  })

  it('does not reuse the buffer of a block evicted by its own insert before its reader is done', () => {
    // Everything older is flagged (second chance), so the new block is the one evicted.
    const cache = new BlockCache(6000)
    const owner = new BlockSlots(4)
    const a = read(cache, owner, 0, 3000, 1)
    cache.lookup(owner, 0) // flags a
    const b = read(cache, owner, 1, 3500, 2)
    expect((owner.entries[1] !== undefined)).toBe(false) // b evicted itself
    cache.pin(b.entry) // an iterator opens b
    const c = read(cache, owner, 2, 3500, 3)
    expect(c.buffer).not.toBe(b.buffer)
    expect(b.block.every((x) => x === 2)).toBe(true)
    cache.unpin(b.entry)
    expect(read(cache, owner, 3, 3500, 4).buffer).toBe(b.buffer)
    expect(a.block.every((x) => x === 1)).toBe(true)
  })

  it('reuses the chunk of a block evicted by its own insert once its reader is done, if no iterator pinned it', () => {
    const cache = new BlockCache(6000)
    const owner = new BlockSlots(4)
    read(cache, owner, 0, 3000, 1)
    cache.lookup(owner, 0) // flags the first block: the next insert evicts itself
    const b = read(cache, owner, 1, 3500, 2)
    expect(owner.entries[1]).toBeUndefined()
    expect(b.block.every((x) => x === 2)).toBe(true) // still intact for its reader
    // The next read is the next allocate: b's reader (synchronous) is done by then.
    expect(read(cache, owner, 2, 3500, 3).buffer).toBe(b.buffer)
  })

  /**
   * Random reads through phases of block sizes: ~4 KiB, then ~9 KiB (no free
   * chunk fits), then mixed with some blocks larger than a slab (Buffers of
   * their own), then small again. Checks every cached block's bytes at the end.
   */
  function churn(pinEvery: number, checkMemory: (cache: BlockCache) => void): BlockCache {
    const capacity = 256 << 10
    const cache = new BlockCache(capacity)
    const tables = [new BlockSlots(64), new BlockSlots(64), new BlockSlots(64)]
    const fills = tables.map(() => new Uint8Array(64))
    let seed = 7
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed % n
    }
    const phases: (() => number)[] = [
      () => 3900 + random(700),
      () => 8500 + random(1000),
      () => (random(20) === 0 ? cache.slabBytes + 1 + random(4096) : 200 + random(12_000)),
      () => 300 + random(700),
    ]
    const pinned: [Read, number][] = []
    for (const sizeOf of phases) {
      for (let i = 0; i < 5_000; i++) {
        const t = random(tables.length)
        const slot = random(64)
        const owner = tables[t]
        if (owner.entries[slot] !== undefined) {
          cache.lookup(owner, slot)
          continue
        }
        const fill = 1 + random(250)
        const e = read(cache, owner, slot, sizeOf(), fill)
        fills[t][slot] = fill
        if (pinEvery > 0 && random(pinEvery) === 0) {
          cache.pin(e.entry)
          pinned.push([e, fill])
        }
        if (pinned.length > 4) {
          const [oldest, oldestFill] = pinned.shift()!
          expect(oldest.block.every((x) => x === oldestFill)).toBe(true)
          cache.unpin(oldest.entry)
        }
        expect(cache.usedBytes).toBeLessThanOrEqual(capacity)
        checkMemory(cache)
        if (i % 500 === 0) expect(cache.usedBytes + cache.freeChunkBytes).toBeLessThanOrEqual(cache.memoryBytes)
      }
    }
    expect(cache.slabsReclaimed).toBeGreaterThan(0)
    let cached = 0
    for (let t = 0; t < tables.length; t++) {
      const owner = tables[t]
      for (let slot = 0; slot < 64; slot++) {
        const block = owner.entries[slot]?.block
        if (block === undefined) continue
        cached++
        expect(block.every((x) => x === fills[t][slot])).toBe(true)
        const id = owner.slabIds[slot]
        if (id !== 0) {
          const base = owner.bases[slot]
          expect(cache.slabs[id].subarray(base, base + block.length).equals(block)).toBe(true)
        }
      }
    }
    expect(cached).toBeGreaterThan(40)
    for (const [e, fill] of pinned) expect(e.block.every((x) => x === fill)).toBe(true)
    return cache
  }

  it('keeps its memory within the budget plus one slab while block sizes drift, never handing out the bytes of a live block', () => {
    churn(0, (cache) => expect(cache.memoryBytes).toBeLessThanOrEqual(cache.capacityBytes + cache.slabBytes))
  })

  it('with iterators pinning blocks, stays within twice the budget plus one slab, and is back within the bound after a phase of small blocks', () => {
    const cache = churn(50, (c) => expect(c.memoryBytes).toBeLessThanOrEqual(2 * c.capacityBytes + c.slabBytes))
    expect(cache.memoryBytes).toBeLessThanOrEqual(cache.capacityBytes + cache.slabBytes)
  })
})

