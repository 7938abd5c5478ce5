import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  drain,
  EVENT_TIMEOUT,
  eventually,
  inbox,
  listener,
  MQTT_VERSIONS,
  startServer,
  subscribe,
  urlFor,
  waitFor,
  withDeadline,
} from './helpers'
import { destroyRaw, rawSession } from './raw'

afterEach(async () => {
  destroyRaw()
  await cleanup()
})

describe('server.client(clientId)', () => {
  it.each([
    ['3.1.1', 4],
    ['5.0', 5],
  ] as const)('describes a connected MQTT %s client', async (version, protocolVersion) => {
    const { server, listeners } = await startServer([listener('tcp', { name: 'plain' })])
    const before = Date.now()
    const c = await connect(urlFor(listeners[0]), {
      ...MQTT_VERSIONS[version],
      clientId: `who-${version}`,
      username: 'alice',
      keepalive: 33,
    })
    await subscribe(c, 'a/#', 1)
    await subscribe(c, 'b', 0)
    const info = await server.client(`who-${version}`)
    expect(info).toMatchObject({
      clientId: `who-${version}`,
      username: 'alice',
      remoteAddr: `127.0.0.1:${(c.stream as import('node:net').Socket).localPort}`,
      listener: 'plain',
      protocolVersion,
      connected: true,
      keepAlive: 33,
      cleanStart: true,
      subscriptions: 2,
      inflight: 0,
      queued: 0,
    })
    expect(info?.connectedAt).toBeGreaterThanOrEqual(before - 1000)
    expect(info?.connectedAt).toBeLessThanOrEqual(Date.now() + 1000)
  })

  it('is null for an unknown client, and rejects a bad id naming it', async () => {
    const { server } = await startServer()
    expect(await server.client('nobody')).toBeNull()
    // @ts-expect-error a wrong type on purpose
    expect(() => server.client(5)).toThrow(/clientId: expected a string, got a number/)
    expect(() => server.client('')).toThrow(/clientId: must not be empty/)
  })

  it('counts queued messages of a disconnected persistent session', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const sub = await connect(url, { ...MQTT_VERSIONS['3.1.1'], clientId: 'away', clean: false })
    await subscribe(sub, 'q', 1)
    await sub.endAsync()
    const pub = await connect(url, MQTT_VERSIONS['3.1.1'])
    for (let i = 0; i < 3; i++) await pub.publishAsync('q', `m${i}`, { qos: 1 })
    const info = await server.client('away')
    expect(info).toMatchObject({ connected: false, cleanStart: false, subscriptions: 1, queued: 3 })
  })
})

describe('server.clients()', () => {
  it('yields every session exactly once, over several pages', async () => {
    const { server, listeners } = await startServer()
    // More than one page (256) of raw sessions, cheap to open.
    const ids = Array.from({ length: 300 }, (_, i) => `many-${i}`)
    for (let i = 0; i < ids.length; i += 50) {
      await Promise.all(ids.slice(i, i + 50).map((clientId) => rawSession(listeners[0], 4, { clientId })))
    }
    const seen: string[] = []
    for await (const c of server.clients()) seen.push(c.clientId)
    expect(seen.length).toBe(ids.length)
    expect(new Set(seen)).toEqual(new Set(ids))
    expect(server.connectedClients).toBe(ids.length)
  })

  it('reads a page at a time, not a copy of the registry made at the first call', async () => {
    const { server, listeners } = await startServer()
    const raws = []
    for (let i = 0; i < 300; i += 50) {
      raws.push(
        ...(await Promise.all(
          Array.from({ length: 50 }, (_, j) => rawSession(listeners[0], 4, { clientId: `p-${i + j}` })),
        )),
      )
    }
    const it = server.clients()[Symbol.asyncIterator]()
    expect((await it.next()).done).toBe(false)
    // Everyone leaves after the first page (256) was read; their sessions end.
    for (const r of raws) r.destroy()
    let sessions = -1
    const gone = await eventually(() => {
      void server.stats().then((x) => {
        sessions = x.sessions
      })
      return sessions === 0
    })
    expect(gone, `sessions left: ${sessions}`).toBe(true)
    let rest = 0
    for (let r = await it.next(); !r.done; r = await it.next()) rest++
    // The rest of the first page, and nothing of the 44 not read yet.
    expect(rest).toBe(255)
  })

  it('throws when the server is not running', async () => {
    const { server } = await startServer()
    await server.stop()
    expect(() => server.clients()).toThrow(/clients: the server is not running/)
    expect(server.connectedClients).toBe(0)
  })
})

