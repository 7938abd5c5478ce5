/**
 * How a connection ends, and what the broker does then: last will, keep-alive
 * expiry, session takeover, persistent sessions kept and expired. These run
 * through the broker's exit path (patched in vendor/rmqtt to be allocated
 * only when a connection ends), so each one is checked end to end.
 */
import { connect as tcpConnect } from 'node:net'

import type { IConnackPacket, IDisconnectPacket } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  drain,
  endClient,
  inbox,
  MQTT_VERSIONS,
  type MqttVersion,
  startServer,
  subscribe,
  urlFor,
  waitFor,
} from './helpers'

afterEach(cleanup)

const VERSIONS: MqttVersion[] = ['3.1.1', '5.0']

/** A UTF-8 string with its 2-byte length prefix (MQTT encoding). */
function str(s: string): Buffer {
  const b = Buffer.from(s)
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
}

/**
 * A raw CONNECT with a will, from a socket that then sends nothing on its
 * own: no PINGREQ unless the test writes one, which mqtt.js cannot be told to
 * do. Resolves once CONNACK (accepted) is in, with the socket and a promise
 * of every packet the broker sent, at close.
 */
async function silentClient(
  port: number,
  level: 4 | 5,
  clientId: string,
  keepAlive: number,
  will: [string, string],
  closeWithinMs = 5000,
) {
  const props = level === 5 ? [Buffer.from([0])] : [] // empty property lists
  const body = Buffer.concat([
    str('MQTT'),
    // flags: will (0x04) + clean session (0x02), then keep-alive seconds
    Buffer.from([level, 0x06, keepAlive >> 8, keepAlive & 0xff]),
    ...props,
    str(clientId),
    ...props,
    str(will[0]),
    str(will[1]),
  ])
  const sock = tcpConnect(port, '127.0.0.1')
  await waitFor(sock, 'connect')
  const chunks: Buffer[] = []
  let connack!: () => void
  const accepted = new Promise<void>((res) => (connack = res))
  sock.on('data', (d: Buffer) => {
    chunks.push(d)
    connack()
  })
  const packets = waitFor(sock, 'close', closeWithinMs).then(() => splitPackets(Buffer.concat(chunks)))
  sock.write(Buffer.concat([Buffer.from([0x10, body.length]), body]))
  await accepted
  return { sock, packets }
}

/** Splits a byte stream into MQTT packets (short ones: 1-byte lengths). */
function splitPackets(bytes: Buffer): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < bytes.length; i += 2 + bytes[i + 1]) out.push(bytes.subarray(i, i + 2 + bytes[i + 1]))
  return out
}

describe('last will', () => {
  it.each(VERSIONS)('MQTT %s: published when the connection drops, not after a DISCONNECT', async (version) => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const watcher = await connect(url, MQTT_VERSIONS[version])
    const box = inbox(watcher)
    await subscribe(watcher, 'will/#', 1)

    const polite = await connect(url, {
      ...MQTT_VERSIONS[version],
      will: { topic: 'will/polite', payload: Buffer.from('bye'), qos: 1, retain: false },
    })
    await endClient(polite)
    const dropped = await connect(url, {
      ...MQTT_VERSIONS[version],
      will: { topic: 'will/dropped', payload: Buffer.from('gone'), qos: 1, retain: false },
    })
    dropped.stream.destroy()

    const m = await box.next()
    expect(m.topic).toBe('will/dropped')
    expect(m.payload.toString()).toBe('gone')
    expect(m.packet.qos).toBe(1)
    // The graceful one never sent its will: nothing else arrived before a
    // sentinel published after both.
    expect(await drain(box, watcher, 'will/sentinel')).toEqual([])
  })

  it.each([
    ['3.1.1', 4],
    ['5.0', 5],
  ] as const)(
    'MQTT %s: published when a silent client outlives its keep-alive, and the socket is closed',
    async (_v, level) => {
      const { listeners } = await startServer()
      const watcher = await connect(urlFor(listeners[0]), MQTT_VERSIONS['5.0'])
      const box = inbox(watcher)
      await subscribe(watcher, 'will/#', 0)
      const { packets } = await silentClient(listeners[0].port, level, `silent-${level}`, 1, [
        'will/silent',
        'timed out',
      ])
      // Keep-alive 1 s: closed after 1.5 s.
      const m = await box.next(10_000)
      expect(m.topic).toBe('will/silent')
      expect(m.payload.toString()).toBe('timed out')
      const [connack, ...rest] = await packets
      // CONNACK: session present 0, return/reason code 0 (accepted)
      expect([connack[0], connack[2], connack[3]]).toEqual([0x20, 0, 0])
      // 3.1.1 has no server DISCONNECT; 5.0 gets one with 0x8D keep-alive timeout.
      expect(rest.map((p) => [p[0], p[2]])).toEqual(level === 5 ? [[0xe0, 0x8d]] : [])
    },
  )
})

