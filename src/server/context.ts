/**
 * What both front ends share: the database, the options, the key locks, the
 * write gate, the write batcher, metrics, authentication and the shutdown state.
 */
import type { Database } from '../index.js'
import type { TokenChecker } from './auth.js'
import type { KeyLocks } from './key-locks.js'
import type { ClientMemory } from './resp-client-memory.js'
import type { ServerMetrics } from './metrics.js'
import type { ServerOptions } from './options.js'
import type { ScanCursors } from './scan-cursors.js'
import type { WriteBatcher } from './write-batcher.js'
import type { WriteGate } from './write-gate.js'

/** Shared state of one running server. */
export interface ServerContext {
  readonly db: Database
  readonly options: ServerOptions
  readonly locks: KeyLocks
  readonly gate: WriteGate
  /** Blind RESP writes of one event-loop turn, committed as one batch. */
  readonly batcher: WriteBatcher
  readonly metrics: ServerMetrics
  /** Memory held by RESP connections against `maxMemoryClientsBytes` (client eviction). */
  readonly clientMemory: ClientMemory
  readonly cursors: ScanCursors
  /** undefined when no token is configured (loopback only). */
  readonly auth: TokenChecker | undefined
  readonly startedAtMs: number
  /** Bound ports (null when that protocol is off), known once listening. */
  ports: { http: number | null; resp: number | null }
  /** Set once a graceful shutdown began: no new work is accepted. */
  shuttingDown: boolean
  log(line: string): void
  /** Open connections per protocol (for INFO and metrics). */
  connectionCount(): { http: number; resp: number }
}
