/**
 * Checkpoints through the server (src/server/shared/checkpoints.ts), with
 * real clients (fetch and node:http, ioredis, redis-cli) against servers
 * started in this process:
 *
 *   1. POST /v1/admin/checkpoint while 4 HTTP writers (each PUTs its own
 *      counter key, recording the version every value got from its ETag) and
 *      2 RESP writers (INCR) go on, on a 64 KiB memtable (flushes all the
 *      time): each checkpoint opens with open() and holds exactly the state at
 *      its `sequence` for the HTTP counters (value and version: the last write
 *      with a version ≤ sequence), and every counter lies between what was
 *      acknowledged before the request and what was issued by its response;
 *      the generated name carries the sequence; stats, metrics and the log
 *      count them;
 *   2. refusals: cross-origin (Origin, Sec-Fetch-Site, foreign Host), wrong
 *      content type, method or query, without or with a wrong token (401),
 *      bad names (400), an existing name (409): none writes anything; RESP
 *      needs AUTH when a token is set;
 *   3. one at a time (the engine's checkpoint held open by a gate): a second
 *      POST gets 409, BGSAVE and SAVE the Redis error, BGSAVE SCHEDULE is
 *      scheduled and runs once the first is done;
 *   4. BGSAVE, LASTSAVE, INFO persistence, SAVE (ordered after the
 *      connection's own pipelined writes), MULTI refusing SAVE, COMMAND;
 *   5. the same with redis-cli;
 *   6. shutdown waits for a running BGSAVE; a failing checkpoint is reported
 *      (500, -ERR, INFO status err, the log); option checks.
 */
import { execFile, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { open, type CheckpointResult, type Database } from '../src/index.js'
import { startServer, type ServerOptionsInput, type StrataServer } from '../src/server/index.js'
import { serverOptionsFromCli } from '../src/server/serve.js'
import { resolveServerOptions } from '../src/server/shared/options.js'
import { RedisClients } from './resp-helpers.js'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-admin-'))
const servers: StrataServer[] = []
const clients = new RedisClients()
afterAll(async () => {
  await clients.closeAll()
  await Promise.all(servers.map((s) => s.close()))
  fs.rmSync(root, { recursive: true, force: true })
})

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const hasRedisCli = spawnSync('redis-cli', ['--version'], { encoding: 'utf8' }).status === 0
const TOKEN = 'admin-test-token-0123456789'

interface Running {
  server: StrataServer
  /** host:port of HTTP. */
  http: string
  base: string
  respPort: number
  dir: string
  /** The checkpoint directory (the default, `<dir>.checkpoints`, unless given). */
  cpDir: string
  logs: string[]
}

let serverCount = 0
async function start(options: ServerOptionsInput = {}): Promise<Running> {
  const dir = path.join(root, `db-${++serverCount}`)
  const logs: string[] = []
  const server = await startServer({ dir, http: '127.0.0.1:0', resp: '127.0.0.1:0', log: (l) => logs.push(l), ...options })
  servers.push(server)
  return { server, http: server.http ?? '', base: `http://${server.http}`, respPort: server.respPort ?? 0, dir, cpDir: server.options.checkpointDir, logs }
}

interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  json: any
}

/** One request with exactly these headers (Host defaults to the server's address). */
function request(s: Running, method: string, target: string, headers: Record<string, string>, body?: string, agent: http.Agent | false = false): Promise<Reply> {
  const port = Number(s.http.slice(s.http.lastIndexOf(':') + 1))
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers: { Host: s.http, ...headers }, setHost: false, agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode!, headers: res.headers, body: text, json })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** Sends `input` on a new RESP connection; resolves with what came back once `lines` lines did. */
function rawResp(port: number, input: string, lines: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = ''
    const socket = net.connect(port, '127.0.0.1', () => socket.write(input))
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1')
      if (got.split('\r\n').length > lines) {
        socket.destroy()
        resolve(got)
      }
    })
    socket.on('error', reject)
  })
}

