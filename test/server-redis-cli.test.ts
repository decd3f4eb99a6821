/**
 * The RESP front end against the real `redis-cli` (Debian redis-tools):
 * one-shot commands, RESP3 (-3), stdin scripts (the interactive path, which
 * starts with COMMAND DOCS), --scan, --pipe mass insertion, -x, AUTH (-a).
 * Skipped when redis-cli is not on PATH, except under CI=true (.ci/run
 * installs it), where it fails.
 */
import { execFile, spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startServer, type StrataServer } from '../src/server/index.js'
import { tempDir } from './unit/helpers.js'

const hasRedisCli = spawnSync('redis-cli', ['--version'], { encoding: 'utf8' }).status === 0

/** Runs redis-cli asynchronously (the server runs in this process: a synchronous spawn would deadlock). */
function cli(args: string[], input?: string | Buffer): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile('redis-cli', args, { encoding: 'buffer', timeout: 20_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ stdout: stdout.toString('latin1'), stderr: stderr.toString('latin1'), code: err ? ((err as { code?: number }).code ?? 1) : 0 })
    })
    if (input !== undefined) child.stdin!.end(input)
    else child.stdin!.end()
  })
}

describe.skipIf(!hasRedisCli && process.env.CI !== 'true')('redis-cli', () => {
  let server: StrataServer
  let cleanup: () => void
  let p: string[]
  beforeAll(async () => {
    if (!hasRedisCli) throw new Error('redis-cli not found (apt-get install redis-tools; .ci/run installs it): this test must run in CI')
    const t = tempDir('strata-cli-')
    cleanup = t.cleanup
    server = await startServer({ dir: t.dir, http: null, resp: '127.0.0.1:0', log: () => {} })
    p = ['-h', '127.0.0.1', '-p', String(server.respPort)]
  })
  afterAll(async () => {
    await server?.close()
    cleanup?.()
  })

  it('runs one-shot commands', async () => {
    expect((await cli([...p, 'SET', 'greeting', 'hello world'])).stdout).toBe('OK\n')
    expect((await cli([...p, 'GET', 'greeting'])).stdout).toBe('hello world\n')
    expect((await cli([...p, 'INCRBY', 'n', '5'])).stdout).toBe('5\n')
    expect((await cli([...p, 'MGET', 'greeting', 'nope', 'n'])).stdout).toBe('hello world\n\n5\n')
    expect((await cli([...p, 'PING'])).stdout).toBe('PONG\n')
    expect((await cli([...p, 'DBSIZE'])).stdout).toBe('2\n')
    expect((await cli([...p, 'INFO', 'persistence'])).stdout).toMatch(/loading:0/)
    const err = await cli([...p, 'SET', 'only-key'])
    expect(err.stdout + err.stderr).toMatch(/ERR wrong number of arguments for 'set' command/)
    const unknown = await cli([...p, 'FROBNICATE'])
    expect(unknown.stdout + unknown.stderr).toMatch(/ERR unknown command 'FROBNICATE'/)
  })

  it('speaks RESP3 after HELLO 3 (-3)', async () => {
    expect((await cli([...p, '-3', 'GET', 'nope'])).stdout).toMatch(/^\(nil\)\n$|^\n$/)
    const hello = await cli([...p, '-3', 'HELLO', '3'])
    expect(hello.stdout).toMatch(/proto\n3\n|proto\s+3/)
  })

  it('runs a script from stdin, MULTI/EXEC included', async () => {
    const out = await cli(p, 'SET s 1\nINCR s\nMULTI\nINCR s\nGET s\nEXEC\nGET s\n')
    expect(out.stdout).toBe('OK\n2\nOK\nQUEUED\nQUEUED\n3\n3\n3\n')
  })

  it('scans with --scan --pattern', async () => {
    const keys = Array.from({ length: 120 }, (_, i) => `scan:${String(i).padStart(3, '0')}`)
    await cli([...p, 'MSET', ...keys.flatMap((k) => [k, 'v'])])
    const out = await cli([...p, '--scan', '--pattern', 'scan:*'])
    expect(out.stdout.trim().split('\n')).toEqual(keys)
  })

  it('mass-inserts with --pipe', async () => {
    const n = 20_000
    const proto = Array.from({ length: n }, (_, i) => {
      const k = `pipe:${i}`
      const v = `value-${i}`
      return `*3\r\n$3\r\nSET\r\n$${k.length}\r\n${k}\r\n$${v.length}\r\n${v}\r\n`
    }).join('')
    const out = await cli([...p, '--pipe'], proto)
    expect(out.stdout).toMatch(new RegExp(`errors: 0, replies: ${n}`))
    expect((await cli([...p, 'GET', `pipe:${n - 1}`])).stdout).toBe(`value-${n - 1}\n`)
  })

  it('reads a binary value from stdin with -x', async () => {
    const value = Buffer.from([0, 1, 2, 255, 13, 10])
    expect((await cli([...p, '-x', 'SET', 'bin'], value)).stdout).toBe('OK\n')
    expect((await cli([...p, 'STRLEN', 'bin'])).stdout).toBe('6\n')
  })

  it('authenticates with -a', async () => {
    const t = tempDir('strata-cli-auth-')
    const token = 'cli-token-0123456789abcdef'
    const s = await startServer({ dir: t.dir, http: null, resp: '127.0.0.1:0', token, log: () => {} })
    try {
      const ap = ['-h', '127.0.0.1', '-p', String(s.respPort)]
      expect((await cli([...ap, 'GET', 'x'])).stdout).toMatch(/NOAUTH Authentication required/)
      expect((await cli([...ap, '-a', token, '--no-auth-warning', 'SET', 'x', '1'])).stdout).toBe('OK\n')
      expect((await cli([...ap, '-a', 'wrong-token-0000000000', '--no-auth-warning', 'GET', 'x'])).stdout + '').toMatch(/WRONGPASS|NOAUTH/)
    } finally {
      await s.close()
      t.cleanup()
    }
  })
})
