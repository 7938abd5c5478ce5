/**
 * An unacknowledged QoS 1 delivery is sent again only when the client
 * resumes its session [MQTT-4.4.0-1], never on the live connection in MQTT 5
 * (which forbids it), and in MQTT 3.1.1 only with `messageRetryInterval`
 * (mosquitto never resends in-session either). The client is a raw one
 * that withholds its PUBACK.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, listener, type ListenerInfo, type MqttServer, startServer } from './helpers'
import {
  CONNACK,
  destroyRaw,
  packet,
  type Packet,
  props,
  PUBLISH,
  rawConnect,
  type RawClient,
  str,
  SUBACK,
  u16,
  type Version,
} from './raw'

afterEach(async () => {
  destroyRaw()
  await cleanup()
})

/** Long enough for several retry intervals of 1 s to pass. */
const QUIET_MS = 3500

/** A persistent session's connection (5.0: Session Expiry Interval 60 s). */
async function subscriber(info: ListenerInfo, version: Version, clientId: string): Promise<RawClient> {
  const c = await rawConnect(info)
  const expiry = props(Buffer.from([0x11, 0, 0, 0, 60]))
  await c.write(
    packet(0x10, str('MQTT'), Buffer.from([version, 0x00]), u16(60), ...(version === 5 ? [expiry] : []), str(clientId)),
  )
  const ack = await c.next(CONNACK)
  expect(ack.body[1]).toBe(0)
  return c
}

async function subscribeQos1(c: RawClient, version: Version, filter: string): Promise<void> {
  await c.write(packet(0x82, u16(1), ...(version === 5 ? [props()] : []), str(filter), Buffer.from([1])))
  await c.next(SUBACK)
}

const publishes = (c: RawClient): Packet[] => c.packets().filter((p) => p.type === PUBLISH)
const isDup = (p: Packet) => (p.flags & 0x08) !== 0

/** Resolves with the `n`th PUBLISH the client received, or null after `ms`. */
async function nthPublish(c: RawClient, n: number, ms: number): Promise<Packet | null> {
  const deadline = Date.now() + ms
  for (;;) {
    const ps = publishes(c)
    if (ps.length >= n) return ps[n - 1]
    const left = deadline - Date.now()
    if (left <= 0) return null
    await new Promise<void>((res) => {
      const t = setTimeout(res, Math.min(left, 50))
      c.socket.once('data', () => {
        clearTimeout(t)
        res()
      })
    })
  }
}

async function deliverUnacked(
  server: MqttServer,
  info: ListenerInfo,
  version: Version,
  id: string,
): Promise<RawClient> {
  const c = await subscriber(info, version, id)
  await subscribeQos1(c, version, 'resend/t')
  await server.publish('resend/t', 'once', { qos: 1 })
  const first = await nthPublish(c, 1, 5000)
  expect(first && isDup(first)).toBe(false)
  return c
}

describe('no in-session resend [MQTT-4.4.0-1]', () => {
  it.each([
    ['MQTT 5, even with messageRetryInterval set', 5, { messageRetryInterval: 1 }],
    ['MQTT 3.1.1 by default (as mosquitto)', 4, {}],
  ] as const)(
    '%s: an unacknowledged delivery is not sent again on the live connection; it is, with DUP, on resuming the session',
    async (_, version, extra) => {
      const { server, listeners } = await startServer([listener('tcp', extra)])
      const id = `resend-${version}`
      const c = await deliverUnacked(server, listeners[0], version, id)
      expect(await nthPublish(c, 2, QUIET_MS)).toBeNull()
      c.destroy()
      const resumed = await subscriber(listeners[0], version, id)
      const again = await nthPublish(resumed, 1, 5000)
      expect(again && isDup(again)).toBe(true)
    },
  )

  it('MQTT 3.1.1 with messageRetryInterval: 1: sent again with DUP on the live connection', async () => {
    const { server, listeners } = await startServer([listener('tcp', { messageRetryInterval: 1 })])
    const c = await deliverUnacked(server, listeners[0], 4, 'resend-v4-retry')
    const again = await nthPublish(c, 2, 5000)
    expect(again && isDup(again)).toBe(true)
  })
})
