/**
 * The connection kinds the conformance suite (connection.test.ts) runs against.
 *
 * ## Adding a kind: one entry in KINDS
 * ```ts
 * {
 *   name: 'mesh Peer (TLS-PSK)',
 *   setup: async () => ({ a, b, teardown }),    // two connected Connections in this process
 *   crash: async () => ({ a, crashB, teardown }), // `a` here, its far side in a child process that
 *                                                 // crashB() SIGKILLs (await the exit); or
 *   // crash: notApplicable('why this kind has no far-side process'),
 *   message: (i) => ...,                         // a ~1 KiB outbound value carrying the number i
 *   seqOf: (v) => ...,                           // reads i back from an inbound value
 *   refused: () => ...,                          // a value `send` must refuse (ERR_ENCODE), or notApplicable(why)
 *   farSideSeesAbort: true,                      // b's source errors when a aborts, or notApplicable(why)
 * }
 * ```
 * Rules for `setup`: use the kind's defaults (the suite fills buffers with `message(i)`, bounded in
 * count and time); nothing is subscribed yet; `teardown` releases everything, even after a test
 * failed halfway. `crash().a` must leave unread data at its far side when `crashB` runs if the
 * transport can only tell a crash from a clean end that way (plain TCP: the RST). Not-applicable
 * tests are reported as skipped with their reason in the test name, never silently left out.
 * @module
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as tick } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Uint8ArrayList } from 'uint8arraylist'
import { linkOver, multicastKind } from './cluster-kinds.js'
import { codecs, connectBus, fromByteDuplex, fromDuplex, mapConnection, socketChannel, startHub, type Connection, type Duplex } from '../../src/index.js'
import { meshPeerKind } from '../mesh/conformance.js'

/** A test (or a whole kind's row) that does not apply, and why. */
export interface NotApplicable {
  notApplicable: string
}

/** Marks something as not applicable to a kind, with the reason shown in the test name. */
export const notApplicable = (reason: string): NotApplicable => ({ notApplicable: reason })

/** Two connected Connections in this process. */
export interface Pair<T> {
  a: Connection<T>
  b: Connection<T>
  teardown(): Promise<void>
}

/** A Connection whose far side is a child process `crashB` SIGKILLs (resolves once it exited). */
export interface CrashPair<T> {
  a: Connection<T>
  crashB(): Promise<void>
  teardown(): Promise<void>
}

/** One connection kind under test. */
export interface ConnectionKind<T = unknown> {
  name: string
  setup(): Promise<Pair<T>>
  crash: (() => Promise<CrashPair<T>>) | NotApplicable
  message(i: number): T
  seqOf(value: T): number
  refused: (() => unknown) | NotApplicable
  /** Whether the far side of an `abort()` sees a failure (its source errors) rather than just an end. */
  farSideSeesAbort: true | NotApplicable
  /**
   * Whether `b` is a far side that ends when `a` ends (default: it is). Not applicable to a bus
   * topic, which has many parties and no far side: the suite then closes `b` itself, and skips the
   * test of a far side that never finishes.
   */
  farSide?: true | NotApplicable
  /** Whether a far side that does not read holds `a` back (`writable` turns false); default true. */
  backpressure?: true | NotApplicable
}

// ---- byte-stream helpers ----------------------------------------------------------------------

/** A ~1 KiB message carrying `i` in its first 4 bytes. */
export function bytesMessage(i: number): Uint8Array {
  const m = new Uint8Array(1024)
  new DataView(m.buffer).setUint32(0, i)
  return m
}

/** Reads back the number of {@link bytesMessage}. */
export const bytesSeq = (m: Uint8Array): number => new DataView(m.buffer, m.byteOffset, 4).getUint32(0)

/** A connected pair of sockets over `listen` (a TCP port on loopback, or a Unix path). */
async function socketPair(server: net.Server, connect: () => net.Socket): Promise<[net.Socket, net.Socket]> {
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
  const client = connect()
  await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject))
  return [client, await accepted]
}

export interface Endpoint {
  server: net.Server
  connect(): net.Socket
  /** What the far-end fixture connects to. */
  target: string
  close(): Promise<void>
}

async function tcpEndpoint(): Promise<Endpoint> {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as net.AddressInfo
  return { server, connect: () => net.connect(port, '127.0.0.1'), target: String(port), close: () => new Promise((r) => server.close(() => r())) }
}

export async function unixEndpoint(): Promise<Endpoint> {
  const dir = mkdtempSync(join(tmpdir(), 'rxnet-conf-'))
  const path = join(dir, 's.sock')
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(path, r))
  return {
    server,
    connect: () => net.connect(path),
    target: path,
    close: () => new Promise((r) => server.close(() => (rmSync(dir, { recursive: true, force: true }), r()))),
  }
}

