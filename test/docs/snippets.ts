/**
 * The code blocks of README.md and docs/*.md, as test/docs/snippets.test.ts runs them.
 *
 * Every fenced block tagged `ts` / `typescript` / `js` / `javascript` / `mjs` is a snippet. An HTML
 * comment on the line(s) right before the fence (blank lines allowed) says what it needs, as
 * `<!-- snippet: WORD [ARG]; WORD [ARG] -->`:
 *
 * | marker | meaning |
 * | --- | --- |
 * | `fragment` | not run: a declaration or a piece of a larger program (keep these few) |
 * | `needs-hub PATH` | a bus hub is started at PATH before the snippet runs, closed after |
 * | `needs-nats` | a nats-server (JetStream on) is started on 127.0.0.1; `nats://127.0.0.1:4222` in the snippet is its URL |
 * | `timeout MS` | how long the snippet may run (default {@link DEFAULT_SNIPPET_TIMEOUT}) |
 *
 * Inside a snippet, a line comment `// prints: TEXT` (or `// ...; prints: TEXT`, at its end) says the snippet's stdout contains TEXT.
 */
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'

/** How long a snippet may run unless its marker says otherwise (ms). */
export const DEFAULT_SNIPPET_TIMEOUT = 20_000

/** One code block, where it is, and what it needs. */
export interface Snippet {
  /** `README.md:123` (the fence's line). */
  readonly where: string
  /** The closest heading above it. */
  readonly heading: string
  readonly lang: 'ts' | 'js'
  readonly code: string
  readonly fragment: boolean
  /** The hub path of `needs-hub`, as written (before /tmp is mapped). */
  readonly hub: string | undefined
  readonly nats: boolean
  readonly timeout: number
  /** Every `// prints: TEXT`. */
  readonly prints: readonly string[]
}

const FENCE = /^```(\w*)\s*$/
const LANGS: Record<string, 'ts' | 'js'> = { ts: 'ts', typescript: 'ts', js: 'js', javascript: 'js', mjs: 'js' }
const MARKER = /^<!--\s*snippet:\s*(.*?)\s*-->$/
const PRINTS = /\/\/.*?\bprints: (.*?)\s*$/

/** The snippets of one Markdown file (`file` is a path; `where` uses its base name, or `label`). */
export function snippetsOf(file: string, label = basename(file)): Snippet[] {
  const lines = readFileSync(file, 'utf8').split('\n')
  const out: Snippet[] = []
  let heading = ''
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (/^#{1,6} /.test(line)) heading = line.replace(/^#+ /, '')
    const open = FENCE.exec(line)
    if (open === null) continue
    let end = i + 1
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++
    if (end >= lines.length) throw new Error(`${label}:${i + 1}: code block never closed`)
    const lang = LANGS[open[1]!]
    if (lang !== undefined) {
      const code = lines.slice(i + 1, end).join('\n') + '\n'
      out.push({ where: `${label}:${i + 1}`, heading, lang, code, ...markers(lines, i, `${label}:${i + 1}`), prints: printsOf(code) })
    }
    i = end
  }
  return out
}

/** The markers in the comment lines right above line `fence` (blank lines skipped). */
function markers(lines: readonly string[], fence: number, where: string): Pick<Snippet, 'fragment' | 'hub' | 'nats' | 'timeout'> {
  const m = { fragment: false, hub: undefined as string | undefined, nats: false, timeout: DEFAULT_SNIPPET_TIMEOUT }
  for (let j = fence - 1; j >= 0; j--) {
    const text = lines[j]!.trim()
    if (text === '') continue
    const marker = MARKER.exec(text)
    if (marker === null) break
    for (const part of marker[1]!.split(';').map((p) => p.trim()).filter((p) => p !== '')) {
      const [word, arg, ...rest] = part.split(/\s+/)
      if (rest.length > 0) throw new Error(`${where}: snippet marker "${part}" has more than one argument`)
      if (word === 'fragment' && arg === undefined) m.fragment = true
      else if (word === 'needs-hub' && arg !== undefined) m.hub = arg
      else if (word === 'needs-nats' && arg === undefined) m.nats = true
      else if (word === 'timeout' && arg !== undefined && /^\d+$/.test(arg)) m.timeout = Number(arg)
      else throw new Error(`${where}: unknown snippet marker "${part}" (fragment, needs-hub PATH, needs-nats, timeout MS)`)
    }
  }
  return m
}

function printsOf(code: string): string[] {
  return code.split('\n').flatMap((l) => {
    const m = PRINTS.exec(l)
    return m === null ? [] : [m[1]!]
  })
}

/**
 * The environment a documented program runs in: this environment with `dir` as its temp dir (so
 * what it writes there is checked and removed), no XDG_RUNTIME_DIR (the bus's default path then
 * lives under TMPDIR), no RXNET_SECRET and no NODE_OPTIONS of ours.
 */
export function docsEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: dir, TMP: dir, TEMP: dir }
  delete env['XDG_RUNTIME_DIR']
  delete env['RXNET_SECRET']
  delete env['NODE_OPTIONS']
  return env
}
