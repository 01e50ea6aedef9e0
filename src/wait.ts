/**
 * Promises with a deadline and an `AbortSignal`, written once: {@link deadline} (a `new Promise`
 * whose executor returns its cleanup, settled by whichever comes first of itself, the signal or
 * the timeout), {@link waitFor} (an existing promise raced against a signal / timeout),
 * {@link delay} (an abortable sleep) and {@link Waiters} (the `whenWritable()` waiter list).
 * Every listener and timer is removed however the wait ends.
 * @module
 */
import { AbortError, TimeoutError } from './errors.js'

/**
 * Options of {@link deadline} and {@link waitFor}.
 * @example
 * ```ts
 * const options: DeadlineOptions = { signal: AbortSignal.timeout(5000), timeout: 1000, what: 'handshake' }
 * ```
 */
export interface DeadlineOptions {
  /** Rejects with `ERR_ABORTED` (`cause`: the signal's reason) when it fires first. */
  signal?: AbortSignal
  /** Rejects with `ERR_TIMEOUT` after this many ms (none when undefined). */
  timeout?: number
  /** Names the operation in the `ERR_TIMEOUT` message. @default 'operation' */
  what?: string
  /** Builds the error a timeout rejects with (instead of `TimeoutError(what, timeout)`). */
  onTimeout?: () => unknown
  /** The timeout does not keep the process alive (`timer.unref()`). @default false */
  unref?: boolean
}

/** Settles a {@link deadline} promise from its executor. */
export interface Settle<T> {
  resolve(value: T): void
  reject(error: unknown): void
}

/**
 * A promise settled by `start` (through `settle`), or rejected when `signal` aborts or `timeout`
 * ms pass. The cleanup `start` returns runs exactly once, however it settled (also when `start`
 * throws: then the promise rejects with what it threw).
 *
 * @example
 * ```ts
 * import { once } from 'node:events'
 * // wait for 'connect' for at most 1 s, removing the listeners however it ends
 * await deadline<void>(({ resolve, reject }) => {
 *   socket.once('connect', resolve).once('error', reject)
 *   return () => socket.off('connect', resolve).off('error', reject)
 * }, { timeout: 1000, what: 'connect' })
 * ```
 */
export function deadline<T>(start: (settle: Settle<T>) => (() => void) | void, options: DeadlineOptions = {}): Promise<T> {
  const { signal, timeout } = options
  if (signal?.aborted) return Promise.reject(new AbortError(signal.reason))
  return new Promise<T>((resolve, reject) => {
    let done = false
    let cleanup: (() => void) | void = undefined
    let timer: NodeJS.Timeout | undefined
    const finish = (): boolean => {
      if (done) return false
      done = true
      if (timer !== undefined) clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      if (typeof cleanup === 'function') cleanup()
      return true
    }
    const settle: Settle<T> = {
      resolve: (v) => finish() && resolve(v),
      reject: (e) => finish() && reject(e),
    }
    const onAbort = (): void => settle.reject(new AbortError(signal!.reason))
    signal?.addEventListener('abort', onAbort, { once: true })
    if (timeout !== undefined) {
      timer = setTimeout(() => settle.reject(options.onTimeout?.() ?? new TimeoutError(options.what ?? 'operation', timeout)), timeout)
      if (options.unref === true) timer.unref()
    }
    try {
      cleanup = start(settle)
    } catch (e) {
      settle.reject(e)
    }
    if (done && typeof cleanup === 'function') cleanup() // settled synchronously inside start
  })
}

/**
 * `promise`, or `ERR_ABORTED` / `ERR_TIMEOUT` if `signal` fires or `timeout` passes first (the
 * work behind `promise` goes on; only the waiting stops).
 *
 * @example
 * ```ts
 * await waitFor(server.closed, { timeout: 2000, what: 'server close' })
 * ```
 */
export function waitFor<T>(promise: Promise<T>, options: DeadlineOptions = {}): Promise<T> {
  if (options.signal === undefined && options.timeout === undefined) return promise
  return deadline<T>(({ resolve, reject }) => void promise.then(resolve, reject), options)
}

/**
 * Resolves after `ms`; rejects with `ERR_ABORTED` if `signal` fires first (timer cleared).
 *
 * @example
 * ```ts
 * await delay(backoffDelay(attempt, { initialDelay: 100, maxDelay: 2000 }), { signal })
 * ```
 */
export function delay(ms: number, options: { signal?: AbortSignal } = {}): Promise<void> {
  return deadline<void>(({ resolve }) => {
    const t = setTimeout(resolve, ms)
    return () => clearTimeout(t)
  }, options)
}

/**
 * A list of waiters (e.g. the callers of `whenWritable()`): `wait(signal)` adds one, `resolveAll`
 * / `rejectAll` settle everyone waiting. A waiter whose signal fires leaves the list with
 * `ERR_ABORTED`.
 *
 * @example
 * ```ts
 * const waiters = new Waiters()
 * const p = waiters.wait(AbortSignal.timeout(1000))
 * waiters.resolveAll()
 * await p
 * ```
 */
export class Waiters {
  private list: Settle<void>[] = []

  /** How many are waiting. */
  get size(): number {
    return this.list.length
  }

  /** Waits until `resolveAll` / `rejectAll`, or `signal` fires (`ERR_ABORTED`). */
  wait(signal?: AbortSignal): Promise<void> {
    return deadline<void>((settle) => {
      this.list.push(settle)
      return () => {
        const i = this.list.indexOf(settle)
        if (i >= 0) this.list.splice(i, 1)
      }
    }, { signal })
  }

  /** Resolves every waiter. */
  resolveAll(): void {
    if (this.list.length === 0) return
    for (const w of this.list.splice(0)) w.resolve()
  }

  /** Rejects every waiter with `error`. */
  rejectAll(error: unknown): void {
    if (this.list.length === 0) return
    for (const w of this.list.splice(0)) w.reject(error)
  }
}
