/**
 * UDP multicast as a `Channel`: `multicast(options)` joins a group; `source` emits
 * `{ data, from }`, `send(bytes)` sends to the group. Small messages are packed into datagrams,
 * every datagram carries a sender id and sequence number (duplicates and own echoes are dropped,
 * gaps counted), and with `secret` datagrams are sealed with AES-256-GCM.
 *
 * Layout: `datagram.ts` (pure wire format), `crypto.ts` (HKDF key, GCM seal / open),
 * `window.ts` (per-sender sequence window), `options.ts` (options, defaults, public types),
 * `stats.ts` (the counters), `receiver.ts` (the receive / verify path), `sender.ts` (packing
 * and numbering outbound datagrams), `multicast.ts` (the socket adapter, on the lifecycle kernel).
 *
 * @example
 * ```ts
 * import { multicast } from 'rxnet'
 * const mc = multicast({ group: '239.255.0.2', port: 4455, interface: '127.0.0.1' })
 * mc.source.subscribe(({ data, from }) => console.log(from.address, from.senderId, data.length))
 * mc.send(new Uint8Array([1, 2, 3]))
 * ```
 * @module
 */
export { multicast } from './multicast.js'
export {
  type MulticastOptions,
  type MulticastChannel,
  type MulticastMessage,
  type MulticastSender,
  type MulticastStats,
  type SenderInfo,
  type DatagramRejection,
  type MulticastEvent,
  type DatagramRejectReason,
  DEFAULT_MULTICAST_OPTIONS,
  DEFAULT_MULTICAST_GROUP,
  DEFAULT_MULTICAST_PORT,
  DEFAULT_MAX_DATAGRAM,
  DEFAULT_MULTICAST_HIGH_WATER_MARK,
} from './options.js'