/** POST /v1/admin/checkpoint with a JSON body (none when undefined). */
function checkpoint(s: Running, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return request(s, 'POST', '/v1/admin/checkpoint', { 'Content-Type': 'application/json', ...headers }, body === undefined ? undefined : JSON.stringify(body))
}

async function withDb<T>(dir: string, f: (db: Database) => Promise<T>, readOnly = false): Promise<T> {
  const db = await open(dir, { createIfMissing: false, readOnly })
  try {
    return await f(db)
  } finally {
    await db.close()
  }
}

/** INFO text as field → value. */
function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0 && !line.startsWith('#')) out[line.slice(0, colon)] = line.slice(colon + 1)
  }
  return out
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

/** Waits until the wall clock is in the next second (so that a new LASTSAVE differs). */
async function nextSecond(): Promise<void> {
  const now = Date.now()
  await sleep(1000 - (now % 1000) + 5)
}

/** Replaces the server's db.checkpoint so that the first call is held (state captured, promise not settled) until release(). */
function gateCheckpoints(db: Database): { release: () => void; calls: () => number } {
  const original = db.checkpoint.bind(db)
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  let calls = 0
  db.checkpoint = async (dir: string): Promise<CheckpointResult> => {
    const first = ++calls === 1
    const result = original(dir)
    result.catch(() => {})
    if (first) await gate
    return result
  }
  return { release, calls: () => calls }
}

