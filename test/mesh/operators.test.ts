import { Observable, of, Subject } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { broadcast, fromPeers, membership, type PeerMessage } from 'rxnet/operators'

const scheduler = (): TestScheduler => new TestScheduler((actual, expected) => expect(actual).toEqual(expected))

interface FakePeer {
  id: string
  source: Observable<string>
}

describe('membership()', () => {
  it('emits the member map on every join and leave, and completes after the last leave', () => {
    scheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const aSrc = cold<string>('---|')
      const bSrc = cold<string>('-----|')
      const a: FakePeer = { id: 'a', source: aSrc }
      const b: FakePeer = { id: 'b', source: bSrc }
      const peers = hot<FakePeer>('-a-b--|', { a, b })
      expectObservable(peers.pipe(membership())).toBe('-x-yz---(w|)', {
        x: new Map([['a', a]]),
        y: new Map([['a', a], ['b', b]]),
        z: new Map([['b', b]]),
        w: new Map(),
      })
      expectSubscriptions(aSrc.subscriptions).toBe('-^--!')
      expectSubscriptions(bSrc.subscriptions).toBe('---^----!')
    })
  })

  it('reports join/leave order and replaces a peer that reconnects under the same id', () => {
    const peers = new Subject<FakePeer>()
    const aLeft = new Subject<string>()
    const a1: FakePeer = { id: 'a', source: aLeft }
    const a2: FakePeer = { id: 'a', source: new Subject<string>() }
    const seen: string[][] = []
    const sub = peers.pipe(membership()).subscribe((m) => seen.push([...m.entries()].map(([k, v]) => `${k}${v === a2 ? '2' : '1'}`)))
    peers.next(a1)
    peers.next(a2)
    aLeft.complete() // the old link ends after it was replaced: no leave for id a
    expect(seen).toEqual([['a1'], ['a2']])
    sub.unsubscribe()
    expect(aLeft.observed).toBe(false)
  })

  it('unsubscribing tears down every member watch (subscription marbles)', () => {
    scheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const src = cold<string>('--------|')
      const peers = hot<FakePeer>('-a-----', { a: { id: 'a', source: src } })
      expectObservable(peers.pipe(membership()), '^--!').toBe('-x-', { x: new Map([['a', { id: 'a', source: src }]]) })
      expectSubscriptions(src.subscriptions).toBe('-^-!')
    })
  })
})

describe('fromPeers()', () => {
  it('merges every peer message with its sender; a peer error only ends that peer', () => {
    scheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const aSrc = cold<string>('-1-2--|')
      const bSrc = cold<string>('-3#')
      const a: FakePeer = { id: 'a', source: aSrc }
      const b: FakePeer = { id: 'b', source: bSrc }
      const peers = hot<FakePeer>('a--b-|', { a, b })
      expectObservable(peers.pipe(fromPeers())).toBe('-x-yz-|', {
        x: { peer: a, message: '1' },
        y: { peer: a, message: '2' },
        z: { peer: b, message: '3' },
      })
      expectSubscriptions(aSrc.subscriptions).toBe('^-----!')
      expectSubscriptions(bSrc.subscriptions).toBe('---^-!')
    })
  })

  it('unsubscribing unsubscribes from every peer', () => {
    scheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const src = cold<string>('-1------')
      const peers = hot<FakePeer>('a------', { a: { id: 'a', source: src } })
      expectObservable(peers.pipe(fromPeers()), '^--!').toBe('-x-', { x: { peer: { id: 'a', source: src }, message: '1' } })
      expectSubscriptions(src.subscriptions).toBe('^--!')
    })
  })

  it('infers the message type from the peers', () => {
    const peers = of({ id: 'a', source: of(1) })
    expectTypeOf(peers.pipe(fromPeers())).toEqualTypeOf<Observable<PeerMessage<{ id: string; source: Observable<number> }, number>>>()
  })
})