describe('keep-alive', () => {
  it.each([
    ['3.1.1', 4],
    ['5.0', 5],
  ] as const)(
    'MQTT %s: counted from the last packet, so a client that keeps sending outlives it, and one that stops does not',
    async (_v, level) => {
      const { listeners } = await startServer()
      const watcher = await connect(urlFor(listeners[0]), MQTT_VERSIONS['5.0'])
      const box = inbox(watcher)
      await subscribe(watcher, 'will/#', 0)
      const { sock, packets } = await silentClient(
        listeners[0].port,
        level,
        `pinging-${level}`,
        1,
        ['will/pinging', 'stopped'],
        15_000,
      )
      let closedAt = 0
      sock.on('close', () => (closedAt = Date.now()))
      // Keep-alive 1 s: the broker closes after 1.5 s without a packet. Ping
      // every second for 7 s, well past 1.5 s after CONNECT.
      // (Time passing is what is tested here, so the test waits on a timer.)
      for (let i = 0; i < 7; i++) {
        await new Promise((resolve) => setTimeout(resolve, 1000))
        const pong = waitFor(sock, 'data')
        sock.write(Buffer.from([0xc0, 0x00]))
        await pong
      }
      expect(closedAt).toBe(0)
      const lastPacket = Date.now()
      const m = await box.next(10_000)
      expect(m.topic).toBe('will/pinging')
      await packets
      // Closed 1.5 s after the last PINGREQ, not after some earlier one (less
      // the PINGRESP's way back, counted in `lastPacket`).
      expect(closedAt - lastPacket).toBeGreaterThanOrEqual(1400)
    },
    20_000,
  )
})

describe('session takeover', () => {
  it.each(VERSIONS)('MQTT %s: a second connection with the same client id replaces the first', async (version) => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const opts = { ...MQTT_VERSIONS[version], clientId: `takeover-${version}` }
    const first = await connect(url, opts)
    const disconnects: IDisconnectPacket[] = []
    first.on('disconnect', (p) => disconnects.push(p))
    const firstClosed = waitFor(first, 'close')

    const second = await connect(url, opts)
    await firstClosed
    // MQTT 5 tells the old connection why: 0x8E session taken over.
    if (version === '5.0') expect(disconnects.map((p) => p.reasonCode)).toEqual([0x8e])
    else expect(disconnects).toEqual([])

    // The new connection works.
    const box = inbox(second)
    await subscribe(second, 'takeover/t', 1)
    await second.publishAsync('takeover/t', 'still here', { qos: 1 })
    expect((await box.next()).payload.toString()).toBe('still here')
    expect(second.connected).toBe(true)
  })
})

describe('MQTT 5 persistent sessions', () => {
  it('a session with an expiry interval keeps its subscriptions and queued messages across a reconnect', async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const opts = {
      ...MQTT_VERSIONS['5.0'],
      clientId: 'persist-5',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    }
    const first = await connect(url, opts)
    await subscribe(first, 'persist/#', 1)
    await endClient(first)

    const pub = await connect(url, MQTT_VERSIONS['5.0'])
    await pub.publishAsync('persist/a', 'queued', { qos: 1 })

    let box!: ReturnType<typeof inbox>
    let connack!: IConnackPacket
    const again = await connect(url, opts, (c) => {
      box = inbox(c)
      c.once('connect', (p) => (connack = p))
    })
    expect(connack.sessionPresent).toBe(true)
    const m = await box.next()
    expect(m.topic).toBe('persist/a')
    expect(m.payload.toString()).toBe('queued')
    expect(again.connected).toBe(true)
  })

  it('a session is terminated when its expiry interval runs out, and the next connection starts clean', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const terminated = new Promise<string>((res) =>
      server.setHooks({ onSessionTerminated: (s, r) => (s.clientId === 'expire-5' ? res(r.reason) : undefined) }),
    )
    const opts = {
      ...MQTT_VERSIONS['5.0'],
      clientId: 'expire-5',
      clean: false,
      properties: { sessionExpiryInterval: 1 },
    }
    const first = await connect(url, opts)
    await subscribe(first, 'expire/#', 1)
    await endClient(first)
    expect(await terminated).toMatch(/expir/i)

    let connack!: IConnackPacket
    await connect(url, opts, (c) => c.once('connect', (p) => (connack = p)))
    expect(connack.sessionPresent).toBe(false)
  })
})
