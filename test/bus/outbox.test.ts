import { describe, expect, it } from 'vitest'
import { decodeFrame, encodeString, forEachEntry, MAX_BATCH_BYTES, type Batch } from '../../src/bus/protocol.js'
import { Outbox, type Sealed } from '../../src/bus/outbox.js'

const topic = (name: string): [string, Uint8Array] => [name, encodeString(name)]
const [T, t] = topic('log.info')

function outbox(options: { hwm?: number; policy?: 'error' | 'drop-newest' | 'drop-oldest'; max?: number } = {}): { box: Outbox; sealed: Sealed[] } {
  const sealed: Sealed[] = []
  const box = new Outbox(options.hwm ?? 1 << 20, options.policy ?? 'error', options.max ?? 1 << 20, (s) => sealed.push(s))
  return { box, sealed }
}

/** [seq, text] of every message a frame carries. */
function messages(frame: Uint8Array): [number, string][] {
  const f = decodeFrame(frame)
  if (f.type === 'pub') return [[f.seq, Buffer.from(f.payload).toString()]]
  const out: [number, string][] = []
  forEachEntry(frame, f as Batch<'pubs'>, (seq, from, to) => out.push([seq, Buffer.from(frame.subarray(from, to)).toString()]))
  return out
}

describe('bus outbox (batching)', () => {
  it('messages added in one tick on one topic become one PUBS frame, sealed at the end of the tick', async () => {
    const { box, sealed } = outbox()
    for (let i = 1; i <= 100; i++) box.add(i, T, t, JSON.stringify({ i }))
    expect(sealed).toEqual([])
    expect(box.messages).toBe(100)
    await new Promise((r) => process.nextTick(r))
    expect(sealed).toHaveLength(1)
    expect(sealed[0]).toMatchObject({ first: 1, last: 100 })
    expect(decodeFrame(sealed[0]!.frame)).toMatchObject({ type: 'pubs', seq: 1, count: 100, topic: T })
    expect(messages(sealed[0]!.frame)).toEqual(Array.from({ length: 100 }, (_, k) => [k + 1, JSON.stringify({ i: k + 1 })]))
    expect(box.bytes).toBe(sealed[0]!.frame.length)
  })

  it('a batch of one is a plain PUB; a topic change or seal() closes the batch; order is kept', () => {
    const { box, sealed } = outbox()
    const [U, u] = topic('other')
    box.add(1, T, t, '"a"')
    box.add(2, T, t, '"b"')
    box.add(3, U, u, '"c"')
    box.seal()
    box.add(4, T, t, 'é'.repeat(100)) // not ASCII: 200 bytes, a 2-byte length
    box.seal()
    expect(sealed.map((s) => [s.first, s.last, decodeFrame(s.frame).type])).toEqual([
      [1, 2, 'pubs'],
      [3, 3, 'pub'],
      [4, 4, 'pub'],
    ])
    expect(sealed.flatMap((s) => messages(s.frame))).toEqual([
      [1, '"a"'],
      [2, '"b"'],
      [3, '"c"'],
      [4, 'é'.repeat(100)],
    ])
    expect(box.bytes).toBe(sealed.reduce((n, s) => n + s.frame.length, 0))
  })

  it('a batch body stays within MAX_BATCH_BYTES; a message larger than that travels alone', () => {
    const { box, sealed } = outbox()
    const text = 'x'.repeat(1000)
    for (let i = 1; i <= 40; i++) box.add(i, T, t, text)
    box.add(41, T, t, new Uint8Array(MAX_BATCH_BYTES + 1))
    box.add(42, T, t, text)
    box.seal()
    for (const s of sealed) expect(s.frame.length).toBeLessThanOrEqual(MAX_BATCH_BYTES + 64)
    expect(sealed.map((s) => [s.first, s.last])).toEqual([
      [1, 16],
      [17, 32],
      [33, 40],
      [41, 41],
      [42, 42],
    ])
    expect(decodeFrame(sealed[3]!.frame)).toMatchObject({ type: 'pub', seq: 41 })
  })

  it('maxMessageSize applies to each message as a PUB of its own', () => {
    const { box } = outbox({ max: 100 })
    const head = 1 + 1 + t.length // type, seq 1, topic
    expect(box.add(1, T, t, 'x'.repeat(100 - head))).toBe(100)
    expect(() => box.add(2, T, t, 'x'.repeat(101 - head))).toThrow(expect.objectContaining({ code: 'ERR_FRAME_TOO_LONG' }))
    expect(box.messages).toBe(1)
  })

  it('an ACK forgets whole frames only: one acknowledged part-way is kept for the resend', () => {
    const { box, sealed } = outbox()
    for (let i = 1; i <= 3; i++) box.add(i, T, t, '1')
    box.seal()
    for (let i = 4; i <= 6; i++) box.add(i, T, t, '1')
    box.seal()
    box.ack(4)
    expect([...box.sealed()]).toEqual([sealed[1]])
    expect(box.messages).toBe(3)
    box.ack(6)
    expect([...box.sealed()]).toEqual([])
    expect(box.messages).toBe(0)
    expect(box.bytes).toBe(0)
  })

  it('overflow policies count messages: error throws, drop-newest drops the new one, drop-oldest whole oldest frames', () => {
    const text = 'x'.repeat(99) // 100 bytes per entry
    const full = (policy: 'error' | 'drop-newest' | 'drop-oldest'): Outbox => {
      const { box } = outbox({ hwm: 1000, policy })
      for (let i = 1; i <= 5; i++) box.add(i, T, t, text)
      box.seal()
      for (let i = 6; i <= 9; i++) box.add(i, T, t, text)
      return box
    }
    const e = full('error')
    expect(() => e.add(10, T, t, text)).toThrow(expect.objectContaining({ code: 'ERR_BUFFER_OVERFLOW' }))
    expect([e.messages, e.overflows]).toEqual([9, 1])
    const n = full('drop-newest')
    expect(n.add(10, T, t, text)).toBe(-1)
    expect([n.messages, n.dropped, n.overflows]).toEqual([9, 1, 1])
    const o = full('drop-oldest')
    expect(o.add(10, T, t, text)).toBeGreaterThan(0)
    expect([o.messages, o.dropped, o.overflows]).toEqual([5, 5, 1]) // 1..5 went in one frame
    expect([...o.sealed()].map((s) => [s.first, s.last])).toEqual([[6, 9]])
    o.seal()
    expect([...o.sealed()].map((s) => [s.first, s.last])).toEqual([
      [6, 9],
      [10, 10],
    ])
  })

  it('a small batch does not pin a whole batch buffer', () => {
    const { box, sealed } = outbox()
    box.add(1, T, t, '1')
    box.add(2, T, t, '2')
    box.seal()
    expect(sealed[0]!.frame.buffer.byteLength).toBeLessThan(MAX_BATCH_BYTES)
  })

  it('text written straight into an open batch keeps its exact UTF-8 bytes, also where a multi-byte text needs a longer length', () => {
    const { box, sealed } = outbox()
    const texts = ['a', 'é'.repeat(100), 'x'.repeat(127), '€'.repeat(43), '😀'.repeat(40), 'y'.repeat(128)]
    texts.forEach((text, i) => box.add(i + 1, T, t, text))
    box.seal()
    expect(sealed).toHaveLength(1)
    expect(messages(sealed[0]!.frame)).toEqual(texts.map((text, i) => [i + 1, text]))
    expect(box.bytes).toBe(sealed[0]!.frame.length)
  })

  it('the buffer of a full batch is reused once the hub has acknowledged it (not before)', () => {
    const { box, sealed } = outbox()
    const text = 'x'.repeat(1000)
    for (let i = 1; i <= 16; i++) box.add(i, T, t, text)
    box.seal()
    for (let i = 17; i <= 32; i++) box.add(i, T, t, text)
    box.seal()
    expect(sealed[1]!.frame.buffer).not.toBe(sealed[0]!.frame.buffer) // the first is not acknowledged yet
    box.ack(16)
    for (let i = 33; i <= 48; i++) box.add(i, T, t, text)
    box.seal()
    expect(sealed[2]!.frame.buffer).toBe(sealed[0]!.frame.buffer)
    expect(messages(sealed[2]!.frame).map(([seq]) => seq)).toEqual(Array.from({ length: 16 }, (_, k) => 33 + k))
  })
})
