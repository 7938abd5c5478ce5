/**
 * Connection limits of a listener (src/limits.rs): `maxConnections` and
 * `maxConnectionsPerIp`. A connection beyond one is refused with CONNACK 0x97
 * Quota exceeded (5.0) or 3 Server unavailable (3.1.1); the connections
 * already there keep being served, and a closed one frees its place. And
 * `maxTopicLength`: a longer filter fails in its SUBACK (a longer PUBLISH
 * topic: topic-depth.test.ts).
 */
import { once } from 'node:events'
import { connect as netConnect } from 'node:net'

import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  connectRefused,
  EVENT_TIMEOUT,
  inbox,
  killChildren,
  type ListenerInfo,
  listener,
  MQTT_VERSIONS,
  type Protocol,
  ROOT,
  spawnTracked,
  startServer,
  subscribe,
  urlFor,
} from './helpers'
import { CONNACK, connectPacket, RawClient } from './raw'

const raws = new Set<RawClient>()
afterEach(async () => {
  for (const r of raws) r.socket.destroy()
  raws.clear()
  killChildren()
  await cleanup()
})

const QUOTA_EXCEEDED = 0x97
const SERVER_UNAVAILABLE = 3

/** The CONNACK code a raw 3.1.1 CONNECT from `localAddress` gets. */
async function connackFrom(info: ListenerInfo, localAddress: string, clientId: string): Promise<number> {
  const c = new RawClient(netConnect({ port: info.port, host: info.address, localAddress }))
  raws.add(c)
  await once(c.socket, 'connect')
  await c.write(connectPacket({ version: 4, clientId }))
  return (await c.next(CONNACK)).body[1]
}

/**
 * Connects until the broker admits the client again: a closed connection's
 * place is freed when the broker has seen it close, which the client cannot
 * observe. Fails with the last refusal after the deadline.
 */
async function connectOnceFreed(url: string, clientId: string) {
  const deadline = Date.now() + EVENT_TIMEOUT
  for (;;) {
    try {
      return await connect(url, { clientId })
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`still refused ${EVENT_TIMEOUT} ms after a close: ${e}`)
    }
  }
}

describe('maxConnections', () => {
  it.each(['tcp', 'ws'] as Protocol[])(
    '%s: the third of 2 is refused (5.0: 0x97, 3.1.1: 3); the two keep working; a close frees a place',
    async (protocol) => {
      const { listeners } = await startServer([listener(protocol, { maxConnections: 2 })])
      const url = urlFor(listeners[0])
      const sub = await connect(url, { clientId: 'sub', protocolVersion: 5 })
      const pub = await connect(url, { clientId: 'pub' })

      expect((await connectRefused(url, { clientId: 'third5', protocolVersion: 5 })).code).toBe(QUOTA_EXCEEDED)
      expect((await connectRefused(url, { clientId: 'third4', protocolVersion: 4 })).code).toBe(SERVER_UNAVAILABLE)
      // Taking over a session is a new connection too.
      expect((await connectRefused(url, { clientId: 'sub', protocolVersion: 5 })).code).toBe(QUOTA_EXCEEDED)

      const box = inbox(sub)
      await subscribe(sub, 'limits/t', 1)
      await pub.publishAsync('limits/t', 'still served', { qos: 1 })
      expect((await box.next()).payload.toString()).toBe('still served')

      await pub.endAsync()
      const again = await connectOnceFreed(url, 'again')
      expect(again.connected).toBe(true)
    },
  )

  it('counts each listener on its own', async () => {
    const { listeners } = await startServer([listener('tcp', { maxConnections: 1 }), listener('tcp')])
    await connect(urlFor(listeners[0]))
    expect((await connectRefused(urlFor(listeners[0]))).code).toBe(SERVER_UNAVAILABLE)
    expect((await connect(urlFor(listeners[1]))).connected).toBe(true)
  })
})

