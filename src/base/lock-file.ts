import { randomUUID } from 'node:crypto'
import * as os from 'node:os'
import * as path from 'node:path'
import { StrataError, ioError } from './errors.js'
import { LOCK_FILE, LOCK_TAKEOVER_PREFIX } from './file-names.js'
import { writeFully, type FileSystem } from '../vfs/file-system.js'

/**
 * One process per database directory (docs/design.md, "Locking"). Node has no
 * flock(2), so the lock is a file, `LOCK`, made by an exclusive create (a hard
 * link of a fully written temporary, so it never exists without its content)
 * and holding the owner record: pid, process start time, host name, boot id
 * and a random token (docs/format.md, "LOCK").
 *
 * Why a takeover is safe. Nobody rewrites an existing `LOCK`, and the only
 * ones who delete it are its owner (on release) and a process in the takeover
 * section, which deletes it only if, read inside that section, it is stale.
 * The takeover section is guarded by flags with unique names
 * (`LOCK.takeover.<token>`): a process creates its flag, then lists the
 * directory; if it sees any other flag that is not stale it removes its own and
 * backs off. Of two processes that both create a flag, the one that lists
 * second sees the other's flag (the directory is linearizable: a listing
 * after a create shows it), so at most one is ever in the section. A flag or
 * temporary of a dead process can be deleted by anyone: its name is unique, so
 * no live process can own that name. Inside the section the stale LOCK is
 * re-read (it cannot change under us: an existing LOCK only goes away, and only
 * through this section or its dead owner), deleted, and our LOCK linked in;
 * an opener that found no LOCK at all may win that link instead, which is
 * fine. After winning, the LOCK is read back and must name our token.
 *
 * A record is stale when it names this host and (a) this process but no lock
 * this process holds (a leftover of an open that failed), (b) a pid that no
 * longer runs, (c) a pid that runs with another start time (pid reuse, e.g.
 * pid 1 in every container), or (d) an earlier boot. A record of another host
 * is never stale: its pid says nothing here (shared volumes); the user clears
 * it (README.md, "Errors"). Directories opened by this process are also
 * tracked in memory, so a second open from the same process fails too.
 */
const heldHere = new Set<string>()
/** Tokens of the locks this process holds. */
const heldTokens = new Set<string>()

/** The identity of a lock owner (docs/format.md, "LOCK"). */
export interface LockOwner {
  pid: number
  /** Start time of the process (clock ticks since boot, /proc/<pid>/stat field 22); absent without /proc. */
  start?: string
  /** Host name; absent in the record of an old version (same host assumed). */
  host?: string
  /** /proc/sys/kernel/random/boot_id; absent without /proc. */
  boot?: string
  /** Random; absent in the record of an old version. */
  token?: string
}

/** How many times a takeover that meets another one backs off before giving up. */
const TAKEOVER_ATTEMPTS = 40

function locked(dir: string, detail: string): StrataError {
  return new StrataError('STRATA_LOCKED', `database ${dir} is locked: ${detail}`)
}

const code = (err: unknown): string | undefined => (err as NodeJS.ErrnoException)?.code

/** Reads a small system file through the seam; undefined when it cannot. */
function readSystemFile(fs: FileSystem, file: string): string | undefined {
  try {
    return fs.readFile(file).toString('utf8')
  } catch {
    return undefined
  }
}

/** Field 22 (starttime) of /proc/<pid>/stat; undefined without /proc or when it names another pid. */
export function processStartTime(fs: FileSystem, pid: number): string | undefined {
  const stat = readSystemFile(fs, `/proc/${pid}/stat`)
  if (stat === undefined) return undefined
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
  const close = stat.lastIndexOf(')')
  if (close < 0 || Number.parseInt(stat, 10) !== pid) return undefined
  const fields = stat.slice(close + 2).split(' ')
  const start = fields[22 - 3]
  return start !== undefined && /^\d+$/.test(start) ? start : undefined
}

function ownRecord(fs: FileSystem): Required<Pick<LockOwner, 'pid' | 'host' | 'token'>> & LockOwner {
  const boot = readSystemFile(fs, '/proc/sys/kernel/random/boot_id')?.trim()
  return {
    pid: process.pid,
    start: processStartTime(fs, process.pid),
    host: os.hostname(),
    boot: boot === undefined || boot === '' ? undefined : boot,
    token: randomUUID(),
  }
}

/** The bytes of a record: the pid alone on the first line (what older versions read), then key=value lines. */
export function formatLockRecord(r: LockOwner): Buffer {
  let s = `${r.pid}\n`
  for (const k of ['host', 'start', 'boot', 'token'] as const) if (r[k] !== undefined) s += `${k}=${r[k]}\n`
  return Buffer.from(s, 'utf8')
}

