// How long `start()` takes on a full store (`storage: { path }`): issue 33's
// case, 100,000 retained messages and 10,000 persistent sessions holding 100
// queued QoS 1 messages each (1,000,000), all 64 B. Builds the store (or
// reuses --store DIR when it holds one), then restarts the broker --restarts
// times: start() until every listener is bound, RSS after, and the stop()
// before the next. Then, once: a
// sample of --check sessions reconnects and must get its queue whole and in
// order, and a `#` subscriber must get every retained message. With
// --restarts 0, only builds the store (to copy and reuse with --store).
// --redis: the store is a redis-server of the bench's own (memory only),
// built every run.
//
//   npm run bench:restart [-- --retained N] [--sessions N] [--queued N] [--store DIR]
//                         [--restarts N] [--check N] [--redis] [--smoke] [--no-build | --addon FILE] [--out FILE]
//
// --smoke: 1,000 retained, 100 sessions x 10, to check that the script runs.
// Building the full store takes a few minutes (the 1,000,000 writes).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { du } from './lib/disk.mjs'
import { rssBytes } from './lib/proc.mjs'
import { startRedis } from './lib/redis.mjs'
import { addonSetup } from './lib/setup.mjs'
import { printFigures } from './lib/table.mjs'

const { opt, addon, MqttServer } = addonSetup({
  retained: { type: 'string', default: '100000' },
  sessions: { type: 'string', default: '10000' },
  queued: { type: 'string', default: '100' },
  payload: { type: 'string', default: '64' },
  store: { type: 'string' },
  restarts: { type: 'string', default: '3' },
  check: { type: 'string', default: '100' },
  smoke: { type: 'boolean', default: false },
  redis: { type: 'boolean', default: false },
})
const mqtt = createRequire(import.meta.url)('mqtt')
const retained = opt.smoke ? 1000 : Number(opt.retained)
const sessions = opt.smoke ? 100 : Number(opt.sessions)
const queued = opt.smoke ? 10 : Number(opt.queued)
const payloadBytes = Number(opt.payload)
const check = Math.min(sessions, Number(opt.check))

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`
const rss = () => mib(process.memoryUsage().rss)
const log = (what) => process.stderr.write(`${new Date().toISOString()} ${what}\n`)
const redis = opt.redis ? await startRedis() : undefined
const dir = opt.store ?? mkdtempSync(join(tmpdir(), 'mqtt-bench-restart-'))
// Queues deep enough for every message: none dropped by the queue's limit.
const config = {
  listeners: [{ address: '127.0.0.1', port: 0, protocol: 'tcp', maxMqueueLen: queued + 10 }],
  storage: redis ? { redis: redis.url } : { path: dir },
}
/** What the store holds, on disk or in Redis's memory. */
const stored = () => (redis ? `${mib(rssBytes(redis.pid))} redis-server RSS` : `${mib(du(dir))} on disk`)
const id = (i) => `bench-restart-${i}`
const session = (clientId) => ({ clientId, clean: false, protocolVersion: 4, reconnectPeriod: 0 })
/** A 64 B (--payload) message carrying its sequence number. */
const message = (n) => {
  const b = Buffer.alloc(payloadBytes, 'x')
  b.writeUInt32BE(n)
  return b
}
const rows = []
class BuildOnly extends Error {}

/** Runs `f(i)` for 0..n-1, `width` at a time. */
async function pool(n, width, f) {
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await f(next++)
    }),
  )
}

async function build() {
  mkdirSync(dir, { recursive: true })
  const server = new MqttServer()
  const [l] = await server.start(config)
  let began = performance.now()
  for (let i = 0; i < retained; i += 1000) {
    const batch = []
    for (let j = i; j < Math.min(retained, i + 1000); j++) {
      batch.push(server.publish(`bench/retained/${j}`, message(j), { qos: 1, retain: true }))
    }
    await Promise.all(batch)
  }
  log(`${retained} retained in ${((performance.now() - began) / 1000).toFixed(1)} s`)
  began = performance.now()
  await pool(sessions, 50, async (i) => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${l.port}`, session(id(i)))
    await c.subscribeAsync('bench/queue', { qos: 1 })
    await c.endAsync()
  })
  log(`${sessions} sessions in ${((performance.now() - began) / 1000).toFixed(1)} s`)
  began = performance.now()
  for (let n = 0; n < queued; n++) await server.publish('bench/queue', message(n), { qos: 1 })
  // Offline sessions write what they are routed in the background; stop()
  // waits for it, bounded by the drain timeout plus 3 s.
  await server.stop({ drainTimeoutMs: 3_600_000 })
  const s = (performance.now() - began) / 1000
  rows.push([
    'store built',
    `${retained} retained, ${sessions} x ${queued} queued in ${s.toFixed(1)} s (${Math.round((sessions * queued) / s)} stored msgs/s), ${stored()}`,
  ])
}

