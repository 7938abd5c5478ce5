/**
 * Conformance: PUBLISH and its acknowledgements both ways, flow control
 * (Receive Maximum), Maximum Packet Size and Topic Aliases (MQTT 5.0 2.2.1,
 * 3.3-3.7, 4.3, 4.4, 4.6, 4.9; MQTT 3.1.1 2.3.1, 3.3-3.7, 4.3, 4.4, 4.6).
 * Raw clients: the tests read packet ids, flags and properties on the wire,
 * and hold acknowledgements back. Test names start with the statement id.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { listener, MqttServer, startServer, track } from '../helpers'
import {
  CONNACK,
  DISCONNECT,
  decodeAck,
  decodeConnack,
  decodeDisconnect,
  decodePublish,
  nextPublish,
  PUBACK,
  PUBCOMP,
  PUBLISH,
  PUBREC,
  PUBREL,
  packet,
  prop,
  propValue,
  props,
  publishes,
  publishPacket,
  rawSession,
  rawSubscribe,
  readVarint,
  u16,
  type Version,
} from '../raw'
import { label, persistent, pick, teardown } from './spec'

afterEach(teardown)

/** An acknowledgement packet (PUBACK 0x40, PUBREC 0x50, PUBREL 0x62, PUBCOMP 0x70). */
const ack = (first: number, id: number, code?: number) =>
  packet(first, u16(id), ...(code === undefined ? [] : [Buffer.from([code, 0])]))

/** Every packet's Remaining Length in `bytes` uses the fewest bytes it can. */
function minimalLengths(bytes: Buffer): boolean {
  let i = 0
  while (i < bytes.length) {
    const { value, end } = readVarint(bytes, i + 1)
    const used = end - i - 1
    const need = value < 128 ? 1 : value < 16384 ? 2 : value < 2097152 ? 3 : 4
    if (used !== need) return false
    i = end + value
  }
  return true
}

