import { execFileSync } from 'node:child_process'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

/** The machine and software a bench ran on, for the report header. */
export interface Environment {
  cpuModel: string
  cores: number
  totalMemoryBytes: number
  /** 1-minute load average when the bench started: above the core count, other work competed for the CPU. */
  loadAverage1m: number
  /** e.g. "Linux 6.1.0 x64". */
  os: string
  node: string
  /** Package name → version, for every engine. */
  packages: Record<string, string>
  /** `git rev-parse --short HEAD` of the stratadb checkout, "+dirty" with uncommitted changes; undefined outside a checkout. */
  stratadbRevision: string | undefined
  startedAt: string
}

/** Describes this machine; `packages` are the engines' versions. */
export function describeEnvironment(packages: Record<string, string>): Environment {
  const cpus = os.cpus()
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    totalMemoryBytes: os.totalmem(),
    loadAverage1m: os.loadavg()[0],
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    packages,
    stratadbRevision: gitRevision(),
    startedAt: new Date().toISOString(),
  }
}

/** The git revision of the checkout this file runs from, if it is one. */
function gitRevision(): string | undefined {
  const cwd = path.dirname(fileURLToPath(import.meta.url))
  const git = (...args: string[]): string =>
    execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim()
  try {
    const head = git('rev-parse', '--short', 'HEAD')
    const dirty = git('status', '--porcelain', '--untracked-files=no', '--', 'src').length > 0
    return dirty ? `${head}+dirty` : head
  } catch {
    return undefined
  }
}
