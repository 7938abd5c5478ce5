import { afterEach, describe, expect, it } from 'vitest'

import {
  allBytes,
  cleanup,
  connect,
  drain,
  inbox,
  MQTT_VERSIONS,
  type MqttVersion,
  startServer,
  subscribe,
  urlFor,
} from './helpers'

afterEach(cleanup)

/**
 * Retained messages are sent by rmqtt in a task of their own after the
 * SUBSCRIBE, so they have no fixed order relative to SUBACK or to live
 * messages. Checks below therefore read everything up to a QoS 2 sentinel
 * (`drain`) and assert on the set, with the sentinel as the positive control.
 */

async function setup() {
  const { server, listeners } = await startServer()
  const url = urlFor(listeners[0])
  const pub = await connect(url, MQTT_VERSIONS['3.1.1'])
  /** A subscriber that arrives after the retained messages were set. */
  const late = async (filter: string, qos: 0 | 1 | 2 = 2, version: MqttVersion = '3.1.1') => {
    const c = await connect(url, MQTT_VERSIONS[version])
    const box = inbox(c)
    await subscribe(c, filter, qos)
    return { client: c, box }
  }
  return { server, url, pub, late }
}

describe('retained messages from clients', () => {
  it.each(['3.1.1', '5.0'] as const)(
    'reach a late MQTT %s subscriber with the retain flag, exact payload and QoS',
    async (version) => {
      const { pub, late } = await setup()
      await pub.publishAsync('ret/a', 'retained-a', { qos: 1, retain: true })
      const { box } = await late('ret/a', 2, version)
      const m = await box.next()
      expect(m.topic).toBe('ret/a')
      expect(m.payload.toString()).toBe('retained-a')
      expect(m.packet.retain).toBe(true)
      expect(m.packet.qos).toBe(1)
      // Exactly one copy.
      expect(await drain(box, pub, 'ret/a')).toEqual([])
    },
  )

  it('are delivered at the lower of the stored and the subscription QoS', async () => {
    const { pub, late } = await setup()
    await pub.publishAsync('ret/q2', 'two', { qos: 2, retain: true })
    const { box } = await late('ret/q2', 1)
    const m = await box.next()
    expect(m.payload.toString()).toBe('two')
    expect(m.packet.qos).toBe(1)
    expect(m.packet.retain).toBe(true)
  })

  it('keep binary payloads byte-exact', async () => {
    const { pub, late } = await setup()
    await pub.publishAsync('ret/bin', allBytes(), { qos: 1, retain: true })
    const { box } = await late('ret/bin', 1)
    const m = await box.next()
    expect([...m.payload]).toEqual([...allBytes()])
  })

  it('a newer retained message replaces the older one', async () => {
    const { pub, late } = await setup()
    await pub.publishAsync('ret/r', 'old', { qos: 1, retain: true })
    await pub.publishAsync('ret/r', 'new', { qos: 1, retain: true })
    const { box } = await late('ret/r', 1)
    const seen = await drain(box, pub, 'ret/r')
    expect(seen.map((m) => [m.payload.toString(), m.packet.retain])).toEqual([['new', true]])
  })

  it('an empty retained payload clears the topic; other retained topics stay', async () => {
    const { pub, late } = await setup()
    await pub.publishAsync('ret/clear/gone', 'to be cleared', { qos: 1, retain: true })
    await pub.publishAsync('ret/clear/kept', 'stays', { qos: 1, retain: true })
    await pub.publishAsync('ret/clear/gone', '', { qos: 1, retain: true })
    const { box } = await late('ret/clear/#', 1)
    const seen = await drain(box, pub, 'ret/clear/sentinel')
    // Positive controls: the kept topic and the sentinel arrive; the cleared one never does.
    expect(seen.map((m) => [m.topic, m.payload.toString(), m.packet.retain])).toEqual([
      ['ret/clear/kept', 'stays', true],
    ])
  })

  it('a message published without retain is not stored', async () => {
    const { pub, late } = await setup()
    await pub.publishAsync('ret/plain', 'not retained', { qos: 1 })
    const { box } = await late('ret/plain', 1)
    expect(await drain(box, pub, 'ret/plain')).toEqual([])
  })

  it('live subscribers get a retained publish with retain=false (3.1.1, 5.0) or as published (5.0 retainAsPublished)', async () => {
    const { url, pub } = await setup()
    const v4 = await connect(url, MQTT_VERSIONS['3.1.1'])
    const v5 = await connect(url, MQTT_VERSIONS['5.0'])
    const v5rap = await connect(url, MQTT_VERSIONS['5.0'])
    const boxes = [inbox(v4), inbox(v5), inbox(v5rap)]
    await subscribe(v4, 'ret/live', 1)
    await subscribe(v5, 'ret/live', 1)
    const granted = await v5rap.subscribeAsync('ret/live', { qos: 1, rap: true })
    expect(granted[0].qos).toBe(1)
    await pub.publishAsync('ret/live', 'now', { qos: 1, retain: true })
    const flags = await Promise.all(boxes.map(async (b) => (await b.next()).packet.retain))
    expect(flags).toEqual([false, false, true])
  })

  it('MQTT 5 retainHandling 2 sends no retained message on subscribe, 0 does', async () => {
    const { url, pub } = await setup()
    await pub.publishAsync('ret/rh', 'stored', { qos: 1, retain: true })
    const none = await connect(url, MQTT_VERSIONS['5.0'])
    const noneBox = inbox(none)
    await none.subscribeAsync('ret/rh', { qos: 1, rh: 2 })
    expect(await drain(noneBox, pub, 'ret/rh')).toEqual([])
    const some = await connect(url, MQTT_VERSIONS['5.0'])
    const someBox = inbox(some)
    await some.subscribeAsync('ret/rh', { qos: 1, rh: 0 })
    const seen = await drain(someBox, pub, 'ret/rh')
    expect(seen.map((m) => m.payload.toString())).toEqual(['stored'])
  })
})