describe.each([4, 5] as Version[])('MQTT %s PUBLISH flows', (v) => {
  const name = label(v)

  it(`${name}: ${pick(v, 'MQTT-3.3.4-1 MQTT-4.3.2-4 MQTT-4.3.2-5 MQTT-2.2.1-5 MQTT-3.4.2-1', 'MQTT-3.3.4-1 MQTT-4.3.2-2 MQTT-2.3.1-6')}: a QoS 1 PUBLISH gets a PUBACK with its id; the same id after the PUBACK is a new message`, async () => {
    const { listeners } = await startServer()
    const sub = await rawSession(listeners[0], v)
    await rawSubscribe(sub, v, 1, [['q1/#', 1]])
    const pub = await rawSession(listeners[0], v)
    await pub.write(publishPacket(v, 'q1/a', 'one', { qos: 1, packetId: 77 }))
    const first = decodeAck(await pub.next(PUBACK), v)
    expect(first.packetId).toBe(77)
    if (v === 5) expect([0x00, 0x10]).toContain(first.codes[0])
    await pub.write(publishPacket(v, 'q1/a', 'two', { qos: 1, packetId: 77 }))
    await pub.count(PUBACK, 2)
    await sub.count(PUBLISH, 2)
    expect(publishes(sub, v).map((p) => p.payload.toString())).toEqual(['one', 'two'])
  })

  it(`${name}: ${pick(v, 'MQTT-4.3.3-8 MQTT-4.3.3-10 MQTT-4.3.3-11 MQTT-4.3.3-12 MQTT-3.5.2-1 MQTT-3.7.2-1', 'MQTT-4.3.3-2 MQTT-2.3.1-6')}: QoS 2 inbound: PUBREC, a resent PUBLISH is not delivered twice, PUBREL gets PUBCOMP, then the id is new`, async () => {
    const { listeners } = await startServer()
    const sub = await rawSession(listeners[0], v)
    await rawSubscribe(sub, v, 1, [['q2/#', 2]])
    const pub = await rawSession(listeners[0], v)
    await pub.write(publishPacket(v, 'q2/a', 'one', { qos: 2, packetId: 9 }))
    expect(decodeAck(await pub.next(PUBREC), v).packetId).toBe(9)
    await pub.write(publishPacket(v, 'q2/a', 'one', { qos: 2, packetId: 9, dup: true }))
    await pub.count(PUBREC, 2)
    await pub.write(ack(0x62, 9))
    expect(decodeAck(await pub.next(PUBCOMP), v).packetId).toBe(9)
    await pub.write(publishPacket(v, 'q2/a', 'two', { qos: 2, packetId: 9 }))
    await pub.count(PUBREC, 3)
    await pub.write(ack(0x62, 9))
    await pub.count(PUBCOMP, 2)
    // Complete the deliveries to the subscriber as they come.
    const seen: string[] = []
    for (let n = 1; n <= 2; n++) {
      const p = decodePublish((await sub.count(PUBLISH, n))[n - 1], v)
      seen.push(p.payload.toString())
      await sub.write(ack(0x50, p.packetId as number))
      await sub.match(PUBREL, (x) => x.body.readUInt16BE(0) === p.packetId)
      await sub.write(ack(0x70, p.packetId as number))
    }
    await sub.ping()
    expect(seen).toEqual(['one', 'two'])
    expect(publishes(sub, v)).toHaveLength(2)
    if (v === 5) {
      for (const code of [...pub.packets().filter((p) => p.type === PUBREC)].map((p) => decodeAck(p, 5).codes[0])) {
        expect([0x00, 0x10]).toContain(code)
      }
    }
  })

  it(`${name}: ${pick(v, 'MQTT-4.3.1-1 MQTT-3.3.1-2 MQTT-2.2.1-2 MQTT-3.3.1-3 MQTT-3.3.2-3 MQTT-1.5.5-1', 'MQTT-4.3.1-1 MQTT-3.3.1-2 MQTT-2.3.1-5 MQTT-3.3.1-3 MQTT-3.3.2-3')}: QoS 0 goes out with DUP 0 and no packet id; an incoming DUP 1 is not copied; lengths are minimal`, async () => {
    const { listeners } = await startServer()
    const sub = await rawSession(listeners[0], v)
    await rawSubscribe(sub, v, 1, [
      ['z/+', 0],
      ['d/#', 1],
    ])
    const pub = await rawSession(listeners[0], v)
    const big = Buffer.alloc(20_000, 7)
    await pub.write(publishPacket(v, 'z/a', big))
    await pub.write(publishPacket(v, 'd/a', 'dup', { qos: 1, packetId: 3, dup: true }))
    const z = await nextPublish(sub, 'z/a', v)
    expect([z.dup, z.qos, z.packetId, z.payload.equals(big)]).toEqual([false, 0, undefined, true])
    const d = await nextPublish(sub, 'd/a', v)
    expect([d.dup, d.qos]).toEqual([false, 1])
    expect(minimalLengths(sub.received)).toBe(true)
  })

  it(`${name}: ${pick(v, 'MQTT-2.2.1-4 MQTT-4.3.2-1 MQTT-4.3.2-2 MQTT-4.3.2-3 MQTT-3.3.1-1 MQTT-4.4.0-1', 'MQTT-2.3.1-2 MQTT-2.3.1-4 MQTT-4.3.2-1 MQTT-3.3.1-1 MQTT-4.4.0-1')}: unacknowledged QoS 1 deliveries have distinct non-zero ids and are resent only on reconnect, with DUP 1 and the same ids`, async () => {
    const { listeners } = await startServer()
    const session = persistent(v, `resend-${v}-${process.pid}`)
    const sub = await rawSession(listeners[0], v, session)
    await rawSubscribe(sub, v, 1, [['r/#', 1]])
    const pub = await rawSession(listeners[0], v)
    for (let i = 0; i < 3; i++) await pub.write(publishPacket(v, 'r/a', `${i}`, { qos: 1, packetId: i + 1 }))
    const first = (await sub.count(PUBLISH, 3)).map((p) => decodePublish(p, v))
    const ids = first.map((p) => p.packetId as number)
    expect(new Set(ids).size).toBe(3)
    expect(ids.every((id) => id > 0)).toBe(true)
    expect(first.every((p) => !p.dup && p.qos === 1)).toBe(true)
    // Nothing is resent on the live connection (a ping round trip is the bound).
    await sub.ping()
    expect(publishes(sub, v)).toHaveLength(3)
    sub.destroy()
    await sub.waitClosed()
    const again = await rawSession(listeners[0], v, session)
    const resent = (await again.count(PUBLISH, 3)).map((p) => decodePublish(p, v))
    expect(resent.map((p) => [p.dup, p.packetId, p.payload.toString()])).toEqual(
      first.map((p) => [true, p.packetId, p.payload.toString()]),
    )
  })

  it(`${name}: ${pick(v, 'MQTT-4.3.3-1 MQTT-4.3.3-2 MQTT-4.3.3-3 MQTT-4.3.3-4 MQTT-4.3.3-5 MQTT-4.3.3-6 MQTT-3.6.2-1', 'MQTT-4.3.3-1 MQTT-4.4.0-1')}: QoS 2 outbound: PUBREL with the id after PUBREC; on reconnect the PUBREL is resent, not the PUBLISH`, async () => {
    const { listeners } = await startServer()
    const session = persistent(v, `q2out-${v}-${process.pid}`)
    const sub = await rawSession(listeners[0], v, session)
    await rawSubscribe(sub, v, 1, [['o2/#', 2]])
    const pub = await rawSession(listeners[0], v)
    await pub.write(publishPacket(v, 'o2/a', 'x', { qos: 2, packetId: 1 }))
    await pub.next(PUBREC)
    await pub.write(ack(0x62, 1))
    const p = await nextPublish(sub, 'o2/a', v)
    expect([p.qos, p.dup]).toEqual([2, false])
    await sub.write(ack(0x50, p.packetId as number))
    const rel = decodeAck(await sub.next(PUBREL), v)
    expect(rel.packetId).toBe(p.packetId)
    if (v === 5) expect([0x00, 0x92]).toContain(rel.codes[0])
    sub.destroy()
    await sub.waitClosed()
    const again = await rawSession(listeners[0], v, session)
    const rel2 = decodeAck(await again.next(PUBREL), v)
    expect(rel2.packetId).toBe(p.packetId)
    await again.write(ack(0x70, p.packetId as number))
    await again.ping()
    expect(publishes(again, v)).toEqual([])
  })

  it(`${name}: MQTT-4.6.0-5 MQTT-4.6.0-6: 200 messages of one topic and QoS from one client arrive in the order sent`, async () => {
    const { listeners } = await startServer()
    const sub = await rawSession(listeners[0], v)
    await rawSubscribe(sub, v, 1, [['ord/#', 1]])
    const pub = await rawSession(listeners[0], v)
    const n = 200
    await pub.write(
      Buffer.concat(
        Array.from({ length: n }, (_, i) => publishPacket(v, 'ord/a', `${i}`, { qos: 1, packetId: i + 1 })),
      ),
    )
    const got = []
    for (let i = 0; i < n; i++) {
      const m = decodePublish((await sub.count(PUBLISH, i + 1))[i], v)
      got.push(Number(m.payload.toString()))
      await sub.write(ack(0x40, m.packetId as number))
    }
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i))
  })
})

