/**
 * `bytesReceived` / `bytesSent` of stats(), metrics() and $SYS: the bytes of
 * every MQTT packet read from and written to clients (headers, CONNECT,
 * PINGs and acks included; TLS and WebSocket framing not), checked against
 * packets whose sizes the test knows.
 */
import { once } from 'node:events'
import type { Socket } from 'node:net'

import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  EVENT_TIMEOUT,
  endClient,
  eventually,
  inbox,
  listener,
  MQTT_VERSIONS,
  type MqttServer,
  startServer,
  subscribe,
  urlFor,
} from './helpers'
import {
  CONNACK,
  connectPacket,
  destroyRaw,
  PINGRESP,
  PUBACK,
  PUBLISH,
  packet,
  publishPacket,
  type RawClient,
  rawConnect,
  rawWebSocket,
  SUBACK,
  subscribePacket,
  wsFrame,
} from './raw'

afterEach(async () => {
  destroyRaw()
  await cleanup()
})

const PINGREQ = packet(0xc0)

/** Writes each packet, adding its size to `written`. */
async function send(c: RawClient, written: { n: number }, ...packets: Buffer[]) {
  for (const p of packets) {
    await c.write(p)
    written.n += p.length
  }
}

/** Resolves once `c` has received `n` bytes, whatever they are. */
async function receivedBytes(c: RawClient, n: number) {
  while (c.received.length < n) {
    if (c.socket.closed) throw new Error(`closed after ${c.received.length} of ${n} bytes`)
    await once(c.socket, 'data', { signal: AbortSignal.timeout(EVENT_TIMEOUT) })
  }
  expect(c.received.length).toBe(n)
}

/**
 * Resolves once stats() shows `want`: a write is counted right after its
 * syscall returns, which the peer may see first; no event marks it.
 */
async function bytesReach(server: MqttServer, want: { bytesReceived: number; bytesSent: number }) {
  let got = { bytesReceived: -1, bytesSent: -1 }
  await eventually(() => {
    void server.stats().then((s) => {
      got = { bytesReceived: s.bytesReceived, bytesSent: s.bytesSent }
    })
    return got.bytesReceived === want.bytesReceived && got.bytesSent === want.bytesSent
  }, 5000)
  expect(got).toEqual(want)
}

