// The bus subcommands' argument checks, in-process (no hub needed: they fail before connecting).
import { describe, expect, it } from 'vitest'
import { run as tail } from '../../src/cli/tail.js'
import { run as emit } from '../../src/cli/emit.js'
import { run as hub } from '../../src/cli/hub.js'
import { positiveIntFlag } from '../../src/cli/args.js'
import { tmpSocket } from './helpers.js'

describe('rxnet tail / emit arguments', () => {
  it('a --count or --timeout that is not a positive integer is ERR_INVALID_ARGUMENT (it was NaN: tail never stopped, emit timed out at once)', async () => {
    for (const bad of ['abc', '0', '-3', '1.5', '']) {
      await expect(tail(['log.>', '--path', tmpSocket(), `--count=${bad}`])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      await expect(emit(['log', '1', '--path', tmpSocket(), `--timeout=${bad}`])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    }
    expect(positiveIntFlag('count', undefined, Infinity)).toBe(Infinity)
    expect(positiveIntFlag('count', '12', 1)).toBe(12)
  })

  it('usage errors are ERR_INVALID_ARGUMENT with the reason (main prints it on one line and exits 2)', async () => {
    await expect(tail([])).rejects.toThrow('missing <topic>')
    await expect(tail(['log', '--cuont', '2'])).rejects.toThrow('unknown option --cuont (did you mean --count?)')
    await expect(tail(['log', '--path'])).rejects.toThrow('--path needs a value')
    await expect(tail(['log', 'extra'])).rejects.toThrow('unexpected argument "extra"')
    await expect(emit(['log'])).rejects.toThrow('missing <json>')
    await expect(emit(['log', '1', '--timout', '5'])).rejects.toThrow('unknown option --timout (did you mean --timeout?)')
    await expect(emit(['log', '{', '--path', tmpSocket()])).rejects.toThrow('<json> is not JSON')
    await expect(hub(['extra'])).rejects.toThrow('unexpected argument "extra" (this command takes none)')
    await expect(hub(['--secret', 'k'])).rejects.toThrow('--secret is not accepted: a secret on the command line shows in ps; use --secret-file F or the RXNET_SECRET environment variable')
    await expect(hub(['--interface', '127.0.0.1'])).rejects.toThrow('--interface and --secret-file need --multicast')
    await expect(hub(['--multicast', '239.255.0.9:4454', '--secret-file', '/nonexistent/key', '--path', tmpSocket()])).rejects.toThrow('cannot read --secret-file /nonexistent/key: ENOENT')
    await expect(hub(['--multicast', '239.255.0.9'])).rejects.toThrow('--multicast wants group:port')
  })
})