describe('MQTT 5.0 acknowledgement failures', () => {
  it('MQTT-4.4.0-2: a delivery the client answered with PUBACK 0x80 is complete: not resent on reconnect', async () => {
    const { listeners } = await startServer()
    const session = persistent(5, `nack-${process.pid}`)
    const sub = await rawSession(listeners[0], 5, session)
    await rawSubscribe(sub, 5, 1, [['nack/#', 1]])
    const pub = await rawSession(listeners[0], 5)
    await pub.write(publishPacket(5, 'nack/a', 'refused', { qos: 1, packetId: 1 }))
    await pub.write(publishPacket(5, 'nack/b', 'unanswered', { qos: 1, packetId: 2 }))
    const a = await nextPublish(sub, 'nack/a')
    await nextPublish(sub, 'nack/b')
    await sub.write(ack(0x40, a.packetId as number, 0x80))
    await sub.ping()
    sub.destroy()
    await sub.waitClosed()
    // Only the unanswered one comes again.
    const again = await rawSession(listeners[0], 5, session)
    await nextPublish(again, 'nack/b')
    await again.ping()
    expect(publishes(again).map((p) => p.topic)).toEqual(['nack/b'])
  })
})

describe('MQTT 5.0 expiry during a QoS 2 exchange', () => {
  // The interval is whole seconds; 2.2 s is past a 1 s one with slack.
  const pastExpiry = () => new Promise((r) => setTimeout(r, 2200))

  it('MQTT-4.3.3-13: a PUBREL for a message that expired meanwhile still gets its PUBCOMP', async () => {
    const { listeners } = await startServer()
    const pub = await rawSession(listeners[0], 5)
    await pub.write(publishPacket(5, 'exp/in', 'x', { qos: 2, packetId: 4, properties: props(prop.messageExpiry(1)) }))
    await pub.next(PUBREC)
    await pastExpiry()
    await pub.write(ack(0x62, 4))
    expect(decodeAck(await pub.next(PUBCOMP)).packetId).toBe(4)
  })

  it('MQTT-4.3.3-7: once the PUBLISH went out, its expiry no longer applies: a late PUBREC still gets the PUBREL', async () => {
    const { listeners } = await startServer()
    const sub = await rawSession(listeners[0], 5)
    await rawSubscribe(sub, 5, 1, [['exp/#', 2]])
    const pub = await rawSession(listeners[0], 5)
    await pub.write(publishPacket(5, 'exp/out', 'x', { qos: 2, packetId: 1, properties: props(prop.messageExpiry(1)) }))
    const p = await nextPublish(sub, 'exp/out')
    await pastExpiry()
    await sub.write(ack(0x50, p.packetId as number))
    expect(decodeAck(await sub.next(PUBREL)).packetId).toBe(p.packetId)
  })
})

