import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const script = fileURLToPath(new URL('./fixtures/close.ts', import.meta.url))

function runToExit(env: Record<string, string>): Promise<{ code: number | null; out: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now()
    const p = spawn(process.execPath, ['--import', 'tsx', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.on('data', (d) => (out += d))
    const kill = setTimeout(() => p.kill('SIGKILL'), 15_000)
    p.on('exit', (code) => {
      clearTimeout(kill)
      resolve({ code, out, ms: Date.now() - t0 })
    })
  })
}

describe('mesh close()', () => {
  it.each([
    ['plain TCP', ''],
    ['TLS-PSK', 'k'],
  ])('releases every handle (%s): the process exits on its own after close', async (_label, secret) => {
    const r = await runToExit({ CLOSE_SECRET: secret })
    expect(r.code).toBe(0)
    const line = JSON.parse(r.out.trim().split('\n').pop()!)
    expect(line.closed).toBe(true)
    // Only stdio remains (a pipe for stdout, and a TTY/pipe for stderr).
    for (const h of line.handles as string[]) expect(['WriteStream', 'Socket', 'Pipe', 'TTY']).toContain(h)
    expect(line.handles.length).toBeLessThanOrEqual(2)
  }, 20_000)
})
