import { execFile } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { root } from '../unit/run-script.js'

const exec = promisify(execFile)
let work: string | undefined
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

describe('npm run build', () => {
  it('puts the dashboard page beside the compiled server, which serves it', async () => {
    work = mkdtempSync(join(tmpdir(), 'rxnet-build-'))
    for (const f of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'src', 'operators']) cpSync(join(root, f), join(work, f), { recursive: true })
    symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'))
    await exec('npm', ['run', 'build', '--silent'], { cwd: work, env: { ...process.env, npm_config_update_notifier: 'false' } })
    const { startDashboard } = (await import(pathToFileURL(join(work, 'dist/src/dashboard/server.js')).href)) as typeof import('../../src/dashboard/server.js')
    const d = await startDashboard({ sources: [] })
    try {
      for (const f of ['', 'app.js', 'style.css']) expect((await fetch(`${d.url}${f}`)).status, f).toBe(200)
    } finally {
      await d.close()
    }
  }, 180_000)
})
