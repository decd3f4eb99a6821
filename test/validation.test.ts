/**
 * Argument and state validation of the public API. Every rejected call must
 * fail with its documented code, in the documented way (a rejected promise for
 * the async methods, a throw for the sync ones), and must leave the database
 * exactly as it was: same content, no sequence number used, no WAL byte
 * written, and the same content again after a reopen.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { open, StrataError, type Database } from '../src/index.js'

const dirs: string[] = []
const dbs: Database[] = []
afterEach(async () => {
  for (const db of dbs.splice(0)) await db.close()
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-validation-'))
  dirs.push(d)
  return d
}

const LIMITS = { maxKeyBytes: 16, maxValueBytes: 64, maxBatchBytes: 256, memtableBytes: 4096 }

/** A database with content in tables and in the memtable, so "nothing lost" covers both. */
async function seeded(): Promise<{ db: Database; dir: string; content: Array<[string, string]> }> {
  const dir = tempDir()
  const db = await open(dir, LIMITS)
  dbs.push(db)
  const content: Array<[string, string]> = []
  for (let i = 0; i < 40; i++) {
    const k = `key${String(i).padStart(2, '0')}`
    const v = `${k}:`.padEnd(60, '.')
    await db.put(k, v)
    content.push([k, v])
  }
  expect(db.stats().writes.flushes).toBeGreaterThan(0)
  return { db, dir, content }
}

async function scanAll(db: Database): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = []
  for await (const [k, v] of db.iterator()) out.push([k.toString(), v.toString()])
  return out
}

interface State {
  content: Array<[string, string]>
  lastSequence: number
  walBytes: number
  writes: number
}

async function state(db: Database): Promise<State> {
  const s = db.stats()
  return { content: await scanAll(db), lastSequence: s.lastSequence, walBytes: s.writes.walBytes, writes: s.writes.writes }
}

/**
 * Calls `fn` and reports how it failed. `sync` tells whether it threw
 * synchronously or returned a rejected promise: the API promises one or the
 * other per method, and callers write their error handling accordingly.
 */
async function failure(fn: () => unknown): Promise<{ sync: boolean; error: unknown }> {
  let result: unknown
  try {
    result = fn()
  } catch (error) {
    return { sync: true, error }
  }
  if (!(result instanceof Promise)) return { sync: true, error: new Error(`returned ${String(result)} instead of failing`) }
  try {
    const v = await result
    return { sync: false, error: new Error(`resolved with ${String(v)} instead of failing`) }
  } catch (error) {
    return { sync: false, error }
  }
}

type Mode = 'async' | 'sync'

async function expectFailure(fn: () => unknown, code: string, mode: Mode, label: string): Promise<void> {
  const { sync, error } = await failure(fn)
  expect(error, label).toBeInstanceOf(StrataError)
  expect((error as StrataError).code, label).toBe(code)
  expect(sync ? 'sync' : 'async', `${label}: failed the wrong way`).toBe(mode)
}

/** Values that are not a string or a Uint8Array. */
const NOT_BYTES: Array<[string, unknown]> = [
  ['a number', 42],
  ['null', null],
  ['undefined', undefined],
  ['a plain object', { length: 1, 0: 97 }],
  ['an array of bytes', [97, 98]],
  ['a boolean', true],
  ['a bigint', 1n],
  ['a Uint16Array', new Uint16Array([97])],
  ['an ArrayBuffer', new ArrayBuffer(2)],
]
const EMPTY_KEYS: Array<[string, unknown]> = [
  ['an empty string', ''],
  ['an empty Buffer', Buffer.alloc(0)],
  ['an empty Uint8Array', new Uint8Array(0)],
]

