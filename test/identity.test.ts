/**
 * The directory's identity (the STRATADB marker): open() refuses a directory
 * that holds files but is not a stratadb database, before it writes anything
 * (no LOCK file, no marker, no deleted file); it creates the marker first in
 * an empty or missing directory, upgrades a previous-format database (no
 * marker) in place, and a fault while writing the marker never leaves a
 * directory that the next open cannot open or takes for a foreign one.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { open, StrataError, type Database } from '../src/index.js'
import { initChecksum } from '../src/base/checksum.js'
import { decodeMarker, encodeMarker, inspectDirectory } from '../src/engine/directory-identity.js'
import { FaultInjectingFileSystem, type Fault, type FileOp } from '../src/vfs/fault-injecting-file-system.js'
import { nodeFileSystem } from '../src/vfs/node-file-system.js'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-identity-'))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))
beforeAll(() => initChecksum())

let counter = 0
function newPath(name: string): string {
  return path.join(root, `${name}-${counter++}`)
}
function newDir(name: string): string {
  const dir = newPath(name)
  fs.mkdirSync(dir)
  return dir
}

const FIXTURE_V1 = path.join(import.meta.dirname, 'fixtures', 'format-v1')

/** Every name in `dir` (recursively) with a hash of its bytes: equal before and after means nothing was touched. */
function dirState(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (d: string, prefix: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) {
        out[`${prefix}${e.name}/`] = 'dir'
        walk(p, `${prefix}${e.name}/`)
      } else {
        out[prefix + e.name] = createHash('sha256').update(fs.readFileSync(p)).digest('hex')
      }
    }
  }
  walk(dir, '')
  return out
}

async function openFailure(dir: string, options?: Parameters<typeof open>[1]): Promise<StrataError> {
  try {
    const db = await open(dir, options)
    await db.close()
  } catch (err) {
    expect(err).toBeInstanceOf(StrataError)
    return err as StrataError
  }
  throw new Error(`open(${dir}) succeeded`)
}

function readMarker(dir: string): { version: number; id: string } {
  const file = path.join(dir, 'STRATADB')
  return decodeMarker(fs.readFileSync(file), file, dir)
}

/** Opens, checks a write round-trips, closes. */
async function usable(dir: string, options?: Parameters<typeof open>[1]): Promise<void> {
  const db: Database = await open(dir, options)
  await db.put('probe', 'ok')
  expect(db.getSync('probe')?.toString()).toBe('ok')
  await db.close()
}

/** A classic-level database with some keys, closed. */
async function classicLevelDir(): Promise<string> {
  const { ClassicLevel } = await import('classic-level')
  const dir = newPath('leveldb')
  const db = new ClassicLevel<string, string>(dir)
  await db.open()
  await db.batch(Array.from({ length: 500 }, (_, i) => ({ type: 'put' as const, key: `k${String(i).padStart(4, '0')}`, value: `value ${i}`.repeat(10) })))
  await db.put('last', 'one')
  await db.close()
  return dir
}

