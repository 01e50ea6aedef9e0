/**
 * Links: one direct Unix-socket connection between every pair of cluster processes. Each process
 * listens on its own socket; of every pair, the process with the higher id dials the lower one
 * (so a restarted worker dials the lower ids and is dialled by the higher ones). A one-line JSON
 * handshake carries the cluster token, the protocol version and the far id; after it the socket
 * is a {@link socketChannel} and values are framed with the cluster codec.
 * @module
 */
import net from 'node:net'
import { unlink } from 'node:fs/promises'
import { Observable, Subject, share } from 'rxjs'
import { socketChannel, type SocketChannel, type SocketChannelOptions } from '../socket.js'
import { decodeWith, encodeWith, type Codec } from '../codec/index.js'
import {
  AuthenticationError,
  DuplicateIdError,
  HandshakeError,
  PathTooLongError,
  RxnetError,
  TimeoutError,
  VersionMismatchError,
} from '../errors.js'
import { MAX_SOCKET_PATH } from '../bus/listen.js'
import type { RosterEntry } from './ipc.js'
import { listenAsync } from './serve.js'
import type { Link } from './types.js'

/** Version of the link handshake. */
export const LINK_PROTOCOL_VERSION = 1
/** Longest handshake line accepted, in bytes. */
export const MAX_HANDSHAKE_BYTES = 1024
/** How long a handshake may take, in ms. */
export const HANDSHAKE_TIMEOUT = 5_000

interface Hello {
  rxnet: 'link'
  v: number
  token: string
  id: number
  pid: number
}

/** Options of {@link LinkManager}. */
export interface LinkManagerOptions {
  id: number
  path: string
  token: string
  /** Highest id in the cluster (the number of workers). */
  maxId: number
  codec: Codec<unknown>
  channel: SocketChannelOptions
  /** How long closing a link may wait for the far side to close its end before the link is aborted, in ms. */
  closeTimeout: number
}

/** Owns this process's link server, dials the peers it should, and keeps the live links by far id. */
export class LinkManager {
  private server: net.Server | null = null
  private readonly live = new Map<number, Link>()
  private readonly dialing = new Set<string>()
  /** The pid each id runs as, per the latest roster: a dial to any other pid that completes late is stale. */
  private readonly rostered = new Map<number, number>()
  private readonly pending = new Set<net.Socket>()
  private readonly added = new Subject<Link>()
  private closing = false
  /** Refused handshakes and failed dials. */
  readonly errors = new Subject<RxnetError>()

  /** Every live link now, then each new one; completes when the manager closes. */
  readonly links$: Observable<Link> = new Observable<Link>((subscriber) => {
    for (const link of this.live.values()) subscriber.next(link)
    return this.added.subscribe(subscriber)
  })

  constructor(private readonly opts: LinkManagerOptions) {}

  /** Path of this process's link socket. */
  get path(): string {
    return this.opts.path
  }

  /** Starts the link server (exclusive: never shared through node:cluster). */
  async listen(): Promise<string> {
    const { path } = this.opts
    if (process.platform !== 'win32' && Buffer.byteLength(path) > MAX_SOCKET_PATH) throw new PathTooLongError(path, MAX_SOCKET_PATH)
    const server = net.createServer(this.onConnection)
    this.server = server
    await listenAsync(server, { path, exclusive: true })
    server.on('error', this.onServerError)
    return path
  }

  /** Dials every peer of `peers` this process should dial and is not linked to yet. */
  roster(peers: readonly RosterEntry[]): void {
    if (this.closing) return
    this.rostered.clear()
    for (const peer of peers) this.rostered.set(peer.id, peer.pid)
    for (const peer of peers) {
      if (peer.id >= this.opts.id) continue
      const current = this.live.get(peer.id)
      if (current !== undefined && current.pid === peer.pid) continue
      const key = `${peer.id}:${peer.pid}`
      if (this.dialing.has(key)) continue
      this.dialing.add(key)
      this.dial(peer).finally(() => this.dialing.delete(key))
    }
  }

