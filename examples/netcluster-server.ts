// The netcluster "Local Server" snippet, in rxnet:
//
//   var netcluster = require('netcluster').pipedserver();
//   netcluster.initlocalserver('\\\\?\\pipe\\netcluster-default');
//   netcluster.connectudp(4454, '224.0.0.0');
//
// Run: npx tsx examples/netcluster-server.ts   (Ctrl-C to stop)
// Start it on several hosts (with `interface` set to each host's LAN address) and their buses join.
// Here the multicast interface is loopback, so nothing leaves this machine.
import os from 'node:os'
import { startHub } from 'rxnet'

const path = process.env.RXNET_BUS_PATH ?? (process.platform === 'win32' ? '\\\\?\\pipe\\netcluster-default' : `${os.tmpdir()}/netcluster-default.sock`)

const hub = await startHub({
  path, // a stale socket left by a crashed hub is replaced; a live one is refused (ERR_PATH_IN_USE)
  multicast: { group: '239.255.0.1', port: 4454, interface: '127.0.0.1' }, // 224.0.0.0 is reserved; use the 239/8 scope
})
console.log(`hub listening on ${path}, bridged over 239.255.0.1:4454 (loopback)`)

const stop = async (): Promise<void> => {
  process.off('SIGINT', stop)
  process.off('SIGTERM', stop)
  await hub.close() // closes clients, the multicast socket and removes the socket file: the process exits by itself
  console.log(`hub closed after ${hub.stats.published} messages`)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
