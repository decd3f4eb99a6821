/**
 * Bank test: a child process (fixtures/bank-writer.mjs) moves money between
 * 100 accounts from 32 concurrent tasks, through db.transaction and through
 * conditional batches, each transfer also writing its own record key in the
 * same commit. We SIGKILL it at a random moment (sometimes while it is still
 * opening, i.e. recovering, the database), reopen the database here and check:
 *
 *   - the balances still sum to the initial total, none is negative;
 *   - every transfer the child journaled as committed has its record;
 *   - per task, the records are a gap-free prefix of its transfers, at most
 *     one beyond the journaled ones (the one in flight at the kill);
 *   - replaying this cycle's new records in version order from the previous
 *     cycle's balances reproduces, step by step, the balances each transfer
 *     read (so the commits were serializable: no lost update, no write skew)
 *     and ends at exactly the balances stored;
 *   - versions survive recovery: old records keep their versions, new ones are
 *     newer than everything before the crash, and every account's version is
 *     the version of the commit of the last transfer that touched it;
 *   - a write after recovery gets a version above every stored one.
 *
 * The directory lives across all cycles, so each cycle also re-verifies what
 * earlier crashes and recoveries left. Set BANK_SEED to replay a run's random
 * choices (timing still varies) and BANK_KEEP=1 to keep the directory.
 */
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { open, type Database } from '../src/index.js'
import { makeRng } from './fixtures/crash-format.mjs'

const WRITER_SCRIPT = fileURLToPath(new URL('./fixtures/bank-writer.mjs', import.meta.url))

const ACCOUNTS = 100
const INITIAL_BALANCE = 1000
const TOTAL = ACCOUNTS * INITIAL_BALANCE
const TASKS = 32
const MAX_AMOUNT = 400
const CYCLES = 14
/** Stop early (not below MIN_CYCLES) once this much time is spent, on a loaded machine. */
const MIN_CYCLES = 10
const BUDGET_MS = 40_000
/** Small sizes: flushes, WAL switches and compactions happen all the time during a cycle. */
const DB_OPTIONS = {
  memtableBytes: 64 * 1024,
  targetTableBytes: 64 * 1024,
  levelBaseBytes: 256 * 1024,
  levelSizeMultiplier: 4,
}

interface TransferRecord {
  from: number
  to: number
  amount: number
  fromBefore: number
  toBefore: number
}

const accountKey = (i: number): string => `a:${String(i).padStart(3, '0')}`

function runChild(config: Record<string, unknown>, killAfter: 'opening' | 'ready', delayMs: number): Promise<{ opened: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER_SCRIPT, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] })
    const run = { opened: false }
    let stderr = ''
    let pending = ''
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      pending += d
      let nl: number
      while ((nl = pending.indexOf('\n')) >= 0) {
        const event = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        if (event === 'ready') run.opened = true
        if (event === killAfter) setTimeout(() => child.kill('SIGKILL'), delayMs)
      }
    })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (signal === 'SIGKILL') resolve(run)
      else reject(new Error(`bank-writer exited with code ${code} signal ${signal} instead of being killed:\n${stderr}`))
    })
  })
}

/** Complete lines of the child's journal; a last line without newline was cut by the kill. */
function readJournal(file: string): string[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n')
  lines.pop()
  return lines
}

async function collect(db: Database, gte: string, lt: string): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = []
  for await (const [k, v] of db.iterator({ gte, lt })) out.push([k.toString('latin1'), v.toString('latin1')])
  return out
}

/** What the previous cycles verified; the next cycle is checked against it. */
interface Verified {
  initialized: boolean
  balances: number[]
  accountVersions: number[]
  /** Record key -> raw value and version. */
  records: Map<string, { raw: string; version: number }>
  /** Per account: version of the last transfer (by version) that touched it; 0 = none yet. */
  lastTouch: number[]
  /** Highest version seen on any key. */
  highVersion: number
}

