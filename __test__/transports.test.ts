import { afterEach, describe, expect, it } from 'vitest'

import {
  certs,
  cleanup,
  connect,
  inbox,
  listener,
  MQTT_VERSIONS,
  type MqttVersion,
  type Protocol,
  patternBytes,
  startServer,
  subscribe,
  urlFor,
} from './helpers'

afterEach(cleanup)

const PROTOCOLS: Protocol[] = ['tcp', 'tls', 'ws', 'wss']
const VERSIONS: MqttVersion[] = ['3.1', '3.1.1', '5.0']

const matrix = PROTOCOLS.flatMap((p) => VERSIONS.map((v) => [p, v] as const))

describe('every transport with every MQTT version', () => {
  it.each(matrix)('%s with MQTT %s: connect, subscribe, publish, receive', async (protocol, version) => {
    const { listeners } = await startServer([listener(protocol)])
    expect(listeners[0].protocol).toBe(protocol)
    const url = urlFor(listeners[0])
    const opts = MQTT_VERSIONS[version]
    const sub = await connect(url, opts)
    const pub = await connect(url, opts)
    const box = inbox(sub)
    const topic = `transport/${protocol}/${version}`
    await subscribe(sub, topic, 1)
    const payload = patternBytes(1000, protocol.length * 10 + version.length)
    await pub.publishAsync(topic, payload, { qos: 1 })
    const m = await box.next()
    expect(m.topic).toBe(topic)
    expect(m.packet.qos).toBe(1)
    expect(m.packet.retain).toBe(false)
    expect(Buffer.compare(m.payload, payload)).toBe(0)
    if (version === '5.0') {
      // MQTT 5 only: properties make it through (proves a real v5 session).
      await pub.publishAsync(topic, 'props', {
        qos: 1,
        properties: { contentType: 'text/plain', userProperties: { k: 'v' } },
      })
      const p = await box.next()
      expect(p.payload.toString()).toBe('props')
      expect(p.packet.properties?.contentType).toBe('text/plain')
      expect(p.packet.properties?.userProperties).toEqual({ k: 'v' })
    }
  })
})

describe('transports share one broker', () => {
  it('a message published over tcp reaches subscribers on tls, ws and wss', async () => {
    const { listeners } = await startServer(PROTOCOLS.map((p) => listener(p)))
    const byProto = Object.fromEntries(listeners.map((l) => [l.protocol, l]))
    const subs = await Promise.all(
      (['tls', 'ws', 'wss'] as const).map(async (p) => {
        const c = await connect(urlFor(byProto[p]), MQTT_VERSIONS['5.0'])
        const box = inbox(c)
        await subscribe(c, 'mix/+', 2)
        return box
      }),
    )
    const pub = await connect(urlFor(byProto.tcp), MQTT_VERSIONS['3.1.1'])
    await pub.publishAsync('mix/a', 'hello', { qos: 2 })
    for (const box of subs) {
      const m = await box.next()
      expect(m.topic).toBe('mix/a')
      expect(m.payload.toString()).toBe('hello')
      expect(m.packet.qos).toBe(2)
    }
  })
})

describe('TLS is real TLS', () => {
  it('a client that does not trust the test CA is rejected by certificate verification', async () => {
    const { listeners } = await startServer([listener('tls')])
    const err = await connect(urlFor(listeners[0]), { ca: undefined, rejectUnauthorized: true }).catch((e) => e)
    expect(err).toBeInstanceOf(Error)
    expect((err as NodeJS.ErrnoException).code).toMatch(/SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY/)
  })

  it('the server presents the generated certificate (verified for 127.0.0.1)', async () => {
    const { listeners } = await startServer([listener('wss')])
    const c = await connect(urlFor(listeners[0]), { ca: certs().caPem, rejectUnauthorized: true })
    expect(c.connected).toBe(true)
  })

  it('a plain MQTT client cannot talk to a tls listener', async () => {
    const { listeners } = await startServer([listener('tls')])
    const url = `mqtt://127.0.0.1:${listeners[0].port}`
    await expect(connect(url, { connectTimeout: 2000 })).rejects.toThrow()
  })
})