describe('POST /v1/admin/checkpoint', () => {
  it('writes a checkpoint holding exactly the state at its sequence while 6 writers go on', async () => {
    const s = await start({ dbOptions: { memtableBytes: 16 * 1024 } })
    expect(s.cpDir).toBe(`${s.dir}.checkpoints`)
    const HTTP_WRITERS = 4
    const RESP_WRITERS = 2
    const pad = 'x'.repeat(500)
    const history: Array<Array<{ n: number; version: number }>> = Array.from({ length: HTTP_WRITERS }, () => [])
    const httpSent = new Array<number>(HTTP_WRITERS).fill(0)
    const httpAcked = new Array<number>(HTTP_WRITERS).fill(0)
    const respSent = new Array<number>(RESP_WRITERS).fill(0)
    const respAcked = new Array<number>(RESP_WRITERS).fill(0)
    let stop = false
    const httpWriter = async (i: number): Promise<void> => {
      // A keep-alive connection per writer; node:http sends head and body in one write.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
      for (let n = 1; !stop; n++) {
        httpSent[i] = n
        const r = await request(s, 'PUT', `/v1/kv/ctr%3A${i}`, {}, `${n}|${pad}`, agent)
        expect(r.status).toBe(204)
        history[i].push({ n, version: Number(JSON.parse(r.headers.etag as string)) })
        httpAcked[i] = n
      }
      agent.destroy()
    }
    const respWriter = async (j: number): Promise<void> => {
      const r = clients.connect(s.respPort)
      while (!stop) {
        respSent[j]++
        respAcked[j] = await r.incr(`rc:${j}`)
        await r.set(`rpad:${j}:${respAcked[j] % 50}`, pad)
      }
    }
    const writers = [...Array.from({ length: HTTP_WRITERS }, (_, i) => httpWriter(i)), ...Array.from({ length: RESP_WRITERS }, (_, j) => respWriter(j))]
    // Progress, not time: every writer has acknowledged `n` more writes (this machine may be slow).
    const progressed = (n: number, http: number[], resp: number[]): Promise<void> =>
      until('the writers to progress', () => httpAcked.every((a, i) => a >= http[i] + n) && respAcked.every((a, j) => a >= resp[j] + n), 20_000)
    await progressed(3, httpAcked.map(() => 0), respAcked.map(() => 0))
    const taken: Array<{ result: Record<string, number | string>; httpBefore: number[]; httpAfter: number[]; respBefore: number[]; respAfter: number[] }> = []
    for (let k = 0; k < 4; k++) {
      const httpBefore = [...httpAcked]
      const respBefore = [...respAcked]
      const r = await checkpoint(s, k === 3 ? {} : undefined)
      const httpAfter = [...httpSent]
      const respAfter = [...respSent]
      expect(r.status, r.body).toBe(200)
      taken.push({ result: r.json, httpBefore, httpAfter, respBefore, respAfter })
      await progressed(2, httpAfter, respAfter)
    }
    stop = true
    await Promise.all(writers)
    expect(s.server.db.stats().writes.flushes).toBeGreaterThan(0)
    expect(new Set(taken.map((t) => t.result.sequence)).size).toBe(taken.length)

    for (const t of taken) {
      const { sequence, bytes, files, copiedBytes, dir, name, durationMs } = t.result as Record<string, never>
      expect(Number.isSafeInteger(sequence) && sequence > 0).toBe(true)
      expect(bytes).toBeGreaterThan(0)
      expect(files).toBeGreaterThan(0)
      expect(copiedBytes).toBeGreaterThanOrEqual(0)
      expect(durationMs).toBeGreaterThanOrEqual(0)
      expect(name).toMatch(/^checkpoint-\d{8}T\d{6}Z-\d{6,}$/)
      // The generated name carries the sequence the checkpoint holds.
      expect(Number((name as string).split('-')[2])).toBe(sequence)
      expect(dir).toBe(path.join(s.cpDir, name))
      await withDb(dir, async (db) => {
        for (let i = 0; i < HTTP_WRITERS; i++) {
          const expected = history[i].filter((h) => h.version <= sequence).at(-1)
          const entry = await db.getEntry(`ctr:${i}`)
          if (expected === undefined) {
            expect(entry).toBeUndefined()
          } else {
            expect(Number(entry!.value.toString().split('|')[0])).toBe(expected.n)
            expect(entry!.version).toBe(expected.version)
          }
          const n = expected?.n ?? 0
          expect(n).toBeGreaterThanOrEqual(t.httpBefore[i])
          expect(n).toBeLessThanOrEqual(t.httpAfter[i])
        }
        for (let j = 0; j < RESP_WRITERS; j++) {
          const v = Number((await db.get(`rc:${j}`))?.toString() ?? '0')
          expect(v).toBeGreaterThanOrEqual(t.respBefore[j])
          expect(v).toBeLessThanOrEqual(t.respAfter[j])
        }
        // Nothing newer than the sequence.
        for await (const [key] of db.iterator({ values: false })) expect((await db.getEntry(key))!.version).toBeLessThanOrEqual(sequence)
      })
    }
    // A checkpoint also opens read-only, and can be written like any database (the source is unaffected).
    const last = taken.at(-1)!.result.dir as string
    expect((await withDb(last, async (db) => db.get('ctr:0'), true))?.toString()).toMatch(/^\d+\|x+$/)
    await withDb(last, async (db) => db.put('only-in-checkpoint', 'x'))
    expect(await s.server.db.get('only-in-checkpoint')).toBeUndefined()

    const stats = (await request(s, 'GET', '/v1/stats', {})).json.server.checkpoints
    expect(stats).toMatchObject({ dir: s.cpDir, inProgress: false, completed: 4, failed: 0, lastStatus: 'ok', lastError: null })
    expect(stats.last).toMatchObject({ dir: last, sequence: taken.at(-1)!.result.sequence })
    const metrics = (await request(s, 'GET', '/metrics', {})).body
    expect(metrics).toMatch(/^strata_checkpoints_total\{status="ok"\} 4$/m)
    expect(metrics).toMatch(/^strata_checkpoint_in_progress 0$/m)
    expect(metrics).toMatch(/^strata_http_requests_total\{method="POST",route="checkpoint",status="200"\} 4$/m)
    const logged = s.logs.filter((l) => /^checkpoint .*: sequence \d+, \d+ files, \d+ bytes \(\d+ copied\), [\d.]+ ms \(HTTP\)$/.test(l))
    expect(logged).toHaveLength(4)
    expect(logged[0]).toContain(taken[0].result.dir as string)
  })

  it('refuses cross-origin requests, wrong content types, bad names and existing names, writing nothing', async () => {
    const s = await start({ resp: null })
    const refused: Array<[Reply, number, string]> = [
      [await checkpoint(s, {}, { Origin: 'http://evil.example' }), 403, 'STRATA_FORBIDDEN_ORIGIN'],
      [await checkpoint(s, undefined, { Origin: 'null' }), 403, 'STRATA_FORBIDDEN_ORIGIN'],
      [await checkpoint(s, undefined, { 'Sec-Fetch-Site': 'cross-site' }), 403, 'STRATA_FORBIDDEN_ORIGIN'],
      [await checkpoint(s, undefined, { Host: 'evil.example' }), 403, 'STRATA_FORBIDDEN_HOST'],
      // What a page can send cross-site without a preflight.
      [await request(s, 'POST', '/v1/admin/checkpoint', { 'Content-Type': 'text/plain' }, '{}'), 415, 'STRATA_UNSUPPORTED_MEDIA_TYPE'],
      [await request(s, 'POST', '/v1/admin/checkpoint', {}), 415, 'STRATA_UNSUPPORTED_MEDIA_TYPE'],
      [await request(s, 'GET', '/v1/admin/checkpoint', {}), 405, 'STRATA_METHOD_NOT_ALLOWED'],
      [await request(s, 'POST', '/v1/admin/checkpoint?name=x', { 'Content-Type': 'application/json' }), 400, 'STRATA_INVALID_ARGUMENT'],
      [await request(s, 'POST', '/v1/admin/checkpoint', { 'Content-Type': 'application/json' }, '{"name":'), 400, 'STRATA_BAD_REQUEST'],
      [await checkpoint(s, ['x']), 400, 'STRATA_INVALID_ARGUMENT'],
      [await checkpoint(s, { name: 'ok', extra: 1 }), 400, 'STRATA_INVALID_ARGUMENT'],
      [await checkpoint(s, { name: 5 }), 400, 'STRATA_INVALID_ARGUMENT'],
      [await request(s, 'POST', '/v1/admin/checkpoint', { 'Content-Type': 'application/json' }, JSON.stringify({ name: 'x'.repeat(5000) })), 413, 'STRATA_TOO_LARGE'],
    ]
    for (const name of ['', '.', '..', '../x', 'a/b', '/abs', 'a\\b', 'a..b', '.hidden', '-dash', 'a b', 'é', 'x'.repeat(101), 'nul\u0000']) {
      refused.push([await checkpoint(s, { name }), 400, 'STRATA_INVALID_ARGUMENT'])
    }
    for (const [r, status, code] of refused) {
      expect(r.status, r.body).toBe(status)
      expect(r.json.code).toBe(code)
    }
    expect(fs.existsSync(s.cpDir)).toBe(false)

    const good = await checkpoint(s, { name: 'Nightly-1.a_b' })
    expect(good.status, good.body).toBe(200)
    expect(good.json).toMatchObject({ name: 'Nightly-1.a_b', dir: path.join(s.cpDir, 'Nightly-1.a_b') })
    const again = await checkpoint(s, { name: 'Nightly-1.a_b' })
    expect(again.status).toBe(409)
    expect(again.json.code).toBe('STRATA_EXISTS')
    // A directory someone else made is left alone.
    fs.mkdirSync(path.join(s.cpDir, 'taken'))
    fs.writeFileSync(path.join(s.cpDir, 'taken', 'mine'), 'x')
    const taken = await checkpoint(s, { name: 'taken' })
    expect(taken.status).toBe(409)
    expect(fs.readdirSync(path.join(s.cpDir, 'taken'))).toEqual(['mine'])
    expect(fs.readdirSync(s.cpDir).sort()).toEqual(['Nightly-1.a_b', 'taken'])
    // Neither a refused name nor a request refused earlier counts as a failed checkpoint.
    const stats = (await request(s, 'GET', '/v1/stats', {})).json.server.checkpoints
    expect(stats).toMatchObject({ completed: 1, failed: 0, lastStatus: 'ok' })
  })

  it('needs the token when one is set, over HTTP and RESP', async () => {
    const s = await start({ token: TOKEN })
    const auth = { Authorization: `Bearer ${TOKEN}` }
    const none = await checkpoint(s)
    expect(none.status).toBe(401)
    expect(none.json.code).toBe('STRATA_UNAUTHORIZED')
    expect((await checkpoint(s, undefined, { Authorization: 'Bearer wrong-token-0123456789' })).status).toBe(401)
    expect((await checkpoint(s, {}, { ...auth, Origin: 'http://evil.example' })).status).toBe(403)
    expect(fs.existsSync(s.cpDir)).toBe(false)
    const ok = await checkpoint(s, undefined, auth)
    expect(ok.status, ok.body).toBe(200)

    expect(await rawResp(s.respPort, '*1\r\n$6\r\nBGSAVE\r\nSAVE\r\nLASTSAVE\r\n', 3)).toBe('-NOAUTH Authentication required.\r\n'.repeat(3))
    const r = clients.connect(s.respPort, { password: TOKEN })
    expect(await r.call('SAVE')).toBe('OK')
    expect(fs.readdirSync(s.cpDir)).toHaveLength(2)
    if (hasRedisCli) {
      const p = ['-p', String(s.respPort)]
      expect((await cli([...p, 'BGSAVE'])).stdout).toMatch(/NOAUTH/)
      expect((await cli([...p, '-a', TOKEN, '--no-auth-warning', 'LASTSAVE'])).stdout).toMatch(/^\d+\n$/)
    }
  })
})