describe('MQTT 5.0 flow control', () => {
  it("MQTT-3.3.4-9 MQTT-4.9.0-2 MQTT-3.3.4-10 MQTT-4.9.0-3: the broker sends at most the client's Receive Maximum unacknowledged, and still answers other packets", async () => {
    const { listeners } = await startServer()
    const sub = await rawSession(listeners[0], 5, { properties: props(prop.receiveMaximum(2)) })
    await rawSubscribe(sub, 5, 1, [['rm/#', 1]])
    const pub = await rawSession(listeners[0], 5)
    for (let i = 0; i < 5; i++) await pub.write(publishPacket(5, 'rm/a', `${i}`, { qos: 1, packetId: i + 1 }))
    await pub.count(PUBACK, 5)
    await sub.count(PUBLISH, 2)
    // The broker holds the other three; a ping round trip and a SUBACK still come.
    await sub.ping()
    await rawSubscribe(sub, 5, 2, [['other', 0]])
    expect(publishes(sub)).toHaveLength(2)
    // Each acknowledgement lets exactly one more through.
    const acked: number[] = []
    for (let n = 2; n < 5; n++) {
      const p = publishes(sub)[n - 2]
      acked.push(p.packetId as number)
      await sub.write(ack(0x40, p.packetId as number))
      await sub.count(PUBLISH, n + 1)
      await sub.ping()
      expect(publishes(sub)).toHaveLength(n + 1)
    }
    expect(publishes(sub).map((p) => p.payload.toString())).toEqual(['0', '1', '2', '3', '4'])
  })

  it('MQTT-4.9.0-1 MQTT-4.13.1-1 MQTT-4.13.2-1 MQTT-3.14.2-1 MQTT-3.14.0-1: CONNACK gives Receive Maximum; a client exceeding it gets DISCONNECT 0x93, then the close', async () => {
    const { listeners } = await startServer([listener('tcp', { maxInflight: 3 })])
    const pub = await rawSession(listeners[0], 5)
    expect(propValue(decodeConnack(await pub.next(CONNACK)).props, 0x21)).toBe(3)
    // QoS 2 without PUBREL: each stays unacknowledged.
    for (let i = 1; i <= 4; i++) await pub.write(publishPacket(5, 'rx/a', 'x', { qos: 2, packetId: i }))
    const d = decodeDisconnect(await pub.next(DISCONNECT))
    expect(d.code).toBe(0x93)
    await pub.waitClosed()
  })
})

