/**
 * StrataLevel beyond what abstract-level's suite checks (test/level.test.ts):
 * error codes and causes, the key layout on disk, engine and classic-level
 * options, data that lives in tables rather than the memtable, clear() as
 * one atomic range delete (and chunked where it cannot be one), chunked
 * getMany(), and the examples of docs/level.md.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { Database, open, StrataError } from '../src/index.js'
import { StrataLevel, StrataLevelError } from '../src/level/index.js'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-level-'))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

let counter = 0
const newDir = (): string => path.join(root, `db-${counter++}`)

const opened: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  for (const db of opened.splice(0)) await db.close().catch(() => {})
  vi.restoreAllMocks()
})

/** A small database (1 MiB memtable unless told) that the test's teardown closes. */
function level<K = string, V = string>(
  dir = newDir(),
  options: ConstructorParameters<typeof StrataLevel<K, V>>[1] = {},
): StrataLevel<K, V> {
  const db = new StrataLevel<K, V>(dir, { memtableBytes: 1 << 20, blockCacheBytes: 1 << 20, ...options })
  opened.push(db)
  return db
}

/** Rejection of a promise (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error & { code?: string; cause?: unknown }> {
  try {
    await p
  } catch (err) {
    return err as Error & { code?: string; cause?: unknown }
  }
  throw new Error('expected a rejection')
}

const key = (i: number): string => `k${String(i).padStart(6, '0')}`

describe('errors carry Level codes with the StrataError as cause', () => {
  it('LEVEL_LOCKED when the directory is open in another instance', async () => {
    const dir = newDir()
    const a = level(dir)
    await a.open()
    const b = level(dir)
    const err = await rejection(b.open())
    expect(err.code).toBe('LEVEL_DATABASE_NOT_OPEN')
    const cause = err.cause as StrataLevelError
    expect(cause).toBeInstanceOf(StrataLevelError)
    expect(cause.code).toBe('LEVEL_LOCKED')
    expect(cause.cause).toBeInstanceOf(StrataError)
    expect((cause.cause as StrataError).code).toBe('STRATA_LOCKED')
    expect(b.status).toBe('closed')
    // Once the first instance closes, the second can open.
    await a.close()
    await b.open()
    expect(b.status).toBe('open')
  })

  it('createIfMissing: false on a missing or empty directory', async () => {
    for (const dir of [newDir(), fs.mkdtempSync(path.join(root, 'empty-'))]) {
      const db = level(dir, { createIfMissing: false })
      const err = await rejection(db.open())
      expect(err.code).toBe('LEVEL_DATABASE_NOT_OPEN')
      const cause = err.cause as StrataLevelError
      expect(cause.code).toBe('STRATA_NOT_FOUND')
      expect(cause.message).toMatch(/does not exist/)
      expect((cause.cause as StrataError).code).toBe('STRATA_NOT_FOUND')
    }
  })

  it('errorIfExists: true on an existing database', async () => {
    const dir = newDir()
    const db = level(dir)
    await db.put('a', '1')
    await db.close()
    const err = await rejection(db.open({ errorIfExists: true }))
    const cause = err.cause as StrataLevelError
    expect(cause.code).toBe('STRATA_EXISTS')
    expect(cause.message).toMatch(/exists/)
  })

  it('LEVEL_CORRUPTION when a table block is damaged', async () => {
    const dir = newDir()
    const db = level(dir)
    await db.batch(Array.from({ length: 2000 }, (_, i) => ({ type: 'put' as const, key: key(i), value: 'v'.repeat(50) })))
    await db.compactRange()
    await db.close()
    const tables = fs.readdirSync(dir).filter((f) => f.endsWith('.sst'))
    expect(tables.length).toBeGreaterThan(0)
    // Damage the first data block of every table (the size stays right, so open succeeds).
    for (const t of tables) {
      const fd = fs.openSync(path.join(dir, t), 'r+')
      fs.writeSync(fd, Buffer.from('garbage!'), 0, 8, 16)
      fs.closeSync(fd)
    }
    await db.open()
    const err = await rejection(db.get(key(0)))
    expect(err.code).toBe('LEVEL_CORRUPTION')
    expect((err.cause as StrataError).code).toBe('STRATA_CORRUPTION')
    const itErr = await rejection(db.iterator().all())
    expect(itErr.code).toBe('LEVEL_CORRUPTION')
  })

  it('keys and values over the size limits: LEVEL_INVALID_KEY / LEVEL_INVALID_VALUE', async () => {
    const db = level(newDir(), { maxKeyBytes: 10, maxValueBytes: 20 })
    // The limits apply to Level keys as configured: the key prefix is not counted.
    await db.put('k'.repeat(10), 'v'.repeat(20))
    expect(await db.get('k'.repeat(10))).toBe('v'.repeat(20))
    expect(await db.get(Buffer.alloc(10, 'k'), { keyEncoding: 'buffer' })).toBe('v'.repeat(20))

    const longKey = await rejection(db.put('k'.repeat(11), 'v'))
    expect(longKey.code).toBe('LEVEL_INVALID_KEY')
    expect((longKey.cause as StrataError).code).toBe('STRATA_TOO_LARGE')
    expect((await rejection(db.put('é'.repeat(6), 'v'))).code).toBe('LEVEL_INVALID_KEY') // 12 bytes
    expect((await rejection(db.put('k', 'v'.repeat(21)))).code).toBe('LEVEL_INVALID_VALUE')
    expect((await rejection(db.del('k'.repeat(11)))).code).toBe('LEVEL_INVALID_KEY')
    expect((await rejection(db.get('k'.repeat(11)))).code).toBe('LEVEL_INVALID_KEY')
    const inBatch = await rejection(
      db.batch([
        { type: 'put', key: 'ok', value: 'fine' },
        { type: 'put', key: 'ok2', value: 'v'.repeat(21) },
      ]),
    )
    expect(inBatch.code).toBe('LEVEL_INVALID_VALUE')
    // Nothing of a rejected batch was written.
    expect(await db.get('ok')).toBe(undefined)
  })

  it('a batch over maxBatchBytes keeps STRATA_TOO_LARGE', async () => {
    const db = level(newDir(), { maxBatchBytes: 1000 })
    const err = await rejection(
      db.batch(Array.from({ length: 20 }, (_, i) => ({ type: 'put' as const, key: key(i), value: 'v'.repeat(90) }))),
    )
    expect(err.code).toBe('STRATA_TOO_LARGE')
    expect(err).toBeInstanceOf(StrataLevelError)
  })

  it('an invalid stratadb option fails open with STRATA_INVALID_ARGUMENT', async () => {
    const db = level(newDir(), { memtableBytes: 12.5 })
    const err = await rejection(db.open())
    expect(err.code).toBe('LEVEL_DATABASE_NOT_OPEN')
    expect((err.cause as StrataLevelError).code).toBe('STRATA_INVALID_ARGUMENT')
  })

  it('a snapshot of another database is refused', async () => {
    const a = level()
    const b = level()
    await Promise.all([a.open(), b.open()])
    const snapshot = a.snapshot()
    await expect(b.get('x', { snapshot })).rejects.toThrow(TypeError)
    expect(() => b.iterator({ snapshot })).toThrow(TypeError)
    await snapshot.close()
  })
})

describe('key layout and options', () => {
  it('stores every key behind the 0x01 prefix, so the empty key works', async () => {
    const dir = newDir()
    const db = level(dir)
    await db.put('', 'empty')
    await db.put('a', 'A')
    await db.put(Buffer.from([0x00]), 'zero', { keyEncoding: 'buffer' })
    expect(await db.get('')).toBe('empty')
    expect(await db.keys({ keyEncoding: 'buffer' }).all()).toEqual([Buffer.from(''), Buffer.from([0]), Buffer.from('a')])
    await db.close()

    // The same directory through the native API: one prefix byte per key, values untouched.
    const native = await open(dir)
    try {
      const raw: string[] = []
      for await (const [k, v] of native.iterator()) raw.push(`${k.toString('hex')}=${v.toString()}`)
      expect(raw).toEqual(['01=empty', '0100=zero', '0161=A'])
    } finally {
      await native.close()
    }
  })

  it('keeps data across close and reopen (permanence), through tables and compaction', async () => {
    const dir = newDir()
    // A 64 KiB memtable: 5000 entries go through several flushes into tables.
    const db = level(dir, { memtableBytes: 64 << 10 })
    for (let i = 0; i < 5000; i += 500) {
      await db.batch(
        Array.from({ length: 500 }, (_, j) => ({ type: 'put' as const, key: key(i + j), value: `value-${i + j}` })),
      )
    }
    await db.del(key(42))
    await db.put('', 'empty')
    await db.close()
    await db.open()
    expect(await db.get(key(41))).toBe('value-41')
    expect(await db.get(key(42))).toBe(undefined)
    expect(await db.get('')).toBe('empty')
    expect(await db.keys().all()).toHaveLength(5000)

    await db.compactRange(key(0), key(2500))
    const it = db.iterator({ gte: key(100), lt: key(200), reverse: true })
    expect((await it.next())![0]).toBe(key(199))
    it.seek(key(150))
    expect(await it.nextv(3)).toEqual([
      [key(150), 'value-150'],
      [key(149), 'value-149'],
      [key(148), 'value-148'],
    ])
    await it.close()
    let n = 0
    for await (const [k] of db.iterator({ gte: key(4000) })) {
      expect(k).toBe(key(4000 + n))
      n++
    }
    expect(n).toBe(1000)
  })

  it('passes stratadb options through and maps classic-level tuning options', async () => {
    const dir = newDir()
    const db = level(dir, {
      cacheSize: 2 << 20,
      writeBufferSize: 128 << 10,
      blockSize: 8192,
      maxOpenFiles: 100,
      maxFileSize: 4 << 20,
      compression: true,
      syncWrites: true,
    } as ConstructorParameters<typeof StrataLevel>[1])
    await db.put('a', '1', { sync: true })
    await db.batch([{ type: 'put', key: 'b', value: '2' }], { sync: true })
    await db.del('zz', { sync: true })
    await db.batch().put('c', '3').write({ sync: true } as object)
    expect(await db.getMany(['a', 'b', 'c'])).toEqual(['1', '2', '3'])
  })

  it('forwards the sync write option to the engine', async () => {
    const db = level()
    await db.open()
    const put = vi.spyOn(Database.prototype, 'put')
    const batch = vi.spyOn(Database.prototype, 'batch')
    await db.put('a', '1', { sync: true })
    await db.put('b', '2')
    await db.batch().put('c', '3').write({ sync: true } as object)
    expect(put.mock.calls.map((c) => c[2])).toEqual([{ sync: true }, undefined])
    expect(batch.mock.calls.map((c) => c[1])).toEqual([{ sync: true }])
  })

  it('ignores options stratadb does not know', async () => {
    const db = level(newDir(), { someOtherImplementationOption: 1 } as object)
    await db.put('a', '1')
    expect(await db.get('a')).toBe('1')
  })

  it('reports a truthful manifest', () => {
    const db = level()
    expect(db.supports).toMatchObject({
      implicitSnapshots: true,
      explicitSnapshots: true,
      has: true,
      seek: true,
      permanence: true,
      createIfMissing: true,
      errorIfExists: true,
      additionalMethods: { compactRange: true },
    })
    expect((db.supports as unknown as { getSync: boolean }).getSync).toBe(true)
    expect(db.supports.encodings).toMatchObject({ buffer: true, view: true, utf8: true, json: true })
    expect(db.location).toMatch(/db-\d+$/)
  })
})

describe('reads', () => {
  it('get() reads at the moment of the call: a write issued after it is not seen', async () => {
    const db = level()
    await db.put('k', '1')
    const read = db.get('k')
    const write = db.put('k', '2')
    expect(await read).toBe('1')
    await write
    expect(await db.get('k')).toBe('2')
    expect(db.getSync('k')).toBe('2')
  })

  it('getMany() and hasMany() over many keys read one point in time', async () => {
    const db = level()
    const n = 3500
    await db.batch(Array.from({ length: n }, (_, i) => ({ type: 'put' as const, key: key(i), value: 'before' })))
    const keys = Array.from({ length: n + 1 }, (_, i) => key(i))
    const reading = db.getMany(keys)
    // Written while the read yields between chunks: must not show up.
    const writing = db.batch(keys.map((k) => ({ type: 'put' as const, key: k, value: 'after' })))
    const values = await reading
    await writing
    expect(values.slice(0, n).every((v) => v === 'before')).toBe(true)
    expect(values[n]).toBe(undefined)
    expect((await db.hasMany(keys)).every((x) => x)).toBe(true)

    const snapshot = db.snapshot()
    await db.clear()
    expect((await db.getMany(keys, { snapshot })).every((v) => v === 'after')).toBe(true)
    expect((await db.hasMany(keys)).some((x) => x)).toBe(false)
    await snapshot.close()
  })
})

/** The engine Database behind an open StrataLevel (caught as `this` of a read). */
function nativeOf(db: StrataLevel<unknown, unknown>): Database {
  const spy = vi.spyOn(Database.prototype, 'getSync')
  db.getSync('probe')
  const native = spy.mock.contexts[0] as Database
  spy.mockRestore()
  return native
}