describe('broadcast()', () => {
  it('encodes each value once and hands the same bytes to every current member', () => {
    const sent: [string, Uint8Array][] = []
    let encodes = 0
    const codec = {
      name: 'count',
      encode: (v: string) => (encodes++, Buffer.from(v)),
      decode: (b: Uint8Array) => Buffer.from(b).toString(),
    }
    const member = (id: string) => ({ send: (bytes: Uint8Array) => void sent.push([id, bytes]) })
    const members$ = new Subject<ReadonlyMap<string, { send(b: Uint8Array): void }>>()
    const values = new Subject<string>()
    const counts: number[] = []
    const sub = values.pipe(broadcast(members$, { codec })).subscribe((n) => counts.push(n))
    values.next('nobody')
    members$.next(new Map([['a', member('a')], ['b', member('b')], ['c', member('c')]]))
    values.next('all')
    members$.next(new Map([['a', member('a')]]))
    values.next('one')
    expect(counts).toEqual([0, 3, 1])
    expect(encodes).toBe(3)
    expect(sent.map(([id]) => id)).toEqual(['a', 'b', 'c', 'a'])
    expect(sent[0]![1]).toBe(sent[1]![1]) // the very same buffer: encoded once
    sub.unsubscribe()
    expect(members$.observed).toBe(false)
  })

  it('errors with ERR_ENCODE on a value the codec refuses, and follows the source (marbles)', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const members = cold<ReadonlyMap<string, { send(b: Uint8Array): void }>>('m', { m: new Map([['a', { send: () => {} }]]) })
      const src = cold<unknown>('-a-b-|', { a: { ok: 1 }, b: 1n })
      expectObservable(src.pipe(broadcast(members, { codec: 'json' }))).toBe('-1-#', { 1: 1 }, expect.objectContaining({ code: 'ERR_ENCODE' }))
      expectSubscriptions(src.subscriptions).toBe('^--!')
      expectSubscriptions(members.subscriptions).toBe('^--!')
    })
  })
})

describe('operators on real mesh peers', () => {
  it('membership() follows joins and leaves, fromPeers() tags messages, broadcast() reaches every member', async () => {
    const { createMesh } = await import('rxnet')
    const { firstValueFrom, filter } = await import('rxjs')
    const hub = createMesh({ name: 'ops', id: 'hub', interface: '127.0.0.1', discovery: false })
    const { port } = await hub.listen(0, '127.0.0.1')
    const leaves = [createMesh({ name: 'ops', id: 'l1', interface: '127.0.0.1', discovery: false, seeds: [`127.0.0.1:${port}`] }), createMesh({ name: 'ops', id: 'l2', interface: '127.0.0.1', discovery: false, seeds: [`127.0.0.1:${port}`] })]
    try {
      const maps: string[][] = []
      hub.peers$.pipe(membership()).subscribe((m) => maps.push([...m.keys()].sort()))
      const tagged: string[] = []
      hub.peers$.pipe(fromPeers()).subscribe(({ peer, message }) => tagged.push(`${peer.id}:${Buffer.from(message).toString()}`))
      const both = firstValueFrom(hub.members$.pipe(filter((m) => m.size === 2)))
      const leafJoined = leaves.map((l) => firstValueFrom(l.members$.pipe(filter((m) => m.size === 1))))
      await Promise.all(leaves.map((l) => l.listen(0, '127.0.0.1')))
      await both
      await Promise.all(leafJoined)
      const got = leaves.map((l) => firstValueFrom(l.peers$.pipe(mergeSource())))
      const sentTo = await firstValueFrom(of('hi all').pipe(broadcast(hub.members$)))
      expect(sentTo).toBe(2)
      expect((await Promise.all(got)).map((m) => Buffer.from(m).toString())).toEqual(['hi all', 'hi all'])
      const tags = new Promise<void>((resolve) => {
        const check = (): void => (tagged.length === 2 ? resolve() : void setTimeout(check, 10))
        check()
      })
      leaves[0]!.broadcast('from l1')
      leaves[1]!.broadcast('from l2')
      await tags
      expect(tagged.sort()).toEqual(['l1:from l1', 'l2:from l2'])
      const left = firstValueFrom(hub.members$.pipe(filter((m) => m.size === 1)))
      await leaves[0]!.close()
      await left
      const deadline = Date.now() + 2000 // membership() hears the leave through peer.left: poll briefly
      while (JSON.stringify(maps.at(-1)) !== '["l2"]' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
      expect(maps.at(-1)).toEqual(['l2'])
      expect(maps.some((m) => m.length === 2)).toBe(true)
    } finally {
      await Promise.all([...leaves, hub].map((m) => m.close()))
    }
  })
})

/** The first message of the first peer. */
function mergeSource<P extends { source: Observable<Uint8Array> }>() {
  return (peers: Observable<P>): Observable<Uint8Array> => new Observable<Uint8Array>((s) => peers.subscribe((p) => p.source.subscribe({ next: (m) => s.next(m), error: () => {} })))
}
