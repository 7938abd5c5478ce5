/**
 * Hostile and careless clients at the connection and packet level: silent
 * and half-sent connections, oversized WebSocket messages, malformed
 * CONNECTs, invalid topics. Each is answered as the MQTT spec says (cited by
 * id) and costs the broker little; nothing invalid is ever routed.
 */
import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  drain,
  inbox,
  listener,
  MQTT_VERSIONS,
  type Protocol,
  patternBytes,
  startServer,
  subscribe,
  urlFor,
} from './helpers'
import {
  CONNACK,
  connectPacket,
  destroyRaw,
  DISCONNECT,
  prop,
  props,
  publishPacket,
  rawConnect,
  rawSession,
  rawTcp,
  rawWebSocket,
  str,
  SUBACK,
  subscribePacket,
  type RawClient,
  type Version,
  wsFrame,
} from './raw'

afterEach(async () => {
  destroyRaw()
  await cleanup()
})

const PROTOCOLS: Protocol[] = ['tcp', 'tls', 'ws', 'wss']

/** Generous: the broker closes after 1 s; a busy 2-core machine may lag. */
const CLOSE_WITHIN = 15_000

/**
 * A v3.1.1 client that broke the protocol is closed without a word (no
 * CONNACK, no DISCONNECT): all it got is `got` bytes (its CONNACK, if any).
 */
async function closedSilently(c: RawClient, got = 0): Promise<void> {
  await c.waitClosed(CLOSE_WITHIN)
  expect(c.received.length).toBe(got)
}

/** The reason code of the CONNACK an MQTT 5 client got, once the broker closed the connection. */
async function connackThenClose(c: RawClient): Promise<number> {
  const ack = await c.next(CONNACK)
  await c.waitClosed(CLOSE_WITHIN)
  expect(ack.body[0]).toBe(0) // session present: 0 on a refusal [MQTT-3.2.2-6]
  return ack.body[1]
}

/** The reason code of the DISCONNECT an MQTT 5 session got, once the broker closed the connection. */
async function disconnectThenClose(c: RawClient): Promise<number> {
  const d = await c.next(DISCONNECT)
  await c.waitClosed(CLOSE_WITHIN)
  return d.body[0]
}

describe('silent connections: the handshake timeout starts at accept', () => {
  it.each(PROTOCOLS)('%s: a connection that sends nothing at all is closed', async (protocol) => {
    const { listeners } = await startServer([listener(protocol, { handshakeTimeout: 1000 })])
    // Not even a TLS ClientHello or an HTTP upgrade request.
    const c = await rawTcp(listeners[0])
    await c.waitClosed(CLOSE_WITHIN)
  })

  it.each(['tls', 'wss'] as Protocol[])(
    '%s: a client that completes TLS, then sends nothing, is closed',
    async (protocol) => {
      const { listeners } = await startServer([listener(protocol, { handshakeTimeout: 1000 })])
      const c = await rawConnect(listeners[0])
      await c.waitClosed(CLOSE_WITHIN)
    },
  )

  it.each(['ws', 'wss'] as Protocol[])(
    '%s: a client that completes the WebSocket upgrade, then sends nothing, is closed',
    async (protocol) => {
      const { listeners } = await startServer([listener(protocol, { handshakeTimeout: 1000 })])
      const c = await rawWebSocket(listeners[0])
      await c.waitClosed(CLOSE_WITHIN)
    },
  )

  it('200 silent TCP connections are all closed', async () => {
    const { listeners } = await startServer([listener('tcp', { handshakeTimeout: 1000 })])
    const cs = await Promise.all(Array.from({ length: 200 }, () => rawTcp(listeners[0])))
    await Promise.all(cs.map((c) => c.waitClosed(CLOSE_WITHIN)))
  })

  it('a CONNECT trickled a byte at a time does not extend the timeout', async () => {
    const { listeners } = await startServer([listener('tcp', { handshakeTimeout: 1000 })])
    const c = await rawTcp(listeners[0])
    // 200 bytes at one per 100 ms would take 20 s; the broker closes after ~1 s.
    const bytes = connectPacket({ version: 4, clientId: 'x'.repeat(180) })
    const closed = c.waitClosed(CLOSE_WITHIN)
    for (let i = 0; i < bytes.length && !c.socket.closed; i++) {
      c.socket.write(bytes.subarray(i, i + 1))
      await new Promise((r) => setTimeout(r, 100))
    }
    await closed
    expect(c.received.length).toBe(0)
  })

  // A handshake timeout is no refusal by the server: no CONNACK 0x03
  // "Server unavailable", the connection is just closed.
  it.each([4, 5] as Version[])(
    'MQTT version %i: a CONNECT cut short gets no CONNACK, only a close',
    async (version) => {
      const { listeners } = await startServer([listener('tcp', { handshakeTimeout: 1000 })])
      const c = await rawTcp(listeners[0])
      const bytes = connectPacket({ version, clientId: 'cut-short' })
      await c.write(bytes.subarray(0, bytes.length - 4))
      await closedSilently(c)
    },
  )

  it('a live client still connects, and the default applies without the option', async () => {
    const { listeners } = await startServer([listener('tcp', { handshakeTimeout: 1000 }), listener('tcp')])
    for (const l of listeners) await connect(urlFor(l))
  })

  it.each([
    [0, 'must be an integer from 100 to 3600000, got 0'],
    [99, 'must be an integer from 100 to 3600000, got 99'],
    [1.5, 'must be an integer from 100 to 3600000, got 1.5'],
    [3_600_001, 'must be an integer from 100 to 3600000, got 3600001'],
    ['1000', 'invalid type: string "1000", expected a number'],
  ])('handshakeTimeout %s is refused, naming the field', async (value, message) => {
    const bad = { ...listener('tcp'), handshakeTimeout: value as number }
    await expect(startServer([bad])).rejects.toThrow(`listeners[0].handshakeTimeout: ${message}`)
  })
})

