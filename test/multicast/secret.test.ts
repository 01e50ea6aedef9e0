// multicast({ secret }): AES-256-GCM sealed datagrams on loopback. Datagrams crafted without the
// key, garbled, truncated or replayed by a raw dgram socket are dropped and counted, never delivered.
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeHeader, parseHeader, writeHeader } from '../../src/multicast/datagram.js'
import { encodeBatch, framedSize } from '../../src/framing/encoder.js'
import { deriveKey, seal } from '../../src/multicast/crypto.js'
import { Resources, collect, freshGroup, str, text, until } from './helpers.js'

const res = new Resources()
afterEach(() => res.closeAll())

/** A sealed datagram built outside the channel, with the given key. */
function craft(secret: string, senderId: Uint8Array, seq: number, messages: Uint8Array[]): Buffer {
  return seal(deriveKey(secret), encodeHeader(senderId, seq, true), encodeBatch(messages, 0, messages.length, framedSize(messages, 0, messages.length)))
}

describe('multicast with a secret', () => {
  it('members sharing the secret talk; the wire carries no plaintext', async () => {
    const g = { ...freshGroup(), secret: 'k1' }
    const a = res.channel(g)
    const b = res.channel(g)
    await Promise.all([a.ready, b.ready])
    const raw = await res.raw(g)
    const got = collect(b)
    a.send(text('attack at dawn'))
    await until(() => got.length === 1 && raw.received.length === 1)
    expect(str(got[0]!.data)).toBe('attack at dawn')
    expect(got[0]!.from.senderId).toBe(a.id)
    expect(raw.received[0]!.includes(Buffer.from('attack'))).toBe(false)
    expect(parseHeader(raw.received[0]!)).toMatchObject({ sealed: true, senderId: a.id, seq: 0 })
  })

  it('a member with another secret, or none, is not heard (counted as forged / unsealed)', async () => {
    const g = freshGroup()
    const b = res.channel({ ...g, secret: 'right' })
    const wrong = res.channel({ ...g, secret: 'wrong' })
    const plain = res.channel(g)
    await Promise.all([b.ready, wrong.ready, plain.ready])
    const got = collect(b)
    const reasons: string[] = []
    b.rejected$.subscribe((r) => reasons.push(r.reason))
    wrong.send(text('w'))
    plain.send(text('p'))
    await until(() => b.stats.bad === 2, 5000, 'two rejections')
    expect(reasons.sort()).toEqual(['forged', 'unsealed'])
    expect(got).toEqual([])
    expect(b.stats.senders).toBe(0) // unauthenticated datagrams create no sender state
  })

  it('drops a datagram crafted without the key by a raw socket, and a bit-flipped or truncated real one', async () => {
    const g = { ...freshGroup(), secret: 'k2' }
    const a = res.channel(g)
    const b = res.channel(g)
    await Promise.all([a.ready, b.ready])
    const raw = await res.raw(g)
    const got = collect(b)
    const reasons: string[] = []
    b.rejected$.subscribe((r) => reasons.push(r.reason))

    const attacker = Uint8Array.from([6, 6, 6, 6, 6, 6, 6, 6])
    await raw.send(craft('guessed', attacker, 0, [text('forged')]))
    a.send(text('genuine'))
    await until(() => got.length === 1 && raw.received.length >= 2)
    const genuine = raw.received.find((d) => parseHeader(d) !== 'truncated' && (parseHeader(d) as { senderId: string }).senderId === a.id)!
    // the attacker also tries the genuine sender's id with the next sequence number
    const impersonated = Buffer.from(genuine)
    writeHeader(impersonated, Buffer.from(a.id, 'hex'), 1, true)
    await raw.send(impersonated)
    const flipped = Buffer.from(genuine)
    flipped[flipped.length - 20]! ^= 0x40
    writeHeader(flipped, Buffer.from(a.id, 'hex'), 2, true)
    await raw.send(flipped)
    // truncated copies (fresh sequence numbers, so the replay window does not catch them first)
    const cut1 = Buffer.from(genuine.subarray(0, genuine.length - 1))
    writeHeader(cut1, Buffer.from(a.id, 'hex'), 3, true)
    await raw.send(cut1)
    const cut2 = Buffer.from(genuine.subarray(0, 20))
    writeHeader(cut2, Buffer.from(a.id, 'hex'), 4, true)
    await raw.send(cut2)
    await until(() => b.stats.bad === 5, 5000, '5 rejections')
    expect(reasons).toEqual(['forged', 'forged', 'forged', 'forged', 'forged'])
    expect(got.map((m) => str(m.data))).toEqual(['genuine'])
    // the forgeries did not advance a's window: its real next datagram still gets through, without a gap
    a.send(text('next'))
    await until(() => got.length === 2)
    expect(b.stats.gaps).toBe(0)
  })

  it('a forgery with a real sender id and an old sequence is counted as forged, not replayed (authenticated before the replay check)', async () => {
    const g = { ...freshGroup(), secret: 'k5' }
    const a = res.channel(g)
    const b = res.channel(g)
    await Promise.all([a.ready, b.ready])
    const got = collect(b)
    const reasons: string[] = []
    b.rejected$.subscribe((r) => reasons.push(r.reason))
    a.send(text('m0'))
    a.send(text('m1'))
    await until(() => got.length === 2)
    const raw = await res.raw(g)
    // a's id, a sequence number b has seen already, sealed with a guessed key
    await raw.send(craft('guessed', Buffer.from(a.id, 'hex'), 0, [text('forged')]))
    await until(() => b.stats.bad === 1, 5000, 'one rejection')
    expect(reasons).toEqual(['forged'])
    expect(b.stats.replayed).toBe(0)
    expect(got.map((m) => str(m.data))).toEqual(['m0', 'm1'])
  })

  it('drops replayed datagrams (captured on the wire, re-sent later) and counts them', async () => {
    const g = { ...freshGroup(), secret: 'k3' }
    const a = res.channel(g)
    const b = res.channel(g)
    await Promise.all([a.ready, b.ready])
    const raw = await res.raw(g)
    const got = collect(b)
    for (let i = 0; i < 3; i++) {
      a.send(text(`m${i}`))
      await until(() => raw.received.length === i + 1)
    }
    await until(() => got.length === 3)
    for (const d of raw.received.slice()) await raw.send(d)
    await until(() => b.stats.replayed === 3, 5000, '3 replays')
    expect(got.map((m) => str(m.data))).toEqual(['m0', 'm1', 'm2'])
    expect(b.stats.bad).toBe(0)
    // far older than the replay window: still refused
    const old = res.channel({ ...g, replayWindow: 32 })
    await old.ready
    const oldGot = collect(old)
    for (let i = 0; i < 40; i++) {
      a.send(text(`n${i}`))
      await until(() => oldGot.length === i + 1)
    }
    await raw.send(raw.received[3]!) // a's datagram seq 3, 37 behind
    await until(() => old.stats.replayed === 1)
    expect(oldGot.length).toBe(40)
  })

  it('garbage from a raw socket never crashes and never reaches source (fast-check)', async () => {
    const g = { ...freshGroup(), secret: 'k4' }
    const b = res.channel(g)
    await b.ready
    const raw = await res.raw(g)
    const got = collect(b)
    const samples = fc.sample(
      fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 1400 }),
        // a valid-looking sealed header followed by random bytes
        fc.tuple(fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ maxLength: 1400 })).map(([id, seq, rest]) => {
          const d = Buffer.alloc(14 + rest.length)
          writeHeader(d, id, seq, true)
          d.set(rest, 14)
          return d
        }),
      ),
      { numRuns: 300, seed: 42 },
    )
    // in bursts of 20, each awaited: loopback drops datagrams when a burst overruns the receive buffer
    for (let i = 0; i < samples.length; i += 20) {
      for (const s of samples.slice(i, i + 20)) await raw.send(s)
      const sent = Math.min(i + 20, samples.length)
      await until(() => b.stats.bad + b.stats.replayed === sent, 5000, `${sent} rejections`)
    }
    expect(got).toEqual([])
    expect(b.stats.senders).toBe(0)
    // and the channel still works
    const a = res.channel(g)
    await a.ready
    a.send(text('still alive'))
    await until(() => got.length === 1)
  })
})