describe('MQTT 5.0 Maximum Packet Size', () => {
  it("MQTT-3.1.2-24 MQTT-3.1.2-25: a message larger than the client's Maximum Packet Size is not sent to it; the next one is", async () => {
    const { listeners } = await startServer()
    const sub = await rawSession(listeners[0], 5, { properties: props(prop.maximumPacketSize(256)) })
    await rawSubscribe(sub, 5, 1, [['mps/#', 1]])
    const pub = await rawSession(listeners[0], 5)
    await pub.write(publishPacket(5, 'mps/big', Buffer.alloc(300), { qos: 1, packetId: 1 }))
    await pub.write(publishPacket(5, 'mps/small', 'fits', { qos: 1, packetId: 2 }))
    const small = await nextPublish(sub, 'mps/small')
    await sub.write(ack(0x40, small.packetId as number))
    await sub.ping()
    expect(publishes(sub).map((p) => p.topic)).toEqual(['mps/small'])
    for (const p of sub.packets()) expect(p.body.length + 2).toBeLessThanOrEqual(256)
  })

  it('MQTT-4.13.1-1 MQTT-4.13.2-1: CONNACK gives the listener maxPacketSize; a larger packet gets DISCONNECT 0x95, then the close', async () => {
    const { listeners } = await startServer([listener('tcp', { maxPacketSize: 1024 })])
    const pub = await rawSession(listeners[0], 5)
    expect(propValue(decodeConnack(await pub.next(CONNACK)).props, 0x27)).toBe(1024)
    await pub.write(publishPacket(5, 'big', Buffer.alloc(2000)))
    expect(decodeDisconnect(await pub.next(DISCONNECT)).code).toBe(0x95)
    await pub.waitClosed()
  })
})

