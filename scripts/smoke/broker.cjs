'use strict'
// The broker side of the cross-platform smoke test (scripts/smoke/run.mjs),
// run by the target's own Node.js (under qemu-user for arm). Loads the binary
// that NAPI_RS_NATIVE_LIBRARY_PATH names through the package's CommonJS
// entry, starts TCP and WebSocket listeners with a retained message in place,
// then obeys one-line commands on stdin and reports on stdout, one JSON
// object per line. Exits by itself after `stop`: a broker that kept a socket
// or thread alive would hold the process open, and the driver's timeout fails.
const { createInterface } = require('node:readline')
const { MqttServer, QoS } = require('../../binding.cjs')

const say = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`)

async function main() {
  const server = new MqttServer()
  const listeners = await server.start({
    listeners: [
      { port: 0, protocol: 'tcp', address: '127.0.0.1' },
      { port: 0, protocol: 'ws', address: '127.0.0.1' },
    ],
  })
  await server.publish('smoke/retained', 'kept by the broker', { qos: QoS.AtLeastOnce, retain: true })
  say({
    ready: true,
    arch: process.arch,
    node: process.version,
    ports: Object.fromEntries(listeners.map((l) => [l.protocol, l.port])),
  })

  const lines = createInterface({ input: process.stdin })
  for await (const line of lines) {
    if (line === 'publish') {
      await server.publish('smoke/server', 'from the broker', { qos: QoS.AtLeastOnce })
      say({ published: true })
    } else if (line === 'stop') {
      await server.stop()
      await server.close()
      say({ stopped: !server.running })
      lines.close()
    } else {
      throw new Error(`unknown command ${JSON.stringify(line)}`)
    }
  }
}

main().catch((error) => {
  say({ error: String(error?.stack ?? error) })
  process.exitCode = 1
})
