/**
 * rxnet: Node.js processes on one machine and across a LAN, talking to each other as RxJS streams.
 *
 * Every connection of every transport is a {@link Channel}: an Observable `source` of inbound
 * messages and an Observer `sink` for outbound ones.
 *
 * @example
 * ```ts
 * import { socketChannel, codecs } from 'rxnet'
 * const ch = socketChannel(socket)
 * ch.source.subscribe((bytes) => console.log(codecs.json.decode(bytes)))
 * ch.send(codecs.json.encode({ hello: 'world' }))
 * ```
 * @module rxnet
 */
export { type Channel, type ChannelStats, createChannel, mapChannel } from './channel.js'
export { type Connection, type ConnectionStats, type CloseOptions, type WaitOptions, DEFAULT_CONNECTION_CLOSE_TIMEOUT } from './connection.js'
export { socketChannel, type SocketChannel, type SocketChannelOptions, DEFAULT_SOCKET_CHANNEL_OPTIONS } from './socket.js'
export {
  toDuplex,
  fromDuplex,
  fromByteDuplex,
  type Duplex,
  type ChannelDuplex,
  type DuplexChannel,
  type DuplexOptions,
  type DuplexChannelOptions,
  type ByteDuplexOptions,
  DEFAULT_DUPLEX_HIGH_WATER_MARK,
  DEFAULT_DUPLEX_HIGH_WATER_MARK_MESSAGES,
} from './interop.js'
export { mapConnection, type MapConnectionOptions } from './map-connection.js'
export { ConnectionKernel, OPEN, type ConnectionState, type KernelOptions, DEFAULT_MAX_HELD_MESSAGES } from './lifecycle.js'
export { deadline, waitFor, delay, Waiters, type DeadlineOptions, type Settle } from './wait.js'
export { backoffDelay, Backoff, type BackoffOptions, DEFAULT_BACKOFF_JITTER } from './backoff.js'
export { readHandshake, frameHandshake, lineHandshake, type HandshakeDecoder, type ReadHandshakeOptions, DEFAULT_MAX_HANDSHAKE_BYTES } from './handshake-reader.js'
export { type OverflowPolicy, DEFAULT_HIGH_WATER_MARK, DEFAULT_OVERFLOW } from './queue.js'
export { DEFAULT_MAX_LENGTH } from './framing/decoder.js'
export { type Codec, type CodecLike, codecs, json, msgpack, raw, utf8, resolveCodec } from './codec/index.js'
export {
  startHub,
  connectBus,
  compileTopic,
  matchTopic,
  validateTopic,
  defaultBusPath,
  type Hub,
  type HubOptions,
  type HubStats,
  type HubEvent,
  type Bus,
  type BusOptions,
  type BusMessage,
  type BusStatus,
  type BusEvent,
  type BusChannel,
  type BusChannelOptions,
  type BusStats,
  type TopicMatcher,
  DEFAULT_MAX_MESSAGE_SIZE,
  DEFAULT_CLIENT_HIGH_WATER_MARK,
  DEFAULT_SLOW_CLIENT_TIMEOUT,
  DEFAULT_HELLO_TIMEOUT,
  DEFAULT_RECOVERY_TIMEOUT,
  DEFAULT_MAX_CLIENTS,
  DEFAULT_MAX_PARTIAL_BYTES,
  DEFAULT_FRAME_TIMEOUT,
  DEFAULT_BUS_HIGH_WATER_MARK,
  DEFAULT_MIN_RECONNECT_DELAY,
  DEFAULT_MAX_RECONNECT_DELAY,
  DEFAULT_CLOSE_TIMEOUT,
  MAX_TOPIC_LENGTH,
  MAX_SOCKET_PATH,
  type NatsBus,
  type NatsBusOptions,
  type DurableOptions,
  type DurableReadOptions,
  type DurableStart,
  ORIGIN_HEADER,
  SEQ_HEADER,
  DEFAULT_DUPLICATE_WINDOW,
} from './bus/index.js'
export {
  multicast,
  type MulticastOptions,
  type MulticastChannel,
  type MulticastMessage,
  type MulticastSender,
  type MulticastStats,
  type SenderInfo,
  type DatagramRejection,
  type DatagramRejectReason,
  DEFAULT_MULTICAST_OPTIONS,
  DEFAULT_MULTICAST_GROUP,
  DEFAULT_MULTICAST_PORT,
  DEFAULT_MAX_DATAGRAM,
  DEFAULT_MULTICAST_HIGH_WATER_MARK,
} from './multicast/index.js'
export {
  cluster,
  type ClusterStats,
  type ClusterNode,
  type ClusterOptions,
  type RestartOptions,
  type ServeOptions,
  type ServeInfo,
  type Link,
  type WorkerEvent,
  type WorkerStatus,
  type IpcMessage,
  DEFAULT_CLUSTER_OPTIONS,
  DEFAULT_RESTART_OPTIONS,
  DEFAULT_PRIMARY_SERVES,
  DEFAULT_DISTRIBUTION,
} from './cluster/index.js'
export {
  createMesh,
  peers$,
  type Mesh,
  type MeshOptions,
  type MeshAddress,
  type MeshEvent,
  type MeshStats,
  type Peer,
  type PeersOptions,
  type LeaveReason,
  DEFAULT_MESH_OPTIONS,
  DEFAULT_PEERS_OPTIONS,
  PSK_CIPHERS,
  SERVICE_TYPE,
} from './mesh/index.js'
export {
  RxnetError,
  FrameTooLongError,
  InvalidLengthError,
  TruncatedFrameError,
  DecodeError,
  EncodeError,
  BufferOverflowError,
  ConnectionError,
  ChannelAbortedError,
  AbortError,
  TimeoutError,
  InvalidArgumentError,
  HandshakeError,
  NameMismatchError,
  VersionMismatchError,
  DuplicateIdError,
  AuthenticationError,
  PeerTimeoutError,
  DatagramTooLargeError,
  BadDatagramError,
  PathInUseError,
  PathTooLongError,
  UnsafePathError,
  NotASocketError,
  PathNotFoundError,
  PathAccessError,
  NoHubError,
  UndeliveredError,
  ProtocolError,
  LimitError,
  CrashLoopError,
  ClosedError,
  RemoteError,
  MissingDependencyError,
  ForeignAddressError,
  isRxnetError,
} from './errors.js'
export {
  meshMetrics,
  hubMetrics,
  busMetrics,
  multicastMetrics,
  clusterMetrics,
  withRates,
  deriveRates,
  prometheusExporter,
  serveMetrics,
  otelBridge,
  observeMesh,
  hubStats$,
  SYS_HUB_STATS_REQUEST,
  SYS_HUB_STATS_PATTERN,
  SYS_LEASE,
  type HubStatsReply,
  type HubClientInfo,
  METRICS,
  DEFAULT_RTT_BUCKETS,
  DEFAULT_METRICS_OPTIONS,
  DEFAULT_SERVE_METRICS_OPTIONS,
  type MetricsSnapshot,
  type LinkSnapshot,
  type LinkCounters,
  type LinkState,
  type WorkerSnapshot,
  type MetricsTransport,
  type MetricsOptions,
  type MetricName,
  type MetricsSources,
  type PrometheusExporter,
  type PrometheusOptions,
  type ServeMetricsOptions,
  type MetricsServer,
  type OtelBridge,
  type OtelBridgeOptions,
  type ObserveMeshOptions,
} from './metrics/index.js'
export { startDashboard, type Dashboard, type DashboardOptions, type View, type ViewNode, type ViewLink, DEFAULT_DASHBOARD_OPTIONS } from './dashboard/index.js'