async function verifyCycle(db: Database, cycle: number, journal: string[], prev: Verified, errors: string[]): Promise<Verified> {
  const initVersion = (await db.getEntry('meta:init'))?.version
  const accounts = await collect(db, 'a:', 'a;')
  const recordRows = await collect(db, 't:', 't;')
  if (initVersion === undefined) {
    // Killed before the initializing batch committed: then nothing else may exist.
    if (prev.initialized) errors.push('meta:init vanished')
    if (accounts.length > 0) errors.push(`not initialized, but ${accounts.length} accounts exist (a partial batch)`)
    if (recordRows.length > 0 || journal.length > 0) errors.push('not initialized, but transfers exist')
    return prev
  }
  const next: Verified = {
    initialized: true,
    balances: [],
    accountVersions: [],
    records: new Map(prev.records),
    lastTouch: [...prev.lastTouch],
    highVersion: prev.highVersion,
  }

  // Accounts: all there, sane, summing to the total.
  const expectedKeys = Array.from({ length: ACCOUNTS }, (_, i) => accountKey(i))
  if (accounts.map(([k]) => k).join() !== expectedKeys.join()) {
    errors.push(`accounts are ${accounts.length} keys, not ${ACCOUNTS}: ${accounts.map(([k]) => k).slice(0, 5)}...`)
    return next
  }
  let sum = 0
  for (const [k, v] of accounts) {
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n < 0) errors.push(`${k} holds ${JSON.stringify(v)}`)
    sum += n
    next.balances.push(n)
  }
  if (sum !== TOTAL) errors.push(`balances sum to ${sum}, not ${TOTAL}`)
  for (let i = 0; i < ACCOUNTS; i++) next.accountVersions.push((await db.getEntry(accountKey(i)))!.version)

  // Records: the old ones unchanged, the new ones all from this cycle.
  const rows = new Map(recordRows)
  for (const [key, old] of prev.records) {
    const raw = rows.get(key)
    if (raw === undefined) errors.push(`record ${key} of an earlier cycle is gone`)
    else if (raw !== old.raw) errors.push(`record ${key} changed from ${old.raw} to ${raw}`)
  }
  const prefix = `t:${String(cycle).padStart(3, '0')}.`
  const fresh: Array<{ key: string; rec: TransferRecord; version: number }> = []
  for (const [key, raw] of recordRows) {
    if (prev.records.has(key)) continue
    if (!key.startsWith(prefix)) {
      errors.push(`record ${key} appeared after its cycle ended`)
      continue
    }
    let rec: TransferRecord
    try {
      rec = JSON.parse(raw) as TransferRecord
    } catch {
      errors.push(`record ${key} is not JSON: ${raw.slice(0, 80)}`)
      continue
    }
    const version = (await db.getEntry(key))!.version
    fresh.push({ key, rec, version })
    next.records.set(key, { raw, version })
  }
  // A sample of old records keeps its versions (all of them would grow quadratically).
  const old = [...prev.records.entries()]
  for (let i = 0; i < Math.min(200, old.length); i++) {
    const [key, { version }] = old[Math.floor((i * old.length) / Math.min(200, old.length))]
    const now = (await db.getEntry(key))?.version
    if (now !== version) errors.push(`record ${key} had version ${version}, now ${now}`)
  }

  // Journal vs records: every journaled transfer is there; per task a gap-free prefix, at most one unjournaled.
  const journaled = new Set(journal)
  for (const key of journal) if (!rows.has(key)) errors.push(`journaled transfer ${key} is lost`)
  const perTask = new Map<string, number[]>()
  for (const { key } of fresh) {
    const [task, n] = key.slice(prefix.length).split(':')
    perTask.set(task, [...(perTask.get(task) ?? []), Number(n)])
  }
  for (const [task, ns] of perTask) {
    ns.sort((a, b) => a - b)
    if (ns.some((n, i) => n !== i)) errors.push(`task ${task}: records ${ns.slice(0, 10)}... are not a gap-free prefix`)
    const unjournaled = ns.filter((n) => !journaled.has(`${prefix}${task}:${String(n).padStart(6, '0')}`))
    if (unjournaled.length > 1) errors.push(`task ${task}: ${unjournaled.length} committed but unjournaled transfers (at most 1 in flight)`)
    if (unjournaled.length === 1 && unjournaled[0] !== ns.length - 1) errors.push(`task ${task}: unjournaled transfer ${unjournaled[0]} is not the last`)
  }

  // Versions: distinct, above everything before the crash; serializable replay in version order.
  fresh.sort((a, b) => a.version - b.version)
  for (let i = 1; i < fresh.length; i++) {
    if (fresh[i].version === fresh[i - 1].version) errors.push(`records ${fresh[i - 1].key} and ${fresh[i].key} share version ${fresh[i].version}`)
  }
  if (fresh.length > 0 && fresh[0].version <= prev.highVersion) {
    errors.push(`record ${fresh[0].key} of this cycle has version ${fresh[0].version}, not above ${prev.highVersion} from before (sequence reused after recovery)`)
  }
  const replay = prev.initialized ? [...prev.balances] : new Array<number>(ACCOUNTS).fill(INITIAL_BALANCE)
  let replayErrors = 0
  for (const { key, rec, version } of fresh) {
    const { from, to, amount, fromBefore, toBefore } = rec
    if (from === to || !(from >= 0 && from < ACCOUNTS) || !(to >= 0 && to < ACCOUNTS)) errors.push(`record ${key}: bad accounts ${from} -> ${to}`)
    if (!(amount >= 0 && amount <= fromBefore)) errors.push(`record ${key}: amount ${amount} with ${fromBefore} available`)
    if ((replay[from] !== fromBefore || replay[to] !== toBefore) && replayErrors++ < 5) {
      errors.push(
        `record ${key} (version ${version}) read ${accountKey(from)}=${fromBefore}, ${accountKey(to)}=${toBefore}, ` +
          `but replaying the commits before it gives ${replay[from]}, ${replay[to]} (not serializable, or a commit lost)`,
      )
    }
    replay[from] -= amount
    replay[to] += amount
    next.lastTouch[from] = version
    next.lastTouch[to] = version
  }
  for (let i = 0; i < ACCOUNTS; i++) {
    if (replay[i] !== next.balances[i]) errors.push(`${accountKey(i)} holds ${next.balances[i]}, replaying the records gives ${replay[i]}`)
  }
  // Each account was last written by the commit of the last transfer that touched it (3 writes per commit).
  for (let i = 0; i < ACCOUNTS; i++) {
    const v = next.accountVersions[i]
    const t = next.lastTouch[i]
    if (t === 0 ? Math.abs(v - initVersion) > ACCOUNTS : Math.abs(v - t) > 2) {
      errors.push(`${accountKey(i)} has version ${v}; its last transfer committed at ${t || `(none; init at ${initVersion})`}`)
    }
  }
  next.highVersion = [...next.accountVersions, ...fresh.map((f) => f.version)].reduce((a, b) => Math.max(a, b), Math.max(prev.highVersion, initVersion))

  // A new write gets a version above everything recovered.
  await db.put('p:probe', String(cycle))
  const probe = (await db.getEntry('p:probe'))!.version
  if (probe <= next.highVersion) errors.push(`a write after recovery got version ${probe}, not above ${next.highVersion}`)
  next.highVersion = probe
  const bg = db.stats().backgroundError
  if (bg) errors.push(`background error: ${bg}`)
  return next
}

