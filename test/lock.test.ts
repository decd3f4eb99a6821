/**
 * The directory lock (src/base/lock-file.ts, docs/design.md "Locking"): racing
 * takeovers of a stale LOCK have exactly one winner; a LOCK is stale only when
 * its owner provably cannot hold it (this host, and the pid is gone, or runs
 * with another start time, or is a leftover of this process); a LOCK of
 * another host is never taken over; every failure of the lock path is a coded
 * StrataError; release never throws.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { open, StrataError, type Database } from '../src/index.js'
import { acquireLock } from '../src/base/lock-file.js'
import { parseFileName } from '../src/base/file-names.js'
import { nodeFileSystem } from '../src/vfs/node-file-system.js'
import { FaultInjectingFileSystem } from '../src/vfs/fault-injecting-file-system.js'
import { fileClassOf } from '../src/vfs/file-system.js'

const RACER = path.resolve('test/fixtures/lock-racer.mjs')
const HAS_PROC = fs.existsSync('/proc/self/stat')
const HOST = os.hostname()

/** A LOCK record as docs/format.md ("LOCK") describes it, written independently of the code under test. */
function formatLockRecord(r: { pid: number; host?: string; start?: string; boot?: string; token?: string }): Buffer {
  let s = `${r.pid}\n`
  for (const k of ['host', 'start', 'boot', 'token'] as const) if (r[k] !== undefined) s += `${k}=${r[k]}\n`
  return Buffer.from(s)
}

/** Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot. */
function processStartTime(_fs: unknown, pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

const dirs: string[] = []
const dbs: Database[] = []
const releases: Array<() => void> = []
const children: ChildProcessWithoutNullStreams[] = []
afterEach(async () => {
  vi.restoreAllMocks()
  for (const r of releases.splice(0)) r()
  for (const db of dbs.splice(0)) await db.close()
  for (const c of children.splice(0)) c.kill('SIGKILL')
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-lock-'))
  dirs.push(d)
  return d
}

/** The pid of a process that has exited (and was reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''])
  await new Promise((r) => child.on('close', r))
  return child.pid!
}

/** A live child process (another process of this host), killed after the test. */
async function liveChild(): Promise<ChildProcessWithoutNullStreams> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")'])
  children.push(child)
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
  return child
}

function writeLock(dir: string, content: string | Buffer): void {
  fs.writeFileSync(path.join(dir, 'LOCK'), content)
}

function lockLines(dir: string): string[] {
  return fs.readFileSync(path.join(dir, 'LOCK'), 'utf8').split('\n')
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<StrataError> {
  let err: unknown
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    err = e
  }
  expect(err, `expected ${code}`).toBeInstanceOf(StrataError)
  expect((err as StrataError).code).toBe(code)
  return err as StrataError
}

describe('racing takeovers of one stale LOCK', () => {
  const RACERS = 3
  const TRIALS = 40
  const racers: Array<{ child: ChildProcessWithoutNullStreams; lines: string[]; waiters: Array<() => void> }> = []

  beforeAll(async () => {
    for (let i = 0; i < RACERS; i++) {
      const child = spawn(process.execPath, [RACER])
      const r = { child, lines: [] as string[], waiters: [] as Array<() => void> }
      let pending = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        pending += d
        let nl: number
        while ((nl = pending.indexOf('\n')) >= 0) {
          r.lines.push(pending.slice(0, nl))
          pending = pending.slice(nl + 1)
          for (const w of r.waiters.splice(0)) w()
        }
      })
      racers.push(r)
    }
    await Promise.all(racers.map((r) => next(r)))
  })
  afterAll(() => {
    for (const r of racers) r.child.kill('SIGKILL')
  })

  function next(r: (typeof racers)[number]): Promise<string> {
    if (r.lines.length > 0) return Promise.resolve(r.lines.shift()!)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('racer did not answer')), 15_000)
      r.waiters.push(() => {
        clearTimeout(timer)
        resolve(r.lines.shift()!)
      })
    })
  }

  it(`exactly one of ${RACERS} processes wins, in ${TRIALS} trials`, async () => {
    const outcomes: string[][] = []
    for (let trial = 0; trial < TRIALS; trial++) {
      const dir = tempDir()
      // The stale LOCK: a process of this host that is gone (new format; every fourth trial the old format).
      const pid = await deadPid()
      writeLock(dir, trial % 4 === 3 ? `${pid}\n` : formatLockRecord({ pid, host: HOST, token: `dead-${trial}` }))
      const signal = path.join(dir, 'go')
      for (const r of racers) r.child.stdin.write(`race ${dir} ${signal}\n`)
      for (const r of racers) expect(await next(r)).toBe('ready')
      fs.writeFileSync(signal, '')
      const results = await Promise.all(racers.map((r) => next(r)))
      outcomes.push(results)
      const winners = results.filter((x) => x === 'won').length
      expect(winners, `trial ${trial}: ${JSON.stringify(results)}`).toBe(1)
      for (const x of results) if (x !== 'won') expect(x.startsWith('lost STRATA_LOCKED'), x).toBe(true)
      // The winner's record is in LOCK, and no takeover flag or temporary is left.
      expect(Number(lockLines(dir)[0])).toBe(racers[results.indexOf('won')].child.pid)
      expect(fs.readdirSync(dir).sort()).toEqual(['LOCK', 'go'])
      for (const r of racers) r.child.stdin.write('release\n')
      for (const r of racers) expect(await next(r)).toBe('released')
      expect(fs.readdirSync(dir)).toEqual(['go'])
    }
    expect(outcomes).toHaveLength(TRIALS)
  }, 40_000)
})

