/**
 * `npm run bench [-- suite ...] [--runs N] [--json file]` (tsc-compiled by build.mjs; `npm run bench:tsx`
 * runs the sources under tsx): runs every `test/bench/*.bench.ts` (or
 * the named suites), prints progress to stderr and a table of medians to stdout; with `--json
 * file`, also writes `[{ suite, case, value, unit, baseline, ratio, target, met, samples }]`.
 * Loopback only; every load loop is bounded in count and time.
 */
import { readdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import os from 'node:os'
import { checkInt } from '../../src/options.js'
import { compiled, createContext, type BenchFn, type BenchRow } from './harness.js'

const dir = fileURLToPath(new URL('.', import.meta.url))
const args = process.argv.slice(2)
function option(name: string): string | undefined {
  const i = args.indexOf(name)
  if (i < 0) return undefined
  const value = args[i + 1]
  if (value === undefined) throw new Error(`${name} needs a value`)
  args.splice(i, 2)
  return value
}
const runs = Number(option('--runs') ?? 5)
const jsonFile = option('--json')
checkInt('--runs', runs)
const wanted = new Set(args)
const suffix = compiled ? '.bench.js' : '.bench.ts'
const files = readdirSync(dir).filter((f) => f.endsWith(suffix)).sort()
const suiteOf = (file: string): string => file.slice(0, -suffix.length)
const unknown = [...wanted].filter((w) => !files.includes(w + suffix))
if (unknown.length > 0) throw new Error(`unknown suite(s): ${unknown.join(', ')} (have: ${files.map(suiteOf).join(', ')})`)

const rows: BenchRow[] = []
for (const file of files) {
  const suite = suiteOf(file)
  if (wanted.size > 0 && !wanted.has(suite)) continue
  process.stderr.write(`\n== ${suite}\n`)
  const mod = (await import(pathToFileURL(dir + file).href)) as { default: BenchFn }
  await mod.default(createContext(suite, rows, runs))
}

const fmt = (n: number): string => (n >= 100 ? Math.round(n).toLocaleString('en') : n.toPrecision(3))
const table = [
  ['suite', 'case', 'median', 'unit', 'ratio', 'vs', 'target'],
  ...rows.map((r) => [r.suite, r.name, fmt(r.median), r.unit, r.ratio !== undefined ? `${r.ratio}x` : '', r.baseline ?? '', r.target !== undefined ? `${r.target} ${r.met ? 'met' : 'NOT met'}` : '']),
]
const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)))
const line = (row: string[]): string => row.map((cell, c) => (c === 2 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd()
process.stdout.write(`\nnode ${process.version}, ${os.cpus().length} cpus, ${runs} runs per case (median), ${compiled ? 'tsc-compiled' : 'TypeScript under tsx'}\n`)
process.stdout.write([line(table[0]!), line(widths.map((w) => '-'.repeat(w))), ...table.slice(1).map(line)].join('\n') + '\n')

if (jsonFile !== undefined) {
  const out = rows.map((r) => ({ suite: r.suite, case: r.name, value: r.median, unit: r.unit, baseline: r.baseline ?? null, ratio: r.ratio ?? null, target: r.target ?? null, met: r.met ?? null, samples: r.samples, params: r.params ?? {} }))
  writeFileSync(jsonFile, JSON.stringify(out, null, 2) + '\n')
  process.stderr.write(`wrote ${jsonFile}\n`)
}
process.exit(0)
