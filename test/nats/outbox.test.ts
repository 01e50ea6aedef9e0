// The NATS bus's emit and receive hot paths without a server: the outbox ring and its ready-made
// HPUB commands (byte for byte what nats.js's publish writes), the header fast path on receive,
// and the per-sender duplicate filter.
import { describe, expect, it } from 'vitest'
import type { Msg, MsgHdrs } from '@nats-io/transport-node'
import { Outbox, type WireFormat } from '../../src/bus/nats/outbox.js'
import { headerPrefix, readMessageMeta, seqHeaders, SenderFilter, SeqHeaderWriter, Verdict } from '../../src/bus/nats/wire.js'

const ORIGIN = '0123456789abcdef'
/** The header block bytes nats.js's publish takes from a headers object (it calls encode()). */
const bytesOf = (h: MsgHdrs): Uint8Array => (h as unknown as { encode(): Uint8Array }).encode()
const wireOf = (topic: string, origin = ORIGIN): WireFormat => ({ pub: Buffer.from(`HPUB ${topic} `), headers: headerPrefix(origin) })

/** What nats.js's protocol.publish(subject, payload, { headers }) sends, as bytes. */
function natsCommand(topic: string, origin: string, seq: number, payload: Uint8Array): Buffer {
  const h = bytesOf(seqHeaders(origin, seq))
  return Buffer.concat([Buffer.from(`HPUB ${topic} ${h.length} ${h.length + payload.length}\r\n`), h, payload, Buffer.from('\r\n')])
}

/** A received message as nats.js hands it over (`_msg.hdr`, `_rdata`: header block then payload). */
function received(block: Uint8Array, payload: Uint8Array, headers?: Msg['headers']): Msg {
  return { _msg: { hdr: block.length }, _rdata: Buffer.concat([block, payload]), headers } as unknown as Msg
}

describe('NATS outbox', () => {
  it('builds each core message as the exact HPUB command nats.js would send, across seq digit counts, chunks and ring growth', () => {
    const q = new Outbox(1 << 30, 'error')
    const topic = 'log.info'
    const wire = wireOf(topic)
    const texts: string[] = []
    for (let i = 1; i <= 3000; i++) {
      const text = JSON.stringify({ i, s: i % 7 === 0 ? 'é€😀'.repeat(i % 50) : 'x'.repeat(i % 300) })
      texts.push(text)
      expect(q.pushText(topic, text, undefined, 1 << 20, wire)).toBeGreaterThanOrEqual(0)
    }
    let n = 0
    q.forEach((slot) => {
      const seq = q.seqOf(slot)
      expect(seq).toBe(++n)
      const payload = Buffer.from(texts[seq - 1]!)
      expect(Buffer.from(q.payloadOf(slot))).toEqual(payload)
      expect(Buffer.from(q.commandOf(slot)!)).toEqual(natsCommand(topic, ORIGIN, seq, payload))
    })
    expect(n).toBe(3000)
  })

  it('keeps seq order through release, wrap-around and growth; counts bytes back to 0', () => {
    const q = new Outbox(1 << 30, 'error')
    for (let i = 0; i < 1500; i++) q.pushText('t', String(i), undefined, 1 << 20)
    q.roundTrip(1000)
    q.roundTrip(1000) // confirmed twice: up to 1000 may go
    q.release(false)
    expect(q.oldest).toBe(1001)
    for (let i = 1500; i < 4000; i++) q.pushText('t', String(i), undefined, 1 << 20)
    const seqs: number[] = []
    q.forEach((slot) => {
      seqs.push(q.seqOf(slot))
      expect(Buffer.from(q.payloadOf(slot)).toString()).toBe(String(q.seqOf(slot) - 1))
      expect(q.commandOf(slot)).toBeUndefined()
    })
    expect(seqs).toEqual(Array.from({ length: 3000 }, (_, i) => 1001 + i))
    expect(q.unconfirmed(false)).toBe(3000)
    q.roundTrip(4000)
    q.roundTrip(4000)
    q.release(false)
    expect([q.length, q.bytes, q.oldest]).toEqual([0, 0, Infinity])
  })

  it('overflow policies: error refuses (seq not used), drop-newest drops the new one, drop-oldest the oldest; all counted', () => {
    const size = 1 + 't'.length + 64 // one byte of payload
    const full = (policy: 'error' | 'drop-newest' | 'drop-oldest'): Outbox => {
      const q = new Outbox(2 * size, policy)
      q.pushText('t', '1', undefined, 100)
      q.pushText('t', '2', undefined, 100)
      return q
    }
    const e = full('error')
    expect(() => e.pushText('t', '3', undefined, 100)).toThrow(expect.objectContaining({ code: 'ERR_BUFFER_OVERFLOW' }))
    expect([e.seq, e.length, e.overflows, e.dropped]).toEqual([2, 2, 1, 0])
    const n = full('drop-newest')
    expect(n.pushText('t', '3', undefined, 100)).toBe(-1)
    expect([n.seq, n.length, n.overflows, n.dropped, n.oldest]).toEqual([3, 2, 1, 1, 1])
    const o = full('drop-oldest')
    expect(o.pushText('t', '3', undefined, 100)).toBeGreaterThanOrEqual(0)
    expect([o.seq, o.length, o.overflows, o.dropped, o.oldest]).toEqual([3, 2, 1, 1, 2])
  })

  it('refuses a payload over maxMessageSize with ERR_FRAME_TOO_LONG before it takes a seq', () => {
    const q = new Outbox(1 << 20, 'error')
    expect(() => q.pushText('t', 'x'.repeat(100), undefined, 50, wireOf('t'))).toThrow(expect.objectContaining({ code: 'ERR_FRAME_TOO_LONG' }))
    expect([q.seq, q.length]).toEqual([0, 0])
  })
})

