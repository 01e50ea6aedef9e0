/**
 * Every failure rxnet reports is an {@link RxnetError}: a class per failure, a stable `code`
 * (assert on `code`, never on message text) and an optional `cause`.
 *
 * @example
 * ```ts
 * import { RxnetError } from 'rxnet'
 * peer.source.subscribe({ error: (e) => { if (e instanceof RxnetError && e.code === 'ERR_FRAME_TOO_LONG') console.warn('peer sent a huge frame') } })
 * ```
 * @module
 */

/** Base class of every rxnet error: `name` is the class name, `code` is stable across releases. */
export class RxnetError extends Error {
  /** Stable machine-readable code, e.g. `ERR_FRAME_TOO_LONG`. */
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** A frame declared a length above `maxLength` (checked before anything is buffered). */
export class FrameTooLongError extends RxnetError {
  /** The length the frame declared. */
  readonly length: number
  /** The limit in force. */
  readonly maxLength: number
  constructor(length: number, maxLength: number) {
    super('ERR_FRAME_TOO_LONG', `frame declares ${length} bytes, more than maxLength ${maxLength}`)
    this.length = length
    this.maxLength = maxLength
  }
}

/** A frame's length prefix is not a valid unsigned varint (too many bytes, or above 2^53). */
export class InvalidLengthError extends RxnetError {
  constructor(message = 'invalid varint length prefix') {
    super('ERR_INVALID_LENGTH', message)
  }
}

/** The stream ended in the middle of a frame. */
export class TruncatedFrameError extends RxnetError {
  constructor(missing: number) {
    super('ERR_TRUNCATED_FRAME', `stream ended inside a frame (${missing} bytes missing)`)
  }
}

/** A codec could not decode a message; `cause` holds the codec's own error. */
export class DecodeError extends RxnetError {
  constructor(codec: string, cause?: unknown) {
    super('ERR_DECODE', `${codec} codec could not decode a message`, { cause })
  }
}

/** A codec could not encode a value (not serialisable, wrong type); `cause` holds the codec's error. */
export class EncodeError extends RxnetError {
  constructor(codec: string, cause?: unknown) {
    super('ERR_ENCODE', `${codec} codec could not encode a value`, { cause })
  }
}

/** A bounded buffer overflowed under the `'error'` overflow policy. */
export class BufferOverflowError extends RxnetError {
  constructor(what: string, limit: number) {
    super('ERR_BUFFER_OVERFLOW', `${what} exceeded its high-water mark of ${limit} bytes`)
  }
}

/** The underlying connection failed (reset, refused, timed out); `cause` holds the system error. */
export class ConnectionError extends RxnetError {
  constructor(message: string, cause?: unknown) {
    super('ERR_CONNECTION', message, { cause })
  }
}

/** The channel was aborted locally with `sink.error(e)`; `cause` is `e`. */
export class ChannelAbortedError extends RxnetError {
  constructor(cause?: unknown) {
    super('ERR_ABORTED', 'channel aborted', { cause })
  }
}

/** An operation was cancelled through its `AbortSignal`. */
export class AbortError extends RxnetError {
  constructor(cause?: unknown) {
    super('ERR_ABORTED', 'operation aborted', { cause })
  }
}

/** An operation did not complete in time. */
export class TimeoutError extends RxnetError {
  constructor(what: string, ms: number) {
    super('ERR_TIMEOUT', `${what} timed out after ${ms} ms`)
  }
}

/** A function was called with an argument it cannot accept. */
export class InvalidArgumentError extends RxnetError {
  constructor(message: string) {
    super('ERR_INVALID_ARGUMENT', message)
  }
}

/** A handshake was malformed, oversized, truncated or not answered in time. */
export class HandshakeError extends RxnetError {
  constructor(message: string, cause?: unknown) {
    super('ERR_HANDSHAKE', message, { cause })
  }
}

/** The far side belongs to another mesh / cluster. */
export class NameMismatchError extends RxnetError {
  constructor(expected: string, got: string) {
    super('ERR_NAME_MISMATCH', `peer belongs to "${got}", not "${expected}"`)
  }
}

/** The far side speaks another protocol version. */
export class VersionMismatchError extends RxnetError {
  constructor(expected: number, got: number) {
    super('ERR_VERSION_MISMATCH', `peer speaks protocol version ${got}, this node speaks ${expected}`)
  }
}

/** The far side announced the same node id as this node (or as a peer already connected). */
export class DuplicateIdError extends RxnetError {
  constructor(id: string) {
    super('ERR_DUPLICATE_ID', `node id ${id} is already taken`)
  }
}

/** A cluster link handshake claimed an id with a pid the roster does not give that id (refused). */
export class NotRosteredError extends RxnetError {
  constructor(id: number, pid: number) {
    super('ERR_NOT_ROSTERED', `link handshake claims id ${id} as pid ${pid}, which the cluster roster does not list`)
  }
}

/** The far side failed authentication (wrong or missing secret, bad certificate). */
export class AuthenticationError extends RxnetError {
  constructor(message: string, cause?: unknown) {
    super('ERR_AUTH', message, { cause })
  }
}

/** A peer stopped answering heartbeats within the failure-detection timeout. */
export class PeerTimeoutError extends RxnetError {
  constructor(id: string, ms: number) {
    super('ERR_PEER_TIMEOUT', `peer ${id} silent for more than ${ms} ms`)
  }
}

/** A connection came from an address the configured interface does not reach (e.g. off the machine for a loopback mesh); refused and counted. */
export class ForeignAddressError extends RxnetError {
  constructor(address: string, iface: string) {
    super('ERR_FOREIGN_ADDRESS', `connection from ${address} refused: not reachable through interface ${iface}`)
  }
}

/** A datagram (or a message for one) is larger than `maxDatagram`. */
export class DatagramTooLargeError extends RxnetError {
  constructor(size: number, max: number) {
    super('ERR_DATAGRAM_TOO_LARGE', `message of ${size} bytes does not fit a datagram of at most ${max} bytes`)
  }
}

/** A received datagram was malformed, forged, replayed or failed authentication (it is dropped and counted). */
export class BadDatagramError extends RxnetError {
  constructor(message: string, cause?: unknown) {
    super('ERR_BAD_DATAGRAM', message, { cause })
  }
}

/** A Unix socket / pipe path is in use by a live server. */
export class PathInUseError extends RxnetError {
  constructor(path: string) {
    super('ERR_PATH_IN_USE', `${path} is in use by a live server`)
  }
}

/** A Unix socket path is longer than the platform allows. */
export class PathTooLongError extends RxnetError {
  constructor(path: string, max: number) {
    super('ERR_PATH_TOO_LONG', `socket path is ${Buffer.byteLength(path)} bytes, the platform allows ${max}: ${path}`)
  }
}

/** A configured limit refused a connection or dropped one (too many clients, too many bytes held for it); `limit` is the bound. */
export class LimitError extends RxnetError {
  readonly limit: number
  constructor(what: string, limit: number) {
    super('ERR_LIMIT', `${what}: limit of ${limit} reached`)
    this.limit = limit
  }
}

/**
 * A socket path, or a directory on the way to it, could be controlled by another user: owned by
 * someone else, writable by others (and not sticky), or a symbolic link. Nothing was created,
 * removed or connected; `reason` says which check failed.
 */
export class UnsafePathError extends RxnetError {
  /** The path that was refused. */
  readonly path: string
  /** Why, in words (e.g. `owned by uid 65534`). */
  readonly reason: string
  constructor(path: string, reason: string, advice = 'use a directory only you can write (e.g. $XDG_RUNTIME_DIR) or fix its owner / mode') {
    super('ERR_UNSAFE_PATH', `refusing ${path}: ${reason}; ${advice}`)
    this.path = path
    this.reason = reason
  }
}

/** A socket path exists and is not a socket (a regular file, a directory): it is never deleted. */
export class NotASocketError extends RxnetError {
  constructor(path: string, kind: string) {
    super('ERR_NOT_A_SOCKET', `${path} exists and is ${kind}, not a socket; it is never deleted: remove it yourself or choose another path`)
  }
}

/** The directory a socket path lives in does not exist. */
export class PathNotFoundError extends RxnetError {
  constructor(path: string, dir: string) {
    super('ERR_PATH_NOT_FOUND', `cannot use ${path}: directory ${dir} does not exist (create it with mkdir -m 700, or choose another path)`)
  }
}

/** No permission to create, replace or remove a socket path; `cause` holds the system error. */
export class PathAccessError extends RxnetError {
  constructor(message: string, cause?: unknown) {
    super('ERR_PATH_ACCESS', message, { cause })
  }
}

/** Nothing listens at a bus path (no socket file, or a stopped hub's leftover). */
export class NoHubError extends RxnetError {
  /** The path that was tried. */
  readonly path: string
  constructor(path: string, detail = 'no socket there') {
    super('ERR_NO_HUB', `no hub at ${path} (${detail}); start one with: rxnet hub --path ${path}`)
    this.path = path
  }
}

/** `bus.close()` gave up on messages the hub never acknowledged; `cause` is why (e.g. `ERR_NO_HUB`). */
export class UndeliveredError extends RxnetError {
  /** How many emitted messages were discarded. */
  readonly count: number
  constructor(count: number, cause?: unknown) {
    const why = cause instanceof Error ? `: ${cause.message}` : ''
    super('ERR_UNDELIVERED', `${count} emitted message${count === 1 ? ' was' : 's were'} never acknowledged by the hub and were discarded on close${why}`, { cause })
    this.count = count
  }
}

/** A protocol message arrived that is well framed but makes no sense in its place. */
export class ProtocolError extends RxnetError {
  constructor(message: string, cause?: unknown) {
    super('ERR_PROTOCOL', message, { cause })
  }
}

/** A supervised worker slot restarted too often in its window and was given up. */
export class CrashLoopError extends RxnetError {
  constructor(id: number, restarts: number, windowMs: number) {
    super('ERR_CRASH_LOOP', `worker ${id} exited ${restarts} times within ${windowMs} ms; not restarting it`)
  }
}

/** The object was used after `close()` (or it ended while waited on); `cause`: the error that ended it, if any. */
export class ClosedError extends RxnetError {
  constructor(what: string, cause?: unknown) {
    super('ERR_CLOSED', `${what} is closed`, cause === undefined ? undefined : { cause })
  }
}

/** Returns true when `e` is an {@link RxnetError} with the given `code`. */
export function isRxnetError(e: unknown, code?: string): e is RxnetError {
  return e instanceof RxnetError && (code === undefined || e.code === code)
}

/** A request's handler on the far side failed; `remoteCode` is its error's `code`, when it had one. */
export class RemoteError extends RxnetError {
  /** The `code` of the remote error, if it had one. */
  readonly remoteCode: string | undefined
  constructor(message: string, remoteCode?: string) {
    super('ERR_REMOTE', `remote handler failed: ${message}`)
    this.remoteCode = remoteCode
  }
}

/** An optional peer dependency (`prom-client`, `@opentelemetry/api`) is needed for this and is not installed. */
export class MissingDependencyError extends RxnetError {
  /** The package to install. */
  readonly dependency: string
  constructor(dependency: string, cause?: unknown) {
    super('ERR_MISSING_DEPENDENCY', `this needs the optional peer dependency "${dependency}": npm install ${dependency}`, { cause })
    this.dependency = dependency
  }
}

/** `rxnet dashboard --cluster` (or `watchCluster`) found no running cluster primary serving its view. */
export class ClusterNotRunningError extends RxnetError {
  constructor(detail: string) {
    super('ERR_NO_CLUSTER', `no cluster running: ${detail} (start its primary with cluster({ metricsSocket: true }))`)
  }
}
