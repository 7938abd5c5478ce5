/**
 * MQTT 5 message properties in JavaScript: hooks see them
 * (`MessageInfo.properties`, `PublishRequest.properties`) and
 * `server.publish()` sends them, validated field by field. Cited by the
 * statement of MQTT 5.0 (3.3.2.3) each check is about.
 */
import { afterEach, describe, expect, it } from 'vitest'

import type * as Addon from '../index'
import {
  cleanup,
  connect,
  drain,
  endClient,
  inbox,
  listener,
  MqttServer,
  startServer,
  subscribe,
  track,
  urlFor,
  withDeadline,
} from './helpers'
import {
  decodePublish,
  destroyRaw,
  type Packet,
  PUBLISH,
  packet,
  prop,
  propValues,
  props,
  publishPacket,
  rawSession,
  str,
  u16,
} from './raw'

afterEach(async () => {
  destroyRaw()
  await cleanup()
})

/** Resolves with the first call of a hook that `match` accepts. */
function firstCall<A extends unknown[]>(match: (...args: A) => boolean) {
  let resolve!: (args: A) => void
  const called = new Promise<A>((r) => (resolve = r))
  const hook = (...args: A) => {
    if (match(...args)) resolve(args)
  }
  return { hook, called: (what: string) => withDeadline(called, 5000, () => `${what}: hook never called`) }
}

/** A raw MQTT 5 user property (0x26). */
const userProp = prop.userProperty

/** The user properties of a raw MQTT 5 PUBLISH, in wire order. */
const wireUserProperties = (p: Packet) => propValues<[string, string]>(decodePublish(p).props, 0x26)

async function rawSubscriber(info: Addon.ListenerInfo, filter: string) {
  const c = await rawSession(info, 5)
  await c.write(packet(0x82, u16(1), props(), str(filter), Buffer.from([0])))
  await c.next(9)
  return c
}

// Interleaved keys, a repeated key and an exact duplicate pair: mqtt.js
// cannot express this order (it takes an object), hence raw packets.
const ORDERED: Array<[string, string]> = [
  ['a', '1'],
  ['b', '2'],
  ['a', '3'],
  ['empty', ''],
  ['a', '1'],
  ['ключ', 'значение'],
]

describe('a request/response answered from Node', () => {
  it('an MQTT 5 request (responseTopic, correlationData, user properties) seen by onMessagePublish is answered by publish() to its responseTopic with the same correlation data [MQTT-3.3.2-15, MQTT-3.3.2-16]', async () => {
    const server = track(new MqttServer())
    const served: Array<Addon.MessageProperties | undefined> = []
    server.setHooks({
      onMessagePublish(_session, from, message) {
        if (from.type !== 'client' || !message.topic.startsWith('service/')) return
        const p = message.properties
        served.push(p)
        if (!p?.responseTopic) return
        void server.publish(p.responseTopic, `pong: ${message.payload}`, {
          qos: 1,
          properties: { correlationData: p.correlationData, userProperties: [['status', 'ok']] },
        })
      },
    })
    const [info] = await server.start({ listeners: [listener('tcp')] })
    const client = await connect(urlFor(info), { protocolVersion: 5 })
    await subscribe(client, 'replies/me', 1)
    const box = inbox(client)
    const correlation = Buffer.from([0, 1, 2, 0xfe, 0xff])
    await client.publishAsync('service/ping', 'hello', {
      qos: 1,
      properties: {
        responseTopic: 'replies/me',
        correlationData: correlation,
        userProperties: { trace: 'abc' },
      },
    })

    const reply = await box.next()
    expect(reply.topic).toBe('replies/me')
    expect(reply.payload.toString()).toBe('pong: hello')
    expect(reply.packet.properties?.correlationData).toEqual(correlation)
    expect(reply.packet.properties?.userProperties).toEqual({ status: 'ok' })
    expect(served).toHaveLength(1)
    expect(served[0]).toEqual({
      responseTopic: 'replies/me',
      correlationData: correlation,
      userProperties: [['trace', 'abc']],
    })
    expect(Buffer.isBuffer(served[0]?.correlationData)).toBe(true)
  })
})

