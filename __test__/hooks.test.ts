/**
 * Hooks: authentication, subscribe/publish authorization and notifications,
 * with real mqtt.js clients on MQTT 3.1.1 and 5.0.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

import { afterEach, describe, expect, it } from 'vitest'

import type * as Addon from '../index'
import {
  MqttServer,
  ROOT,
  cleanup,
  connect,
  connectRefused,
  drain,
  endClient,
  inbox,
  killChildren,
  listener,
  spawnTracked,
  subackCodes,
  subscribe,
  track,
  urlFor,
  waitFor,
  startServer,
} from './helpers'

afterEach(async () => {
  killChildren()
  await cleanup()
})

/** CONNACK codes per protocol: 3.1.1 return codes and 5.0 reason codes. */
const REFUSED = {
  4: { badCredentials: 4, notAuthorized: 5 },
  5: { badCredentials: 0x86, notAuthorized: 0x87 },
} as const
const VERSIONS = [4, 5] as const
/** A client's address as hooks report it. */
const LOCAL_ADDR = expect.stringMatching(/^127\.0\.0\.1:\d+$/)

/** Records hook calls and lets a test await one that matches. */
function recorder() {
  const calls: Array<{ hook: string; args: unknown[] }> = []
  const waiters: Array<{ match: (c: { hook: string; args: unknown[] }) => boolean; resolve: (c: unknown[]) => void }> =
    []
  const record =
    (hook: string) =>
    (...args: unknown[]) => {
      const call = { hook, args }
      calls.push(call)
      for (const w of [...waiters]) {
        if (w.match(call)) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(args)
        }
      }
    }
  return {
    calls,
    record,
    of: (hook: string): any[][] => calls.filter((c) => c.hook === hook).map((c) => c.args),
    /** Resolves with the args of the first call (past or future) that matches. */
    next(hook: string, pred: (args: any[]) => boolean = () => true, timeoutMs = 5000): Promise<any[]> {
      const match = (c: { hook: string; args: unknown[] }) => c.hook === hook && pred(c.args)
      const seen = calls.find(match)
      if (seen) return Promise.resolve(seen.args)
      return new Promise((resolve, reject) => {
        const w = { match, resolve }
        waiters.push(w)
        setTimeout(() => {
          const i = waiters.indexOf(w)
          if (i >= 0) {
            waiters.splice(i, 1)
            reject(new Error(`hook ${hook} was not called within ${timeoutMs} ms`))
          }
        }, timeoutMs)
      })
    },
  }
}

/** A server with these hooks from its start, one tcp listener. */
async function serverWithHooks(
  hooks: Addon.HookCallbacks,
  options?: Addon.HookOptions,
  extra: Partial<Addon.ListenerConfig> = {},
) {
  return startServer([listener('tcp', extra)], { hooks, hookOptions: options })
}

describe('setHooks() on a running server', () => {
  it("resolves once the new hooks decide, without waiting for a replaced hook's pending decision", async () => {
    let pending!: () => void
    const called = new Promise<void>((resolve) => (pending = resolve))
    const server = track(new MqttServer())
    // A decision that never answers (denied after timeoutMs): while it runs,
    // rmqtt will not let its hook type be unregistered; the new hooks must
    // not wait for that.
    server.setHooks(
      {
        onClientPublishAuthorize: () => {
          pending()
          return new Promise<never>(() => {})
        },
      },
      { timeoutMs: 1000 },
    )
    const [info] = await server.start({ listeners: [listener('tcp')] })
    const url = urlFor(info)
    const pub = await connect(url)
    pub.publish('t', 'x', { qos: 1 })
    await called
    await server.setHooks({ onClientAuthenticate: () => ({ allow: false }) })
    // Attached without waiting for the old decision (it times out later):
    // clients connecting meanwhile are asked too.
    expect(server.hookStats.timeouts).toBe(0)
    const refused = await connectRefused(url, { username: 'u', password: 'p' })
    expect(refused.code).toBe(REFUSED[4].badCredentials)
  })

  it('resolves at once on a server that is not running', async () => {
    const server = track(new MqttServer())
    await expect(server.setHooks({ onClientConnected: () => {} })).resolves.toBeUndefined()
  })
})

