/**
 * MQTT 5 features beyond the basics: shared subscriptions, subscription
 * identifiers, topic aliases, a client's Maximum Packet Size.
 */
import { once } from 'node:events'
import { createConnection, type Socket } from 'node:net'

import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  endClient,
  inbox,
  listener,
  MQTT_VERSIONS,
  patternBytes,
  type Protocol,
  startServer,
  subscribe,
  urlFor,
  waitFor,
} from './helpers'

const sockets: Socket[] = []
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy()
  await cleanup()
})

describe('shared subscriptions', () => {
  it("spread a group's messages over its members, each message to exactly one", async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const members = await Promise.all([1, 2].map((i) => connect(url, { protocolVersion: 5, clientId: `member-${i}` })))
    const N = 40
    const got: number[][] = [[], []]
    let total = 0
    const allIn = new Promise<void>((resolve) =>
      members.forEach((m, i) => {
        m.on('message', (topic, payload) => {
          if (!topic.startsWith('job/')) return
          got[i].push(Number(payload.toString()))
          if (++total === N) resolve()
        })
      }),
    )
    for (const m of members) await subscribe(m, '$share/workers/job/#', 1)

    for (let i = 0; i < N; i++) await server.publish(`job/${i}`, String(i), { qos: 1 })
    await allIn
    // A sentinel through a plain subscription on each member proves nothing
    // else (no duplicate) was still on its way.
    for (const m of members) await subscribe(m, 'sentinel', 1)
    const sentinels = members.map((m) => waitFor(m, 'message'))
    await server.publish('sentinel', 'end', { qos: 1 })
    await Promise.all(sentinels)
    expect(total).toBe(N)
    const all = [...got[0], ...got[1]].sort((a, b) => a - b)
    expect(all).toEqual(Array.from({ length: N }, (_, i) => i)) // each job reached exactly one member
    expect(got[0].length).toBeGreaterThan(0) // and both members got some
    expect(got[1].length).toBeGreaterThan(0)
  })
})

describe('subscription identifiers', () => {
  // Each subscriber gets the message with its own identifiers [MQTT-3.3.4-3]
  // and none of another's. The broker hands the publish itself to the last
  // subscriber it routes to and a copy to each of the others, so a mix-up
  // between those copies shows here, whichever subscriber comes last.
  it.each(['tcp', 'ws'] as Protocol[])("are each subscriber's own (%s)", async (protocol) => {
    const { server, listeners } = await startServer({ listeners: [listener(protocol)] })
    const url = urlFor(listeners[0])
    const subs = [
      { filter: 'sid/#', id: 7 },
      { filter: 'sid/+', id: 9 },
      { filter: 'sid/x', id: undefined },
      { filter: '+/x', id: 268_435_455 }, // the largest identifier allowed
    ]
    const boxes = []
    for (const [i, s] of subs.entries()) {
      const c = await connect(url, { ...MQTT_VERSIONS['5.0'], clientId: `sid-${i}` })
      const opts =
        s.id === undefined ? { qos: 1 as const } : { qos: 1 as const, properties: { subscriptionIdentifier: s.id } }
      await c.subscribeAsync(s.filter, opts)
      boxes.push(inbox(c))
    }
    const v3 = await connect(url, { ...MQTT_VERSIONS['3.1.1'], clientId: 'sid-v3' })
    await subscribe(v3, 'sid/x', 1)
    const v3box = inbox(v3)

    const pub = await connect(url, MQTT_VERSIONS['5.0'])
    for (let n = 0; n < 3; n++) await pub.publishAsync('sid/x', `m${n}`, { qos: 1 })
    for (const [i, s] of subs.entries()) {
      for (let n = 0; n < 3; n++) {
        const m = await boxes[i].next()
        expect(m.payload.toString()).toBe(`m${n}`)
        const ids = m.packet.properties?.subscriptionIdentifier
        expect(ids === undefined ? [] : [ids].flat()).toEqual(s.id === undefined ? [] : [s.id])
      }
    }
    for (let n = 0; n < 3; n++) expect((await v3box.next()).payload.toString()).toBe(`m${n}`)
    expect(server.running).toBe(true)
  })
})

