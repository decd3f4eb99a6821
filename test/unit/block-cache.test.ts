import { describe, expect, it } from 'vitest'
import { BlockCache, BlockSlots, type CacheEntry } from '../../src/sstable/block-cache.js'

/** Reads a fake block of `size` bytes filled with `fill` through the cache's allocator. */
function read(cache: BlockCache, owner: BlockSlots, offset: number, size: number, fill: number): CacheEntry {
  const buffer = cache.allocate(size)
  buffer.fill(fill, 0, size)
  return cache.insert(owner, offset, buffer.subarray(0, size), buffer)
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
    cache.pin(a)
    read(cache, owner, 1, 4100, 2) // evicts a, which stays pinned
    expect((owner.entries[0] !== undefined)).toBe(false)
    const c = read(cache, owner, 2, 4100, 3)
    expect(c.buffer).not.toBe(a.buffer)
    expect(a.block.every((b) => b === 1)).toBe(true)
    cache.unpin(a)
    const d = read(cache, owner, 3, 4100, 4)
    expect(d.buffer).toBe(a.buffer)
    expect(() => cache.unpin(a)).toThrow()
  })

  it('frees the blocks of a dropped table, except pinned ones until unpinned', () => {
    const cache = new BlockCache(1 << 20)
    const t1 = new BlockSlots(4)
    const a = read(cache, t1, 0, 1000, 1)
    const b = read(cache, t1, 1, 1000, 2)
    cache.pin(b)
    cache.dropOwner(t1)
    expect(t1.entries.every((e) => e === undefined) && t1.blocks.every((b) => b === undefined)).toBe(true)
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
    cache.pin(b) // an iterator opens b
    const c = read(cache, owner, 2, 3500, 3)
    expect(c.buffer).not.toBe(b.buffer)
    expect(b.block.every((x) => x === 2)).toBe(true)
    cache.unpin(b)
    expect(read(cache, owner, 3, 3500, 4).buffer).toBe(b.buffer)
    expect(a.block.every((x) => x === 1)).toBe(true)
  })
})