describe('rejected calls leave the database unchanged', () => {
  it('keys that are not bytes, or empty, in every method that takes a key', async () => {
    const { db, dir, content } = await seeded()
    const before = await state(db)
    const snap = db.snapshot()
    const cases: Array<[string, unknown, string]> = [
      ...NOT_BYTES.map(([n, v]): [string, unknown, string] => [n, v, 'STRATA_INVALID_ARGUMENT']),
      ...EMPTY_KEYS.map(([n, v]): [string, unknown, string] => [n, v, 'STRATA_INVALID_ARGUMENT']),
    ]
    for (const [name, key, code] of cases) {
      const k = key as string
      await expectFailure(() => db.put(k, 'v'), code, 'async', `put with ${name} as key`)
      await expectFailure(() => db.delete(k), code, 'async', `delete with ${name} as key`)
      await expectFailure(() => db.get(k), code, 'async', `get with ${name} as key`)
      await expectFailure(() => db.getSync(k), code, 'sync', `getSync with ${name} as key`)
      await expectFailure(() => snap.get(k), code, 'async', `snapshot get with ${name} as key`)
      await expectFailure(() => snap.getSync(k), code, 'sync', `snapshot getSync with ${name} as key`)
      // The bad op sits between valid ones: a batch is validated whole before any of it is applied.
      await expectFailure(
        () => db.batch([{ type: 'put', key: 'new1', value: 'x' }, { type: 'put', key: k, value: 'v' }, { type: 'del', key: 'key00' }]),
        code,
        'async',
        `batch put with ${name} as key`,
      )
      await expectFailure(() => db.batch([{ type: 'del', key: 'key01' }, { type: 'del', key: k }]), code, 'async', `batch del with ${name} as key`)
      expect(await state(db), `after ${name} as key`).toEqual(before)
    }
    snap.release()
    await db.close()
    const again = await open(dir, LIMITS)
    dbs.push(again)
    expect(await scanAll(again)).toEqual(content)
  })

  it('values that are not bytes, in put and batch', async () => {
    const { db } = await seeded()
    const before = await state(db)
    for (const [name, value] of NOT_BYTES) {
      const v = value as string
      await expectFailure(() => db.put('key00', v), 'STRATA_INVALID_ARGUMENT', 'async', `put with ${name} as value`)
      await expectFailure(
        () => db.batch([{ type: 'del', key: 'key00' }, { type: 'put', key: 'key01', value: v }]),
        'STRATA_INVALID_ARGUMENT',
        'async',
        `batch with ${name} as value`,
      )
      expect(await state(db), `after ${name} as value`).toEqual(before)
    }
  })

  it('malformed batches', async () => {
    const { db } = await seeded()
    const before = await state(db)
    const batches: Array<[string, unknown]> = [
      ['a string', 'put k v'],
      ['null', null],
      ['an object', { type: 'put', key: 'k', value: 'v' }],
      ['a null op', [{ type: 'put', key: 'new', value: 'v' }, null]],
      ['an op of type "delete"', [{ type: 'put', key: 'new', value: 'v' }, { type: 'delete', key: 'key00' }]],
      ['an op without type', [{ key: 'key00', value: 'v' }]],
      ['a string op', ['key00']],
    ]
    for (const [name, ops] of batches) {
      await expectFailure(() => db.batch(ops as never), 'STRATA_INVALID_ARGUMENT', 'async', `batch of ${name}`)
      expect(await state(db), `after batch of ${name}`).toEqual(before)
    }
  })

  it('sizes over the limits: keys and values in bytes (not characters), whole batches', async () => {
    const { db } = await seeded()
    const before = await state(db)
    const longKey = 'k'.repeat(LIMITS.maxKeyBytes + 1)
    // Six characters, 18 UTF-8 bytes: over a 16-byte limit although shorter in characters.
    const wideKey = '€'.repeat(6)
    const bigValue = Buffer.alloc(LIMITS.maxValueBytes + 1, 0x61)
    const cases: Array<[string, () => unknown, Mode]> = [
      ['put with a long key', () => db.put(longKey, 'v'), 'async'],
      ['put with a multi-byte key', () => db.put(wideKey, 'v'), 'async'],
      ['delete with a long key', () => db.delete(longKey), 'async'],
      ['get with a long key', () => db.get(longKey), 'async'],
      ['getSync with a long key', () => db.getSync(wideKey), 'sync'],
      ['put with a long value', () => db.put('key00', bigValue), 'async'],
      ['put with a long string value', () => db.put('key00', 'é'.repeat(33)), 'async'],
      ['batch holding one long value', () => db.batch([{ type: 'put', key: 'a', value: 'x' }, { type: 'put', key: 'b', value: bigValue }]), 'async'],
      ['batch with a long key', () => db.batch([{ type: 'del', key: 'key00' }, { type: 'del', key: longKey }]), 'async'],
      [
        // Every op is within the limits; the batch as a whole is not.
        'batch over maxBatchBytes',
        () => db.batch(Array.from({ length: 6 }, (_, i) => ({ type: 'put' as const, key: `key0${i}`, value: 'z'.repeat(60) }))),
        'async',
      ],
    ]
    for (const [label, fn, mode] of cases) {
      await expectFailure(fn, 'STRATA_TOO_LARGE', mode, label)
      expect(await state(db), `after ${label}`).toEqual(before)
    }
    // The limits are inclusive: exactly at the limit is accepted.
    await db.put('k'.repeat(LIMITS.maxKeyBytes), Buffer.alloc(LIMITS.maxValueBytes, 0x62))
    expect((await db.get('k'.repeat(LIMITS.maxKeyBytes)))?.equals(Buffer.alloc(LIMITS.maxValueBytes, 0x62))).toBe(true)
  })

  it('bad write options and iterator options', async () => {
    const { db } = await seeded()
    const before = await state(db)
    const cases: Array<[string, () => unknown, Mode]> = [
      ['put with sync: "yes"', () => db.put('key00', 'v', { sync: 'yes' } as never), 'async'],
      ['put with a string as options', () => db.put('key00', 'v', 'sync' as never), 'async'],
      ['delete with null options', () => db.delete('key00', null as never), 'async'],
      ['batch with sync: 1', () => db.batch([{ type: 'del', key: 'key00' }], { sync: 1 } as never), 'async'],
      ['iterator with limit -2', () => db.iterator({ limit: -2 }), 'sync'],
      ['iterator with limit 1.5', () => db.iterator({ limit: 1.5 }), 'sync'],
      ['iterator with limit "3"', () => db.iterator({ limit: '3' } as never), 'sync'],
      ['iterator with reverse: "yes"', () => db.iterator({ reverse: 'yes' } as never), 'sync'],
      ['iterator with a string as options', () => db.iterator('a' as never), 'sync'],
      ['iterator with null options', () => db.iterator(null as never), 'sync'],
      ['iterator with a number bound', () => db.iterator({ gt: 5 } as never), 'sync'],
      ['iterator with a null bound', () => db.iterator({ lte: null } as never), 'sync'],
    ]
    for (const [label, fn, mode] of cases) {
      await expectFailure(fn, 'STRATA_INVALID_ARGUMENT', mode, label)
      expect(await state(db), `after ${label}`).toEqual(before)
    }
  })
})

