/**
 * Vitest reporter that ends the run with one plain line, `tests: N passed, N failed, N skipped`,
 * so CI logs can be read without parsing vitest's coloured summary.
 */
import type { Reporter } from 'vitest/reporters'

interface TaskLike {
  type: string
  mode?: string
  result?: { state?: string }
  tasks?: TaskLike[]
}

function count(tasks: readonly TaskLike[], acc: { passed: number; failed: number; skipped: number }): void {
  for (const t of tasks) {
    if (t.tasks !== undefined && t.type !== 'test') count(t.tasks, acc)
    if (t.type !== 'test') continue
    const state = t.result?.state
    if (state === 'pass') acc.passed++
    else if (state === 'fail') acc.failed++
    else acc.skipped++
  }
}

export default class SummaryReporter implements Reporter {
  onFinished(files: readonly TaskLike[] = [], errors: readonly unknown[] = []): void {
    const acc = { passed: 0, failed: 0, skipped: 0 }
    count(files, acc)
    // Files that failed to load count as failures too.
    const broken = files.filter((f) => f.result?.state === 'fail' && (f.tasks ?? []).length === 0).length
    acc.failed += broken + errors.length
    process.stdout.write(`\ntests: ${acc.passed} passed, ${acc.failed} failed, ${acc.skipped} skipped\n`)
  }
}
