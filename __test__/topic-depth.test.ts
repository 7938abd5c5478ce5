/**
 * Topic depth. The broker keeps subscriptions and retained messages in trees
 * with one node per topic level; walking them recursed once per level, so a
 * single packet with a few thousand levels overflowed a worker thread's stack
 * and killed the host process (SIGSEGV). The walks are loops now, and the
 * `maxTopicLevels` listener limit (default 128) is a second line of defence.
 *
 * The first group turns the limit off (65,536 levels: the most a 65,535-byte
 * topic can have) so the trees themselves are tested. A crash kills this test
 * file's process, which fails it.
 */
import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  inbox,
  listener,
  MQTT_VERSIONS,
  MqttServer,
  startServer,
  subscribe,
  track,
  urlFor,
  waitFor,
} from './helpers'

afterEach(cleanup)

const VERSIONS = ['3.1.1', '5.0'] as const
const NO_LIMIT = 65536

/** `levels` levels named `level`, joined by `/`. */
const deep = (levels: number, level = 'a') => Array(levels).fill(level).join('/')

/** The deepest topic MQTT can carry: 65,535 slashes, 65,536 empty levels. */
const DEEPEST = '/'.repeat(65535)

async function broker(maxTopicLevels?: number) {
  const { server, listeners } = await startServer([listener('tcp', maxTopicLevels ? { maxTopicLevels } : {})])
  return { server, url: urlFor(listeners[0]) }
}

/** A round trip through the broker on a fresh connection: it still serves. */
async function alive(url: string) {
  const c = await connect(url)
  const box = inbox(c)
  await subscribe(c, 'alive/check', 1)
  await c.publishAsync('alive/check', 'yes', { qos: 1 })
  expect((await box.next()).payload.toString()).toBe('yes')
}

describe('deep topics do not crash the broker (limit off)', () => {
  it.each(VERSIONS)(
    'MQTT %s: a 6,000-level filter is subscribed, matched, delivered to and unsubscribed',
    async (v) => {
      const { url } = await broker(NO_LIMIT)
      const topic = deep(6000)
      const sub = await connect(url, MQTT_VERSIONS[v])
      const box = inbox(sub)
      await subscribe(sub, topic, 1)
      const pub = await connect(url, MQTT_VERSIONS[v])
      await pub.publishAsync(topic, 'deep', { qos: 1 })
      const m = await box.next()
      expect([m.topic.length, m.payload.toString()]).toEqual([topic.length, 'deep'])
      await sub.unsubscribeAsync(topic)
      await alive(url)
    },
  )

  it.each(VERSIONS)(
    'MQTT %s: 65,536-level filters, plain and with wildcards at every level, match a 65,536-level topic',
    async (v) => {
      const { url } = await broker(NO_LIMIT)
      const sub = await connect(url, MQTT_VERSIONS[v])
      const box = inbox(sub)
      // 32,768 levels: `+` at each of 32,767 levels, then `#`.
      const wild = `${'+/'.repeat(32767)}#`
      const pub = await connect(url, MQTT_VERSIONS[v])
      for (const filter of [DEEPEST, wild]) {
        await subscribe(sub, filter, 0)
        await pub.publishAsync(DEEPEST, filter === wild ? 'wild' : 'plain', { qos: 0 })
        const m = await box.next()
        expect([m.topic === DEEPEST, m.payload.toString()]).toEqual([true, filter === wild ? 'wild' : 'plain'])
        await sub.unsubscribeAsync(filter)
      }
      await alive(url)
    },
  )

  it('a retained message on a 4,000-level topic is stored and replaced', async () => {
    const { url } = await broker(NO_LIMIT)
    const pub = await connect(url)
    const topic = deep(4000)
    await pub.publishAsync(topic, 'one', { qos: 1, retain: true })
    await pub.publishAsync(topic, 'two', { qos: 1, retain: true })
    const sub = await connect(url)
    const box = inbox(sub)
    await subscribe(sub, topic, 1)
    expect((await box.next()).payload.toString()).toBe('two')
    await alive(url)
  })

  it.each([2500, 32768])(
    'a retained message %i levels deep is delivered to a later `#` subscriber, then cleared',
    async (levels) => {
      const { url } = await broker(NO_LIMIT)
      const pub = await connect(url)
      const topic = deep(levels, 'r')
      await pub.publishAsync(topic, 'bomb', { qos: 1, retain: true })
      const sub = await connect(url)
      const box = inbox(sub)
      await subscribe(sub, '#', 1)
      const m = await box.next()
      expect([m.topic === topic, m.payload.toString(), m.packet.retain]).toEqual([true, 'bomb', true])
      // Clearing removes the whole chain of levels.
      await pub.publishAsync(topic, '', { qos: 1, retain: true })
      const late = await connect(url)
      const lateBox = inbox(late)
      await subscribe(late, '#', 1)
      await pub.publishAsync('after/clear', 'live', { qos: 1 })
      expect((await lateBox.next()).topic).toBe('after/clear')
    },
  )

  it('MQTT 5.0: a 30,000-level shared subscription gets its messages', async () => {
    const { url } = await broker(NO_LIMIT)
    const topic = deep(30000, 's')
    const sub = await connect(url, MQTT_VERSIONS['5.0'])
    const box = inbox(sub)
    await subscribe(sub, `$share/g/${topic}`, 1)
    const pub = await connect(url, MQTT_VERSIONS['5.0'])
    await pub.publishAsync(topic, 'shared', { qos: 1 })
    expect((await box.next()).payload.toString()).toBe('shared')
    await alive(url)
  })

  it("a retained will on a 32,768-level topic is published when its client drops, and the client's deep subscription goes with its session", async () => {
    const { url } = await broker(NO_LIMIT)
    const topic = deep(32768, 'w')
    const dying = await connect(url, { will: { topic, payload: Buffer.from('gone'), qos: 1, retain: true } })
    await subscribe(dying, deep(32768, 'x'), 0)
    const watcher = await connect(url)
    const box = inbox(watcher)
    await subscribe(watcher, '#', 1)
    dying.stream.destroy()
    const m = await box.next()
    expect([m.topic === topic, m.payload.toString()]).toEqual([true, 'gone'])
    await alive(url)
  })
})