/** Parses a record; undefined when it is not one (empty or torn by a power loss). */
export function parseLockRecord(bytes: Buffer): LockOwner | undefined {
  const lines = bytes.toString('utf8').split('\n')
  const first = lines[0].trim()
  if (!/^\d+$/.test(first) || Number(first) <= 0 || !Number.isSafeInteger(Number(first))) return undefined
  const r: LockOwner = { pid: Number(first) }
  for (const line of lines.slice(1)) {
    const eq = line.indexOf('=')
    if (eq < 0) continue
    const k = line.slice(0, eq)
    const v = line.slice(eq + 1)
    if (k === 'host' || k === 'start' || k === 'boot' || k === 'token') r[k] = v
  }
  return r
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it runs, as another user. Anything but ESRCH: assume it runs.
    return code(err) !== 'ESRCH'
  }
}

type Verdict = { stale: true; why: string } | { stale: false; why: string; foreignHost?: string }

/** Whether the owner named by `r` can no longer hold the lock (see the comment at the top). */
function judge(fs: FileSystem, r: LockOwner | undefined, me: LockOwner): Verdict {
  if (r === undefined) return { stale: true, why: 'not a lock record' }
  if (r.host !== undefined && r.host !== me.host) {
    return { stale: false, why: `held by process ${r.pid} on host ${JSON.stringify(r.host)}`, foreignHost: r.host }
  }
  if (r.boot !== undefined && me.boot !== undefined && r.boot !== me.boot) return { stale: true, why: 'written before a reboot' }
  if (r.pid === me.pid) {
    if (r.token !== undefined && heldTokens.has(r.token)) return { stale: false, why: 'already open in this process' }
    return { stale: true, why: 'a leftover of this process' }
  }
  if (!processExists(r.pid)) return { stale: true, why: `process ${r.pid} is gone` }
  if (r.start !== undefined) {
    const start = processStartTime(fs, r.pid)
    if (start !== undefined && start !== r.start) return { stale: true, why: `pid ${r.pid} now names another process` }
  }
  return { stale: false, why: `held by process ${r.pid}` }
}

/** The record in `file`; undefined when the file is gone. */
function readRecord(fs: FileSystem, file: string): { bytes: Buffer; owner: LockOwner | undefined } | undefined {
  let bytes: Buffer
  try {
    bytes = fs.readFile(file)
  } catch (err) {
    if (code(err) === 'ENOENT') return undefined
    const hint = code(err) === 'EISDIR' ? ' (it must be a file written by stratadb; remove it if nothing has the database open)' : ''
    throw ioError(`cannot read lock file ${file}${hint}`, err)
  }
  return { bytes, owner: parseLockRecord(bytes) }
}

