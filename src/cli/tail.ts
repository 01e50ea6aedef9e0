/**
 * `rxnet tail <topic> [--path P] [--count N] [--json] [--timeout ms]`: prints every message
 * matching a topic pattern (`log`, `log.*`, `log.>`) as `topic <json>` lines (with `--json`, one
 * JSON object per line: `{"topic","data","origin","seq"}`), until SIGINT / SIGTERM or N messages.
 * Fails (exit 1, `ERR_NO_HUB` saying how to start one) when no hub answers within `--timeout`;
 * once connected it rides out hub restarts, saying so on stderr.
 * @module
 */
import { connectBus } from '../bus/client.js'
import { DEFAULT_BUS_PATH_HELP } from '../bus/listen.js'
import { compileTopic } from '../bus/topics.js'
import { parseCommand, positiveIntFlag, printJson } from './args.js'
import { busTarget, connectOrExplain, DEFAULT_CLI_TIMEOUT } from './bus-connect.js'

const HELP = `usage: rxnet tail <topic> [--path P | --nats URL] [--count N] [--json] [--timeout ms]

  <topic>       topic or pattern: log, log.*, log.> (quote it in the shell)
  --path P      the hub's socket (default ${DEFAULT_BUS_PATH_HELP})
  --nats URL    the bus on NATS instead: nats://host:port, comma-separated for several
  --count N     exit after N messages
  --json        one JSON object per line: {"topic","data","origin","seq"}
  --timeout ms  fail if no hub answers by then (default ${DEFAULT_CLI_TIMEOUT})`

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(
    { name: 'tail', usage: HELP, options: { path: { type: 'string' }, nats: { type: 'string' }, count: { type: 'string' }, json: { type: 'boolean' }, timeout: { type: 'string' } }, positionals: ['<topic>'] },
    args,
  )
  if (parsed === undefined) return 0 // --help was printed
  const { values, positionals } = parsed
  const pattern = positionals[0]!
  compileTopic(pattern) // a bad pattern fails here with ERR_INVALID_ARGUMENT
  const count = positiveIntFlag('count', values.count, Infinity)
  const timeout = positiveIntFlag('timeout', values.timeout, DEFAULT_CLI_TIMEOUT)
  const path = busTarget(values)
  const bus = connectBus(path, { closeTimeout: 100 })
  let n = 0
  let stop = (): void => {}
  const done = new Promise<void>((resolve, reject) => {
    const sub = bus.envelopes$(pattern).subscribe({
      next: (m) => {
        if (values.json) printJson({ topic: m.topic, data: m.data, origin: m.origin, seq: m.seq })
        else process.stdout.write(`${m.topic} ${JSON.stringify(m.data)}\n`)
        if (++n >= count) stop()
      },
      error: reject,
    })
    stop = (): void => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      sub.unsubscribe()
      resolve()
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
  try {
    await connectOrExplain(bus, timeout) // the interest is registered once this resolves
  } catch (e) {
    stop()
    done.catch(() => {})
    throw e
  }
  // Tell whoever waits for us that the interest is registered.
  process.stderr.write(`tailing ${pattern}\n`)
  let connected = true
  const status = bus.status$.subscribe((s) => {
    if (s.type === 'disconnected' && connected) process.stderr.write(`hub at ${path} gone (${s.error?.code ?? 'closed'}); reconnecting\n`)
    if (s.type === 'connected' && !connected) process.stderr.write(`reconnected to ${path}\n`)
    if (s.type === 'disconnected' || s.type === 'connected') connected = s.type === 'connected'
  })
  await done
  status.unsubscribe()
  await bus.close()
  return 0
}
