/**
 * The bus: a local hub on a Unix socket / Windows named pipe (`startHub`), clients that publish
 * and subscribe by topic (`connectBus`), and hubs on different hosts bridged over multicast.
 *
 * Layout: `topics.ts` (pure pattern matching), `protocol.ts` (pure hub frame encoder / decoder),
 * `listen.ts` (socket path checks, stale socket recovery), `options.ts` / `hub-options.ts` (the
 * client's / the hub's options, defaults, public types), `hub.ts` and `client.ts` (the adapters that
 * own the sockets).
 *
 * @example
 * ```ts
 * import { startHub, connectBus } from 'rxnet'
 * const hub = await startHub({ path: '/tmp/app.sock' })
 * const bus = connectBus('/tmp/app.sock')
 * bus.messages$('log').subscribe((data) => console.log(data))
 * bus.emit('log', { line: 'TESTE' })
 * await bus.close(); await hub.close()
 * ```
 * @module
 */
export { startHub } from './hub.js'
export type { BusChannel, BusChannelOptions } from './channel.js'
export { connectBus } from './client.js'
export {
  type Hub,
  type HubOptions,
  type HubStats,
  type HubEvent,
  DEFAULT_CLIENT_HIGH_WATER_MARK,
  DEFAULT_SLOW_CLIENT_TIMEOUT,
  DEFAULT_HELLO_TIMEOUT,
  DEFAULT_RECOVERY_TIMEOUT,
  DEFAULT_MAX_CLIENTS,
  DEFAULT_MAX_PARTIAL_BYTES,
  DEFAULT_FRAME_TIMEOUT,
} from './hub-options.js'
export {
  DEFAULT_MAX_MESSAGE_SIZE,
  type Bus,
  type BusOptions,
  type BusMessage,
  type BusStatus,
  type BusEvent,
  type BusStats,
  DEFAULT_BUS_HIGH_WATER_MARK,
  DEFAULT_MIN_RECONNECT_DELAY,
  DEFAULT_MAX_RECONNECT_DELAY,
  DEFAULT_CLOSE_TIMEOUT,
} from './options.js'
export { compileTopic, matchTopic, validateTopic, type TopicMatcher, MAX_TOPIC_LENGTH } from './topics.js'
export { MAX_SOCKET_PATH, defaultBusPath } from './listen.js'
export {
  type NatsBus,
  type NatsBusOptions,
  type DurableOptions,
  type DurableReadOptions,
  type DurableStart,
  ORIGIN_HEADER,
  SEQ_HEADER,
  DEFAULT_DUPLICATE_WINDOW,
  type HubNatsOptions,
} from './nats/options.js'
export { type NatsBridge, DEFAULT_BRIDGE_HIGH_WATER_MARK } from './nats/bridge.js'
