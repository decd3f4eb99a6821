/**
 * The peer protocol's transport (src/cluster/peer/peer-server.ts,
 * peer-client.ts) over real loopback sockets, and through the fault proxy
 * (test/cluster/tcp-proxy.ts) for partitions and resets.
 */
import * as net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { frameMessage, PeerClient, PeerError, PeerServer, type PeerHandler, type PeerReply, type PeerRequest } from '../../src/cluster/peer/index.js'
import { startProxy, type TcpProxy } from './tcp-proxy.js'

const HOST = '127.0.0.1'

/** Everything a test opened, closed after it whatever happened. */
const opened: Array<{ close(): unknown }> = []
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close()
})

async function serve(handler: PeerHandler, extra: { onConnectionClosed?: (c: { remote: string; id: number }) => void; log?: (line: string) => void } = {}): Promise<{ server: PeerServer; port: number }> {
  const server = new PeerServer({ handler, ...extra })
  opened.push(server)
  const { port } = await server.listen(HOST, 0)
  return { server, port }
}

async function connect(port: number, options?: { connectTimeoutMs?: number }): Promise<PeerClient> {
  const client = await PeerClient.connect({ host: HOST, port }, options)
  opened.push(client)
  return client
}

async function proxyTo(port: number): Promise<TcpProxy> {
  const proxy = await startProxy(HOST, port)
  opened.push(proxy)
  return proxy
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The rejection of `p` (fails when it resolves). */
async function rejection(p: Promise<unknown>): Promise<PeerError> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(PeerError)
    return err as PeerError
  }
  throw new Error('expected a rejection')
}

