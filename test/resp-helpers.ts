/** Shared by the RESP server tests: a server on an ephemeral loopback port, and ioredis clients closed after each test. */
import { Redis, type RedisOptions } from 'ioredis'
import { startServer, type ServerOptionsInput, type StrataServer } from '../src/server/index.js'
import { tempDir } from './unit/helpers.js'

export interface RunningServer {
  server: StrataServer
  port: number
  /** Lines the server logged. */
  logs: string[]
  /** Closes the server and removes its directory. */
  stop: () => Promise<void>
}

/** Starts `strata serve` (RESP only, 127.0.0.1, ephemeral port) on a new temporary directory. */
export async function startRespServer(prefix: string, options: ServerOptionsInput = {}): Promise<RunningServer> {
  const t = tempDir(prefix)
  const logs: string[] = []
  const server = await startServer({ dir: t.dir, http: null, resp: '127.0.0.1:0', log: (l) => logs.push(l), ...options })
  return {
    server,
    port: server.respPort!,
    logs,
    stop: async () => {
      await server.close()
      t.cleanup()
    },
  }
}

/** ioredis clients that never retry; `closeAll` quits every one opened so far. */
export class RedisClients {
  private readonly open: Redis[] = []

  connect(port: number, options: RedisOptions = {}): Redis {
    const c = new Redis({ port, host: '127.0.0.1', retryStrategy: () => null, maxRetriesPerRequest: 0, ...options })
    c.on('error', () => {})
    this.open.push(c)
    return c
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.open.splice(0).map((c) => c.quit().catch(() => c.disconnect())))
  }
}
