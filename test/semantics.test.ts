import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { open, type Database } from '../src/index.js'
import { tempDir } from './unit/helpers.js'

let cleanup = (): void => {}
let db: Database | undefined
afterEach(async () => {
  await db?.close()
  db = undefined
  cleanup()
})

async function fresh(options = {}): Promise<{ db: Database; dir: string }> {
  const t = tempDir('strata-sem-')
  cleanup = t.cleanup
  db = await open(t.dir, options)
  return { db, dir: t.dir }
}

async function scan(it: AsyncIterable<[Buffer, Buffer]>): Promise<string[]> {
  const out: string[] = []
  for await (const [k, v] of it) out.push(`${k}=${v}`)
  return out
}

describe('write semantics', () => {
  it('applies writes in call order even when not awaited one by one', async () => {
    const { db } = await fresh({ memtableBytes: 16 * 1024 })
    const pending: Promise<void>[] = []
    for (let i = 0; i < 3000; i++) {
      const k = `k${i % 50}`
      pending.push(i % 7 === 0 ? db.delete(k) : db.put(k, `v${i}`))
    }
    await Promise.all(pending)
    for (let j = 0; j < 50; j++) {
      const last = [...Array(3000).keys()].filter((i) => i % 50 === j).pop()!
      expect(db.getSync(`k${j}`)?.toString()).toBe(last % 7 === 0 ? undefined : `v${last}`)
    }
  })

  it('resolves writes in FIFO order', async () => {
    const { db } = await fresh()
    const order: number[] = []
    await Promise.all(Array.from({ length: 200 }, (_, i) => db.put(`k${i}`, 'x', { sync: i % 50 === 0 }).then(() => order.push(i))))
    expect(order).toEqual([...Array(200).keys()])
  })

  it('get sees writes issued before it, even before they resolve', async () => {
    const { db } = await fresh({ syncWrites: true })
    void db.put('a', '1')
    void db.batch([{ type: 'put', key: 'b', value: '2' }, { type: 'del', key: 'a' }])
    expect(await db.get('a')).toBeUndefined()
    expect((await db.get('b'))?.toString()).toBe('2')
  })

  it('get reads at the point in time of its call: earlier writes yes, later ones no', async () => {
    const { db } = await fresh({ syncWrites: true })
    void db.put('k', '1')
    const first = db.get('k')
    void db.put('k', '2')
    const entry = db.getEntry('k')
    void db.batch([{ type: 'put', key: 'k', value: '3', ifVersion: 999 }]).catch(() => undefined) // rejected: conflict
    const second = db.get('k')
    void db.put('k', '4')
    expect((await first)?.toString()).toBe('1')
    expect((await entry)?.value.toString()).toBe('2')
    expect((await second)?.toString()).toBe('2')
    expect((await db.get('k'))?.toString()).toBe('4')
  })

  it('shares one fsync among concurrent synced writers (group commit)', async () => {
    const { db } = await fresh({ syncWrites: true })
    await Promise.all(Array.from({ length: 500 }, (_, i) => db.put(`k${i}`, 'v')))
    const { syncs, writes } = db.stats().writes
    expect(writes).toBe(500)
    expect(syncs).toBeGreaterThan(0)
    expect(syncs).toBeLessThan(50)
  })

  it('rejects bad input before writing anything', async () => {
    const { db } = await fresh({ maxKeyBytes: 8, maxValueBytes: 16 })
    await db.put('keep', 'me')
    const bad: Array<[() => Promise<unknown>, string]> = [
      [() => db.put('', 'x'), 'STRATA_INVALID_ARGUMENT'],
      [() => db.put(42 as never, 'x'), 'STRATA_INVALID_ARGUMENT'],
      [() => db.put('k', null as never), 'STRATA_INVALID_ARGUMENT'],
      [() => db.put('123456789', 'x'), 'STRATA_TOO_LARGE'],
      [() => db.put('k', 'x'.repeat(17)), 'STRATA_TOO_LARGE'],
      [() => db.batch([{ type: 'put', key: 'ok', value: 'v' }, { type: 'put', key: 'k', value: 'x'.repeat(17) }]), 'STRATA_TOO_LARGE'],
      [() => db.batch([{ type: 'put', key: 'ok', value: 'v' }, { type: 'nope' } as never]), 'STRATA_INVALID_ARGUMENT'],
      [() => db.batch('x' as never), 'STRATA_INVALID_ARGUMENT'],
      [() => db.get({} as never), 'STRATA_INVALID_ARGUMENT'],
    ]
    for (const [call, code] of bad) await expect(call()).rejects.toMatchObject({ code })
    expect(await scan(db.iterator())).toEqual(['keep=me'])
    await db.close()
    await expect(db.put('a', 'b')).rejects.toMatchObject({ code: 'STRATA_NOT_OPEN' })
    expect(() => db.getSync('keep')).toThrow(expect.objectContaining({ code: 'STRATA_NOT_OPEN' }))
    expect(() => db.iterator()).toThrow(expect.objectContaining({ code: 'STRATA_NOT_OPEN' }))
  })

  it('copies caller buffers: mutating them after put changes nothing', async () => {
    const { db } = await fresh()
    const key = Buffer.from('key')
    const value = Buffer.from('value')
    const p = db.put(key, value)
    key.fill(0x41)
    value.fill(0x42)
    await p
    expect(db.getSync('key')?.toString()).toBe('value')
    const got = db.getSync('key')!
    got.fill(0)
    expect(db.getSync('key')?.toString()).toBe('value')
  })

  it('copies caller buffers of writes that wait in the queue (memtable full, flush pending)', async () => {
    const { db } = await fresh({ memtableBytes: 4096, autoCompaction: false })
    const key = Buffer.alloc(8)
    const value = Buffer.alloc(200)
    const pending: Promise<void>[] = []
    for (let i = 0; i < 500; i++) {
      // One buffer reused for every call: each write must keep the bytes it had when called.
      key.writeUInt32BE(i, 4)
      value.fill(i & 0xff)
      pending.push(db.put(key, value))
      if (i % 50 === 0) pending.push(db.batch([{ type: 'put', key, value }]))
    }
    await Promise.all(pending)
    expect(db.stats().writes.stalls).toBeGreaterThan(0) // some writes really waited in the queue
    for (let i = 0; i < 500; i++) {
      key.writeUInt32BE(i, 4)
      const got = db.getSync(key)
      expect(got?.length).toBe(200)
      expect(got?.every((b) => b === (i & 0xff))).toBe(true)
    }
  })
})