const bytes = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))))

describe('clear()', () => {
  // Keys around every bound: the empty key, 0x00 and 0xff bytes, a key and its successor (k ++ 0x00), prefixes.
  const KEYS = [bytes(''), bytes([0]), bytes([0, 0]), bytes('a'), bytes('a', [0]), bytes('ab'), bytes('b'), bytes('b', [0xff]), bytes([0xff]), bytes([0xff, 0xff])]
  const BOUNDS = [bytes(''), bytes([0]), bytes('a'), bytes('a', [0]), bytes('ab'), bytes('b'), bytes([0xff]), bytes('c')]
  type Shape = { gt?: Buffer; gte?: Buffer; lt?: Buffer; lte?: Buffer }
  const inRange = (k: Buffer, r: Shape): boolean =>
    (r.gte !== undefined ? Buffer.compare(k, r.gte) >= 0 : r.gt === undefined || Buffer.compare(k, r.gt) > 0) &&
    (r.lte !== undefined ? Buffer.compare(k, r.lte) <= 0 : r.lt === undefined || Buffer.compare(k, r.lt) < 0)

  it('is one atomic range delete for every bound shape, deleting exactly the keys in range (against a model)', async () => {
    const db = level<Buffer, string>(newDir(), { keyEncoding: 'buffer' })
    await db.open()
    const lowers: Shape[] = [{}, ...BOUNDS.flatMap((b) => [{ gt: b }, { gte: b }])]
    const uppers: Shape[] = [{}, ...BOUNDS.flatMap((b) => [{ lt: b }, { lte: b }])]
    // gte wins over gt and lte over lt, as abstract-level specifies.
    const shapes: Shape[] = [...lowers.flatMap((lo) => uppers.map((hi) => ({ ...lo, ...hi }))), { gt: bytes('a'), gte: bytes('b') }, { lt: bytes('ab'), lte: bytes('a') }]
    const deleteRange = vi.spyOn(Database.prototype, 'deleteRange')
    const batch = vi.spyOn(Database.prototype, 'batch')
    let nonEmpty = 0
    for (const shape of shapes) {
      await db.batch(KEYS.map((key) => ({ type: 'put' as const, key, value: 'v' })))
      const expected = KEYS.filter((k) => !inRange(k, shape))
      if (expected.length < KEYS.length) nonEmpty++
      await db.clear({ ...shape })
      const left = await db.keys().all()
      expect(left.map((k) => k.toString('hex')), JSON.stringify(shape)).toEqual(expected.map((k) => k.toString('hex')))
    }
    // One deleteRange per clear whose range is not empty (an empty one writes nothing); no key-by-key deletes.
    expect(nonEmpty).toBeGreaterThan(100)
    expect(deleteRange.mock.calls.length).toBeGreaterThanOrEqual(nonEmpty)
    expect(deleteRange.mock.calls.length).toBeLessThanOrEqual(shapes.length)
    expect(batch.mock.calls.every((c) => c[0].every((op) => op.type === 'put'))).toBe(true)
  })

  it('maps bounds through the key encoding and the key prefix, and keeps the reserved namespace', async () => {
    const db = level<string, string>()
    await db.open()
    const native = nativeOf(db as StrataLevel<unknown, unknown>)
    // Engine keys outside [0x01, 0x02) are reserved for the adapter: clear() never touches them.
    await native.put(bytes([0x00], 'low'), 'reserved')
    await native.put(bytes([0x02], 'high'), 'reserved')
    await db.batch(['', 'a', 'b', 'c'].map((key) => ({ type: 'put' as const, key, value: 'v' })))
    const deleteRange = vi.spyOn(Database.prototype, 'deleteRange')
    await db.clear({ gt: 'a', lte: 'b' })
    expect(deleteRange.mock.calls[0]!.slice(0, 2)).toEqual([bytes([1], 'a', [0]), bytes([1], 'b', [0])])
    expect(await db.keys().all()).toEqual(['', 'a', 'c'])
    await db.clear()
    expect(deleteRange.mock.calls[1]!.slice(0, 2)).toEqual([bytes([1]), bytes([2])])
    expect(await db.keys().all()).toEqual([])
    expect(native.getSync(bytes([0x00], 'low'))?.toString()).toBe('reserved')
    expect(native.getSync(bytes([0x02], 'high'))?.toString()).toBe('reserved')

    // A sublevel's clear() is one range delete of its prefix (abstract-level prefixes the range, up to lte '!users"').
    const users = db.sublevel<string, unknown>('users', { valueEncoding: 'json' })
    await users.batch([{ type: 'put', key: 'u1', value: { n: 1 } }, { type: 'put', key: 'u2', value: { n: 2 } }])
    await db.put('!users#', 'after the sublevel')
    await users.clear({ gte: 'u2' })
    expect(await users.keys().all()).toEqual(['u1'])
    await users.clear()
    expect(deleteRange.mock.calls[3]!.slice(0, 2)).toEqual([bytes([1], '!users!'), bytes([1], '!users"', [0])])
    expect(await db.keys().all()).toEqual(['!users#'])
    // The sync option is forwarded, as for the other writes.
    await db.clear({ sync: true } as object)
    expect(deleteRange.mock.calls[4]![2]).toEqual({ sync: true })
  })

  it('is atomic: a concurrent reader sees the range whole or cleared, never in part', async () => {
    const db = level()
    const n = 5000
    await db.batch(Array.from({ length: n }, (_, i) => ({ type: 'put' as const, key: key(i), value: 'v' })))
    const before = db.iterator()
    const snapshot = db.snapshot()
    let done = false
    const clearing = db.clear().then(() => (done = true))
    // Between microtasks (the engine may commit without a turn of the event loop), and every
    // 100 microtasks a turn of the event loop: how many of a sample of keys across the range are there.
    // (The key-by-key path of a clear with a limit shows 50, 40, 30, 20, 10, 0 here.)
    const sample = Array.from({ length: 50 }, (_, i) => key(i * 100))
    const seen = new Set<number>()
    for (let step = 1; !done; step++) {
      seen.add(sample.filter((k) => db.getSync(k) !== undefined).length)
      await (step % 100 === 0 ? new Promise<void>((resolve) => setImmediate(resolve)) : Promise.resolve())
    }
    await clearing
    expect([...seen].filter((count) => count !== 0 && count !== sample.length)).toEqual([])
    expect(await db.keys().all()).toEqual([])
    expect(await before.all()).toHaveLength(n)
    expect(await db.keys({ snapshot }).all()).toHaveLength(n)
    await snapshot.close()
  })

  it('clears 100k keys with one write: exactly one delRange op in the change stream', async () => {
    const db = level()
    await db.open()
    const n = 100_000
    for (let i = 0; i < n; i += 5000) {
      await db.batch(Array.from({ length: 5000 }, (_, j) => ({ type: 'put' as const, key: key(i + j), value: 'value' })))
    }
    const native = nativeOf(db as StrataLevel<unknown, unknown>)
    const since = native.stats().lastSequence
    const batch = vi.spyOn(Database.prototype, 'batch')
    const del = vi.spyOn(Database.prototype, 'delete')
    await db.clear()
    expect(batch).not.toHaveBeenCalled()
    expect(del).not.toHaveBeenCalled()
    const ops: Array<{ type: string; key: string; end?: string }> = []
    for await (const b of native.changes({ since })) for (const op of b.ops) ops.push({ type: op.type, key: op.key.toString('hex'), end: op.end?.toString('hex') })
    expect(ops).toEqual([{ type: 'delRange', key: '01', end: '02' }])
    expect(native.stats().lastSequence).toBe(since + 1)
    expect(await db.keys().all()).toEqual([])
    expect(await db.get(key(n - 1))).toBe(undefined)
  })

  it('with a limit: walks the range and deletes in batches of at most 1000 keys', async () => {
    const db = level()
    const n = 2500
    await db.batch(Array.from({ length: n }, (_, i) => ({ type: 'put' as const, key: key(i), value: 'v' })))
    const batch = vi.spyOn(Database.prototype, 'batch')
    const deleteRange = vi.spyOn(Database.prototype, 'deleteRange')
    await db.clear({ limit: n })
    const sizes = batch.mock.calls.map((c) => (c[0] as unknown[]).length)
    expect(sizes).toEqual([1000, 1000, 500])
    expect(deleteRange).not.toHaveBeenCalled()
    expect(await db.keys().all()).toEqual([])
  })

  it('honours range, limit and reverse', async () => {
    const db = level()
    await db.batch(Array.from({ length: 3000 }, (_, i) => ({ type: 'put' as const, key: key(i), value: 'v' })))
    await db.clear({ gte: key(100), lt: key(2600), limit: 1200, reverse: true })
    // Reverse from key(2599) down, 1200 keys: key(1400) .. key(2599) are gone.
    const left = await db.keys().all()
    expect(left).toHaveLength(1800)
    expect(left.includes(key(1399))).toBe(true)
    expect(left.includes(key(1400))).toBe(false)
    expect(left.includes(key(2599))).toBe(false)
    expect(left.includes(key(2600))).toBe(true)
  })

  it('with an explicit snapshot: deletes only the keys the snapshot has, key by key', async () => {
    const db = level()
    await db.batch([{ type: 'put', key: 'a', value: '1' }, { type: 'put', key: 'b', value: '1' }])
    const snapshot = db.snapshot()
    await db.put('c', 'later')
    const deleteRange = vi.spyOn(Database.prototype, 'deleteRange')
    await db.clear({ snapshot })
    expect(deleteRange).not.toHaveBeenCalled()
    expect(await db.keys().all()).toEqual(['c'])
    await snapshot.close()
  })

  it('with a bound over maxKeyBytes: falls back to deleting key by key, still exactly the range', async () => {
    const db = level<Buffer, string>(newDir(), { keyEncoding: 'buffer', maxKeyBytes: 4 })
    await db.open()
    const keys = [bytes('abc'), bytes('abcd'), bytes('abce'), bytes('b'), bytes([0xff, 0xff, 0xff, 0xff])]
    const deleteRange = vi.spyOn(Database.prototype, 'deleteRange')
    const cases: Array<[Shape, boolean]> = [
      [{ gt: bytes('abcd') }, false], // gte would be 0x01 ++ abcd ++ 0x00: 6 bytes, over the engine's 5
      [{ gte: bytes('abcd') }, true],
      [{ lte: bytes('abcd') }, true], // lt 0x01 ++ abcd ++ 0x00: 6 bytes, allowed (maxKeyBytes + 1)
      [{ lt: bytes('abcde') }, true],
      [{ lte: bytes('abcde') }, false],
      [{ gte: bytes('abcde'), lt: bytes('b') }, false],
    ]
    for (const [shape, oneWrite] of cases) {
      deleteRange.mockClear()
      await db.batch(keys.map((key) => ({ type: 'put' as const, key, value: 'v' })))
      await db.clear({ ...shape })
      expect((await db.keys().all()).map((k) => k.toString('hex')), JSON.stringify(shape)).toEqual(keys.filter((k) => !inRange(k, shape)).map((k) => k.toString('hex')))
      expect(deleteRange.mock.calls.length, JSON.stringify(shape)).toBe(oneWrite ? 1 : 0)
    }
  })

  it('does not delete what is written after it started', async () => {
    const db = level()
    await db.batch(Array.from({ length: 2500 }, (_, i) => ({ type: 'put' as const, key: key(i), value: 'v' })))
    const clearing = db.clear()
    const late = db.put('zzz-late', 'kept')
    await Promise.all([clearing, late])
    expect(await db.keys().all()).toEqual(['zzz-late'])
  })
})

