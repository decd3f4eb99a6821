/**
 * Issue #16, findings 4 and 8, over the Redis protocol:
 *
 * - Glob matching has one step budget per command and a pattern length
 *   limit: a pathological SCAN MATCH / KEYS pattern answers (or SCAN returns
 *   early with a cursor) within bounded time, and a concurrent PING is
 *   answered within ~50 ms meanwhile.
 * - INFO answers its sections as Redis 7 (cpu, commandstats with
 *   rejected/failed calls, replication ids and offsets; default, all,
 *   everything, several sections) and COMMAND LIST takes FILTERBY, refuses
 *   bad arguments and lists subcommands (`client|list`), consistently with
 *   COMMAND COUNT and COMMAND INFO.
 */
import * as net from 'node:net'
import { Redis, type RedisOptions } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ServerOptionsInput } from '../src/server/index.js'
import { RedisClients, startRespServer, type RunningServer } from './resp-helpers.js'

const start = (options?: ServerOptionsInput): Promise<RunningServer> => startRespServer('strata-inspect-', options)

const clients = new RedisClients()
const client = (port: number, options?: RedisOptions): Redis => clients.connect(port, options)

/** Sends `input` on a fresh connection; resolves with the first reply bytes. */
function rawReply(port: number, input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(input))
    s.once('data', (d) => {
      resolve(d.toString('latin1'))
      s.destroy()
    })
    s.once('error', reject)
  })
}

let main: RunningServer
let port: number
beforeAll(async () => {
  main = await start()
  port = main.server.respPort!
})
afterAll(async () => {
  await clients.closeAll()
  await main.stop()
})

/** Pings every few ms while `work` runs; returns the slowest PING round trip and how long `work` took. */
async function pingDuring<T>(work: () => Promise<T>): Promise<{ result: T; maxPingMs: number; workMs: number }> {
  const pinger = client(port)
  await pinger.ping()
  let maxPingMs = 0
  let done = false
  const pinging = (async () => {
    while (!done) {
      const t = performance.now()
      await pinger.ping()
      maxPingMs = Math.max(maxPingMs, performance.now() - t)
      await new Promise((r) => setTimeout(r, 2))
    }
  })()
  const t = performance.now()
  try {
    const result = await work()
    return { result, maxPingMs, workMs: performance.now() - t }
  } finally {
    done = true
    await pinging
  }
}