describe('a packet that has started must keep arriving', () => {
  it.each([4, 5] as Version[])(
    'MQTT version %i, keep-alive 0: a PUBLISH announced at 1,000,000 bytes, 900,000 sent, is closed',
    async (version) => {
      const { listeners } = await startServer([listener('tcp', { handshakeTimeout: 1000 })])
      const c = await rawSession(listeners[0], version, { keepAlive: 0 })
      const full = publishPacket(version, 'big', Buffer.alloc(1_000_000 - 10, 7))
      await c.write(full.subarray(0, 900_000))
      await c.waitClosed(CLOSE_WITHIN)
    },
  )

  it('a slow but steady publisher (20 KiB/s, far below the line rate) is not cut off', async () => {
    const { listeners } = await startServer([listener('tcp', { handshakeTimeout: 1000 })])
    const sub = await connect(urlFor(listeners[0]))
    await subscribe(sub, 'slow', 0)
    const box = inbox(sub)
    const c = await rawSession(listeners[0], 4, { keepAlive: 0 })
    const payload = patternBytes(64 * 1024, 3)
    const full = publishPacket(4, 'slow', payload)
    // 2 KiB every 100 ms: 3.2 s for the packet, three times the 1 s stall window.
    for (let i = 0; i < full.length; i += 2048) {
      await c.write(full.subarray(i, i + 2048))
      await new Promise((r) => setTimeout(r, 100))
    }
    const m = await box.next()
    expect(Buffer.compare(m.payload, payload)).toBe(0)
    expect(c.socket.closed).toBe(false)
  })
})

