import { afterEach, describe, expect, it } from 'vitest'
import { fileURLToPath } from 'node:url'
import { runScript } from '../unit/run-script.js'
import { exited, spawnTs, tmpSocket } from './helpers.js'

const example = (name: string): string => fileURLToPath(new URL(`../../examples/${name}`, import.meta.url))
const children: { kill(sig?: NodeJS.Signals): unknown }[] = []
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
})

describe('netcluster examples', () => {
  it('server, receiver and sender run as they are and exit cleanly', async () => {
    process.env.RXNET_BUS_PATH = tmpSocket()
    try {
      const server = await spawnTs(example('netcluster-server.ts'), [], 'hub listening')
      children.push(server)
      const receiver = await spawnTs(example('netcluster-receiver.ts'), ['3'], 'receiver ready')
      children.push(receiver)
      const sender = await runScript(example('netcluster-sender.ts'), ['3', '20'])
      expect(sender.code).toBe(0)
      expect(await exited(receiver)).toBe(0)
      expect(receiver.output().match(/A called:"TESTE"/g)).toHaveLength(3)
      server.kill('SIGINT')
      expect(await exited(server)).toBe(0)
      expect(server.output()).toContain('hub closed after 3 messages')
    } finally {
      delete process.env.RXNET_BUS_PATH
    }
  })
})

describe('rxnet hub / tail / emit', () => {
  it('tail prints what emit publishes (as text and with --json); a bad topic is a usage error (exit 2, one line)', async () => {
    const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))
    const path = tmpSocket()
    const hub = await spawnTs(cli, ['hub', '--path', path], 'listening on')
    children.push(hub)
    const tail = await spawnTs(cli, ['tail', 'log.>', '--path', path, '--count', '2'], 'tailing')
    children.push(tail)
    const json = await spawnTs(cli, ['tail', 'log.>', '--path', path, '--count', '2', '--json'], 'tailing')
    children.push(json)
    for (const [t, v] of [['log.a', '{"line":"TESTE"}'], ['other', '1'], ['log.b.c', '42']]) {
      const emit = await runScript(cli, ['emit', t!, v!, '--path', path])
      expect(emit.code, emit.stdout + emit.stderr).toBe(0)
    }
    expect(await exited(tail)).toBe(0)
    expect(tail.output()).toContain('log.a {"line":"TESTE"}\nlog.b.c 42\n')
    expect(await exited(json)).toBe(0)
    const lines = json.output().split('\n').filter((l) => l.startsWith('{'))
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
      { topic: 'log.a', data: { line: 'TESTE' }, origin: expect.any(String), seq: 1 },
      { topic: 'log.b.c', data: 42, origin: expect.any(String), seq: 1 },
    ])
    const bad = await runScript(cli, ['emit', 'log.*', '1', '--path', path])
    expect(bad.code).toBe(2) // a usage error: one line saying what was wrong
    expect(bad.stderr).toMatch(/^rxnet emit: topic "log\.\*" contains a wildcard/)
    hub.kill('SIGTERM')
    expect(await exited(hub)).toBe(0)
  })
})