describe('close', () => {
  const files = (dir: string, ending: string): string[] => fs.readdirSync(dir).filter((f) => f.endsWith(ending))
  const walBytes = (dir: string): number => files(dir, '.log').reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0)

  it('flushes the memtable by default, so the next open replays nothing', async () => {
    const { db: first, dir } = await fresh()
    for (let i = 0; i < 100; i++) await first.put(`k${i}`, `v${i}`)
    await first.close()
    expect(walBytes(dir)).toBe(0)
    expect(files(dir, '.sst')).toHaveLength(1)
    // An empty memtable still holds its hash table (sized for memtableBytes): compare with one that never saw a write.
    const { db: empty } = await fresh()
    const emptyBytes = empty.stats().memtable.activeBytes
    await empty.close()
    db = await open(dir)
    expect(db.stats().memtable.activeBytes).toBe(emptyBytes) // nothing replayed
    expect(db.getSync('k42')?.toString()).toBe('v42')
    expect(await scan(db.iterator({ gte: 'k98' }))).toEqual(['k98=v98', 'k99=v99'])
  })

  it('with flushOnClose false leaves the writes in the WAL, and they are replayed', async () => {
    const { db: first, dir } = await fresh({ flushOnClose: false })
    for (let i = 0; i < 100; i++) await first.put(`k${i}`, `v${i}`)
    await first.close()
    expect(walBytes(dir)).toBeGreaterThan(0)
    expect(files(dir, '.sst')).toHaveLength(0)
    db = await open(dir)
    expect(db.getSync('k42')?.toString()).toBe('v42')
  })
})