describe('WebSocket frames and messages are bounded by the packet limit before they are buffered', () => {
  it('a frame announced over the limit is refused from its header, before any CONNECT', async () => {
    const { listeners } = await startServer([listener('ws', { allowAnonymous: false, maxPacketSize: 64 * 1024 })])
    const c = await rawWebSocket(listeners[0])
    // The header of a 4 MiB binary frame and a first slice of its payload.
    const frame = wsFrame(2, Buffer.alloc(4 << 20), false)
    await c.write(frame.subarray(0, 64 * 1024))
    await c.waitClosed(CLOSE_WITHIN)
  })

  it('a fragmented message (no FIN) past the limit is closed; memory stays flat', async () => {
    const { listeners } = await startServer([listener('ws', { allowAnonymous: false })])
    const N = 8
    // Made once: the test's own buffers stay out of the RSS it measures.
    const fragment = Buffer.alloc(256 * 1024, 1)
    const [first, next] = [wsFrame(2, fragment, false), wsFrame(0, fragment, false)]
    const maxPerConnection = 16 << 20
    const rss0 = process.memoryUsage().rss
    const sent = await Promise.all(
      Array.from({ length: N }, async () => {
        const c = await rawWebSocket(listeners[0])
        let bytes = 0
        while (bytes < maxPerConnection && !c.socket.closed) {
          try {
            await c.write(bytes === 0 ? first : next)
          } catch {
            break
          }
          bytes += fragment.length
        }
        await c.waitClosed(CLOSE_WITHIN)
        return bytes
      }),
    )
    const growth = process.memoryUsage().rss - rss0
    console.log(
      `ws fragments: ${N} connections sent ${sent.map((b) => (b / 1048576).toFixed(2)).join(', ')} MiB before the close; RSS +${(growth / 1048576).toFixed(1)} MiB`,
    )
    // Each is closed past ~1 MiB (the packet limit) plus what the socket buffers held.
    for (const b of sent) expect(b).toBeLessThan(maxPerConnection)
    expect(growth).toBeLessThan(48 << 20)
  })

  it('a packet just under the limit still goes through over ws', async () => {
    const { listeners } = await startServer([listener('ws', { maxPacketSize: 256 * 1024 })])
    const url = urlFor(listeners[0])
    const sub = await connect(url)
    await subscribe(sub, 'ws/big', 0)
    const box = inbox(sub)
    const pub = await connect(url)
    const payload = patternBytes(256 * 1024 - 64, 9)
    await pub.publishAsync('ws/big', payload, { qos: 1 })
    const m = await box.next()
    expect(Buffer.compare(m.payload, payload)).toBe(0)
  })
})

describe('malformed CONNECT packets', () => {
  const will = (topic: string) => [str(topic), str('last words')]
  // [name, spec id (3.1.1), spec id (5.0), flags, rest after the client id, client id]
  const cases: Array<[string, string, string, number, Buffer[], string | Buffer]> = [
    ['the reserved flag set', 'MQTT-3.1.2-3', 'MQTT-3.1.2-3', 0x03, [], 'c'],
    ['will QoS 3', 'MQTT-3.1.2-14', 'MQTT-3.1.2-12', 0x02 | 0x04 | 0x18, will('w'), 'c'],
    ['will QoS without the will flag', 'MQTT-3.1.2-13', 'MQTT-3.1.2-11', 0x02 | 0x08, [], 'c'],
    ['will retain without the will flag', 'MQTT-3.1.2-15', 'MQTT-3.1.2-13', 0x02 | 0x20, [], 'c'],
    ['invalid UTF-8 in the client id', 'MQTT-1.5.3-1', 'MQTT-1.5.4-1', 0x02, [], Buffer.from([0x63, 0xc3, 0x28])],
    [
      'invalid UTF-8 in the username',
      'MQTT-1.5.3-1',
      'MQTT-1.5.4-1',
      0x02 | 0x80,
      [str(Buffer.from([0xff, 0xfe]))],
      'c',
    ],
    ['U+0000 in the client id', 'MQTT-1.5.3-2', 'MQTT-1.5.4-2', 0x02, [], 'a\u0000b'],
  ]

  it.each(cases)('MQTT 3.1.1, %s [%s]: closed without a CONNACK', async (_, _id, _id5, flags, rest, clientId) => {
    const { listeners } = await startServer()
    const c = await rawTcp(listeners[0])
    await c.write(connectPacket({ version: 4, flags, clientId, rest }))
    await closedSilently(c)
  })

  // Both are "Malformed Packet" in MQTT 5 except the will flags' MUSTs,
  // which a parsed packet breaks: "Protocol Error".
  it.each(cases)(
    'MQTT 5, %s [%s / %s]: CONNACK 0x81 or 0x82, then closed',
    async (name, _id, _id5, flags, rest, clientId) => {
      const { listeners } = await startServer()
      const c = await rawTcp(listeners[0])
      const willProps = flags & 0x04 ? [props()] : []
      await c.write(connectPacket({ version: 5, flags, clientId, rest: [...willProps, ...rest] }))
      const expected = name.includes('without the will flag') ? 0x82 : 0x81
      expect(await connackThenClose(c)).toBe(expected)
    },
  )

  it('MQTT 3.1.1, a password without the username flag [MQTT-3.1.2-22]: closed without a CONNACK', async () => {
    const { listeners } = await startServer()
    const c = await rawTcp(listeners[0])
    await c.write(connectPacket({ version: 4, flags: 0x02 | 0x40, clientId: 'c', rest: [str('secret')] }))
    await closedSilently(c)
  })

  it('MQTT 5 allows a password without a username (3.1.2.9): accepted', async () => {
    const { listeners } = await startServer()
    await rawSession(listeners[0], 5, { flags: 0x02 | 0x40, rest: [str('secret')] })
  })
})