const FAR_END = fileURLToPath(new URL('./fixtures/far-end.ts', import.meta.url))

/** Waits (bounded) until `cond()` holds, yielding to the event loop in between. */
export async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await tick()
  }
}

/**
 * What a socket kind puts on its sockets: a socketChannel of bytes by default; a transport built on
 * a socket (a cluster Link) brings its own wrapper and the far-end fixture's mode for it.
 */
export interface SocketOver<T> {
  wrap(socket: net.Socket): Connection<T>
  /** Extra arguments of fixtures/far-end.ts (its wrapper). */
  farEnd: string[]
  message(i: number): T
  seqOf(value: T): number
  refused: (() => unknown) | NotApplicable
}

const bytesOver: SocketOver<Uint8Array> = { wrap: (s) => socketChannel(s), farEnd: [], message: bytesMessage, seqOf: bytesSeq, refused: () => 'not bytes' }

export function socketKind<T = Uint8Array>(name: string, endpoint: () => Promise<Endpoint>, farSideSeesAbort: ConnectionKind['farSideSeesAbort'], over: SocketOver<T> = bytesOver as unknown as SocketOver<T>): ConnectionKind<T> {
  return {
    name,
    farSideSeesAbort,
    async setup() {
      const ep = await endpoint()
      const [x, y] = await socketPair(ep.server, ep.connect)
      const a = over.wrap(x)
      const b = over.wrap(y)
      return {
        a,
        b,
        async teardown() {
          a.abort()
          b.abort()
          await Promise.all([a.closed, b.closed])
          await ep.close()
        },
      }
    },
    async crash() {
      const ep = await endpoint()
      const accepted = new Promise<net.Socket>((r) => ep.server.once('connection', r))
      const child: ChildProcess = fork(FAR_END, [ep.target, ...over.farEnd], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      const exited = new Promise<void>((r) => child.once('exit', () => r()))
      await new Promise<void>((resolve, reject) => child.once('message', () => resolve()).once('exit', (code) => reject(new Error(`far end exited (${code})`))))
      const a = over.wrap(await accepted)
      return {
        a,
        async crashB() {
          // Leave data unread in the far end's kernel buffer, so its death is a reset, not a
          // clean end. Node reads ahead into the (paused) stream's buffer (up to ~80 KiB), so
          // wait until well more than that left this process.
          for (let i = 0; i < 512; i++) a.send(over.message(i))
          await until(() => a.stats.bytesOut - a.stats.bufferedBytes >= 160 * 1024, 'the messages to leave')
          child.kill('SIGKILL')
          await exited
        },
        async teardown() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
          await exited
          a.abort()
          await a.closed
          await ep.close()
        },
      }
    },
    message: over.message,
    seqOf: over.seqOf,
    refused: over.refused,
  }
}

// ---- in-memory duplex helpers -------------------------------------------------------------------

/**
 * A one-way in-memory pipe with backpressure: `sink` waits while `capacity` chunks are unread,
 * `source` yields them in order; an error thrown into the sink's iterable reaches the reader.
 */
function pipe<T>(capacity = 8): { source: AsyncIterable<T>; sink: (src: AsyncIterable<T> | Iterable<T>) => Promise<void> } {
  const items: T[] = []
  let ended: { error?: unknown } | null = null
  let wakeReader: (() => void) | null = null
  let wakeWriter: (() => void) | null = null
  const wake = (w: 'r' | 'w'): void => {
    const f = w === 'r' ? wakeReader : wakeWriter
    if (w === 'r') wakeReader = null
    else wakeWriter = null
    f?.()
  }
  return {
    source: {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          if (items.length > 0) {
            yield items.shift() as T
            wake('w')
            continue
          }
          if (ended !== null) {
            if (ended.error !== undefined) throw ended.error
            return
          }
          await new Promise<void>((r) => (wakeReader = r))
        }
      },
    },
    async sink(src) {
      try {
        for await (const chunk of src) {
          while (items.length >= capacity) await new Promise<void>((r) => (wakeWriter = r))
          items.push(chunk)
          wake('r')
        }
        ended = {}
      } catch (e) {
        ended = { error: e }
        throw e
      } finally {
        wake('r')
      }
    },
  }
}

/** Two connected in-memory duplexes (what one's sink takes, the other's source yields). */
export function duplexPair<T>(): [Duplex<T>, Duplex<T>] {
  const ab = pipe<T>()
  const ba = pipe<T>()
  return [
    { source: ba.source, sink: ab.sink },
    { source: ab.source, sink: ba.sink },
  ]
}