describe('bank transfers across SIGKILL crashes', () => {
  it('keeps the total, every committed transfer, and a serializable history', async () => {
    const seed = process.env.BANK_SEED ? Number(process.env.BANK_SEED) : Math.floor(Math.random() * 2 ** 31)
    const rng = makeRng(seed)
    const label = `bank test (seed ${seed})`
    console.log(`${label}: BANK_SEED=${seed} replays it`)
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bank-'))
    const dir = path.join(root, 'db')
    let verified: Verified = {
      initialized: false,
      balances: [],
      accountVersions: [],
      records: new Map(),
      lastTouch: new Array<number>(ACCOUNTS).fill(0),
      highVersion: 0,
    }
    const totals = { cycles: 0, syncCycles: 0, killedInOpen: 0, journaled: 0, unjournaledCommitted: 0 }
    const started = Date.now()
    try {
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        if (cycle >= MIN_CYCLES && Date.now() - started > BUDGET_MS) break
        const syncWrites = cycle % 3 === 2 || rng() < 0.15
        // Now and then kill during open (recovery); mostly while transfers run.
        const killInOpen = cycle > 0 && cycle % 5 === 4
        const delayMs = killInOpen ? rng() * 40 : rng() < 0.2 ? rng() * 80 : 300 + rng() * 1700
        const journalFile = path.join(root, `journal-${cycle}.txt`)
        const options = { ...DB_OPTIONS, syncWrites }
        const run = await runChild(
          {
            dir,
            journal: journalFile,
            cycle,
            seed: Math.floor(rng() * 2 ** 31),
            tasks: TASKS,
            accounts: ACCOUNTS,
            initialBalance: INITIAL_BALANCE,
            maxAmount: MAX_AMOUNT,
            options,
            maxRunMs: 20_000,
          },
          killInOpen ? 'opening' : 'ready',
          delayMs,
        )
        const journal = readJournal(journalFile)
        const errors: string[] = []
        const before = verified.records.size
        const db = await open(dir, options)
        try {
          verified = await verifyCycle(db, cycle, journal, verified, errors)
        } finally {
          await db.close()
        }
        if (errors.length > 0) {
          throw new Error(
            `${label}, cycle ${cycle} (syncWrites ${syncWrites}, killed ${delayMs.toFixed(0)} ms after '${killInOpen ? 'opening' : 'ready'}'):\n  ` +
              errors.slice(0, 30).join('\n  '),
          )
        }
        totals.cycles++
        if (syncWrites) totals.syncCycles++
        if (!run.opened) totals.killedInOpen++
        totals.journaled += journal.length
        totals.unjournaledCommitted += verified.records.size - before - journal.length
        fs.rmSync(journalFile)
      }
      console.log(
        `${label}: ${totals.cycles} cycles (${totals.syncCycles} with syncWrites, ${totals.killedInOpen} killed before open returned); ` +
          `${verified.records.size} transfers verified, ${totals.journaled} journaled, ${totals.unjournaledCommitted} committed in flight; ${Date.now() - started} ms`,
      )
      expect(verified.initialized).toBe(true)
      expect(totals.syncCycles).toBeGreaterThan(0)
      expect(verified.records.size).toBeGreaterThan(1000)
    } finally {
      if (process.env.BANK_KEEP) console.log(`${label}: kept ${root}`)
      else fs.rmSync(root, { recursive: true, force: true })
    }
  })
})
