/**
 * `npm run bench`: compiles the library and the benchmarks with tsc into `.bench-build/` (what
 * users run is tsc's output, not TypeScript under tsx, whose esbuild transform adds a `__name`
 * call to every named closure created per message), then runs `.bench-build/test/bench/run.js`
 * with the same arguments. `npm run bench:tsx` runs the sources under tsx instead (quicker to
 * iterate on; figures are not comparable with this build's).
 */
import { spawnSync, spawn } from 'node:child_process'
import { cpSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))
const out = `${root}.bench-build`
const started = Date.now()
process.stderr.write('compiling the benchmarks with tsc into .bench-build/ ...\n')
rmSync(out, { recursive: true, force: true })
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
const build = spawnSync(process.execPath, [tsc, '-p', `${root}tsconfig.bench.json`], { cwd: root, stdio: 'inherit' })
if (build.status !== 0) {
  process.stderr.write(`tsc failed (exit ${build.status ?? build.signal})\n`)
  process.exit(1)
}
// `rxnet` (imported by some bench files) resolves to this build, not to dist/: the package
// resolves itself through .bench-build/node_modules/rxnet -> .bench-build, one module graph.
const pkg = { name: 'rxnet', private: true, type: 'module', exports: { '.': './src/index.js', './operators': './operators/index.js', './net': './src/net/index.js' } }
writeFileSync(`${out}/package.json`, JSON.stringify(pkg, null, 2) + '\n')
mkdirSync(`${out}/node_modules`)
symlinkSync('..', `${out}/node_modules/rxnet`, 'dir')
cpSync(`${root}src/dashboard/page`, `${out}/src/dashboard/page`, { recursive: true })
process.stderr.write(`compiled in ${((Date.now() - started) / 1000).toFixed(1)} s\n`)

const child = spawn(process.execPath, [`${out}/test/bench/run.js`, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' })
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