describe('setHooks input', () => {
  it('rejects an unknown hook name, naming it', () => {
    const server = track(new MqttServer())
    expect(() => server.setHooks({ onClientAuthenticat: () => ({ allow: true }) } as any)).toThrow(
      /hooks\.onClientAuthenticat: unknown hook/,
    )
  })

  it('rejects a hook that is not a function', () => {
    const server = track(new MqttServer())
    let err: any
    try {
      server.setHooks({ onMessagePublish: 'nope' } as any)
    } catch (e) {
      err = e
    }
    expect(err?.code).toBe('InvalidArg')
    expect(err?.message).toMatch(/hooks\.onMessagePublish: must be a function/)
  })

  it('rejects a bad timeout', () => {
    const server = track(new MqttServer())
    expect(() => server.setHooks({}, { timeoutMs: -5 })).toThrow(/options\.timeoutMs: must be a number of milliseconds/)
    expect(() => server.setHooks({}, { maxQueuedNotifications: 0 })).toThrow(
      /options\.maxQueuedNotifications: must be an integer/,
    )
  })
})

describe.each(VERSIONS)('onClientAuthenticate on MQTT %s', (protocolVersion) => {
  const codes = REFUSED[protocolVersion]

  it('allows and denies by the returned value, with the request data', async () => {
    const rec = recorder()
    const { url } = await serverWithHooks({
      onClientAuthenticate: (req) => {
        rec.record('auth')(req)
        return { allow: req.password === 'demo' }
      },
    })
    await connect(url, { protocolVersion, username: 'alice', password: 'demo', clientId: 'auth-ok', keepalive: 33 })
    const [req] = await rec.next('auth', ([r]) => r.clientId === 'auth-ok')
    expect(req).toEqual({
      clientId: 'auth-ok',
      username: 'alice',
      password: 'demo',
      passwordBuffer: expect.any(Buffer),
      protocolVersion,
      remoteAddr: LOCAL_ADDR,
      keepAlive: 33,
      cleanSession: true,
      certificate: null, // a plain TCP client (mTLS: mtls.test.ts)
    })
    expect(Buffer.from(req.passwordBuffer).toString()).toBe('demo')

    const err = await connectRefused(url, { protocolVersion, username: 'alice', password: 'wrong' })
    expect(err.code).toBe(codes.badCredentials)
    expect(rec.of('auth')).toHaveLength(2) // once per CONNECT, never twice
  })

  it('awaits a Promise answer (allow and deny) and honours the refusal code', async () => {
    const { url } = await serverWithHooks({
      onClientAuthenticate: async (req) => {
        await sleep(20)
        if (req.username === 'ok') return { allow: true }
        return { allow: false, code: 'notAuthorized', reason: 'account disabled' }
      },
    })
    await connect(url, { protocolVersion, username: 'ok', password: 'x' })
    const err = await connectRefused(url, { protocolVersion, username: 'disabled', password: 'x' })
    expect(err.code).toBe(codes.notAuthorized)
  })

  it('denies when the hook throws, rejects, returns garbage or times out, and counts it', async () => {
    const { server, url } = await serverWithHooks(
      {
        onClientAuthenticate: (req) => {
          switch (req.username) {
            case 'throw':
              throw new Error('hook bug')
            case 'reject':
              return Promise.reject(new Error('db down'))
            case 'garbage':
              return 42 as any
            case 'hang':
              return new Promise(() => {})
            default:
              return { allow: true }
          }
        },
      },
      { timeoutMs: 200 },
    )
    for (const username of ['throw', 'reject', 'garbage', 'hang']) {
      const err = await connectRefused(url, { protocolVersion, username, password: 'x' })
      expect(err.code, username).toBe(codes.notAuthorized)
    }
    expect(server.hookStats).toMatchObject({ timeouts: 1, failures: 3 })
    // The broker is still healthy after all that.
    await connect(url, { protocolVersion, username: 'fine', password: 'x' })
  })

  it('passes passwords that are not UTF-8 byte-exact', async () => {
    const rec = recorder()
    const secret = Buffer.from([0xff, 0x00, 0xfe, 0x80, 0x41])
    const { url } = await serverWithHooks({
      onClientAuthenticate: (req) => {
        rec.record('auth')(req)
        return { allow: req.passwordBuffer !== null && Buffer.compare(req.passwordBuffer, secret) === 0 }
      },
    })
    await connect(url, { protocolVersion, username: 'bin', password: secret })
    const [req] = await rec.next('auth')
    expect(req.password).toBeNull() // never a lossy string
    expect(Buffer.from(req.passwordBuffer).equals(secret)).toBe(true)
    const lossy = Buffer.from(secret.toString('utf8'), 'utf8') // what a lossy conversion would give
    const err = await connectRefused(url, { protocolVersion, username: 'bin', password: lossy })
    expect(err.code).toBe(codes.badCredentials)
  })

  it('lets anonymous clients in on allowAnonymous listeners without asking, and asks on closed ones', async () => {
    const rec = recorder()
    const hooks = {
      onClientAuthenticate: (req: Addon.AuthenticateRequest) => {
        rec.record('auth')(req)
        return { allow: false }
      },
    }
    const open = await serverWithHooks(hooks, undefined, { allowAnonymous: true })
    await connect(open.url, { protocolVersion, clientId: 'anon-open' })
    expect(rec.of('auth')).toHaveLength(0)

    const closed = await serverWithHooks(hooks, undefined, { allowAnonymous: false })
    const err = await connectRefused(closed.url, { protocolVersion, clientId: 'anon-closed' })
    expect(err.code).toBe(codes.notAuthorized)
    const [req] = await rec.next('auth', ([r]) => r.clientId === 'anon-closed')
    expect(req.username).toBeNull()
    expect(req.password).toBeNull()
  })
})

