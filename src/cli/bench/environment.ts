import * as os from 'node:os'

/** The machine and software a bench ran on, for the report header. */
export interface Environment {
  cpuModel: string
  cores: number
  totalMemoryBytes: number
  /** e.g. "Linux 6.1.0 x64". */
  os: string
  node: string
  /** Package name → version, for every engine. */
  packages: Record<string, string>
  startedAt: string
}

/** Describes this machine; `packages` are the engines' versions. */
export function describeEnvironment(packages: Record<string, string>): Environment {
  const cpus = os.cpus()
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    totalMemoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    packages,
    startedAt: new Date().toISOString(),
  }
}
