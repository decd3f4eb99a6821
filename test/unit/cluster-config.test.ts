/**
 * src/cluster/cluster-config.ts without etcd: the cluster URL of `--cluster`
 * (endpoints, default port, IPv6, the one path segment) and the config's
 * validation. The etcd side (init's txn, reading members) is tested against
 * a real etcd in test/cluster/cluster-cli.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { StrataError } from '../../src/base/errors.js'
import { formatClusterUrl, parseClusterUrl, parseMember, sameClusterConfig, validateClusterConfig } from '../../src/cluster/cluster-config.js'
import { EtcdError } from '../../src/cluster/etcd/errors.js'

function invalidArgument(f: () => unknown): string {
  try {
    f()
  } catch (err) {
    expect(err).toBeInstanceOf(StrataError)
    expect((err as StrataError).code).toBe('STRATA_INVALID_ARGUMENT')
    return (err as Error).message
  }
  throw new Error('expected STRATA_INVALID_ARGUMENT, nothing was thrown')
}

describe('parseClusterUrl', () => {
  it.each([
    ['etcd://h1:2379,h2:2379/prod', ['http://h1:2379', 'http://h2:2379'], 'prod'],
    ['etcd://h1/prod', ['http://h1:2379'], 'prod'],
    ['etcd://127.0.0.1:23790/c-1', ['http://127.0.0.1:23790'], 'c-1'],
    ['ETCD://Host.Example.com:1/A.b_c', ['http://host.example.com:1'], 'A.b_c'],
    ['etcd://[::1]:2379/x', ['http://[::1]:2379'], 'x'],
    ['etcd://[::1]/x', ['http://[::1]:2379'], 'x'],
    ['etcd://[2001:DB8::5],h2,10.0.0.3:4001/x', ['http://[2001:db8::5]:2379', 'http://h2:2379', 'http://10.0.0.3:4001'], 'x'],
    [`etcd://h/${'n'.repeat(64)}`, ['http://h:2379'], 'n'.repeat(64)],
  ])('%s', (url, endpoints, cluster) => {
    expect(parseClusterUrl(url)).toEqual({ endpoints, cluster })
  })

  it('round-trips through formatClusterUrl', () => {
    const a = parseClusterUrl('etcd://[::1],h2:1234/prod')
    expect(formatClusterUrl(a)).toBe('etcd://[::1]:2379,h2:1234/prod')
    expect(parseClusterUrl(formatClusterUrl(a))).toEqual(a)
  })

  it.each([
    ['', 'no scheme'],
    ['h1:2379/prod', 'no scheme'],
    ['http://h1:2379/prod', 'scheme must be etcd://'],
    ['etcd://h1:2379', 'no cluster name'],
    ['etcd://h1:2379/', 'no cluster name'],
    ['etcd:///prod', 'no etcd host'],
    ['etcd://h1/prod/', 'exactly one segment'],
    ['etcd://h1/a/b', 'exactly one segment'],
    ['etcd://h1/.', 'cluster name'],
    ['etcd://h1/..', 'cluster name'],
    ['etcd://h1/a b', 'white space'],
    ['etcd://h1/a%2Fb', 'cluster name'],
    [`etcd://h/${'n'.repeat(65)}`, 'cluster name'],
    ['etcd://h1/prod?x=1', 'query'],
    ['etcd://h1/prod#f', 'query or fragment'],
    ['etcd://user:pw@h1/prod', 'user names'],
    ['etcd://h1:0/prod', 'out of range'],
    ['etcd://h1:65536/prod', 'out of range'],
    ['etcd://h1:abc/prod', 'not a number'],
    ['etcd://h1:/prod', 'not a number'],
    ['etcd://h1,,h2/prod', 'empty host'],
    ['etcd://h1,/prod', 'empty host'],
    ['etcd://:2379/prod', 'no host name'],
    ['etcd://::1/prod', 'in brackets'],
    ['etcd://[::1/prod', 'without "]"'],
    ['etcd://[not-ip]:1/prod', 'not an IPv6 address'],
    ['etcd://[fe80::1%25eth0]/prod', 'not an IPv6 address'],
    ['etcd://[::1]x/prod', 'expected ":port"'],
    ['etcd://bad_host!/prod', 'not a host name'],
    ['etcd://-h/prod', 'not a host name'],
    ['etcd://h1,h1:2379/prod', 'listed twice'],
  ])('rejects %j (%s)', (url, why) => {
    const message = invalidArgument(() => parseClusterUrl(url))
    expect(message).toContain(why)
    expect(message).toContain('expected etcd://host[:port]')
  })
})

describe('validateClusterConfig', () => {
  const good = { replicas: ['n1', 'n2', 'n3'], ack: 'majority', leaseTtlSeconds: 2 }

  it('accepts 1-7 unique node ids, both ack modes, TTLs 1-60, and returns a copy', () => {
    const c = validateClusterConfig(good)
    expect(c).toEqual(good)
    expect(c.replicas).not.toBe(good.replicas)
    expect(validateClusterConfig({ ...good, replicas: ['a'] }).replicas).toEqual(['a'])
    expect(validateClusterConfig({ ...good, replicas: ['a', 'b'] }).replicas).toEqual(['a', 'b'])
    expect(validateClusterConfig({ ...good, replicas: ['1', '2', '3', '4', '5', '6', '7'] }).replicas).toHaveLength(7)
    expect(validateClusterConfig({ ...good, replicas: ['node-1.east_A', 'X'.repeat(64)] }).replicas).toHaveLength(2)
    expect(validateClusterConfig({ ...good, ack: 'async' }).ack).toBe('async')
    expect(validateClusterConfig({ ...good, leaseTtlSeconds: 1 }).leaseTtlSeconds).toBe(1)
    expect(validateClusterConfig({ ...good, leaseTtlSeconds: 60 }).leaseTtlSeconds).toBe(60)
    // Field order is fixed (what initCluster stores).
    expect(JSON.stringify(validateClusterConfig({ leaseTtlSeconds: 5, ack: 'async', replicas: ['a'] }))).toBe('{"replicas":["a"],"ack":"async","leaseTtlSeconds":5}')
  })

  it.each([
    [null, 'must be an object'],
    [[], 'must be an object'],
    ['x', 'must be an object'],
    [{ ...good, extra: 1 }, 'unknown field(s) "extra"'],
    [{ ack: 'majority', leaseTtlSeconds: 2 }, 'replicas must be an array'],
    [{ ...good, replicas: 'n1,n2' }, 'replicas must be an array'],
    [{ ...good, replicas: [] }, '1-7 node ids, got 0'],
    [{ ...good, replicas: ['1', '2', '3', '4', '5', '6', '7', '8'] }, '1-7 node ids, got 8'],
    [{ ...good, replicas: ['n1', 'n1'] }, 'listed twice'],
    [{ ...good, replicas: ['n1', ''] }, 'replica id ""'],
    [{ ...good, replicas: ['-n1'] }, 'replica id "-n1"'],
    [{ ...good, replicas: ['a/b'] }, 'replica id "a/b"'],
    [{ ...good, replicas: ['X'.repeat(65)] }, 'replica id'],
    [{ ...good, replicas: [1] }, 'replica id 1'],
    [{ ...good, ack: 'all' }, "ack must be 'majority' or 'async'"],
    [{ replicas: ['a'], leaseTtlSeconds: 2 }, 'ack must be'],
    [{ ...good, leaseTtlSeconds: 0 }, 'integer 1-60'],
    [{ ...good, leaseTtlSeconds: 61 }, 'integer 1-60'],
    [{ ...good, leaseTtlSeconds: 1.5 }, 'integer 1-60'],
    [{ ...good, leaseTtlSeconds: '2' }, 'integer 1-60'],
    [{ ...good, leaseTtlSeconds: Number.NaN }, 'integer 1-60'],
    [{ replicas: ['a'], ack: 'async' }, 'integer 1-60, got nothing'],
  ])('rejects %j (%s)', (value, why) => {
    expect(invalidArgument(() => validateClusterConfig(value))).toContain(why)
  })

  it('sameClusterConfig compares replicas as a set', () => {
    const a = validateClusterConfig(good)
    expect(sameClusterConfig(a, { ...a, replicas: ['n3', 'n1', 'n2'] })).toBe(true)
    expect(sameClusterConfig(a, { ...a, replicas: ['n1', 'n2'] })).toBe(false)
    expect(sameClusterConfig(a, { ...a, replicas: ['n1', 'n2', 'n4'] })).toBe(false)
    expect(sameClusterConfig(a, { ...a, ack: 'async' })).toBe(false)
    expect(sameClusterConfig(a, { ...a, leaseTtlSeconds: 3 })).toBe(false)
  })
})

describe('parseMember', () => {
  const kv = (key: string, value: string) => ({ key: Buffer.from(key), value: Buffer.from(value), createRevision: 1n, modRevision: 1n, version: 1n, lease: 0n })
  const prefix = '/strata/c/members/'

  it('reads { http, resp, peer }; absent http/resp are null, other fields ignored', () => {
    expect(parseMember(kv(`${prefix}n1`, '{"http":"127.0.0.1:1","resp":null,"peer":"127.0.0.1:2","x":1}'), prefix)).toEqual({ id: 'n1', http: '127.0.0.1:1', resp: null, peer: '127.0.0.1:2' })
    expect(parseMember(kv(`${prefix}n2`, '{"peer":"h:3"}'), prefix)).toEqual({ id: 'n2', http: null, resp: null, peer: 'h:3' })
  })

  it.each([
    [`${prefix}n1`, 'nope', 'not JSON'],
    [`${prefix}n1`, '[]', 'expected { http, resp, peer }'],
    [`${prefix}n1`, '{"http":"h:1"}', 'peer must be'],
    [`${prefix}n1`, '{"http":5,"peer":"h:1"}', 'http must be'],
    [`${prefix}a/b`, '{"peer":"h:1"}', 'not a node id'],
  ])('rejects %s = %s as a protocol error', (key, value, why) => {
    let err: unknown
    try {
      parseMember(kv(key, value), prefix)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(EtcdError)
    expect((err as EtcdError).code).toBe('protocol')
    expect((err as Error).message).toContain(why)
  })
})
