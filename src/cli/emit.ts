/**
 * `rxnet emit <topic> <json> [--path P]`: publishes one JSON value on the bus and exits once the
 * hub has taken it.
 * @module
 */
import { connectBus } from '../bus/client.js'
import { defaultBusPath } from '../bus/listen.js'
import { InvalidArgumentError } from '../errors.js'
import { parseCommand, positiveIntFlag } from './args.js'

const HELP = `usage: rxnet emit <topic> <json> [--path P] [--timeout ms]

  <topic>        e.g. log.info (no wildcards)
  <json>         any JSON value: '{"line":"TESTE"}', 42, '"a string"'
  --path P       the hub's socket (default ${defaultBusPath()})
  --timeout ms   give up if the hub has not taken the message by then (default 5000)`

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(
    { name: 'emit', usage: HELP, options: { path: { type: 'string' }, timeout: { type: 'string' } }, positionals: ['<topic>', '<json>'] },
    args,
  )
  if (parsed === undefined) return 0
  const { values, positionals } = parsed
  const [topic, text] = positionals as [string, string]
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch {
    throw new InvalidArgumentError(`<json> is not JSON: ${text} (quote strings: '"text"')`)
  }
  const timeout = positiveIntFlag('timeout', values.timeout, 5000)
  const bus = connectBus(values.path ?? defaultBusPath())
  try {
    bus.emit(topic, data)
    await bus.flush({ timeout })
  } finally {
    await bus.close()
  }
  return 0
}
