/**
 * `npm run bench [-- suite ...] [--runs N]`: runs every `test/bench/*.bench.ts` (or the named
 * suites), prints progress to stderr and the results as JSON to stdout and bench-results.json.
 * Loopback only; every load loop is bounded in count and time.
 */
import { readdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import os from 'node:os'
import { createContext, type BenchFn, type BenchRow } from './harness.js'

const dir = fileURLToPath(new URL('.', import.meta.url))
const args = process.argv.slice(2)
const runsIdx = args.indexOf('--runs')
const runs = runsIdx >= 0 ? Number(args.splice(runsIdx, 2)[1]) : 5
const wanted = new Set(args)
const files = readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).sort()
const rows: BenchRow[] = []
for (const file of files) {
  const suite = file.replace(/\.bench\.ts$/, '')
  if (wanted.size > 0 && !wanted.has(suite)) continue
  process.stderr.write(`\n== ${suite}\n`)
  const mod = (await import(pathToFileURL(dir + file).href)) as { default: BenchFn }
  await mod.default(createContext(suite, rows, runs))
}
const out = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, runs, rows }
writeFileSync('bench-results.json', JSON.stringify(out, null, 2) + '\n')
process.stdout.write(JSON.stringify(out, null, 2) + '\n')
process.exit(0)
