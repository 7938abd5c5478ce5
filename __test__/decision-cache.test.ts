/**
 * Cached decisions: an authorize hook answering with `cacheMs` is not asked
 * again about the same (client connection, action, topic) for that long;
 * it is asked again after it, after a reconnect, and after any change of
 * hooks (setHooks, addHooks, removal). The cache is bounded per hook set
 * (`maxCachedDecisions`) and a client's entries go when it disconnects.
 */
import type { MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import type * as Addon from '../index'
import { MqttServer, cleanup, connect, endClient, listener, track, urlFor } from './helpers'

afterEach(cleanup)

async function start(hooks: Addon.HookCallbacks, options?: Addon.HookOptions) {
  const server = track(new MqttServer())
  server.setHooks(hooks, options)
  const [info] = await server.start({ listeners: [listener('tcp')] })
  return { server, url: urlFor(info) }
}

/** A publish authorize hook that counts its calls per topic. */
function counting(answer: (topic: string) => Addon.PublishAuthorizeResult) {
  const calls = new Map<string, number>()
  return {
    calls,
    count: (topic: string) => calls.get(topic) ?? 0,
    hook: (_s: Addon.SessionInfo, m: Addon.PublishRequest) => {
      calls.set(m.topic, (calls.get(m.topic) ?? 0) + 1)
      return answer(m.topic)
    },
  }
}

/** QoS 1 publish: resolves true when allowed, false when denied. */
function allowed(client: MqttClient, topic: string): Promise<boolean> {
  return client.publishAsync(topic, 'x', { qos: 1 }).then(
    () => true,
    () => false,
  )
}

describe('cacheMs', () => {
  it('reuses an allow and a deny per topic without calling the hook', async () => {
    const h = counting((t) =>
      t === 'no' ? { allow: false, code: 'quotaExceeded', cacheMs: 60_000 } : { allow: true, cacheMs: 60_000 },
    )
    const { server, url } = await start({ onClientPublishAuthorize: h.hook })
    const c = await connect(url, { protocolVersion: 5 })
    for (let i = 0; i < 20; i++) {
      expect(await allowed(c, 'yes')).toBe(true)
      await expect(c.publishAsync('no', 'x', { qos: 1 })).rejects.toMatchObject({ code: 0x97 })
    }
    expect(h.count('yes')).toBe(1)
    expect(h.count('no')).toBe(1)
    expect(await allowed(c, 'other')).toBe(true)
    expect(h.count('other')).toBe(1)
    expect(server.hookStats.cachedDecisions).toBe(3)
  })

  it('asks each new connection of a client, and forgets a client that disconnects', async () => {
    const h = counting(() => ({ allow: true, cacheMs: 60_000 }))
    let disconnected: () => void = () => {}
    const { server, url } = await start({
      onClientPublishAuthorize: h.hook,
      // The broker forgets a client's decisions before this notification.
      onClientDisconnected: () => disconnected(),
    })
    const first = await connect(url, { clientId: 'same' })
    await allowed(first, 't')
    await allowed(first, 't')
    expect(h.count('t')).toBe(1)
    const gone = new Promise<void>((resolve) => {
      disconnected = resolve
    })
    await endClient(first)
    await gone
    expect(server.hookStats.cachedDecisions).toBe(0)
    const second = await connect(url, { clientId: 'same' })
    await allowed(second, 't')
    expect(h.count('t')).toBe(2)
  })

  it('asks again once cacheMs has passed', async () => {
    const h = counting(() => ({ allow: true, cacheMs: 300 }))
    const { url } = await start({ onClientPublishAuthorize: h.hook })
    const c = await connect(url)
    const t0 = Date.now()
    await allowed(c, 't')
    let publishes = 1
    while (h.count('t') < 2) {
      if (Date.now() - t0 > 5000) throw new Error('the hook was not asked again within 5 s')
      await allowed(c, 't')
      publishes++
    }
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300)
    expect(publishes).toBeGreaterThan(2) // some were answered from the cache
  })

  it('is cleared by setHooks(), addHooks() and removing a set', async () => {
    const h = counting(() => ({ allow: true, cacheMs: 60_000 }))
    const { server, url } = await start({ onClientPublishAuthorize: h.hook })
    const c = await connect(url)
    await allowed(c, 't')
    await allowed(c, 't')
    expect(h.count('t')).toBe(1)

    server.setHooks({ onClientPublishAuthorize: h.hook })
    await allowed(c, 't')
    expect(h.count('t')).toBe(2)

    const off = server.addHooks({ onClientConnected: () => {} })
    await allowed(c, 't')
    expect(h.count('t')).toBe(3)

    await allowed(c, 't')
    expect(h.count('t')).toBe(3)
    off()
    await allowed(c, 't')
    expect(h.count('t')).toBe(4)
  })

  it('caches subscribe decisions per topic filter, QoS cap included', async () => {
    let asked = 0
    const { url } = await start({
      onClientSubscribeAuthorize: () => {
        asked++
        return { allow: true, qos: 1, cacheMs: 60_000 }
      },
    })
    const c = await connect(url, { protocolVersion: 5 })
    for (let i = 0; i < 5; i++) {
      const granted = await c.subscribeAsync('s/#', { qos: 2 })
      expect(granted[0].qos).toBe(1)
    }
    expect(asked).toBe(1)
  })

  it('keeps at most maxCachedDecisions per set', async () => {
    const h = counting(() => ({ allow: true, cacheMs: 60_000 }))
    const { server, url } = await start({ onClientPublishAuthorize: h.hook }, { maxCachedDecisions: 100 })
    const c = await connect(url)
    let peak = 0
    for (let i = 0; i < 1000; i++) {
      await allowed(c, `many/${i}`)
      peak = Math.max(peak, server.hookStats.cachedDecisions)
    }
    expect(h.calls.size).toBe(1000)
    expect(peak).toBe(100)
    expect(server.hookStats.cachedDecisions).toBeLessThanOrEqual(100)
    // What is still cached is answered without a call.
    const before = [...h.calls.values()].reduce((a, b) => a + b, 0)
    await allowed(c, 'many/999')
    expect([...h.calls.values()].reduce((a, b) => a + b, 0)).toBe(before)
  })

  it('treats a bad cacheMs as the hook failing (denied, counted, not cached)', async () => {
    const h = counting(() => ({ allow: true, cacheMs: -5 }))
    const { server, url } = await start({ onClientPublishAuthorize: h.hook })
    const c = await connect(url, { protocolVersion: 5 })
    expect(await allowed(c, 't')).toBe(false)
    expect(await allowed(c, 't')).toBe(false)
    expect(h.count('t')).toBe(2)
    expect(server.hookStats.failures).toBe(2)
    expect(server.hookStats.cachedDecisions).toBe(0)
  })
})