describe('one checkpoint at a time', () => {
  it('answers 409 and the Redis error while one is written; BGSAVE SCHEDULE runs one after it', async () => {
    const s = await start()
    const gate = gateCheckpoints(s.server.db)
    const r = clients.connect(s.respPort)
    await r.set('k', 'v')
    const first = checkpoint(s, { name: 'first' })
    await until('the first checkpoint to start', () => gate.calls() === 1)
    const second = await checkpoint(s)
    expect(second.status).toBe(409)
    expect(second.json.code).toBe('STRATA_CHECKPOINT_IN_PROGRESS')
    expect(second.headers['retry-after']).toBe('1')
    await expect(r.call('BGSAVE')).rejects.toThrow(/^ERR Background save already in progress$/)
    await expect(r.call('SAVE')).rejects.toThrow(/^ERR Background save already in progress$/)
    expect(await r.call('BGSAVE', 'SCHEDULE')).toBe('Background saving scheduled')
    expect(await r.call('BGSAVE', 'schedule')).toBe('Background saving scheduled')
    const info = parseInfo((await r.info('persistence')) as string)
    expect(info.rdb_bgsave_in_progress).toBe('1')
    expect(Number(info.rdb_current_bgsave_time_sec)).toBeGreaterThanOrEqual(0)
    expect((await request(s, 'GET', '/v1/stats', {})).json.server.checkpoints).toMatchObject({ inProgress: true, scheduled: true, completed: 0 })
    expect((await request(s, 'GET', '/metrics', {})).body).toMatch(/^strata_checkpoint_in_progress 1$/m)
    gate.release()
    const done = await first
    expect(done.status, done.body).toBe(200)
    // The two SCHEDULEs made one more checkpoint, after the first.
    await until('the scheduled checkpoint', async () => parseInfo((await r.info('persistence')) as string).rdb_saves === '2')
    await sleep(50)
    const after = parseInfo((await r.info('persistence')) as string)
    expect(after).toMatchObject({ rdb_bgsave_in_progress: '0', rdb_saves: '2', rdb_last_bgsave_status: 'ok' })
    expect(gate.calls()).toBe(2)
    expect(fs.readdirSync(s.cpDir)).toHaveLength(2)
    expect(s.logs.filter((l) => / ms \(HTTP\)$/.test(l))).toHaveLength(1)
    expect(s.logs.filter((l) => / ms \(BGSAVE\)$/.test(l))).toHaveLength(1)
  })
})