describe('snapshots and iterators', () => {
  it('read one point in time while writes and flushes go on', async () => {
    const { db } = await fresh({ memtableBytes: 8 * 1024 })
    for (let i = 0; i < 300; i++) await db.put(`k${String(i).padStart(3, '0')}`, `a${i}`)
    const snap = db.snapshot()
    const it = db.iterator({ gte: 'k100', lt: 'k110' })
    const before = await scan(db.iterator())
    for (let i = 0; i < 300; i++) {
      if (i % 3 === 0) await db.delete(`k${String(i).padStart(3, '0')}`)
      else await db.put(`k${String(i).padStart(3, '0')}`, `b${i}`)
    }
    await db.put('new', 'x')
    expect(db.stats().writes.flushes).toBeGreaterThan(3)
    expect(await scan(snap.iterator())).toEqual(before)
    expect((await snap.get('k003'))?.toString()).toBe('a3')
    expect(snap.getSync('new')).toBeUndefined()
    expect(await scan(it)).toEqual(before.filter((e) => e >= 'k100' && e < 'k110'))
    expect((await db.get('k003'))).toBeUndefined()
    expect(db.getSync('k004')?.toString()).toBe('b4')
    snap.release()
    expect(() => snap.getSync('k003')).toThrow(expect.objectContaining({ code: 'STRATA_NOT_OPEN' }))
  })

  it('iterates with every bound combination, reverse and limit', async () => {
    const { db } = await fresh({ memtableBytes: 4096 })
    const keys = ['a', 'b', 'ba', 'bb', 'c', 'd']
    for (const k of keys) await db.put(k, k.toUpperCase())
    const keysOf = async (o: object): Promise<string> => (await scan(db.iterator(o))).map((e) => e.split('=')[0]).join(',')
    expect(await keysOf({})).toBe('a,b,ba,bb,c,d')
    expect(await keysOf({ gt: 'b', lte: 'c' })).toBe('ba,bb,c')
    expect(await keysOf({ gte: 'b', lt: 'c', reverse: true })).toBe('bb,ba,b')
    expect(await keysOf({ reverse: true, limit: 2 })).toBe('d,c')
    expect(await keysOf({ gt: 'z' })).toBe('')
    expect(await keysOf({ gte: 'c', lte: 'b' })).toBe('')
    expect(await keysOf({ limit: 0 })).toBe('')
  })

  it('seeks within bounds in both directions and iterates synchronously', async () => {
    const { db } = await fresh({ memtableBytes: 4096 })
    for (const k of ['a', 'c', 'e', 'g', 'i']) await db.put(k, k)
    const it = db.iterator({ gte: 'b', lt: 'i' })
    it.seek('d')
    expect(it.nextSync()?.[0].toString()).toBe('e')
    it.seek('a') // before the lower bound: clamps to it
    expect(it.nextSync()?.[0].toString()).toBe('c')
    it.seek('z') // past the upper bound: ends
    expect(it.nextSync()).toBeUndefined()
    const rev = db.iterator({ reverse: true, lte: 'g' })
    rev.seek('f')
    expect((await rev.next()).value?.[0].toString()).toBe('e')
    rev.seek('h')
    expect(rev.nextSync()?.[0].toString()).toBe('g')
    rev.close()
  })

  it('an open iterator keeps reading its memtables after they are flushed and their memory reused', async () => {
    // Flushed memtables hand their record memory to the next memtables; an
    // iterator opened before must still see the old bytes, not the new ones.
    const { db } = await fresh({ memtableBytes: 64 * 1024 })
    const key = (i: number): string => `k${String(i).padStart(4, '0')}`
    for (let i = 0; i < 200; i++) await db.put(key(i), `old-${String(i).padStart(4, '0')}`.repeat(8))
    const it = db.iterator()
    const seen: string[] = []
    for (let i = 0; i < 10; i++) seen.push(it.nextSync()!.join('='))
    const flushesBefore = db.stats().writes.flushes
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 200; i++) await db.put(key(i), `new-${String(round).padStart(4, '0')}`.repeat(8))
    }
    expect(db.stats().writes.flushes).toBeGreaterThan(flushesBefore + 5)
    // Flushed memtables' memory is kept for reuse, bounded by what the live memtables may hold
    // (plus one write group of overshoot and the iterator's pinned memtable).
    const memory = db.stats().memory
    expect(memory.recycledBytes).toBeGreaterThan(0)
    expect(memory.memtableBytes + memory.recycledBytes).toBeLessThanOrEqual(memory.budget.memtablesBytes * 1.25)
    for (let e = it.nextSync(); e !== undefined; e = it.nextSync()) seen.push(e.join('='))
    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => `${key(i)}=${`old-${String(i).padStart(4, '0')}`.repeat(8)}`))
    it.close()
    expect(db.getSync(key(7))?.toString()).toBe('new-0029'.repeat(8))
  })

  it('an open iterator keeps reading its table blocks while point reads churn the block cache', async () => {
    // Evicted blocks' buffers are reused for the next reads; the block an
    // iterator stands on must not be reused under it.
    const { db } = await fresh({ memtableBytes: 64 * 1024, blockCacheBytes: 16 * 1024 })
    const key = (i: number): string => `k${String(i).padStart(5, '0')}`
    const value = (i: number): string => `value-${i}-`.repeat(6)
    for (let i = 0; i < 3000; i++) await db.put(key(i), value(i))
    await db.compactRange()
    const it = db.iterator()
    const seen: string[] = []
    for (let round = 0; round < 60; round++) {
      for (let j = 0; j < 50; j++) {
        const e = it.nextSync()
        if (e !== undefined) seen.push(e.join('='))
      }
      // Random point reads between the iterator's steps read (and evict) other blocks.
      for (let r = 0; r < 40; r++) {
        const i = (round * 7919 + r * 104729) % 3000
        expect(db.getSync(key(i))?.toString()).toBe(value(i))
      }
    }
    for (let e = it.nextSync(); e !== undefined; e = it.nextSync()) seen.push(e.join('='))
    it.close()
    expect(seen).toEqual(Array.from({ length: 3000 }, (_, i) => `${key(i)}=${value(i)}`))
    expect(db.stats().blockCache.misses).toBeGreaterThan(1000)
  })

  it('an abandoned iterator can be closed early and releases its tables', async () => {
    const { db, dir } = await fresh({ memtableBytes: 4096 })
    for (let i = 0; i < 500; i++) await db.put(`k${i}`, 'v'.repeat(50))
    const it = db.iterator()
    const first = await it.next()
    expect(first.done).toBe(false)
    it.close()
    expect((await it.next()).done).toBe(true)
    expect(fs.readdirSync(dir).some((f) => f.endsWith('.sst'))).toBe(true)
  })
})