describe.skipIf(!HAS_PROC)('which LOCK is stale (this host)', () => {
  it('a LOCK naming a live pid (another user: EPERM) with another start time is taken over: the pid was reused', async () => {
    const dir = tempDir()
    // Pid 1 runs in every container, so a LOCK naming it is left by a previous container's database process.
    const realKill = process.kill.bind(process)
    vi.spyOn(process, 'kill').mockImplementation(((pid: number, sig?: string | number) => {
      if (pid === 1) throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' })
      return realKill(pid, sig)
    }) as typeof process.kill)
    const start = processStartTime(nodeFileSystem, 1)
    expect(start).toBeDefined()
    writeLock(dir, formatLockRecord({ pid: 1, host: HOST, start: `${Number(start) + 12345}`, token: 'previous-container' }))
    const db = await open(dir)
    dbs.push(db)
    expect(Number(lockLines(dir)[0])).toBe(process.pid)
  })

  it('a LOCK naming a live process with its own start time is refused', async () => {
    const dir = tempDir()
    const child = await liveChild()
    const start = processStartTime(nodeFileSystem, child.pid!)
    expect(start).toBeDefined()
    const record = formatLockRecord({ pid: child.pid!, host: HOST, start, token: 'live' })
    writeLock(dir, record)
    const err = await expectCode(open(dir), 'STRATA_LOCKED')
    expect(err.message).toContain(`process ${child.pid}`)
    expect(fs.readFileSync(path.join(dir, 'LOCK'))).toEqual(record)
    // Also when kill(2) says EPERM (the process of another user).
    const realKill = process.kill.bind(process)
    vi.spyOn(process, 'kill').mockImplementation(((pid: number, sig?: string | number) => {
      if (pid === child.pid) throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' })
      return realKill(pid, sig)
    }) as typeof process.kill)
    await expectCode(open(dir), 'STRATA_LOCKED')
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('LOCK'))).toEqual(['LOCK'])
  })

  it('a LOCK of this process that it does not hold (an earlier open that failed) is taken over', async () => {
    const dir = tempDir()
    writeLock(dir, formatLockRecord({ pid: process.pid, host: HOST, start: processStartTime(nodeFileSystem, process.pid), token: 'leftover' }))
    const db = await open(dir)
    dbs.push(db)
    expect(Number(lockLines(dir)[0])).toBe(process.pid)
    expect(lockLines(dir)).toContain(`host=${HOST}`)
    expect(lockLines(dir)).not.toContain('token=leftover')
  })

  it('an old-format LOCK (a pid and a newline) is stale iff its pid is gone', async () => {
    const dir = tempDir()
    writeLock(dir, `${await deadPid()}\n`)
    let db = await open(dir)
    await db.close()
    const child = await liveChild()
    writeLock(dir, `${child.pid}\n`)
    await expectCode(open(dir), 'STRATA_LOCKED')
    child.kill('SIGKILL')
    await new Promise((r) => child.on('close', r))
    db = await open(dir)
    dbs.push(db)
  })

  it('a LOCK written before a reboot is stale even when its pid runs', async () => {
    const dir = tempDir()
    const child = await liveChild()
    writeLock(dir, formatLockRecord({ pid: child.pid!, host: HOST, start: processStartTime(nodeFileSystem, child.pid!), boot: 'an-earlier-boot', token: 't' }))
    const db = await open(dir)
    dbs.push(db)
  })
})

