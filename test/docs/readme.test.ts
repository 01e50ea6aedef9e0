/**
 * What the README promises about the rest of the repository: its errors table is src/errors.ts,
 * its test command is what CI runs, and its links (and the docs pages' links) lead somewhere.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { METRICS } from '../../src/index.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const read = (p: string) => readFileSync(join(root, p), 'utf8')
const readme = read('README.md')
const docs = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)

/** The lines of the `## heading` section of `md` (up to the next `## `). */
function section(md: string, heading: RegExp): string {
  const lines = md.split('\n')
  const start = lines.findIndex((l) => heading.test(l))
  if (start < 0) return ''
  const end = lines.findIndex((l, i) => i > start && l.startsWith('## '))
  return lines.slice(start, end < 0 ? undefined : end).join('\n')
}

describe('README.md', () => {
  it('its errors table has a row for every code of src/errors.ts, each once, and no other code', () => {
    const codes = [...new Set([...read('src/errors.ts').matchAll(/'(ERR_[A-Z_]+)'/g)].map((m) => m[1]!))].sort()
    const rows = [...section(readme, /^## Errors/).matchAll(/^\| `(ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]!)
    expect(codes.length).toBeGreaterThan(20)
    expect([...rows].sort()).toEqual(codes)
  })

  it('.ci/run runs the test command of its Quick start (npm ci && npm test)', () => {
    const quick = section(readme, /^## Quick start/)
    const command = /^(npm ci && npm test)\b/m.exec(quick)?.[1]
    expect(command).toBe('npm ci && npm test')
    const ci = read('.ci/run').split('\n').map((l) => l.trim())
    expect(ci.filter((l) => l !== '' && !l.startsWith('#')).at(-1)).toBe(command)
  })

  it('links every docs page (the reference material lives there) and says how to build the API docs', () => {
    const linked = [...readme.matchAll(/\]\((docs\/[^)#\s]+\.md)\)/g)].map((m) => m[1]!)
    expect(docs.filter((d) => !linked.includes(d))).toEqual([])
    expect(readme).toContain('npm run docs')
  })

  it('every relative link of README.md and docs/*.md leads to a file of the repository', () => {
    const broken = ['README.md', ...docs].flatMap((file) =>
      [...read(file).matchAll(/\]\(([^)\s#]+)(?:#[^)]*)?\)/g)]
        .map((m) => m[1]!)
        .filter((target) => !/^[a-z]+:/i.test(target))
        .filter((target) => !existsSync(join(root, dirname(file), target)))
        .map((target) => `${file}: ${target}`),
    )
    expect(broken).toEqual([])
  })
})

describe('docs/observability.md', () => {
  it('its metric names table is src/metrics/names.ts: one row per metric, with its type, level, snapshot key and OpenTelemetry name', () => {
    const rows = [...read('docs/observability.md').matchAll(/^\| `(rxnet_\w+)` \| (\w+) \| (\w+) \| `(\w+)` \| `([\w.]+)` \(([^)]*)\) \|/gm)].map((m) => m.slice(1, 7).join(' '))
    const expected = METRICS.map((m) => [m.prometheus, m.type, m.level, m.stem === 'rttSeconds' ? 'rtt_seconds' : m.stem, m.otel, m.unit].join(' '))
    expect(rows).toEqual(expected)
  })
})
