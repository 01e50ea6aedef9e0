/**
 * Loads the optional NATS client packages on first use (dynamic import), so that rxnet works
 * without them until a `nats://` bus is asked for; a missing one is `ERR_MISSING_DEPENDENCY`.
 * @module
 */
import { MissingDependencyError } from '../../errors.js'

type Transport = typeof import('@nats-io/transport-node')
type JetStreamModule = typeof import('@nats-io/jetstream')

/** Package names, in a variable so bundlers and tests can see what is loaded. */
export const NATS_PACKAGE = '@nats-io/transport-node'
/** The JetStream package, needed only for durable topics. */
export const JETSTREAM_PACKAGE = '@nats-io/jetstream'

let transport: Promise<Transport> | undefined
let jetstream: Promise<JetStreamModule> | undefined

/** `@nats-io/transport-node`, or `ERR_MISSING_DEPENDENCY`. */
export function loadTransport(): Promise<Transport> {
  transport ??= (import(NATS_PACKAGE) as Promise<Transport>).catch((e: unknown) => {
    transport = undefined
    throw new MissingDependencyError(NATS_PACKAGE, e)
  })
  return transport
}

/** `@nats-io/jetstream`, or `ERR_MISSING_DEPENDENCY`. */
export function loadJetStream(): Promise<JetStreamModule> {
  jetstream ??= (import(JETSTREAM_PACKAGE) as Promise<JetStreamModule>).catch((e: unknown) => {
    jetstream = undefined
    throw new MissingDependencyError(JETSTREAM_PACKAGE, e)
  })
  return jetstream
}
