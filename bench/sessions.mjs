// What persistent sessions on disk (`storage: { path }`) cost and give back,
// and whether the store stays bounded: MESSAGES QoS 1 messages routed to
// SESSIONS offline persistent sessions (each gets MESSAGES / SESSIONS), then
// a restart (start() until listeners bound, then until every session has
// read everything back), then the sessions consume it all. Store size on
// disk and the process's RSS before, with everything queued, after the
// restart, and after consumption (and again after stop(): what sled keeps),
// --cycles times (a later cycle ending where the first did: the space is
// reused, the store is bounded).
//
//   npm run bench:sessions [-- --messages N] [--sessions N] [--payload BYTES] [--cycles N] [--smoke]
//                          [--redis URL] [--no-build | --addon FILE] [--out FILE]
//
// --redis URL: the store in that Redis (storage: { redis }, a key prefix of
// its own) instead of sled in a temporary directory; "on disk" is then
// Redis's used_memory (redis-cli INFO).
// --smoke: 10,000 messages, to check that the script runs. Defaults:
// 1,000,000 messages through 10 sessions (the bounded-growth case).
// The addon: a release build of the sources (--no-build: the existing one;
// --addon FILE: that one), as for the other benches.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { du } from './lib/disk.mjs'
import { addonSetup } from './lib/setup.mjs'
import { printFigures } from './lib/table.mjs'

const { opt, MqttServer } = addonSetup({
  messages: { type: 'string', default: '1000000' },
  sessions: { type: 'string', default: '10' },
  payload: { type: 'string', default: '64' },
  cycles: { type: 'string', default: '2' },
  redis: { type: 'string' },
  smoke: { type: 'boolean', default: false },
})
const mqtt = createRequire(import.meta.url)('mqtt')
const sessions = Number(opt.sessions)
const total = opt.smoke ? 10_000 : Number(opt.messages)
/** Each message published reaches every session. */
const published = Math.ceil(total / sessions)
const payload = Buffer.alloc(Number(opt.payload), 'x')

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`
const rss = () => process.memoryUsage().rss
const dir = mkdtempSync(join(tmpdir(), 'mqtt-bench-sessions-'))
// Queues deep enough for every message: none dropped by the queue's limit.
const listener = { address: '127.0.0.1', port: 0, protocol: 'tcp', maxMqueueLen: published + 10 }
const storage = opt.redis ? { redis: opt.redis, keyPrefix: `bench-sessions-${process.pid}` } : { path: dir }
const config = { listeners: [listener], storage }
const engine = opt.redis ? 'Redis' : 'sled'
/** Bytes the store takes: the directory, or Redis's used_memory. */
const stored = () => {
  if (!opt.redis) return du(dir)
  const info = spawnSync('redis-cli', ['-u', opt.redis, 'INFO', 'memory'], { encoding: 'utf8' }).stdout
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? Number.NaN)
}
const ids = Array.from({ length: sessions }, (_, i) => `bench-session-${i}`)
const session = (clientId) => ({ clientId, clean: false, protocolVersion: 4, reconnectPeriod: 0 })
const rows = []
const point = (what) => {
  rows.push([what, `${mib(stored())} ${opt.redis ? 'in Redis' : 'on disk'}, RSS ${mib(rss())}`])
  process.stderr.write(`${new Date().toISOString()} ${what}: ${rows.at(-1)[1]}\n`)
}

/**
 * start(), tried again for up to a minute while the store is still held by
 * the previous run (seen after a stop() that followed the consumption of
 * 1,000,000 messages: sled's threads outlived it); the wait is a figure.
 */
async function restart(server, what) {
  const began = performance.now()
  for (;;) {
    try {
      const ls = await server.start(config)
      const waited = performance.now() - began
      if (waited > 1000) rows.push([`${what}: start() refused (store still held) for`, `${waited.toFixed(0)} ms`])
      return ls
    } catch (e) {
      if (performance.now() - began > 60_000) throw e
      process.stderr.write(`${what}: start() refused, trying again: ${e.message}\n`)
      await new Promise((r) => setTimeout(r, 500))
    }
  }
}

/** Connects every session and resolves once each has `perSession` messages (or after `ms`). */
async function readAll(port, perSession, ms) {
  const counts = new Map(ids.map((id) => [id, 0]))
  const clients = []
  const done = Promise.all(
    ids.map(
      (id) =>
        new Promise((res) => {
          const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, session(id))
          clients.push(c)
          c.on('message', () => {
            counts.set(id, counts.get(id) + 1)
            if (counts.get(id) === perSession) res()
          })
        }),
    ),
  )
  await Promise.race([done, new Promise((r) => setTimeout(r, ms))])
  await Promise.all(clients.map((c) => c.endAsync()))
  return [...counts.values()].reduce((a, b) => a + b, 0)
}

try {
  const server = new MqttServer()
  let [l] = await server.start(config)
  for (const id of ids) {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${l.port}`, session(id))
    await c.subscribeAsync('bench/s/#', { qos: 1 })
    await c.endAsync()
  }
  point('before (sessions created, offline)')
  await server.stop()
  // Each cycle: everything published into the offline sessions, a restart,
  // everything consumed. A later cycle ending where the first did is a store
  // that reuses the space its consumed messages held: its bound.
  for (let cycle = 1; cycle <= Number(opt.cycles); cycle++) {
    const c = `cycle ${cycle}`
    ;[l] = await restart(server, c)
    let began = performance.now()
    // In batches, so the publisher's queue stays short.
    for (let i = 0; i < published; i += 1000) {
      const batch = []
      for (let j = i; j < Math.min(published, i + 1000); j++) {
        batch.push(server.publish(`bench/s/${j % 100}`, payload, { qos: 1 }))
      }
      await Promise.all(batch)
    }
    const routedS = (performance.now() - began) / 1000
    point(`${c}: everything routed`)
    // A publish resolves once routed; the sessions write in the background
    // and stop() waits for those writes (bounded by its drain timeout plus
    // 3 s): routing plus stop() is the time until all of it is on disk.
    await server.stop({ drainTimeoutMs: 3_600_000 })
    const writeS = (performance.now() - began) / 1000
    rows.push([
      `${c}: publish into offline sessions, then stop()`,
      `${published} publishes x ${sessions} sessions: routed in ${routedS.toFixed(2)} s, on disk after stop() in ${writeS.toFixed(2)} s (${Math.round((published * sessions) / writeS)} stored msgs/s)`,
    ])
    point(`${c}: all queued, after stop()`)

    began = performance.now()
    ;[l] = await server.start(config)
    rows.push([`${c}: restart, start() until listeners bound`, `${(performance.now() - began).toFixed(0)} ms`])
    point(`${c}: after the restart`)
    const got = await readAll(l.port, published, opt.smoke ? 20_000 : 600_000)
    rows.push([
      `${c}: restart, until every session read everything back`,
      `${(performance.now() - began).toFixed(0)} ms (${got} of ${published * sessions})`,
    ])
    if (got !== published * sessions) process.exitCode = 1
    point(`${c}: everything consumed (sessions offline again)`)
    began = performance.now()
    await server.stop()
    rows.push([`${c}: stop() with nothing queued`, `${(performance.now() - began).toFixed(0)} ms`])
    point(`${c}: consumed, after stop()`)
    ;[l] = await restart(server, c)
    point(`${c}: after another restart`)
    await server.stop()
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}

printFigures(
  `Persistent sessions: ${published * sessions} messages (${payload.length} B) through ${sessions} offline sessions (${engine})`,
  rows,
  opt.out,
)
// Not every handle is closed by then (mqtt.js timers); the figures are out.
process.exit()
