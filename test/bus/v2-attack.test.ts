// Attacks on bus protocol v2 (PUBS / MSGS batch frames): forged and malformed batches from a raw
// client, the per-message limits inside a batch, resends cut across reconnects, and the real
// client's batches at the edges of the size limits. Every bad frame must drop its sender alone
// with a typed error, the hub stays up and keeps serving the others.
import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, socketChannel, startHub, type Hub, type HubEvent } from 'rxnet'
import { varintLength } from '../../src/framing/varint.js'
import { decodeFrame, encodeHello, encodeMsgs, encodeWelcome, encodePing, encodePub, encodePubs, encodeString, encodeSub, forEachEntry, FrameType, MAX_BATCH_BYTES, type Batch, type HubFrame } from '../../src/bus/protocol.js'
import { tmpSocket, until } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  // A failed test may leave a client with undelivered messages: its close() rejects, the rest still close.
  for (const o of open.splice(0).reverse()) await Promise.resolve(o.close()).catch(() => {})
})

/** A raw client speaking frames of our choosing; what it receives, one [seq, payload] per message. */
interface Raw {
  got: [number, string][]
  all: HubFrame[]
  /** Set once the hub ended the connection (how). */
  ended: { error: unknown } | null
  send(frame: Uint8Array): void
  ping(): Promise<void>
  close(): Promise<void>
}
function rawClient(path: string, id: string | null, frames: Uint8Array[] = []): Raw {
  const ch = socketChannel(net.connect(path), { maxLength: 16 << 20 })
  const c: Raw = {
    got: [],
    all: [],
    ended: null,
    send: (f) => ch.send(f),
    ping: async () => {
      const n = ++pings
      ch.send(encodePing(n))
      await until(() => c.all.some((f) => f.type === 'pong' && f.id === n) || c.ended !== null, 5000, `PONG ${n}`)
      if (c.ended !== null) throw new Error(`connection ended before PONG ${n}`)
    },
    close: () => ch.close(),
  }
  let pings = 0
  ch.source.subscribe({
    next: (b) => {
      const f = decodeFrame(b)
      c.all.push(f)
      if (f.type === 'msg') c.got.push([f.seq, Buffer.from(f.payload).toString()])
      if (f.type === 'msgs') forEachEntry(b, f as Batch<'msgs'>, (seq, from, to) => c.got.push([seq, Buffer.from(b.subarray(from, to)).toString()]))
    },
    error: (error) => (c.ended = { error }),
    complete: () => (c.ended = { error: null }),
  })
  if (id !== null) ch.send(encodeHello(id, false))
  for (const f of frames) ch.send(f)
  open.push(c)
  return c
}
const json = (...values: unknown[]): Uint8Array[] => values.map((v) => Buffer.from(JSON.stringify(v)))

async function hubWithEvents(options: Parameters<typeof startHub>[0] extends infer O ? Omit<O & object, 'path'> : never = {}): Promise<{ hub: Hub; events: HubEvent[]; drops: () => HubEvent[] }> {
  const hub = await startHub({ path: tmpSocket(), ...options })
  open.push(hub)
  const events: HubEvent[] = []
  hub.events$.subscribe((e) => events.push(e))
  return { hub, events, drops: () => events.filter((e) => e.type === 'drop') }
}

/** A PUBS frame built by hand: type, seq, count, topic, then `body` as given (entries that may lie). */
function forgedPubs(seq: number, count: number, topic: string, body: number[]): Uint8Array {
  const t = encodeString(topic)
  const head: number[] = [FrameType.PUBS]
  const varint = (n: number): void => {
    while (n >= 0x80) {
      head.push((n % 0x80) | 0x80)
      n = Math.floor(n / 0x80)
    }
    head.push(n)
  }
  varint(seq)
  varint(count)
  return Buffer.concat([Buffer.from(head), t, Buffer.from(body)])
}

describe('the real client at the edges of the batch limits', () => {
  it('a full batch of small messages under a small maxMessageSize: the hub takes the frame the client built (header + 16 KiB body)', async () => {
    const { hub, drops } = await hubWithEvents({ maxMessageSize: 1024 })
    const a = connectBus(hub.path, { maxMessageSize: 1024 })
    const b = connectBus(hub.path, { maxMessageSize: 1024 })
    open.push(a, b)
    const got: number[] = []
    b.messages$<string>('t').subscribe((v) => got.push(v.length))
    await Promise.all([a.flush(), b.flush()])
    // Entries of exactly 64 bytes (1 length byte + 63 of JSON text): the body fills to exactly
    // MAX_BATCH_BYTES, so the frame is the header longer than that.
    const text = 'x'.repeat(61) // JSON "xxx…" is 63 bytes
    const n = MAX_BATCH_BYTES / 64
    for (let i = 0; i < n; i++) a.emit('t', text)
    await a.flush({ timeout: 5000 })
    await until(() => got.length === n || drops().length > 0, 5000, 'all messages')
    expect(drops()).toEqual([])
    expect(got.length).toBe(n)
    expect(a.stats.reconnects).toBe(0)
  })

  it('a message exactly at maxMessageSize at seq 127 batched with seq 128: the hub measures it with its own seq, as the client did', async () => {
    const { hub, drops } = await hubWithEvents({ maxMessageSize: 1000 })
    const a = connectBus(hub.path, { maxMessageSize: 1000 })
    const b = connectBus(hub.path, { maxMessageSize: 1000 })
    open.push(a, b)
    const got: string[] = []
    b.messages$<string>('t').subscribe((v) => got.push(v))
    await Promise.all([a.flush(), b.flush()])
    for (let i = 1; i <= 126; i++) a.emit('t', 'x')
    await a.flush()
    // As a PUB of its own: 1 type + 1 (seq 127) + 2 (topic "t") + payload = 1000.
    const big = 'y'.repeat(1000 - 4 - 2) // JSON adds two quotes
    a.emit('t', big) // seq 127
    a.emit('t', 'z') // seq 128, same tick: one PUBS 127..128
    await a.flush({ timeout: 5000 })
    await until(() => got.length === 128 || drops().length > 0, 5000, 'all 128')
    expect(drops()).toEqual([])
    expect(got.slice(-2)).toEqual([big, 'z'])
  })
})