async function until(what: string, condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

const append = (i: number, records: Buffer[] = []): PeerRequest => ({ type: 'append', epoch: 1, prevEpoch: 1, prevSeq: i, commitSeq: i, records })

/** A handler that never answers a 'fetch' (a stuck follower) and acks the rest. */
const stuckOnFetch: PeerHandler = (request) => (request.type === 'fetch' ? new Promise<PeerReply>(() => undefined) : { type: 'ok' })

describe('peer transport', () => {
  it('answers a request, with the connection and records passed through', async () => {
    const seen: Array<{ request: PeerRequest; remote: string; id: number }> = []
    const { server, port } = await serve((request, connection) => {
      seen.push({ request, remote: connection.remote, id: connection.id })
      if (request.type === 'fence') return { type: 'fenced', nodeId: 'follower-1', promisedEpoch: request.epoch, lastSeq: 41, epochStarts: [{ epoch: 1, startSequence: 1 }] }
      if (request.type === 'append') return { type: 'fetched', records: request.records.map((r) => Buffer.concat([r, Buffer.from('!')])), lastSeq: request.prevSeq + request.records.length }
      throw new Error('unexpected')
    })
    const client = await connect(port)
    expect(client.isOpen).toBe(true)
    expect(await client.request({ type: 'fence', epoch: 9, leaderId: 'leader-ü' })).toEqual({ type: 'fenced', nodeId: 'follower-1', promisedEpoch: 9, lastSeq: 41, epochStarts: [{ epoch: 1, startSequence: 1 }] })
    const reply = await client.request(append(10, [Buffer.from('a'), Buffer.from('bc')]))
    expect(reply.type).toBe('fetched')
    expect(reply.type === 'fetched' && reply.records.map((r) => r.toString())).toEqual(['a!', 'bc!'])
    expect(reply.type === 'fetched' && reply.lastSeq).toBe(12)
    expect(seen.map((s) => s.request.type)).toEqual(['fence', 'append'])
    expect(seen[0]?.request).toEqual({ type: 'fence', epoch: 9, leaderId: 'leader-ü' })
    expect(seen[0]?.remote).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(seen[1]?.id).toBe(seen[0]?.id)
    expect(server.connectionCount).toBe(1)
    expect(client.pending).toBe(0)
  })

  it('pipelines 1000 appends: the handler is invoked in order without waiting, replies come back in order', async () => {
    const invoked: number[] = []
    let inFlight = 0
    let maxInFlight = 0
    const { port } = await serve(async (request) => {
      if (request.type !== 'append') throw new Error('unexpected')
      invoked.push(request.prevSeq)
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      await sleep(Math.floor(Math.random() * 6)) // settle out of order
      inFlight--
      return { type: 'appended', epoch: 1, lastSeq: request.prevSeq + 1 }
    })
    const client = await connect(port)
    const order = Array.from({ length: 1000 }, (_, i) => i)
    const replies = await Promise.all(order.map((i) => client.request(append(i, [Buffer.from(`record ${i}`)]), { timeoutMs: 10_000 })))
    expect(invoked).toEqual(order)
    expect(replies.map((r) => (r.type === 'appended' ? r.lastSeq : -1))).toEqual(order.map((i) => i + 1))
    expect(maxInFlight).toBeGreaterThan(10) // really pipelined, not one at a time
    expect(client.pending).toBe(0)
  })

  it("answers a throwing handler with an 'error' reply and keeps the connection", async () => {
    const { port } = await serve(async (request) => {
      if (request.type === 'fetch') throw Object.assign(new Error('no such sequence'), { code: 'STRATA_NOT_FOUND' })
      if (request.type === 'install-end') throw new Error('plain failure')
      if (request.type === 'install-begin') return { type: 'appended', epoch: -1, lastSeq: 0 } // cannot be encoded
      return { type: 'ok' }
    })
    const client = await connect(port)
    expect(await client.request({ type: 'fetch', epoch: 1, since: 5, maxBytes: 100 })).toEqual({ type: 'error', code: 'STRATA_NOT_FOUND', message: 'no such sequence' })
    expect(await client.request({ type: 'install-end', epoch: 1 })).toEqual({ type: 'error', code: 'internal', message: 'plain failure' })
    const bad = await client.request({ type: 'install-begin', epoch: 1, sequence: 1, epochStarts: [], files: [] })
    expect(bad.type === 'error' && bad.code).toBe('internal')
    expect(await client.request({ type: 'fence', epoch: 1, leaderId: 'x' })).toEqual({ type: 'ok' })
    expect(client.isOpen).toBe(true)
  })

  it("times out: the late request gets 'timeout', the others 'closed', and the client is closed", async () => {
    const { port } = await serve(stuckOnFetch)
    const client = await connect(port)
    const closes: PeerError[] = []
    client.onClose = (err) => closes.push(err)
    expect(await client.request({ type: 'install-end', epoch: 1 })).toEqual({ type: 'ok' })
    const started = performance.now()
    const stuck = rejection(client.request({ type: 'fetch', epoch: 1, since: 0, maxBytes: 10 }, { timeoutMs: 200 }))
    const behind = [rejection(client.request(append(1), { timeoutMs: 5000 })), rejection(client.request(append(2), { timeoutMs: 5000 }))]
    expect(client.pending).toBe(3)
    const err = await stuck
    expect(err.code).toBe('timeout')
    expect(err.message).toContain(`127.0.0.1:${port}`)
    expect(performance.now() - started).toBeGreaterThanOrEqual(190)
    expect((await Promise.all(behind)).map((e) => e.code)).toEqual(['closed', 'closed'])
    expect(client.isOpen).toBe(false)
    expect(client.pending).toBe(0)
    expect(closes.map((e) => e.code)).toEqual(['timeout'])
    expect((await rejection(client.request({ type: 'install-end', epoch: 1 }))).code).toBe('closed')
  })

  it("server close rejects pending requests with 'closed' and calls onClose", async () => {
    const closedOnServer: number[] = []
    const { server, port } = await serve(stuckOnFetch, { onConnectionClosed: (c) => closedOnServer.push(c.id) })
    const client = await connect(port)
    const closes: PeerError[] = []
    client.onClose = (err) => closes.push(err)
    const pending = [rejection(client.request({ type: 'fetch', epoch: 1, since: 0, maxBytes: 1 })), rejection(client.request(append(1)))]
    await until('the server to see the requests', () => client.pending === 2 && server.connectionCount === 1)
    await sleep(20)
    await server.close()
    expect((await Promise.all(pending)).map((e) => e.code)).toEqual(['closed', 'closed'])
    expect(closes.map((e) => e.code)).toEqual(['closed'])
    expect(client.isOpen).toBe(false)
    expect(server.connectionCount).toBe(0)
    expect(closedOnServer).toHaveLength(1)
  })

  it('close() rejects pending requests and does not call onClose', async () => {
    const { port } = await serve(stuckOnFetch)
    const client = await connect(port)
    let called = 0
    client.onClose = () => called++
    const pending = rejection(client.request({ type: 'fetch', epoch: 1, since: 0, maxBytes: 1 }))
    client.close()
    expect((await pending).code).toBe('closed')
    expect(called).toBe(0)
    expect(client.isOpen).toBe(false)
  })

  it('closes a connection that sends garbage or a reply, and keeps serving the others', async () => {
    const closedIds: number[] = []
    const logs: string[] = []
    const { server, port } = await serve(() => ({ type: 'ok' }), { onConnectionClosed: (c) => closedIds.push(c.id), log: (l) => logs.push(l) })
    const good = await connect(port)
    expect(await good.request(append(0))).toEqual({ type: 'ok' })

    for (const bytes of [Buffer.alloc(64, 0xab), frameMessage({ type: 'ok' })]) {
      const raw = net.connect({ host: HOST, port })
      const ended = new Promise<void>((resolve) => raw.on('close', () => resolve()))
      raw.on('error', () => undefined)
      await new Promise<void>((resolve) => raw.once('connect', () => resolve()))
      raw.write(bytes)
      await ended // the server closed it
    }
    await until('the server to drop both connections', () => closedIds.length === 2)
    expect(logs.filter((l) => l.includes('closing'))).toHaveLength(2)
    expect(server.connectionCount).toBe(1)
    expect(await good.request(append(1))).toEqual({ type: 'ok' })
    const other = await connect(port)
    expect(await other.request(append(2))).toEqual({ type: 'ok' })
  })

  it("takes a request-type message in place of a reply as a protocol error", async () => {
    // A fake "server" that answers any bytes with a request frame.
    const fake = net.createServer((s) => s.on('data', () => s.write(frameMessage({ type: 'install-end', epoch: 1 }))))
    opened.push({ close: () => new Promise<void>((resolve) => fake.close(() => resolve())) })
    await new Promise<void>((resolve) => fake.listen(0, HOST, resolve))
    const client = await connect((fake.address() as net.AddressInfo).port)
    const err = await rejection(client.request(append(0)))
    expect(err.code).toBe('protocol')
    expect(client.isOpen).toBe(false)
  })

  it("fails to connect with 'connect'", async () => {
    const probe = net.createServer()
    await new Promise<void>((resolve) => probe.listen(0, HOST, resolve))
    const port = (probe.address() as net.AddressInfo).port
    await new Promise<void>((resolve) => probe.close(() => resolve()))
    const err = await rejection(PeerClient.connect({ host: HOST, port }))
    expect(err.code).toBe('connect')
    expect(err.message).toContain(`127.0.0.1:${port}`)
  })

  it('rejects a reply type passed to request() without closing', async () => {
    const { port } = await serve(() => ({ type: 'ok' }))
    const client = await connect(port)
    await expect(client.request({ type: 'ok' } as unknown as PeerRequest)).rejects.toThrow(TypeError)
    expect(client.isOpen).toBe(true)
    expect(await client.request(append(0))).toEqual({ type: 'ok' })
  })

  describe('through the fault proxy', () => {
    it('a partition (blackhole) makes a request time out', async () => {
      const { port } = await serve(() => ({ type: 'ok' }))
      const proxy = await proxyTo(port)
      const client = await connect(proxy.port)
      expect(await client.request(append(0))).toEqual({ type: 'ok' })
      proxy.setMode('blackhole')
      const pending = [rejection(client.request(append(1), { timeoutMs: 300 })), rejection(client.request(append(2), { timeoutMs: 1000 }))]
      expect((await Promise.all(pending)).map((e) => e.code)).toEqual(['timeout', 'closed'])
      expect(client.isOpen).toBe(false)
    })

    it("a reset rejects pending requests with 'closed'", async () => {
      const { port } = await serve(stuckOnFetch)
      const proxy = await proxyTo(port)
      const client = await connect(proxy.port)
      const closes: PeerError[] = []
      client.onClose = (err) => closes.push(err)
      expect(await client.request(append(0))).toEqual({ type: 'ok' })
      const pending = rejection(client.request({ type: 'fetch', epoch: 1, since: 0, maxBytes: 1 }, { timeoutMs: 5000 }))
      await sleep(30)
      proxy.setMode('reset')
      const err = await pending
      expect(err.code).toBe('closed')
      expect(closes.map((e) => e.code)).toEqual(['closed'])
      expect(client.isOpen).toBe(false)
    })
  })
})
