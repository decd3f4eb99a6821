import { stratadbOpenOptions, type BenchConfig, type EngineName } from './config.js'
import type { OpenSettings } from './engines.js'

/**
 * What the reopen workload's parent (reopen.ts) and its writer process
 * (reopen-child.ts) share; apart, so that neither imports the other.
 */

/** Stream label of the writes made by the child. */
export const REOPEN_STREAM = 'reopen'

/** The child's only argument, as JSON. */
export interface ReopenChildRequest {
  engine: EngineName
  dir: string
  config: BenchConfig
}

/**
 * How both processes open the database: stratadb's --min-blob-bytes and
 * --stratadb-options when given, else the engine's defaults (reopen does not
 * take --cache-mib).
 */
export function reopenSettings(config: BenchConfig): OpenSettings | undefined {
  const stratadbOptions = stratadbOpenOptions(config)
  return stratadbOptions === undefined ? undefined : { stratadbOptions }
}

/** What the child sends to its parent. */
export type ReopenChildMessage = { type: 'written'; writeMs: number }
