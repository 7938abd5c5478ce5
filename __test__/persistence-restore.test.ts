/**
 * start() on a store resolves once the stored persistent sessions are
 * restored and their subscriptions routed: a message published as soon as
 * it resolves is queued for them. (It resolved when the listeners were
 * bound, before the restore: the first messages were dropped after their
 * publish resolved.) What is published then comes after the stored
 * messages, in order. The stored messages are read after start() resolves
 * (docs/persistence.md, "Restart time"); a client that connects meanwhile
 * is held until its session has them.
 */
import { afterEach, describe, expect, it } from 'vitest'

import {
  type Inbox,
  type ServerConfig,
  cleanup,
  connect,
  endClient,
  inbox,
  listener,
  removeTempDirs,
  startServer,
  subscribe,
  tempDir,
  urlFor,
} from './helpers'
import { resume, storeQueues, texts } from './sessions'

afterEach(async () => {
  await cleanup()
  removeTempDirs()
})

describe('start() with stored persistent sessions', () => {
  it('resolves once they are restored: what is published at once reaches each of them, after what was stored, in order', async () => {
    const path = tempDir()
    const config: ServerConfig = { listeners: [listener('tcp')], storage: { path } }
    const { server, url } = await startServer(config)
    // Enough sessions that restoring them takes a while after the bind.
    const ids = Array.from({ length: 200 }, (_, i) => `restore-${i}`)
    for (const clientId of ids) {
      const c = await connect(url, { clientId, clean: false })
      await subscribe(c, 'r/#', 1)
      await endClient(c)
    }
    const stored = Array.from({ length: 100 }, (_, i) => `stored${i}`)
    for (const m of stored) await server.publish('r/x', m, { qos: 1 })
    await server.stop()

    const [l] = await server.start(config)
    const live = Array.from({ length: 10 }, (_, i) => `live${i}`)
    for (const m of live) await server.publish('r/x', m, { qos: 1 })
    const sent = [...stored, ...live]

    for (const clientId of ids) {
      let box: Inbox | undefined
      const c = await connect(urlFor(l), { clientId, clean: false }, (client) => {
        box = inbox(client)
      })
      const got: string[] = []
      for (const _ of sent) got.push((await box!.next()).payload.toString())
      expect(got, `${clientId}'s queue`).toEqual(sent)
      await endClient(c)
    }
  })

  it('a client connecting while the stored queues load gets its whole queue, in order, before anything newer', {
    timeout: 60_000,
  }, async () => {
    const config: ServerConfig = {
      listeners: [listener('tcp', { maxMqueueLen: 100_000 })],
      storage: { path: tempDir() },
    }
    // 20,000 stored messages: reading them after start() resolves takes
    // ~35 ms here (logged), longer than these clients take to send CONNECT.
    const ids = Array.from({ length: 10 }, (_, i) => `loading-${i}`)
    const stored = await storeQueues(config, ids, 'l', 2000)

    const { server, url } = await startServer(config)
    const live = Array.from({ length: 10 }, (_, i) => `live${i}`)
    // All at once, with the live publishes: each CONNECT lands during the load.
    const [sessions] = await Promise.all([
      Promise.all(ids.map((clientId) => resume(url, { clientId, clean: false }))),
      (async () => {
        for (const m of live) await server.publish('l/x', m, { qos: 1 })
      })(),
    ])
    const sent = [...stored, ...live]
    for (const [i, { box, sessionPresent }] of sessions.entries()) {
      expect(sessionPresent, `${ids[i]} resumed`).toBe(true)
      expect(await texts(box, sent.length), `${ids[i]}'s queue`).toEqual(sent)
    }
  })
})
