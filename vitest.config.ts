import { defineConfig } from 'vitest/config'
import { fileURLToPath } from 'node:url'

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url))

export default defineConfig({
  resolve: {
    alias: [
      { find: /^rxnet$/, replacement: here('./src/index.ts') },
      { find: /^rxnet\/operators$/, replacement: here('./operators/index.ts') },
      { find: /^rxnet\/net$/, replacement: here('./src/net/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default', './test/summary-reporter.ts'],
  },
})