describe('NATS receive fast path', () => {
  it('reads origin and seq from the bytes of rxnet header blocks, senders interleaved', () => {
    const w = new SeqHeaderWriter('aaaa')
    const other = 'bbbbbbbb'
    for (let seq = 1; seq < 2000; seq += 37) {
      const mine = bytesOf(w.next(seq))
      expect(Buffer.from(mine)).toEqual(Buffer.from(bytesOf(seqHeaders('aaaa', seq))))
      expect({ ...readMessageMeta(received(mine, Buffer.from('{}'))) }).toEqual({ origin: 'aaaa', seq, noResponders: false, error: undefined })
      expect({ ...readMessageMeta(received(bytesOf(seqHeaders(other, seq + 1)), Buffer.from('1'))) }).toMatchObject({ origin: other, seq: seq + 1 })
    }
  })

  it('the fast path reads a non-ASCII origin as msg.headers does (UTF-8), so both paths key the duplicate filter alike', () => {
    const origin = 'é€😀-id'
    const block = Buffer.from(`NATS/1.0\r\nRx-Origin: ${origin}\r\nRx-Seq: 7\r\n\r\n`, 'utf8')
    expect(readMessageMeta(received(block, Buffer.from('1')))).toMatchObject({ origin, seq: 7 })
  })

  it('anything else goes through msg.headers: no headers reads as plain, a non-numeric seq too', () => {
    const plain = received(Buffer.from('NATS/1.0\r\nRx-Origin: a\r\nRx-Seq: 1x\r\n\r\n'), Buffer.from('1'), undefined)
    expect(readMessageMeta(plain)).toMatchObject({ origin: '', seq: 0 })
    const extra = received(Buffer.from('NATS/1.0\r\nRx-Origin: a\r\nRx-Seq: 1\r\nX: y\r\n\r\n'), Buffer.from('1'), undefined)
    expect(readMessageMeta(extra)).toMatchObject({ origin: '', seq: 0 })
  })

  it('the duplicate filter keeps, per sender, only seqs above the highest, with senders interleaved', () => {
    const f = new SenderFilter()
    const got = [
      ['a', 1],
      ['a', 2],
      ['b', 1],
      ['a', 2],
      ['b', 1],
      ['a', 3],
      ['b', 5],
      ['b', 4],
    ].map(([o, s]) => f.accept(o as string, s as number))
    expect(got).toEqual([true, true, true, false, false, true, true, false])
  })

  it('the duplicate filter refuses a seq more than maxJump from the highest (ahead or behind) without moving; two that agree re-anchor it', () => {
    const f = new SenderFilter(100)
    const verdicts = [1, 2, 1_000_000, 3, 4, 5_000, 5_050, 5_051, 5, 5_052].map((s) => f.check('a', s))
    // 1_000_000: forged, refused; 3, 4 go on; 5_000 refused, 5_050 agrees with it: re-anchored there (one lost, counted)
    expect(verdicts).toEqual([Verdict.NEW, Verdict.NEW, Verdict.IMPLAUSIBLE, Verdict.NEW, Verdict.NEW, Verdict.IMPLAUSIBLE, Verdict.NEW, Verdict.NEW, Verdict.IMPLAUSIBLE, Verdict.NEW])
    // a forgery seen first: the sender's real seqs far behind it re-anchor at the second one
    const g = new SenderFilter(100)
    expect([2 ** 40, 1, 2, 3].map((s) => g.check('b', s))).toEqual([Verdict.NEW, Verdict.IMPLAUSIBLE, Verdict.NEW, Verdict.NEW])
  })
})
