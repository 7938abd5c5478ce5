/**
 * A resumed session keeps each publisher's order [MQTT-4.6.0-6] and loses
 * nothing at QoS 1: what was queued for it while it was offline comes
 * before what is published while it reconnects and after. rmqtt moved the
 * offline queue over after the CONNACK, behind the messages routed to the
 * new connection meanwhile, and dropped those routed during the takeover
 * (rmqtt 0044-resume-order).
 */
import type { IClientOptions, MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  EVENT_TIMEOUT,
  endClient,
  MQTT_VERSIONS,
  type MqttServer,
  startServer,
  subscribe,
  urlFor,
  withDeadline,
} from './helpers'

afterEach(cleanup)

/** Reconnects of the subscriber while the publisher keeps going. */
const ROUNDS = 5
/** Messages published while the subscriber is offline, each round (at least). */
const OFFLINE = 40
/** Messages the publisher keeps in flight (mqtt.js sends them in order). */
const WINDOW = 16

/**
 * A persistent QoS 1 subscriber and a publisher that sends 1, 2, 3... with
 * WINDOW in flight until stopped. `connections[i]` is what the subscriber's
 * i-th connection received, in order.
 */
async function setup(version: '3.1.1' | '5.0') {
  const { server, listeners } = await startServer()
  const url = urlFor(listeners[0])
  const persistent: IClientOptions = {
    ...MQTT_VERSIONS[version],
    clientId: `order-${version}`,
    clean: false,
    ...(version === '5.0' ? { properties: { sessionExpiryInterval: 300 } } : {}),
  }
  const connections: number[][] = []
  const waiters: Array<() => void> = []
  const wakeAll = () => {
    for (const w of waiters.splice(0)) w()
  }
  const received = () => connections.reduce((n, c) => n + c.length, 0)
  const until = async (ok: () => boolean, what: string) => {
    const deadline = Date.now() + EVENT_TIMEOUT * 2
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${received()}`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, deadline - Date.now()))
        waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
  }
  const subscriber = () => {
    const got: number[] = []
    connections.push(got)
    return connect(url, persistent, (c) =>
      c.on('message', (_t, payload) => {
        got.push(Number(payload.toString()))
        wakeAll()
      }),
    )
  }
  const first = await subscriber()
  await subscribe(first, 'order/t', 1)

  const pub = await connect(url, MQTT_VERSIONS[version])
  const counts = { published: 0, acked: 0 }
  let flooding = true
  const flood = (async () => {
    while (flooding) {
      if (counts.published - counts.acked >= WINDOW) {
        await until(() => counts.published - counts.acked < WINDOW, 'publisher acks')
        continue
      }
      pub.publish('order/t', String(++counts.published), { qos: 1 }, (e) => {
        if (e) {
          flooding = false
          return
        }
        counts.acked++
        wakeAll()
      })
    }
    await until(() => counts.acked === counts.published, 'the last publisher acks')
    return counts.published
  })()
  const stop = async () => {
    if (!flooding) throw new Error('the publisher stopped early')
    flooding = false
    const last = await flood
    await until(() => connections.some((c) => c.includes(last)), `the last message, ${last}`)
    return last
  }
  // Whatever happens in the test, the publisher stops with it.
  const halt = () => {
    flooding = false
  }
  return { server, first, subscriber, connections, received, until, counts, stop, halt }
}

/** Each connection got its messages in order, and together all of 1..last. */
async function check(server: MqttServer, connections: number[][], last: number) {
  const backwards = connections.flatMap((got, c) =>
    got.flatMap((n, i) => (i > 0 && n <= got[i - 1] ? [`connection ${c}: ${got[i - 1]} then ${n}`] : [])),
  )
  expect(backwards, 'each message after the ones published before it').toEqual([])
  const seen = new Set(connections.flat())
  const missing = Array.from({ length: last }, (_, i) => i + 1).filter((n) => !seen.has(n))
  expect(missing, 'QoS 1: none lost').toEqual([])
  expect((await server.stats()).messagesDropped.qos1).toBe(0)
}

describe.each(['3.1.1', '5.0'] as const)('MQTT %s resumed session', (version) => {
  it('gets its offline queue first and every message in order while a publisher keeps going', async () => {
    const { server, first, subscriber, connections, received, until, counts, stop, halt } = await setup(version)
    try {
      let sub: MqttClient = first
      for (let round = 0; round < ROUNDS; round++) {
        const seen = received()
        await until(() => received() > seen, `round ${round}: a message while online`)
        await endClient(sub)
        const offlineFrom = counts.published
        await until(() => counts.published >= offlineFrom + OFFLINE, `round ${round}: messages while offline`)
        sub = await subscriber()
      }
      await check(server, connections, await stop())
    } finally {
      halt()
    }
  })

  // Guards the takeover of a connected session, which the patch's hand-over
  // also changed (it lost nothing before either).
  it('loses nothing when a new connection takes the session over from a connected one', async () => {
    const { server, first, subscriber, connections, received, until, stop, halt } = await setup(version)
    try {
      let sub: MqttClient = first
      for (let round = 0; round < ROUNDS; round++) {
        const seen = received()
        await until(() => received() > seen, `round ${round}: a message`)
        // The broker closes the old connection (whose late acks may then
        // fail with EPIPE; 5.0: DISCONNECT 0x8E first, an error to mqtt.js).
        sub.on('error', () => {})
        const closed = withDeadline(
          new Promise<void>((resolve) => sub.once('close', () => resolve())),
          EVENT_TIMEOUT,
          () => `round ${round}: the old connection was not closed`,
        )
        sub = await subscriber()
        await closed
      }
      await check(server, connections, await stop())
    } finally {
      halt()
    }
  })
})