  /** Closes every link gracefully and stops the link server. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    for (const s of this.pending) s.destroy()
    const server = this.server
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve()
    const links = [...this.live.values()]
    this.live.clear()
    // A far process that never closes its end (frozen, SIGSTOPped) must not hold this one's shutdown.
    await Promise.all(links.map((l) => closeOrAbort(l, this.opts.closeTimeout)))
    await closed
    server?.off('error', this.onServerError)
    if (process.platform !== 'win32') await unlink(this.opts.path).catch(() => {})
    this.added.complete()
    this.errors.complete()
  }

  private readonly onServerError = (e: Error): void => {
    this.errors.next(e instanceof RxnetError ? e : new HandshakeError(`link server: ${e.message}`, e))
  }

  private async dial(peer: RosterEntry): Promise<void> {
    const socket = net.connect(peer.path)
    this.pending.add(socket)
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error): void => reject(e)
        socket.once('error', onError)
        socket.once('connect', () => {
          socket.off('error', onError)
          resolve()
        })
      })
      const hello: Hello = { rxnet: 'link', v: LINK_PROTOCOL_VERSION, token: this.opts.token, id: this.opts.id, pid: process.pid }
      socket.write(JSON.stringify(hello) + '\n')
      const reply = parseHello(await readLine(socket), this.opts.token)
      if (reply.id !== peer.id) throw new HandshakeError(`dialled link ${peer.id} but process ${reply.id} answered`)
      this.pending.delete(socket)
      if (this.rostered.get(peer.id) !== peer.pid) {
        // Replaced (or gone) while we dialled: adopting it would close the link to its successor.
        socket.destroy()
        return
      }
      this.adopt(socket, reply.id, reply.pid)
    } catch (e) {
      this.pending.delete(socket)
      socket.destroy()
      // The peer died or was replaced meanwhile: the next roster says so; report, do not throw.
      if (!this.closing) this.errors.next(asRxnetError(e, `link to ${peer.id}`))
    }
  }

  private readonly onConnection = (socket: net.Socket): void => {
    if (this.closing) {
      socket.destroy()
      return
    }
    this.pending.add(socket)
    socket.on('error', noop) // errors before adoption are reported through readLine
    readLine(socket)
      .then((line) => {
        const hello = parseHello(line, this.opts.token)
        if (hello.id > this.opts.maxId) throw new HandshakeError(`link handshake from id ${hello.id}, this cluster has ids 0..${this.opts.maxId}`)
        const current = this.live.get(hello.id)
        if (hello.id === this.opts.id || (current !== undefined && current.pid === hello.pid)) throw new DuplicateIdError(String(hello.id))
        const ack: Hello = { rxnet: 'link', v: LINK_PROTOCOL_VERSION, token: this.opts.token, id: this.opts.id, pid: process.pid }
        socket.write(JSON.stringify(ack) + '\n')
        this.pending.delete(socket)
        socket.off('error', noop)
        this.adopt(socket, hello.id, hello.pid)
      })
      .catch((e: unknown) => {
        this.pending.delete(socket)
        socket.destroy()
        if (!this.closing) this.errors.next(asRxnetError(e, 'incoming link'))
      })
  }

  /** Turns a handshaken socket into a Link; replaces (and completes) an older link to the same id. */
  private adopt(socket: net.Socket, id: number, pid: number): void {
    if (this.closing) {
      socket.destroy()
      return
    }
    const link = createLink(socketChannel(socket, this.opts.channel), id, pid, this.opts.codec)
    const old = this.live.get(id)
    this.live.set(id, link)
    if (old !== undefined) void old.close()
    void link.closed.then(() => {
      if (this.live.get(id) === link) this.live.delete(id)
    })
    this.added.next(link)
  }
}

