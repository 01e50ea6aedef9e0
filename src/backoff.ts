/**
 * Reconnect backoff, written once for every transport that redials (the bus client, the mesh
 * dialer, cluster links): exponential growth from `initialDelay`, capped at `maxDelay`, with
 * jitter taken off the capped value so the delay never exceeds `maxDelay` and reconnecting
 * clients never retry in lockstep, even at the cap.
 * @module
 */
import { checkInt } from './options.js'

/**
 * Options of {@link backoffDelay} and {@link Backoff}.
 * @example
 * ```ts
 * const options: BackoffOptions = { initialDelay: 50, maxDelay: 2000, jitter: 0.5 }
 * ```
 */
export interface BackoffOptions {
  /** Delay before the first retry, ms (before jitter). */
  initialDelay: number
  /** Largest delay, ms: no delay ever exceeds it. */
  maxDelay: number
  /** Growth per attempt. @default 2 */
  factor?: number
  /** Fraction (0..1) of the delay taken off at random. @default 0.5 ({@link DEFAULT_BACKOFF_JITTER}) */
  jitter?: number
  /** Source of randomness in [0, 1), for tests. @default Math.random */
  random?: () => number
}

/**
 * Default jitter of {@link backoffDelay}: each delay is uniform in [50%, 100%] of its nominal value.
 * @example
 * ```ts
 * backoffDelay(3, { initialDelay: 100, maxDelay: 2000, jitter: DEFAULT_BACKOFF_JITTER / 2 })
 * ```
 */
export const DEFAULT_BACKOFF_JITTER = 0.5

/**
 * Delay before retry number `attempt` (0 for the first retry): `initialDelay * factor^attempt`,
 * capped at `maxDelay`, then reduced by up to `jitter` of itself at random. Always in
 * `[(1 - jitter) * nominal, nominal]`, never above `maxDelay`, never below 0.
 *
 * @example
 * ```ts
 * import { backoffDelay } from 'rxnet'
 * for (let attempt = 0; attempt < 5; attempt++) console.log(backoffDelay(attempt, { initialDelay: 100, maxDelay: 1000 }))
 * // e.g. 71, 187, 352, 622, 903
 * ```
 */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const { initialDelay, maxDelay, factor = 2, jitter = DEFAULT_BACKOFF_JITTER, random = Math.random } = options
  const nominal = Math.min(maxDelay, initialDelay * factor ** Math.min(Math.max(0, attempt), 64))
  return Math.max(0, Math.round(nominal * (1 - jitter * random())))
}

/**
 * A backoff with its own attempt counter: `next()` returns the next delay and counts the
 * attempt, `reset()` after a success starts over from `initialDelay`.
 *
 * @example
 * ```ts
 * import { Backoff } from 'rxnet'
 * const backoff = new Backoff({ initialDelay: 50, maxDelay: 2000 })
 * socket.on('close', () => setTimeout(reconnect, backoff.next()))
 * socket.on('connect', () => backoff.reset())
 * ```
 */
export class Backoff {
  /** Retries since the last `reset()`. */
  attempt = 0
  private readonly options: BackoffOptions

  constructor(options: BackoffOptions) {
    checkInt('initialDelay', options.initialDelay, 0)
    checkInt('maxDelay', options.maxDelay, 0)
    this.options = { ...options, maxDelay: Math.max(options.initialDelay, options.maxDelay) }
  }

  /** The delay before the next retry, ms; counts the attempt. */
  next(): number {
    return backoffDelay(this.attempt++, this.options)
  }

  /** Starts over (after a successful connection). */
  reset(): void {
    this.attempt = 0
  }
}
