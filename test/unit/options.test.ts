import * as fs from 'node:fs'
import { describe, expect, it } from 'vitest'
import { open } from '../../src/index.js'
import { DEFAULT_OPTIONS, defaultBlockCacheBytes } from '../../src/options.js'
import { tempDir } from './helpers.js'

const MiB = 2 ** 20
const GiB = 2 ** 30

describe('default block cache budget', () => {
  it('is 1/32 of the memory the process may use, between 32 and 256 MiB', () => {
    expect(defaultBlockCacheBytes(512 * MiB)).toBe(32 * MiB)
    expect(defaultBlockCacheBytes(1 * GiB)).toBe(32 * MiB)
    expect(defaultBlockCacheBytes(2 * GiB)).toBe(64 * MiB)
    expect(defaultBlockCacheBytes(3 * GiB)).toBe(96 * MiB)
    expect(defaultBlockCacheBytes(8 * GiB)).toBe(256 * MiB)
    expect(defaultBlockCacheBytes(24 * GiB)).toBe(256 * MiB)
    expect(defaultBlockCacheBytes(2 ** 64)).toBe(256 * MiB)
  })

  it('is what open() uses when blockCacheBytes is not given', async () => {
    const bytes = DEFAULT_OPTIONS.blockCacheBytes
    expect(bytes).toBe(defaultBlockCacheBytes())
    expect(bytes).toBeGreaterThanOrEqual(32 * MiB)
    expect(bytes).toBeLessThanOrEqual(256 * MiB)
    const { dir, cleanup } = tempDir()
    try {
      const db = await open(dir)
      expect(db.stats().blockCache.capacityBytes).toBe(bytes)
      await db.close()
      const small = await open(dir, { blockCacheBytes: 5 * MiB })
      expect(small.stats().blockCache.capacityBytes).toBe(5 * MiB)
      await small.close()
    } finally {
      cleanup()
    }
  })
})

describe('fileSystem and onBackgroundError options', () => {
  it('refuse what is not a file system or a function, before touching the directory', async () => {
    const { dir, cleanup } = tempDir()
    try {
      await expect(open(dir, { fileSystem: null as never })).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
      await expect(open(dir, { fileSystem: { open: () => undefined } as never })).rejects.toThrow(/fileSystem lacks readFile/)
      await expect(open(dir, { onBackgroundError: 'log' as never })).rejects.toMatchObject({ code: 'STRATA_INVALID_ARGUMENT' })
      expect(fs.readdirSync(dir)).toEqual([])
    } finally {
      cleanup()
    }
  })
})
