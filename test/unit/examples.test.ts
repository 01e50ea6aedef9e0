import { describe, expect, it } from 'vitest'
import { runScript } from './run-script.js'

/** Runs `examples/<name>` as a user would (through tsx), bounded in time. */
const run = (name: string) => runScript(`examples/${name}`)

describe('foundation examples run as-is and exit on their own', () => {
  it('examples/framing.ts', async () => {
    const r = await run('framing.ts')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('sending 3 frames, 70 bytes, in 3-byte pieces')
    expect(r.stdout).toContain('received #1: hello\nreceived #2: framed\nreceived #3: world')
  })

  it('examples/channel.ts', async () => {
    const r = await run('channel.ts')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('echoed 10000 of 10000, last: MESSAGE 10000')
    expect(r.stdout).toMatch(/stats: out 10000 msgs \/ \d+ B, in 10000, dropped 0/)
  })
})

describe('multicast example runs as-is and exits on its own', () => {
  it('examples/multicast.ts', async () => {
    const r = await run('multicast.ts')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/\] hello\n.*\] group\n.*\] bye\n/)
    expect(r.stdout).toContain('speaker sent 3 messages in 1 datagram(s)')
  })
})