describe('MQTT 5.0 Topic Alias', () => {
  it('MQTT-3.3.2-12 MQTT-3.3.2-9 MQTT-3.3.2-8: the broker accepts every alias from 1 to its Topic Alias Maximum; 0 or above it is DISCONNECT 0x94', async () => {
    const { listeners } = await startServer([listener('tcp', { maxTopicAliases: 3 })])
    const sub = await rawSession(listeners[0], 5)
    await rawSubscribe(sub, 5, 1, [['ta/#', 0]])
    const pub = await rawSession(listeners[0], 5)
    expect(propValue(decodeConnack(await pub.next(CONNACK)).props, 0x22)).toBe(3)
    for (const alias of [1, 2, 3]) {
      await pub.write(publishPacket(5, `ta/${alias}`, 'set', { properties: props(prop.topicAlias(alias)) }))
    }
    for (const alias of [3, 2, 1]) {
      await pub.write(publishPacket(5, '', `use ${alias}`, { properties: props(prop.topicAlias(alias)) }))
    }
    await sub.count(PUBLISH, 6)
    expect(publishes(sub).map((p) => `${p.topic} ${p.payload}`)).toEqual([
      'ta/1 set',
      'ta/2 set',
      'ta/3 set',
      'ta/3 use 3',
      'ta/2 use 2',
      'ta/1 use 1',
    ])
    for (const alias of [0, 4]) {
      const c = await rawSession(listeners[0], 5)
      await c.write(publishPacket(5, 'ta/x', 'bad', { properties: props(prop.topicAlias(alias)) }))
      expect(decodeDisconnect(await c.next(DISCONNECT)).code).toBe(0x94)
      await c.waitClosed()
    }
  })

  it('MQTT-3.3.2-7: an alias set on one connection means nothing on the next (DISCONNECT 0x82)', async () => {
    const { listeners } = await startServer([listener('tcp', { maxTopicAliases: 3 })])
    const clientId = `alias-${process.pid}`
    const first = await rawSession(listeners[0], 5, { clientId })
    await first.write(publishPacket(5, 'ta/one', 'x', { properties: props(prop.topicAlias(1)) }))
    await first.ping()
    first.destroy()
    await first.waitClosed()
    const second = await rawSession(listeners[0], 5, { clientId })
    await second.write(publishPacket(5, '', 'y', { properties: props(prop.topicAlias(1)) }))
    expect(decodeDisconnect(await second.next(DISCONNECT)).code).toBe(0x82)
    await second.waitClosed()
  })

  it("MQTT-3.1.2-26 MQTT-3.3.2-11 MQTT-3.1.2-27: the broker's aliases stay within the client's Topic Alias Maximum and are never 0; none without one", async () => {
    const { listeners } = await startServer([listener('tcp', { maxTopicAliases: 8 })])
    const withMax = await rawSession(listeners[0], 5, { properties: props(prop.topicAliasMaximum(2)) })
    await rawSubscribe(withMax, 5, 1, [['sa/#', 0]])
    const without = await rawSession(listeners[0], 5)
    await rawSubscribe(without, 5, 1, [['sa/#', 0]])
    const pub = await rawSession(listeners[0], 5)
    const topics = ['sa/a', 'sa/b', 'sa/c', 'sa/a', 'sa/b', 'sa/c', 'sa/a']
    for (const t of topics) await pub.write(publishPacket(5, t, t))
    for (const c of [withMax, without]) await c.count(PUBLISH, topics.length)
    const aliases = publishes(withMax).map((p) => propValue<number>(p.props, 0x23))
    for (const a of aliases) if (a !== undefined) expect(a).toBeGreaterThanOrEqual(1)
    for (const a of aliases) if (a !== undefined) expect(a).toBeLessThanOrEqual(2)
    // Resolve the aliases as a client would: the payload is the topic.
    const map = new Map<number, string>()
    const resolved = publishes(withMax).map((p) => {
      const a = propValue<number>(p.props, 0x23)
      if (a !== undefined && p.topic !== '') map.set(a, p.topic)
      return p.topic !== '' ? p.topic : map.get(a as number)
    })
    expect(resolved).toEqual(topics)
    expect(publishes(without).every((p) => propValue(p.props, 0x23) === undefined)).toBe(true)
  })
})

describe('MQTT 3.1.1 denied PUBLISH', () => {
  it('MQTT-3.3.5-2 (3.1.1): a PUBLISH the broker does not authorize gets its PUBACK (or the connection is closed), and is not delivered', async () => {
    const server = track(new MqttServer())
    server.setHooks({ onClientPublishAuthorize: (_s, m) => ({ allow: m.topic !== 'deny/x' }) })
    const [info] = await server.start({ listeners: [listener('tcp')] })
    const sub = await rawSession(info, 4)
    await rawSubscribe(sub, 4, 1, [['deny/#', 1]])
    const pub = await rawSession(info, 4)
    await pub.write(publishPacket(4, 'deny/x', 'no', { qos: 1, packetId: 5 }))
    try {
      expect(decodeAck(await pub.next(PUBACK), 4).packetId).toBe(5)
    } catch {
      await pub.waitClosed()
    }
    const other = await rawSession(info, 4)
    await other.write(publishPacket(4, 'deny/ok', 'yes'))
    await nextPublish(sub, 'deny/ok', 4)
    expect(publishes(sub, 4).map((p) => p.topic)).toEqual(['deny/ok'])
  })
})
