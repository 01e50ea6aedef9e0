/**
 * `rxnet tail <topic> [--path P] [--count N]`: prints every message matching a topic pattern
 * (`log`, `log.*`, `log.>`) as `topic <json>` lines, until SIGINT / SIGTERM or N messages.
 * @module
 */
import { parseArgs } from 'node:util'
import { connectBus } from '../bus/client.js'
import { defaultBusPath } from '../bus/listen.js'
import { compileTopic } from '../bus/topics.js'
import { positiveIntFlag } from './args.js'

const HELP = `usage: rxnet tail <topic> [--path P] [--count N]

  <topic>    topic or pattern: log, log.*, log.> (quote it in the shell)
  --path P   the hub's socket (default ${defaultBusPath()})
  --count N  exit after N messages`

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { path: { type: 'string' }, count: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  })
  if (values.help) {
    console.log(HELP)
    return 0
  }
  if (positionals.length !== 1) {
    console.error(HELP)
    return 2
  }
  const pattern = positionals[0]!
  compileTopic(pattern) // a bad pattern fails here with ERR_INVALID_ARGUMENT
  const count = positiveIntFlag('count', values.count, Infinity)
  const bus = connectBus(values.path ?? defaultBusPath())
  let n = 0
  await new Promise<void>((resolve, reject) => {
    const stop = (): void => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      sub.unsubscribe()
      resolve()
    }
    const sub = bus.envelopes$(pattern).subscribe({
      next: (m) => {
        process.stdout.write(`${m.topic} ${JSON.stringify(m.data)}\n`)
        if (++n >= count) stop()
      },
      error: reject,
    })
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
    // Tell whoever waits for us that the interest is registered.
    bus.flush().then(() => process.stderr.write(`tailing ${pattern}\n`), () => {})
  })
  await bus.close()
  return 0
}
