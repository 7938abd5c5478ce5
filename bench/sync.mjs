// What `storage.sync: 'always'` costs a publisher: one MQTT client
// publishing MESSAGES QoS 1 messages (WINDOW awaiting their PUBACK at once)
// to one subscriber, p2p, acknowledged messages/s, for each storage setting
// (none, 'interval', 'always') and each subscriber: a persistent session
// offline (its messages are stored: the case 'always' holds the PUBACK
// for), a persistent one online, a clean one online (nothing persistent:
// 'always' must cost nothing). --redis adds a column: the sessions stored in
// a redis-server of the bench's own (Redis has no `sync` setting).
//
//   node bench/sync.mjs [--messages N] [--window N] [--payload BYTES] [--redis] [--smoke] [--out FILE]
//
// --smoke: 2,000 messages per case. Default 20,000. Uses the addon built in
// the repository root (npm run build first).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { startRedis } from './lib/redis.mjs'

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..')
const require = createRequire(import.meta.url)
const { MqttServer } = require(join(root, 'index.js'))
const mqtt = require('mqtt')

const { values: opt } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    window: { type: 'string', default: '32' },
    payload: { type: 'string', default: '64' },
    smoke: { type: 'boolean', default: false },
    redis: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
})
const total = opt.smoke ? 2_000 : Number(opt.messages)
const window = Number(opt.window)
const payload = Buffer.alloc(Number(opt.payload), 'x')
const redis = opt.redis ? await startRedis() : undefined
let redisRuns = 0

/** Publishes `total` QoS 1 messages, `window` at a time; acknowledged messages/s. */
async function flood(url) {
  const pub = await mqtt.connectAsync(url, { reconnectPeriod: 0 })
  const began = performance.now()
  const pending = new Set()
  for (let i = 0; i < total; i++) {
    const p = pub.publishAsync('bench/sync', payload, { qos: 1 }).finally(() => pending.delete(p))
    pending.add(p)
    if (pending.size >= window) await Promise.race(pending)
  }
  await Promise.all(pending)
  const rate = total / ((performance.now() - began) / 1000)
  await pub.endAsync()
  return rate
}

async function run(storage, subscriber) {
  const dir = mkdtempSync(join(tmpdir(), 'mqtt-bench-sync-'))
  const server = new MqttServer()
  const config = {
    listeners: [{ address: '127.0.0.1', port: 0, protocol: 'tcp', maxMqueueLen: total + 10 }],
    ...(storage === 'none'
      ? {}
      : storage === 'redis'
        ? { storage: { redis: redis.url, keyPrefix: `bench-sync-${++redisRuns}` } }
        : { storage: { path: dir, sync: storage } }),
  }
  try {
    const [l] = await server.start(config)
    const url = `mqtt://127.0.0.1:${l.port}`
    const persistent = subscriber !== 'clean, online'
    const sub = await mqtt.connectAsync(url, { clientId: 'bench-sync-sub', clean: !persistent, reconnectPeriod: 0 })
    await sub.subscribeAsync('bench/sync', { qos: 1 })
    if (subscriber === 'persistent, offline') await sub.endAsync()
    const rate = await flood(url)
    if (subscriber !== 'persistent, offline') await sub.endAsync()
    return rate
  } finally {
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const rows = []
for (const subscriber of ['persistent, offline', 'persistent, online', 'clean, online']) {
  for (const storage of ['none', 'interval', 'always', ...(redis ? ['redis'] : [])]) {
    const rate = await run(storage, subscriber)
    rows.push([subscriber, storage, Math.round(rate)])
    process.stderr.write(`${subscriber} / ${storage}: ${Math.round(rate)} msgs/s\n`)
  }
}

const text = [
  `# storage.sync: p2p QoS 1, ${total} x ${payload.length} B, ${window} awaiting PUBACK`,
  '',
  '| subscriber | storage.sync | acknowledged msgs/s |',
  '| --- | --- | --- |',
  ...rows.map(([s, k, v]) => `| ${s} | ${k} | ${v.toLocaleString('en-US')} |`),
  '',
].join('\n')
process.stdout.write(text)
if (opt.out) writeFileSync(opt.out, text)
process.exit()
