// Peer: this package's broker (rmqtt, embedded through the napi addon) in a
// Node process of its own, listening on one plain-TCP port.
//
//   node bench/peers/embedded-mqtt-broker.mjs --port 1883 [--host 127.0.0.1] [--busy]
//        [--max-inflight N] [--max-mqueue-len N] [--max-packet-size N]
//        [--hooks none|notify|authorize|authorize-cached|authenticate|acl100|passwd] [--poll-stats]
//        [--sink subscribe|notify]
//
// Prints `READY <port>` once the listener accepts connections. `--busy` then
// spins the Node main thread on a CPU-bound loop forever, to show whether
// the broker depends on the JavaScript thread (it should not). The addon is
// the one `index.js` loads; run.mjs points NAPI_RS_NATIVE_LIBRARY_PATH at a
// release build.
import { writeSync } from 'node:fs'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

import { sink as makeSink } from '../lib/sink.mjs'

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string', default: '1883' },
    host: { type: 'string', default: '127.0.0.1' },
    busy: { type: 'boolean', default: false },
    'max-inflight': { type: 'string' },
    'max-mqueue-len': { type: 'string' },
    'max-packet-size': { type: 'string' },
    'worker-threads': { type: 'string' },
    // none | notify | authorize | authorize-cached | authenticate: one cheap JS hook of that kind;
    // acl100 | passwd: native policy (100 ACL rules; one user, password "bench")
    hooks: { type: 'string', default: 'none' },
    // calls stats() and metrics() 10 times a second, as a dashboard would
    'poll-stats': { type: 'boolean', default: false },
    // subscribe | notify: count every message in `server.subscribe('#')`'s
    // handler or in an onMessagePublish hook; the count is printed as a
    // `SINK {json}` line at SIGTERM (bench/subscribe.mjs)
    sink: { type: 'string' },
  },
})

const require = createRequire(import.meta.url)
const { MqttServer, hashPassword } = require('../../index.js')

const listener = { port: Number(opt.port), protocol: 'tcp', address: opt.host }
// Unset limits keep the broker's defaults: the benchmark measures those.
for (const [flag, key] of [
  ['max-inflight', 'maxInflight'],
  ['max-mqueue-len', 'maxMqueueLen'],
  ['max-packet-size', 'maxPacketSize'],
]) {
  if (opt[flag] !== undefined) listener[key] = Number(opt[flag])
}

const server = new MqttServer()
// The cheapest hook of each kind, so a run measures what the bridge costs.
const hookSets = {
  none: null,
  notify: { onMessagePublish: () => {} },
  authorize: { onClientPublishAuthorize: () => ({ allow: true }) },
  // Answered once per client and topic, then from the broker's cache.
  'authorize-cached': { onClientPublishAuthorize: () => ({ allow: true, cacheMs: 60_000 }) },
  authenticate: { onClientAuthenticate: () => ({ allow: true }) },
}
// Native policies. acl100: 99 rules that fail on the first topic level, then
// the one that allows the load generator's topics (b/<run>/<i>), so every
// request is checked against all 100. passwd: mosquitto_passwd's default
// hash ($7$, 101 PBKDF2 iterations); loadgen sends --credentials bench:bench.
const policies = {
  acl100: () => ({
    acl: [
      ...Array.from({ length: 99 }, (_, i) => ({ permission: 'allow', action: 'all', topics: [`r${i}/+/#`] })),
      { permission: 'allow', action: 'all', topics: ['b/#'] },
    ],
  }),
  passwd: async () => ({ users: [{ username: 'bench', passwordHash: await hashPassword('bench') }] }),
}
if (!(opt.hooks in hookSets) && !(opt.hooks in policies)) {
  throw new Error(`--hooks: one of ${[...Object.keys(hookSets), ...Object.keys(policies)].join(', ')}`)
}
if (hookSets[opt.hooks]) server.setHooks(hookSets[opt.hooks])
// onClientAuthenticate only runs for anonymous clients when the listener requires auth.
if (opt.hooks === 'authenticate' || opt.hooks === 'passwd') listener.allowAnonymous = false
const config = { listeners: [listener], ...(await policies[opt.hooks]?.()) }
if (opt['worker-threads'] !== undefined) config.workerThreads = Number(opt['worker-threads'])
const [bound] = await server.start(config)
if (opt['poll-stats']) {
  setInterval(() => {
    server.stats().catch(() => {})
    server.metrics().catch(() => {})
  }, 100).unref()
}
const sink = makeSink()
const count = sink.count
if (opt.sink === 'subscribe') await server.subscribe('#', count)
else if (opt.sink === 'notify') server.setHooks({ onMessagePublish: count })
else if (opt.sink !== undefined) throw new Error('--sink: subscribe or notify')
// Synchronous write: with --busy the event loop never runs again.
writeSync(1, `READY ${bound.port}\n`)

if (opt.busy) {
  // Pure CPU work that never yields; the broker's threads must not care.
  let x = 0
  for (;;) x = (x * 1103515245 + 12345) % 2147483648
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    if (opt.sink) sink.report()
    server.close().then(() => process.exit(0))
  })
}