describe('maxTopicLevels', () => {
  it.each([
    ['3.1.1', 0x80],
    ['5.0', 0x8f],
  ] as const)(
    'MQTT %s: by default a filter of 129 levels is refused (SUBACK code %i) and one of 128 in the same SUBSCRIBE is granted',
    async (v, code) => {
      const { url } = await broker()
      const c = await connect(url, MQTT_VERSIONS[v])
      // mqtt.js rejects a SUBACK with any failure in it; the codes are on the packet.
      const suback = await c.subscribeAsync({ [deep(129)]: { qos: 1 }, [deep(128)]: { qos: 1 } }).then(
        (granted) => ({ granted: granted.map((g) => g.qos) }),
        (e: { packet?: { granted?: number[] } }) => ({ granted: e.packet?.granted }),
      )
      expect(suback.granted).toEqual([code, 1])
    },
  )

  // maxTopicLength (limits.test.ts) refuses a publish the same way.
  const overLimit = VERSIONS.flatMap((v) => [
    [v, 'maxTopicLevels', { maxTopicLevels: 4 }, 'a/b/c/d/e', 'a/b/c/d'] as const,
    [v, 'maxTopicLength', { maxTopicLength: 16 }, 'a'.repeat(17), 'a'.repeat(16)] as const,
  ])
  it.each(overLimit)(
    'MQTT %s: a publish to a topic over %s is refused and never routed',
    async (v, _, limit, over, fits) => {
      const { listeners } = await startServer([listener('tcp', limit)])
      const url = urlFor(listeners[0])
      const sub = await connect(url, MQTT_VERSIONS[v])
      const box = inbox(sub)
      await subscribe(sub, '#', 1)
      const pub = await connect(url, MQTT_VERSIONS[v])
      const disconnect = v === '5.0' ? waitFor<[{ reasonCode?: number }]>(pub, 'disconnect') : null
      const closed = waitFor(pub, 'close')
      pub.publish(over, 'over the limit', { qos: 1 })
      await closed
      // MQTT 5: DISCONNECT 0x90 Topic Name invalid first; 3.1.1 has no way to say it.
      if (disconnect) expect((await disconnect)[0].reasonCode).toBe(0x90)
      const ok = await connect(url, MQTT_VERSIONS[v])
      await ok.publishAsync(fits, 'fits', { qos: 1 })
      expect((await box.next()).topic).toBe(fits)
    },
  )

  it('is validated', async () => {
    for (const bad of [0, 65537, 1.5]) {
      const server = track(new MqttServer())
      const err = (await server
        .start({ listeners: [listener('tcp', { maxTopicLevels: bad })] })
        .catch((e) => e)) as Error & {
        code?: string
      }
      expect(err.code).toBe('InvalidArg')
      expect(err.message).toMatch(/^listeners\[0\]\.maxTopicLevels: /)
    }
  })
})
