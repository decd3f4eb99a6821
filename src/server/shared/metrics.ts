/**
 * Prometheus metrics of the server (GET /metrics), on a registry of its own
 * so that several servers in one process do not collide. Hot-path counters
 * are plain numbers turned into metrics when scraped; engine figures come
 * from `db.stats()` at scrape time.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { EngineStats } from '../../index.js'
import type { CheckpointFigures } from './checkpoints.js'

/** Live figures of the server the metrics read at scrape time. */
export interface MetricsSource {
  engineStats(): EngineStats | undefined
  connections(): { http: number; resp: number }
  pendingWrites(): number
  writeStalledMs(): number
  busyRefusals(): number
  /** RESP client memory (client eviction): bytes held now, connections evicted so far. */
  clientMemory(): { used: number; evicted: number }
  /** Checkpoints (shared/checkpoints.ts). */
  checkpoints(): CheckpointFigures
}

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Calls, errors and latency histogram of one RESP command (plain numbers: updated for every command). */
interface CommandFigures {
  calls: number
  errors: number
  /** Refused before running (NOAUTH, wrong arity, key too long): not in `calls`. */
  rejected: number
  /** Sum of latencies, seconds. */
  sum: number
  /** Observations per LATENCY_BUCKETS bucket (not cumulative); the last slot is +Inf. */
  buckets: Float64Array
}

/**
 * `strata_resp_command_duration_seconds` as a metric object of the registry:
 * the same exposition as a prom-client Histogram labelled by command, but
 * observed into plain arrays (prom-client's observe hashes the labels on
 * every call, which cost ~5% of the server's CPU under redis-benchmark).
 */
class RespLatencyHistogram {
  readonly name = 'strata_resp_command_duration_seconds'
  readonly help = 'Time from parsing a RESP command to its reply being ready, by command'
  readonly type = 'histogram'
  readonly aggregator = 'sum'

  constructor(private readonly calls: Map<string, CommandFigures>) {}