describe('close()', () => {
  it('waits for a clear() and a long getMany() underway', async () => {
    const db = level(newDir(), { memtableBytes: 64 << 10 })
    const keys = Array.from({ length: 5000 }, (_, i) => key(i))
    await db.batch(keys.map((k) => ({ type: 'put' as const, key: k, value: 'x'.repeat(100) })))
    const clearing = db.clear()
    const reading = db.getMany(keys)
    await db.close()
    await clearing
    expect((await reading).every((v) => v === 'x'.repeat(100))).toBe(true)
    await db.open()
    expect(await db.keys().all()).toEqual([])
  })
})

describe('docs/level.md examples', () => {
  it('sublevels with their own encodings, batched across sublevels, read at a snapshot', async () => {
    const db = level<string, unknown>(newDir(), { valueEncoding: 'json' })
    const users = db.sublevel<string, { name: string; email: string }>('users', { valueEncoding: 'json' })
    const byEmail = db.sublevel('by-email')

    await db.batch([
      { type: 'put', sublevel: users, key: 'u1', value: { name: 'Ada', email: 'ada@example.org' } },
      { type: 'put', sublevel: byEmail, key: 'ada@example.org', value: 'u1' },
    ])

    const snapshot = db.snapshot()
    const id = await byEmail.get('ada@example.org', { snapshot })
    expect(await users.get(id!, { snapshot })).toEqual({ name: 'Ada', email: 'ada@example.org' })
    await snapshot.close()

    const names: string[] = []
    for await (const [id, user] of users.iterator({ gte: 'u', limit: 100 })) names.push(`${id}:${user.name}`)
    expect(names).toEqual(['u1:Ada'])
    expect(await db.keys().all()).toEqual(['!by-email!ada@example.org', '!users!u1'])
    await users.clear()
    expect(await db.keys().all()).toEqual(['!by-email!ada@example.org'])
  })
})
