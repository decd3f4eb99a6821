/**
 * What both front ends share: the database, the options, the key locks, the
 * write gate, metrics, checkpoints, authentication and the shutdown state.
 * The RESP front end sees more of the same server (resp/context.ts).
 */
import type { Database } from '../../index.js'
import type { ClusterNode } from '../../cluster/cluster-node.js'
import type { TokenChecker } from './auth.js'
import type { Checkpoints } from './checkpoints.js'
import type { KeyLocks } from './key-locks.js'
import type { ServerMetrics } from './metrics.js'
import type { ServerOptions } from './options.js'
import type { WriteGate } from './write-gate.js'

/** Shared state of one running server. */
export interface ServerContext {
  readonly db: Database
  /** Serving as a replica (docs/replication.md): requests go through its admission. Undefined on a single node. */
  readonly cluster?: ClusterNode
  readonly options: ServerOptions
  readonly locks: KeyLocks
  readonly gate: WriteGate
  readonly metrics: ServerMetrics
  /** Checkpoints written on request (HTTP POST /v1/admin/checkpoint, RESP SAVE and BGSAVE). */
  readonly checkpoints: Checkpoints
  /** The SCAN cursors RESP holds (resp/scan-cursors.ts); HTTP reports their number in /v1/stats. */
  readonly cursors: { readonly size: number }
  /** undefined when no token is configured (loopback only). */
  readonly auth: TokenChecker | undefined
  readonly startedAtMs: number
  /**
   * The database's clock (the `clock` open option, default Date.now): expiry
   * times are compared with it, so the server computes TTLs and relative
   * expiries (EX, PX, ttlMs) from it too. Tests pass one they move by hand.
   */
  readonly clock: () => number
  /** Bound ports (null when that protocol is off), known once listening. */
  ports: { http: number | null; resp: number | null }
  /** Set once a graceful shutdown began: no new work is accepted. */
  shuttingDown: boolean
  log(line: string): void
  /** Open connections per protocol (for INFO and metrics). */
  connectionCount(): { http: number; resp: number }
}
