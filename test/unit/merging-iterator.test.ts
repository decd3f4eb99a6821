import { describe, expect, it } from 'vitest'
import { Memtable } from '../../src/memtable/memtable.js'
import { MergingIterator } from '../../src/iterators/merging-iterator.js'
import { DbIterator } from '../../src/iterators/db-iterator.js'
import { rng } from './helpers.js'

/** Three memtables with interleaved sequences: the newest version of a key may live in any of them. */
function sources(seed: number): { mems: Memtable[]; model: Map<string, Array<[number, string | null]>>; lastSeq: number } {
  const random = rng(seed)
  const mems = [new Memtable([1]), new Memtable([2]), new Memtable([3])]
  const model = new Map<string, Array<[number, string | null]>>()
  let seq = 0
  for (let i = 0; i < 600; i++) {
    const k = `k${Math.floor(random() * 60)}`
    const v = random() < 0.2 ? null : `v${i}`
    seq++
    mems[Math.floor(random() * 3)].add(Buffer.from(k), seq, v === null ? null : Buffer.from(v))
    model.set(k, [...(model.get(k) ?? []), [seq, v]])
  }
  return { mems, model, lastSeq: seq }
}

function visible(model: Map<string, Array<[number, string | null]>>, at: number): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (const [k, versions] of model) {
    const v = versions.filter(([s]) => s <= at).pop()
    if (v && v[1] !== null) out.push([k, v[1]])
  }
  return out.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])))
}

function drain(it: DbIterator): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (let e = it.nextSync(); e; e = it.nextSync()) out.push([e[0].toString(), e[1].toString()])
  return out
}

describe('merging and db iterators', () => {
  it('merge children into internal-key order in both directions', () => {
    const { mems } = sources(1)
    const fwd = new MergingIterator(mems.map((m) => m.iterator()), false)
    const seen: string[] = []
    for (fwd.seek((c) => c.seekToFirst()); fwd.valid(); fwd.advance()) seen.push(`${fwd.top().key()}#${fwd.top().sequence()}`)
    expect(seen.length).toBe(600)
    const rev = new MergingIterator(mems.map((m) => m.iterator()), true)
    const back: string[] = []
    for (rev.seek((c) => c.seekToLast()); rev.valid(); rev.advance()) back.push(`${rev.top().key()}#${rev.top().sequence()}`)
    expect(back).toEqual([...seen].reverse())
  })

  it('yield the newest visible version per key, at any sequence, with bounds and limits', () => {
    for (const seed of [2, 3, 4]) {
      const { mems, model, lastSeq } = sources(seed)
      const random = rng(seed * 7)
      for (let round = 0; round < 40; round++) {
        const at = Math.floor(random() * (lastSeq + 1))
        const expected = visible(model, at)
        const lo = `k${Math.floor(random() * 70)}`
        const hi = `k${Math.floor(random() * 70)}`
        const reverse = random() < 0.5
        const limit = random() < 0.3 ? Math.floor(random() * 5) : Infinity
        const inRange = expected.filter(([k]) => k >= lo && k < hi)
        const want = (reverse ? [...inRange].reverse() : inRange).slice(0, limit)
        const it = new DbIterator(mems.map((m) => m.iterator()), at, { gte: Buffer.from(lo), lt: Buffer.from(hi) }, reverse, limit, () => {})
        expect(drain(it), `seed ${seed} round ${round}`).toEqual(want)
      }
    }
  })
})
