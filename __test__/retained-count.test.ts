/**
 * The retained messages' count and bytes (`stats()`, `metrics()`) are exact
 * at once, in memory and in a store (sled, Redis), right after `start()`
 * from a store already holding messages; `maxRetainedMessages` counts what
 * the store holds (src/retained_quota.rs, whose account `stats()` reads).
 * A store writes in batches in the background: what a reader gets right
 * after a PUBACK is still the newest (MQTT-3.3.1-5: stored for future
 * subscribers once accepted).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

import {
  type MqttServer,
  type ServerConfig,
  cleanup,
  connect,
  inbox,
  listener,
  startServer,
  subscribe,
} from './helpers'
import { type RedisServer, redisTests, startRedis } from './redis'

/** Enough that a page of the store's listing is not the whole of it. */
const N = 1500
const dirs: string[] = []
let redis: RedisServer | undefined
let prefixes = 0

beforeAll(async () => {
  if (redisTests) redis = await startRedis()
})
afterAll(async () => {
  await redis?.kill()
})
afterEach(async () => {
  await cleanup()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

type Storage = ServerConfig['storage']
const engines: { name: string; run: boolean; storage: () => Storage }[] = [
  { name: 'in memory', run: true, storage: () => undefined },
  {
    name: 'storage.path (sled)',
    run: true,
    storage: () => {
      const path = mkdtempSync(join(tmpdir(), 'mqtt-count-'))
      dirs.push(path)
      return { path }
    },
  },
  {
    name: 'storage.redis',
    run: redisTests,
    storage: () => ({ redis: redis?.url ?? '', keyPrefix: `count${++prefixes}-${process.pid}` }),
  },
]

const payload = (i: number) => 'x'.repeat(1 + (i % 64))
/** Payload bytes of messages 0..n-1. */
const bytesOf = (n: number) => Array.from({ length: n }, (_, i) => payload(i).length).reduce((a, b) => a + b, 0)

async function fill(server: MqttServer, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, i) => server.publish(`c/${i}`, payload(i), { qos: 1, retain: true })))
}

async function counts(server: MqttServer): Promise<{ messages: number; bytes: number; metric: string }> {
  const s = await server.stats()
  const metric = /^mqtt_retained_messages (\d+)$/m.exec(await server.metrics())?.[1] ?? 'missing'
  return { messages: s.retainedMessages, bytes: s.retainedBytes, metric }
}

describe.each(engines)('retained counts: $name', ({ run, storage }) => {
  it.runIf(run)('are exact after each publish, replace and clear, and after a restart from the store', async () => {
    const store = storage()
    const config = (extra: Partial<ServerConfig> = {}): ServerConfig => ({
      listeners: [listener('tcp')],
      ...(store ? { storage: store } : {}),
      ...extra,
    })
    const { server } = await startServer(config())
    expect(await counts(server)).toEqual({ messages: 0, bytes: 0, metric: '0' })
    await fill(server, N)
    expect(await counts(server)).toEqual({ messages: N, bytes: bytesOf(N), metric: String(N) })

    await server.publish('c/0', 'replaced, longer', { retain: true })
    await server.publish('c/1', '', { retain: true })
    expect(await server.deleteRetained('c/2')).toBe(true)
    const bytes = bytesOf(N) - payload(0).length - payload(1).length - payload(2).length + 'replaced, longer'.length
    expect(await counts(server)).toEqual({ messages: N - 2, bytes, metric: String(N - 2) })
    await server.stop()
    if (!store) return

    // From the store, at once: nothing has been published since.
    await server.start(config())
    expect(await counts(server)).toEqual({ messages: N - 2, bytes, metric: String(N - 2) })
    await server.stop()

    // A limit below what the store holds: new topics refused, replacing works.
    await server.start(config({ maxRetainedMessages: 10 }))
    await expect(server.publish('c/new', 'x', { retain: true })).rejects.toThrow(/retained message quota exceeded/)
    // Resolves: admitted (a refusal rejects, as above).
    await server.publish('c/3', 'replaced', { retain: true })
    expect(await counts(server)).toMatchObject({ messages: N - 2 })
  })
})

describe.each(engines)('retained read right after its PUBACK: $name', ({ run, storage }) => {
  it.runIf(run)(
    'MQTT-3.3.1-5: a new subscriber and retained() get the newest retained message at once, after a set, a replace and a clear',
    async () => {
      const store = storage()
      const { server, url } = await startServer({ listeners: [listener('tcp')], ...(store ? { storage: store } : {}) })
      const publisher = await connect(url, { protocolVersion: 5 })
      const newest = async (filter: string) => {
        const c = await connect(url, { protocolVersion: 5 })
        const box = inbox(c)
        await subscribe(c, filter, 1)
        const got = (await box.next()).payload.toString()
        await c.endAsync()
        return got
      }
      for (let i = 0; i < 10; i++) {
        await publisher.publishAsync('r/x', `v${i}`, { qos: 1, retain: true })
        expect([await newest('r/x'), await newest('r/+')]).toEqual([`v${i}`, `v${i}`])
        expect((await server.retained('r/#')).map((m) => m.payload.toString())).toEqual([`v${i}`])
      }
      await publisher.publishAsync('r/x', '', { qos: 1, retain: true })
      expect(await server.retained('r/x')).toEqual([])
      expect(await server.retained('r/#')).toEqual([])
    },
  )
})