describe('user properties', () => {
  it('reach hooks and subscribers in the order sent, duplicates kept [MQTT-3.3.2-17, MQTT-3.3.2-18]', async () => {
    const server = track(new MqttServer())
    const published = firstCall((_s: unknown, _f: unknown, m: Addon.MessageInfo) => m.topic === 'up/order')
    const authorized = firstCall((_s: unknown, m: Addon.PublishRequest) => m.topic === 'up/order')
    server.setHooks({
      onMessagePublish: published.hook,
      onClientPublishAuthorize: (s, m) => {
        authorized.hook(s, m)
        return { allow: true }
      },
    })
    const [info] = await server.start({ listeners: [listener('tcp')] })
    const sub = await rawSubscriber(info, 'up/#')
    const pub = await rawSession(info, 5)
    await pub.write(
      publishPacket(5, 'up/order', 'x', { properties: props(...ORDERED.map(([k, v]) => userProp(k, v))) }),
    )

    const [, , message] = await published.called('onMessagePublish')
    expect(message.properties?.userProperties).toEqual(ORDERED)
    const [, request] = await authorized.called('onClientPublishAuthorize')
    expect(request.properties?.userProperties).toEqual(ORDERED)
    const delivered = await sub.next(PUBLISH)
    expect(wireUserProperties(delivered)).toEqual(ORDERED)
  })

  it('sent by publish() reach a 5.0 subscriber in the given order, duplicates kept; a 3.1.1 subscriber gets the message without them [MQTT-3.3.2-18]', async () => {
    const { server, listeners } = await startServer()
    const v5 = await rawSubscriber(listeners[0], 'sp/#')
    const v4 = await connect(urlFor(listeners[0]), { protocolVersion: 4 })
    await subscribe(v4, 'sp/#', 0)
    const box = inbox(v4)

    await server.publish('sp/order', 'x', { properties: { userProperties: ORDERED } })
    expect(wireUserProperties(await v5.next(PUBLISH))).toEqual(ORDERED)
    const m = await box.next()
    expect(m.payload.toString()).toBe('x')
    expect(m.packet.properties).toBeUndefined()
  })
})

