/**
 * `rxnet emit <topic> <json> [--path P] [--timeout ms]`: publishes one JSON value on the bus and
 * exits once the hub has taken it; non-zero with the reason (`ERR_NO_HUB`: "no hub at P ...",
 * `ERR_TIMEOUT`) when it has not within `--timeout`.
 * @module
 */
import { connectBus } from '../bus/client.js'
import { DEFAULT_BUS_PATH_HELP } from '../bus/listen.js'
import { InvalidArgumentError } from '../errors.js'
import { parseCommand, positiveIntFlag } from './args.js'
import { busTarget, connectOrExplain, DEFAULT_CLI_TIMEOUT } from './bus-connect.js'

const HELP = `usage: rxnet emit <topic> <json> [--path P | --nats URL] [--timeout ms]

  <topic>        e.g. log.info (no wildcards)
  <json>         any JSON value: '{"line":"TESTE"}', 42, '"a string"'
  --path P       the hub's socket (default ${DEFAULT_BUS_PATH_HELP})
  --nats URL     the bus on NATS instead: nats://host:port, comma-separated for several
  --timeout ms   give up if the hub has not taken the message by then (default ${DEFAULT_CLI_TIMEOUT})`

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand({ name: 'emit', usage: HELP, options: { path: { type: 'string' }, nats: { type: 'string' }, timeout: { type: 'string' } }, positionals: ['<topic>', '<json>'] }, args)
  if (parsed === undefined) return 0 // --help was printed
  const { values, positionals } = parsed
  const [topic, text] = positionals as [string, string]
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch {
    throw new InvalidArgumentError(`<json> is not JSON: ${text} (quote strings: '"text"')`)
  }
  const timeout = positiveIntFlag('timeout', values.timeout, DEFAULT_CLI_TIMEOUT)
  const bus = connectBus(busTarget(values), { closeTimeout: 100 })
  try {
    bus.emit(topic, data)
  } catch (e) {
    await bus.close().catch(() => {})
    throw e
  }
  await connectOrExplain(bus, timeout)
  await bus.close()
  return 0
}
