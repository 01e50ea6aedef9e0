/**
 * Multicast throughput on loopback (interface 127.0.0.1, ttl 1): 64-byte messages per second
 * through `multicast()` (plain and with `secret`) beside a raw dgram sender/receiver pair
 * measured in the same run. Every row is closed-loop: at most `window` messages are outstanding
 * (sent, not yet received), which keeps the receive buffer from overflowing, so the figure is a
 * rate at which nothing is lost; loss is measured and reported anyway. Bounded in count and time.
 */
import dgram from 'node:dgram'
import { randomInt } from 'node:crypto'
import { multicast, type MulticastOptions } from '../../src/index.js'
import type { BenchContext } from './harness.js'

const SIZE = 64
const COUNT = 200_000
const MAX_MS = 3000

interface Pair {
  /** Sends `n` messages synchronously (the adapter may pack them). */
  send(n: number): void
  received(): number
  close(): Promise<void>
  datagrams(): number
}

interface Sample {
  rate: number
  lost: number
  sent: number
  datagrams: number
}

const immediate = (): Promise<void> => new Promise((r) => setImmediate(r))

/** One closed-loop run: keeps at most `window` messages in flight; returns msg/s and loss. */
async function run(pair: Pair, window: number): Promise<Sample> {
  const r0 = pair.received()
  const d0 = pair.datagrams()
  let sent = 0
  const start = performance.now()
  const deadline = start + MAX_MS
  while (sent < COUNT && performance.now() < deadline) {
    const room = window - (sent - (pair.received() - r0))
    if (room > 0) {
      const n = Math.min(room, COUNT - sent)
      pair.send(n)
      sent += n
    }
    await immediate()
  }
  // drain: wait for the rest, up to 200 ms without progress
  let last = pair.received()
  let idleSince = performance.now()
  while (pair.received() - r0 < sent) {
    await new Promise((r) => setTimeout(r, 1))
    const now = pair.received()
    if (now !== last) {
      last = now
      idleSince = performance.now()
    } else if (performance.now() - idleSince > 200) break
  }
  const got = pair.received() - r0
  const elapsed = (performance.now() - start) / 1000
  return { rate: got / elapsed, lost: sent - got, sent, datagrams: pair.datagrams() - d0 }
}

function groupOnLoopback(): { group: string; port: number; interface: string } {
  return { group: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`, port: randomInt(20_000, 60_000), interface: '127.0.0.1' }
}

async function rawSocket(g: { group: string; port: number }): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true })
  await new Promise<void>((resolve) => s.bind({ port: g.port, address: g.group, exclusive: true }, resolve))
  s.setMulticastInterface('127.0.0.1')
  s.setMulticastTTL(1)
  s.setMulticastLoopback(true)
  s.addMembership(g.group, '127.0.0.1')
  return s
}

async function rawPair(): Promise<Pair> {
  const g = groupOnLoopback()
  const tx = await rawSocket(g)
  const rx = await rawSocket(g)
  let received = 0
  let sentDatagrams = 0
  rx.on('message', () => void received++)
  tx.on('message', () => {}) // its own loopback copies
  const payload = Buffer.alloc(SIZE, 7)
  return {
    send(n) {
      for (let i = 0; i < n; i++) tx.send(payload, g.port, g.group)
      sentDatagrams += n
    },
    received: () => received,
    datagrams: () => sentDatagrams,
    close: async () => {
      await new Promise<void>((r) => tx.close(() => r()))
      await new Promise<void>((r) => rx.close(() => r()))
    },
  }
}

async function multicastPair(extra: MulticastOptions = {}): Promise<Pair> {
  const g = { ...groupOnLoopback(), ...extra }
  const tx = multicast(g)
  const rx = multicast(g)
  await Promise.all([tx.ready, rx.ready])
  let received = 0
  rx.source.subscribe(() => void received++)
  const payload = new Uint8Array(SIZE).fill(7)
  return {
    send(n) {
      for (let i = 0; i < n; i++) tx.send(payload)
    },
    received: () => received,
    datagrams: () => tx.stats.datagramsOut,
    close: async () => {
      const bad = rx.stats.bad + rx.stats.duplicates + rx.stats.replayed
      if (bad > 0) throw new Error(`receiver rejected ${bad} datagrams`)
      await Promise.all([tx.close(), rx.close()])
    },
  }
}

async function measure(ctx: BenchContext, pair: Pair, window: number): Promise<{ median: number; samples: number[]; lost: number; sent: number; perDatagram: number }> {
  let lost = 0
  let sent = 0
  let datagrams = 0
  try {
    const { median, samples } = await ctx.measure(async () => {
      const s = await run(pair, window)
      lost += s.lost
      sent += s.sent
      datagrams += s.datagrams
      return s.rate
    })
    return { median, samples, lost, sent, perDatagram: Number((sent / Math.max(1, datagrams)).toFixed(1)) }
  } finally {
    await pair.close()
  }
}

export default async function bench(ctx: BenchContext): Promise<void> {
  const raw = await measure(ctx, await rawPair(), 64)
  ctx.report({
    name: 'raw dgram 64B',
    unit: 'msg/s',
    median: raw.median,
    samples: raw.samples,
    params: { size: SIZE, window: 64, sent: raw.sent, lost: raw.lost, messagesPerDatagram: 1 },
  })
  const plain = await measure(ctx, await multicastPair(), 1024)
  ctx.report({
    name: 'multicast() 64B',
    unit: 'msg/s',
    median: plain.median,
    samples: plain.samples,
    baseline: 'raw dgram 64B',
    minRatio: 1,
    params: { size: SIZE, window: 1024, sent: plain.sent, lost: plain.lost, messagesPerDatagram: plain.perDatagram, maxDatagram: 1400 },
  })
  const sealed = await measure(ctx, await multicastPair({ secret: 'bench secret' }), 1024)
  ctx.report({
    name: 'multicast() 64B secret',
    unit: 'msg/s',
    median: sealed.median,
    samples: sealed.samples,
    baseline: 'raw dgram 64B',
    params: { size: SIZE, window: 1024, sent: sealed.sent, lost: sealed.lost, messagesPerDatagram: sealed.perDatagram, cipher: 'aes-256-gcm' },
  })
  ctx.log(`loss: raw ${raw.lost}/${raw.sent}, multicast ${plain.lost}/${plain.sent}, secret ${sealed.lost}/${sealed.sent}`)
}