describe('RESP: BGSAVE, SAVE, LASTSAVE, INFO persistence', () => {
  it('BGSAVE starts a checkpoint; LASTSAVE and INFO persistence follow it', async () => {
    const s = await start({ http: null })
    const r = clients.connect(s.respPort)
    const lastsave0 = (await r.lastsave()) as number
    expect(Math.abs(lastsave0 - Date.now() / 1000)).toBeLessThan(5) // the start time before any checkpoint, as Redis after loading
    const info0 = parseInfo((await r.info('persistence')) as string)
    expect(info0).toMatchObject({
      loading: '0',
      rdb_bgsave_in_progress: '0',
      rdb_last_save_time: String(lastsave0),
      rdb_last_bgsave_status: 'ok',
      rdb_last_bgsave_time_sec: '-1',
      rdb_saves: '0',
      rdb_changes_since_last_save: '0',
      strata_checkpoint_dir: s.cpDir,
      strata_last_checkpoint_dir: '',
    })
    for (let i = 0; i < 10; i++) await r.set(`key:${i}`, `v${i}`)
    expect(Number(parseInfo((await r.info('persistence')) as string).rdb_changes_since_last_save)).toBe(10)

    await nextSecond()
    expect(await r.bgsave()).toBe('Background saving started')
    await until('BGSAVE to finish', async () => parseInfo((await r.info('persistence')) as string).rdb_saves === '1')
    const info = parseInfo((await r.info('persistence')) as string)
    const lastsave = (await r.lastsave()) as number
    expect(lastsave).toBeGreaterThan(lastsave0)
    expect(info).toMatchObject({
      rdb_bgsave_in_progress: '0',
      rdb_last_save_time: String(lastsave),
      rdb_last_bgsave_status: 'ok',
      rdb_last_bgsave_time_sec: '0',
      rdb_current_bgsave_time_sec: '-1',
      rdb_changes_since_last_save: '0',
    })
    expect(path.dirname(info.strata_last_checkpoint_dir)).toBe(s.cpDir)
    expect(Number(info.strata_last_checkpoint_sequence)).toBe(10)
    await withDb(info.strata_last_checkpoint_dir, async (db) => {
      for (let i = 0; i < 10; i++) expect((await db.get(`key:${i}`))?.toString()).toBe(`v${i}`)
    })
    expect(s.logs.filter((l) => l.startsWith(`checkpoint ${info.strata_last_checkpoint_dir}: sequence 10,`) && l.endsWith('(BGSAVE)'))).toHaveLength(1)

    await expect(r.call('BGSAVE', 'NOW')).rejects.toThrow(/^ERR syntax error$/)
    await expect(r.call('BGSAVE', 'SCHEDULE', 'x')).rejects.toThrow(/^ERR syntax error$/)
    await expect(r.call('SAVE', 'x')).rejects.toThrow(/wrong number of arguments for 'save' command/)
    await expect(r.call('LASTSAVE', 'x')).rejects.toThrow(/wrong number of arguments for 'lastsave' command/)
  })

  it('SAVE answers OK once the checkpoint is written, holding the writes pipelined before it', async () => {
    const s = await start({ http: null })
    const r = clients.connect(s.respPort)
    const replies = await r.pipeline().set('a', '1').mset('b', '2', 'c', '3').incr('n').save().set('after', 'x').exec()
    expect(replies!.map(([e, v]) => e ?? v)).toEqual(['OK', 'OK', 1, 'OK', 'OK'])
    const info = parseInfo((await r.info('persistence')) as string)
    expect(info.rdb_saves).toBe('1')
    expect(info.rdb_changes_since_last_save).toBe('1')
    await withDb(info.strata_last_checkpoint_dir, async (db) => {
      expect((await db.get('a'))?.toString()).toBe('1')
      expect((await db.get('c'))?.toString()).toBe('3')
      expect((await db.get('n'))?.toString()).toBe('1')
      expect(await db.get('after')).toBeUndefined()
    })
    // Not inside MULTI (SAVE as in Redis; BGSAVE too: its checkpoint would miss the transaction's writes).
    await expect(r.multi().set('m', '1').save().exec()).rejects.toThrow(/EXECABORT/)
    await r.call('MULTI')
    await expect(r.call('BGSAVE')).rejects.toThrow(/^ERR Command not allowed inside a transaction$/)
    await expect(r.call('EXEC')).rejects.toThrow(/EXECABORT/)
    expect(await r.get('m')).toBeNull()
  })

  it('COMMAND reports SAVE, BGSAVE and LASTSAVE as Redis 7 does', async () => {
    const s = await start({ http: null })
    const r = clients.connect(s.respPort, { protocol: 2 })
    const [save, bgsave, lastsave] = (await r.call('COMMAND', 'INFO', 'save', 'bgsave', 'lastsave')) as unknown[][]
    expect(save.slice(0, 7)).toEqual(['save', 1, ['admin', 'noscript', 'no_async_loading', 'no_multi'], 0, 0, 0, ['@admin', '@dangerous', '@slow']])
    expect(bgsave.slice(0, 7)).toEqual(['bgsave', -1, ['admin', 'noscript', 'no_async_loading', 'no_multi'], 0, 0, 0, ['@admin', '@dangerous', '@slow']])
    expect(lastsave.slice(0, 7)).toEqual(['lastsave', 1, ['loading', 'stale', 'fast'], 0, 0, 0, ['@fast', '@dangerous', '@admin']])
    const list = (await r.call('COMMAND', 'LIST')) as string[]
    expect(list).toEqual(expect.arrayContaining(['save', 'bgsave', 'lastsave']))
    expect(list.filter((n) => !n.includes('|'))).toHaveLength((await r.call('COMMAND', 'COUNT')) as number)
    expect(await r.call('COMMAND', 'LIST', 'FILTERBY', 'ACLCAT', 'admin')).toEqual(expect.arrayContaining(['save', 'bgsave', 'lastsave']))
  })
})