describe('open state', () => {
  it('every method fails with STRATA_NOT_OPEN after close, close is idempotent, and the data is kept', async () => {
    const { db, dir, content } = await seeded()
    const snap = db.snapshot()
    await db.close()
    expect(db.isOpen).toBe(false)
    await db.close()
    const cases: Array<[string, () => unknown, Mode]> = [
      ['put', () => db.put('new', 'v'), 'async'],
      ['delete', () => db.delete('key00'), 'async'],
      ['batch', () => db.batch([{ type: 'put', key: 'new', value: 'v' }]), 'async'],
      ['get', () => db.get('key00'), 'async'],
      ['getSync', () => db.getSync('key00'), 'sync'],
      ['iterator', () => db.iterator(), 'sync'],
      ['snapshot', () => db.snapshot(), 'sync'],
      ['stats', () => db.stats(), 'sync'],
      ['get of a snapshot taken before close', () => snap.get('key00'), 'async'],
      ['getSync of a snapshot taken before close', () => snap.getSync('key00'), 'sync'],
      ['iterator of a snapshot taken before close', () => snap.iterator(), 'sync'],
    ]
    for (const [label, fn, mode] of cases) await expectFailure(fn, 'STRATA_NOT_OPEN', mode, `${label} after close`)
    snap.release()
    const again = await open(dir, LIMITS)
    dbs.push(again)
    expect(await scanAll(again)).toEqual(content)
    expect(again.getSync('new')).toBeUndefined()
  })

  it('a released snapshot fails with STRATA_NOT_OPEN; release is idempotent; other snapshots keep working', async () => {
    const { db } = await seeded()
    const a = db.snapshot()
    const b = db.snapshot() // same sequence as a
    await db.put('key00', 'changed')
    a.release()
    a.release()
    await expectFailure(() => a.get('key00'), 'STRATA_NOT_OPEN', 'async', 'get of a released snapshot')
    await expectFailure(() => a.getSync('key00'), 'STRATA_NOT_OPEN', 'sync', 'getSync of a released snapshot')
    await expectFailure(() => a.iterator(), 'STRATA_NOT_OPEN', 'sync', 'iterator of a released snapshot')
    expect((await b.get('key00'))?.toString()).toBe('key00:'.padEnd(60, '.'))
    b.release()
    expect(db.getSync('key00')?.toString()).toBe('changed')
  })

  it('a second open of the same directory in this process fails with STRATA_LOCKED and disturbs nothing', async () => {
    const { db, dir, content } = await seeded()
    const link = path.join(tempDir(), 'link')
    fs.symlinkSync(dir, link)
    // The same directory under other spellings is still the same database.
    for (const spelling of [dir, `${dir}/`, `${dir}/./../${path.basename(dir)}`, link]) {
      await expectFailure(() => open(spelling, LIMITS), 'STRATA_LOCKED', 'async', `second open as ${spelling}`)
    }
    // The rejected opens must not have taken, released or damaged anything of the first one.
    expect(fs.readFileSync(path.join(dir, 'LOCK'), 'utf8').split('\n')[0]).toBe(String(process.pid))
    await db.put('after', 'lock attempts')
    expect((await db.get('after'))?.toString()).toBe('lock attempts')
    await db.close()
    const again = await open(dir, LIMITS)
    dbs.push(again)
    expect(await scanAll(again)).toEqual([...content, ['after', 'lock attempts']].sort(([x], [y]) => (x < y ? -1 : 1)))
  })

  it('bad open arguments fail with STRATA_INVALID_ARGUMENT and create nothing', async () => {
    const parent = tempDir()
    const target = path.join(parent, 'db')
    const cases: Array<[string, () => Promise<unknown>]> = [
      ['memtableBytes below its minimum', () => open(target, { memtableBytes: 1024 })],
      ['a non-integer size', () => open(target, { blockBytes: 1000.5 })],
      ['a size given as a string', () => open(target, { blockBytes: '4096' } as never)],
      ['an unknown option', () => open(target, { memtableSize: 65536 } as never)],
      ['options that are not an object', () => open(target, 'fast' as never)],
      ['an empty directory name', () => open('')],
      ['a directory name that is not a string', () => open(42 as never)],
    ]
    for (const [label, fn] of cases) {
      await expectFailure(fn, 'STRATA_INVALID_ARGUMENT', 'async', label)
      expect(fs.existsSync(target), `${label}: created the directory`).toBe(false)
    }
  })
})

