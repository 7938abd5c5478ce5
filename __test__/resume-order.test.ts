/**
 * A resumed session keeps each publisher's order [MQTT-4.6.0-6] and loses
 * nothing at QoS 1: what was queued for it while it was offline comes
 * before what is published while it reconnects and after. rmqtt moved the
 * offline queue over after the CONNACK, behind the messages routed to the
 * new connection meanwhile, and dropped those routed during the takeover
 * (rmqtt 0044-resume-order).
 */
import type { MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, connect, EVENT_TIMEOUT, endClient, MQTT_VERSIONS, startServer, subscribe, urlFor } from './helpers'

afterEach(cleanup)

/** Reconnects of the subscriber while the publisher keeps going. */
const ROUNDS = 5
/** Messages published while the subscriber is offline, each round (at least). */
const OFFLINE = 40
/** Messages the publisher keeps in flight (mqtt.js sends them in order). */
const WINDOW = 16

describe.each(['3.1.1', '5.0'] as const)('MQTT %s resumed session', (version) => {
  it('gets its offline queue first and every message in order while a publisher keeps going', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const persistent = {
      ...MQTT_VERSIONS[version],
      clientId: `order-${version}`,
      clean: false,
      ...(version === '5.0' ? { properties: { sessionExpiryInterval: 300 } } : {}),
    }
    const got: number[] = []
    const waiters: Array<() => void> = []
    const wakeAll = () => {
      for (const w of waiters.splice(0)) w()
    }
    const until = async (ok: () => boolean, what: string) => {
      const deadline = Date.now() + EVENT_TIMEOUT * 2
      while (!ok()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${got.length}`)
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.max(0, deadline - Date.now()))
          waiters.push(() => {
            clearTimeout(t)
            resolve()
          })
        })
      }
    }
    const record = (c: MqttClient) =>
      c.on('message', (_t, payload) => {
        got.push(Number(payload.toString()))
        wakeAll()
      })
    let sub = await connect(url, persistent, record)
    await subscribe(sub, 'order/t', 1)

    // The publisher: 1, 2, 3... at QoS 1, WINDOW in flight, until told to stop.
    const pub = await connect(url, MQTT_VERSIONS[version])
    let published = 0
    let acked = 0
    let flooding = true
    const flood = (async () => {
      while (flooding) {
        if (published - acked >= WINDOW) {
          await until(() => published - acked < WINDOW, 'publisher acks')
          continue
        }
        pub.publish('order/t', String(++published), { qos: 1 }, () => {
          acked++
          wakeAll()
        })
      }
      await until(() => acked === published, 'the last publisher acks')
      return published
    })()

    for (let round = 0; round < ROUNDS; round++) {
      const seen = got.length
      await until(() => got.length > seen, `round ${round}: a message while online`)
      await endClient(sub)
      const offlineFrom = published
      await until(() => published >= offlineFrom + OFFLINE, `round ${round}: messages while offline`)
      sub = await connect(url, persistent, record)
    }
    flooding = false
    const last = await flood
    await until(() => got.includes(last), `the last message, ${last}`)

    // QoS 1 may deliver a message twice (one in flight at a disconnect is
    // sent again); the first deliveries must be 1, 2, 3... exactly.
    const seen = new Set<number>()
    const firsts = got.filter((n) => !seen.has(n) && seen.add(n))
    const backwards = firsts.flatMap((n, i) => (i > 0 && n < firsts[i - 1] ? [`${firsts[i - 1]} then ${n}`] : []))
    expect(backwards, 'each message after the ones published before it').toEqual([])
    const missing = Array.from({ length: last }, (_, i) => i + 1).filter((n) => !seen.has(n))
    expect(missing, 'QoS 1: none lost').toEqual([])
    expect((await server.stats()).messagesDropped.qos1).toBe(0)
  })
})
