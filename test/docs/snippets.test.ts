/**
 * Every code block of README.md and docs/*.md runs (the markers are described in ./snippets.ts).
 *
 * Each snippet is written, as it stands, to `snippet.ts` (or `.js`) in a fresh temp dir holding a
 * `package.json` with `"type": "module"` (what the README's Install section tells a project to have)
 * and run as an ES module: `node --import test/docs/snippet-loader.mjs snippet.ts`, which compiles
 * TypeScript (tsx) and resolves `rxnet`, `rxnet/operators`, `rxnet/net` to this checkout's sources
 * (no build step). Two things are rewritten: every `/tmp/` becomes the temp dir (so runs never
 * collide on a socket path and nothing is left in the real /tmp), and with `needs-nats`,
 * `nats://127.0.0.1:4222` becomes the URL of the server the test started. TMPDIR is the temp dir too.
 *
 * A snippet passes when it exits 0 within its timeout (its whole process group is killed after it),
 * its stdout contains every `// prints: TEXT`, and it leaves no file behind. The run is inside the
 * suite's network namespace (test/lab/isolate.mjs); snippets use loopback / `interface: '127.0.0.1'`.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { startHub, type Hub } from '../../src/index.js'
import { NATS_SERVER, SKIP_REASON, startNats, type NatsCluster } from '../nats/harness.js'
import { docsEnv, snippetsOf, type Snippet } from './snippets.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const loader = fileURLToPath(new URL('./snippet-loader.mjs', import.meta.url))
const TMP = /\/tmp\//g // tmp-ok: the prefix rewritten to the snippet's own dir
const NATS_URL = 'nats://127.0.0.1:4222'

/** README.md and every docs/*.md, in that order. */
const files = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  timedOut: boolean
}

/** Runs `file` with the snippet loader in `cwd`; its process group is SIGKILLed after `timeout` ms. */
function run(file: string, cwd: string, timeout: number): Promise<Run> {
  const env = docsEnv(cwd)
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', loader, file], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    const kill = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // the group is gone already
      }
    }
    const timer = setTimeout(() => {
      timedOut = true
      kill()
    }, timeout)
    child.once('error', reject)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      kill() // cluster workers or anything else the snippet left running
      resolve({ code, signal, stdout, stderr, timedOut })
    })
  })
}

let dir: string | undefined
let hub: Hub | undefined
let nats: NatsCluster | undefined

afterEach(async () => {
  await hub?.close()
  await nats?.close()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  hub = nats = dir = undefined
})

async function check(s: Snippet): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), 'rxnet-snippet-'))
  let code = s.code.replace(TMP, `${dir}/`)
  if (s.hub !== undefined) hub = await startHub({ path: s.hub.replace(TMP, `${dir}/`) })
  if (s.nats) {
    nats = await startNats(1, { jetstream: true })
    code = code.replaceAll(NATS_URL, nats.url)
  }
  const file = `snippet.${s.lang}`
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n')
  writeFileSync(join(dir, file), code)
  const r = await run(file, dir, s.timeout)
  const report = `${s.where} (${s.heading})${r.timedOut ? `: still running after ${s.timeout} ms` : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`
  expect(r.code, report).toBe(0)
  for (const text of s.prints) expect(r.stdout, report).toContain(text)
  await hub?.close()
  const left = readdirSync(dir).filter((f) => f !== 'package.json' && f !== file && !f.startsWith('tsx-'))
  expect(left, `${s.where} left files behind`).toEqual([])
}

describe('snippet extraction (test/docs/snippets.ts)', () => {
  it('reads ts / js blocks, their markers (blank lines between allowed) and // prints:, skipping other languages', () => {
    const d = mkdtempSync(join(tmpdir(), 'rxnet-snippet-md-'))
    try {
      const md = join(d, 'x.md')
      writeFileSync(md, ['# Top', '```sh', 'npm test', '```', '## Bus', '<!-- snippet: needs-hub /tmp/a.sock; timeout 5000 -->', '', '```ts', "console.log(1) // one; prints: 1", '```', '<!-- snippet: fragment -->', '```js', 'x', '```', '```ts', 'y', '```'].join('\n')) // tmp-ok: only parsed
      const [a, b, c, ...rest] = snippetsOf(md)
      expect(rest).toEqual([])
      expect(a).toMatchObject({ where: 'x.md:8', heading: 'Bus', lang: 'ts', hub: '/tmp/a.sock', timeout: 5000, fragment: false, nats: false, prints: ['1'] }) // tmp-ok
      expect(b).toMatchObject({ where: 'x.md:12', lang: 'js', fragment: true, hub: undefined })
      expect(c).toMatchObject({ where: 'x.md:15', fragment: false, prints: [] })
      writeFileSync(md, '<!-- snippet: needs-hub -->\n```ts\nx\n```\n')
      expect(() => snippetsOf(md)).toThrow('x.md:2: unknown snippet marker "needs-hub"')
    } finally {
      rmSync(d, { recursive: true, force: true })
    }
  })
})

for (const f of files) {
  const snippets = snippetsOf(join(root, f), f)
  if (snippets.length === 0) continue
  describe(`${f}: every code block runs`, () => {
    for (const s of snippets) {
      const title = `${s.where} (${s.heading})`
      if (s.fragment) it.skip(`${title}: marked as a fragment, not run`, () => {})
      else if (s.nats && NATS_SERVER === null) it.skip(`${title}: ${SKIP_REASON}`, () => {})
      else it(title, () => check(s), s.timeout + 30_000)
    }
  })
}
