import type { IConnackPacket, IPublishPacket } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  endClient,
  type Inbox,
  inbox,
  listener,
  MQTT_VERSIONS,
  type MqttVersion,
  startServer,
  subscribe,
  urlFor,
} from './helpers'

afterEach(cleanup)

type Q = 0 | 1 | 2
const LEVELS: Q[] = [0, 1, 2]

describe('QoS end to end, client to client', () => {
  const cases = (['3.1.1', '5.0'] as MqttVersion[]).flatMap((v) =>
    LEVELS.flatMap((pubQos) => LEVELS.map((subQos) => [v, pubQos, subQos] as const)),
  )

  it.each(cases)('MQTT %s: publish at QoS %i, subscription at QoS %i', async (version, pubQos, subQos) => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const sub = await connect(url, MQTT_VERSIONS[version])
    const box = inbox(sub)
    await subscribe(sub, 'q/+', subQos)
    const pub = await connect(url, MQTT_VERSIONS[version])
    await pub.publishAsync(`q/${pubQos}`, `pub${pubQos}-sub${subQos}`, { qos: pubQos })
    const m = await box.next()
    expect(m.topic).toBe(`q/${pubQos}`)
    expect(m.payload.toString()).toBe(`pub${pubQos}-sub${subQos}`)
    // Delivered at the lower of the two.
    const expected = Math.min(pubQos, subQos)
    expect(m.packet.qos).toBe(expected)
    if (expected > 0) expect(m.packet.messageId).toBeGreaterThan(0)
    expect(m.packet.dup).toBe(false)
    expect(m.packet.retain).toBe(false)
  })

  it.each([
    [1, 200],
    // QoS 2 stays within the broker's default inbound in-flight window (16);
    // see the maxInflight tests below for larger bursts.
    [2, 16],
  ] as const)(
    'QoS %i: a burst of %i concurrent publishes arrives complete, in order, without duplicates',
    async (qos, n) => {
      const { listeners } = await startServer()
      const url = urlFor(listeners[0])
      const sub = await connect(url, MQTT_VERSIONS['5.0'])
      const box = inbox(sub)
      await subscribe(sub, 'burst', qos)
      const pub = await connect(url, MQTT_VERSIONS['3.1.1'])
      await Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync('burst', String(i), { qos })))
      await expectSequence(box, n, qos)
      // Positive control for "no extra deliveries": a sentinel is the very next message.
      await pub.publishAsync('burst', 'end', { qos })
      expect((await box.next()).payload.toString()).toBe('end')
      expect(box.all).toHaveLength(n + 1)
    },
  )

  it('QoS 2: 200 messages published one after the other arrive exactly once, in order', async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const sub = await connect(url, MQTT_VERSIONS['3.1.1'])
    const box = inbox(sub)
    await subscribe(sub, 'seq', 2)
    const pub = await connect(url, MQTT_VERSIONS['5.0'])
    for (let i = 0; i < 200; i++) await pub.publishAsync('seq', String(i), { qos: 2 })
    await expectSequence(box, 200, 2)
    await pub.publishAsync('seq', 'end', { qos: 2 })
    expect((await box.next()).payload.toString()).toBe('end')
    expect(box.all).toHaveLength(201)
  })

  it('QoS 1 messages published while a persistent subscriber is offline are delivered on reconnect', async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const session = { clientId: 'persistent-1', clean: false, ...MQTT_VERSIONS['3.1.1'] }
    const first = await connect(url, session)
    await subscribe(first, 'offline/#', 1)
    await endClient(first)
    const pub = await connect(url)
    await pub.publishAsync('offline/a', 'while away', { qos: 1 })
    let box!: Inbox
    const again = await connect(url, session, (c) => (box = inbox(c)))
    expect(again.connected).toBe(true)
    const m = await box.next()
    expect(m.topic).toBe('offline/a')
    expect(m.payload.toString()).toBe('while away')
    expect(m.packet.qos).toBe(1)
  })

  it.each(['3.1.1', '5.0'] as MqttVersion[])(
    'MQTT %s: a QoS 1 delivery left unacknowledged is sent again, marked DUP, when the session resumes, and only once',
    async (version) => {
      const { listeners } = await startServer()
      const url = urlFor(listeners[0])
      const persistent =
        version === '5.0' ? { clean: false, properties: { sessionExpiryInterval: 60 } } : { clean: false }
      const session = { clientId: `unacked-${version}`, ...persistent, ...MQTT_VERSIONS[version] }
      // This client takes the delivery and never acknowledges it: mqtt.js
      // sends the PUBACK once `handleMessage` calls back.
      let took!: (p: IPublishPacket) => void
      const taken = new Promise<IPublishPacket>((res) => (took = res))
      const first = await connect(url, session, (c) => {
        c.handleMessage = (packet) => took(packet)
      })
      await subscribe(first, 'unacked/#', 1)
      const pub = await connect(url)
      await pub.publishAsync('unacked/a', 'once more', { qos: 1 })
      const original = await taken
      expect(original.dup).toBe(false)
      await endClient(first)

      let box!: Inbox
      const second = await connect(url, session, (c) => (box = inbox(c)))
      const again = await box.next()
      expect(again.topic).toBe('unacked/a')
      expect(again.payload.toString()).toBe('once more')
      expect(again.packet.qos).toBe(1)
      expect(again.packet.dup).toBe(true)
      await endClient(second)

      // Acknowledged this time: the next resume brings the next message, not a third copy.
      await pub.publishAsync('unacked/b', 'next', { qos: 1 })
      let box3!: Inbox
      await connect(url, session, (c) => (box3 = inbox(c)))
      const next = await box3.next()
      expect(next.topic).toBe('unacked/b')
      expect(next.packet.dup).toBe(false)
    },
  )
})

