/**
 * `maxPublishRate` of a listener (src/publish_rate.rs, rmqtt 0045-limits):
 * a client publishing faster than its rate is throttled, not disconnected:
 * after a burst of one second's worth, its messages are routed at the rate
 * (the broker stops reading its socket meanwhile), while another client on
 * the same broker is served at once. Rates are checked with a generous
 * tolerance: a busy machine only makes the throttled client slower.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, connect, EVENT_TIMEOUT, inbox, listener, startError, startServer, subscribe, urlFor } from './helpers'
import { CONNACK, connectPacket, destroyRaw, PUBACK, publishPacket, rawConnect } from './raw'

afterEach(async () => {
  destroyRaw()
  await cleanup()
})

const VERSIONS = [4, 5] as const

describe('maxPublishRate', () => {
  it.each([
    ...VERSIONS.map((v) => [v, 'messages', { messages: 20 }, 60, 10] as const),
    ...VERSIONS.map((v) => [v, 'bytes', { bytes: 20_000 }, 60, 1000] as const),
  ])(
    'MQTT %i, %s: after a one-second burst the flood is routed at the rate; another client is served meanwhile',
    async (protocolVersion, _, maxPublishRate, count, size) => {
      // 20 messages per second either way (1000-byte payloads, 20,000 bytes/s).
      const perSecond = 20
      const { listeners } = await startServer([listener('tcp', { maxPublishRate })])
      const url = urlFor(listeners[0])
      const sub = await connect(url, { protocolVersion })
      await subscribe(sub, 'rate/#', 1)
      const box = inbox(sub)
      const flooder = await connect(url, { protocolVersion })
      const other = await connect(url, { protocolVersion })

      const payload = Buffer.alloc(size - 'rate/flood'.length, 'x')
      // Before the first write: the broker cannot read the flood sooner.
      const started = Date.now()
      for (let i = 0; i < count; i++) flooder.publish('rate/flood', payload, { qos: 1 })
      const times: number[] = []
      let otherAt = -1
      // Once the burst is through, the other client's message overtakes the rest of the flood.
      while (times.length < count) {
        const m = await box.next(EVENT_TIMEOUT)
        if (m.topic === 'rate/other') otherAt = times.length
        else times.push(Date.now() - started)
        if (times.length === perSecond && otherAt < 0) other.publish('rate/other', 'served', { qos: 1 })
      }
      expect(otherAt).toBeGreaterThanOrEqual(perSecond)
      expect(otherAt).toBeLessThan(count - 5)
      // The rate held: by t seconds at most a burst, one more (the one that
      // goes into debt is still handled) and t seconds' worth were read (the
      // bucket starts full), so message i (from 0) came no sooner than
      // (i - burst) / rate. A busy machine only makes them later.
      const early = times
        .map((t, i) => ({ i, t, due: ((i - perSecond) / perSecond) * 1000 - 20 }))
        .filter(({ t, due }) => t < due)
      expect(early).toEqual([])
      expect(times[count - 1]).toBeGreaterThanOrEqual(((count - 1 - perSecond) / perSecond) * 1000 - 20)
      expect(flooder.connected).toBe(true)
    },
    30_000,
  )
})

describe('a hold longer than the keep-alive', () => {
  it.each(VERSIONS)(
    'MQTT %i: does not disconnect the client: it is silent because it is not read',
    async (version) => {
      const { listeners } = await startServer([listener('tcp', { maxPublishRate: { bytes: 1000 } })])
      // A raw client: it sends no PINGREQ of its own. Keep-alive 2 s: closed after 3 s of silence.
      const c = await rawConnect(listeners[0])
      await c.write(connectPacket({ version, keepAlive: 2 }))
      expect((await c.next(CONNACK)).body[1]).toBe(0)
      const started = Date.now()
      // 'k' and 4,999 bytes: 4 s of debt beyond the one-second burst.
      await c.write(publishPacket(version, 'k', Buffer.alloc(4999)))
      await c.write(publishPacket(version, 'k', 'after', { packetId: 1 }))
      await c.next(PUBACK, 10_000)
      expect(Date.now() - started).toBeGreaterThanOrEqual(3500)
    },
    15_000,
  )
})

describe('validation', () => {
  it.each([
    [{}, 'listeners[0].maxPublishRate: give messages, bytes or both'],
    [{ messages: 0 }, 'listeners[0].maxPublishRate.messages: must be an integer from 1 to 4294967295, got 0'],
    [{ bytes: 1.5 }, 'listeners[0].maxPublishRate.bytes: must be an integer from 1 to 9007199254740991, got 1.5'],
  ])('%j is refused, naming the field', async (maxPublishRate, message) => {
    const e = await startError({ listeners: [listener('tcp', { maxPublishRate })] })
    expect(e.message).toBe(message)
  })

  it('an unknown field is refused, naming it', async () => {
    const e = await startError({ listeners: [listener('tcp', { maxPublishRate: { msgs: 1 } as never })] })
    expect(e.message).toMatch(/^listeners\[0\]\.maxPublishRate(\.msgs)?: unknown field `msgs`/)
  })
})
