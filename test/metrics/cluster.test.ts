import { describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { root } from '../unit/run-script.js'

const fixture = fileURLToPath(new URL('./fixtures/cluster-app.ts', import.meta.url))

describe('clusterView', () => {
  it('the primary sees every process and every link between them (workers report over IPC, unseen by ipc$)', async () => {
    const proc = spawn(process.execPath, ['--import', 'tsx', fixture], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve))
    expect(code).toBe(0)
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as { ok: boolean; nodes: Record<string, { links: string[]; workers: number[] | null }>; userIpc: number }
    expect(r.ok).toBe(true)
    expect(r.nodes).toEqual({
      '0': { links: ['0->1', '0->2'], workers: [1, 2] },
      '1': { links: ['1->0', '1->2'], workers: null },
      '2': { links: ['2->0', '2->1'], workers: null },
    })
    expect(r.userIpc).toBe(0)
  }, 60_000)
})