describe('buffers handed out and taken in are not shared', () => {
  it('mutating returned keys and values, or input buffers after the call, changes nothing stored', async () => {
    const { db } = await seeded()
    const input = Buffer.from('original value')
    const key = Buffer.from('mutable-key')
    const pending = db.put(key, input)
    input.fill(0x21)
    key.fill(0x21)
    await pending
    const got = await db.get('mutable-key')
    expect(got?.toString()).toBe('original value')
    got!.fill(0x3f)
    db.getSync('mutable-key')!.fill(0x3f)
    for await (const [k, v] of db.iterator({ gte: 'mutable' })) {
      k.fill(0x3f)
      v.fill(0x3f)
    }
    expect(db.getSync('mutable-key')?.toString()).toBe('original value')
    expect((await scanAll(db)).find(([k]) => k === 'mutable-key')).toEqual(['mutable-key', 'original value'])
  })
})

describe('strings must be well-formed UTF-16', () => {
  // UTF-8 encoding turns every lone surrogate into U+FFFD (EF BF BD): without the
  // check, '\uD800' and '\uDBFF' (and '\uFFFD' itself) would all address one entry.
  const ILL_FORMED: Array<[string, string]> = [
    ['a lone high surrogate', '\uD800'],
    ['a lone low surrogate inside', 'a\uDC00b'],
    ['a high surrogate at the end', 'x\uD83D'],
    ['a pair in the wrong order', '\uDE00\uD83D'],
  ]

  it('a key, value or bound with a lone surrogate is STRATA_INVALID_ARGUMENT everywhere, and writes nothing', async () => {
    const { db, dir, content } = await seeded()
    const before = await state(db)
    const snap = db.snapshot()
    for (const [name, s] of ILL_FORMED) {
      const cases: Array<[string, () => unknown, Mode]> = [
        ['put key', () => db.put(s, 'v'), 'async'],
        ['put value', () => db.put('key00', s), 'async'],
        ['delete key', () => db.delete(s), 'async'],
        ['get key', () => db.get(s), 'async'],
        ['getSync key', () => db.getSync(s), 'sync'],
        ['getEntry key', () => db.getEntry(s), 'async'],
        ['snapshot get key', () => snap.get(s), 'async'],
        ['batch put key', () => db.batch([{ type: 'put', key: 'new1', value: 'x' }, { type: 'put', key: s, value: 'v' }]), 'async'],
        ['batch put value', () => db.batch([{ type: 'del', key: 'key00' }, { type: 'put', key: 'key01', value: s }]), 'async'],
        ['batch del key', () => db.batch([{ type: 'del', key: 'key00' }, { type: 'del', key: s }]), 'async'],
        ['batch check key', () => db.batch([{ type: 'del', key: 'key00' }, { type: 'check', key: s, ifVersion: 0 }]), 'async'],
        ['iterator gt', () => db.iterator({ gt: s }), 'sync'],
        ['iterator gte', () => db.iterator({ gte: s }), 'sync'],
        ['iterator lt', () => db.iterator({ lt: s }), 'sync'],
        ['iterator lte', () => db.iterator({ lte: s }), 'sync'],
        ['snapshot iterator bound', () => snap.iterator({ gte: s }), 'sync'],
        ['iterator seek', () => db.iterator().seek(s), 'sync'],
        ['compactRange start', () => db.compactRange(s), 'async'],
        ['compactRange end', () => db.compactRange('a', s), 'async'],
        ['transaction put key', () => db.transaction((tx) => tx.put(s, 'v')), 'async'],
        ['transaction put value', () => db.transaction((tx) => tx.put('key00', s)), 'async'],
        ['transaction delete key', () => db.transaction((tx) => tx.delete(s)), 'async'],
        ['transaction get key', () => db.transaction((tx) => tx.get(s)), 'async'],
        [
          'transaction iterator bound',
          () =>
            db.transaction(async (tx) => {
              for await (const _ of tx.iterator({ lt: s })) break
            }),
          'async',
        ],
      ]
      for (const [label, fn, mode] of cases) {
        await expectFailure(fn, 'STRATA_INVALID_ARGUMENT', mode, `${label} with ${name}`)
      }
      expect(await state(db), `after ${name}`).toEqual(before)
    }
    const { error } = await failure(() => db.put('a\uDC00b', 'v'))
    expect((error as Error).message).toMatch(/well-formed.*U\+DC00 at index 1/)
    snap.release()
    await db.close()
    const again = await open(dir, LIMITS)
    dbs.push(again)
    expect(await scanAll(again)).toEqual(content)
  })

  it('two different lone surrogates no longer address one entry (nor U+FFFD)', async () => {
    const db = await open(tempDir(), LIMITS)
    dbs.push(db)
    await expectFailure(() => db.put('\uD800', 'first'), 'STRATA_INVALID_ARGUMENT', 'async', 'put \\uD800')
    await expectFailure(() => db.put('\uDBFF', 'second'), 'STRATA_INVALID_ARGUMENT', 'async', 'put \\uDBFF')
    // The replacement character itself is well-formed and its own key.
    await db.put('\uFFFD', 'replacement')
    await expectFailure(() => db.get('\uD800'), 'STRATA_INVALID_ARGUMENT', 'async', 'get \\uD800')
    expect((await db.get('\uFFFD'))?.toString()).toBe('replacement')
    expect(await scanAll(db)).toEqual([['\uFFFD', 'replacement']])
  })

  it('well-formed astral characters (surrogate pairs) are accepted as keys, values, bounds and in transactions', async () => {
    const db = await open(tempDir(), LIMITS)
    dbs.push(db)
    await db.put('😀', 'grin 😀')
    expect(db.getSync(Buffer.from([0xf0, 0x9f, 0x98, 0x80]))?.toString()).toBe('grin 😀')
    await db.batch([{ type: 'put', key: 'a😀', value: '😀😀' }])
    await db.transaction((tx) => tx.put('😀b', '𝄞'))
    const seen: string[] = []
    for await (const [k] of db.iterator({ gte: '😀', lte: '😀b' })) seen.push(k.toString())
    expect(seen).toEqual(['😀', '😀b'])
    expect((await db.get('a😀'))?.toString()).toBe('😀😀')
    expect((await db.get('😀b'))?.toString()).toBe('𝄞')
  })
})