describe('wire bytes in stats()', () => {
  it.each(['tcp', 'tls'] as const)(
    'count every packet read and written, headers and acks included, TLS records not (known raw packets over %s, 3.1.1 and 5.0)',
    async (protocol) => {
      const { server, listeners } = await startServer([listener(protocol)])
      const written = { n: 0 }

      // A 3.1.1 subscriber at QoS 1.
      const sub = await rawConnect(listeners[0])
      await send(sub, written, connectPacket({ version: 4, clientId: 'wb-sub' }))
      await sub.next(CONNACK)
      await send(sub, written, subscribePacket(4, 1, [['t/#', 1]]))
      await sub.next(SUBACK)

      // A 5.0 publisher: QoS 0 'hello', QoS 1 with 200 bytes (a 2-byte length).
      const pub = await rawConnect(listeners[0])
      await send(pub, written, connectPacket({ version: 5, clientId: 'wb-pub' }))
      await pub.next(CONNACK)
      await send(
        pub,
        written,
        publishPacket(5, 't/a', 'hello'),
        publishPacket(5, 't/b', Buffer.alloc(200, 7), { packetId: 1 }),
      )
      await pub.next(PUBACK)
      const deliveries = await sub.count(PUBLISH, 2)
      // The subscriber acks the QoS 1 delivery, then pings: the PINGRESP
      // comes after the broker has read the PUBACK.
      const delivered = deliveries[1].body
      await send(sub, written, packet(0x40, delivered.subarray(2 + 3, 2 + 3 + 2)), PINGREQ)
      await sub.next(PINGRESP)
      await send(pub, written, PINGREQ)
      await pub.next(PINGRESP)

      // What the clients wrote, packet by packet: CONNECT 3.1.1 (2 + 10 + 8),
      // SUBSCRIBE (2 + 8), CONNECT 5.0 (2 + 11 + 8), PUBLISH QoS 0 (2 + 11),
      // PUBLISH QoS 1 (3 + 208), PUBACK (4), two PINGREQs (2 each).
      expect(written.n).toBe(20 + 10 + 21 + 13 + 211 + 4 + 2 + 2)
      // What the 3.1.1 subscriber was sent: CONNACK (4), SUBACK (5), PUBLISH
      // QoS 0 (2 + 10), PUBLISH QoS 1 (3 + 207), PINGRESP (2).
      expect(sub.received.length).toBe(4 + 5 + 12 + 210 + 2)
      await bytesReach(server, {
        bytesReceived: written.n,
        bytesSent: sub.received.length + pub.received.length,
      })
    },
  )

  it('leave WebSocket framing and the HTTP upgrade out: MQTT bytes only', async () => {
    const { server, listeners } = await startServer([listener('ws')])
    const c = await rawWebSocket(listeners[0])
    const connect = connectPacket({ version: 4, clientId: 'wb-ws' })
    // Each packet split over two frames: framing the broker must not count.
    for (const p of [connect, PINGREQ]) {
      await c.write(wsFrame(2, p.subarray(0, 1), false))
      await c.write(wsFrame(0, p.subarray(1), true))
    }
    // CONNACK and PINGRESP, each in a 2-byte-header binary frame.
    await receivedBytes(c, 2 + 4 + 2 + 2)
    await bytesReach(server, { bytesReceived: connect.length + 2, bytesSent: 4 + 2 })
  })

  it.each(['3.1.1', '5.0'] as const)(
    'match the bytes mqtt.js sockets wrote and read (MQTT %s, QoS 0-2, retained, DISCONNECT)',
    async (version) => {
      const { server, listeners } = await startServer()
      const url = urlFor(listeners[0])
      const sub = await connect(url, MQTT_VERSIONS[version])
      const box = inbox(sub)
      await subscribe(sub, 's/#', 2)
      const pub = await connect(url, MQTT_VERSIONS[version])
      pub.publish('s/0', 'abc', { qos: 0 })
      await pub.publishAsync('s/1', Buffer.alloc(300, 1), { qos: 1, retain: true })
      await pub.publishAsync('s/2', Buffer.alloc(20_000, 2), { qos: 2 })
      for (let i = 0; i < 3; i++) await box.next()
      const sockets = [sub.stream as Socket, pub.stream as Socket]
      await endClient(sub)
      await endClient(pub)
      const sum = (f: (s: Socket) => number) => sockets.reduce((n, s) => n + f(s), 0)
      await bytesReach(server, { bytesReceived: sum((s) => s.bytesWritten), bytesSent: sum((s) => s.bytesRead) })
    },
  )
})

describe('wire bytes in metrics() and $SYS', () => {
  it('are the same counts', async () => {
    const { server, listeners } = await startServer({ listeners: [listener('tcp')], sysTopics: { intervalSeconds: 1 } })
    const watcher = await connect(urlFor(listeners[0]), MQTT_VERSIONS['3.1.1'])
    const box = inbox(watcher)
    // QoS 0: the watcher sends nothing more once subscribed, so the count
    // of bytes received stays put.
    await subscribe(watcher, '$SYS/broker/bytes/received', 0)
    const { bytesReceived, bytesSent } = await server.stats()
    expect(bytesReceived).toBeGreaterThan(0)
    const families = parsePrometheusTextFormat(await server.metrics())
    const value = (name: string) => Number(families.find((f) => f.name === name)?.metrics[0].value)
    expect(value('mqtt_received_bytes_total')).toBe(bytesReceived)
    expect(value('mqtt_sent_bytes_total')).toBeGreaterThanOrEqual(bytesSent)
    // The next round publishes the count as it is now.
    for (;;) {
      const m = await box.next(5000)
      if (Number(m.payload.toString()) === bytesReceived) break
    }
  })
})
