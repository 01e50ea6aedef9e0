/**
 * Option handling shared by every factory: defaults merged once (an explicit `undefined` keeps
 * the default) and integer checks that fail with `ERR_INVALID_ARGUMENT`.
 * @module
 */
import { InvalidArgumentError } from './errors.js'
import { OVERFLOW_POLICIES, type OverflowPolicy } from './queue.js'

/**
 * Throws `ERR_INVALID_ARGUMENT` when `options` has a key that is not in `known` (a typo such as
 * `interfce` must not silently run with the default), naming the key and the closest valid one.
 * `where` names the factory in the message (`createMesh`, `startHub`, ...).
 */
export function checkKeys(where: string, options: object | undefined | null, known: Iterable<string>): void {
  if (options === undefined || options === null) return
  if (typeof options !== 'object') throw new InvalidArgumentError(`${where}: options must be an object, got ${typeof options}`)
  const valid = [...known]
  for (const key of Object.keys(options)) {
    if (valid.includes(key)) continue
    const near = closest(key, valid)
    throw new InvalidArgumentError(`${where}: unknown option "${key}"${near === undefined ? '' : ` (did you mean "${near}"?)`}; valid options: ${valid.join(', ')}`)
  }
}

/** The entry of `candidates` nearest to `word` by edit distance, if it is near enough to be a typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase())
    if (d < bestDistance) [best, bestDistance] = [c, d]
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined
}

/** Levenshtein distance (two rows). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = row
  }
  return prev[b.length]!
}

/** `defaults` overridden by every option that is not `undefined`. */
export function withDefaults<D extends object>(defaults: D, options: object): D {
  const merged = { ...defaults } as Record<string, unknown>
  for (const [k, v] of Object.entries(options)) if (v !== undefined) merged[k] = v
  return merged as D
}

/** Returns `value` if it is an integer in `min..max`; throws `ERR_INVALID_ARGUMENT` naming the option otherwise. */
export function checkInt(name: string, value: unknown, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? (min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `an integer >= ${min}`) : `an integer in ${min}..${max}`
    throw new InvalidArgumentError(`${name} must be ${range}, got ${describeValue(value)}`)
  }
  return value
}

/** How a bad option value is shown in a message: a string is quoted and called one (`'400'` is not `400`). */
export function describeValue(value: unknown): string {
  return typeof value === 'string' ? `the string ${JSON.stringify(value)}` : String(value)
}

/** Returns `value` if it is an {@link OverflowPolicy}; throws `ERR_INVALID_ARGUMENT` otherwise. */
export function checkOverflow(value: unknown, name = 'overflow'): OverflowPolicy {
  if (!OVERFLOW_POLICIES.includes(value as OverflowPolicy)) throw new InvalidArgumentError(`${name} must be one of ${OVERFLOW_POLICIES.join(', ')}, got ${describeValue(value)}`)
  return value as OverflowPolicy
}
