/**
 * The commands of `strata` that open a database (stats, compact, checkpoint,
 * get, put, del, scan), run as real processes against real directories:
 * what they print, their exit codes (0 done, 1 failed / not found, 2 usage),
 * that reading ones work beside a process holding the database open, and
 * that writing ones refuse it with a hint instead of waiting or breaking it.
 */
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { open } from '../src/index.js'

const CLI = path.join(import.meta.dirname, '..', 'dist', 'cli', 'strata.js')
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-cli-db-'))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))
let counter = 0
const newDir = (): string => path.join(root, `db-${counter++}`)

interface Run {
  status: number | null
  stdout: string
  stderr: string
}

function strata(args: string[], input?: string): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000, input })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** The same, without blocking this process's event loop (a database is open in it). */
function strataAsync(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}

async function filled(entries: number): Promise<string> {
  const dir = newDir()
  const db = await open(dir, { memtableBytes: 16 << 10 })
  for (let i = 0; i < entries; i++) await db.put(`key${String(i).padStart(4, '0')}`, `value-${i}`)
  await db.put(Buffer.from([0xff, 0x00]), Buffer.from([1, 2, 3]))
  await db.close()
  return dir
}

describe('strata get, put, del, scan', () => {
  it('put then get round-trips text, bytes (0x…) and stdin; get of a missing key exits 1', async () => {
    const dir = await filled(10)
    expect(strata(['put', dir, 'greeting', 'hello']).status).toBe(0)
    const got = strata(['get', dir, 'greeting'])
    expect(got).toMatchObject({ status: 0, stdout: 'hello' })
    expect(strata(['put', dir, '0x0001', '0xdeadbeef']).status).toBe(0)
    const json = JSON.parse(strata(['get', dir, '0x0001', '--json']).stdout)
    expect(json).toMatchObject({ key: '0001', keyEncoding: 'hex', value: 'deadbeef', valueEncoding: 'hex' })
    expect(json.version).toBeGreaterThan(0)
    expect(strata(['put', dir, 'from-stdin'], 'piped value').status).toBe(0)
    expect(strata(['get', dir, 'from-stdin']).stdout).toBe('piped value')

    const missing = strata(['get', dir, 'nope'])
    expect(missing.status).toBe(1)
    expect(missing.stderr).toContain('not found')

    expect(strata(['del', dir, 'greeting']).status).toBe(0)
    expect(strata(['get', dir, 'greeting']).status).toBe(1)

    const db = await open(dir)
    expect(db.getSync('from-stdin')?.toString()).toBe('piped value')
    expect(db.getSync(Buffer.from([0, 1]))).toEqual(Buffer.from([0xde, 0xad, 0xbe, 0xef]))
    await db.close()
  })

  it('scan: --prefix, --limit, --reverse, --keys-only, --json, and bytes shown as hex', async () => {
    const dir = await filled(30)
    const prefixed = strata(['scan', dir, '--prefix', 'key001'])
    expect(prefixed.status).toBe(0)
    expect(prefixed.stdout.trim().split('\n')).toEqual(Array.from({ length: 10 }, (_, i) => `"key001${i}"\t"value-${10 + i}"`))
    const reversed = strata(['scan', dir, '--reverse', '--limit', '2', '--keys-only'])
    expect(reversed.stdout.trim().split('\n')).toEqual(['0xff00', '"key0029"'])
    const lines = strata(['scan', dir, '--gte', 'key0028', '--json']).stdout.trim().split('\n').map((l) => JSON.parse(l))
    expect(lines).toEqual([
      { key: 'key0028', keyEncoding: 'utf8', value: 'value-28', valueEncoding: 'utf8' },
      { key: 'key0029', keyEncoding: 'utf8', value: 'value-29', valueEncoding: 'utf8' },
      { key: 'ff00', keyEncoding: 'hex', value: '010203', valueEncoding: 'hex' },
    ])
    // A prefix of 0xff bytes has no upper bound: everything from it on.
    expect(strata(['scan', dir, '--prefix', '0xff', '--keys-only']).stdout.trim()).toBe('0xff00')
  })

  it('usage errors exit 2: missing arguments, bad numbers, conflicting options, a missing directory', async () => {
    const dir = await filled(1)
    for (const args of [['scan'], ['get', dir], ['scan', dir, '--limit', 'x'], ['scan', dir, '--prefix', 'a', '--gte', 'b'], ['get', path.join(root, 'absent'), 'k'], ['stats', path.join(root, 'absent')]]) {
      const r = strata(args)
      expect(r.status, args.join(' ')).toBe(2)
      expect(r.stderr.length, args.join(' ')).toBeGreaterThan(0)
    }
    expect(fs.existsSync(path.join(root, 'absent'))).toBe(false)
    expect(strata(['scan', '--help']).status).toBe(0)
  })
})