describe('a LOCK of another host', () => {
  it('is never taken over: STRATA_LOCKED naming the host, and the LOCK is left alone', async () => {
    const dir = tempDir()
    // Its pid is not running here, which says nothing about the other host.
    const record = formatLockRecord({ pid: await deadPid(), host: 'db-host-7', start: '42', token: 'remote' })
    writeLock(dir, record)
    const err = await expectCode(open(dir), 'STRATA_LOCKED')
    expect(err.message).toContain('"db-host-7"')
    expect(err.message).toContain(path.join(dir, 'LOCK'))
    expect(fs.readFileSync(path.join(dir, 'LOCK'))).toEqual(record)
    // What the README says to do: delete it (when the database is not open there).
    fs.unlinkSync(path.join(dir, 'LOCK'))
    const db = await open(dir)
    dbs.push(db)
  })

  it('a takeover flag of another host blocks a takeover with STRATA_LOCKED (never a raw error)', async () => {
    const dir = tempDir()
    writeLock(dir, `${await deadPid()}\n`)
    fs.writeFileSync(path.join(dir, 'LOCK.takeover.remote'), formatLockRecord({ pid: 77, host: 'db-host-7', token: 'remote' }))
    const err = await expectCode(open(dir), 'STRATA_LOCKED')
    expect(err.message).toContain('"db-host-7"')
    fs.unlinkSync(path.join(dir, 'LOCK.takeover.remote'))
    dbs.push(await open(dir))
  })

  it('a stale takeover flag (its process died mid-takeover) is deleted and does not block', async () => {
    const dir = tempDir()
    const pid = await deadPid()
    writeLock(dir, formatLockRecord({ pid, host: HOST, token: 'dead' }))
    fs.writeFileSync(path.join(dir, 'LOCK.takeover.dead'), formatLockRecord({ pid, host: HOST, token: 'dead' }))
    fs.writeFileSync(path.join(dir, `LOCK.${pid}.dead.tmp`), formatLockRecord({ pid, host: HOST, token: 'dead' }))
    fs.writeFileSync(path.join(dir, `LOCK.${pid}.tmp`), `${pid}\n`) // an old version's temporary
    dbs.push(await open(dir))
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('LOCK'))).toEqual(['LOCK'])
  })
})

