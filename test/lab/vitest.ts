/**
 * vitest helpers for the network lab (kept apart from lab.ts so lab.ts also works outside vitest,
 * e.g. from a bench or a script run with tsx).
 */
import { describe, it } from 'vitest'
import { labUnavailableReason } from './lab.js'

/**
 * vitest `describe` that runs only where the lab is available; elsewhere it is skipped with the
 * reason in its title, so the report says why.
 * @example
 * ```ts
 * describeLab('partition', () => { it('...', async () => { ... }) })
 * ```
 */
export function describeLab(name: string, fn: () => void): void {
  const reason = labUnavailableReason()
  if (reason) describe.skip(`${name} [skipped: ${reason}]`, fn)
  else describe(name, fn)
}

/**
 * vitest `it` that runs only where the lab is available; elsewhere skipped with the reason in its title.
 * @example
 * ```ts
 * itLab('survives a partition', async () => { const lab = await createLab({ hosts: 2 }); ... })
 * ```
 */
export function itLab(name: string, fn: () => Promise<void> | void, timeoutMs?: number): void {
  const reason = labUnavailableReason()
  if (reason) it.skip(`${name} [skipped: ${reason}]`, fn)
  else it(name, fn, timeoutMs)
}
