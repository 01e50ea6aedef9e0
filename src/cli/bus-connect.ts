/**
 * What `rxnet tail` and `rxnet emit` share: wait (bounded) until the hub has processed what the
 * client sent, and when it does not, close and fail with why (`ERR_NO_HUB`: "no hub at P ...;
 * start one with: rxnet hub --path P", `ERR_UNSAFE_PATH`, ...) instead of a bare timeout.
 * @module
 */
import type { Bus } from '../bus/options.js'
import { InvalidArgumentError, isRxnetError } from '../errors.js'
import { defaultBusPath } from '../bus/listen.js'
import { isNatsUrl } from '../bus/nats/options.js'

/** How long `rxnet tail` / `rxnet emit` wait for a hub by default, ms. */
export const DEFAULT_CLI_TIMEOUT = 5000

/**
 * Resolves once the hub has processed everything `bus` sent; otherwise closes `bus` and throws
 * the reason it is not connected (or `ERR_TIMEOUT` when it is connected but the hub is slow).
 * @example
 * ```ts
 * await connectOrExplain(connectBus(path), 5000)
 * ```
 */
export async function connectOrExplain(bus: Bus, timeout: number): Promise<void> {
  try {
    await bus.flush({ timeout })
  } catch (e) {
    await bus.close().catch(() => {}) // what it could not deliver is the error below
    const cause = (e as { cause?: unknown }).cause
    throw isRxnetError(cause) ? cause : e
  }
}

/**
 * What `--path P` / `--nats URL` name for `connectBus`: the hub's socket (default path), or NATS
 * servers (`nats://host:port`, comma-separated); both at once is refused.
 * @example
 * ```ts
 * connectBus(busTarget({ nats: 'nats://127.0.0.1:4222' }))
 * ```
 */
export function busTarget(values: { path?: string | undefined; nats?: string | undefined }): string {
  if (values.nats === undefined) return values.path ?? defaultBusPath()
  if (values.path !== undefined) throw new InvalidArgumentError('--path and --nats name two different buses: give one')
  if (!isNatsUrl(values.nats)) throw new InvalidArgumentError(`--nats wants nats://host:port (comma-separated for several), got "${values.nats}"`)
  return values.nats
}
