// Bus factories refuse what they would otherwise silently ignore (issue 8 item 12): unknown option
// names (with the closest valid one), strings or other types where numbers / booleans are
// expected, and unknown CLI flags.
import { describe, expect, it } from 'vitest'
import { connectBus, startHub, type BusOptions, type HubOptions } from 'rxnet'
import { run as tail } from '../../src/cli/tail.js'
import { run as emit } from '../../src/cli/emit.js'
import { run as hubCli } from '../../src/cli/hub.js'
import { tmpSocket } from './helpers.js'

const bad = <T>(o: object): T => o as T

describe('bus options', () => {
  it('connectBus refuses an unknown option, naming it and the closest valid one', () => {
    expect(() => connectBus(tmpSocket(), bad<BusOptions>({ ecko: true }))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/connectBus: unknown option "ecko" \(did you mean "echo"\?\)/) }))
    expect(() => connectBus(tmpSocket(), bad<BusOptions>({ closeTimeot: 5 }))).toThrow(expect.objectContaining({ message: expect.stringContaining('did you mean "closeTimeout"') }))
  })

  it('startHub refuses an unknown option before touching the path', async () => {
    const path = tmpSocket()
    await expect(startHub(bad<HubOptions>({ path, maxMesageSize: 10 }))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('did you mean "maxMessageSize"') })
  })

  it('a string where a number is expected says so; a non-boolean echo is refused', async () => {
    expect(() => connectBus(tmpSocket(), bad<BusOptions>({ highWaterMark: '1000' }))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: 'highWaterMark must be a number, got the string "1000"' }))
    expect(() => connectBus(tmpSocket(), bad<BusOptions>({ echo: 'yes' }))).toThrow(expect.objectContaining({ message: 'echo must be true or false, got the string "yes"' }))
    await expect(startHub(bad<HubOptions>({ path: tmpSocket(), helloTimeout: '500' }))).rejects.toMatchObject({ message: 'helloTimeout must be a number, got the string "500"' })
    await expect(startHub(bad<HubOptions>({ path: tmpSocket(), signal: 'x' }))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })

  it('the bus CLI refuses unknown flags with ERR_INVALID_ARGUMENT and the closest valid one', async () => {
    await expect(tail(['log', '--paht', tmpSocket()])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('unknown option --paht (did you mean --path?)') })
    await expect(emit(['log', '1', '--timout=5'])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('did you mean --timeout?') })
    await expect(hubCli(['--multicas', '239.255.0.1:4454'])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('did you mean --multicast?') })
    await expect(hubCli(['--path'])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: '--path needs a value' })
  })
})
