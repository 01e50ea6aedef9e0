// examples/nats.ts runs as it is (starting and removing its own nats-server), and a nats:// bus
// without the optional @nats-io packages fails with ERR_MISSING_DEPENDENCY naming the package.
import { describe, expect, it } from 'vitest'
import { fileURLToPath } from 'node:url'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { root, runScript } from '../unit/run-script.js'
import { NATS_SERVER, SKIP_REASON } from './harness.js'

describe.skipIf(NATS_SERVER === null)(`examples/nats.ts${NATS_SERVER === null ? ` (skipped: ${SKIP_REASON})` : ''}`, () => {
  it('runs as-is against its own nats-server and exits on its own', async () => {
    const r = await runScript('examples/nats.ts', [], 30_000)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('bob got: hello over NATS')
    expect(r.stdout).toContain('alice asked 21, got: 42')
    expect(r.stdout).toContain('bob read the history: 1, 2, 3')
  })
})

describe('a nats:// bus without @nats-io/transport-node', () => {
  it('reports ERR_MISSING_DEPENDENCY with the package name on status$, flush, messages$ and emit', async () => {
    const hooks = fileURLToPath(new URL('./fixtures/no-nats.mjs', import.meta.url))
    const r = await promisify(execFile)(process.execPath, ['--import', hooks, '--import', 'tsx', 'test/nats/fixtures/missing-dep.ts'], { cwd: root, timeout: 20_000 })
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toEqual({
      statuses: ['connecting', 'disconnected:ERR_MISSING_DEPENDENCY', 'closed'],
      flushed: 'ERR_MISSING_DEPENDENCY @nats-io/transport-node',
      watched: 'ERR_MISSING_DEPENDENCY',
      emitted: 'ERR_MISSING_DEPENDENCY',
    })
  })
})