/** Runs redis-cli asynchronously (the server runs in this process). */
function cli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('redis-cli', args, { encoding: 'utf8', timeout: 20_000 }, (_err, stdout, stderr) => resolve({ stdout, stderr }))
  })
}

describe.skipIf(!hasRedisCli && process.env.CI !== 'true')('redis-cli', () => {
  it('BGSAVE, SAVE, LASTSAVE and INFO persistence', async () => {
    const s = await start({ http: null })
    const p = ['-h', '127.0.0.1', '-p', String(s.respPort)]
    expect((await cli([...p, 'SET', 'x', '1'])).stdout).toBe('OK\n')
    expect((await cli([...p, 'BGSAVE'])).stdout).toBe('Background saving started\n')
    await until('BGSAVE to finish', async () => /rdb_saves:1\r?\n/.test((await cli([...p, 'INFO', 'persistence'])).stdout))
    const info = parseInfo((await cli([...p, 'INFO', 'persistence'])).stdout)
    expect(info).toMatchObject({ rdb_bgsave_in_progress: '0', rdb_last_bgsave_status: 'ok' })
    expect((await cli([...p, 'LASTSAVE'])).stdout).toBe(`${info.rdb_last_save_time}\n`)
    expect((await cli([...p, 'SAVE'])).stdout).toBe('OK\n')
    const dirs = fs.readdirSync(s.cpDir)
    expect(dirs).toHaveLength(2)
    for (const d of dirs) await withDb(path.join(s.cpDir, d), async (db) => expect((await db.get('x'))?.toString()).toBe('1'))
  })
})