describe('a directory that is not a stratadb database is refused untouched', () => {
  it('a classic-level (LevelDB) directory: STRATA_NOT_A_DATABASE naming LevelDB and the README recipe; every byte and its LOCK kept', async () => {
    const dir = await classicLevelDir()
    const names = fs.readdirSync(dir)
    expect(names).toEqual(expect.arrayContaining(['CURRENT', 'LOCK', 'LOG']))
    expect(names.some((n) => /^MANIFEST-\d{6}$/.test(n))).toBe(true)
    const before = dirState(dir)
    for (const options of [undefined, { createIfMissing: false }, { errorIfExists: true }]) {
      const err = await openFailure(dir, options)
      expect(err.code).toBe('STRATA_NOT_A_DATABASE')
      expect(err.message).toMatch(/LevelDB\/classic-level/)
      expect(err.message).toMatch(/README\.md, "Copying a classic-level database"/)
      expect(dirState(dir)).toEqual(before)
    }
    // And classic-level still opens it, with its data.
    const { ClassicLevel } = await import('classic-level')
    const again = new ClassicLevel<string, string>(dir)
    await again.open()
    expect(await again.get('last')).toBe('one')
    expect((await again.keys().all()).length).toBe(501)
    await again.close()
  })

  it('a LevelDB directory is recognised by its manifest even without its LOG file', async () => {
    const dir = await classicLevelDir()
    for (const n of fs.readdirSync(dir)) if (n === 'LOG' || n === 'LOG.old') fs.rmSync(path.join(dir, n))
    const before = dirState(dir)
    const err = await openFailure(dir)
    expect(err.code).toBe('STRATA_NOT_A_DATABASE')
    expect(err.message).toMatch(/LevelDB\/classic-level/)
    expect(dirState(dir)).toEqual(before)
  })

  it('a classic-level directory that classic-level holds open: still STRATA_NOT_A_DATABASE (not STRATA_LOCKED), untouched', async () => {
    const dir = await classicLevelDir()
    const { ClassicLevel } = await import('classic-level')
    const held = new ClassicLevel<string, string>(dir)
    await held.open()
    try {
      const before = dirState(dir)
      const err = await openFailure(dir)
      expect(err.code).toBe('STRATA_NOT_A_DATABASE')
      expect(dirState(dir)).toEqual(before)
      expect(await held.get('last')).toBe('one')
    } finally {
      await held.close()
    }
  })

  it.each([
    ['some documents', { 'notes.txt': 'hello', 'photo.jpg': '\xff\xd8\xff', 'sub/inner.txt': 'x' }],
    ['one file with a stratadb-like name', { '000005.log': 'not a WAL' }],
    ['a CURRENT that names no manifest', { CURRENT: 'MANIFEST-000001\n' }],
    ['a stray LOCK next to a foreign file', { LOCK: '', 'data.bin': 'x' }],
  ])('a non-empty foreign directory (%s): STRATA_NOT_A_DATABASE, unchanged, no database created', async (_, files) => {
    const dir = newDir('foreign')
    for (const [name, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
      fs.writeFileSync(path.join(dir, name), text, 'latin1')
    }
    const before = dirState(dir)
    for (const options of [undefined, { createIfMissing: false }]) {
      const err = await openFailure(dir, options)
      expect(err.code).toBe('STRATA_NOT_A_DATABASE')
      expect(err.message).toMatch(/not a stratadb database/)
      expect(err.message).not.toMatch(/LevelDB/)
      expect(dirState(dir)).toEqual(before)
    }
  })
})

describe('creating, reopening, upgrading', () => {
  it('an empty directory and a missing one get a marker; a marked directory reopens with the same identity', async () => {
    for (const dir of [newDir('empty'), newPath('missing')]) {
      await usable(dir)
      const marker = readMarker(dir)
      expect(marker.version).toBe(1)
      expect(marker.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      const bytes = fs.readFileSync(path.join(dir, 'STRATADB'))
      const db = await open(dir)
      expect(db.getSync('probe')?.toString()).toBe('ok')
      await db.close()
      expect(fs.readFileSync(path.join(dir, 'STRATADB')).equals(bytes)).toBe(true)
    }
  })

  it('two databases get different ids', async () => {
    const a = newDir('id-a')
    const b = newDir('id-b')
    await usable(a)
    await usable(b)
    expect(readMarker(a).id).not.toBe(readMarker(b).id)
  })

  it('an empty directory with createIfMissing: false is STRATA_NOT_FOUND and gets no marker', async () => {
    const dir = newDir('no-create')
    const err = await openFailure(dir, { createIfMissing: false })
    expect(err.code).toBe('STRATA_NOT_FOUND')
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('a directory holding only stratadb leftovers (a stale LOCK, its temporary, a marker temporary) counts as empty', async () => {
    const dir = newDir('leftovers')
    const dead = spawnSync(process.execPath, ['-e', '']).pid!
    fs.writeFileSync(path.join(dir, 'LOCK'), `${dead}\n`)
    fs.writeFileSync(path.join(dir, `LOCK.${dead}.tmp`), `${dead}\n`)
    fs.writeFileSync(path.join(dir, 'STRATADB.tmp'), 'stratadb datab')
    expect(inspectDirectory(nodeFileSystem, dir)).toEqual({ kind: 'empty' })
    await usable(dir)
    expect(readMarker(dir).version).toBe(1)
    expect(fs.existsSync(path.join(dir, 'STRATADB.tmp'))).toBe(false)
  })

  it('a previous-format database (no marker) opens with its data, gets a marker, and keeps it', async () => {
    const dir = newPath('v1')
    fs.cpSync(FIXTURE_V1, dir, { recursive: true })
    expect(fs.existsSync(path.join(dir, 'STRATADB'))).toBe(false)
    expect(inspectDirectory(nodeFileSystem, dir)).toEqual({ kind: 'previous-format' })
    const db = await open(dir)
    expect(db.getSync('key00001')?.toString()).toBe('value-1-first')
    expect(db.getSync('key00003')?.toString()).toBe('value-3-second')
    expect(db.getSync('key00007')).toBeUndefined()
    await db.close()
    const { id } = readMarker(dir)
    const again = await open(dir, { createIfMissing: false })
    expect(again.getSync('key02997')?.toString()).toBe('value-2997-second')
    await again.close()
    expect(readMarker(dir).id).toBe(id)
  })

  it('a previous-format database opened with errorIfExists: STRATA_EXISTS, and no marker written', async () => {
    const dir = newPath('v1-exists')
    fs.cpSync(FIXTURE_V1, dir, { recursive: true })
    const err = await openFailure(dir, { errorIfExists: true })
    expect(err.code).toBe('STRATA_EXISTS')
    expect(fs.existsSync(path.join(dir, 'STRATADB'))).toBe(false)
  })
})

/** A closed database made by this version (with its marker). */
let dbTemplate = ''
beforeAll(async () => {
  dbTemplate = newDir('template')
  const db = await open(dbTemplate)
  await db.put('a', '1')
  await db.close()
})

describe('a damaged marker', () => {
  function copyOfTemplate(): string {
    const dir = newPath('damaged')
    fs.cpSync(dbTemplate, dir, { recursive: true })
    return dir
  }

  const damages: Array<[string, (buf: Buffer) => Buffer]> = [
    ['a flipped bit in the id', (b) => {
      const c = Buffer.from(b)
      c[c.indexOf('id ') + 5] ^= 0x01
      return c
    }],
    ['cut short', (b) => b.subarray(0, b.length - 4)],
    ['empty', () => Buffer.alloc(0)],
    ['zero-filled', (b) => Buffer.alloc(b.length)],
    ['a foreign file named STRATADB', () => Buffer.from('hello\n')],
  ]
  it.each(damages)('%s: STRATA_CORRUPTION, directory unchanged', async (_, damage) => {
    const dir = copyOfTemplate()
    const file = path.join(dir, 'STRATADB')
    fs.writeFileSync(file, damage(fs.readFileSync(file)))
    const before = dirState(dir)
    const err = await openFailure(dir)
    expect(err.code).toBe('STRATA_CORRUPTION')
    expect(err.message).toMatch(/STRATADB/)
    expect(dirState(dir)).toEqual(before)
  })

  it('a valid marker of a newer directory format: STRATA_NOT_A_DATABASE saying so, directory unchanged', async () => {
    const dir = copyOfTemplate()
    const file = path.join(dir, 'STRATADB')
    fs.writeFileSync(file, encodeMarker({ version: 2, id: readMarker(dir).id }))
    const before = dirState(dir)
    const err = await openFailure(dir)
    expect(err.code).toBe('STRATA_NOT_A_DATABASE')
    expect(err.message).toMatch(/newer stratadb \(directory format version 2/)
    expect(dirState(dir)).toEqual(before)
  })
})

describe('faults while creating leave a directory the next open opens or re-creates', () => {
  const ops: FileOp[] = ['open', 'write', 'sync', 'rename']
  const faults: Fault[] = ['EIO', 'ENOSPC', 'crash']
  const cases: Array<[string, FileOp, Fault, 'marker' | 'wal' | 'current']> = [
    ...ops.flatMap((op) => faults.map((fault): [string, FileOp, Fault, 'marker'] => [`${op}:marker ${fault}`, op, fault, 'marker'])),
    ['write:marker short-write', 'write', 'short-write', 'marker'],
    // After the marker: a marked directory without CURRENT is an unfinished create.
    ['open:wal crash', 'open', 'crash', 'wal'],
    ['rename:current crash', 'rename', 'crash', 'current'],
  ]
  it.each(cases)('%s', async (_, op, fault, fileClass) => {
    for (const missing of [false, true]) {
      const dir = missing ? newPath('fault-missing') : newDir('fault')
      const faulty = new FaultInjectingFileSystem(nodeFileSystem).inject({ op, fileClass, nth: 1, fault })
      await expect(open(dir, { fileSystem: faulty })).rejects.toThrow()
      expect(faulty.fired.map((f) => f.site)).toEqual([`${op}:${fileClass}`])
      // Never foreign-looking, never damaged: empty (only leftovers) or marked.
      const state = inspectDirectory(nodeFileSystem, dir)
      expect(['empty', 'marked']).toContain(state.kind)
      if (fileClass !== 'marker') expect(state.kind).toBe('marked')
      await usable(dir)
      expect(readMarker(dir).version).toBe(1)
      const db = await open(dir, { createIfMissing: false })
      expect(db.getSync('probe')?.toString()).toBe('ok')
      await db.close()
    }
  })
})