describe('server.subscriptions()', () => {
  it("lists one client's subscriptions, or everyone's", async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const a = await connect(url, { ...MQTT_VERSIONS['5.0'], clientId: 'sa' })
    const b = await connect(url, { ...MQTT_VERSIONS['3.1.1'], clientId: 'sb' })
    await a.subscribeAsync('x/+', { qos: 2, nl: true, rh: 1 })
    await subscribe(b, 'y/#', 1)
    await subscribe(b, '$share/g/z', 0)
    expect(await server.subscriptions('sa')).toEqual([
      {
        clientId: 'sa',
        topicFilter: 'x/+',
        qos: 2,
        noLocal: true,
        retainAsPublished: false,
        retainHandling: 1,
      },
    ])
    const all = await server.subscriptions()
    const summary = all.map((s) => `${s.clientId} ${s.topicFilter} ${s.qos} ${s.sharedGroup ?? '-'}`).sort()
    expect(summary).toEqual(['sa x/+ 2 -', 'sb $share/g/z 0 g', 'sb y/# 1 -'])
    expect(await server.subscriptions('nobody')).toEqual([])
  })
})

describe('server.disconnect(clientId, options)', () => {
  it('sends an MQTT 5 client a DISCONNECT with the given code and reason', async () => {
    const { server, listeners } = await startServer()
    const c = await connect(urlFor(listeners[0]), { ...MQTT_VERSIONS['5.0'], clientId: 'kick5' })
    const disconnected = waitFor<[{ reasonCode: number; properties?: { reasonString?: string } }]>(c, 'disconnect')
    const closed = waitFor(c, 'close')
    expect(await server.disconnect('kick5', { reasonCode: 0x9c, reason: 'use the other one' })).toBe(true)
    const [packet] = await disconnected
    expect(packet.reasonCode).toBe(0x9c)
    expect(packet.properties?.reasonString).toBe('use the other one')
    await closed
    expect(server.connectedClients).toBe(0)
  })

  it('sends 0x98 Administrative action by default', async () => {
    const { server, listeners } = await startServer()
    const c = await connect(urlFor(listeners[0]), { ...MQTT_VERSIONS['5.0'], clientId: 'kick-default' })
    const disconnected = waitFor<[{ reasonCode: number }]>(c, 'disconnect')
    await server.disconnect('kick-default')
    expect((await disconnected)[0].reasonCode).toBe(0x98)
  })

  it('closes an MQTT 3.1.1 connection, keeping its persistent session unless told to discard it', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const c = await connect(url, { ...MQTT_VERSIONS['3.1.1'], clientId: 'keep', clean: false })
    await subscribe(c, 'k', 1)
    const closed = waitFor(c, 'close')
    expect(await server.disconnect('keep')).toBe(true)
    await closed
    expect(await server.client('keep')).toMatchObject({ connected: false, subscriptions: 1 })

    // Offline now: discarding ends the session.
    expect(await server.disconnect('keep', { discardSession: true })).toBe(true)
    expect(await server.client('keep')).toBeNull()
    expect(await server.disconnect('keep')).toBe(false)
  })

  it('discards the session of a connected client: it reconnects to a new one', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const opts = { ...MQTT_VERSIONS['5.0'], clientId: 'gone', clean: false, properties: { sessionExpiryInterval: 600 } }
    const c = await connect(url, opts)
    await subscribe(c, 'g', 1)
    const closed = waitFor(c, 'close')
    await server.disconnect('gone', { discardSession: true })
    await closed
    expect(await server.client('gone')).toBeNull()
    const again = await connect(url, opts)
    const box = inbox(again)
    // No subscription survived: a message to `g` does not reach it.
    const pub = await connect(url, MQTT_VERSIONS['3.1.1'])
    await pub.publishAsync('g', 'lost?', { qos: 1 })
    await subscribe(again, 'sentinel', 2)
    expect(await drain(box, pub, 'sentinel')).toEqual([])
  })

  it("publishes the client's will, as any close the client did not ask for", async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const watcher = await connect(url, MQTT_VERSIONS['3.1.1'])
    const box = inbox(watcher)
    await subscribe(watcher, 'will/#', 1)
    await connect(url, {
      ...MQTT_VERSIONS['3.1.1'],
      clientId: 'with-will',
      will: { topic: 'will/x', payload: Buffer.from('bye'), qos: 1, retain: false },
    })
    await server.disconnect('with-will')
    const m = await box.next()
    expect([m.topic, m.payload.toString()]).toEqual(['will/x', 'bye'])
  })

  it('is false for an unknown client', async () => {
    const { server } = await startServer()
    expect(await server.disconnect('nobody')).toBe(false)
  })

  it.each([
    [0x04, /options\.reasonCode: 4 is not a reason code a server may send/],
    [0x10, /options\.reasonCode: 16 is not/],
    [300, /options\.reasonCode: 300 is not/],
    [-1, /options\.reasonCode: -1 is not/],
    [1.5, /options\.reasonCode: 1\.5 is not/],
    ['x', /options\.reasonCode: .*number/],
  ])('refuses reasonCode %s with an error naming it', async (reasonCode, message) => {
    const { server, listeners } = await startServer()
    await connect(urlFor(listeners[0]), { ...MQTT_VERSIONS['5.0'], clientId: 'stay' })
    // @ts-expect-error wrong types on purpose
    expect(() => server.disconnect('stay', { reasonCode })).toThrow(message)
    expect(await server.client('stay')).toMatchObject({ connected: true })
  })

  it('refuses unknown options', async () => {
    const { server } = await startServer()
    // @ts-expect-error an unknown option on purpose
    expect(() => server.disconnect('x', { code: 1 })).toThrow(/options\.code: unknown field `code`/)
  })
})

