/**
 * `maxRetainedMessages` and `maxRetainedBytes` (src/retained_quota.rs):
 * beyond them a retained message for a new topic is refused (MQTT 5 QoS 1:
 * PUBACK 0x97; QoS 0 and 3.1.1: dropped), not stored, not routed,
 * reported through `onMessageDropped` and counted; replacing and clearing
 * retained messages still works, and the broker keeps serving.
 */
import type { MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import type * as Addon from '../index'
import {
  cleanup,
  connect,
  drain,
  EVENT_TIMEOUT,
  inbox,
  listener,
  MqttServer,
  patternBytes,
  startError,
  subscribe,
  tempDir,
  track,
  urlFor,
  withDeadline,
} from './helpers'

afterEach(cleanup)

const QUOTA_EXCEEDED = 0x97

async function quotaServer(config: Partial<Addon.ServerConfig>) {
  const server = track(new MqttServer())
  const topics: string[] = []
  let seen = () => {}
  await server.setHooks({
    onMessageDropped: (_to, from, m) => {
      if (from.type !== 'client') return
      topics.push(m.topic)
      seen()
    },
  })
  /** The topics reported dropped, once there are `n` (notifications come later than acks). */
  const dropped = (n: number) =>
    withDeadline(
      new Promise<string[]>((res) => {
        seen = () => topics.length >= n && res([...topics])
        seen()
      }),
      EVENT_TIMEOUT,
      () => `${n} onMessageDropped expected, got ${JSON.stringify(topics)}`,
    )
  const [info] = await server.start({ listeners: [listener('tcp')], ...config })
  return { server, url: urlFor(info), dropped }
}

/** Publishes retained at QoS 1: the PUBACK's reason code (always 0 on 3.1.1). */
async function retain(c: MqttClient, topic: string, payload: string | Buffer): Promise<number> {
  try {
    const packet = await c.publishAsync(topic, payload, { qos: 1, retain: true })
    return (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0
  } catch (e) {
    const code = (e as { code?: number }).code
    if (code === undefined) throw e
    return code
  }
}

const storedTopics = async (server: MqttServer) => (await server.retained('#')).map((m) => m.topic).sort()

describe('maxRetainedMessages', () => {
  it('MQTT 5: a third retained topic of 2 gets PUBACK 0x97 and is neither stored nor routed; replacing and clearing still work', async () => {
    const { server, url, dropped } = await quotaServer({ maxRetainedMessages: 2 })
    const watcher = await connect(url, { protocolVersion: 5 })
    await subscribe(watcher, 'r/#', 1)
    const box = inbox(watcher)
    const c = await connect(url, { protocolVersion: 5 })

    expect(await retain(c, 'r/1', 'one')).toBe(0)
    expect(await retain(c, 'r/2', 'two')).toBe(0)
    expect(await retain(c, 'r/3', 'three')).toBe(QUOTA_EXCEEDED)
    // server.publish() is held to it too.
    await expect(server.publish('r/server', 'x', { retain: true })).rejects.toThrow(/retained message quota exceeded/)
    expect(await retain(c, 'r/1', 'one, replaced')).toBe(0)
    expect(await storedTopics(server)).toEqual(['r/1', 'r/2'])
    // QoS 0: no answer, dropped and counted.
    const droppedBefore = (await server.stats()).messagesDropped.qos0
    c.publish('r/4', 'four', { qos: 0, retain: true })
    const routed = (await drain(box, c, 'r/sentinel')).map((m) => `${m.topic} ${m.payload}`)
    expect(routed).toEqual(['r/1 one', 'r/2 two', 'r/1 one, replaced'])
    expect(await dropped(2)).toEqual(['r/3', 'r/4'])
    expect((await server.stats()).messagesDropped.qos0).toBe(droppedBefore + 1)

    // Clearing one (empty payload) makes room.
    expect(await retain(c, 'r/2', '')).toBe(0)
    expect(await retain(c, 'r/3', 'three')).toBe(0)
    expect(await storedTopics(server)).toEqual(['r/1', 'r/3'])
    // deleteRetained() makes room too.
    expect(await server.deleteRetained('r/1')).toBe(true)
    expect(await retain(c, 'r/5', 'five')).toBe(0)
    expect(await storedTopics(server)).toEqual(['r/3', 'r/5'])
  })

  it('MQTT 3.1.1: a retained topic beyond the limit is dropped (3.1.1 cannot refuse) and reported; the client stays connected', async () => {
    const { server, url, dropped } = await quotaServer({ maxRetainedMessages: 1 })
    const c = await connect(url, { protocolVersion: 4 })
    expect(await retain(c, 'r/1', 'one')).toBe(0)
    expect(await retain(c, 'r/2', 'two')).toBe(0)
    expect(await dropped(1)).toEqual(['r/2'])
    expect(await storedTopics(server)).toEqual(['r/1'])
    expect(await retain(c, 'r/1', 'replaced')).toBe(0)
    expect((await server.retained('r/1'))[0].payload.toString()).toBe('replaced')
    expect(c.connected).toBe(true)
  })
})

describe('maxRetainedBytes', () => {
  it.each([4, 5] as const)(
    'MQTT %i: topics and payloads count; a new topic or a larger replacement over the bound is refused, a smaller one is not',
    async (protocolVersion) => {
      // 'b/1' + 40 bytes = 43 each.
      const { server, url, dropped } = await quotaServer({ maxRetainedBytes: 100 })
      const c = await connect(url, { protocolVersion })
      const refused = protocolVersion === 5 ? QUOTA_EXCEEDED : 0
      expect(await retain(c, 'b/1', 'x'.repeat(40))).toBe(0)
      expect(await retain(c, 'b/2', 'x'.repeat(40))).toBe(0)
      expect(await retain(c, 'b/3', 'x'.repeat(40))).toBe(refused)
      expect(await retain(c, 'b/1', 'x'.repeat(55))).toBe(refused)
      expect(await retain(c, 'b/1', 'x'.repeat(10))).toBe(0)
      expect(await retain(c, 'b/3', 'x'.repeat(40))).toBe(0)
      expect(await dropped(2)).toEqual(['b/3', 'b/1'])
      expect(await storedTopics(server)).toEqual(['b/1', 'b/2', 'b/3'])
      // Another client is served as before.
      const other = await connect(url, { protocolVersion })
      const box = inbox(other)
      await subscribe(other, 'b/+', 1)
      await c.publishAsync('b/live', 'not retained', { qos: 1 })
      const got = []
      for (let i = 0; i < 4; i++) got.push((await box.next()).topic)
      expect(got.sort()).toEqual(['b/1', 'b/2', 'b/3', 'b/live'])
    },
  )
})

describe('large retained payloads', () => {
  // rmqtt-retainer's own cap (1 MiB) used to turn these into plain messages,
  // silently: routed, never stored.
  it.each([
    ['in memory', () => ({})],
    ['on disk', () => ({ storage: { path: tempDir() } })],
  ] as const)(
    '%s: a 3 MiB retained message that maxPacketSize lets in is stored and served to a new subscriber',
    async (_, storage) => {
      const { server, url } = await quotaServer({
        listeners: [listener('tcp', { maxPacketSize: 4 * 1024 * 1024 })],
        ...storage(),
      })
      const payload = patternBytes(3 * 1024 * 1024)
      const c = await connect(url, { protocolVersion: 5 })
      expect(await retain(c, 'big', payload)).toBe(0)
      const [stored] = await server.retained('big')
      expect(stored?.payload.equals(payload)).toBe(true)
      const late = await connect(url, { protocolVersion: 5 })
      const box = inbox(late)
      await subscribe(late, 'big', 1)
      const got = await box.next()
      expect([got.topic, got.packet.retain, got.payload.equals(payload)]).toEqual(['big', true, true])
    },
  )
})

describe('validation', () => {
  it.each([
    ['maxRetainedMessages', 0, 4294967295],
    ['maxRetainedMessages', 1.5, 4294967295],
    ['maxRetainedBytes', 0, 9007199254740991],
  ])('%s: %d is refused, naming the field', async (field, value, max) => {
    const e = await startError({ listeners: [listener('tcp')], [field]: value })
    expect(e.message).toBe(`${field}: must be an integer from 1 to ${max}, got ${value}`)
  })
})
