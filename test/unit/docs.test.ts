import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { root } from './run-script.js'

const exec = promisify(execFile)

/**
 * The API docs as `npm run docs` builds them (typedoc.json), into a temp dir. Without
 * --treatWarningsAsErrors, so a warning fails only the first test (which is what that flag checks) and the
 * pages are still there for the others.
 */
let out: string
let build: { code: number; output: string }

beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), 'rxnet-docs-'))
  const typedoc = join(root, 'node_modules/typedoc/bin/typedoc')
  try {
    const r = await exec(process.execPath, [typedoc, '--out', out], { cwd: root })
    build = { code: 0, output: r.stdout + r.stderr }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    build = { code: e.code ?? 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` }
  }
}, 120_000)

afterAll(() => {
  if (out) rmSync(out, { recursive: true, force: true })
})

const page = (p: string) => readFileSync(join(out, p), 'utf8')
/** The entries of a page's "On This Page" table of contents, as text. */
const toc = (html: string) =>
  [...html.slice(html.indexOf('On This Page')).matchAll(/<a href="#[^"]*"><span>(.*?)<\/span><\/a>/g)].map((m) => m[1]!.replace(/<wbr\/>/g, ''))

describe('API docs (typedoc)', () => {
  it('build with zero warnings (npx typedoc --treatWarningsAsErrors)', () => {
    expect(build.output).not.toMatch(/\[warning\]|\[error\]/)
    expect(build.code).toBe(0)
  })

  it('name the modules by their import paths: rxnet, rxnet/operators, rxnet/net', () => {
    const modules = [...page('modules.html').matchAll(/<a href="modules\/[^"]*">(.*?)<\/a>/g)].map((m) => m[1]!.replace(/<wbr\/>/g, ''))
    expect(modules).toEqual(expect.arrayContaining(['rxnet', 'rxnet/operators', 'rxnet/net']))
    expect(modules.filter((m) => !m.startsWith('rxnet'))).toEqual([])
  })

  it('keep the code of a heading in the table of contents ("Operators (rxnet/operators)", not "Operators ()")', () => {
    const entries = toc(page('index.html'))
    expect(entries.length).toBeGreaterThan(5)
    expect(entries.filter((e) => /\(\s*\)/.test(e))).toEqual([])
    expect(entries).toContain('Operators (rxnet/operators)')
  })

  it('include the guide pages (docs/*.md) and link the lab README to its page, not to a copied media/README.md', () => {
    const documents = readdirSync(join(out, 'documents'))
    for (const f of readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md'))) {
      const title = /^title: (.*)$/m.exec(readFileSync(join(root, 'docs', f), 'utf8'))?.[1]
      expect(title, `docs/${f} has a title in its front matter`).toBeDefined()
      expect(documents).toContain(`${title!.replace(/[^\w-]+/g, '_')}.html`)
    }
    const index = page('index.html')
    expect(index).not.toContain('media/README.md')
    expect(index).toContain('href="documents/The_test_lab.html"')
  })
})
