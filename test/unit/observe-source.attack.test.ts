// observeSource (edc7777: the mesh peer reads its socket channel through a plain receiver on the
// kernel's subscriber list) must behave as a subscription does: late-subscriber replay in order,
// unsubscribing mid-stream (also from inside another receiver's next), a receiver that stops
// during replay, error / complete after everything held and exactly once, a throwing receiver.
import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { socketChannel, type ConnectionStats, type RxnetError } from 'rxnet'
import { ConnectionKernel, observeSource, OPEN, type SourceReceiver } from '../../src/lifecycle.js'
import { encodeFrame } from '../../src/framing/encoder.js'

class Probe extends ConnectionKernel<number> {
  readonly stats: ConnectionStats = { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0, dropped: 0, overflows: 0, bufferedBytes: 0, droppedIn: 0 }
  observed: boolean[] = []
  constructor() {
    super({})
  }
  send(): void {
    if (this.state !== OPEN) (this.stats as { dropped: number }).dropped++
  }
  protected hasRoom(): boolean {
    return true
  }
  protected startClose(): void {}
  protected destroy(): void {
    this.released()
  }
  protected override onObserved(o: boolean): void {
    this.observed.push(o)
  }
  in(v: number): void {
    this.emit(v)
  }
  farEnd(): void {
    this.endInbound()
    this.released()
  }
  broke(e: unknown): void {
    this.fail(e)
  }
}

/** A receiver that logs what it gets; `closed` is what it says. */
function log(name: string, out: string[], opts: { closed?: () => boolean; next?: (v: number) => void } = {}): SourceReceiver<number> {
  return {
    next: (v) => {
      out.push(`${name}${v}`)
      opts.next?.(v)
    },
    error: (e: RxnetError) => out.push(`${name}:${e.code}`),
    complete: () => out.push(`${name}:done`),
    get closed() {
      return opts.closed?.() ?? false
    },
  }
}

const cleanup: (() => void)[] = []
afterEach(() => {
  for (const f of cleanup.splice(0)) f()
})

describe('observeSource under attack', () => {
  it('a receiver that stops wanting during the replay gets only what it took; the rest stays held, in order, for the next one', () => {
    const p = new Probe()
    for (let i = 1; i <= 5; i++) p.in(i)
    const out: string[] = []
    let n = 0
    const stop = observeSource(p, log('a', out, { closed: () => n >= 2, next: () => n++ }))
    stop()
    expect(p.observed).toEqual([]) // it never joined
    observeSource(p, log('b', out))
    p.in(6)
    expect(out).toEqual(['a1', 'a2', 'b3', 'b4', 'b5', 'b6'])
  })

  it('unsubscribed from inside another receiver\'s next: it gets nothing more, not even the message being delivered', () => {
    const p = new Probe()
    const out: string[] = []
    let stopB: () => void = () => {}
    observeSource(p, log('a', out, { next: (v) => v === 2 && stopB() }))
    stopB = observeSource(p, log('b', out))
    p.in(1)
    p.in(2)
    p.in(3)
    expect(out).toEqual(['a1', 'b1', 'a2', 'a3'])
  })

  it('the same, with an RxJS subscriber removed by a plain receiver (the two kinds side by side)', () => {
    const p = new Probe()
    const out: string[] = []
    let sub: { unsubscribe(): void } | null = null
    observeSource(p, log('a', out, { next: (v) => v === 2 && sub!.unsubscribe() }))
    sub = p.source.subscribe((v) => out.push(`s${v}`))
    p.in(1)
    p.in(2)
    p.in(3)
    expect(out).toEqual(['a1', 's1', 'a2', 'a3'])
  })

  it('teardown from inside its own next: nothing after it; the last observer gone is reported once; a second teardown is harmless', () => {
    const p = new Probe()
    const out: string[] = []
    let stop: () => void = () => {}
    stop = observeSource(p, log('a', out, { next: (v) => v === 2 && stop() }))
    p.in(1)
    p.in(2)
    p.in(3)
    stop()
    expect(out).toEqual(['a1', 'a2'])
    expect(p.observed).toEqual([true, false])
    observeSource(p, log('b', out))
    expect(out).toEqual(['a1', 'a2', 'b3']) // 3 was held for the next observer
  })

  it('error and complete come after everything held, exactly once, and never both', () => {
    const failed = new Probe()
    failed.in(1)
    failed.in(2)
    failed.broke(new Error('EPIPE'))
    failed.in(3) // after the failure: dropped, counted
    const out: string[] = []
    observeSource(failed, log('a', out))
    failed.farEnd()
    observeSource(failed, log('b', out))
    expect(out).toEqual(['a1', 'a2', 'a:ERR_CONNECTION', 'b:ERR_CONNECTION'])
    expect(failed.stats.droppedIn).toBe(1)

    const ended = new Probe()
    ended.in(1)
    ended.farEnd()
    const out2: string[] = []
    const live = new Probe()
    observeSource(live, log('l', out2))
    live.in(9)
    live.farEnd()
    live.broke(new Error('late'))
    observeSource(ended, log('e', out2))
    expect(out2).toEqual(['l9', 'l:done', 'e1', 'e:done'])
  })
})

describe('observeSource on a real socket channel', () => {
  async function pair(): Promise<{ a: net.Socket; b: net.Socket }> {
    const server = net.createServer()
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as net.AddressInfo).port
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
    const a = net.connect(port, '127.0.0.1')
    const b = await accepted
    server.close()
    cleanup.push(() => {
      a.destroy()
      b.destroy()
    })
    return { a, b }
  }

  it('frames written before anyone observed are read in order once it does (the socket was paused), then the clean end', async () => {
    const { a, b } = await pair()
    const ch = socketChannel(b)
    const wrote = new Promise<void>((r) => a.end(Buffer.concat([1, 2, 3, 4].map((i) => encodeFrame(new Uint8Array([i])))), r))
    await wrote
    const out: string[] = []
    const done = new Promise<void>((resolve) => {
      observeSource(ch, { next: (f) => out.push(String(f[0])), error: (e) => (out.push(e.code), resolve()), complete: () => (out.push('done'), resolve()), closed: false })
    })
    await done
    expect(out).toEqual(['1', '2', '3', '4', 'done'])
    await ch.close()
  })

  it('a receiver that throws: the channel fails with a typed error to that receiver, the process stays up', async () => {
    const { a, b } = await pair()
    const ch = socketChannel(b)
    const out: string[] = []
    const ended = new Promise<void>((resolve) => {
      observeSource(ch, {
        next: (f) => {
          out.push(String(f[0]))
          if (f[0] === 2) throw new Error('receiver bug')
        },
        error: (e) => (out.push(e.code), resolve()),
        complete: () => (out.push('done'), resolve()),
        closed: false,
      })
    })
    a.write(Buffer.concat([1, 2, 3].map((i) => encodeFrame(new Uint8Array([i])))))
    await ended
    expect(out).toEqual(['1', '2', 'ERR_CONNECTION'])
    expect(await ch.closed).toMatchObject({ code: 'ERR_CONNECTION' })
  })
})