describe('retained messages from the server', () => {
  it('server.publish(retain: true) reaches a late subscriber; an empty payload clears it', async () => {
    const { server, pub, late } = await setup()
    await server.publish('ret/srv', 'from server', { qos: 1, retain: true })
    const first = await late('ret/srv', 2)
    const m = await first.box.next()
    expect(m.payload.toString()).toBe('from server')
    expect(m.packet.retain).toBe(true)
    expect(m.packet.qos).toBe(1)

    await server.publish('ret/srv', '', { retain: true })
    const second = await late('ret/srv', 2)
    expect(await drain(second.box, pub, 'ret/srv')).toEqual([])
  })

  it('clearing with an empty Buffer works too', async () => {
    const { server, pub, late } = await setup()
    await server.publish('ret/buf', Buffer.from('x'), { retain: true })
    await server.publish('ret/buf', Buffer.alloc(0), { retain: true })
    const { box } = await late('ret/buf', 1)
    expect(await drain(box, server, 'ret/buf')).toEqual([])
    expect(pub.connected).toBe(true)
  })

  it('a client can clear a message the server retained, and vice versa', async () => {
    const { server, pub, late } = await setup()
    await server.publish('ret/x1', 'srv', { retain: true })
    await pub.publishAsync('ret/x1', '', { qos: 1, retain: true })
    await pub.publishAsync('ret/x2', 'cli', { qos: 1, retain: true })
    await server.publish('ret/x2', new Uint8Array(0), { retain: true })
    const { box } = await late('ret/+', 1)
    expect(await drain(box, pub, 'ret/sentinel')).toEqual([])
  })
})

describe('retained store scope', () => {
  it('a stopped and restarted server starts with no retained messages (in-memory store)', async () => {
    const { server, pub, url } = await setup()
    await pub.publishAsync('ret/volatile', 'v', { qos: 1, retain: true })
    await server.stop()
    const port = Number(new URL(url).port)
    const [info] = await server.start({ listeners: [{ address: '127.0.0.1', port, protocol: 'tcp' }] })
    const c = await connect(urlFor(info))
    const box = inbox(c)
    await subscribe(c, 'ret/#', 1)
    expect(await drain(box, server, 'ret/control')).toEqual([])
  })
})
