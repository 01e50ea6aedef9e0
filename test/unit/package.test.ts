import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, posix } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { root } from './run-script.js'

const exec = promisify(execFile)

interface Manifest {
  version: string
  scripts: Record<string, string>
  files: string[]
  bin: Record<string, string>
  exports: Record<string, string | Record<string, string>>
}
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Manifest

/** A copy of the package as `npm pack` sees it after `prepack`: the manifest, its documents and a fresh build. */
let work: string
let pkg: string
let packed: string[]

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'rxnet-pack-'))
  pkg = join(work, 'rxnet')
  mkdirSync(pkg)
  for (const f of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md']) cpSync(join(root, f), join(pkg, f))
  cpSync(join(root, 'docs'), join(pkg, 'docs'), { recursive: true })
  // The build prepack runs, into the copy (the worktree's own dist/ may be stale or absent).
  const tsc = join(root, 'node_modules/typescript/bin/tsc')
  await exec(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', join(pkg, 'dist')], { cwd: root })
  const { stdout } = await exec('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--offline', '--no-update-notifier', '--no-fund', '--no-audit'], {
    cwd: pkg,
    env: { ...process.env, npm_config_loglevel: 'silent' },
  })
  const [result] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>
  packed = result!.files.map((f) => f.path)
}, 120_000)

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

/** The files package.json points at: every exports target and the bin. */
function entryFiles(): string[] {
  const targets: string[] = Object.values(manifest.bin)
  for (const t of Object.values(manifest.exports)) targets.push(...(typeof t === 'string' ? [t] : Object.values(t)))
  return targets.map((t) => posix.normalize(t)).filter((t) => t !== 'package.json')
}

describe('the published package (npm pack --dry-run)', () => {
  it('has no install-time script: the build runs in prepack, not prepare', () => {
    for (const s of ['preinstall', 'install', 'postinstall', 'prepare']) expect(manifest.scripts[s], s).toBeUndefined()
    expect(manifest.scripts.prepack).toBeDefined()
  })

  it('ships the three entry points, their types and the bin', () => {
    const entries = entryFiles()
    expect(entries).toEqual(expect.arrayContaining(['dist/src/index.js', 'dist/operators/index.js', 'dist/src/net/index.js', 'dist/src/cli/main.js']))
    for (const f of entries) expect(packed, f).toContain(f)
  })

  it('ships README, LICENSE, CHANGELOG and package.json', () => {
    for (const f of ['README.md', 'LICENSE', 'CHANGELOG.md', 'package.json']) expect(packed, f).toContain(f)
  })

  it('ships every page the README links to (docs/*.md and the screenshot), so its links work from the package', () => {
    const pages = ['README.md', ...packed.filter((f) => /^docs\/[^/]+\.md$/.test(f))]
    const missing: string[] = []
    for (const page of pages) {
      for (const [, link] of readFileSync(join(root, page), 'utf8').matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(link!)) continue
        const target = posix.normalize(posix.join(posix.dirname(page), link!))
        if (target.startsWith('test/')) continue // contributors' pages (the lab): only in the repository
        if (!packed.includes(target)) missing.push(`${page} -> ${target}`)
      }
    }
    expect(packed).toContain('docs/mesh.md')
    expect(missing).toEqual([])
  })

  it('ships no tests, examples, benchmarks or TypeScript sources', () => {
    const stray = packed.filter((f) => /(^|\/)(test|examples|bench)\//.test(f) || /\.test\.|\.spec\./.test(f) || (/\.ts$/.test(f) && !f.endsWith('.d.ts')))
    expect(stray).toEqual([])
  })

  it('ships no source map that points at a file the tarball lacks', () => {
    const dangling: string[] = []
    for (const map of packed.filter((f) => f.endsWith('.map'))) {
      const { sources } = JSON.parse(readFileSync(join(pkg, map), 'utf8')) as { sources: string[] }
      for (const s of sources) {
        const target = posix.normalize(posix.join(posix.dirname(map), s))
        if (!packed.includes(target)) dangling.push(`${map} -> ${target}`)
      }
    }
    expect(dangling).toEqual([])
  })

  it('has a CHANGELOG entry for this version and an Unreleased section', () => {
    const changelog = readFileSync(join(root, 'CHANGELOG.md'), 'utf8')
    expect(changelog).toMatch(/^## Unreleased$/m)
    expect(changelog).toContain(`## ${manifest.version} `)
  })
})

describe('the built package from a consumer project', () => {
  let consumer: string
  beforeAll(() => {
    // consumer/node_modules/rxnet -> the copy; the copy resolves rxjs and its dependencies from the repo.
    consumer = join(work, 'consumer')
    mkdirSync(join(consumer, 'node_modules'), { recursive: true })
    symlinkSync(pkg, join(consumer, 'node_modules', 'rxnet'), 'dir')
    symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules'), 'dir')
  })

  const probe = "typeof m.createMesh + ' ' + typeof o.frame + ' ' + typeof n.createServer"

  it('import works for rxnet, rxnet/operators and rxnet/net', async () => {
    const code = `import * as m from 'rxnet'; import * as o from 'rxnet/operators'; import * as n from 'rxnet/net'; console.log(${probe})`
    const r = await exec(process.execPath, ['--input-type=module', '-e', code], { cwd: consumer })
    expect(r.stdout.trim()).toBe('function function function')
  })

  // require() of an ES module works from Node 20.19 / 22.12 on, which package.json's engines asks for.
  it('require works for the three entry points (require of ESM)', async () => {
    const code = `const m = require('rxnet'), o = require('rxnet/operators'), n = require('rxnet/net'); console.log(${probe})`
    const r = await exec(process.execPath, ['-e', code], { cwd: consumer })
    expect(r.stdout.trim()).toBe('function function function')
  })

  it('the bin runs from the build (--help, --version)', async () => {
    const r = await exec(process.execPath, [join(pkg, manifest.bin.rxnet!), '--help'], { cwd: dirname(consumer) })
    expect(r.stdout).toContain('usage: rxnet <command> [options]')
    const v = await exec(process.execPath, [join(pkg, manifest.bin.rxnet!), '--version'], { cwd: dirname(consumer) })
    expect(v.stdout.trim()).toBe(manifest.version)
  })
})