describe('glob patterns under attack', () => {
  const evil = '*a*a*a*a*a*a*a*a*a*a*a*b'

  it('SCAN MATCH and KEYS with *a*a…*b over keys of many a: bounded, and PING answers within 50 ms meanwhile', async () => {
    const r = client(port)
    // 300 keys of 60-90 a's: Redis-style backtracking needs ~C(60,11) steps per key.
    const keys = Array.from({ length: 300 }, (_, i) => 'a'.repeat(60 + (i % 30)) + String(i).padStart(3, '0'))
    await r.mset(...keys.flatMap((k) => [k, 'v']))
    const scan = await pingDuring(async () => {
      const seen: string[] = []
      let cursor = '0'
      do {
        const [next, batch] = (await r.call('SCAN', cursor, 'MATCH', evil, 'COUNT', '100000')) as [string, string[]]
        seen.push(...batch)
        cursor = next
      } while (cursor !== '0')
      return seen
    })
    expect(scan.result).toEqual([])
    expect(scan.workMs).toBeLessThan(2000)
    expect(scan.maxPingMs).toBeLessThan(50)
    const keysCmd = await pingDuring(() => r.keys(evil))
    expect(keysCmd.result).toEqual([])
    expect(keysCmd.maxPingMs).toBeLessThan(50)
    // The same pattern still matches what it should.
    await r.set('aaaaaaaaaaab', 'v')
    expect(await r.keys(evil)).toEqual(['aaaaaaaaaaab'])
  })

  it('SCAN returns early with a cursor once its step budget is spent, and the client continues; a key no budget can decide is an error', async () => {
    const s = await start()
    try {
      const r = client(s.server.respPort!)
      // Each key costs ~100 × 1000 + 1000²/2 steps against `*a{1000}b`: more than half a SCAN's budget.
      const costly = Array.from({ length: 12 }, (_, i) => 'a'.repeat(1100) + String(i).padStart(2, '0'))
      await r.mset(...costly.flatMap((k) => [k, 'v']), 'a'.repeat(999) + 'b', 'v')
      const pattern = '*' + 'a'.repeat(1000) + 'b'
      let calls = 0
      let cursor = '0'
      const found: string[] = []
      const pinged = await pingDuring(async () => {
        do {
          const [next, batch] = (await r.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000')) as [string, string[]]
          found.push(...batch)
          cursor = next
          calls++
        } while (cursor !== '0')
      })
      expect(found).toEqual([])
      expect(calls).toBeGreaterThanOrEqual(12) // returned early, after each key
      expect(pinged.maxPingMs).toBeLessThan(50)
      expect(await r.keys('*' + 'a'.repeat(998) + 'b')).toEqual(['a'.repeat(999) + 'b'])
      // One key whose match alone needs more steps than a SCAN may spend.
      await r.set('z' + 'a'.repeat(4000), 'v')
      await expect(r.call('SCAN', '0', 'MATCH', 'z*' + 'a'.repeat(1000) + 'c', 'COUNT', '1000')).rejects.toThrow(/pattern too complex/)
    } finally {
      await s.stop()
    }
  })

  it('refuses patterns longer than 1024 bytes; caps COUNT', async () => {
    const r = client(port)
    const long = 'x*'.repeat(513)
    await expect(r.call('SCAN', '0', 'MATCH', long)).rejects.toThrow(/pattern is longer than 1024 bytes/)
    await expect(r.keys(long)).rejects.toThrow(/pattern is longer than 1024 bytes/)
    await r.mset(...Array.from({ length: 10_050 }, (_, i) => [`cap:${String(i).padStart(5, '0')}`, '']).flat())
    const [cursor, batch] = (await r.call('SCAN', '0', 'MATCH', 'cap:*', 'COUNT', '1000000')) as [string, string[]]
    expect(batch).toHaveLength(10_000)
    expect(cursor).not.toBe('0')
  })
})

/** INFO text as a map of section name (lower case) to its fields. */
function sections(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>()
  let current: Map<string, string> | undefined
  for (const line of text.split('\r\n')) {
    if (line.startsWith('# ')) out.set(line.slice(2).toLowerCase(), (current = new Map()))
    else if (line.length > 0) {
      const i = line.indexOf(':')
      current!.set(line.slice(0, i), line.slice(i + 1))
    }
  }
  return out
}

describe('INFO as Redis 7', () => {
  it('has cpu and replication fields; default, all, everything, single and several sections', async () => {
    const r = client(port)
    const def = sections(await r.info())
    expect([...def.keys()]).toEqual(['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cpu', 'cluster', 'strata'])
    expect([...sections(await r.info('default')).keys()]).toEqual([...def.keys()])
    const cpu = def.get('cpu')!
    for (const f of ['used_cpu_sys', 'used_cpu_user', 'used_cpu_sys_children', 'used_cpu_user_children', 'used_cpu_sys_main_thread', 'used_cpu_user_main_thread']) {
      expect(cpu.get(f), f).toMatch(/^\d+\.\d{6}$/)
    }
    expect(Number(cpu.get('used_cpu_user'))).toBeGreaterThan(0)
    const repl = def.get('replication')!
    expect(repl.get('role')).toBe('master')
    expect(repl.get('connected_slaves')).toBe('0')
    expect(repl.get('master_replid')).toMatch(/^[0-9a-f]{40}$/)
    expect(repl.get('master_replid2')).toBe('0'.repeat(40))
    expect(repl.get('master_repl_offset')).toBe('0')
    expect(repl.get('second_repl_offset')).toBe('-1')
    expect(def.get('server')!.get('run_id')).toMatch(/^[0-9a-f]{40}$/)
    expect(def.has('commandstats')).toBe(false)

    const all = sections(await r.info('all'))
    expect([...all.keys()]).toEqual(['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cpu', 'commandstats', 'cluster', 'strata'])
    expect([...sections(await r.call('INFO', 'everything') as string).keys()]).toEqual([...all.keys()])
    expect([...sections(await r.info('cpu')).keys()]).toEqual(['cpu'])
    expect([...sections(await r.call('INFO', 'CPU', 'replication') as string).keys()]).toEqual(['replication', 'cpu'])
    expect([...sections(await r.call('INFO', 'commandstats', 'default') as string).keys()]).toEqual([...all.keys()])
    expect(await r.info('nosuchsection')).toBe('')
    expect(def.get('replication')!.get('master_replid')).toBe(all.get('replication')!.get('master_replid'))
  })

  it('commandstats: calls, usec, usec_per_call, rejected_calls (arity, NOAUTH), failed_calls', async () => {
    const s = await start({ token: 'sekret' })
    try {
      const r = client(s.server.respPort!, { password: 'sekret' })
      await r.set('k', 'v')
      await r.get('k')
      await r.get('k')
      await expect(r.call('GET')).rejects.toThrow(/wrong number of arguments/)
      await expect(r.call('INCR', 'k')).rejects.toThrow(/not an integer/)
      expect(await rawReply(s.server.respPort!, 'GET k\r\n')).toMatch(/^-NOAUTH/)
      const stats = sections(await r.info('commandstats')).get('commandstats')!
      const parse = (v: string | undefined): Record<string, string> => Object.fromEntries((v ?? '').split(',').map((kv) => kv.split('=')))
      const get = parse(stats.get('cmdstat_get'))
      expect(get.calls).toBe('2')
      expect(get.rejected_calls).toBe('2') // wrong arity, NOAUTH
      expect(get.failed_calls).toBe('0')
      expect(Number(get.usec)).toBeGreaterThanOrEqual(0)
      expect(get.usec_per_call).toMatch(/^\d+\.\d\d$/)
      expect(parse(stats.get('cmdstat_incr'))).toMatchObject({ calls: '1', failed_calls: '1', rejected_calls: '0' })
      expect(stats.get('cmdstat_set')).toMatch(/^calls=1,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=0,failed_calls=0$/)
      expect(stats.has('cmdstat_del')).toBe(false)
    } finally {
      await s.stop()
    }
  })
})

describe('COMMAND as Redis 7', () => {
  it('LIST lists subcommands as container|sub and takes FILTERBY; bad arguments are a syntax error', async () => {
    const r = client(port)
    const list = (await r.call('COMMAND', 'LIST')) as string[]
    expect(list).toContain('get')
    expect(list).toContain('client|list')
    expect(list).toContain('config|get')
    expect(list).toContain('command|info')
    expect(list.indexOf('client|list')).toBeGreaterThan(list.indexOf('client'))
    // COUNT counts commands, not subcommands (as Redis).
    expect(list.filter((n) => !n.includes('|'))).toHaveLength((await r.call('COMMAND', 'COUNT')) as number)
    expect(await r.call('COMMAND', 'LIST', 'FILTERBY', 'PATTERN', 'client*')).toEqual(list.filter((n) => n.startsWith('client')))
    expect(await r.call('COMMAND', 'LIST', 'filterby', 'pattern', 'G?T')).toEqual(['get'])
    expect(await r.call('COMMAND', 'LIST', 'FILTERBY', 'MODULE', 'foo')).toEqual([])
    const keyspace = (await r.call('COMMAND', 'LIST', 'FILTERBY', 'ACLCAT', 'keyspace')) as string[]
    expect(keyspace).toEqual(expect.arrayContaining(['del', 'exists', 'scan', 'keys', 'dbsize']))
    expect(keyspace).not.toContain('get')
    const read = (await r.call('COMMAND', 'LIST', 'FILTERBY', 'ACLCAT', 'read')) as string[]
    expect(read).toEqual(expect.arrayContaining(['get', 'mget', 'scan']))
    expect(read).not.toContain('set')
    expect(await r.call('COMMAND', 'LIST', 'FILTERBY', 'ACLCAT', 'nosuchcategory')).toEqual([])
    await expect(r.call('COMMAND', 'LIST', 'bad')).rejects.toThrow(/^ERR syntax error$/)
    await expect(r.call('COMMAND', 'LIST', 'FILTERBY', 'COLOR', 'x')).rejects.toThrow(/^ERR syntax error$/)
    await expect(r.call('COMMAND', 'LIST', 'FILTERBY', 'PATTERN')).rejects.toThrow(/^ERR syntax error$/)
    await expect(r.call('COMMAND', 'LIST', 'FILTERBY', 'PATTERN', 'a', 'b')).rejects.toThrow(/^ERR syntax error$/)
    await expect(r.call('COMMAND', 'COUNT', 'x')).rejects.toThrow(/wrong number of arguments for 'command\|count' command/)
    await expect(r.call('COMMAND', 'NOPE')).rejects.toThrow(/unknown subcommand 'NOPE'. Try COMMAND HELP./)
  })

  it('INFO reports ACL categories and subcommands, and answers for container|sub names', async () => {
    const r = client(port, { protocol: 2 })
    const [get] = (await r.call('COMMAND', 'INFO', 'get')) as unknown[][]
    expect(get.slice(0, 7)).toEqual(['get', 2, ['readonly', 'fast'], 1, 1, 1, ['@read', '@fast', '@string']])
    const [client_] = (await r.call('COMMAND', 'INFO', 'client')) as unknown[][]
    const subs = (client_[9] as unknown[][]).map((s) => s[0])
    expect(subs).toContain('client|list')
    const [clientList, missing] = (await r.call('COMMAND', 'INFO', 'CLIENT|LIST', 'client|nope')) as unknown[][]
    expect(clientList.slice(0, 2)).toEqual(['client|list', -2])
    expect(clientList[6]).toEqual(expect.arrayContaining(['@admin', '@dangerous', '@connection']))
    expect(missing).toBeNull()
    // Every listed name has an INFO entry; COMMAND and COMMAND INFO list the same commands.
    const list = (await r.call('COMMAND', 'LIST')) as string[]
    const infos = (await r.call('COMMAND', 'INFO', ...list)) as unknown[][]
    expect(infos.map((i) => i?.[0])).toEqual(list)
    const everything = (await r.call('COMMAND')) as unknown[][]
    expect(everything.map((i) => i[0])).toEqual(list.filter((n) => !n.includes('|')))
    expect(((await r.call('COMMAND', 'INFO')) as unknown[][]).map((i) => i[0])).toEqual(everything.map((i) => i[0]))
  })
})
