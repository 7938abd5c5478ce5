// What `storage: { path }` costs and gives back: retained messages written
// through server.publish() per second, store size on disk, and restart time
// (start() until every listener is bound, then until a `#` subscriber has
// every retained message back), with the broker's RSS around it.
//
//   node bench/persistence.mjs [--retained N] [--payload BYTES] [--smoke] [--out FILE]
//
// --smoke: 1,000 messages, for CI-style checks that the script runs.
// The addon: a release build of the sources (--no-build: the existing one;
// --addon FILE: that one), as for the other benches.
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { du } from './lib/disk.mjs'
import { addonSetup } from './lib/setup.mjs'
import { printFigures } from './lib/table.mjs'

const { opt, MqttServer } = addonSetup({
  retained: { type: 'string', default: '100000' },
  payload: { type: 'string', default: '64' },
  smoke: { type: 'boolean', default: false },
})
const mqtt = createRequire(import.meta.url)('mqtt')
const count = opt.smoke ? 1000 : Number(opt.retained)
const payload = Buffer.alloc(Number(opt.payload), 'x')

const rssMiB = () => (process.memoryUsage().rss / 2 ** 20).toFixed(0)
const dir = mkdtempSync(join(tmpdir(), 'mqtt-bench-store-'))
const config = { listeners: [{ address: '127.0.0.1', port: 0, protocol: 'tcp' }], storage: { path: dir } }
const rows = []
try {
  const server = new MqttServer()
  await server.start(config)
  const rssBefore = rssMiB()
  let began = performance.now()
  // In batches, so the publisher's queue stays short.
  for (let i = 0; i < count; i += 1000) {
    const batch = []
    for (let j = i; j < Math.min(count, i + 1000); j++) {
      batch.push(server.publish(`bench/retained/${j}`, payload, { qos: 1, retain: true }))
    }
    await Promise.all(batch)
  }
  const writeS = (performance.now() - began) / 1000
  rows.push(['retained publishes', `${count} in ${writeS.toFixed(2)} s (${Math.round(count / writeS)} msgs/s)`])
  rows.push(['RSS before / after publishing', `${rssBefore} / ${rssMiB()} MiB`])
  await server.stop()
  rows.push(['store on disk after stop()', `${(du(dir) / 2 ** 20).toFixed(1)} MiB`])

  began = performance.now()
  const [l] = await server.start(config)
  const boundMs = performance.now() - began
  rows.push(['restart: start() until listeners bound', `${boundMs.toFixed(0)} ms`])
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${l.port}`, { reconnectPeriod: 0 })
  let got = 0
  const all = new Promise((res) =>
    client.on('message', () => {
      if (++got === count) res()
    }),
  )
  await client.subscribeAsync('bench/retained/#', { qos: 0 })
  await Promise.race([all, new Promise((r) => setTimeout(r, 120_000))])
  rows.push([
    'restart: until a subscriber has every retained message',
    `${(performance.now() - began).toFixed(0)} ms (${got} of ${count})`,
  ])
  rows.push(['RSS after restart', `${rssMiB()} MiB`])
  await client.endAsync()
  await server.close()
  if (got !== count) process.exitCode = 1
} finally {
  rmSync(dir, { recursive: true, force: true })
}

printFigures(`Persistence: retained messages (${count} x ${payload.length} B, sled)`, rows, opt.out)
