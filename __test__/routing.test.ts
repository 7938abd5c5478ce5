/**
 * Routing follows subscription changes on topics that already carried
 * messages. The broker remembers which filters each topic name matched
 * (rmqtt's router, patched: `MatchCache`), so these tests publish first,
 * then change the subscriptions, then check who gets the next message.
 * It also keeps the recipients those filters led to (patch
 * `0053-routes-cache`), so a change that leaves the filters as they are
 * (new options, a session taken over) must reach the next message too.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, connect, drain, inbox, MQTT_VERSIONS, startServer, subscribe, urlFor } from './helpers'

afterEach(cleanup)

const payloads = (ms: { payload: Buffer }[]) => ms.map((m) => m.payload.toString())

describe('routes after subscription changes', () => {
  it.each(['3.1.1', '5.0'] as const)(
    'MQTT %s: a new filter, a second subscriber on it, and an unsubscribe take effect on an already routed topic',
    async (version) => {
      const { server, listeners } = await startServer()
      const url = urlFor(listeners[0])
      const opts = MQTT_VERSIONS[version]
      const [a, b, c] = await Promise.all([connect(url, opts), connect(url, opts), connect(url, opts)])
      const [boxA, boxB, boxC] = [inbox(a), inbox(b), inbox(c)]
      for (const [client, own] of [
        [a, 'end/a'],
        [b, 'end/b'],
        [c, 'end/c'],
      ] as const)
        await subscribe(client, own, 1)

      await subscribe(a, 'r/a', 1)
      await server.publish('r/a', '1', { qos: 1 })
      expect((await boxA.next()).payload.toString()).toBe('1')

      // A filter new to the broker that matches the routed topic.
      await subscribe(b, 'r/+', 1)
      await server.publish('r/a', '2', { qos: 1 })
      expect((await boxA.next()).payload.toString()).toBe('2')
      expect((await boxB.next()).payload.toString()).toBe('2')

      // A second subscriber on a filter that already exists.
      await subscribe(c, 'r/+', 1)
      await server.publish('r/a', '3', { qos: 1 })
      expect(payloads(await Promise.all([boxA.next(), boxB.next(), boxC.next()]))).toEqual(['3', '3', '3'])

      // The only subscriber of a filter leaves it: the filter is gone.
      await a.unsubscribeAsync('r/a')
      await server.publish('r/a', '4', { qos: 1 })
      expect(payloads(await Promise.all([boxB.next(), boxC.next()]))).toEqual(['4', '4'])
      // a's session delivers in order, so the sentinel after '4' proves '4' never came.
      expect(payloads(await drain(boxA, server, 'end/a'))).toEqual([])

      // One of two subscribers leaves a shared filter: the filter stays.
      await b.unsubscribeAsync('r/+')
      await server.publish('r/a', '5', { qos: 1 })
      expect((await boxC.next()).payload.toString()).toBe('5')
      expect(payloads(await drain(boxB, server, 'end/b'))).toEqual([])
      expect(payloads(await drain(boxC, server, 'end/c'))).toEqual([])
    },
  )

  it.each(['3.1.1', '5.0'] as const)(
    'MQTT %s: MQTT-3.8.4-3: a subscription replaced with another QoS delivers the next message at the new QoS',
    async (version) => {
      const { server, listeners } = await startServer()
      const sub = await connect(urlFor(listeners[0]), MQTT_VERSIONS[version])
      const box = inbox(sub)
      await subscribe(sub, 'q/t', 1)
      await server.publish('q/t', '1', { qos: 2 })
      expect((await box.next()).packet.qos).toBe(1)
      await subscribe(sub, 'q/t', 0)
      await server.publish('q/t', '2', { qos: 2 })
      expect((await box.next()).packet.qos).toBe(0)
      await subscribe(sub, 'q/t', 2)
      await server.publish('q/t', '3', { qos: 2 })
      expect((await box.next()).packet.qos).toBe(2)
    },
  )

  it('MQTT-3.8.3-3: No Local holds per publisher on a routed topic: the subscriber never gets its own, others still reach it', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const self = await connect(url, MQTT_VERSIONS['5.0'])
    const other = await connect(url, MQTT_VERSIONS['5.0'])
    const box = inbox(self)
    await self.subscribeAsync('nl/t', { qos: 1, nl: true })
    await subscribe(self, 'nl/end', 1)
    for (let i = 0; i < 3; i++) {
      await other.publishAsync('nl/t', `other ${i}`, { qos: 1 })
      await self.publishAsync('nl/t', `own ${i}`, { qos: 1 })
    }
    expect(payloads(await drain(box, server, 'nl/end'))).toEqual(['other 0', 'other 1', 'other 2'])
  })

  it('a client that takes over its session on a routed topic gets the next message on its new connection', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const session = {
      ...MQTT_VERSIONS['5.0'],
      clientId: 'route-takeover',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    }
    const first = await connect(url, session)
    const firstBox = inbox(first)
    await subscribe(first, 'tk/t', 1)
    await server.publish('tk/t', '1', { qos: 1 })
    expect((await firstBox.next()).payload.toString()).toBe('1')
    first.on('error', () => {})
    const second = await connect(url, session)
    const secondBox = inbox(second)
    await server.publish('tk/t', '2', { qos: 1 })
    expect((await secondBox.next()).payload.toString()).toBe('2')
  })

  it('a topic with more subscribers than the router keeps per topic (16) reaches each of them, also after one leaves', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const clients = await Promise.all(Array.from({ length: 20 }, () => connect(url, MQTT_VERSIONS['5.0'])))
    const boxes = clients.map(inbox)
    for (const c of clients) await subscribe(c, 'fan/t', 1)
    await server.publish('fan/t', '1', { qos: 1 })
    expect(payloads(await Promise.all(boxes.map((b) => b.next())))).toEqual(Array(20).fill('1'))
    await clients[0].unsubscribeAsync('fan/t')
    await subscribe(clients[0], 'fan/end', 1)
    await server.publish('fan/t', '2', { qos: 1 })
    expect(payloads(await Promise.all(boxes.slice(1).map((b) => b.next())))).toEqual(Array(19).fill('2'))
    expect(payloads(await drain(boxes[0], server, 'fan/end'))).toEqual([])
  })

  it('keeps routing right past the number of topic names it remembers', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const sub = await connect(url, MQTT_VERSIONS['5.0'])
    const box = inbox(sub)
    await subscribe(sub, 'many/#', 1)
    // More distinct topics than the router keeps (8,192), so it empties its
    // memory at least once while routing them.
    const N = 9000
    for (let i = 0; i < N; i++) await server.publish(`many/${i}`, String(i), { qos: 1 })
    const seen = new Set<string>()
    for (let i = 0; i < N; i++) seen.add((await box.next()).topic)
    expect(seen.size).toBe(N)

    // And still follows a new filter on the last of them, routed (and
    // remembered) after the router emptied its memory.
    const late = await connect(url, MQTT_VERSIONS['5.0'])
    const lateBox = inbox(late)
    await subscribe(late, `many/${N - 1}`, 1)
    await server.publish(`many/${N - 1}`, 'again', { qos: 1 })
    expect((await lateBox.next()).payload.toString()).toBe('again')
    expect((await box.next()).payload.toString()).toBe('again')
  })
})
