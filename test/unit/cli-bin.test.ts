import { mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { root, runScript } from './run-script.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const run = runScript

describe('the rxnet bin', () => {
  it('runs when started through a symlink, as npm installs it in node_modules/.bin', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rxnet-bin-'))
    dirs.push(dir)
    const link = join(dir, 'rxnet')
    symlinkSync(join(root, 'src/cli/main.ts'), link)
    const r = await run(link, ['--help'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('usage: rxnet <command> [options]')
  })
})