describe('inbound QoS 2 in-flight window (maxInflight)', () => {
  it('a window exceeded drops the publisher (rmqtt behaviour; default window 256)', async () => {
    // MQTT 3.1.1 has no flow control; rmqtt disconnects the client
    // ("Inflight window is full"). The client only sees the connection close.
    const { listeners } = await startServer([listener('tcp', { maxInflight: 16 })])
    const pub = await connect(urlFor(listeners[0]), MQTT_VERSIONS['3.1.1'])
    // Writes racing the broker's close may fail (EPIPE): expected here.
    const errors: string[] = []
    pub.on('error', (e) => errors.push(String((e as NodeJS.ErrnoException).code ?? e.message)))
    const closed = new Promise<void>((res) => pub.once('close', () => res()))
    const completed: number[] = []
    for (let i = 0; i < 17; i++) pub.publish('window', String(i), { qos: 2 }, (err) => err || completed.push(i))
    await closed
    expect(pub.connected).toBe(false)
    // Not one of them completed the QoS 2 exchange.
    expect(completed).toEqual([])
    expect(errors.every((e) => /EPIPE|ECONNRESET/.test(e))).toBe(true)
  })

  it('the default window lets a burst of 200 concurrent QoS 2 publishes through', async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const sub = await connect(url, MQTT_VERSIONS['5.0'])
    const box = inbox(sub)
    await subscribe(sub, 'burst', 2)
    const pub = await connect(url, MQTT_VERSIONS['3.1.1'])
    await Promise.all(Array.from({ length: 200 }, (_, i) => pub.publishAsync('burst', String(i), { qos: 2 })))
    await expectSequence(box, 200, 2)
    expect(pub.connected).toBe(true)
  })

  it('MQTT 5 CONNACK advertises maxInflight as Receive Maximum', async () => {
    const { listeners } = await startServer([listener('tcp', { maxInflight: 7 })])
    let connack: IConnackPacket | undefined
    await connect(urlFor(listeners[0]), MQTT_VERSIONS['5.0'], (c) => c.once('connect', (p) => (connack = p)))
    expect(connack?.properties?.receiveMaximum).toBe(7)
  })

  it('a larger maxInflight lets a burst of 200 concurrent QoS 2 publishes through', async () => {
    const { listeners } = await startServer([listener('tcp', { maxInflight: 256 })])
    const url = urlFor(listeners[0])
    const sub = await connect(url, MQTT_VERSIONS['5.0'])
    const box = inbox(sub)
    await subscribe(sub, 'wide', 2)
    const pub = await connect(url, MQTT_VERSIONS['3.1.1'])
    await Promise.all(Array.from({ length: 200 }, (_, i) => pub.publishAsync('wide', String(i), { qos: 2 })))
    await expectSequence(box, 200, 2)
    expect(pub.connected).toBe(true)
  })
})

async function expectSequence(box: Inbox, n: number, qos: number): Promise<void> {
  const got: string[] = []
  for (let i = 0; i < n; i++) {
    const m = await box.next()
    expect(m.packet.qos).toBe(qos)
    got.push(m.payload.toString())
  }
  expect(got).toEqual(Array.from({ length: n }, (_, i) => String(i)))
}