describe('topic aliases', () => {
  it.each(['tcp', 'tls'] as Protocol[])(
    "work both ways: a publisher's are resolved, a subscriber gets its own (%s)",
    async (protocol) => {
      const { listeners } = await startServer({ listeners: [listener(protocol, { maxTopicAliases: 4 })] })
      const url = urlFor(listeners[0])
      // The subscriber allows aliases, so the broker sends the topic once and
      // then only its alias; mqtt.js gives the topic back on each message.
      const sub = await connect(url, {
        ...MQTT_VERSIONS['5.0'],
        clientId: 'alias-sub',
        properties: { topicAliasMaximum: 10 },
      })
      await subscribe(sub, 'alias/#', 1)
      const box = inbox(sub)
      const sent: number[] = []
      sub.on('packetreceive', (p) => {
        if (p.cmd === 'publish') sent.push(p.properties?.topicAlias ?? 0)
      })
      const v3 = await connect(url, { ...MQTT_VERSIONS['3.1.1'], clientId: 'alias-v3' })
      await subscribe(v3, 'alias/#', 1)
      const v3box = inbox(v3)

      const pub = await connect(url, { ...MQTT_VERSIONS['5.0'], clientId: 'alias-pub' })
      await pub.publishAsync('alias/a', 'set', { qos: 1, properties: { topicAlias: 1 } })
      await pub.publishAsync('', 'by alias', { qos: 1, properties: { topicAlias: 1 } })
      await pub.publishAsync('alias/b', 'plain', { qos: 1 })
      await pub.publishAsync('', 'by alias again', { qos: 1, properties: { topicAlias: 1 } })
      const expected = [
        ['alias/a', 'set'],
        ['alias/a', 'by alias'],
        ['alias/b', 'plain'],
        ['alias/a', 'by alias again'],
      ]
      for (const b of [box, v3box]) {
        for (const [topic, payload] of expected) {
          const m = await b.next()
          expect([m.topic, m.payload.toString()]).toEqual([topic, payload])
        }
      }
      // The broker did alias its deliveries to the v5 subscriber.
      expect(sent.every((a) => a > 0)).toBe(true)
    },
  )

  // mqtt.js will not send these, so the publisher is a raw socket.
  it.each([
    ['an alias the broker does not know', '32090000000103230003' + '78'],
    ['an empty topic without an alias', '320600000001' + '00' + '78'],
  ])('%s: the publisher is disconnected (0x82 Protocol Error), nothing is delivered', async (_, publishHex) => {
    const { server, listeners } = await startServer([listener('tcp', { maxTopicAliases: 4 })])
    const url = urlFor(listeners[0])
    const sub = await connect(url, MQTT_VERSIONS['3.1.1'])
    await subscribe(sub, '#', 1)
    const box = inbox(sub)

    const sock = createConnection(listeners[0].port, '127.0.0.1')
    sockets.push(sock)
    const received: Buffer[] = []
    sock.on('data', (d) => received.push(d))
    const closed = once(sock, 'close')
    // CONNECT, MQTT 5, clean start, client id "ab"; CONNACK success back.
    sock.write(Buffer.from('100f00044d5154540502003c0000026162', 'hex'))
    await once(sock, 'data')
    expect(received[0][0]).toBe(0x20)
    sock.write(Buffer.from(publishHex, 'hex'))
    await closed
    const rest = Buffer.concat(received).subarray(received[0].length)
    expect(rest[0]).toBe(0xe0) // DISCONNECT
    expect(rest[2]).toBe(0x82) // Protocol Error (MQTT 5 3.3.2.3.4, MQTT-3.3.2-1)

    // A sentinel from another client arrives, and nothing before it.
    const other = await connect(url, MQTT_VERSIONS['3.1.1'])
    await other.publishAsync('sentinel', 'end', { qos: 1 })
    const m = await box.next()
    expect([m.topic, m.payload.toString()]).toEqual(['sentinel', 'end'])
    expect(server.running).toBe(true)
  })
})