describe('invalid topic names and filters are refused, never routed', () => {
  /** A subscriber on `#` that must see nothing but the sentinel. */
  async function watcher(url: string) {
    const sub = await connect(url, MQTT_VERSIONS['3.1.1'])
    await subscribe(sub, '#', 1)
    return { box: inbox(sub), other: await connect(url) }
  }

  const publishCases: Array<[string, string | Buffer, number]> = [
    ['a topic name of "#" (v5: 0x90 Topic Name invalid)', '#', 0x90],
    ['a topic name with "+" (v5: 0x90 Topic Name invalid)', 'a/+/b', 0x90],
    ['a topic name ending in "/#" (v5: 0x90 Topic Name invalid)', 'a/#', 0x90],
    ['U+0000 in the topic name (v5: 0x81 Malformed Packet)', 'a\u0000b', 0x81],
  ]

  it.each(publishCases)(
    'MQTT 3.1.1, PUBLISH with %s [MQTT-3.3.2-2, MQTT-1.5.3-2]: closed, nothing delivered',
    async (_, topic) => {
      const { listeners } = await startServer()
      const url = urlFor(listeners[0])
      const { box, other } = await watcher(url)
      const c = await rawSession(listeners[0], 4)
      await c.write(publishPacket(4, topic, 'spoof', { packetId: 1 }))
      await closedSilently(c, 4) // its CONNACK only
      expect(await drain(box, other, 'sentinel')).toEqual([])
    },
  )

  it.each(publishCases)(
    'MQTT 5, PUBLISH with %s [MQTT-3.3.2-2, MQTT-1.5.4-2]: DISCONNECT, nothing delivered',
    async (_, topic, code) => {
      const { listeners } = await startServer()
      const url = urlFor(listeners[0])
      const { box, other } = await watcher(url)
      const c = await rawSession(listeners[0], 5)
      await c.write(publishPacket(5, topic, 'spoof', { packetId: 1 }))
      expect(await disconnectThenClose(c)).toBe(code)
      expect(await drain(box, other, 'sentinel')).toEqual([])
    },
  )

  const v5Cases: Array<[string, string, Buffer, number, number?]> = [
    ['an empty topic name without a Topic Alias [MQTT-3.3.2-1]: 0x82 Protocol Error', '', props(), 0x82],
    [
      'a Topic Alias the broker never offered [MQTT-3.3.2-9]: 0x94 Topic Alias invalid',
      'a',
      props(prop.topicAlias(1)),
      0x94,
    ],
    ['a Topic Alias of 0 [MQTT-3.3.2-8]: 0x94 Topic Alias invalid', 'a', props(prop.topicAlias(0)), 0x94, 4],
    [
      'a Topic Alias over the maximum [MQTT-3.3.2-9]: 0x94 Topic Alias invalid',
      'a',
      props(prop.topicAlias(5)),
      0x94,
      4,
    ],
    [
      'an empty topic name with an alias not yet set (3.3.2.3.4): 0x82 Protocol Error',
      '',
      props(prop.topicAlias(2)),
      0x82,
      4,
    ],
    ['a Subscription Identifier [MQTT-3.3.4-6]: 0x82 Protocol Error', 'a', props(prop.subscriptionId(7)), 0x82],
    [
      'a Response Topic with wildcards [MQTT-3.3.2-14]: 0x82 Protocol Error',
      'a',
      props(prop.responseTopic('reply/+')),
      0x82,
    ],
  ]

  it.each(v5Cases)('MQTT 5, PUBLISH with %s, nothing delivered', async (_, topic, properties, code, aliases) => {
    const { listeners } = await startServer([listener('tcp', { maxTopicAliases: aliases ?? 0 })])
    const url = urlFor(listeners[0])
    const { box, other } = await watcher(url)
    const c = await rawSession(listeners[0], 5)
    await c.write(publishPacket(5, topic, 'spoof', { packetId: 1, properties }))
    expect(await disconnectThenClose(c)).toBe(code)
    expect(await drain(box, other, 'sentinel')).toEqual([])
  })

  const willCases: Array<[string, string]> = [
    ['a will topic with "#" [MQTT-4.7.1-1]', 'last/#'],
    ['a will topic with "+" [MQTT-4.7.1-1]', '+/will'],
    ['an empty will topic [MQTT-4.7.3-1]', ''],
  ]

  it.each(willCases)('MQTT 3.1.1, %s: closed without a CONNACK', async (_, topic) => {
    const { listeners } = await startServer()
    const c = await rawTcp(listeners[0])
    await c.write(connectPacket({ version: 4, flags: 0x02 | 0x04, clientId: 'w', rest: [str(topic), str('bye')] }))
    await closedSilently(c)
  })

  it.each(willCases)('MQTT 5, %s: CONNACK 0x90 Topic Name invalid, then closed', async (_, topic) => {
    const { listeners } = await startServer()
    const c = await rawTcp(listeners[0])
    await c.write(
      connectPacket({ version: 5, flags: 0x02 | 0x04, clientId: 'w', rest: [props(), str(topic), str('bye')] }),
    )
    expect(await connackThenClose(c)).toBe(0x90)
  })

  it('MQTT 5, a will Response Topic with wildcards [MQTT-3.3.2-14]: CONNACK 0x82, then closed', async () => {
    const { listeners } = await startServer()
    const c = await rawTcp(listeners[0])
    const willProps = props(prop.responseTopic('reply/#'))
    await c.write(
      connectPacket({ version: 5, flags: 0x02 | 0x04, clientId: 'w', rest: [willProps, str('will'), str('bye')] }),
    )
    expect(await connackThenClose(c)).toBe(0x82)
  })

  const filterCases: Array<[string, string]> = [
    ['an empty share name "$share//t" [MQTT-4.8.2-1]', '$share//t'],
    ['a share name with "+" "$share/g+/t" [MQTT-4.8.2-2]', '$share/g+/t'],
    ['a share name with "#" "$share/g#/t" [MQTT-4.8.2-2]', '$share/g#/t'],
    ['a share name with no filter "$share/g" [MQTT-4.8.2-2]', '$share/g'],
  ]

  it.each([
    ['3.1.1', 4, 0x80],
    ['5 (0x8F Topic Filter invalid)', 5, 0x8f],
  ] as Array<[string, Version, number]>)(
    'MQTT %s: SUBSCRIBE with invalid shared filters [MQTT-4.8.2-1, MQTT-4.8.2-2]: each refused, the valid one granted',
    async (_, version, failure) => {
      const { listeners } = await startServer()
      const c = await rawSession(listeners[0], version)
      await c.write(subscribePacket(version, 9, ['ok/t', ...filterCases.map(([, f]) => f)]))
      const ack = await c.next(SUBACK)
      const codes = [...ack.body.subarray(version === 5 ? 3 : 2)]
      expect(codes).toEqual([0x00, ...filterCases.map(() => failure)])
      // The session goes on: it receives what is published to its valid filter.
      await c.write(publishPacket(version, 'ok/t', 'after'))
      const m = await c.next(3)
      expect(m.body.includes(Buffer.from('after'))).toBe(true)
    },
  )

  it('MQTT 3.1.1, SUBSCRIBE with U+0000 in a filter [MQTT-1.5.3-2]: closed', async () => {
    const { listeners } = await startServer()
    const c = await rawSession(listeners[0], 4)
    await c.write(subscribePacket(4, 1, ['a\u0000b']))
    await c.waitClosed(CLOSE_WITHIN)
    expect(c.packets().some((p) => p.type === SUBACK)).toBe(false)
  })

  it('MQTT 5, SUBSCRIBE with U+0000 in a filter [MQTT-1.5.4-2]: DISCONNECT 0x81', async () => {
    const { listeners } = await startServer()
    const c = await rawSession(listeners[0], 5)
    await c.write(subscribePacket(5, 1, ['a\u0000b']))
    expect(await disconnectThenClose(c)).toBe(0x81)
  })

  it('a valid publish from each version still arrives (positive control)', async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const { box } = await watcher(url)
    for (const version of [4, 5] as Version[]) {
      const c = await rawSession(listeners[0], version)
      await c.write(publishPacket(version, `ok/${version}`, 'fine', { packetId: 1 }))
      const m = await box.next()
      expect([m.topic, m.payload.toString()]).toEqual([`ok/${version}`, 'fine'])
    }
  })
})
