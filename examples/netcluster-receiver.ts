// The netcluster "Receiver" snippet, in rxnet:
//
//   var netcluster = require('netcluster').pipedclient();
//   netcluster.connect('\\\\?\\pipe\\netcluster-default', function () {
//     netcluster.on('log', function (msg) { console.log('A called:' + JSON.stringify(msg)); });
//   });
//
// Run: npx tsx examples/netcluster-receiver.ts [count]   (exits after `count` messages, default 5, or on Ctrl-C)
import os from 'node:os'
import { take } from 'rxjs'
import { connectBus } from 'rxnet'

const path = process.env.RXNET_BUS_PATH ?? (process.platform === 'win32' ? '\\\\?\\pipe\\netcluster-default' : `${os.tmpdir()}/netcluster-default.sock`)
const count = Number(process.argv[2] ?? 5)

const bus = connectBus(path) // no callback: it connects (and reconnects) by itself
const subscription = bus
  .messages$('log') // netcluster.on('log', cb); unsubscribe() is removeListener
  .pipe(take(count)) // take(1) would be netcluster.once
  .subscribe({
    next: (msg) => console.log('A called:' + JSON.stringify(msg)),
    complete: () => void bus.close(), // netcluster.disconnect()
  })
await bus.flush() // the hub now knows we want 'log'
console.log('receiver ready')

process.once('SIGINT', () => {
  subscription.unsubscribe()
  void bus.close()
})