describe('strata stats, compact, checkpoint', () => {
  it('stats prints the levels; --json is stats() as JSON', async () => {
    const dir = await filled(500)
    const text = strata(['stats', dir])
    expect(text.status).toBe(0)
    expect(text.stdout).toMatch(/last sequence: 501/)
    expect(text.stdout).toMatch(/L0: \d+ table/)
    const json = JSON.parse(strata(['stats', dir, '--json']).stdout)
    expect(json.lastSequence).toBe(501)
    expect(json.levels[0].tables).toBeGreaterThan(1)
  })

  it('compact moves every table out of L0; checkpoint makes a copy that opens with the same contents', async () => {
    const dir = await filled(500)
    const compacted = JSON.parse(strata(['compact', dir, '--json']).stdout)
    expect(compacted.before[0].tables).toBeGreaterThan(1)
    expect(compacted.after[0].tables).toBe(0)
    const to = path.join(root, `cp-${counter++}`)
    const cp = strata(['checkpoint', dir, to, '--json'])
    expect(cp.status).toBe(0)
    const result = JSON.parse(cp.stdout)
    expect(result.sequence).toBe(501)
    const [a, b] = [await open(dir, { readOnly: true }), await open(to, { readOnly: true })]
    const all = async (db: typeof a): Promise<string[]> => {
      const out: string[] = []
      for await (const [k, v] of db.iterator()) out.push(`${k.toString('hex')}=${v.toString('hex')}`)
      return out
    }
    expect(await all(b)).toEqual(await all(a))
    expect((await all(a)).length).toBe(501)
    await a.close()
    await b.close()
    // The target must not exist.
    const again = strata(['checkpoint', dir, to])
    expect(again.status).toBe(1)
    expect(again.stderr).toContain('already exists')
  })
})

describe('beside a process that has the database open', () => {
  it('reading commands work (read-only, no lock); writing ones exit 1 with a hint and change nothing', async () => {
    const dir = await filled(50)
    const db = await open(dir)
    try {
      await db.put('live', 'written by the owner')
      const got = await strataAsync(['get', dir, 'live'])
      expect(got).toMatchObject({ status: 0, stdout: 'written by the owner' })
      const stats = await strataAsync(['stats', dir, '--json'])
      expect(JSON.parse(stats.stdout).lastSequence).toBe(52)
      const scan = await strataAsync(['scan', dir, '--prefix', 'live'])
      expect(scan.stdout.trim()).toBe('"live"\t"written by the owner"')

      const put = await strataAsync(['put', dir, 'other', 'x'])
      expect(put.status).toBe(1)
      expect(put.stderr).toMatch(/lock|open in another process/i)
      const cp = await strataAsync(['checkpoint', dir, path.join(root, `cp-${counter++}`)])
      expect(cp.status).toBe(1)
      expect(cp.stderr).toContain('/v1/admin/checkpoint')
      expect(db.getSync('other')).toBeUndefined()
      await db.put('after', 'still writable')
    } finally {
      await db.close()
    }
    const reopened = await open(dir)
    expect(reopened.getSync('after')?.toString()).toBe('still writable')
    await reopened.close()
  })
})
