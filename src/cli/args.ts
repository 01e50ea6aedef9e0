/**
 * Argument helpers shared by the CLI subcommands.
 * @module
 */
import { InvalidArgumentError } from '../errors.js'

/**
 * The value of a `--flag N` option as a positive integer, `fallback` when it was not given;
 * `ERR_INVALID_ARGUMENT` for anything else (`abc`, `0`, `1.5`), so a typo fails at once instead
 * of turning into `NaN`.
 * @example
 * ```ts
 * const count = positiveIntFlag('count', values.count, Infinity)
 * ```
 */
export function positiveIntFlag(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`--${flag} wants a positive integer, got "${value}"`)
  return n
}