describe('every failure of the lock path is coded', () => {
  it('a LOCK that is a directory: STRATA_IO_ERROR, not ERR_FS_EISDIR, and it is left alone', async () => {
    const dir = tempDir()
    fs.mkdirSync(path.join(dir, 'LOCK'))
    const err = await expectCode(open(dir), 'STRATA_IO_ERROR')
    expect(err.message).toContain('LOCK')
    expect(fs.statSync(path.join(dir, 'LOCK')).isDirectory()).toBe(true)
    expect(fs.readdirSync(dir)).toEqual(['LOCK'])
  })

  it('realpath failing: STRATA_IO_ERROR', async () => {
    const dir = tempDir()
    const faulty = new FaultInjectingFileSystem(nodeFileSystem)
    // open() stats the directory (call 1), then the lock resolves its real path (call 2).
    faulty.inject({ op: 'stat', fileClass: fileClassOf(dir), nth: 2, fault: 'EIO' })
    const err = await expectCode(open(dir, { fileSystem: faulty }), 'STRATA_IO_ERROR')
    expect(faulty.fired).toHaveLength(1)
    expect((err.cause as NodeJS.ErrnoException).code).toBe('EIO')
    dbs.push(await open(dir))
  })

  it('removing a stale temporary failing: ignored (the open succeeds; the next one removes it)', async () => {
    const dir = tempDir()
    const pid = await deadPid()
    fs.writeFileSync(path.join(dir, `LOCK.${pid}.tmp`), `${pid}\n`)
    const faulty = new FaultInjectingFileSystem(nodeFileSystem)
    // unlink:temp call 1 removes this open's own temporary, call 2 the stale one.
    faulty.inject({ op: 'unlink', fileClass: 'temp', nth: 2, fault: 'EIO' })
    const db = await open(dir, { fileSystem: faulty })
    expect(faulty.fired).toHaveLength(1)
    expect(fs.existsSync(path.join(dir, `LOCK.${pid}.tmp`))).toBe(true)
    await db.close()
    dbs.push(await open(dir))
    expect(fs.existsSync(path.join(dir, `LOCK.${pid}.tmp`))).toBe(false)
  })

  it('listing or reading failing while taking over: STRATA_IO_ERROR, nothing left behind', async () => {
    for (const rule of [
      { op: 'readdir', fileClass: 'directory', nth: 1 },
      { op: 'read', fileClass: 'lock', nth: 1 },
      { op: 'link', fileClass: 'lock', nth: 1 },
      { op: 'open', fileClass: 'temp', nth: 1 },
      { op: 'write', fileClass: 'temp', nth: 1 },
    ] as const) {
      const dir = tempDir()
      writeLock(dir, `${await deadPid()}\n`)
      const faulty = new FaultInjectingFileSystem(nodeFileSystem).inject({ ...rule, fault: 'EIO' })
      await expectCode(() => acquireLock(faulty, dir), 'STRATA_IO_ERROR')
      expect(faulty.fired, JSON.stringify(rule)).toHaveLength(1)
      const left = fs.readdirSync(dir).filter((n) => n !== 'LOCK')
      expect(left, JSON.stringify(rule)).toEqual([])
      releases.push(acquireLock(nodeFileSystem, dir))
    }
  })

  it('release never throws, even when the disk fails, and the directory opens again', async () => {
    const dir = tempDir()
    const faulty = new FaultInjectingFileSystem(nodeFileSystem)
    const db = await open(dir, { fileSystem: faulty })
    faulty.inject({ op: 'read', fileClass: 'lock', nth: 1, sticky: true, fault: 'EIO' })
    faulty.inject({ op: 'unlink', fileClass: 'lock', nth: 1, sticky: true, fault: 'EIO' })
    await db.close()
    // The LOCK is still there but names this process, which does not hold it: a leftover, taken over.
    expect(Number(lockLines(dir)[0])).toBe(process.pid)
    dbs.push(await open(dir))
  })
})

describe('plain behaviour', () => {
  it('a second open in this process fails with STRATA_LOCKED; after close the directory opens again', async () => {
    const dir = tempDir()
    const db = await open(dir)
    await expectCode(open(dir), 'STRATA_LOCKED')
    await expectCode(open(`${dir}/.`), 'STRATA_LOCKED')
    expect(Number(lockLines(dir)[0])).toBe(process.pid)
    await db.close()
    expect(fs.existsSync(path.join(dir, 'LOCK'))).toBe(false)
    dbs.push(await open(dir))
  })

  it('after SIGKILL of the owner the next open takes over; while it runs, another process is refused', async () => {
    const dir = tempDir()
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      const { open } = await import(${JSON.stringify(path.resolve('dist/index.js'))})
      const db = await open(${JSON.stringify(dir)}); await db.put('k', 'v'); console.log('READY'); setInterval(() => {}, 1000)
    `])
    children.push(child)
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => String(d).includes('READY') && resolve())
      child.on('exit', () => reject(new Error(`the owner exited before it was ready: ${stderr}`)))
    })
    await expectCode(open(dir), 'STRATA_LOCKED')
    child.kill('SIGKILL')
    await new Promise((r) => child.on('close', r))
    const db = await open(dir)
    dbs.push(db)
    expect(db.getSync('k')?.toString()).toBe('v')
  })

  it('lock files classify as kind lock, their temporaries as temp', () => {
    expect(parseFileName('LOCK')?.kind).toBe('lock')
    expect(parseFileName('LOCK.takeover.0d6f3c1e-1111-4222-8333-944444444444')?.kind).toBe('lock')
    expect(parseFileName('LOCK.123.0d6f3c1e-1111-4222-8333-944444444444.tmp')?.kind).toBe('temp')
    expect(parseFileName('LOCK.123.tmp')?.kind).toBe('temp')
  })
})
