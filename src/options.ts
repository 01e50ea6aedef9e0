/**
 * Option handling shared by every factory: defaults merged once (an explicit `undefined` keeps
 * the default) and integer checks that fail with `ERR_INVALID_ARGUMENT`.
 * @module
 */
import { InvalidArgumentError } from './errors.js'
import { OVERFLOW_POLICIES, type OverflowPolicy } from './queue.js'

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
    throw new InvalidArgumentError(`${name} must be ${range}, got ${String(value)}`)
  }
  return value
}

/** Returns `value` if it is an {@link OverflowPolicy}; throws `ERR_INVALID_ARGUMENT` otherwise. */
export function checkOverflow(value: unknown, name = 'overflow'): OverflowPolicy {
  if (!OVERFLOW_POLICIES.includes(value as OverflowPolicy)) throw new InvalidArgumentError(`${name} must be one of ${OVERFLOW_POLICIES.join(', ')}, got ${String(value)}`)
  return value as OverflowPolicy
}
