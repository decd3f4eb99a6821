/**
 * The server as the RESP front end sees it: the shared state
 * (shared/context.ts) and what only RESP uses, all server-wide.
 */
import type { ServerContext } from '../shared/context.js'
import type { ClientMemory } from './client-memory.js'
import type { ScanCursors } from './scan-cursors.js'
import type { WriteBatcher } from './write-batcher.js'

/** Shared state of one running server, with RESP's own. */
export interface RespContext extends ServerContext {
  /** Blind RESP writes of one event-loop turn, committed as one batch. */
  readonly batcher: WriteBatcher
  /** Memory held by RESP connections against `maxMemoryClientsBytes` (client eviction). */
  readonly clientMemory: ClientMemory
  readonly cursors: ScanCursors
}