describe.each(VERSIONS)('authorization on MQTT %s', (protocolVersion) => {
  it('denies one filter of a SUBSCRIBE and caps the QoS of the others', async () => {
    const { server, url } = await serverWithHooks({
      onClientSubscribeAuthorize: (session, sub) =>
        sub.topicFilter.startsWith(`${session.username}/`)
          ? { allow: true, qos: 1 }
          : { allow: false, reason: 'not yours' },
    })
    const client = await connect(url, { protocolVersion, username: 'alice', password: 'x' })
    const granted = await subackCodes(client, { 'alice/a': { qos: 2 }, 'bob/b': { qos: 0 }, 'alice/c': { qos: 0 } })
    expect(granted).toEqual([1, protocolVersion === 5 ? 0x87 : 0x80, 0])

    // The capped subscription receives a QoS 2 message at QoS 1.
    const box = inbox(client)
    await server.publish('alice/a', 'capped', { qos: 2 })
    const m = await box.next()
    expect(m.topic).toBe('alice/a')
    expect(m.packet.qos).toBe(1)
  })

  it('does not route a denied PUBLISH and reports the reason code on 5.0', async () => {
    const rec = recorder()
    const { url } = await serverWithHooks({
      onClientPublishAuthorize: (_session, msg) =>
        msg.topic.startsWith('readonly/') ? { allow: false, reason: 'readonly/ is read-only' } : { allow: true },
      onMessagePublish: rec.record('publish'),
    })
    const sub = await connect(url, { protocolVersion })
    await subscribe(sub, '#', 1)
    const box = inbox(sub)
    const pub = await connect(url, { protocolVersion })

    const puback = new Promise<any>((resolve) => pub.on('packetreceive', (p) => p.cmd === 'puback' && resolve(p)))
    const denied = pub.publishAsync('readonly/fake', 'x', { qos: 1 })
    if (protocolVersion === 5) {
      await expect(denied).rejects.toMatchObject({ code: 0x87 })
      expect((await puback).properties?.reasonString).toBe('readonly/ is read-only')
    } else {
      await denied // 3.1.1 has no way to say no in a PUBACK
    }
    await pub.publishAsync('ok/after', 'sentinel', { qos: 1 })
    const first = await box.next()
    expect(first.topic).toBe('ok/after') // the denied message never arrived before the sentinel
    // Notifications run in order, so a reported denied message would come first.
    await rec.next('publish', ([, , m]) => m.topic === 'ok/after')
    expect(rec.of('publish').map(([, , m]: any) => m.topic)).toEqual(['ok/after'])
  })

  it('closes the connection of a client denied with disconnect: true; 5.0 is told why first', async () => {
    const rec = recorder()
    const { url } = await serverWithHooks({
      onClientPublishAuthorize: (_s, m) =>
        m.topic === 'forbidden' ? { allow: false, reason: 'go away', disconnect: true } : { allow: true },
      onClientDisconnected: rec.record('disconnected'),
    })
    const sub = await connect(url, { protocolVersion })
    await subscribe(sub, '#', 1)
    const box = inbox(sub)
    const pub = await connect(url, { protocolVersion, clientId: `kicked-${protocolVersion}` })
    pub.on('error', () => {})
    const disconnect = new Promise<any>((resolve) => pub.on('disconnect', resolve))
    const closed = waitFor(pub, 'close')
    pub.publish('forbidden', 'x', { qos: 1 })
    await closed
    const [session] = await rec.next('disconnected', ([s]) => s.clientId === `kicked-${protocolVersion}`)
    expect(session.clientId).toBe(`kicked-${protocolVersion}`)
    if (protocolVersion === 5) {
      const packet = await disconnect
      expect(packet.reasonCode).toBe(0x87) // not authorized
      expect(packet.properties?.reasonString).toContain('go away')
    }
    // Nothing was routed: a sentinel from another client is the first message.
    expect(await drain(box, sub, 'after-kick')).toEqual([])
  })

  it('denies a PUBLISH when the answer is not an object, and allows a bare { allow: true }', async () => {
    const { server, url } = await serverWithHooks({
      onClientPublishAuthorize: ((_s: unknown, m: { topic: string }) =>
        m.topic === 'shape/bare' ? true : { allow: true }) as any,
    })
    const sub = await connect(url, { protocolVersion })
    await subscribe(sub, 'shape/#', 1)
    const box = inbox(sub)
    const pub = await connect(url, { protocolVersion })
    await pub.publishAsync('shape/bare', 'x', { qos: 1 }).catch(() => {}) // 5.0 rejects, 3.1.1 cannot
    await pub.publishAsync('shape/object', 'y', { qos: 1 })
    expect((await box.next()).topic).toBe('shape/object')
    expect(server.hookStats.failures).toBe(1)
  })

  it('lets a superuser bypass both authorization hooks', async () => {
    const { url } = await serverWithHooks({
      onClientAuthenticate: (req) => ({ allow: true, superuser: req.username === 'root' }),
      onClientSubscribeAuthorize: () => ({ allow: false }),
      onClientPublishAuthorize: () => ({ allow: false }),
    })
    const root = await connect(url, { protocolVersion, username: 'root', password: 'x' })
    await subscribe(root, 'any/#', 2)
    const box = inbox(root)
    await root.publishAsync('any/thing', 'mine', { qos: 1 })
    expect((await box.next()).payload.toString()).toBe('mine')

    const user = await connect(url, { protocolVersion, username: 'user', password: 'x' })
    expect(await subackCodes(user, { 'any/#': { qos: 0 } })).toEqual([protocolVersion === 5 ? 0x87 : 0x80])
  })
})

