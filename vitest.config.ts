import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['__test__/**/*.test.ts'],
    testTimeout: 20000,
    hookTimeout: 20000,
    // One process per test file: the native addon owns its own threads and
    // runtimes; child processes isolate it better than worker threads.
    pool: 'forks',
    // Every temp dir a test makes lives under one root, removed after the run.
    globalSetup: ['__test__/global-setup.ts'],
  },
})