describe('shutdown, failures and options', () => {
  it('a graceful shutdown waits for a running BGSAVE before closing the database', async () => {
    const s = await start({ http: null })
    const gate = gateCheckpoints(s.server.db)
    const r = clients.connect(s.respPort)
    await r.set('k', 'v')
    expect(await r.bgsave()).toBe('Background saving started')
    let closed = false
    const closing = s.server.close().then(() => (closed = true))
    await sleep(150)
    expect(closed).toBe(false)
    gate.release()
    await closing
    const dirs = fs.readdirSync(s.cpDir)
    expect(dirs).toHaveLength(1)
    await withDb(path.join(s.cpDir, dirs[0]), async (db) => expect((await db.get('k'))?.toString()).toBe('v'))
  })

  it('reports a failed checkpoint: HTTP 500, SAVE error, BGSAVE status err, the log', async () => {
    const file = path.join(root, 'not-a-directory')
    fs.writeFileSync(file, 'x')
    const s = await start({ checkpointDir: path.join(file, 'checkpoints') })
    const r = clients.connect(s.respPort)
    const h = await checkpoint(s)
    expect(h.status).toBe(500)
    expect(h.json.code).toBe('STRATA_IO_ERROR')
    await expect(r.call('SAVE')).rejects.toThrow(/^ERR checkpoint failed: /)
    expect(await r.bgsave()).toBe('Background saving started')
    await until('BGSAVE to fail', async () => parseInfo((await r.info('persistence')) as string).strata_checkpoints_failed === '3')
    const info = parseInfo((await r.info('persistence')) as string)
    expect(info).toMatchObject({ rdb_last_bgsave_status: 'err', rdb_saves: '0', rdb_bgsave_in_progress: '0', strata_last_checkpoint_dir: '' })
    expect((await request(s, 'GET', '/metrics', {})).body).toMatch(/^strata_checkpoints_total\{status="error"\} 3$/m)
    expect(s.logs.filter((l) => /^checkpoint .* failed \((HTTP|SAVE|BGSAVE)\): /.test(l))).toHaveLength(3)
    // The server goes on.
    expect(await r.set('still', 'ok')).toBe('OK')
  })

  it('checks the checkpoint directory option', async () => {
    const dir = path.join(root, 'opts')
    expect(resolveServerOptions({ dir }).checkpointDir).toBe(`${dir}.checkpoints`)
    expect(resolveServerOptions({ dir: `${dir}/` }).checkpointDir).toBe(`${dir}.checkpoints`)
    expect(resolveServerOptions({ dir, checkpointDir: 'rel/cps' }).checkpointDir).toBe(path.resolve('rel/cps'))
    expect(resolveServerOptions({ dir, checkpointDir: `${dir}..x` }).checkpointDir).toBe(`${dir}..x`)
    expect(() => resolveServerOptions({ dir, checkpointDir: dir })).toThrow(/inside the data directory/)
    expect(() => resolveServerOptions({ dir, checkpointDir: path.join(dir, 'cps') })).toThrow(/inside the data directory/)
    expect(() => resolveServerOptions({ dir, checkpointDir: '' })).toThrow(/non-empty/)
    await expect(startServer({ dir, http: '127.0.0.1:0', resp: null, checkpointDir: path.join(dir, 'x'), log: () => {} })).rejects.toThrow(/inside the data directory/)
    expect(fs.existsSync(dir)).toBe(false)
    const fromCli = serverOptionsFromCli({ dir: 'data', http: '127.0.0.1:0', resp: 'off', checkpointDir: 'cps' })
    expect(fromCli.checkpointDir).toBe(path.resolve('cps'))
    expect(serverOptionsFromCli({ dir: 'data', http: '127.0.0.1:0', resp: 'off' }).checkpointDir).toBeUndefined()
  })
})