describe("a subscriber's Maximum Packet Size", () => {
  // [MQTT-3.1.2-25]: a message too large for the client is dropped, as if
  // it had been sent. rmqtt used to fail the connection instead, and the
  // client got the message again each time it came back.
  it.each([
    ['tcp', 1],
    ['tls', 0],
    ['ws', 1],
    ['wss', 0],
  ] as Array<[Protocol, 0 | 1]>)(
    'over %s at QoS %i: a message over it is dropped and reported, the session goes on',
    async (protocol, qos) => {
      const dropped: Array<{ to?: string; topic: string; reason: string }> = []
      let reported: () => void
      const firstDrop = new Promise<void>((resolve) => (reported = resolve))
      const { server, listeners } = await startServer([listener(protocol)])
      server.setHooks({
        onMessageDropped: (to, _from, m, { reason }) => {
          dropped.push({ to: to?.clientId, topic: m.topic, reason })
          reported()
        },
      })
      const url = urlFor(listeners[0])
      const sub = await connect(url, {
        ...MQTT_VERSIONS['5.0'],
        clientId: 'small',
        properties: { maximumPacketSize: 2048 },
      })
      let closes = 0
      sub.on('close', () => closes++)
      const box = inbox(sub)
      await subscribe(sub, 'size/#', 1)
      const pub = await connect(url, MQTT_VERSIONS['3.1.1'])

      const fits = patternBytes(1900, 1)
      await pub.publishAsync('size/fits', fits, { qos })
      await pub.publishAsync('size/over', patternBytes(4096, 2), { qos })
      await pub.publishAsync('size/after', patternBytes(64, 3), { qos })
      const first = await box.next()
      expect(first.topic).toBe('size/fits')
      expect(Buffer.compare(first.payload, fits)).toBe(0)
      expect((await box.next()).topic).toBe('size/after')
      await firstDrop
      expect(dropped).toEqual([{ to: 'small', topic: 'size/over', reason: 'PacketTooLarge' }])
      expect(closes).toBe(0)
      expect(sub.connected).toBe(true)
      expect(box.all.map((m) => m.topic)).toEqual(['size/fits', 'size/after'])
    },
  )
})

describe('message expiry', () => {
  it('a queued message past its expiry interval is dropped; one within it arrives with the time it waited taken off', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const dropped = new Promise<[string, string]>((res) =>
      server.setHooks({ onMessageDropped: (_to, _from, m, { reason }) => res([m.topic, reason]) }),
    )
    const opts = {
      protocolVersion: 5 as const,
      clientId: 'expiry-sub',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    }
    const first = await connect(url, opts)
    await subscribe(first, 'expiry/#', 1)
    await endClient(first)

    const pub = await connect(url, { protocolVersion: 5 })
    await pub.publishAsync('expiry/short', 'gone by then', { qos: 1, properties: { messageExpiryInterval: 1 } })
    await pub.publishAsync('expiry/long', 'still good', { qos: 1, properties: { messageExpiryInterval: 60 } })
    // Expiry is about time passing: nothing to await but the clock. The
    // broker counts whole seconds, so 1.2 s is past the first's interval.
    await new Promise((res) => setTimeout(res, 1200))

    let box!: ReturnType<typeof inbox>
    await connect(url, opts, (c) => (box = inbox(c)))
    const m = await box.next()
    expect(m.topic).toBe('expiry/long')
    const left = m.packet.properties?.messageExpiryInterval
    expect(left).toBeGreaterThanOrEqual(57)
    expect(left).toBeLessThan(60)
    const [topic, reason] = await dropped
    expect(topic).toBe('expiry/short')
    expect(reason).toMatch(/expir/i)
    expect(box.all.map((r) => r.topic)).toEqual(['expiry/long'])
  })
})
