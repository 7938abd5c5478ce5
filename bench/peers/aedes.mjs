// Peer: aedes (the reference Node.js MQTT broker) on a plain `net` server in
// a Node process of its own, with aedes' default options.
//
//   node bench/peers/aedes.mjs --port 1883 [--host 127.0.0.1] [--sink subscribe]
//
// Prints `READY <port>` once listening.
import { writeSync } from 'node:fs'
import net from 'node:net'
import { parseArgs } from 'node:util'
import { Aedes } from 'aedes'
import { sink as makeSink } from '../lib/sink.mjs'

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string', default: '1883' },
    host: { type: 'string', default: '127.0.0.1' },
    // subscribe: count every message in `broker.subscribe('#')`; printed as
    // a `SINK {json}` line at SIGTERM (bench/subscribe.mjs)
    sink: { type: 'string' },
  },
})

const broker = await Aedes.createBroker()
const server = net.createServer(broker.handle)
// Connection errors (clients vanishing at the end of a run) are expected.
broker.on('clientError', () => {})
broker.on('connectionError', () => {})
const sink = makeSink()
if (opt.sink === 'subscribe') {
  await new Promise((resolve) =>
    broker.subscribe(
      '#',
      (_packet, done) => {
        sink.count()
        done()
      },
      resolve,
    ),
  )
} else if (opt.sink !== undefined) throw new Error('--sink: subscribe')
server.listen(Number(opt.port), opt.host, () => {
  writeSync(1, `READY ${server.address().port}\n`)
})

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    if (opt.sink) sink.report()
    server.close()
    broker.close(() => process.exit(0))
  })
}