  getForPromString(): { name: string; help: string; type: string; aggregator: string; values: HistogramValue[] } {
    const values: HistogramValue[] = []
    const bucketName = `${this.name}_bucket`
    for (const [command, c] of this.calls) {
      let acc = 0
      for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
        acc += c.buckets[i]
        values.push({ labels: { le: LATENCY_BUCKETS[i] }, sharedLabels: { command }, value: acc, metricName: bucketName })
      }
      values.push({ labels: { le: '+Inf' }, sharedLabels: { command }, value: c.calls, metricName: bucketName })
      values.push({ labels: {}, sharedLabels: { command }, value: c.sum, metricName: `${this.name}_sum` })
      values.push({ labels: {}, sharedLabels: { command }, value: c.calls, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  get(): ReturnType<RespLatencyHistogram['getForPromString']> {
    const data = this.getForPromString()
    data.values = data.values.map((v) => ({ ...v, labels: { ...v.labels, ...v.sharedLabels }, sharedLabels: {} }))
    return data
  }

  reset(): void {
    for (const c of this.calls.values()) {
      c.calls = c.errors = c.rejected = c.sum = 0
      c.buckets.fill(0)
    }
  }
}

interface HistogramValue {
  labels: Record<string, string | number>
  sharedLabels: Record<string, string>
  value: number
  metricName: string
}

/** The metrics of one server. */
export class ServerMetrics {
  readonly registry = new Registry()
  private readonly respCalls = new Map<string, CommandFigures>()
  private readonly rejected = { http: 0, resp: 0 }
  private readonly protocolErrors = { resp: 0, http: 0 }
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>
  private readonly httpLatency: Histogram<'route'>

  constructor(source: MetricsSource) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    this.httpRequests = new Counter({
      name: 'strata_http_requests_total',
      help: 'HTTP requests answered, by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers,
    })
    this.httpLatency = new Histogram({
      name: 'strata_http_request_duration_seconds',
      help: 'Time from request to end of response, by route',
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS,
      registers,
    })
    this.respCommandMetrics(registers)
    this.connectionMetrics(source, registers)
    this.writeMetrics(source, registers)
    this.checkpointMetrics(source, registers)
    this.engineMetrics(source, registers)
  }

  /** Per-command RESP figures: the latency histogram, calls and errors (from `respCalls`, at scrape time). */
  private respCommandMetrics(registers: Registry[]): void {
    // Registered like any metric: the registry only calls get()/getForPromString()/reset().
    this.registry.registerMetric(new RespLatencyHistogram(this.respCalls) as unknown as Histogram)
    const calls = this.respCalls
    new Counter({
      name: 'strata_resp_commands_total',
      help: 'RESP commands executed, by command',
      labelNames: ['command'],
      registers,
      collect() {
        this.reset()
        for (const [command, c] of calls) this.inc({ command }, c.calls)
      },
    })
    new Counter({
      name: 'strata_resp_command_errors_total',
      help: 'RESP commands answered with an error, by command',
      labelNames: ['command'],
      registers,
      collect() {
        this.reset()
        for (const [command, c] of calls) if (c.errors > 0) this.inc({ command }, c.errors)
      },
    })
  }

  /** Connections: refused, malformed, open, and RESP client memory and eviction. */
  private connectionMetrics(source: MetricsSource, registers: Registry[]): void {
    const rejected = this.rejected
    new Counter({
      name: 'strata_connections_rejected_total',
      help: 'Connections refused because maxConnections was reached, by protocol',
      labelNames: ['protocol'],
      registers,
      collect() {
        this.reset()
        this.inc({ protocol: 'http' }, rejected.http)
        this.inc({ protocol: 'resp' }, rejected.resp)
      },
    })
    const protocolErrors = this.protocolErrors
    new Counter({
      name: 'strata_protocol_errors_total',
      help: 'Malformed requests (connection answered and closed), by protocol',
      labelNames: ['protocol'],
      registers,
      collect() {
        this.reset()
        this.inc({ protocol: 'http' }, protocolErrors.http)
        this.inc({ protocol: 'resp' }, protocolErrors.resp)
      },
    })
    new Gauge({
      name: 'strata_connections',
      help: 'Open connections, by protocol',
      labelNames: ['protocol'],
      registers,
      collect() {
        const c = source.connections()
        this.set({ protocol: 'http' }, c.http)
        this.set({ protocol: 'resp' }, c.resp)
      },
    })
    new Gauge({
      name: 'strata_resp_client_memory_bytes',
      help: 'Memory RESP connections hold (unsent output and unparsed input), against maxMemoryClientsBytes',
      registers,
      collect() {
        this.set(source.clientMemory().used)
      },
    })
    new Counter({
      name: 'strata_resp_clients_evicted_total',
      help: 'RESP connections closed because client memory was over maxMemoryClientsBytes (client eviction)',
      registers,
      collect() {
        this.reset()
        this.inc(source.clientMemory().evicted)
      },
    })
  }

  /** The write gate: pending writes, stall time, busy refusals. */
  private writeMetrics(source: MetricsSource, registers: Registry[]): void {
    new Gauge({
      name: 'strata_pending_writes',
      help: 'Writes handed to the engine and not yet acknowledged',
      registers,
      collect() {
        this.set(source.pendingWrites())
      },
    })
    new Gauge({
      name: 'strata_write_stall_seconds',
      help: 'How long pending writes have gone without any completing',
      registers,
      collect() {
        this.set(source.writeStalledMs() / 1000)
      },
    })
    new Counter({
      name: 'strata_busy_refusals_total',
      help: 'Writes refused with 503 / -BUSY because of too many pending writes or a write stall',
      registers,
      collect() {
        this.reset()
        this.inc(source.busyRefusals())
      },
    })
  }

  /** Checkpoints: written and failed, one in progress, the last success and duration. */
  private checkpointMetrics(source: MetricsSource, registers: Registry[]): void {
    new Counter({
      name: 'strata_checkpoints_total',
      help: 'Checkpoints attempted (POST /v1/admin/checkpoint, SAVE, BGSAVE), by outcome',
      labelNames: ['status'],
      registers,
      collect() {
        const c = source.checkpoints()
        this.reset()
        this.inc({ status: 'ok' }, c.completed)
        this.inc({ status: 'error' }, c.failed)
      },
    })
    new Gauge({
      name: 'strata_checkpoint_in_progress',
      help: '1 while a checkpoint is being written',
      registers,
      collect() {
        this.set(source.checkpoints().inProgress ? 1 : 0)
      },
    })
    new Gauge({
      name: 'strata_checkpoint_last_success_timestamp_seconds',
      help: 'Unix time of the last successful checkpoint (0: none since the server started)',
      registers,
      collect() {
        const last = source.checkpoints().last
        this.set(last === undefined ? 0 : last.finishedAtMs / 1000)
      },
    })
    new Gauge({
      name: 'strata_checkpoint_last_duration_seconds',
      help: 'How long the last checkpoint attempt took (-1: none yet)',
      registers,
      collect() {
        const ms = source.checkpoints().lastDurationMs
        this.set(ms < 0 ? -1 : ms / 1000)
      },
    })
    new Gauge({
      name: 'strata_checkpoint_changes_since_last',
      help: 'Writes (sequence numbers) since the last successful checkpoint, or since the start before the first',
      registers,
      collect() {
        this.set(source.checkpoints().changesSinceLast)
      },
    })
  }

  /** Counts one RESP command and its latency. */
  respCommand(command: string, seconds: number, failed: boolean): void {
    const c = this.figures(command)
    c.calls++
    if (failed) c.errors++
    c.sum += seconds
    let i = 0
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]) i++
    c.buckets[i]++
  }