describe('server.retained(filter) and server.deleteRetained(topic)', () => {
  it('lists matching retained messages, never $ topics under a wildcard', async () => {
    const { server, listeners } = await startServer()
    const pub = await connect(urlFor(listeners[0]), MQTT_VERSIONS['3.1.1'])
    await pub.publishAsync('r/a', 'A', { qos: 1, retain: true })
    await pub.publishAsync('r/b/c', Buffer.from([0, 255]), { qos: 0, retain: true })
    await server.publish('$SYS/x', 'sys', { retain: true })
    const all = await server.retained('#')
    expect(all.map((m) => [m.topic, m.payload.toString('hex'), m.qos]).sort()).toEqual([
      ['r/a', Buffer.from('A').toString('hex'), 1],
      ['r/b/c', '00ff', 0],
    ])
    expect((await server.retained('r/+')).map((m) => m.topic)).toEqual(['r/a'])
    expect((await server.retained('$SYS/#')).map((m) => m.topic)).toEqual(['$SYS/x'])
    expect(() => server.retained('a/#/b')).toThrow(/filter: "a\/#\/b": # must be the last level/)
    expect(() => server.retained('a+')).toThrow(/filter: .*whole level/)
  })

  it('deletes a retained message without sending anything to subscribers', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const pub = await connect(url, MQTT_VERSIONS['3.1.1'])
    await pub.publishAsync('d/a', 'A', { qos: 1, retain: true })
    await pub.publishAsync('d/b', 'B', { qos: 1, retain: true })
    const live = await connect(url, MQTT_VERSIONS['5.0'])
    const liveBox = inbox(live)
    await subscribe(live, 'd/#', 1)
    // The two retained messages on subscribe.
    expect((await drain(liveBox, pub, 'd/sentinel')).map((m) => m.topic).sort()).toEqual(['d/a', 'd/b'])

    expect(await server.deleteRetained('d/a')).toBe(true)
    expect(await server.deleteRetained('d/a')).toBe(false)
    expect(await drain(liveBox, pub, 'd/sentinel')).toEqual([])
    expect((await server.retained('d/#')).map((m) => m.topic)).toEqual(['d/b'])

    const late = await connect(url, MQTT_VERSIONS['3.1.1'])
    const lateBox = inbox(late)
    await subscribe(late, 'd/#', 1)
    const got = await drain(lateBox, pub, 'd/sentinel')
    expect(got.map((m) => m.topic)).toEqual(['d/b'])
    expect(() => server.deleteRetained('d/+')).toThrow(/topic: .*wildcard/)
  })
})

describe('a second server', () => {
  it('sees only its own clients', async () => {
    const one = await startServer()
    const two = await startServer()
    await connect(urlFor(one.listeners[0]), { clientId: 'only-one' })
    expect(await withDeadline(one.server.client('only-one'), EVENT_TIMEOUT, () => 'client()')).not.toBeNull()
    expect(await two.server.client('only-one')).toBeNull()
    expect(two.server.connectedClients).toBe(0)
  })
})
