/**
 * `rxnet hub --path P [--multicast group:port] [--interface A] [--secret-file F]`: runs a bus hub
 * until SIGINT / SIGTERM. With `--multicast`, bridges to the hubs of other hosts; the interface
 * defaults to loopback (127.0.0.1), so nothing leaves the machine unless you name an interface.
 * With `--nats URL`, bridges through NATS servers (see README "Scaling out").
 * @module
 */
import { startHub } from '../bus/hub.js'
import { DEFAULT_BUS_PATH_HELP, defaultBusPath } from '../bus/listen.js'
import { InvalidArgumentError } from '../errors.js'
import { isNatsUrl } from '../bus/nats/options.js'
import type { MulticastOptions } from '../multicast/index.js'
import { parseCommand, readSecret, SECRET_ENV, SECRET_ON_COMMAND_LINE, untilSignal } from './args.js'

const HELP = `usage: rxnet hub [--path P] [--multicast group:port] [--interface A] [--secret-file F] [--nats URL]

  --path P              Unix socket or \\\\?\\pipe\\name to listen on (default ${DEFAULT_BUS_PATH_HELP})
  --multicast group:port  bridge to other hosts' hubs over this multicast group
  --interface A         IPv4 address of the interface for multicast (default 127.0.0.1: this host only)
  --secret-file F       file holding the shared secret that seals bridge datagrams (AES-256-GCM);
                        or set ${SECRET_ENV}
  --nats URL            bridge through NATS: nats://host:port, comma-separated for several
                        (with or without --multicast)`

/** Parses `group:port` into multicast options. */
export function parseGroup(spec: string): { group: string; port: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(spec)
  const port = m ? Number(m[2]) : NaN
  if (!m || port < 1 || port > 65535) throw new InvalidArgumentError(`--multicast wants group:port (e.g. 239.255.0.1:4454), got "${spec}"`)
  return { group: m[1]!, port }
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(
    {
      name: 'hub',
      usage: HELP,
      options: { path: { type: 'string' }, multicast: { type: 'string' }, interface: { type: 'string' }, 'secret-file': { type: 'string' }, nats: { type: 'string' } },
      refused: { secret: SECRET_ON_COMMAND_LINE },
    },
    args,
  )
  if (parsed === undefined) return 0
  const { values } = parsed
  let multicast: MulticastOptions | undefined
  if (values.multicast !== undefined) {
    multicast = { ...parseGroup(values.multicast), interface: values.interface ?? '127.0.0.1' }
    const secret = readSecret(values['secret-file'])
    if (secret !== undefined) multicast.secret = secret
  } else if (values.interface !== undefined || values['secret-file'] !== undefined) {
    throw new InvalidArgumentError('--interface and --secret-file need --multicast')
  }
  const path = values.path ?? defaultBusPath()
  const nats = values.nats
  if (nats !== undefined && !isNatsUrl(nats)) throw new InvalidArgumentError(`--nats wants nats://host:port (comma-separated for several), got "${nats}"`)
  if (multicast !== undefined && multicast.secret === undefined) console.error(`warning: bridging without --secret-file (or ${SECRET_ENV}): the group is unsealed, so every process that can reach ${multicast.group}:${multicast.port} on ${multicast.interface} can read every message and inject its own`)
  // Listening for the stop signals before saying 'listening': whoever waits for that line may stop us at once.
  const stopped = untilSignal()
  const hub = await startHub({ path, ...(multicast ? { multicast } : {}), ...(nats !== undefined ? { nats: { servers: nats } } : {}) })
  const events = hub.events$.subscribe((e) => {
    if (e.type === 'drop') console.error(`dropped ${e.client ?? '(before HELLO)'}: ${e.error.code} ${e.error.message}`)
    else if (e.type === 'bridge-error') console.error(`bridge failed: ${String((e.error as Error)?.message ?? e.error)}`)
    else if (e.type === 'server-error') console.error(`server error: ${String((e.error as Error)?.message ?? e.error)}`)
    else if (e.type === 'refuse') console.error(`refused a connection: ${e.error.code} ${e.error.message}`)
    else if (e.type === 'lost') console.error(`lost ${e.count} messages from ${e.origin} for ${e.client} (it did not come back after the crash in time)`)
    else console.error(`${e.type} ${e.client}`)
  })
  console.log(`hub ${hub.id} listening on ${path}${multicast ? `, bridged over ${multicast.group}:${multicast.port} on ${multicast.interface}` : ''}${nats !== undefined ? `, bridged through NATS ${nats}` : ''}`)
  await stopped
  events.unsubscribe()
  await hub.close()
  console.error(`hub closed: ${JSON.stringify(hub.stats)}`)
  return 0
}
