import { beforeAll, describe, expect, it } from 'vitest'
import { BlockBuilder } from '../../src/sstable/block-builder.js'
import { BlockIterator } from '../../src/sstable/block-iterator.js'
import { KIND_DELETE, KIND_PUT } from '../../src/wal/wal-record.js'
import { b, ready } from './helpers.js'

interface E { key: Buffer; seq: number; kind: number; value: Buffer }

function build(entries: E[], restartInterval = 4): Buffer {
  const bb = new BlockBuilder(restartInterval)
  for (const e of entries) bb.add(e.key, e.seq, e.kind, e.value)
  return bb.finish()
}

function collect(it: BlockIterator): string[] {
  const out: string[] = []
  for (; it.valid(); it.next()) out.push(`${it.key().toString('latin1')}@${it.sequence()}`)
  return out
}

// Keys with shared prefixes and several versions of one key spanning restart points.
const entries: E[] = [
  ['a', 9], ['ab', 8], ['abc', 7], ['abd', 20], ['abd', 6], ['abd', 3], ['b', 5], ['ba', 4], ['bb', 2], ['c', 1],
].map(([k, s], i) => ({ key: b(k as string), seq: s as number, kind: i === 3 ? KIND_DELETE : KIND_PUT, value: b(`v${i}`) }))

describe('block', () => {
  beforeAll(ready)

  it('round-trips entries in order with prefix compression', () => {
    const block = build(entries)
    const it = new BlockIterator(block, 'test')
    it.seekToFirst()
    expect(collect(it)).toEqual(entries.map((e) => `${e.key.toString('latin1')}@${e.seq}`))
    it.seekToFirst()
    it.next(); it.next(); it.next()
    expect(it.kind()).toBe(KIND_DELETE)
    expect(it.value().length).toBe(2)
  })

  it('walks backwards across restart points', () => {
    const it = new BlockIterator(build(entries, 3), 'test')
    it.seekToLast()
    const out: string[] = []
    for (; it.valid(); it.prev()) out.push(`${it.key().toString('latin1')}@${it.sequence()}`)
    expect(out).toEqual(entries.map((e) => `${e.key.toString('latin1')}@${e.seq}`).reverse())
  })

  it('seeks by user key in both directions', () => {
    for (const interval of [1, 2, 3, 16]) {
      const it = new BlockIterator(build(entries, interval), 'test')
      it.seekGE(b('abd'))
      expect(`${it.key().toString('latin1')}@${it.sequence()}`).toBe('abd@20')
      it.seekGT(b('abd'))
      expect(it.key().toString('latin1')).toBe('b')
      it.seekLE(b('abd'))
      expect(`${it.key().toString('latin1')}@${it.sequence()}`).toBe('abd@3')
      it.seekLT(b('abd'))
      expect(it.key().toString('latin1')).toBe('abc')
      it.seekLT(b('a'))
      expect(it.valid()).toBe(false)
      it.seekGT(b('c'))
      expect(it.valid()).toBe(false)
      it.seekLE(b('zzz'))
      expect(it.key().toString('latin1')).toBe('c')
      it.seekGE(b('aa'))
      expect(it.key().toString('latin1')).toBe('ab')
    }
  })

  it('finds the newest version not newer than a sequence', () => {
    const it = new BlockIterator(build(entries, 2), 'test')
    it.seekInternal(b('abd'), 10)
    expect(it.sequence()).toBe(6)
    it.seekInternal(b('abd'), 2)
    expect(it.key().toString('latin1')).toBe('b')
    it.seekInternal(b('abd'), 100)
    expect(it.sequence()).toBe(20)
  })

  it('reports a malformed block as corruption', () => {
    const block = build(entries)
    block.writeUInt32LE(10_000, block.length - 4)
    expect(() => new BlockIterator(block, 'test')).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
    const bad = build(entries)
    bad[0] = 0x7f // shared prefix longer than the (empty) previous key
    const it = new BlockIterator(bad, 'test')
    expect(() => it.seekToFirst()).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
  })
})
