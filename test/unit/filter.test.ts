import { beforeAll, describe, expect, it } from 'vitest'
import { Filter, buildFilter, filterHash } from '../../src/sstable/filter-block.js'
import { ready } from './helpers.js'

const keys = (prefix: string, n: number): Buffer[] => Array.from({ length: n }, (_, i) => Buffer.from(`${prefix}${i}`))

/** The version-1 ("spread") layout, written here from docs/format.md: double hashing over the whole bit set. */
function spreadFilter(hashes: number[], bitsPerKey: number): Buffer {
  const hashCount = Math.round(bitsPerKey * 0.69)
  const bitCount = Math.ceil(Math.max(64, hashes.length * bitsPerKey) / 8) * 8
  const out = Buffer.alloc(8 + bitCount / 8)
  out.writeUInt32LE(bitCount, 0)
  out[4] = hashCount
  for (const h0 of hashes) {
    let h = h0
    const delta = ((h >>> 17) | (h << 15)) >>> 0
    for (let i = 0; i < hashCount; i++) {
      const bit = h % bitCount
      out[8 + (bit >>> 3)] |= 1 << (bit & 7)
      h = (h + delta) >>> 0
    }
  }
  return out
}

function falsePositiveRate(filter: Filter, absent: Buffer[]): number {
  return absent.filter((k) => filter.mayContain(filterHash(k))).length / absent.length
}

describe('filter block', () => {
  beforeAll(ready)

  it('blocked layout: every added key may be contained, about 1% of others at 10 bits per key', () => {
    const present = keys('key', 20_000)
    const contents = buildFilter(present.map(filterHash), 10)
    expect(contents[5]).toBe(1) // blocked layout
    expect((contents.length - 8) % 64).toBe(0) // whole 64-byte blocks
    const filter = new Filter(contents, 'test')
    expect(present.every((k) => filter.mayContain(filterHash(k)))).toBe(true)
    const rate = falsePositiveRate(filter, keys('other', 100_000))
    expect(rate).toBeGreaterThan(0.002)
    expect(rate).toBeLessThan(0.02)
  })

  it('a filter of one key still works (one block)', () => {
    const filter = new Filter(buildFilter([filterHash(Buffer.from('only'))], 10), 'test')
    expect(filter.mayContain(filterHash(Buffer.from('only')))).toBe(true)
    expect(falsePositiveRate(filter, keys('x', 1000))).toBeLessThan(0.05)
  })

  it('reads the version-1 spread layout', () => {
    const present = keys('key', 5000)
    const filter = new Filter(spreadFilter(present.map(filterHash), 10), 'test')
    expect(present.every((k) => filter.mayContain(filterHash(k)))).toBe(true)
    expect(falsePositiveRate(filter, keys('other', 50_000))).toBeLessThan(0.02)
  })

  it('reports an unknown layout or a size that does not match as corruption', () => {
    const contents = buildFilter(keys('k', 100).map(filterHash), 10)
    const badLayout = Buffer.from(contents)
    badLayout[5] = 7
    expect(() => new Filter(badLayout, 'test')).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
    expect(() => new Filter(contents.subarray(0, contents.length - 1), 'test')).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
  })
})
