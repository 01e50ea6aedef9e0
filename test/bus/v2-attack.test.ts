// Attacks on bus protocol v2 (PUBS / MSGS batch frames): forged and malformed batches from a raw
// client, the per-message limits inside a batch, resends cut across reconnects, and the real
// client's batches at the edges of the size limits. Every bad frame must drop its sender alone
// with a typed error, the hub stays up and keeps serving the others.
import { spawn } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, socketChannel, startHub, type Hub, type HubEvent } from 'rxnet'
import { decodeFrame, encodeHello, encodeMsg, encodeMsgs, encodeWelcome, encodePing, encodePub, encodePubs, encodeString, encodeSub, forEachEntry, FrameType, MAX_BATCH_BYTES, type Batch, type HubFrame } from '../../src/bus/protocol.js'
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
  /** A hub and two clients with this maxMessageSize; what `b` gets on topic `t`. */
  async function pairWithLimit(maxMessageSize: number): Promise<{ a: ReturnType<typeof connectBus>; got: string[]; drops: () => HubEvent[] }> {
    const { hub, drops } = await hubWithEvents({ maxMessageSize })
    const a = connectBus(hub.path, { maxMessageSize })
    const b = connectBus(hub.path, { maxMessageSize })
    open.push(a, b)
    const got: string[] = []
    b.messages$<string>('t').subscribe((v) => got.push(v))
    await Promise.all([a.flush(), b.flush()])
    return { a, got, drops }
  }

  it('a full batch of small messages under a small maxMessageSize: the hub takes the frame the client built (header + 16 KiB body)', async () => {
    const { a, got, drops } = await pairWithLimit(1024)
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
    const { a, got, drops } = await pairWithLimit(1000)
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

describe('forged and malformed batch frames from a client', () => {
  const utf8Bad = [0xc3, 0x28]
  // [what, frame after HELLO, the drop's code]
  const attacks: [string, () => Uint8Array, string][] = [
    ['count 0', () => forgedPubs(1, 0, 'v.x', []), 'ERR_PROTOCOL'],
    ['count larger than its entries', () => forgedPubs(1, 3, 'v.x', [1, 0x31, 1, 0x32]), 'ERR_PROTOCOL'],
    ['count smaller than its entries (trailing entry)', () => forgedPubs(1, 1, 'v.x', [1, 0x31, 1, 0x32]), 'ERR_PROTOCOL'],
    ['an entry longer than the rest of the frame', () => forgedPubs(1, 2, 'v.x', [1, 0x31, 100, 0x32]), 'ERR_PROTOCOL'],
    ['a huge count (2^50) over three bytes of entries', () => forgedPubs(1, 2 ** 50, 'v.x', [1, 0x31, 0]), 'ERR_PROTOCOL'],
    ['an entry length varint that never ends', () => forgedPubs(1, 1, 'v.x', [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 'ERR_PROTOCOL'],
    ['an entry length past 2^53', () => forgedPubs(1, 1, 'v.x', [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), 'ERR_PROTOCOL'],
    ['seq + count past 2^53', () => forgedPubs(2 ** 53 - 2, 3, 'v.x', [1, 0x31, 1, 0x32, 1, 0x33]), 'ERR_PROTOCOL'],
    ['a frame that ends inside the count', () => Buffer.from([FrameType.PUBS, 1, 0x80]), 'ERR_PROTOCOL'],
    ['a topic that is not UTF-8', () => Buffer.concat([Buffer.from([FrameType.PUBS, 1, 1, 2, ...utf8Bad]), Buffer.from([1, 0x31])]), 'ERR_PROTOCOL'],
    ['a wildcard topic', () => encodePubs(1, 'v.*', json(1, 2)), 'ERR_INVALID_ARGUMENT'],
    ['MSGS from a client, claiming another client as origin', () => encodeMsgs(1, 'victim', 'v.x', json(1, 2)), 'ERR_PROTOCOL'],
    ['an entry over maxMessageSize among small ones', () => encodePubs(1, 'v.x', [new Uint8Array(5), new Uint8Array(2000), new Uint8Array(5)]), 'ERR_FRAME_TOO_LONG'],
    // As PUBs of their own (maxMessageSize 1024): seq 127 + 1018 bytes is 1024, seq 128 + 1018 bytes is 1025.
    ['an entry 1 byte over maxMessageSize only with its own (longer) seq', () => encodePubs(127, 'v.x', [new Uint8Array(1018), new Uint8Array(1018)]), 'ERR_FRAME_TOO_LONG'],
    ['a PUBS frame longer than max(maxMessageSize, MAX_BATCH_BYTES)', () => encodePubs(1, 'v.x', Array.from({ length: 40 }, () => new Uint8Array(500))), 'ERR_FRAME_TOO_LONG'],
  ]

  it('each drops its sender alone with a typed error; nothing of it is routed; the hub keeps serving the others', async () => {
    const { hub, drops } = await hubWithEvents({ maxMessageSize: 1024 })
    const victim = rawClient(hub.path, 'victim', [encodeSub('v.>')])
    await victim.ping()
    for (const [what, frame, code] of attacks) {
      const before = drops().length
      const mallory = rawClient(hub.path, 'mallory', [frame()])
      await until(() => drops().length > before, 5000, `drop for ${what}`)
      expect(drops()[before], what).toMatchObject({ client: 'mallory', error: { code } })
      await until(() => mallory.ended !== null, 5000, `${what}: connection ended`)
    }
    // A batch before HELLO: refused as well.
    const before = drops().length
    rawClient(hub.path, null, [encodePubs(1, 'v.x', json(1, 2))])
    await until(() => drops().length > before, 5000, 'drop before HELLO')
    expect(drops()[before]).toMatchObject({ client: null, error: { code: 'ERR_PROTOCOL' } })
    // Nothing forged reached the victim; an honest batch still does, with the origin the hub knows.
    expect(victim.got).toEqual([])
    expect(hub.stats.published).toBe(0)
    const honest = rawClient(hub.path, 'honest', [encodePubs(7, 'v.x', json('a', 'b'))])
    await honest.ping()
    await victim.ping()
    expect(victim.got).toEqual([[7, '"a"'], [8, '"b"']])
    expect(victim.all.filter((f) => f.type === 'msgs' || f.type === 'msg').map((f) => (f as { origin: string }).origin)).toEqual(['honest'])
    expect(victim.ended).toBeNull()
  })

  it('a PUBS frame exactly at the batch limit is taken (the bound is inclusive)', async () => {
    const { hub, drops } = await hubWithEvents({ maxMessageSize: 1024 })
    const victim = rawClient(hub.path, 'victim', [encodeSub('v.>')])
    await victim.ping()
    // Header: type + seq 1 + count + topic "v.x" (4 bytes); entries of 2 + 600 bytes fill the rest.
    const entries: Uint8Array[] = []
    let size = 1 + 1 + 1 + 4
    while (size + 2 + 600 <= MAX_BATCH_BYTES) {
      entries.push(new Uint8Array(600).fill(0x31))
      size += 2 + 600
    }
    entries.push(new Uint8Array(MAX_BATCH_BYTES - size - 2).fill(0x31))
    let frame = encodePubs(1, 'v.x', entries)
    entries[entries.length - 1] = new Uint8Array(entries.at(-1)!.length + MAX_BATCH_BYTES - frame.length).fill(0x31)
    frame = encodePubs(1, 'v.x', entries)
    expect(frame.length).toBe(MAX_BATCH_BYTES)
    const sender = rawClient(hub.path, 'sender', [frame])
    await sender.ping()
    await victim.ping()
    expect(drops()).toEqual([])
    expect(victim.got.length).toBe(entries.length)
  })
})

describe('sequence numbers at the edges', () => {
  it('a batch across 2^32 and one ending at 2^53 - 1: every message once, in order, at a real client; resent, nothing twice', async () => {
    const { hub, drops } = await hubWithEvents()
    const bus = connectBus(hub.path)
    open.push(bus)
    const got: [string, number, number][] = []
    bus.envelopes$<number>('s.>').subscribe((m) => got.push([m.origin, m.seq, m.data]))
    await bus.flush()
    const wrap = 2 ** 32 - 2
    const a = rawClient(hub.path, 'wrap', [encodePubs(wrap, 's.x', json(0, 1, 2, 3))])
    await a.ping()
    a.send(encodePubs(wrap, 's.x', json(0, 1, 2, 3, 4))) // a resend that adds one
    await a.ping()
    const top = Number.MAX_SAFE_INTEGER - 2
    const b = rawClient(hub.path, 'top', [encodePubs(top, 's.y', json(0, 1, 2))])
    await b.ping()
    b.send(encodePub(Number.MAX_SAFE_INTEGER, 's.y', Buffer.from('9'))) // already forwarded: dropped by the hub
    await b.ping()
    await bus.flush()
    await until(() => got.length >= 8, 5000, 'all 8')
    await bus.flush()
    expect(drops()).toEqual([])
    expect(got).toEqual([
      ...[0, 1, 2, 3, 4].map((i) => ['wrap', wrap + i, i]),
      ...[0, 1, 2].map((i) => ['top', top + i, i]),
    ])
    expect(bus.stats.duplicates + bus.stats.implausible).toBe(0)
  })

  it('a resend cut at its last message goes out as one MSG; a wholly old resend goes nowhere', async () => {
    const { hub } = await hubWithEvents()
    const victim = rawClient(hub.path, 'victim', [encodeSub('c.>')])
    await victim.ping()
    const s1 = rawClient(hub.path, 'sender', [encodePubs(1, 'c.x', json(1, 2, 3))])
    await s1.ping()
    await s1.close()
    await until(() => hub.stats.clients === 1, 5000, 'sender gone')
    const s2 = rawClient(hub.path, 'sender', [encodePubs(1, 'c.x', json(1, 2, 3)), encodePubs(2, 'c.x', json(2, 3, 4))])
    await s2.ping()
    await victim.ping()
    expect(victim.got).toEqual([1, 2, 3, 4].map((n) => [n, String(n)]))
    const frames = victim.all.filter((f) => f.type === 'msg' || f.type === 'msgs')
    expect(frames.map((f) => f.type)).toEqual(['msgs', 'msg'])
    expect(hub.stats.published).toBe(4)
  })
})

const root = process.getuid?.() === 0

describe.skipIf(!root)(`batch frames on an unsealed bridge, sent by another local user${root ? '' : ' (skipped: needs root for setpriv)'}`, () => {
  it('MSGS / PUBS datagrams are refused and counted (bridges carry single MSGs only); nothing of them is delivered', async () => {
    const multicast = { group: `239.255.${1 + Math.floor(Math.random() * 253)}.${1 + Math.floor(Math.random() * 253)}`, port: 20_000 + Math.floor(Math.random() * 40_000), interface: '127.0.0.1' }
    const hub = await startHub({ path: tmpSocket(), multicast })
    open.push(hub)
    const bus = connectBus(hub.path)
    open.push(bus)
    const got: unknown[] = []
    bus.messages$('f.>').subscribe((v) => got.push(v))
    await bus.flush()
    const forged = [
      encodeMsgs(1, 'evil', 'f.x', json('a', 'b')),
      encodePubs(1, 'f.x', json('c', 'd')),
      forgedPubs(1, 2 ** 40, 'f.x', [1, 0x31]),
      Buffer.from([FrameType.MSGS, 0xff, 0xff]),
    ].map((f) => Buffer.from(f).toString('hex'))
    // Last, one plain MSG (accepted: the bridge is unsealed) so we know when all have arrived.
    const marker = Buffer.from(encodeMsg(1, 'marker', 'f.m', Buffer.from('"end"'))).toString('hex')
    const script = `import { multicast } from 'rxnet'
const mc = multicast(${JSON.stringify(multicast)}); await mc.ready
for (const h of process.argv.slice(1)) mc.send(Buffer.from(h, 'hex'))
await mc.close()`
    const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '--import', 'tsx', '--input-type=module', '-e', script, ...forged, marker], { stdio: ['ignore', 'ignore', 'pipe'], cwd: fileURLToPath(new URL('../..', import.meta.url)) })
    let err = ''
    child.stderr!.on('data', (d) => (err += d))
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    expect(code, err).toBe(0)
    await until(() => hub.stats.bridgedIn + hub.stats.bridgeBad === 5, 10_000, 'all five datagrams at the hub')
    await bus.flush()
    expect(hub.stats.bridgeBad).toBe(4)
    expect(hub.stats.bridgedIn).toBe(1)
    await until(() => got.length === 1, 5000, 'the marker')
    expect(got).toEqual(['end'])
  })
})

describe('a hub that lies to a client (MSGS from a fake hub)', () => {
  it('duplicate and overlapping batches are delivered once per message, in order, the repeats counted; a seq far ahead is refused and counted', async () => {
    const hub = await fakeHub()
    const first = hub.next()
    const bus = connectBus(hub.path, { minReconnectDelay: 5, maxReconnectDelay: 10 })
    open.push(bus)
    const got: [string, number, unknown][] = []
    bus.envelopes$('d.>').subscribe((m) => got.push([m.origin, m.seq, m.data]))
    await first
    const c = hub.conns[0]!
    c.read()
    c.ch.send(encodeWelcome('fakehub'))
    await until(() => bus.connected, 5000, 'welcomed')
    c.ch.send(encodeMsgs(1, 'o', 'd.x', json(1, 2, 3)))
    c.ch.send(encodeMsgs(1, 'o', 'd.x', json(1, 2, 3))) // the same again
    c.ch.send(encodeMsgs(2, 'o', 'd.x', json(2, 3, 4, 5))) // overlapping
    c.ch.send(encodeMsgs(2 ** 30, 'o', 'd.x', json('far'))) // 2^30 ahead: implausible
    c.ch.send(encodeMsg(6, 'o', 'd.x', Buffer.from('6')))
    await until(() => got.length === 6, 5000, 'six messages')
    expect(got).toEqual([1, 2, 3, 4, 5, 6].map((n) => ['o', n, n]))
    expect(bus.stats.duplicates).toBe(5)
    expect(bus.stats.implausible).toBe(1)
    expect(bus.stats.reconnects).toBe(0)
  })

  it('a malformed MSGS ends that connection, typed on status$ (ERR_PROTOCOL, what the hub did wrong); the client reconnects and carries on', async () => {
    const hub = await fakeHub()
    const first = hub.next()
    const bus = connectBus(hub.path, { minReconnectDelay: 5, maxReconnectDelay: 10 })
    open.push(bus)
    const statuses: { type: string; error?: unknown }[] = []
    bus.status$.subscribe((s) => statuses.push(s as never))
    const got: unknown[] = []
    bus.messages$('d.>').subscribe((v) => got.push(v))
    const bad = [
      Buffer.from([FrameType.MSGS, 1, 1, 0x6f, 0, 3, 0x64, 0x2e, 0x78]), // count 0
      Buffer.concat([Buffer.from(encodeMsgs(1, 'o', 'd.x', json(1))).subarray(0, -1)]), // an entry cut short
      Buffer.concat([Buffer.from(encodeMsgs(1, 'o', 'd.x', json(1, 2))), Buffer.from([0])]), // a trailing byte
    ]
    await first
    for (let k = 0; k < bad.length; k++) {
      const c = hub.conns[k]!
      c.read()
      c.ch.send(encodeWelcome('fakehub'))
      const next = hub.next()
      c.ch.send(bad[k]!)
      await next // the client gave that connection up and came back
    }
    const last = hub.conns[bad.length]!
    last.read()
    last.ch.send(encodeWelcome('fakehub'))
    last.ch.send(encodeMsg(1, 'o', 'd.x', Buffer.from('"ok"')))
    await until(() => got.length === 1, 5000, 'the good message')
    expect(got).toEqual(['ok'])
    // status$ says why the client gave the connection up: the hub's protocol error (not the ERR_ABORTED of its own abort).
    const errors = statuses.filter((s) => s.type === 'disconnected').map((s) => s.error)
    expect(errors).toEqual(bad.map(() => expect.objectContaining({ code: 'ERR_PROTOCOL' })))
  })
})

/** A Unix-socket proxy in front of a hub whose connections the test can cut (the hub stays up and remembers each sender's last seq). */
async function cuttingProxy(target: string): Promise<{ path: string; cut(): number; connections: () => number }> {
  const path = tmpSocket()
  const pairs = new Set<[net.Socket, net.Socket]>()
  let total = 0
  const server = net.createServer((client) => {
    const upstream = net.connect(target)
    const pair: [net.Socket, net.Socket] = [client, upstream]
    pairs.add(pair)
    total++
    const end = (): void => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  open.push({ close: () => new Promise<void>((resolve) => { for (const [a, b] of pairs) (a.destroy(), b.destroy()); server.close(() => resolve()) }) })
  return {
    path,
    cut: () => {
      const n = pairs.size
      for (const [a, b] of [...pairs]) (a.destroy(), b.destroy())
      return n
    },
    connections: () => total,
  }
}

describe('batches across reconnects to a hub that stays up', () => {
  it('a sender whose connection is cut 8 times mid-stream (frames cut in half, partly forwarded batches resent): every message once, in order', async () => {
    const { hub, drops } = await hubWithEvents()
    const proxy = await cuttingProxy(hub.path)
    const receiver = connectBus(hub.path)
    open.push(receiver)
    const got: number[] = []
    receiver.messages$<{ i: number }>('r.>').subscribe((m) => got.push(m.i))
    await receiver.flush()
    const sender = connectBus(proxy.path, { minReconnectDelay: 5, maxReconnectDelay: 20 })
    open.push(sender)
    await sender.flush()
    const N = 40_000
    const pad = 'p'.repeat(200)
    let cuts = 0
    for (let i = 0; i < N; ) {
      for (const end = Math.min(N, i + 700); i < end; i++) sender.emit('r.x', { i, pad })
      // Halfway through each 5000: cut the (welcomed) connection, with batches in flight both ways.
      if (i % 5000 >= 2500 && cuts < Math.floor(i / 5000) + 1 && cuts < 8) {
        await until(() => sender.connected, 5000, 'the sender back')
        expect(proxy.cut()).toBe(1)
        cuts++
      }
      if (!sender.writable) await sender.whenWritable()
      await new Promise((r) => setImmediate(r))
    }
    await sender.flush({ timeout: 10_000 })
    await receiver.flush()
    await until(() => got.length >= N, 10_000, `all ${N} (got ${got.length})`)
    await receiver.flush()
    expect(cuts).toBe(8)
    // A cut in the middle of a frame is the hub's ERR_TRUNCATED_FRAME for that connection, nothing else.
    expect(drops().filter((d) => (d as { error: { code: string } }).error.code !== 'ERR_TRUNCATED_FRAME')).toEqual([])
    expect(got.length).toBe(N)
    const firstWrong = got.findIndex((v, k) => v !== k)
    expect(firstWrong, `first out of place at ${firstWrong}: ${got[firstWrong]}`).toBe(-1)
    expect(receiver.stats.duplicates).toBe(0) // the hub forwarded each once
    expect(sender.stats.reconnects).toBeGreaterThanOrEqual(8)
    expect(proxy.connections()).toBeGreaterThanOrEqual(9)
  })
})

describe('a batch is delivered as its messages one by one would be', () => {
  /** Connects a client to a fake hub and sends it `frames` once it is welcomed. */
  async function clientOfFake(): Promise<{ bus: ReturnType<typeof connectBus>; send(f: Uint8Array): void }> {
    const hub = await fakeHub()
    const first = hub.next()
    const bus = connectBus(hub.path, { minReconnectDelay: 5, maxReconnectDelay: 10 })
    open.push(bus)
    await first
    const c = hub.conns[0]!
    c.read()
    c.ch.send(encodeWelcome('fakehub'))
    await until(() => bus.connected, 5000, 'welcomed')
    return { bus, send: (f) => c.ch.send(f) }
  }

  /**
   * Sends messages 1, 2, 3 on n.x (as one MSGS or three MSGs), then a marker on z; resolves once the
   * marker arrived: frames are handled in order, so everything before it is done.
   */
  async function sendThenMarker(bus: ReturnType<typeof connectBus>, send: (f: Uint8Array) => void, shape: 'one MSGS' | 'three MSGs'): Promise<void> {
    const ends: string[] = []
    const marker = bus.messages$<string>('z').subscribe((v) => ends.push(v))
    open.push({ close: () => marker.unsubscribe() })
    if (shape === 'one MSGS') send(encodeMsgs(1, 'o', 'n.x', json(1, 2, 3)))
    else for (const i of [1, 2, 3]) send(encodeMsg(i, 'o', 'n.x', Buffer.from(String(i))))
    send(encodeMsg(1, 'm', 'z', Buffer.from('"end"')))
    await until(() => ends.length === 1, 5000, 'the marker')
  }

  for (const shape of ['one MSGS', 'three MSGs'] as const) {
    it(`${shape}: a subscriber added by the first message's handler gets the next two, the one that left gets no more`, async () => {
      const { bus, send } = await clientOfFake()
      const added: number[] = []
      const firstOnly: number[] = []
      let done = false
      const sub = bus.messages$<number>('n.x').subscribe((v) => {
        firstOnly.push(v)
        sub.unsubscribe() // the only subscriber of n.x leaves after one
        if (added.length === 0 && !done) {
          done = true
          bus.messages$<number>('n.>').subscribe((w) => added.push(w))
        }
      })
      await sendThenMarker(bus, send, shape)
      expect(firstOnly).toEqual([1])
      expect(added).toEqual([2, 3])
      expect(bus.stats.received).toBe(3 + 1) // 1 to n.x, 2 and 3 to n.>, the marker
    })

    it(`${shape}: the only subscriber leaving after the first message: the other two are not counted as received`, async () => {
      const { bus, send } = await clientOfFake()
      const got: number[] = []
      const sub = bus.messages$<number>('n.x').subscribe((v) => (got.push(v), sub.unsubscribe()))
      await sendThenMarker(bus, send, shape)
      expect(got).toEqual([1])
      expect(bus.stats.received).toBe(1 + 1)
    })
  }
})

describe('the outbox packing, fuzzed through a real hub', () => {
  it('random topics, sizes (1 B .. 30 KiB) and multi-byte text: each message arrives intact, in emit order across topics', async () => {
    const { hub, drops } = await hubWithEvents({ maxMessageSize: 64 * 1024 })
    const a = connectBus(hub.path, { maxMessageSize: 64 * 1024 })
    const b = connectBus(hub.path, { maxMessageSize: 64 * 1024 })
    open.push(a, b)
    const got: [string, string][] = []
    b.envelopes$<string>('z.>').subscribe((m) => got.push([m.topic, m.data]))
    await Promise.all([a.flush(), b.flush()])
    let seed = 0x9e3779b9
    const rand = (n: number): number => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) | 0
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * n)
    }
    const alphabet = ['a', 'é', '€', '😀', '\u2028', '"', '\\']
    const sent: [string, string][] = []
    for (let round = 0; round < 40; round++) {
      const burst = 1 + rand(200)
      for (let k = 0; k < burst; k++) {
        const topic = ['z.a', 'z.b', 'z.c'][rand(k % 7 === 0 ? 3 : 1) + (round % 2)] ?? 'z.a'
        const size = [1, 40, 127, 128, 300, 5000, 16_380, 30_000][rand(8)]! // JSON of quotes / backslashes doubles: under 64 KiB
        const ch = alphabet[rand(alphabet.length)]!
        const text = ch.repeat(Math.max(1, Math.floor(size / Buffer.byteLength(ch))))
        a.emit(topic, text)
        sent.push([topic, text])
      }
      if (!a.writable) await a.whenWritable()
      await new Promise((r) => setImmediate(r))
    }
    await a.flush({ timeout: 10_000 })
    await b.flush()
    await until(() => got.length >= sent.length, 10_000, 'all')
    expect(drops()).toEqual([])
    expect(got.length).toBe(sent.length)
    const wrong = got.findIndex(([t, d], k) => t !== sent[k]![0] || d !== sent[k]![1])
    expect(wrong, `first wrong at ${wrong}`).toBe(-1)
  })
})
