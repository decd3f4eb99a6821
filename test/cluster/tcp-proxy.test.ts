/**
 * test/cluster/tcp-proxy.ts against a real echo server on loopback: each mode
 * (pass, blackhole, reset, delay) does what it says, for new connections and
 * for ones already open when the mode changes.
 */
import { randomBytes } from 'node:crypto'
import * as net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { delay, startProxy, type TcpProxy } from './tcp-proxy.js'

interface EchoServer {
  port: number
  /** Connections the server accepted so far. */
  accepted: number
  /** Bytes the server received so far (all connections). */
  received: number
  /** Errors the server's sockets saw (e.g. ECONNRESET). */
  errors: string[]
  /** Server sockets that closed. */
  closed: number
  close(): Promise<void>
}

async function startEcho(): Promise<EchoServer> {
  const sockets = new Set<net.Socket>()
  const state = { port: 0, accepted: 0, received: 0, errors: [] as string[], closed: 0 }
  const server = net.createServer((s) => {
    state.accepted++
    sockets.add(s)
    s.on('data', (d: Buffer) => {
      state.received += d.length
      s.write(d)
    })
    s.on('error', (e: NodeJS.ErrnoException) => state.errors.push(e.code ?? e.message))
    s.on('close', () => {
      state.closed++
      sockets.delete(s)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  state.port = (server.address() as net.AddressInfo).port
  return Object.assign(state, {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  })
}

interface Client {
  socket: net.Socket
  data(): Buffer
  error: () => NodeJS.ErrnoException | null
  closed: () => boolean
}

function connect(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let error: NodeJS.ErrnoException | null = null
    let closed = false
    const socket = net.connect({ host: '127.0.0.1', port })
    socket.on('data', (d: Buffer) => chunks.push(d))
    socket.on('error', (e) => {
      error = e
      reject(e)
    })
    socket.on('close', () => (closed = true))
    socket.once('connect', () =>
      resolve({
        socket,
        data: () => Buffer.concat(chunks),
        error: () => error,
        closed: () => closed,
      }),
    )
  })
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

async function until(what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

let echo: EchoServer | null = null
let proxy: TcpProxy | null = null
const clients: Client[] = []

async function setup(): Promise<{ echo: EchoServer; proxy: TcpProxy }> {
  echo = await startEcho()
  proxy = await startProxy('127.0.0.1', echo.port)
  return { echo, proxy }
}

async function client(port: number): Promise<Client> {
  const c = await connect(port)
  clients.push(c)
  return c
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.destroy()
  await proxy?.close()
  await echo?.close()
  proxy = null
  echo = null
})

describe('tcp-proxy', () => {
  it('listens on 127.0.0.1 only', async () => {
    const { proxy } = await setup()
    expect(proxy.address).toBe(`127.0.0.1:${proxy.port}`)
    expect(proxy.port).not.toBe(2379)
  })

  it('pass: forwards both ways, intact, with back-pressure', async () => {
    const { echo, proxy } = await setup()
    const c = await client(proxy.port)
    const payload = randomBytes(4 * 1024 * 1024 + 17)
    c.socket.write(payload)
    await until('4 MiB echoed', () => c.data().length >= payload.length, 10_000)
    expect(c.data().equals(payload)).toBe(true)
    expect(echo.accepted).toBe(1)
    expect(proxy.connections()).toBe(1)
    // A clean close travels through: the echo server's socket closes too.
    c.socket.end()
    await until('server side closed', () => echo.closed === 1)
    await until('proxy forgot the connection', () => proxy.connections() === 0)
  })

  it('blackhole: open connections stall, new ones are accepted but not forwarded; healing delivers what was held', async () => {
    const { echo, proxy } = await setup()
    const a = await client(proxy.port)
    a.socket.write('before;')
    await until('echo before the partition', () => a.data().toString() === 'before;')

    proxy.setMode('blackhole')
    a.socket.write('during-a;')
    const b = await client(proxy.port) // the proxy accepts it...
    b.socket.write('during-b;')
    await sleep(300)
    expect(a.data().toString()).toBe('before;') // ...nothing comes back
    expect(b.data().length).toBe(0)
    expect(echo.received).toBe('before;'.length) // ...and nothing reached the server
    expect(echo.accepted).toBe(1) // b was not even connected upstream
    expect(a.error()).toBeNull()
    expect(b.error()).toBeNull()
    expect(a.closed() || b.closed()).toBe(false)

    proxy.setMode('pass')
    await until('held bytes delivered after healing', () => a.data().toString() === 'before;during-a;' && b.data().toString() === 'during-b;')
    expect(echo.accepted).toBe(2)
    a.socket.write('after;')
    await until('link works again', () => a.data().toString().endsWith('after;'))
  })

  it('blackhole holds at most holdLimit bytes, then stops reading; everything arrives intact after healing', async () => {
    echo = await startEcho()
    proxy = await startProxy('127.0.0.1', echo.port, { holdLimit: 64 * 1024, mode: 'blackhole' })
    const c = await client(proxy.port)
    const payload = randomBytes(24 * 1024 * 1024) // more than the kernel buffers of both sockets
    c.socket.write(payload)
    await sleep(200)
    expect(echo.accepted).toBe(0)
    expect(c.socket.writableLength).toBeGreaterThan(0) // back-pressure reached the sender
    proxy.setMode('pass')
    await until('24 MiB echoed after healing', () => c.data().length >= payload.length, 10_000)
    expect(c.data().equals(payload)).toBe(true)
  })

  it('blackhole also stops the server-to-client direction', async () => {
    const { proxy } = await setup()
    // A server that pushes a message every 20 ms without being asked.
    const pushed: net.Socket[] = []
    const pusher = net.createServer((s) => {
      pushed.push(s)
      s.on('error', () => undefined)
      const t = setInterval(() => s.write('x'), 20)
      s.on('close', () => clearInterval(t))
    })
    await new Promise<void>((resolve) => pusher.listen(0, '127.0.0.1', resolve))
    const p2 = await startProxy('127.0.0.1', (pusher.address() as net.AddressInfo).port)
    try {
      const c = await client(p2.port)
      await until('pushes arrive', () => c.data().length >= 3)
      p2.setMode('blackhole')
      await sleep(50)
      const n = c.data().length
      await sleep(300)
      expect(c.data().length).toBe(n)
      p2.setMode('pass')
      await until('held pushes arrive after healing', () => c.data().length >= n + 10)
    } finally {
      await p2.close()
      for (const s of pushed) s.destroy()
      await new Promise<void>((resolve) => pusher.close(() => resolve()))
    }
    expect(proxy.connections()).toBe(0)
  })

  it('reset: open connections get an RST on both sides, new ones are reset', async () => {
    const { echo, proxy } = await setup()
    const a = await client(proxy.port)
    a.socket.write('hi')
    await until('echo', () => a.data().toString() === 'hi')

    proxy.setMode('reset')
    await until('client sees the reset', () => a.error() !== null)
    expect(a.error()?.code).toBe('ECONNRESET')
    await until('server sees the reset', () => echo.errors.includes('ECONNRESET'))
    expect(proxy.connections()).toBe(0)

    // New connections: accepted, then reset at once (before or after 'connect' fires).
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: proxy.port })
      s.on('error', resolve)
      s.on('connect', () => s.write('x'))
    })
    expect(err.code).toBe('ECONNRESET')
    expect(echo.accepted).toBe(1)

    proxy.setMode('pass')
    const b = await client(proxy.port)
    b.socket.write('again')
    await until('works after reset mode', () => b.data().toString() === 'again')
  })

  it('delay(ms): each chunk is forwarded ms later in each direction, in order, also on open connections', async () => {
    const { proxy } = await setup()
    const a = await client(proxy.port)
    let t = performance.now()
    a.socket.write('p')
    await until('fast echo', () => a.data().length === 1)
    const fast = performance.now() - t
    expect(fast).toBeLessThan(100)

    proxy.setMode(delay(150))
    t = performance.now()
    a.socket.write('q')
    await until('delayed echo', () => a.data().length === 2, 3000)
    const slow = performance.now() - t
    expect(slow).toBeGreaterThanOrEqual(290) // 150 ms each way
    expect(slow).toBeLessThan(1000)

    // Many chunks keep their order.
    for (let i = 0; i < 20; i++) {
      a.socket.write(`${i},`)
      await sleep(3)
    }
    const want = 'pq' + Array.from({ length: 20 }, (_, i) => `${i},`).join('')
    await until('ordered delayed echoes', () => a.data().toString() === want, 3000)

    // Back to pass: fast again.
    proxy.setMode('pass')
    t = performance.now()
    a.socket.write('r')
    await until('fast again', () => a.data().toString().endsWith('r'))
    expect(performance.now() - t).toBeLessThan(100)
    expect(() => proxy.setMode(delay(-1))).toThrow(RangeError)
  })

  it('an abrupt close is passed on as a reset, only once a partition heals; a refused upstream resets the client', async () => {
    const { echo, proxy } = await setup()
    const a = await client(proxy.port)
    a.socket.write('x')
    await until('echo', () => a.data().length === 1)
    proxy.setMode('blackhole')
    a.socket.resetAndDestroy()
    await sleep(200)
    expect(echo.errors).toEqual([]) // the server has not heard of it
    expect(echo.closed).toBe(0)
    proxy.setMode('pass')
    await until('server sees the reset after healing', () => echo.errors.includes('ECONNRESET'))

    // Nothing listening upstream: the client is reset.
    const dead = await startEcho()
    const deadPort = dead.port
    await dead.close()
    const p2 = await startProxy('127.0.0.1', deadPort)
    try {
      const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: p2.port })
        s.on('error', resolve)
        s.on('close', () => resolve(null))
      })
      expect(err?.code).toBe('ECONNRESET')
    } finally {
      await p2.close()
    }
  })

  it('close() ends every connection', async () => {
    const { echo, proxy: p } = await setup()
    const a = await client(p.port)
    a.socket.write('x')
    await until('echo', () => a.data().length === 1)
    await p.close()
    proxy = null
    await until('client closed', () => a.closed())
    await until('server side closed', () => echo.closed === 1)
  })
})
