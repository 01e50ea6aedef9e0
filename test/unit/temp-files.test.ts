import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { root } from './run-script.js'

/** Every .ts / .mjs file under `dir`, recursively (node_modules skipped). */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name)
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sources(p)
    return /\.(ts|mjs)$/.test(e.name) ? [p] : []
  })
}

/** Runs test/lab/isolate.mjs with `args`; resolves with its exit code and stderr. */
function isolate(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'test/lab/isolate.mjs'), ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stderr }))
  })
}

/** A node -e program that prints its TMPDIR and leaves the named files in it. */
const leave = (...names: string[]) => [
  process.execPath,
  '-e',
  `const fs = require('node:fs'), os = require('node:os'), path = require('node:path'); console.error('tmp=' + os.tmpdir()); for (const n of ${JSON.stringify(names)}) fs.writeFileSync(path.join(os.tmpdir(), n), '')`,
]
const tmpOf = (stderr: string) => /tmp=(\S+)/.exec(stderr)?.[1]

describe('temp files', () => {
  // The run's TMPDIR (isolate.mjs) catches what goes through os.tmpdir(); a hard-coded /tmp path escapes
  // that check (the bus lab fixture left /tmp/rxlab-bus-h*-<pid>.sock behind on every run). Flagged: a /tmp
  // literal on a line that makes a path or creates something (path =, path:, listen, startHub, connectBus,
  // write/mkdir/open). Allowed: paths built only to be refused as too long (`/tmp/${'x'.repeat(120)}`),
  // and a line marked `// tmp-ok: <why>` (a /tmp string that never reaches the file system).
  it('no test, fixture or example hard-codes a /tmp path (use os.tmpdir(), which the run owns)', () => {
    const literal = /['"`]\/tmp\/(?!\$\{'[a-z]'\.repeat\()/
    const creates = /\bpath\s*[:=]|\b(listen|startHub|connectBus|createServer|writeFile|writeFileSync|appendFile|appendFileSync|mkdir|mkdirSync|mkdtemp|mkdtempSync|open|openSync|createWriteStream|symlink|symlinkSync|bind)\s*\(/
    const hardCoded = { test: (line: string) => !/\/\/ tmp-ok\b/.test(line) && literal.test(line) && creates.test(line) }
    const offenders = ['test', 'examples']
      .flatMap((d) => sources(join(root, d)))
      .flatMap((file) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .map((line, i) => ({ line, at: `${relative(root, file)}:${i + 1}` }))
          .filter(({ line }) => hardCoded.test(line) && hardCoded.test(line.replace(/\/\/.*$/, '').replace(/^\s*\*.*$/, '')))
          .map(({ at, line }) => `${at}: ${line.trim()}`),
      )
    expect(offenders, 'use os.tmpdir(); mark a /tmp string that never reaches the file system with // tmp-ok: <why>').toEqual([])
  })

  it('isolate.mjs gives the run its own TMPDIR, removes it, and --check-tmp fails a run that left files there', async () => {
    const left = await isolate(['--check-tmp', '--', ...leave('stray.sock')])
    expect(left.code).toBe(1)
    expect(left.stderr).toContain('the run left 1 entry in its TMPDIR')
    expect(left.stderr).toContain('  stray.sock')
    const dir = tmpOf(left.stderr)
    expect(dir).toMatch(/rxt-/)
    expect(existsSync(dir!)).toBe(false)
  })

  it('a clean run exits with its own code; tool caches (tsx-<uid>) do not count; without --check-tmp leftovers only warn', async () => {
    const clean = await isolate(['--check-tmp', '--', ...leave('tsx-0')])
    expect(clean.code).toBe(0)
    expect(clean.stderr).not.toContain('left')
    const warned = await isolate(['--', ...leave('a', 'b')])
    expect(warned.code).toBe(0)
    expect(warned.stderr).toContain('WARNING: the run left 2 entries')
    const failing = await isolate(['--check-tmp', '--', process.execPath, '-e', 'process.exit(3)'])
    expect(failing.code).toBe(3)
  })
})