  /** Counts a RESP command refused before it ran (INFO commandstats `rejected_calls`). */
  respRejected(command: string): void {
    this.figures(command).rejected++
  }

  /** Per-command figures for INFO commandstats, in first-use order; `usec` is the summed latency. */
  commandStats(): Array<{ command: string; calls: number; usec: number; failed: number; rejected: number }> {
    const out = []
    for (const [command, c] of this.respCalls) {
      if (c.calls > 0 || c.rejected > 0) out.push({ command, calls: c.calls, usec: Math.round(c.sum * 1e6), failed: c.errors, rejected: c.rejected })
    }
    return out
  }

  /** Connections refused because maxConnections was reached, both protocols. */
  get rejectedConnections(): number {
    return this.rejected.http + this.rejected.resp
  }

  private figures(command: string): CommandFigures {
    let c = this.respCalls.get(command)
    if (c === undefined) {
      c = { calls: 0, errors: 0, rejected: 0, sum: 0, buckets: new Float64Array(LATENCY_BUCKETS.length + 1) }
      this.respCalls.set(command, c)
    }
    return c
  }

  /** Counts one answered HTTP request. */
  httpRequest(method: string, route: string, status: number, seconds: number): void {
    this.httpRequests.inc({ method, route, status: String(status) })
    this.httpLatency.observe({ route }, seconds)
  }

  connectionRejected(protocol: 'http' | 'resp'): void {
    this.rejected[protocol]++
  }

  protocolError(protocol: 'http' | 'resp'): void {
    this.protocolErrors[protocol]++
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }

