/**
 * `maxQueuedBytes` of a listener (rmqtt 0045-limits): an offline session
 * queues messages only up to that many topic and payload bytes; what does
 * not fit is dropped, whatever its QoS, and reported through
 * `onMessageDropped` (as past `maxMqueueLen`). The client gets the kept ones
 * when it returns, and the broker keeps serving the others.
 */
import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  drain,
  EVENT_TIMEOUT,
  type Inbox,
  inbox,
  listener,
  MqttServer,
  startError,
  subscribe,
  track,
  urlFor,
  withDeadline,
} from './helpers'

afterEach(cleanup)

/** Resolves once `check` passes on what `onEvent` collected (hooks report later than acks). */
function collector<T>() {
  const items: T[] = []
  let wake = () => {}
  return {
    items,
    add(item: T) {
      items.push(item)
      wake()
    },
    until(check: (items: T[]) => boolean, what: string) {
      return withDeadline(
        new Promise<void>((res) => {
          wake = () => check(items) && res()
          wake()
        }),
        EVENT_TIMEOUT,
        () => `${what}; got ${JSON.stringify(items)}`,
      )
    },
  }
}

describe('maxQueuedBytes', () => {
  it.each([4, 5] as const)(
    'MQTT %i: an offline session keeps 10 messages of 1,000 bytes in 10,000; 10 more are dropped and reported; it gets the 10 on return',
    async (protocolVersion) => {
      const clientId = `offline-${protocolVersion}`
      const dropped = collector<string>()
      const gone = collector<string>()
      const server = track(new MqttServer())
      await server.setHooks({
        onMessageDropped: (to, _from, m) => to?.clientId === clientId && dropped.add(m.payload.toString().trim()),
        onClientDisconnected: (s) => gone.add(s.clientId),
      })
      const [info] = await server.start({ listeners: [listener('tcp', { maxQueuedBytes: 10_000 })] })
      const url = urlFor(info)
      const persistent = {
        protocolVersion,
        clientId,
        clean: false,
        ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
      }
      const sub = await connect(url, persistent)
      await subscribe(sub, 'q/#', 1)
      await sub.endAsync()
      await gone.until((ids) => ids.includes(clientId), `${clientId} did not disconnect`)

      const live = await connect(url, { protocolVersion })
      const liveBox = inbox(live)
      await subscribe(live, 'q/#', 1)
      const pub = await connect(url, { protocolVersion })
      // 'q/x' and 997 bytes of payload: 1,000 bytes each.
      const payload = (i: number) => String(i).padEnd(997, ' ')
      for (let i = 0; i < 20; i++) await pub.publishAsync('q/x', payload(i), { qos: 1 })
      await dropped.until((d) => d.length >= 10, 'expected 10 dropped messages')
      expect(dropped.items).toEqual(Array.from({ length: 10 }, (_, i) => String(10 + i)))

      // The others are served as before.
      const liveGot = await drain(liveBox, pub, 'q/live-sentinel')
      expect(liveGot.length).toBe(20)

      // The inbox is set before CONNACK: the queued messages follow at once.
      let backBox: Inbox | undefined
      await connect(url, persistent, (c) => {
        backBox = inbox(c)
      })
      const kept = (await drain(backBox!, pub, 'q/back-sentinel')).map((m) => m.payload.toString().trim())
      expect(kept).toEqual(Array.from({ length: 10 }, (_, i) => String(i)))
    },
  )
})

describe('validation', () => {
  it.each([0, 1.5, 2 ** 53])('maxQueuedBytes: %d is refused, naming the field', async (value) => {
    const e = await startError({ listeners: [listener('tcp', { maxQueuedBytes: value })] })
    expect(e.message).toBe(`listeners[0].maxQueuedBytes: must be an integer from 1 to 9007199254740991, got ${value}`)
  })
})
