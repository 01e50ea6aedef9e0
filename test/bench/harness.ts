/**
 * Benchmark harness: every `test/bench/*.bench.ts` default-exports a function taking a
 * {@link BenchContext}; it measures with {@link BenchContext.measure} and reports rows. run.ts
 * prints them as a table on stdout (and to `--json file`); progress goes to stderr live.
 * Ratios are always against a baseline measured in the same run.
 */
import { fileURLToPath } from 'node:url'

/** Whether the benchmarks run as tsc's output (`npm run bench`) rather than as TypeScript under tsx (`npm run bench:tsx`). */
export const compiled = import.meta.url.endsWith('.js')

/** The repository's root (the working directory of every child process). */
export const root = fileURLToPath(new URL(compiled ? '../../..' : '../..', import.meta.url))

/**
 * A script to run in a child process, given relative to `from` (a bench file's `import.meta.url`)
 * without its extension, and the node flags it needs: the compiled `.js` as is, the `.ts` under tsx.
 * @example
 * const { file, execArgv } = script(import.meta.url, './mesh.peer')
 * fork(file, [], { cwd: root, execArgv })
 */
export function script(from: string, path: string): { file: string; execArgv: string[] } {
  const js = from.endsWith('.js')
  return { file: fileURLToPath(new URL(path + (js ? '.js' : '.ts'), from)), execArgv: js ? [] : ['--import', 'tsx'] }
}
export interface BenchRow {
  /** Bench file, e.g. `framing`. */
  suite: string
  /** What was measured, e.g. `socketChannel 64B`. */
  name: string
  /** Unit of `median`, e.g. `msg/s`. */
  unit: string
  /** Median of `samples`. */
  median: number
  samples: number[]
  /** Name of the row in the same suite this one is compared with. */
  baseline?: string
  /** `median / baseline.median`. */
  ratio?: number
  /** A target from the issue, e.g. `>= 0.4`, with whether it was met. */
  target?: string
  met?: boolean
  params?: Record<string, unknown>
}

export interface BenchContext {
  readonly suite: string
  /** Samples per measurement (`--runs N`, default 5). */
  readonly runs: number
  /** Runs `sample` `runs` times (after one warm-up); each call returns one figure (e.g. msg/s). */
  measure(sample: () => Promise<number>, runs?: number): Promise<{ median: number; samples: number[] }>
  /** Records a row; when `baseline` names an earlier row, `ratio` is computed. */
  report(row: Omit<BenchRow, 'suite' | 'ratio' | 'met'> & { minRatio?: number }): BenchRow
  /** Prints a progress line to stderr. */
  log(line: string): void
}

export type BenchFn = (ctx: BenchContext) => Promise<void>

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

export function createContext(suite: string, rows: BenchRow[], defaultRuns: number): BenchContext {
  const log = (line: string): void => void process.stderr.write(`[${suite}] ${line}\n`)
  return {
    suite,
    runs: defaultRuns,
    log,
    async measure(sample, runs = defaultRuns) {
      await sample()
      const samples: number[] = []
      for (let i = 0; i < runs; i++) samples.push(await sample())
      return { median: median(samples), samples }
    },
    report({ minRatio, ...row }) {
      const full: BenchRow = { suite, ...row }
      if (row.baseline !== undefined) {
        const base = rows.find((r) => r.suite === suite && r.name === row.baseline)
        if (base !== undefined && base.median > 0) full.ratio = Number((row.median / base.median).toFixed(3))
      }
      if (minRatio !== undefined && full.ratio !== undefined) {
        full.target = `>= ${minRatio}x`
        full.met = full.ratio >= minRatio
      }
      rows.push(full)
      const r = full.ratio !== undefined ? `  (${full.ratio}x ${row.baseline}${full.target ? `, target ${full.target}: ${full.met ? 'met' : 'NOT met'}` : ''})` : ''
      log(`${row.name}: ${Math.round(row.median).toLocaleString('en')} ${row.unit}${r}`)
      return full
    },
  }
}

/**
 * One sample of an in-order stream of `{ i }` values: arms the receiver (`arm` gets the callback
 * each value goes to and returns its teardown), waits for `ready` (e.g. the subscription is in
 * place at the server), then calls `start` (tells the sender to go). Resolves with values/s from
 * `start` until `n` values arrived as 0, 1, ... n - 1; rejects on a value out of order (lost or
 * reordered) or after `deadlineMs`.
 */
export async function inOrderRate(n: number, arm: (onValue: (v: { i: number }) => void) => () => void, start: () => void, deadlineMs: number, ready?: () => Promise<void>): Promise<number> {
  let t0 = 0
  const result = new Promise<number>((resolve, reject) => {
    let next = 0
    const timer = setTimeout(() => {
      disarm()
      reject(new Error(`sample took over ${deadlineMs} ms (${next} of ${n} received)`))
    }, deadlineMs)
    const disarm = arm((v) => {
      if (v.i !== next) {
        clearTimeout(timer)
        disarm()
        reject(new Error(`value ${v.i} arrived when ${next} was expected (lost or reordered)`))
        return
      }
      if (++next === n) {
        const rate = n / ((performance.now() - t0) / 1000)
        clearTimeout(timer)
        disarm()
        resolve(rate)
      }
    })
  })
  await ready?.()
  t0 = performance.now()
  start()
  return result
}
