/**
 * `rxnet tail <topic> [--path P] [--count N] [--json]`: prints every message matching a topic pattern
 * (`log`, `log.*`, `log.>`) as `topic <json>` lines (with `--json`, one JSON object per line:
 * `{"topic","data","origin","seq"}`), until SIGINT / SIGTERM or N messages.
 * @module
 */
import { connectBus } from '../bus/client.js'
import { defaultBusPath } from '../bus/listen.js'
import { compileTopic } from '../bus/topics.js'
import { parseCommand, positiveIntFlag, printJson } from './args.js'

const HELP = `usage: rxnet tail <topic> [--path P] [--count N] [--json]

  <topic>    topic or pattern: log, log.*, log.> (quote it in the shell)
  --path P   the hub's socket (default ${defaultBusPath()})
  --count N  exit after N messages
  --json     one JSON object per line: {"topic","data","origin","seq"}`

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(
    { name: 'tail', usage: HELP, options: { path: { type: 'string' }, count: { type: 'string' }, json: { type: 'boolean' } }, positionals: ['<topic>'] },
    args,
  )
  if (parsed === undefined) return 0
  const { values, positionals } = parsed
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
        if (values.json) printJson({ topic: m.topic, data: m.data, origin: m.origin, seq: m.seq })
        else process.stdout.write(`${m.topic} ${JSON.stringify(m.data)}\n`)
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
