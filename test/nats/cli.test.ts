// rxnet hub --nats, rxnet tail / emit --nats, against a real nats-server.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { firstValueFrom } from 'rxjs'
import { connectBus, type BusMessage } from 'rxnet'
import { run as tail } from '../../src/cli/tail.js'
import { run as emit } from '../../src/cli/emit.js'
import { run as hub } from '../../src/cli/hub.js'
import { exited, spawnTs, tmpSocket } from '../bus/helpers.js'
import { NATS_SERVER, SKIP_REASON } from './harness.js'
import { natsSuite } from './suite.js'

describe('rxnet --nats arguments', () => {
  it('--path with --nats, or a --nats that is not a nats:// URL, is ERR_INVALID_ARGUMENT', async () => {
    await expect(emit(['x', '1', '--path', tmpSocket(), '--nats', 'nats://127.0.0.1:1'])).rejects.toThrow('--path and --nats name two different buses')
    await expect(tail(['x', '--nats', '127.0.0.1:4222'])).rejects.toThrow('--nats wants nats://host:port')
    await expect(hub(['--nats', 'http://x', '--path', tmpSocket()])).rejects.toThrow('--nats wants nats://host:port')
  })
})

describe.skipIf(NATS_SERVER === null)(`rxnet hub / tail / emit --nats${NATS_SERVER === null ? ` (skipped: ${SKIP_REASON})` : ''}`, () => {
  const s = natsSuite(1)
  afterEach(() => vi.restoreAllMocks())
  const url = (): `nats://${string}` => s.url

  it('rxnet emit --nats publishes one JSON value; rxnet tail --nats --json prints what arrives', async () => {
    const b = connectBus(url())
    s.track(b)
    const got = firstValueFrom(b.messages$('cli.>'))
    await b.flush()
    expect(await emit(['cli.x', '{"a":1}', '--nats', url()])).toBe(0)
    expect(await got).toEqual({ a: 1 })
    const lines: string[] = []
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (lines.push(String(chunk)), true))
    const tailing = tail(['cli.>', '--nats', url(), '--count', '1', '--json'])
    // tail subscribes, then waits for the server; emit until it has printed (its SUB is in place).
    for (let i = 0; lines.length === 0; i++) {
      if (i > 1000) throw new Error('rxnet tail printed nothing')
      b.emit('cli.y', { b: 2 })
      await b.flush()
      await new Promise((r) => setImmediate(r))
    }
    expect(await tailing).toBe(0)
    vi.restoreAllMocks()
    const m = JSON.parse(lines[0]!) as BusMessage
    expect({ topic: m.topic, data: m.data, origin: m.origin }).toEqual({ topic: 'cli.y', data: { b: 2 }, origin: b.id })
  })

  it('rxnet hub --nats bridges its clients through NATS', async () => {
    const path = tmpSocket()
    const child = await spawnTs('src/cli/main.ts', ['hub', '--path', path, '--nats', url()], 'listening')
    try {
      expect(child.output()).toContain(`bridged through NATS ${url()}`)
      const remote = connectBus(url())
      const local = connectBus(path)
      s.track(remote)
      s.track(local)
      const got = firstValueFrom(remote.envelopes$('from.hub'))
      await remote.flush()
      local.emit('from.hub', 'hello')
      const m = await got
      expect({ data: m.data, origin: m.origin }).toEqual({ data: 'hello', origin: local.id })
    } finally {
      child.kill('SIGTERM')
      await exited(child)
    }
  })
})
