import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { roundRobinAvailable } from '../../src/cluster/balancer.js'

describe('round-robin fails safe without the Node internals it uses', () => {
  it('detects _listen2 and a listening handle with onconnection on this Node', async () => {
    expect(roundRobinAvailable()).toBe(true)
    const server = net.createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      expect(roundRobinAvailable(server)).toBe(true)
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('reports them missing (serve() then falls back to shared) instead of throwing', () => {
    expect(roundRobinAvailable(undefined, {})).toBe(false) // no net.Server.prototype._listen2
    expect(roundRobinAvailable(net.createServer())).toBe(false) // not listening: no _handle
    const renamed = Object.assign(net.createServer(), { _handle: { close() {} } }) // a handle without onconnection
    expect(roundRobinAvailable(renamed)).toBe(false)
  })
})