describe('maxConnections by default', () => {
  it('is the open-file limit less a reserve: under `ulimit -n 160` the 97th connection is refused (0x97 / 3), the 96 keep working', async () => {
    // A broker in a child process whose open-file limit is 160: the default
    // keeps max(160 / 8, 64) = 64 for the rest of the process, so 96.
    const script = `
      const { MqttServer } = require(${JSON.stringify(`${ROOT}/index.js`)})
      new MqttServer()
        .start({ listeners: [{ protocol: 'tcp', port: 0, address: '127.0.0.1' }] })
        .then(([l]) => console.log('port', l.port))`
    // The shell's builtin sets the soft and the hard limit (Node raises the soft one to the hard one).
    const broker = spawnTracked('/bin/sh', ['-c', 'ulimit -n 160 && exec "$0" -e "$1"', process.execPath, script])
    const port = Number((await broker.stdoutMatch(/port (\d+)/))[1])
    const connack = async (version: 4 | 5, clientId: string) => {
      const c = new RawClient(netConnect({ port, host: '127.0.0.1' }))
      raws.add(c)
      await once(c.socket, 'connect')
      await c.write(connectPacket({ version, clientId }))
      return { c, code: (await c.next(CONNACK)).body[1] }
    }
    const admitted = []
    for (let i = 0; i < 96; i++) admitted.push(await connack(i % 2 ? 5 : 4, `c${i}`))
    expect(admitted.map((a) => a.code)).toEqual(Array(96).fill(0))
    expect((await connack(5, 'over5')).code).toBe(QUOTA_EXCEEDED)
    expect((await connack(4, 'over4')).code).toBe(SERVER_UNAVAILABLE)
    // The admitted ones are still served.
    const first = admitted[0].c
    await first.write(Buffer.from([0xc0, 0]))
    await first.next(13)
  })
})

describe('maxConnectionsPerIp', () => {
  it('a second connection from 127.0.0.1 is refused; 127.0.0.2 is still served; a close frees a place', async () => {
    const { listeners } = await startServer([listener('tcp', { address: '0.0.0.0', maxConnectionsPerIp: 1 })])
    const info = { ...listeners[0], address: '127.0.0.1' }
    const url = urlFor(info)
    const first = await connect(url, { clientId: 'first' })
    expect((await connectRefused(url, { clientId: 'second5', protocolVersion: 5 })).code).toBe(QUOTA_EXCEEDED)
    expect(await connackFrom(info, '127.0.0.1', 'second4')).toBe(SERVER_UNAVAILABLE)
    expect(await connackFrom(info, '127.0.0.2', 'other-ip')).toBe(0)

    await first.endAsync()
    expect((await connectOnceFreed(url, 'after')).connected).toBe(true)
  })
})

describe('maxTopicLength', () => {
  const fits = 'a'.repeat(16)
  const over = 'a'.repeat(17)

  it.each([
    ['3.1.1', 0x80],
    ['5.0', 0x8f],
  ] as const)('MQTT %s: a filter over 16 bytes fails (SUBACK %i), one of 16 is granted', async (v, code) => {
    const { listeners } = await startServer([listener('tcp', { maxTopicLength: 16 })])
    const c = await connect(urlFor(listeners[0]), MQTT_VERSIONS[v])
    // mqtt.js rejects a SUBACK with any failure in it; the codes are on the packet.
    const granted = await c.subscribeAsync({ [over]: { qos: 1 }, [fits]: { qos: 1 } }).then(
      (g) => g.map((x) => x.qos),
      (e: { packet?: { granted?: number[] } }) => e.packet?.granted,
    )
    expect(granted).toEqual([code, 1])
  })

  // A publish over it: topic-depth.test.ts, with maxTopicLevels.
})

describe('validation', () => {
  it.each([
    ['maxConnections', 0],
    ['maxConnections', 1.5],
    ['maxConnectionsPerIp', 0],
    ['maxConnectionsPerIp', 2 ** 32],
  ])('%s: %d is refused, naming the field', async (field, value) => {
    await expect(startServer([listener('tcp', { [field]: value })])).rejects.toThrow(
      new RegExp(`^listeners\\[0\\]\\.${field}: must be an integer from 1 to 4294967295, got ${value}$`),
    )
  })

  it.each([0, 65536, 2.5])('maxTopicLength: %d is refused, naming the field', async (value) => {
    await expect(startServer([listener('tcp', { maxTopicLength: value })])).rejects.toThrow(
      new RegExp(`^listeners\\[0\\]\\.maxTopicLength: must be an integer from 1 to 65535, got ${value}$`),
    )
  })
})
