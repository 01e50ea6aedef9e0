/**
 * The idempotent `close()` both bus clients share (local hub and NATS).
 * @module
 */

const noop = (): void => {}

/**
 * Runs a shutdown once: the first {@link CloseOnce.close} call gets its outcome (e.g.
 * `ERR_UNDELIVERED`), later calls resolve when it has settled, without the error.
 * @example
 * ```ts
 * const once = new CloseOnce()
 * const shutdown = async (): Promise<void> => {}
 * await once.close(shutdown) // runs shutdown
 * await once.close(shutdown) // waits for the same end
 * ```
 */
export class CloseOnce {
  private promise: Promise<void> | null = null

  /** True once close() has been called. */
  get started(): boolean {
    return this.promise !== null
  }

  /** The first call runs `shutdown` and returns its promise; later ones resolve once it has settled. */
  close(shutdown: () => Promise<void>): Promise<void> {
    if (this.promise !== null) return this.promise.then(noop, noop)
    this.promise = shutdown()
    return this.promise
  }
}
