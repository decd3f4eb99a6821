import { describe, expect, it } from 'vitest'
import { PointIndex, buildPointIndex } from '../../src/sstable/point-index.js'
import { rng } from './helpers.js'

/** Every block the index names for `hash`, in probe order. */
function blocksFor(pi: PointIndex, hash: number): number[] {
  const out: number[] = []
  const fingerprint = pi.fingerprint(hash)
  for (let s = pi.probe(pi.home(hash), fingerprint); s >= 0; s = pi.probe(pi.next(s), fingerprint)) out.push(pi.blockAt(s))
  return out
}

/** blockEnds (buildPointIndex's argument) of keys whose blocks are `blocks`, in table order, over `blockCount` blocks. */
function ends(blocks: number[], blockCount: number): number[] {
  return Array.from({ length: blockCount }, (_, b) => blocks.filter((x) => x <= b).length)
}

function codeOf(f: () => unknown): string | undefined {
  try {
    f()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

describe('point index', () => {
  it('finds the block of every key and, for absent keys, almost never names one', () => {
    const random = rng(7)
    const n = 20_000
    const hashes = Array.from({ length: n }, () => (random() * 2 ** 32) | 0)
    const blocks = Array.from({ length: n }, (_, i) => Math.floor(i / 40))
    const blockCount = blocks[n - 1] + 1
    const contents = buildPointIndex(hashes, ends(blocks, blockCount))!
    expect(contents.length).toBe(8 + 4 * (Math.ceil(n * 1.25) + 1))
    const pi = new PointIndex(contents, blockCount, 't.sst')
    for (let i = 0; i < n; i++) expect(blocksFor(pi, hashes[i])).toContain(blocks[i])
    let named = 0
    for (let i = 0; i < 100_000; i++) named += blocksFor(pi, (random() * 2 ** 32) | 0).length
    // Fingerprints of 32 - 10 bits: false matches about probes × 2^-22.
    expect(named).toBeLessThan(5)
  })

  it('keys with equal hashes are probed in the order they were inserted', () => {
    const h = 0x1234_5678
    const hashes = [h, 99, h, h + 1, h]
    const blocks = [0, 1, 3, 4, 5]
    const pi = new PointIndex(buildPointIndex(hashes, ends(blocks, 6))!, 6, 't.sst')
    expect(blocksFor(pi, h)).toEqual([0, 3, 5])
    expect(blocksFor(pi, 99)).toEqual([1])
  })

  it('is not written for tables with 2^24 or more blocks', () => {
    // One key, in block 0, of a table with n blocks (read: only the first and last block ends).
    const withBlocks = (n: number): ArrayLike<number> => ({ length: n, 0: 1, [n - 1]: 1 })
    expect(buildPointIndex([1], withBlocks(2 ** 24 - 1))).toBeDefined()
    expect(buildPointIndex([1], withBlocks(2 ** 24))).toBeUndefined()
  })

  it('rejects contents that do not fit the table as STRATA_CORRUPTION', () => {
    const good = buildPointIndex([1, 2, 3], [1, 2, 3])!
    expect(codeOf(() => new PointIndex(good, 3, 't.sst'))).toBeUndefined()
    // Fewer blocks than the index names; more than its block numbers can hold.
    expect(codeOf(() => new PointIndex(good, 2, 't.sst'))).toBe('STRATA_CORRUPTION')
    expect(codeOf(() => new PointIndex(good, 4, 't.sst'))).toBe('STRATA_CORRUPTION')
    expect(codeOf(() => new PointIndex(good.subarray(0, good.length - 4), 3, 't.sst'))).toBe('STRATA_CORRUPTION')
    expect(codeOf(() => new PointIndex(good.subarray(0, 5), 3, 't.sst'))).toBe('STRATA_CORRUPTION')
    // A slot whose block field is 0 although the slot is in use.
    const zeroBlock = Buffer.from(good)
    const used = [0, 1, 2, 3, 4].find((s) => zeroBlock.readUInt32LE(8 + 4 * s) !== 0)!
    zeroBlock.writeUInt32LE(0x8000_0000, 8 + 4 * used)
    expect(codeOf(() => new PointIndex(zeroBlock, 3, 't.sst'))).toBe('STRATA_CORRUPTION')
    // No empty slot: probing for an absent key would never end.
    const full = Buffer.from(good)
    for (let s = 0; s < full.readUInt32LE(0); s++) full.writeUInt32LE(0x8000_0001, 8 + 4 * s)
    expect(codeOf(() => new PointIndex(full, 3, 't.sst'))).toBe('STRATA_CORRUPTION')
  })
})
