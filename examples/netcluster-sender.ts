// The netcluster "Sender" snippet, in rxnet:
//
//   var netcluster = require('netcluster').pipedclient();
//   netcluster.connect('\\\\?\\pipe\\netcluster-default', function () {
//     function loop() { netcluster.emit('log', 'TESTE'); setTimeout(loop, 1000); }
//     loop();
//   });
//
// Run: npx tsx examples/netcluster-sender.ts [count] [intervalMs]   (default: 5 messages, one a second)
import os from 'node:os'
import { interval, take } from 'rxjs'
import { connectBus } from 'rxnet'

const path = process.env.RXNET_BUS_PATH ?? (process.platform === 'win32' ? '\\\\?\\pipe\\netcluster-default' : `${os.tmpdir()}/netcluster-default.sock`)
const count = Number(process.argv[2] ?? 5)
const every = Number(process.argv[3] ?? 1000)

const bus = connectBus(path) // emits before the connection is up wait in a bounded buffer
interval(every)
  .pipe(take(count))
  .subscribe({
    next: () => bus.emit('log', 'TESTE'), // netcluster.emit('log', 'TESTE'): any JSON value works
    complete: () => void bus.close(), // waits for the hub to take what is still buffered, then disconnects
  })