describe('each property, from a client through the hooks', () => {
  it('contentType, payloadFormatIndicator, messageExpiryInterval, responseTopic and correlationData are seen in onMessagePublish, onClientPublishAuthorize, onMessageDelivered and onMessageAcked, and forwarded [MQTT-3.3.2-4, MQTT-3.3.2-15, MQTT-3.3.2-16, MQTT-3.3.2-20]', async () => {
    const server = track(new MqttServer())
    const isIt = (m: Addon.MessageInfo | Addon.PublishRequest) => m.topic === 'each/1'
    const published = firstCall((_s: unknown, _f: unknown, m: Addon.MessageInfo) => isIt(m))
    const delivered = firstCall((_s: unknown, _f: unknown, m: Addon.MessageInfo) => isIt(m))
    const acked = firstCall((_s: unknown, _f: unknown, m: Addon.MessageInfo) => isIt(m))
    let request: Addon.PublishRequest | undefined
    server.setHooks({
      onMessagePublish: published.hook,
      onMessageDelivered: delivered.hook,
      onMessageAcked: acked.hook,
      onClientPublishAuthorize: (_s, m) => {
        if (isIt(m)) request = m
        return { allow: true }
      },
    })
    const [info] = await server.start({ listeners: [listener('tcp')] })
    const url = urlFor(info)
    const sub = await connect(url, { protocolVersion: 5 })
    await sub.subscribeAsync('each/#', { qos: 1, properties: { subscriptionIdentifier: 42 } })
    const box = inbox(sub)
    const pub = await connect(url, { protocolVersion: 5 })
    const sent = {
      contentType: 'application/json',
      payloadFormatIndicator: true,
      messageExpiryInterval: 3600,
      responseTopic: 'each/reply',
      correlationData: Buffer.from('id-7'),
    }
    await pub.publishAsync('each/1', '{"a":1}', { qos: 1, properties: sent })

    const [, , m] = await published.called('onMessagePublish')
    expect(m.properties).toEqual(sent)
    expect(request?.properties).toEqual(sent)
    // The subscriber's copy carries its Subscription Identifier [MQTT-3.3.4-3].
    const [, , d] = await delivered.called('onMessageDelivered')
    expect(d.properties).toEqual({ ...sent, subscriptionIdentifiers: [42] })
    const [, , a] = await acked.called('onMessageAcked')
    expect(a.properties).toEqual({ ...sent, subscriptionIdentifiers: [42] })

    const got = (await box.next()).packet.properties
    expect(got?.contentType).toBe(sent.contentType)
    expect(got?.payloadFormatIndicator).toBe(true)
    expect(got?.responseTopic).toBe(sent.responseTopic)
    expect(got?.correlationData).toEqual(sent.correlationData)
    expect(got?.messageExpiryInterval).toBeGreaterThan(3590)
    expect(got?.messageExpiryInterval).toBeLessThanOrEqual(3600)
    expect(got?.subscriptionIdentifier).toBe(42)
  })

  it.each(['queued', 'retained'] as const)(
    'messageExpiryInterval is what is left: a %s message delivered 2 s later shows the time it waited taken off, in the hook as on the wire [MQTT-3.3.2-6]',
    async (kind) => {
      const server = track(new MqttServer())
      const delivered = firstCall((_s: unknown, _f: unknown, m: Addon.MessageInfo) => m.topic === 'left/1')
      server.setHooks({ onMessageDelivered: delivered.hook })
      const [info] = await server.start({ listeners: [listener('tcp')] })
      const url = urlFor(info)
      const session = {
        protocolVersion: 5,
        clientId: 'left-sub',
        clean: false,
        properties: { sessionExpiryInterval: 60 },
      } as const
      if (kind === 'queued') {
        const first = await connect(url, session)
        await subscribe(first, 'left/#', 1)
        await endClient(first)
      }
      const pub = await connect(url, { protocolVersion: 5 })
      await pub.publishAsync('left/1', kind, {
        qos: 1,
        retain: kind === 'retained',
        properties: { messageExpiryInterval: 100 },
      })
      // Expiry is about time passing: nothing to await but the clock.
      await new Promise((r) => setTimeout(r, 2100))
      let box: ReturnType<typeof inbox> | undefined
      const sub = await connect(url, session, (c) => {
        box = inbox(c)
      })
      if (kind === 'retained') await subscribe(sub, 'left/#', 1)

      const onWire = (await box!.next()).packet.properties?.messageExpiryInterval ?? 0
      const [, , m] = await delivered.called('onMessageDelivered')
      const left = m.properties?.messageExpiryInterval ?? 0
      expect(left).toBeLessThanOrEqual(98)
      expect(left).toBeGreaterThan(80)
      expect(onWire).toBeLessThanOrEqual(98)
      expect(Math.abs(onWire - left)).toBeLessThanOrEqual(1)
    },
  )

  it("a 3.1.1 publisher's message reaches a 5.0 subscriber with its Subscription Identifier, and the hook sees it [MQTT-3.3.4-3]", async () => {
    const server = track(new MqttServer())
    const delivered = firstCall((_s: unknown, _f: unknown, m: Addon.MessageInfo) => m.topic === 'sid3/1')
    server.setHooks({ onMessageDelivered: delivered.hook })
    const [info] = await server.start({ listeners: [listener('tcp')] })
    const url = urlFor(info)
    const sub = await connect(url, { protocolVersion: 5 })
    await sub.subscribeAsync('sid3/#', { qos: 1, properties: { subscriptionIdentifier: 5 } })
    const box = inbox(sub)
    const pub = await connect(url, { protocolVersion: 4 })
    await pub.publishAsync('sid3/1', 'x', { qos: 1 })

    expect((await box.next()).packet.properties?.subscriptionIdentifier).toBe(5)
    const [, , m] = await delivered.called('onMessageDelivered')
    expect(m.properties).toEqual({ subscriptionIdentifiers: [5] })
  })

  it('a message without properties has `properties: undefined`, from a 3.1.1 or a 5.0 publisher', async () => {
    const server = track(new MqttServer())
    const messages: Addon.MessageInfo[] = []
    // Notifications run in order: once the last one ran, all did.
    const last = firstCall((_s: unknown, _f: unknown, m: Addon.MessageInfo) => m.topic === 'none/server')
    server.setHooks({
      onMessagePublish: (s, f, m) => {
        if (m.topic.startsWith('none/')) messages.push(m)
        last.hook(s, f, m)
      },
    })
    const [info] = await server.start({ listeners: [listener('tcp')] })
    const url = urlFor(info)
    for (const protocolVersion of [4, 5] as const) {
      const pub = await connect(url, { protocolVersion })
      await pub.publishAsync(`none/${protocolVersion}`, 'x', { qos: 1 })
    }
    await server.publish('none/server', 'x', { qos: 1 })
    await last.called('onMessagePublish')
    expect(messages.map((m) => m.topic)).toEqual(['none/4', 'none/5', 'none/server'])
    for (const m of messages) {
      expect(m.properties, m.topic).toBeUndefined()
      expect(Object.keys(m), m.topic).toContain('properties') // one shape for every message
    }
  })
})