  private engineMetrics(source: MetricsSource, registers: Registry[]): void {
    let cached: { at: number; stats: EngineStats | undefined } = { at: -1, stats: undefined }
    // One stats() call per scrape, shared by every engine metric.
    const stats = (): EngineStats | undefined => {
      const now = performance.now()
      if (now - cached.at > 100) cached = { at: now, stats: source.engineStats() }
      return cached.stats
    }
    const gauge = (name: string, help: string, read: (s: EngineStats) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const s = stats()
          if (s !== undefined) this.set(read(s))
        },
      })
    }
    const counter = (name: string, help: string, read: (s: EngineStats) => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect() {
          const s = stats()
          this.reset()
          if (s !== undefined) this.inc(read(s))
        },
      })
    }
    gauge('strata_engine_last_sequence', 'Sequence number of the newest applied write', (s) => s.lastSequence)
    gauge('strata_engine_memtable_bytes', 'Bytes in the active memtable', (s) => s.memtable.activeBytes)
    gauge('strata_engine_immutable_memtables', 'Frozen memtables waiting for flush', (s) => s.memtable.immutableCount)
    gauge('strata_engine_block_cache_bytes', 'Bytes in the block cache', (s) => s.memory.blockCacheBytes)
    gauge('strata_engine_table_readers_bytes', 'Bytes of open table indexes, filters and point indexes', (s) => s.memory.tableReadersBytes)
    gauge('strata_engine_memory_budget_bytes', 'Memory bound derived from the options', (s) => s.memory.budget.totalBytes)
    gauge('strata_engine_open_tables', 'Open table files', (s) => s.openTables)
    gauge('strata_engine_point_indexed_tables', 'Open tables whose point reads use their point index', (s) => s.pointIndexedTables)
    gauge('strata_engine_live_snapshots', 'Snapshots and iterators pinning old versions', (s) => s.liveSnapshots)
    gauge('strata_engine_pending_compaction_bytes', 'Estimated bytes compaction still has to rewrite', (s) => s.pendingCompactionBytes)
    gauge('strata_engine_write_amplification', 'Bytes written to disk per user byte since open', (s) => s.writeAmplification)
    gauge('strata_engine_compactions_running', 'Compactions running now', (s) => s.compaction.running)
    gauge('strata_engine_background_error', '1 when a failed write or flush made the database read-only', (s) => (s.backgroundError ? 1 : 0))
    counter('strata_engine_block_cache_hits_total', 'Block cache hits', (s) => s.blockCache.hits)
    counter('strata_engine_block_cache_misses_total', 'Block cache misses', (s) => s.blockCache.misses)
    counter('strata_engine_writes_total', 'Writes applied', (s) => s.writes.writes)
    counter('strata_engine_write_groups_total', 'Write groups committed (group commit)', (s) => s.writes.writeGroups)
    counter('strata_engine_syncs_total', 'WAL fsyncs', (s) => s.writes.syncs)
    counter('strata_engine_wal_bytes_total', 'Bytes appended to WALs', (s) => s.writes.walBytes)
    counter('strata_engine_user_bytes_total', 'Key and value bytes written by callers', (s) => s.writes.userBytes)
    counter('strata_engine_flushes_total', 'Memtable flushes', (s) => s.writes.flushes)
    counter('strata_engine_write_stalls_total', 'Write groups that waited for compaction or a flush slot', (s) => s.writes.stalls)
    counter('strata_engine_write_stall_seconds_total', 'Time write groups spent stalled', (s) => s.writes.stallMs / 1000)
    counter('strata_engine_write_slowdowns_total', 'Write groups delayed by compaction debt', (s) => s.writes.slowdowns)
    counter('strata_engine_compactions_total', 'Compactions finished', (s) => s.compaction.compactions)
    counter('strata_engine_compaction_bytes_written_total', 'Bytes written by compactions', (s) => s.compaction.bytesWritten)
    const levelGauge = (name: string, help: string, read: (l: EngineStats['levels'][number]) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['level'],
        registers,
        collect() {
          const s = stats()
          this.reset()
          if (s !== undefined) for (const l of s.levels) this.set({ level: String(l.level) }, read(l))
        },
      })
    }
    levelGauge('strata_engine_level_tables', 'Table files per level', (l) => l.tables)
    levelGauge('strata_engine_level_bytes', 'Bytes per level', (l) => l.bytes)
  }
}