describe('directory lock', () => {
  it('refuses a second open in this process and in another process', async () => {
    const { dir } = await fresh()
    await expect(open(dir)).rejects.toMatchObject({ code: 'STRATA_LOCKED' })
    // A child process running the built package: must see STRATA_LOCKED.
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      const { open } = await import(${JSON.stringify(path.resolve('dist/index.js'))})
      try { await open(${JSON.stringify(dir)}); console.log('OPENED') } catch (e) { console.log(e.code) }
    `])
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    await new Promise((r) => child.on('exit', r))
    expect(out.trim()).toBe('STRATA_LOCKED')
  })

  it('takes over the lock of a killed process', async () => {
    const t = tempDir('strata-sem-')
    cleanup = t.cleanup
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      const { open } = await import(${JSON.stringify(path.resolve('dist/index.js'))})
      const db = await open(${JSON.stringify(t.dir)}); await db.put('k', 'v'); console.log('READY'); setInterval(() => {}, 1000)
    `])
    await new Promise<void>((resolve) => child.stdout.on('data', (d) => String(d).includes('READY') && resolve()))
    child.kill('SIGKILL')
    await new Promise((r) => child.on('exit', r))
    db = await open(t.dir)
    expect(db.getSync('k')?.toString()).toBe('v')
  })
})
