/**
 * Composable hooks: `addHooks()` sets next to the `setHooks()` one.
 * Notifications reach every set; a decision needs every set that has the
 * hook to allow (asked in order: the `setHooks()` set, then the added ones
 * as added), the first denial wins with its code and reason, QoS caps
 * combine as the lowest, and superuser needs every authenticating set.
 */
import type { MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import type * as Addon from '../index'
import { MqttServer, cleanup, connect, drain, inbox, listener, subscribe, track, urlFor } from './helpers'

afterEach(cleanup)

async function start(configure: (server: MqttServer) => void) {
  const server = track(new MqttServer())
  configure(server)
  const [info] = await server.start({ listeners: [listener('tcp', { allowAnonymous: false })] })
  return { server, url: urlFor(info) }
}

function suback(client: MqttClient, topic: string, qos: 0 | 1 | 2): Promise<any> {
  return new Promise((resolve) => {
    const on = (p: any) => {
      if (p.cmd !== 'suback') return
      client.off('packetreceive', on)
      resolve(p)
    }
    client.on('packetreceive', on)
    client.subscribe(topic, { qos }, () => {})
  })
}

/** Resolves once `cond()` holds, checked after each hook call; fails after 5 s. */
function until(cond: () => boolean, what: string, calls: Array<() => void>): Promise<void> {
  if (cond()) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 5000)
    calls.push(() => {
      if (cond()) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
}

describe('addHooks', () => {
  it('an auth module and a metrics module both attach to one server', async () => {
    const seen = { connected: [] as string[], published: [] as string[], asked: 0 }
    const watchers: Array<() => void> = []
    const tick = () => {
      for (const w of watchers) w()
    }
    const auth: Addon.HookCallbacks = {
      onClientAuthenticate: (req) => ({ allow: req.password === 'secret', reason: 'wrong password' }),
      onClientPublishAuthorize: (s, m) => {
        seen.asked++
        return m.topic.startsWith(`${s.clientId}/`) ? { allow: true } : { allow: false, code: 'topicNameInvalid' }
      },
    }
    const metrics: Addon.HookCallbacks = {
      onClientConnected: (s) => {
        seen.connected.push(s.clientId)
        tick()
      },
      onMessagePublish: (_s, _f, m) => {
        seen.published.push(m.topic)
        tick()
      },
    }
    const { server, url } = await start((s) => {
      s.addHooks(auth)
      s.addHooks(metrics)
    })
    const refused = await connect(url, { protocolVersion: 5, username: 'u', password: 'nope' }).catch((e) => e)
    expect(refused.code).toBe(0x86)

    const sub = await connect(url, { protocolVersion: 5, clientId: 'sub', username: 'u', password: 'secret' })
    await subscribe(sub, '#', 1)
    const box = inbox(sub)
    const pub = await connect(url, { protocolVersion: 5, clientId: 'dev', username: 'u', password: 'secret' })
    await expect(pub.publishAsync('other/x', 'no', { qos: 1 })).rejects.toMatchObject({ code: 0x90 })
    await pub.publishAsync('dev/x', 'yes', { qos: 1 })
    expect((await box.next()).topic).toBe('dev/x')
    await until(() => seen.published.includes('dev/x') && seen.connected.length === 2, 'the metrics set', watchers)
    expect(seen.connected.sort()).toEqual(['dev', 'sub'])
    // The metrics set never hears of the denied message.
    expect(seen.published).toEqual(['dev/x'])
    expect(seen.asked).toBe(2)
    expect(server.hookStats.failures).toBe(0)
  })

  it('asks in order and stops at the first denial, which wins with its code and reason', async () => {
    const asked: string[] = []
    const set = (name: string, deny: boolean, code: Addon.ReasonCodeName) => ({
      onClientPublishAuthorize: () => {
        asked.push(name)
        return deny ? { allow: false, code, reason: `${name} says no` } : { allow: true }
      },
    })
    const { url } = await start((s) => {
      s.addHooks(set('first', false, 'notAuthorized'))
      s.addHooks(set('second', true, 'quotaExceeded'))
      s.addHooks(set('third', true, 'payloadFormatInvalid'))
      s.setHooks({ onClientAuthenticate: () => ({ allow: true }) })
    })
    const pub = await connect(url, { protocolVersion: 5, username: 'u', password: 'p' })
    const ack = new Promise<any>((resolve) => pub.on('packetreceive', (p) => p.cmd === 'puback' && resolve(p)))
    await expect(pub.publishAsync('t', 'x', { qos: 1 })).rejects.toMatchObject({ code: 0x97 })
    expect((await ack).properties?.reasonString).toBe('second says no')
    expect(asked).toEqual(['first', 'second'])
  })

  it('refuses a CONNECT with the code and reason of the first set that refuses; later sets are not asked', async () => {
    const asked: string[] = []
    const { url } = await start((s) => {
      s.setHooks({
        onClientAuthenticate: () => {
          asked.push('default')
          return { allow: true }
        },
      })
      s.addHooks({
        onClientAuthenticate: (req) => {
          asked.push('banlist')
          return req.clientId === 'banned'
            ? { allow: false, code: 'banned', reason: 'on the ban list' }
            : { allow: true }
        },
      })
      s.addHooks({
        onClientAuthenticate: () => {
          asked.push('last')
          return { allow: true }
        },
      })
    })
    const connack = new Promise<any>((resolve, reject) => {
      setTimeout(() => reject(new Error('no CONNACK within 5 s')), 5000)
      void connect(url, { protocolVersion: 5, clientId: 'banned', username: 'u', password: 'p' }, (c) =>
        c.on('packetreceive', (p) => p.cmd === 'connack' && resolve(p)),
      ).catch(() => {})
    })
    const ack = await connack
    expect(ack.reasonCode).toBe(0x8a)
    expect(ack.properties?.reasonString).toBe('on the ban list')
    expect(asked).toEqual(['default', 'banlist'])
    await connect(url, { protocolVersion: 5, clientId: 'fine', username: 'u', password: 'p' })
    expect(asked).toEqual(['default', 'banlist', 'default', 'banlist', 'last'])
  })

  it('grants the lowest QoS cap of the sets that allow, and denies if any set denies', async () => {
    const { url } = await start((s) => {
      s.setHooks({ onClientAuthenticate: () => ({ allow: true }) })
      s.addHooks({ onClientSubscribeAuthorize: (_s, sub) => ({ allow: sub.topicFilter !== 'no', qos: 2 }) })
      s.addHooks({ onClientSubscribeAuthorize: (_s, sub) => ({ allow: true, qos: sub.topicFilter === 'low' ? 0 : 1 }) })
      s.addHooks({ onClientSubscribeAuthorize: () => ({ allow: true }) })
    })
    const c = await connect(url, { protocolVersion: 5, username: 'u', password: 'p' })
    expect((await suback(c, 'low', 2)).granted).toEqual([0])
    expect((await suback(c, 'mid', 2)).granted).toEqual([1])
    expect((await suback(c, 'mid0', 0)).granted).toEqual([0])
    expect((await suback(c, 'no', 1)).granted).toEqual([0x87])
  })

  it('makes a superuser only when every authenticating set says so', async () => {
    let asked = 0
    const authorize = {
      onClientPublishAuthorize: () => {
        asked++
        return { allow: true }
      },
    }
    const { url } = await start((s) => {
      s.setHooks({ onClientAuthenticate: () => ({ allow: true, superuser: true }), ...authorize })
      s.addHooks({ onClientAuthenticate: (req) => ({ allow: true, superuser: req.username === 'root' }) })
    })
    const user = await connect(url, { protocolVersion: 5, username: 'user', password: 'p' })
    await user.publishAsync('t', 'x', { qos: 1 })
    expect(asked).toBe(1)
    const root = await connect(url, { protocolVersion: 5, username: 'root', password: 'p' })
    await root.publishAsync('t', 'x', { qos: 1 })
    expect(asked).toBe(1) // both sets said superuser: not asked
  })

  it('removes a set with the function it returned; setHooks() leaves added sets in place', async () => {
    const denied: string[] = []
    const { server, url } = await start((s) => {
      s.setHooks({ onClientAuthenticate: () => ({ allow: true }) })
    })
    const off = server.addHooks({
      onClientPublishAuthorize: (_s, m) => {
        denied.push(m.topic)
        return { allow: false }
      },
    })
    // Registration happens on the broker's thread: retry until the set is live.
    const pub = await connect(url, { protocolVersion: 5, username: 'u', password: 'p' })
    for (let i = 0; i < 100 && denied.length === 0; i++) {
      await pub.publishAsync(`live/${i}`, 'x', { qos: 1 }).catch(() => {})
    }
    expect(denied.length).toBeGreaterThan(0)

    // Replacing the setHooks() set keeps the added one.
    server.setHooks({ onClientAuthenticate: () => ({ allow: true }) })
    await expect(pub.publishAsync('kept', 'x', { qos: 1 })).rejects.toMatchObject({ code: 0x87 })
    expect(denied.at(-1)).toBe('kept')

    expect(off()).toBe(true)
    expect(off()).toBe(false)
    let passed = false
    for (let i = 0; i < 100 && !passed; i++) {
      passed = await pub.publishAsync(`gone/${i}`, 'x', { qos: 1 }).then(
        () => true,
        () => false,
      )
    }
    expect(passed).toBe(true)
    const count = denied.length
    await pub.publishAsync('after', 'x', { qos: 1 })
    expect(denied.length).toBe(count)
  })

  it('gives the remover a ready promise: once it resolves, the added set decides the next event', async () => {
    let asked = 0
    const { server, url } = await start((s) => {
      s.setHooks({ onClientAuthenticate: () => ({ allow: true }) })
    })
    const pub = await connect(url, { protocolVersion: 5, username: 'u', password: 'p' })
    const off = server.addHooks({
      onClientPublishAuthorize: () => {
        asked++
        return { allow: false }
      },
    })
    expect(typeof off.ready?.then).toBe('function')
    await off.ready
    // The first publish after it is asked, no retry needed.
    await expect(pub.publishAsync('first', 'x', { qos: 1 })).rejects.toMatchObject({ code: 0x87 })
    expect(asked).toBe(1)
    // On a server that does not run, nothing to wait for.
    const idle = track(new MqttServer())
    await idle.addHooks({ onClientConnected: () => {} }).ready
  })

  it('delivers notifications to every set that has them, each once', async () => {
    const a: string[] = []
    const b: string[] = []
    const c: string[] = []
    const watchers: Array<() => void> = []
    const push = (list: string[]) => (v: string) => {
      list.push(v)
      for (const w of watchers) w()
    }
    const { server, url } = await start((s) => {
      s.setHooks({ onClientAuthenticate: () => ({ allow: true }), onMessagePublish: (_s, _f, m) => push(a)(m.topic) })
      s.addHooks({ onMessagePublish: (_s, _f, m) => push(b)(m.topic) })
      s.addHooks({ onClientConnected: (sess) => push(c)(sess.clientId) })
    })
    const sub = await connect(url, { protocolVersion: 4, username: 'u', password: 'p' })
    await subscribe(sub, 'n/#', 1)
    const box = inbox(sub)
    const pub = await connect(url, { protocolVersion: 4, clientId: 'pub', username: 'u', password: 'p' })
    for (let i = 0; i < 10; i++) await pub.publishAsync(`n/${i}`, 'x', { qos: 1 })
    await drain(box, server, 'n/end')
    // Notifications run in order per set: n/end is the last of each.
    await until(() => a.includes('n/end') && b.includes('n/end') && c.includes('pub'), 'the notifications', watchers)
    const topics = [...Array(10).keys()].map((i) => `n/${i}`)
    expect(a).toEqual([...topics, 'n/end'])
    expect(b).toEqual([...topics, 'n/end'])
    expect(c.filter((id) => id === 'pub')).toHaveLength(1)
  })

  it('validates an added set as setHooks() does', () => {
    const server = track(new MqttServer())
    expect(() => server.addHooks({ onClientConnectd: () => {} } as any)).toThrow(
      /hooks\.onClientConnectd: unknown hook/,
    )
    expect(() => server.addHooks({}, { maxCachedDecisions: -1 })).toThrow(/options\.maxCachedDecisions/)
  })
})