/** Wraps a framed SocketChannel as a Link of decoded values (one decode per message, shared by subscribers). */
export function createLink(raw: SocketChannel, id: number, pid: number, codec: Codec<unknown>): Link {
  const source = new Observable<unknown>((subscriber) =>
    raw.source.subscribe({
      next: (bytes) => {
        let value: unknown
        try {
          value = decodeWith(codec, bytes)
        } catch (e) {
          // Garbage on a link: report it typed (ERR_DECODE), then reset that link (and only that link).
          subscriber.error(e)
          raw.sink.error(e)
          return
        }
        subscriber.next(value)
      },
      error: (e) => subscriber.error(e),
      complete: () => subscriber.complete(),
    }),
  ).pipe(share({ resetOnError: false, resetOnComplete: false, resetOnRefCountZero: true }))
  const send = (value: unknown): void => raw.send(encodeWith(codec, value))
  return {
    id,
    pid,
    source,
    // As an Observer (`values$.subscribe(link.sink)`), a value the codec refuses must not throw out of
    // next (RxJS would rethrow it asynchronously and crash the process): it aborts the link instead.
    sink: {
      next: (value) => {
        let bytes: Uint8Array
        try {
          bytes = encodeWith(codec, value)
        } catch (e) {
          raw.sink.error(e)
          return
        }
        raw.send(bytes)
      },
      error: (e) => raw.sink.error(e),
      complete: () => raw.sink.complete(),
    },
    send,
    stats: raw.stats,
    get writable() {
      return raw.writable
    },
    whenWritable: () => raw.whenWritable(),
    close: () => raw.close(),
    closed: raw.closed,
  }
}

function parseHello(line: string, token: string): Hello {
  let hello: Hello
  try {
    hello = JSON.parse(line) as Hello
  } catch (e) {
    throw new HandshakeError('link handshake is not JSON', e)
  }
  if (hello === null || typeof hello !== 'object' || hello.rxnet !== 'link') throw new HandshakeError('not an rxnet link handshake')
  if (hello.v !== LINK_PROTOCOL_VERSION) throw new VersionMismatchError(LINK_PROTOCOL_VERSION, Number(hello.v))
  if (hello.token !== token) throw new AuthenticationError('link handshake carries a wrong cluster token')
  if (!Number.isSafeInteger(hello.id) || hello.id < 0 || !Number.isSafeInteger(hello.pid)) throw new HandshakeError('link handshake has a bad id or pid')
  return hello
}

/** Reads one '\n'-terminated line from a fresh socket; puts back whatever followed it. */
function readLine(socket: net.Socket): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0)
    const cleanup = (): void => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
      socket.off('error', onError)
    }
    const fail = (e: RxnetError): void => {
      cleanup()
      reject(e)
    }
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      const nl = buf.indexOf(0x0a)
      if (nl < 0) {
        if (buf.length > MAX_HANDSHAKE_BYTES) fail(new HandshakeError(`link handshake longer than ${MAX_HANDSHAKE_BYTES} bytes`))
        return
      }
      if (nl > MAX_HANDSHAKE_BYTES) return fail(new HandshakeError(`link handshake longer than ${MAX_HANDSHAKE_BYTES} bytes`))
      cleanup()
      socket.pause()
      if (nl + 1 < buf.length) socket.unshift(buf.subarray(nl + 1))
      resolve(buf.subarray(0, nl).toString('utf8'))
    }
    const onEnd = (): void => fail(new HandshakeError('link closed during the handshake'))
    const onError = (e: Error): void => fail(new HandshakeError(`link failed during the handshake: ${e.message}`, e))
    const timer = setTimeout(() => fail(new HandshakeError(`link handshake not completed within ${HANDSHAKE_TIMEOUT} ms`)), HANDSHAKE_TIMEOUT)
    socket.on('data', onData)
    socket.on('end', onEnd)
    socket.on('close', onEnd)
    socket.on('error', onError)
  })
}

function asRxnetError(e: unknown, what: string): RxnetError {
  if (e instanceof RxnetError) return e
  const err = e as Error
  return new HandshakeError(`${what}: ${err?.message ?? String(e)}`, e)
}

/** Closes `link` gracefully; aborts it (socket destroyed) if that has not finished within `ms`. */
async function closeOrAbort(link: Link, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timedOut = await Promise.race([
    link.close().then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms))),
  ]).finally(() => clearTimeout(timer))
  if (!timedOut) return
  link.sink.error(new TimeoutError(`graceful close of the link to ${link.id}`, ms))
  await link.closed
}

function noop(): void {}