describe.each(VERSIONS)('notifications on MQTT %s', (protocolVersion) => {
  it('hand every payload over exactly and in order, small ones batched and large ones alone', async () => {
    // Sizes around the 4 KiB line where payloads stop sharing a batch buffer.
    const sizes = [0, 1, 63, 4095, 4096, 4097, 70_000, 5, 4096, 0, 128, 100_000]
    const sent = sizes.map((n, i) => randomBytes(n).fill(i, 0, Math.min(n, 1)))
    const published: Buffer[] = []
    const authorized: Buffer[] = []
    let copiesDone: () => void
    const done = new Promise<void>((resolve) => (copiesDone = resolve))
    const { url } = await serverWithHooks({
      onClientPublishAuthorize: (_s, m) => {
        authorized.push(Buffer.from(m.payload)) // a copy: the hook's view is only lent
        return { allow: true }
      },
      onMessagePublish: (_s, _f, m) => {
        published.push(m.payload)
        if (published.length === sent.length) copiesDone()
      },
    })
    const pub = await connect(url, { protocolVersion })
    // Without awaiting each: the notifications of a burst arrive in one batch.
    await Promise.all(sent.map((p) => pub.publishAsync('pay/load', p, { qos: 1 })))
    await done
    expect(published.map((b) => b.length)).toEqual(sizes)
    expect(published.every((b, i) => Buffer.isBuffer(b) && b.equals(sent[i]))).toBe(true)
    expect(authorized.every((b, i) => b.equals(sent[i]))).toBe(true)
    // A handler may keep and change its payload without touching another event's.
    published[1][0] ^= 0xff
    expect(published[2].equals(sent[2])).toBe(true)
  })

  it('fire once each, with the real session, origin and payload', async () => {
    const rec = recorder()
    const names = [
      'onClientConnected',
      'onClientDisconnected',
      'onSessionCreated',
      'onSessionTerminated',
      'onClientSubscribe',
      'onClientUnsubscribe',
      'onMessagePublish',
      'onMessageDelivered',
      'onMessageAcked',
    ] as const
    const hooks = Object.fromEntries(names.map((n) => [n, rec.record(n)])) as Addon.HookCallbacks
    const { server, url } = await serverWithHooks(hooks)

    const sub = await connect(url, { protocolVersion, clientId: 'n-sub', username: 'sam', password: 'p' })
    const [connected] = await rec.next('onClientConnected', ([s]) => s.clientId === 'n-sub')
    expect(connected).toEqual({ clientId: 'n-sub', username: 'sam', node: expect.any(Number), remoteAddr: LOCAL_ADDR })
    await rec.next('onSessionCreated', ([s]) => s.clientId === 'n-sub')

    await subscribe(sub, 'n/+', 1)
    const [, subscription] = await rec.next('onClientSubscribe')
    expect(subscription).toEqual({ topicFilter: 'n/+', qos: 1 })

    const box = inbox(sub)
    const pub = await connect(url, { protocolVersion, clientId: 'n-pub' })
    const payload = Buffer.from([0, 1, 2, 0xff])
    await pub.publishAsync('n/1', payload, { qos: 1 })
    await box.next()
    const [session, from, message] = await rec.next('onMessagePublish', ([, , m]) => m.topic === 'n/1')
    expect(session).toEqual({ clientId: 'n-pub', username: null, node: expect.any(Number), remoteAddr: LOCAL_ADDR })
    expect(from).toEqual({
      type: 'client',
      clientId: 'n-pub',
      username: null,
      node: session.node,
      remoteAddr: session.remoteAddr,
    })
    expect(message).toEqual({
      topic: 'n/1',
      qos: 1,
      retain: false,
      dup: false,
      payload: expect.any(Buffer),
      createTime: expect.any(Number),
    })
    expect(Buffer.isBuffer(message.payload) && message.payload.equals(payload)).toBe(true)
    expect(Math.abs(message.createTime - Date.now())).toBeLessThan(10_000)

    const [delivered] = await rec.next('onMessageDelivered', ([s]) => s.clientId === 'n-sub')
    expect(delivered.clientId).toBe('n-sub')
    await rec.next('onMessageAcked', ([s, , m]) => s.clientId === 'n-sub' && m.topic === 'n/1')

    await server.publish('n/2', 'from server')
    const [srvSession, srvFrom] = await rec.next('onMessagePublish', ([, , m]) => m.topic === 'n/2')
    expect(srvSession).toBeNull()
    expect(srvFrom.type).toBe('system')

    await sub.unsubscribeAsync('n/+')
    const [, unsub] = await rec.next('onClientUnsubscribe')
    expect(unsub).toEqual({ topicFilter: 'n/+' })

    await endClient(sub)
    const [, why] = await rec.next('onClientDisconnected', ([s]) => s.clientId === 'n-sub')
    expect(typeof why.reason).toBe('string')
    await rec.next('onSessionTerminated', ([s]) => s.clientId === 'n-sub')

    // Once each: a sentinel publish proves the queue is drained up to here.
    await pub.publishAsync('n/sentinel', 's', { qos: 1 })
    await rec.next('onMessagePublish', ([, , m]) => m.topic === 'n/sentinel')
    const count = (hook: string, pred: (a: any[]) => boolean) => rec.of(hook).filter(pred).length
    expect(count('onClientConnected', ([s]) => s.clientId === 'n-sub')).toBe(1)
    expect(count('onClientSubscribe', () => true)).toBe(1)
    expect(count('onMessagePublish', ([, , m]) => m.topic === 'n/1')).toBe(1)
    expect(count('onMessageDelivered', ([s, , m]) => s.clientId === 'n-sub' && m.topic === 'n/1')).toBe(1)
    expect(count('onClientDisconnected', ([s]) => s.clientId === 'n-sub')).toBe(1)
  })
})

