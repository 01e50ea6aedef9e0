// Forked helper of the NATS bench (IPC for control only):
//   hub PATH:          runs a hub on PATH (the local bus with its hub in its own process);
//   raw URL:           on 'go', publishes N ~100 B JSON values with plain nats.js;
//   rawjs URL:         on 'go', publishes N of them with plain nats.js JetStream (js.publish, acks awaited
//                      per window of JS_WINDOW) on $TOPIC (the JetStream baseline);
//   bus TARGET [json]: on 'go', bus.emit()s N ~100 B JSON values (TARGET: hub path or nats:// URL;
//                      with a JSON options argument, e.g. durable topics).
import { connect } from '@nats-io/transport-node'
import { connectBus, startHub } from 'rxnet'

const [mode, target, extra] = process.argv.slice(2)
const N = Number(process.env.N)
const pad = 'x'.repeat(78) // {"i":123456,"pad":"xxx…"} is ~100 bytes of JSON
const send = process.send!.bind(process)
// The durable case publishes apart from the others (its stream must not store their messages).
const topic = process.env.TOPIC ?? 'bench.data'

if (mode === 'hub') {
  const hub = await startHub({ path: target! })
  process.on('message', async (m) => {
    if (m === 'stop') {
      await hub.close()
      process.disconnect()
    }
  })
  send('ready')
} else if (mode === 'raw') {
  const nc = await connect({ servers: target! })
  process.on('message', async (m) => {
    if (m === 'go') {
      for (let i = 0; i < N; i++) {
        nc.publish('bench.data', JSON.stringify({ i, pad }))
        // The same flow control as the bus sender: at most ~4 MB in flight to the server.
        if (i % 20_000 === 19_999) await nc.flush()
      }
    } else if (m === 'stop') {
      await nc.close()
      process.disconnect()
    }
  })
  send('ready')
} else if (mode === 'rawjs') {
  const { jetstream } = await import('@nats-io/jetstream')
  const nc = await connect({ servers: target! })
  const js = jetstream(nc)
  // Acks in flight per window: about what the bus's outbox holds before whenWritable() waits.
  const JS_WINDOW = 10_000
  process.on('message', async (m) => {
    if (m === 'go') {
      try {
        for (let i = 0; i < N; i += JS_WINDOW) {
          const acks = []
          for (let j = i; j < Math.min(N, i + JS_WINDOW); j++) acks.push(js.publish(topic, JSON.stringify({ i: j, pad })))
          await Promise.all(acks)
        }
      } catch (e) {
        console.error(`rawjs peer: ${(e as Error).message}`)
      }
    } else if (m === 'stop') {
      await nc.close()
      process.disconnect()
    }
  })
  send('ready')
} else {
  const bus = connectBus(target!, extra === undefined ? {} : JSON.parse(extra))
  await bus.flush()
  process.on('message', async (m) => {
    if (m === 'go') {
      try {
        for (let i = 0; i < N; i++) {
          bus.emit(topic, { i, pad })
          if (!bus.writable) await bus.whenWritable()
        }
      } catch (e) {
        console.error(`bus peer: ${(e as Error).message}`)
      }
    } else if (m === 'stop') {
      await bus.close()
      process.disconnect()
    }
  })
  send('ready')
}
