// Peer: aedes (the reference Node.js MQTT broker) on a plain `net` server in
// a Node process of its own, with aedes' default options.
//
//   node bench/peers/aedes.mjs --port 1883 [--host 127.0.0.1]
//
// Prints `READY <port>` once listening.
import { writeSync } from 'node:fs'
import net from 'node:net'
import { parseArgs } from 'node:util'
import { Aedes } from 'aedes'

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string', default: '1883' },
    host: { type: 'string', default: '127.0.0.1' },
  },
})

const broker = await Aedes.createBroker()
const server = net.createServer(broker.handle)
// Connection errors (clients vanishing at the end of a run) are expected.
broker.on('clientError', () => {})
broker.on('connectionError', () => {})
server.listen(Number(opt.port), opt.host, () => {
  writeSync(1, `READY ${server.address().port}\n`)
})

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close()
    broker.close(() => process.exit(0))
  })
}