/** Links `from` to `to`; false when `to` exists. */
function tryLink(fs: FileSystem, from: string, to: string): boolean {
  try {
    fs.link(from, to)
    return true
  } catch (err) {
    if (code(err) === 'EEXIST') return false
    throw ioError(`cannot create ${to}`, err)
  }
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Takes the lock of `dir`; returns the function that releases it (which never throws). */
export function acquireLock(fs: FileSystem, dir: string): () => void {
  let key: string
  try {
    key = fs.realpath(dir)
  } catch (err) {
    throw ioError(`cannot resolve ${dir}`, err)
  }
  if (heldHere.has(key)) throw locked(dir, 'already open in this process')
  const me = ownRecord(fs)
  const file = path.join(dir, LOCK_FILE)
  const tmp = path.join(dir, `LOCK.${me.pid}.${me.token}.tmp`)
  const flag = path.join(dir, `${LOCK_TAKEOVER_PREFIX}${me.token}`)
  try {
    const f = fs.open(tmp, 'wx')
    try {
      writeFully(f, formatLockRecord(me), 0)
    } finally {
      f.close()
    }
  } catch (err) {
    removeQuietly(fs, tmp)
    throw ioError(`cannot create ${tmp}`, err)
  }
  try {
    if (!take(fs, dir, file, tmp, flag, me)) throw locked(dir, 'other processes kept taking over the stale LOCK file at the same time; retry')
    // Verify: the LOCK must name us now.
    let check: ReturnType<typeof readRecord>
    try {
      check = readRecord(fs, file)
    } catch (err) {
      removeQuietly(fs, file)
      throw err
    }
    if (check?.owner?.token !== me.token) throw locked(dir, 'the LOCK file was replaced during the takeover')
  } finally {
    removeQuietly(fs, tmp)
  }
  heldHere.add(key)
  heldTokens.add(me.token)
  removeLeftovers(fs, dir, me)
  let released = false
  return () => {
    if (released) return
    released = true
    heldHere.delete(key)
    heldTokens.delete(me.token)
    try {
      // Delete the LOCK only while it names us (a user may have cleared it and another process taken it).
      const r = readRecord(fs, file)
      if (r !== undefined && r.owner?.token !== me.token) return
    } catch {
      // Unreadable: delete it anyway, it is ours.
    }
    removeQuietly(fs, file)
  }
}

/** Links our record to LOCK, taking over a stale one; false when takeovers kept colliding. Throws STRATA_LOCKED when held. */
function take(fs: FileSystem, dir: string, file: string, tmp: string, flag: string, me: LockOwner): boolean {
  let contender: string | undefined
  for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt++) {
    if (tryLink(fs, tmp, file)) return true
    const found = readRecord(fs, file)
    if (found === undefined) continue // released in between: create it again
    const verdict = judge(fs, found.owner, me)
    if (!verdict.stale) throw heldError(dir, verdict)
    // Stale: take it over inside the takeover section.
    try {
      fs.link(tmp, flag)
    } catch (err) {
      throw ioError(`cannot create ${flag}`, err)
    }
    try {
      contender = otherLiveFlag(fs, dir, me)
      if (contender === undefined) {
        const now = readRecord(fs, file)
        if (now !== undefined) {
          const v = judge(fs, now.owner, me)
          if (!v.stale) throw heldError(dir, v)
          try {
            fs.unlink(file)
          } catch (err) {
            if (code(err) !== 'ENOENT') throw ioError(`cannot delete stale ${file}`, err)
          }
        }
        if (tryLink(fs, tmp, file)) return true
        // An opener that found no LOCK linked its own first: it won; the next round reads it.
        continue
      }
    } finally {
      removeQuietly(fs, flag)
    }
    // Another live takeover: back off for a random while, then look again.
    sleep(1 + Math.floor(Math.random() * 4))
  }
  if (contender !== undefined) throw locked(dir, `a takeover of its stale LOCK by ${contender} is in progress or was interrupted (if no process on that host opens it, delete ${path.join(dir, LOCK_TAKEOVER_PREFIX)}*)`)
  return false
}

function heldError(dir: string, v: Verdict & { stale: false }): StrataError {
  if (v.foreignHost === undefined) return locked(dir, v.why)
  return locked(dir, `${v.why}; a lock from another host is never taken over: if the database is not open there, delete ${path.join(dir, LOCK_FILE)} (README.md, "Errors")`)
}

/** The owner of another takeover flag that is not stale (deleting the stale ones), or undefined. */
function otherLiveFlag(fs: FileSystem, dir: string, me: LockOwner): string | undefined {
  let names: string[]
  try {
    names = fs.readdir(dir)
  } catch (err) {
    throw ioError(`cannot list ${dir}`, err)
  }
  let live: string | undefined
  for (const name of names) {
    if (!name.startsWith(LOCK_TAKEOVER_PREFIX) || name === `${LOCK_TAKEOVER_PREFIX}${me.token}`) continue
    const r = readRecord(fs, path.join(dir, name))
    if (r === undefined) continue
    const v = judge(fs, r.owner, me)
    if (v.stale) removeQuietly(fs, path.join(dir, name))
    else live ??= v.foreignHost !== undefined ? `process ${r.owner!.pid} on host ${JSON.stringify(v.foreignHost)}` : `process ${r.owner!.pid}`
  }
  return live
}

/**
 * Deletes lock temporaries (`LOCK.*.tmp`, also the `LOCK.<pid>.tmp` of older
 * versions) and takeover flags whose owner is stale: left by a process that
 * died in the middle of taking the lock. Best effort: a failure leaves them for the next open.
 */
function removeLeftovers(fs: FileSystem, dir: string, me: LockOwner): void {
  try {
    for (const name of fs.readdir(dir)) {
      const isTemp = name.startsWith('LOCK.') && name.endsWith('.tmp')
      if (!isTemp && !name.startsWith(LOCK_TAKEOVER_PREFIX)) continue
      if (name.includes(me.token!)) continue
      try {
        // A temporary without a record may be one that another opener is writing right now: leave it.
        const r = readRecord(fs, path.join(dir, name))
        if (r?.owner !== undefined && judge(fs, r.owner, me).stale) removeQuietly(fs, path.join(dir, name))
      } catch {
        // Unreadable: leave it.
      }
    }
  } catch {
    // Cannot list: leave them for the next open.
  }
}

function removeQuietly(fs: FileSystem, file: string): void {
  try {
    fs.unlink(file)
  } catch {
    // Gone already, or left for the next open.
  }
}
