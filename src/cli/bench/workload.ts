import type { BenchConfig, WorkloadName } from './config.js'
import type { BenchDb, EngineAdapter } from './engines.js'
import { KeyFormat, ValuePool } from './key-stream.js'
import type { LatencyRecorder, LatencySummaryNs } from './latency.js'
import type { SeriesPoint } from './timeline.js'

/**
 * What a workload is, to the runner: its context, what it measures and how it
 * gets its database. The workloads themselves are in workloads.ts.
 */

/** The key and value streams shared by every workload of an invocation. */
export interface WorkloadContext {
  readonly config: BenchConfig
  readonly keys: KeyFormat
  readonly values: ValuePool
  /** The values of the largevalues workloads, by value size, each made on first use. */
  readonly largeValues: Map<number, ValuePool>
}

/** Builds the context of `config`. */
export function createContext(config: BenchConfig): WorkloadContext {
  return { config, keys: new KeyFormat(config.keyBytes), values: new ValuePool(config.valueBytes, config.seed, config.compressionRatio), largeValues: new Map() }
}

/** What one workload measured on one engine. */
export interface Measurement {
  /** Operations timed (entries for scans and batches). */
  ops: number
  /** Key and value bytes written, or read and found. */
  bytes: number
  elapsedMs: number
  /** Per-operation latencies (with the per-second timeline); undefined where not measured (scans). */
  latency: LatencyRecorder | undefined
  /** Percentiles measured elsewhere (bigdata's child process), when there is no recorder. */
  latencySummary?: LatencySummaryNs
  /** Point reads that found their key. */
  found?: number
  /** Per-second throughput and latency measured elsewhere (bigdata), when there is no recorder. */
  series?: SeriesPoint[]
  /** Workload-specific figures for the JSON report. */
  details?: Record<string, unknown>
}

/** Thrown by a workload that cannot run on an engine (e.g. no transactions); recorded as skipped, not failed. */
export class SkipWorkload extends Error {}

/** A workload that runs on an open database the runner provides. */
export interface DatabaseWorkload {
  readonly name: WorkloadName
  /**
   * 'fresh': a new empty database that later workloads use; 'existing': the
   * database the previous workloads left (the runner loads num keys in order
   * first when there is none); 'scratch': a new empty database of its own,
   * removed afterwards (the database for the next workloads stays as it is).
   */
  readonly database: 'fresh' | 'existing' | 'scratch'
  /** One line saying what is timed. */
  describe(config: BenchConfig): string
  /** Throws SkipWorkload before anything is opened when the engine cannot run it. */
  check?(adapter: EngineAdapter): void
  run(db: BenchDb, ctx: WorkloadContext): Promise<Measurement>
}

/** A workload that creates and opens its own databases under `scratchDir`. */
export interface OwnWorkload {
  readonly name: WorkloadName
  readonly database: 'own'
  describe(config: BenchConfig): string
  run(adapter: EngineAdapter, scratchDir: string, ctx: WorkloadContext): Promise<Measurement>
}

export type Workload = DatabaseWorkload | OwnWorkload