function duplexKind<T>(name: string, make: (d: Duplex<T>) => Connection<T>, k: Pick<ConnectionKind<T>, 'message' | 'seqOf' | 'refused'>): ConnectionKind<T> {
  return {
    name,
    async setup() {
      const [x, y] = duplexPair<T>()
      const a = make(x)
      const b = make(y)
      return {
        a,
        b,
        async teardown() {
          a.abort()
          b.abort()
          await Promise.all([a.closed, b.closed])
        },
      }
    },
    crash: notApplicable('an in-memory duplex has no far-side process to kill (its failures: the abort and refused-value tests)'),
    farSideSeesAbort: true,
    ...k,
  }
}

/** `bus.channel(topic)` on two clients of one hub (in this process). */
function busTopicKind(): ConnectionKind<{ seq: number; pad: string }> {
  const noFarSide = 'a topic has many parties and no far side: a channel ends by its own close() / abort() or with its bus'
  return {
    name: 'bus topic channel',
    async setup() {
      const dir = mkdtempSync(join(tmpdir(), 'rxnet-conf-'))
      const hub = await startHub({ path: join(dir, 'hub.sock') })
      const buses = [connectBus(hub.path), connectBus(hub.path)]
      const [a, b] = buses.map((bus) => bus.channel<{ seq: number; pad: string }>('conformance.t'))
      await Promise.all(buses.map((bus) => bus.flush())) // both interests registered
      return {
        a: a!,
        b: b!,
        async teardown() {
          a!.abort()
          b!.abort()
          await Promise.all([a!.closed, b!.closed])
          await Promise.all(buses.map((bus) => bus.close().catch(() => {})))
          await hub.close()
          rmSync(dir, { recursive: true, force: true })
        },
      }
    },
    crash: notApplicable('its far side would be the hub, and a hub crash is not a failure of the channel: the bus reconnects and loses nothing (test/bus/crash.test.ts)'),
    message: (seq) => ({ seq, pad: 'x'.repeat(1000) }),
    seqOf: (v) => v.seq,
    refused: () => ({ n: 10n }), // JSON has no BigInt
    farSideSeesAbort: notApplicable(noFarSide),
    farSide: notApplicable(noFarSide),
    backpressure: notApplicable("publish / subscribe: nothing holds a sender back for one channel's unread source (its bus keeps reading and holds what arrives, up to maxHeldMessages)"),
  }
}

/** A kind seen through a json codec (`mapConnection`): values in, values out, refusing a BigInt. */
function jsonOver(kind: ConnectionKind<Uint8Array>): ConnectionKind<{ seq: number; pad: string }> {
  const wrap = (c: Connection<Uint8Array>): Connection<{ seq: number; pad: string }> =>
    mapConnection(c, codecs.json.decode as (b: Uint8Array) => { seq: number; pad: string }, codecs.json.encode, { codec: 'json' })
  const crash = kind.crash
  return {
    name: `mapConnection(json) over ${kind.name}`,
    async setup() {
      const p = await kind.setup()
      return { a: wrap(p.a), b: wrap(p.b), teardown: p.teardown }
    },
    crash: 'notApplicable' in crash ? crash : async () => {
      const p = await crash()
      return { ...p, a: wrap(p.a) }
    },
    message: (seq) => ({ seq, pad: 'x'.repeat(1000) }),
    seqOf: (v) => v.seq,
    refused: () => ({ n: 1n }),
    farSideSeesAbort: kind.farSideSeesAbort,
  }
}

/** Every kind the suite runs against. Add yours here (see the module doc). */
export const KINDS: ConnectionKind<any>[] = [
  socketKind('socketChannel over TCP', tcpEndpoint, true), // the abort is a reset (RST)
  socketKind('socketChannel over a Unix socket', unixEndpoint, notApplicable('a Unix stream socket has no reset: the far side sees its end as a clean EOF')),
  duplexKind<Uint8Array>('fromByteDuplex', (d) => fromByteDuplex(d as Duplex<Uint8Array | Uint8ArrayList, Uint8Array>), {
    message: bytesMessage,
    seqOf: bytesSeq,
    refused: () => 42,
  }),
  jsonOver(socketKind('socketChannel over TCP', tcpEndpoint, true)),
  duplexKind<{ seq: number; pad: string }>('fromDuplex', (d) => fromDuplex(d), {
    message: (seq) => ({ seq, pad: 'x'.repeat(1000) }),
    seqOf: (v) => v.seq,
    refused: notApplicable('fromDuplex carries values as they are: no codec refuses one'),
  }),
  busTopicKind(),
  socketKind('cluster Link (json, Unix socket)', unixEndpoint, notApplicable('a Unix stream socket has no reset: the far side sees its end as a clean EOF'), linkOver),
  multicastKind(),
  { name: 'mesh Peer', ...meshPeerKind(), message: bytesMessage, seqOf: bytesSeq, refused: () => 42, farSideSeesAbort: true },
  { name: 'mesh Peer (TLS-PSK)', ...meshPeerKind('sesame'), message: bytesMessage, seqOf: bytesSeq, refused: () => 42, farSideSeesAbort: true },
]
