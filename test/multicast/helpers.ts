// Shared helpers for the multicast tests: a fresh group/port per test, raw dgram sockets on
// loopback (capture / inject), and polling a condition with a deadline.
import dgram from 'node:dgram'
import { randomInt } from 'node:crypto'
import { multicast, type MulticastChannel, type MulticastMessage, type MulticastOptions } from 'rxnet'

/** A fresh group and port on loopback, so parallel test files never share one. */
export function freshGroup(): { group: string; port: number; interface: string } {
  return { group: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`, port: randomInt(20_000, 60_000), interface: '127.0.0.1' }
}

/** Tracks channels and sockets for `closeAll()` in afterEach. */
export class Resources {
  private readonly closers: (() => Promise<unknown>)[] = []

  channel(options: MulticastOptions): MulticastChannel {
    const ch = multicast(options)
    this.closers.push(() => ch.close())
    return ch
  }

  /** A raw dgram socket joined to the group on 127.0.0.1 (it receives everything sent there). */
  async raw(g: { group: string; port: number }): Promise<RawSocket> {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true })
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.bind({ port: g.port, address: g.group, exclusive: true }, () => {
        s.off('error', reject)
        s.setMulticastInterface('127.0.0.1')
        s.setMulticastLoopback(true)
        s.addMembership(g.group, '127.0.0.1')
        resolve()
      })
    })
    const received: Buffer[] = []
    s.on('message', (m) => received.push(m))
    this.closers.push(() => new Promise<void>((r) => s.close(() => r())))
    return {
      received,
      send: (bytes: Uint8Array) => new Promise<void>((resolve, reject) => s.send(bytes, g.port, g.group, (e) => (e ? reject(e) : resolve()))),
    }
  }

  async closeAll(): Promise<void> {
    for (const close of this.closers.splice(0).reverse()) await close()
  }
}

export interface RawSocket {
  /** Every datagram seen on the group so far. */
  readonly received: Buffer[]
  send(bytes: Uint8Array): Promise<void>
}

/** Subscribes and keeps every message. */
export function collect(ch: MulticastChannel): MulticastMessage[] {
  const got: MulticastMessage[] = []
  ch.source.subscribe((m) => got.push(m))
  return got
}

/** Polls `cond` every few ms until true; throws after `ms`. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s)
export const str = (b: Uint8Array): string => new TextDecoder().decode(b)