/** A hub played by the test: accepts connections on a socket path, each a channel we drive by hand. */
async function fakeHub(): Promise<{ path: string; conns: { ch: ReturnType<typeof socketChannel>; frames: Uint8Array[]; read(): void }[]; next(): Promise<void> }> {
  const path = tmpSocket()
  const conns: { ch: ReturnType<typeof socketChannel>; frames: Uint8Array[]; read(): void }[] = []
  const waiting: (() => void)[] = []
  const server = net.createServer((socket) => {
    const ch = socketChannel(socket, { maxLength: 16 << 20 })
    const frames: Uint8Array[] = []
    // Not read until the test says so (the channel pauses the socket while nobody subscribes).
    conns.push({ ch, frames, read: () => void ch.source.subscribe({ next: (f) => frames.push(Buffer.from(f)), error: () => {} }) })
    waiting.shift()?.()
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  open.push({ close: () => new Promise<void>((resolve) => { for (const c of conns) c.ch.abort(); server.close(() => resolve()) }) })
  return { path, conns, next: () => new Promise<void>((resolve) => waiting.push(resolve)) }
}

/** [first, last] seq of a PUB / PUBS frame, or null. */
function seqs(frame: Uint8Array): [number, number] | null {
  try {
    const f = decodeFrame(frame)
    if (f.type === 'pub') return [f.seq, f.seq]
    if (f.type === 'pubs') return [f.seq, f.seq + f.count - 1]
  } catch {
    // corrupt
  }
  return null
}

describe('resends after a reconnect', () => {
  it('a frame resent on a new connection keeps its bytes when the hub acknowledges it (from the old connection) before the resend is written', async () => {
    const hub = await fakeHub()
    const first = hub.next()
    const bus = connectBus(hub.path, { minReconnectDelay: 5, maxReconnectDelay: 10, closeTimeout: 100 })
    open.push(bus)
    await first
    const c1 = hub.conns[0]!
    c1.ch.send(Buffer.from(encodeWelcomeV2()))
    c1.read()
    // 2 MiB of large messages (each a PUB of its own, written by reference), then 40 batches of
    // 16 x 1000 B (each keeps its batch buffer, which returns to the pool when acknowledged).
    const big = 'b'.repeat(64 * 1024)
    for (let i = 0; i < 32; i++) bus.emit('t', big)
    const small = 'a'.repeat(998)
    for (let i = 0; i < 40 * 16; i++) bus.emit('t', small)
    const last = 32 + 40 * 16
    await until(() => c1.frames.some((f) => seqs(f)?.[1] === last), 10_000, 'everything on the first connection')
    const sent1 = c1.frames.slice(1) // after HELLO
    // The connection breaks before any ACK: everything stays in the outbox, to be resent.
    const second = hub.next()
    c1.ch.abort()
    await second
    const c2 = hub.conns[1]!
    // As the real hub does for a known client: WELCOME, then at once an ACK of what it forwarded from the old connection.
    c2.ch.send(Buffer.from(encodeWelcomeV2()))
    c2.ch.send(Buffer.from([FrameType.ACK, ...varintBytes(last)]))
    await until(() => bus.stats.buffered === 0, 5000, 'the ACK')
    // New messages, with other bytes, while the resend still waits to be written (nobody reads c2 yet).
    const other = 'Z'.repeat(998)
    for (let i = 0; i < 40 * 16; i++) bus.emit('t', other)
    c2.read()
    await until(() => c2.frames.some((f) => seqs(f)?.[1] === last + 40 * 16), 10_000, 'everything on the second connection')
    const resent = c2.frames.slice(1).filter((f) => { const s = seqs(f); return s === null || s[0] <= last })
    expect(resent.length).toBe(sent1.length)
    for (let i = 0; i < sent1.length; i++) expect(Buffer.compare(resent[i]!, sent1[i]!), `resent frame ${i}`).toBe(0)
  })
})

function varintBytes(n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return out
}
function encodeWelcomeV2(): Uint8Array {
  return encodeWelcome('fakehub')
}
