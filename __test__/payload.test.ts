import { afterEach, describe, expect, it } from 'vitest'

import {
  allBytes,
  cleanup,
  connect,
  inbox,
  listener,
  MQTT_VERSIONS,
  patternBytes,
  type Protocol,
  startServer,
  subscribe,
  urlFor,
} from './helpers'

afterEach(cleanup)

const PROTOCOLS: Protocol[] = ['tcp', 'tls', 'ws', 'wss']

describe('binary payloads are delivered byte-exact, client to client', () => {
  it.each(PROTOCOLS)('over %s: every byte value, ~100 KiB, and an empty payload', async (protocol) => {
    const { listeners } = await startServer([listener(protocol)])
    const url = urlFor(listeners[0])
    const sub = await connect(url, MQTT_VERSIONS['5.0'])
    const box = inbox(sub)
    await subscribe(sub, 'bin/#', 2)
    const pub = await connect(url, MQTT_VERSIONS['3.1.1'])

    const bytes = allBytes()
    expect(bytes.length).toBe(256)
    await pub.publishAsync('bin/all', bytes, { qos: 1 })
    const m1 = await box.next()
    expect(m1.topic).toBe('bin/all')
    expect(m1.payload.length).toBe(256)
    expect([...m1.payload]).toEqual([...bytes])

    const big = patternBytes(100 * 1024 + 7, 42)
    await pub.publishAsync('bin/big', big, { qos: 2 })
    const m2 = await box.next()
    expect(m2.topic).toBe('bin/big')
    expect(m2.payload.length).toBe(big.length)
    expect(Buffer.compare(m2.payload, big)).toBe(0)

    await pub.publishAsync('bin/empty', Buffer.alloc(0), { qos: 1 })
    const m3 = await box.next()
    expect(m3.topic).toBe('bin/empty')
    expect(m3.payload.length).toBe(0)
  })

  it('a payload just under the default 1 MiB packet limit passes intact', async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const sub = await connect(url)
    const box = inbox(sub)
    await subscribe(sub, 'huge', 1)
    const pub = await connect(url)
    const payload = patternBytes(1024 * 1024 - 64, 7)
    await pub.publishAsync('huge', payload, { qos: 1 })
    const m = await box.next()
    expect(Buffer.compare(m.payload, payload)).toBe(0)
  })

  it('UTF-8 text (multi-byte characters) and NUL bytes survive', async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const sub = await connect(url)
    const box = inbox(sub)
    await subscribe(sub, 'text/ü/🚀', 1)
    const pub = await connect(url)
    const text = 'héllo wörld ✓ 🚀 \u0000 end'
    await pub.publishAsync('text/ü/🚀', text, { qos: 1 })
    const m = await box.next()
    expect(m.topic).toBe('text/ü/🚀')
    expect(m.payload.toString('utf8')).toBe(text)
    expect(Buffer.compare(m.payload, Buffer.from(text, 'utf8'))).toBe(0)
  })
})

describe('bursts and quiet spells', () => {
  // A subscriber's connection batches its writes: larger while it streams,
  // back to a small buffer after a run of light flushes. Data must come
  // through whole and in order across each switch.
  // Payloads from 1 KiB on are written from the publisher's own buffer next
  // to their header (over tcp and tls), so each MQTT version's header is
  // checked against its payload too.
  it.each([
    ['tcp', '5.0'],
    ['tcp', '3.1.1'],
    ['tls', '3.1.1'],
    ['wss', '5.0'],
  ] as Array<[Protocol, '3.1.1' | '5.0']>)(
    'over %s to an MQTT %s subscriber: a burst, one message at a time, another burst',
    async (protocol, version) => {
      const { listeners } = await startServer([listener(protocol)])
      const url = urlFor(listeners[0])
      const sub = await connect(url, MQTT_VERSIONS[version])
      const box = inbox(sub)
      await subscribe(sub, 'burst/#', 1)
      const pub = await connect(url, MQTT_VERSIONS[version === '5.0' ? '3.1.1' : '5.0'])
      const payload = (i: number) => patternBytes(4096, i + 1)
      let seq = 0
      const burst = (n: number) =>
        Promise.all(Array.from({ length: n }, () => pub.publishAsync(`burst/${seq}`, payload(seq++), { qos: 1 })))
      const expectNext = async (i: number) => {
        const m = await box.next()
        expect(m.topic).toBe(`burst/${i}`)
        expect(Buffer.compare(m.payload, payload(i))).toBe(0)
      }

      await burst(300)
      for (let i = 0; i < 300; i++) await expectNext(i)
      for (let i = 300; i < 312; i++) {
        await pub.publishAsync(`burst/${seq}`, payload(seq++), { qos: 1 })
        await expectNext(i)
      }
      await burst(300)
      for (let i = 312; i < 612; i++) await expectNext(i)
      expect(box.all.length).toBe(612)
    },
  )
})

describe('a subscriber that stops reading, then reads again', () => {
  // Its socket fills mid-batch, so the broker's writes stop part way through
  // a header, a payload written from its own buffer, or a run of small
  // packets queued between them, and must carry on from exactly there.
  it.each(['tcp', 'tls'] as Protocol[])(
    'over %s: large, small and mid-sized payloads arrive whole and in order',
    async (protocol) => {
      const { listeners } = await startServer([listener(protocol, { maxInflight: 64 })])
      const url = urlFor(listeners[0])
      const sub = await connect(url, MQTT_VERSIONS['5.0'])
      const box = inbox(sub)
      await subscribe(sub, 'stall/#', 1)
      sub.stream.pause()
      // 20 x 900 KiB is more than loopback socket buffers take, and 60
      // messages stay under the flow control's mark, so the publisher is not
      // held and every message is queued to the stalled subscriber.
      const sizes = Array.from({ length: 60 }, (_, i) => [900 * 1024, 10, 3000][i % 3])
      const payload = (i: number) => patternBytes(sizes[i], i + 1)
      const pub = await connect(url, MQTT_VERSIONS['3.1.1'])
      await Promise.all(sizes.map((_, i) => pub.publishAsync(`stall/${i}`, payload(i), { qos: 1 })))
      sub.stream.resume()
      for (let i = 0; i < sizes.length; i++) {
        const m = await box.next()
        expect(m.topic).toBe(`stall/${i}`)
        expect(Buffer.compare(m.payload, payload(i))).toBe(0)
      }
    },
    30_000,
  )
})
