import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The worker thread and crash-test children run dist/: rebuild it when older than src/.
    globalSetup: ['test/setup/fresh-build.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