describe('hook safety', () => {
  it('reports a dropped message with its reason', async () => {
    const rec = recorder()
    const { url } = await serverWithHooks({
      onClientPublishAuthorize: () => ({ allow: false, reason: 'closed' }),
      onMessageDropped: rec.record('dropped'),
    })
    const pub = await connect(url, { protocolVersion: 5, clientId: 'dropper' })
    await pub.publishAsync('d/1', 'x', { qos: 1 }).catch(() => {})
    const [to, from, message, info] = await rec.next('dropped')
    expect(to).toBeNull()
    expect(from).toEqual({
      type: 'client',
      clientId: 'dropper',
      username: null,
      node: expect.any(Number),
      remoteAddr: LOCAL_ADDR,
    })
    expect(message.topic).toBe('d/1')
    expect(info.reason).toEqual(expect.any(String))
  })

  it('keeps two servers hooks apart', async () => {
    const a = recorder()
    const b = recorder()
    const A = await serverWithHooks({ onClientConnected: a.record('c'), onMessagePublish: a.record('p') })
    const B = await serverWithHooks({ onClientConnected: b.record('c'), onMessagePublish: b.record('p') })
    const ca = await connect(A.url, { clientId: 'only-a' })
    const cb = await connect(B.url, { clientId: 'only-b' })
    await ca.publishAsync('iso/a', 'a', { qos: 1 })
    await cb.publishAsync('iso/b', 'b', { qos: 1 })
    await a.next('p', ([, , m]) => m.topic === 'iso/a')
    await b.next('p', ([, , m]) => m.topic === 'iso/b')
    expect(a.of('c').map(([s]) => s.clientId)).toEqual(['only-a'])
    expect(b.of('c').map(([s]) => s.clientId)).toEqual(['only-b'])
    expect(a.of('p').map(([, , m]) => m.topic)).toEqual(['iso/a'])
    expect(b.of('p').map(([, , m]) => m.topic)).toEqual(['iso/b'])
  })

  it('replaces the hook set while running', async () => {
    const first = recorder()
    const second = recorder()
    const { server, url } = await serverWithHooks({ onClientConnected: first.record('c') })
    await connect(url, { clientId: 'before' })
    await first.next('c')
    server.setHooks({ onClientAuthenticate: () => ({ allow: false }), onClientConnected: second.record('c') })
    // setHooks re-registers on the broker's own thread: retry until the new set is live.
    let err: any
    for (let i = 0; i < 50 && !err; i++) {
      try {
        await endClient(await connect(url, { clientId: `after-${i}`, username: 'u', password: 'p' }))
      } catch (e) {
        err = e
      }
    }
    expect(err?.code).toBe(4)
    expect(first.of('c').map(([s]) => s.clientId)).toEqual(['before'])
  })

  it.each(VERSIONS)('asks a replaced authorize hook about every publish, MQTT %i', async (protocolVersion) => {
    // Hook types both sets use keep their registration: replacing the set
    // must not open a moment in which a publish goes through unasked.
    let asked = 0
    const deny = () => {
      asked++
      return { allow: false }
    }
    const { server, url } = await serverWithHooks({ onClientPublishAuthorize: deny })
    const sub = await connect(url, { protocolVersion })
    await subscribe(sub, 'swap/#', 1)
    const box = inbox(sub)
    const pub = await connect(url, { protocolVersion })
    for (let i = 0; i < 300; i++) {
      for (let j = 0; j < 4; j++) pub.publish('swap/denied', `${i}.${j}`, { qos: 0 })
      server.setHooks({ onClientPublishAuthorize: deny })
      await new Promise((resolve) => setImmediate(resolve))
    }
    // Denied QoS 0 publishes get no answer; a QoS 1 one after them does, so
    // once it is acknowledged the broker has decided on all of them.
    await pub.publishAsync('swap/denied', 'last', { qos: 1 }).catch(() => {})
    expect(await drain(box, server, 'swap/end')).toEqual([])
    expect(asked).toBe(1201)
  })

  it('survives throwing and rejecting notification handlers', async () => {
    const rec = recorder()
    const { url } = await serverWithHooks({
      onClientConnected: () => {
        throw new Error('sync bug')
      },
      onClientSubscribe: async () => {
        throw new Error('async bug')
      },
      onMessagePublish: rec.record('p'),
    })
    const c = await connect(url)
    await subscribe(c, 'safe/#', 1)
    const box = inbox(c)
    await c.publishAsync('safe/1', 'still here', { qos: 1 })
    expect((await box.next()).payload.toString()).toBe('still here')
    await rec.next('p')
  })

  it('allows server.publish() from inside onMessagePublish', async () => {
    let server!: MqttServer
    const started = await serverWithHooks({
      onMessagePublish: (_s, _from, m) => {
        if (m.topic === 'in/x')
          void server.publish('out/x', Buffer.concat([Buffer.from('echo:'), m.payload]), { qos: 1 })
      },
    })
    server = started.server
    const c = await connect(started.url)
    await subscribe(c, 'out/#', 1)
    const box = inbox(c)
    await c.publishAsync('in/x', 'hi', { qos: 1 })
    const m = await box.next()
    expect(m.topic).toBe('out/x')
    expect(m.payload.toString()).toBe('echo:hi')
  })

  it('does not delay delivery while a notification handler blocks the JS thread for 2 s', async () => {
    let blocked = 0
    const { url } = await serverWithHooks({
      onMessagePublish: (_s, _f, m) => {
        if (m.topic !== 'probe/1') return
        const until = Date.now() + 2000
        while (Date.now() < until); // a handler that hogs the event loop
        blocked++
      },
    })
    // The clients live in another process: this one is about to be blocked.
    const probe = spawnTracked(process.execPath, [join(ROOT, '__test__/fixtures/latency-probe.mjs'), url, 'probe/1'])
    const exit = await probe.exit(15_000)
    expect(exit.code, exit.stderr).toBe(0)
    const { latencyMs } = JSON.parse(exit.stdout)
    expect(latencyMs).toBeLessThan(1000)
    expect(blocked).toBe(1)
  })

  it('bounds the notification queue when JavaScript falls behind, and counts the drops', async () => {
    let seen = 0
    const { server, url } = await serverWithHooks(
      {
        onMessagePublish: (_s, _f, m) => {
          seen++
          if (m.topic !== 'flood/start') return
          const until = Date.now() + 1500
          while (Date.now() < until); // fall behind while the flood arrives
        },
      },
      { maxQueuedNotifications: 5 },
    )
    const flood = spawnTracked(process.execPath, [join(ROOT, '__test__/fixtures/flood.mjs'), url, 'flood', '200'])
    const exit = await flood.exit(15_000)
    expect(exit.code, exit.stderr).toBe(0) // the broker acked all 200 while JS was stuck
    const { droppedNotifications } = server.hookStats
    expect(droppedNotifications).toBeGreaterThan(0)
    expect(seen + droppedNotifications).toBe(201)
  })

  it('calls nothing after stop() and nothing after close()', async () => {
    const rec = recorder()
    const hooks = Object.fromEntries(
      ['onClientDisconnected', 'onSessionTerminated', 'onMessageDropped', 'onClientConnected'].map((n) => [
        n,
        rec.record(n),
      ]),
    )
    const { server, url } = await serverWithHooks(hooks)
    const c = await connect(url, { clientId: 'goner' })
    await rec.next('onClientConnected')
    const closed = waitFor(c, 'close')
    await server.stop()
    const seen = rec.calls.length
    await closed
    // Absence of calls cannot be awaited; give queued callbacks a chance to run.
    await sleep(300)
    expect(rec.calls.length).toBe(seen)
    await server.close()
  })
})