/** Connects the first `check` sessions; resolves with how many got their queue whole and in order. */
async function readBack(port) {
  let whole = 0
  await pool(check, 20, async (i) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, session(id(i)))
    let n = 0
    let inOrder = true
    await new Promise((res) => {
      const t = setTimeout(res, 120_000)
      c.on('message', (_t, p) => {
        inOrder &&= p.readUInt32BE(0) === n
        if (++n === queued) {
          clearTimeout(t)
          res()
        }
      })
    })
    await c.endAsync()
    if (inOrder && n === queued) whole++
  })
  return whole
}

try {
  if (redis || !existsSync(join(dir, 'FORMAT'))) await build()
  else rows.push(['store', `reused ${dir} (${mib(du(dir))})`])
  // --restarts 0: only build the store (to copy and reuse with --store).
  const server = new MqttServer()
  const bound = []
  const stops = []
  let l
  if (Number(opt.restarts) === 0) throw new BuildOnly()
  for (let r = 0; r < Number(opt.restarts); r++) {
    const began = performance.now()
    ;[l] = await server.start(config)
    bound.push(performance.now() - began)
    log(`start() until listeners bound: ${bound.at(-1).toFixed(0)} ms, RSS ${rss()}`)
    if (r + 1 < Number(opt.restarts)) {
      const t = performance.now()
      await server.stop()
      stops.push(performance.now() - t)
    }
  }
  const ms = (list) => list.map((b) => `${b.toFixed(0)} ms`).join(', ')
  rows.push(['restart: start() until listeners bound', ms(bound)])
  if (stops.length) rows.push(['stop() between them', ms(stops)])
  rows.push(['RSS after start()', rss()])
  const began = performance.now()
  const whole = await readBack(l.port)
  rows.push([
    `${check} sessions reconnect`,
    `${whole} of ${check} got their ${queued} messages whole and in order, ${(performance.now() - began).toFixed(0)} ms`,
  ])
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${l.port}`, { reconnectPeriod: 0 })
  let got = 0
  const all = new Promise((res) => c.on('message', () => ++got === retained && res()))
  const t = performance.now()
  await c.subscribeAsync('bench/retained/#', { qos: 0 })
  await Promise.race([all, new Promise((r) => setTimeout(r, 120_000))])
  rows.push([
    'a `#` subscriber gets every retained message',
    `${got} of ${retained} in ${(performance.now() - t).toFixed(0)} ms`,
  ])
  await c.endAsync()
  // The sampled sessions consumed their queues: the store is not reusable.
  await server.close()
  if (whole !== check || got !== retained) process.exitCode = 1
} catch (e) {
  if (!(e instanceof BuildOnly)) throw e
} finally {
  if (redis || !opt.store || process.exitCode) rmSync(dir, { recursive: true, force: true })
}

printFigures(
  `Restart: ${retained} retained, ${sessions} sessions x ${queued} queued (${payloadBytes} B, ${redis ? 'Redis' : 'sled'})`,
  rows,
  opt.out,
  [`Addon: ${addon.how}.`],
)
process.exit()
