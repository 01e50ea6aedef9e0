// Sender side of the bus bench (forked, IPC used for control only in bus mode):
//   ipc:  on 'go', process.send()s N ~100 B JSON values to the parent (the cluster IPC baseline);
//   bus:  connects to the hub at PATH; on 'go', bus.emit()s N ~100 B JSON values.
import { connectBus } from 'rxnet'

const [mode, path] = process.argv.slice(2)
const N = Number(process.env.N)
const pad = 'x'.repeat(78) // {"i":123456,"pad":"xxx…"} is ~100 bytes of JSON
const send = process.send!.bind(process)

if (mode === 'ipc') {
  process.on('message', (m) => {
    if (m === 'go') for (let i = 0; i < N; i++) send({ i, pad })
    else if (m === 'stop') process.disconnect()
  })
  send('ready')
} else {
  const bus = connectBus(path!)
  await bus.flush()
  process.on('message', async (m) => {
    if (m === 'go') {
      try {
        for (let i = 0; i < N; i++) {
          bus.emit('bench.data', { i, pad })
          if (!bus.writable) await bus.whenWritable()
        }
      } catch (e) {
        console.error(`bus peer: ${(e as Error).message}`) // stopped mid-sample (the sample failed)
      }
    } else if (m === 'stop') {
      await bus.close()
      process.disconnect()
    }
  })
  send('ready')
}
