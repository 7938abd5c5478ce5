// Checks the generator against an independent parser: with every strategy
// that aims outside the spec turned off, each generated packet must parse
// with mqtt-packet (mqtt.js's codec) as the kind it was generated as, and
// consume exactly its bytes. Run: node fuzz/selfcheck.mjs [count]
import { createRequire } from 'node:module'

import { Session } from './packets.mjs'
import { Rng } from './rng.mjs'

// mqtt-packet comes with the mqtt devDependency.
const require = createRequire(createRequire(import.meta.url).resolve('mqtt'))
const mqttPacket = require('mqtt-packet')

const CMD = {
  publish: 'publish',
  puback: 'puback',
  pubrec: 'pubrec',
  pubrel: 'pubrel',
  pubcomp: 'pubcomp',
  subscribe: 'subscribe',
  unsubscribe: 'unsubscribe',
  pingreq: 'pingreq',
  auth: 'auth',
  disconnect: 'disconnect',
  connect: 'connect',
}
// Outside the spec on purpose, whatever the strategy.
const exclude = new Set(['edge', 'huge', 'deep', 'props', 'serverOnly', 'reserved'])

const count = Number(process.argv[2] ?? 20000)
let checked = 0
for (let n = 0; checked < count; n++) {
  const s = new Session(new Rng(7, n), exclude)
  const parser = mqttPacket.parser({ protocolVersion: s.version })
  const packets = [['connect', s.connect()]]
  for (let i = 0; i < 50; i++) {
    const p = s.next()
    if (p[0] === 'auth' && !s.v5) continue // AUTH is 5.0 only
    // An AUTH of Remaining Length 0 is valid (MQTT 5.0 3.15.2.1) but
    // mqtt-packet 9 refuses it.
    if (p[0] === 'auth' && p[1].length === 2) continue
    packets.push(p)
  }
  for (const [kind, bytes] of packets) {
    let got = null
    let err = null
    parser.removeAllListeners()
    parser.on('packet', (p) => (got = p))
    parser.on('error', (e) => (err = e))
    const left = parser.parse(bytes)
    if (err || !got || got.cmd !== CMD[kind] || left !== 0) {
      console.error(`selfcheck: ${kind} v${s.version} did not parse: ${err?.message ?? got?.cmd ?? 'incomplete'}`)
      console.error(bytes.subarray(0, 200).toString('hex'))
      process.exit(1)
    }
    checked++
  }
}
console.log(`selfcheck: ${checked} generated packets parsed by mqtt-packet as generated`)