describe('publish() with properties', () => {
  it('sends each field to 5.0 subscribers, and onMessagePublish sees them [MQTT-3.3.2-4, MQTT-3.3.2-15, MQTT-3.3.2-16, MQTT-3.3.2-20]', async () => {
    const server = track(new MqttServer())
    const published = firstCall((_s: unknown, _f: Addon.MessageFrom, m: Addon.MessageInfo) => m.topic === 'pp/1')
    server.setHooks({ onMessagePublish: published.hook })
    const [info] = await server.start({ listeners: [listener('tcp')] })
    const sub = await connect(urlFor(info), { protocolVersion: 5 })
    await subscribe(sub, 'pp/#', 1)
    const box = inbox(sub)
    const properties = {
      userProperties: [['k', 'v']] as Array<[string, string]>,
      responseTopic: 'pp/reply',
      correlationData: new Uint8Array([9, 8, 7]),
      contentType: 'text/plain; charset=utf-8',
      payloadFormatIndicator: true,
      messageExpiryInterval: 600,
    }
    await server.publish('pp/1', 'héllo', { qos: 1, properties })

    const got = (await box.next()).packet.properties
    expect(got?.userProperties).toEqual({ k: 'v' })
    expect(got?.responseTopic).toBe('pp/reply')
    expect(got?.correlationData).toEqual(Buffer.from([9, 8, 7]))
    expect(got?.contentType).toBe('text/plain; charset=utf-8')
    expect(got?.payloadFormatIndicator).toBe(true)
    expect(got?.messageExpiryInterval).toBeGreaterThan(590)
    expect(got?.messageExpiryInterval).toBeLessThanOrEqual(600)
    const [, from, m] = await published.called('onMessagePublish')
    expect(from.type).toBe('system')
    expect(m.properties).toEqual({ ...properties, correlationData: Buffer.from([9, 8, 7]) })
  })

  it('payloadFormatIndicator: false is the same as none', async () => {
    const { server, listeners } = await startServer()
    const sub = await connect(urlFor(listeners[0]), { protocolVersion: 5 })
    await subscribe(sub, 'pf/#', 1)
    const box = inbox(sub)
    await server.publish('pf/1', 'x', { qos: 1, properties: { payloadFormatIndicator: false } })
    expect((await box.next()).packet.properties?.payloadFormatIndicator).toBeFalsy()
  })

  it('a retained message with messageExpiryInterval is gone once it expired [MQTT-3.3.2-5]', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    await server.publish('rx/short', 'gone', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } })
    await server.publish('rx/long', 'kept', { qos: 1, retain: true, properties: { messageExpiryInterval: 60 } })
    // Expiry is about time passing: nothing to await but the clock.
    await new Promise((r) => setTimeout(r, 2100))
    const sub = await connect(url, { protocolVersion: 5 })
    const box = inbox(sub)
    await subscribe(sub, 'rx/#', 2)
    const before = await drain(box, server, 'rx/end')
    expect(before.map((m) => m.topic)).toEqual(['rx/long'])
  })

  it('counts the properties in the maxPacketSize check', async () => {
    const { server } = await startServer([listener('tcp', { maxPacketSize: 200 })])
    await server.publish('t', Buffer.alloc(150))
    await expect(
      server.publish('t', Buffer.alloc(150), { properties: { correlationData: Buffer.alloc(100) } }),
    ).rejects.toThrow(/^payload: is 150 bytes; with this topic and properties the message would be a 258-byte PUBLISH/)
  })

  const longString = 'x'.repeat(65_536)
  it.each([
    ['properties not an object', 5, /^properties: expected an object, got a number$/],
    ['properties an array', [], /^properties: expected an object, got an array$/],
    [
      'userProperties not an array',
      { userProperties: { a: 'b' } },
      /^properties\.userProperties: must be an array of \[key, value\] pairs, got an object$/,
    ],
    [
      'a user property not a pair',
      { userProperties: [['a', 'b'], ['c']] },
      /^properties\.userProperties\[1\]: must be a \[key, value\] pair of strings, got 1 elements$/,
    ],
    [
      'a user property key not a string',
      {
        userProperties: [
          ['a', 'b'],
          ['c', 'd'],
          [1, 'v'],
        ],
      },
      /^properties\.userProperties\[2\]\[0\]: must be a string, got a number$/,
    ],
    [
      'a user property value with NUL',
      { userProperties: [['a', 'b\u0000']] },
      /^properties\.userProperties\[0\]\[1\]: must not contain the NUL character$/,
    ],
    ['responseTopic not a string', { responseTopic: 5 }, /^properties\.responseTopic: must be a string, got a number$/],
    [
      'responseTopic with a wildcard [MQTT-3.3.2-14]',
      { responseTopic: 'a/#' },
      /^properties\.responseTopic: "a\/#" contains a wildcard/,
    ],
    ['responseTopic empty', { responseTopic: '' }, /^properties\.responseTopic: must not be empty$/],
    [
      'correlationData a string',
      { correlationData: 'abc' },
      /^properties\.correlationData: must be a Buffer or Uint8Array, got a string$/,
    ],
    [
      'correlationData over 65535 bytes',
      { correlationData: Buffer.alloc(65_536) },
      /^properties\.correlationData: is 65536 bytes long, the MQTT limit is 65535$/,
    ],
    ['contentType not a string', { contentType: null }, /^properties\.contentType: must be a string, got null$/],
    [
      'contentType over 65535 bytes',
      { contentType: longString },
      /^properties\.contentType: is 65536 bytes long in UTF-8, the MQTT limit is 65535$/,
    ],
    [
      'payloadFormatIndicator 1',
      { payloadFormatIndicator: 1 },
      /^properties\.payloadFormatIndicator: must be a boolean, got a number$/,
    ],
    [
      'messageExpiryInterval 0',
      { messageExpiryInterval: 0 },
      /^properties\.messageExpiryInterval: must be an integer from 1 to 4294967295 \(seconds; omit it for no expiry\), got 0$/,
    ],
    [
      'messageExpiryInterval 1.5',
      { messageExpiryInterval: 1.5 },
      /^properties\.messageExpiryInterval: must be an integer from 1 to 4294967295 .*, got 1\.5$/,
    ],
    [
      'messageExpiryInterval over 2^32-1',
      { messageExpiryInterval: 2 ** 32 },
      /^properties\.messageExpiryInterval: must be an integer .*, got 4294967296$/,
    ],
    [
      'subscriptionIdentifiers [MQTT-3.3.4-6]',
      { subscriptionIdentifiers: [1] },
      /^properties\.subscriptionIdentifiers: set by the broker for each subscriber; a publish cannot carry them$/,
    ],
    [
      'an unknown property',
      { topicAlias: 1 },
      /^properties\.topicAlias: unknown property; expected one of userProperties, responseTopic, correlationData, contentType, payloadFormatIndicator, messageExpiryInterval$/,
    ],
  ])('refuses %s, naming the field', async (_what, properties, error) => {
    const { server } = await startServer()
    // @ts-expect-error: invalid on purpose
    const call = server.publish('t', 'x', { properties })
    await expect(call).rejects.toThrow(error)
    await expect(call).rejects.toMatchObject({ code: 'InvalidArg' })
  })

  it('refuses payloadFormatIndicator: true with a payload that is not UTF-8', async () => {
    const { server } = await startServer()
    await expect(
      server.publish('t', Buffer.from([0xff, 0xfe]), { properties: { payloadFormatIndicator: true } }),
    ).rejects.toThrow(/^properties\.payloadFormatIndicator: is true \(UTF-8 text\) but the payload is not valid UTF-8$/)
  })
})
