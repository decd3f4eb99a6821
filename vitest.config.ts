import * as os from 'node:os'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The worker thread and crash-test children run dist/: rebuild it when older than src/.
    globalSetup: ['test/setup/fresh-build.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two test files at a time even on 2 cores (vitest's default is cores - 1): many files wait on child
    // processes, etcd leases, sockets and fsync rather than the CPU. 808 s serial, 527 s with 2 (README, "Tests").
    maxWorkers: Math.max(2, os.availableParallelism() - 1),
  },
})
