/**
 * Conformance: sessions, their expiry, and the will (MQTT 5.0 3.1.2.4-3.1.2.11,
 * 3.1.3.2, 4.1; MQTT 3.1.1 3.1.2.4-3.1.2.7, 4.1). Test names start with the
 * statement id (docs/conformance.md).
 */
import { afterEach, describe, expect, it } from 'vitest'

import { connect, drain, endClient, inbox, MQTT_VERSIONS, startServer, subscribe, urlFor, waitFor } from '../helpers'
import { DISCONNECT, decodeDisconnect, propValue, rawSession } from '../raw'
import { teardown } from './spec'

afterEach(teardown)

/** A broker and a 5.0 watcher subscribed to `will/#` (QoS 1). */
async function watched() {
  const { listeners } = await startServer()
  const url = urlFor(listeners[0])
  const watcher = await connect(url, MQTT_VERSIONS['5.0'])
  const box = inbox(watcher)
  await subscribe(watcher, 'will/#', 1)
  return { url, watcher, box }
}

/** Connects a 5.0 client with a will on `topic` and drops its socket (no DISCONNECT); resolves with when. */
async function dropWithWill(url: string, topic: string, willDelay: number, sessionExpiry: number, clientId?: string) {
  const c = await connect(url, {
    ...MQTT_VERSIONS['5.0'],
    ...(clientId ? { clientId, clean: false } : {}),
    properties: { sessionExpiryInterval: sessionExpiry },
    will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: willDelay } },
  })
  const closed = waitFor(c, 'close')
  c.stream.destroy()
  await closed
  return Date.now()
}

describe('MQTT 5.0 will', () => {
  it('MQTT-3.1.2-7 MQTT-3.1.2-8 MQTT-3.1.2-10: without a delay the will is published once when the connection drops', async () => {
    const { url, watcher, box } = await watched()
    await dropWithWill(url, 'will/now', 0, 0)
    const m = await box.next()
    expect(m.topic).toBe('will/now')
    expect(m.payload.toString()).toBe('gone')
    // Published once, then removed: a sentinel after it comes next.
    expect(await drain(box, watcher, 'will/sentinel')).toEqual([])
  })

  it('MQTT-3.1.2-8: Will Delay 1 s with Session Expiry 30 s: the will comes after the delay, not at the close', async () => {
    const { url, box } = await watched()
    const closedAt = await dropWithWill(url, 'will/delayed', 1, 30, `wd-${process.pid}-a`)
    const m = await box.next(10_000)
    expect(m.topic).toBe('will/delayed')
    // The delay is in whole seconds; allow the sweep some slack below it.
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(900)
  })

  it('MQTT-3.1.2-8: Will Delay 30 s with Session Expiry 1 s: the will comes when the session ends, the earlier of the two', async () => {
    const { url, box } = await watched()
    const closedAt = await dropWithWill(url, 'will/session-end', 30, 1, `wd-${process.pid}-b`)
    const m = await box.next(10_000)
    expect(m.topic).toBe('will/session-end')
    const waited = Date.now() - closedAt
    expect(waited).toBeGreaterThanOrEqual(900)
    expect(waited).toBeLessThan(10_000)
  })

  it('MQTT-3.1.3-9: a reconnect before the Will Delay elapsed cancels the will', async () => {
    const { url, watcher, box } = await watched()
    const clientId = `wd-${process.pid}-c`
    await dropWithWill(url, 'will/cancelled', 2, 30, clientId)
    const back = await connect(url, {
      ...MQTT_VERSIONS['5.0'],
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 30 },
    })
    // Past the delay (2 s, whole seconds, sweep slack): a sentinel sent then
    // must be the first thing the watcher sees. No event says "a will did not
    // happen", so this one waits.
    await new Promise((r) => setTimeout(r, 3500))
    expect(await drain(box, watcher, 'will/sentinel')).toEqual([])
    await endClient(back)
  })

  it('MQTT-3.1.2-10 MQTT-3.14.4-3: DISCONNECT 0x00 discards the will; DISCONNECT 0x04 publishes it', async () => {
    const { url, watcher, box } = await watched()
    const polite = await connect(url, {
      ...MQTT_VERSIONS['5.0'],
      will: { topic: 'will/polite', payload: Buffer.from('x'), qos: 1, retain: false },
    })
    await polite.endAsync(false, { reasonCode: 0 })
    const withWill = await connect(url, {
      ...MQTT_VERSIONS['5.0'],
      will: { topic: 'will/asked', payload: Buffer.from('y'), qos: 1, retain: false },
    })
    await withWill.endAsync(false, { reasonCode: 4 })
    const m = await box.next()
    expect(m.topic).toBe('will/asked')
    expect(await drain(box, watcher, 'will/sentinel')).toEqual([])
  })

  it('MQTT-3.1.2-14 MQTT-3.1.2-15 MQTT-3.1.3-10: Will Retain 0 and 1 are kept; the will user properties keep their order', async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    for (const retain of [false, true]) {
      const c = await connect(url, {
        ...MQTT_VERSIONS['5.0'],
        will: {
          topic: `will/r${retain}`,
          payload: Buffer.from('w'),
          qos: 1,
          retain,
          properties: { userProperties: { z: '1', a: ['2', '3'], m: '4' } },
        },
      })
      c.stream.destroy()
      await waitFor(c, 'close')
    }
    // A late subscriber sees only the retained one, with RETAIN set.
    const late = await connect(url, MQTT_VERSIONS['5.0'])
    const box = inbox(late)
    await subscribe(late, 'will/#', 1)
    const m = await box.next()
    expect(m.topic).toBe('will/rtrue')
    expect(m.packet.retain).toBe(true)
    expect(m.packet.properties?.userProperties).toEqual({ z: '1', a: ['2', '3'], m: '4' })
    expect(await drain(box, late, 'will/sentinel')).toEqual([])
  })
})

describe.each(['3.1.1', '5.0'] as const)('MQTT %s session', (version) => {
  const persistent = version === '5.0' ? { clean: false, properties: { sessionExpiryInterval: 30 } } : { clean: false }

  const ids =
    version === '5.0'
      ? 'MQTT-3.1.2-4 MQTT-3.1.2-5 MQTT-3.1.2-6 MQTT-3.2.2-2 MQTT-3.2.2-3 MQTT-3.1.3-2 MQTT-3.1.4-4 MQTT-4.1.0-1'
      : 'MQTT-3.1.2-4 MQTT-3.1.2-5 MQTT-3.1.2-6 MQTT-3.2.2-1 MQTT-3.2.2-2 MQTT-3.2.2-3 MQTT-3.1.3-2 MQTT-3.1.4-3 MQTT-4.1.0-1 MQTT-4.1.0-2'

  it(`${ids} (${version}): a persistent session keeps subscriptions and queued QoS 1 messages by client id; clean start discards it`, async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const clientId = `s-${version}-${process.pid}`
    const pub = await connect(url, MQTT_VERSIONS[version])

    const first = await connect(url, { ...MQTT_VERSIONS[version], clientId, ...persistent })
    expect(first.connected).toBe(true)
    await subscribe(first, 'sess/#', 1)
    await endClient(first)
    await pub.publishAsync('sess/a', 'queued', { qos: 1 })

    let present: boolean | undefined
    const box: { topic: string; payload: string }[] = []
    const again = await connect(url, { ...MQTT_VERSIONS[version], clientId, ...persistent }, (c) => {
      c.once('connect', (ack) => (present = ack.sessionPresent))
      c.on('message', (topic, payload) => box.push({ topic, payload: payload.toString() }))
    })
    expect(present).toBe(true)
    // The queued message first, even for one published right after the
    // CONNACK (rmqtt 0044-resume-order; __test__/resume-order.test.ts).
    const live = inbox(again)
    await pub.publishAsync('sess/b', 'live', { qos: 1 })
    while (box.length < 2) await live.next()
    expect(box).toEqual([
      { topic: 'sess/a', payload: 'queued' },
      { topic: 'sess/b', payload: 'live' },
    ])
    await endClient(again)

    // Clean start: Session Present 0, and the old subscription is gone.
    let cleanPresent: boolean | undefined
    const fresh = await connect(url, { ...MQTT_VERSIONS[version], clientId, clean: true }, (c) =>
      c.once('connect', (ack) => (cleanPresent = ack.sessionPresent)),
    )
    expect(cleanPresent).toBe(false)
    const freshBox = inbox(fresh)
    await subscribe(fresh, 'other/#', 2)
    await pub.publishAsync('sess/c', 'not for you', { qos: 1 })
    expect(await drain(freshBox, pub, 'other/sentinel')).toEqual([])
  })
})

describe('MQTT 5.0 session expiry', () => {
  it('MQTT-3.1.2-23: Session Expiry Interval 0 ends the session with the connection; > 0 keeps it', async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const present: Record<string, boolean> = {}
    for (const expiry of [0, 30]) {
      const clientId = `se-${expiry}-${process.pid}`
      const opts = { ...MQTT_VERSIONS['5.0'], clientId, clean: false, properties: { sessionExpiryInterval: expiry } }
      const c = await connect(url, opts)
      // Abrupt close: no DISCONNECT that could change the interval.
      c.stream.destroy()
      await waitFor(c, 'close')
      await connect(url, opts, (again) => again.once('connect', (ack) => (present[expiry] = ack.sessionPresent)))
    }
    expect(present).toEqual({ 0: false, 30: true })
  })

  it('MQTT-4.1.0-2: a session whose expiry interval ran out is discarded (Session Present 0)', async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const clientId = `se-end-${process.pid}`
    const opts = { ...MQTT_VERSIONS['5.0'], clientId, clean: false, properties: { sessionExpiryInterval: 1 } }
    const c = await connect(url, opts)
    await subscribe(c, 'gone/#', 1)
    c.stream.destroy()
    await waitFor(c, 'close')
    // The interval is whole seconds: 2.5 s is past it with sweep slack.
    await new Promise((r) => setTimeout(r, 2500))
    let present: boolean | undefined
    await connect(url, opts, (again) => again.once('connect', (ack) => (present = ack.sessionPresent)))
    expect(present).toBe(false)
  })
})

describe('MQTT 5.0 takeover', () => {
  it('MQTT-3.1.4-3 MQTT-3.14.2-1 MQTT-3.14.2-2 MQTT-3.14.4-1 MQTT-3.14.4-2: a second connection of a client id: the first gets DISCONNECT 0x8E without Session Expiry Interval, nothing after it, and is closed', async () => {
    const { listeners } = await startServer()
    const clientId = `takeover-${process.pid}`
    const first = await rawSession(listeners[0], 5, { clientId })
    await rawSession(listeners[0], 5, { clientId })
    await first.waitClosed()
    const ps = first.packets()
    const last = ps[ps.length - 1]
    expect(last.type).toBe(DISCONNECT)
    const d = decodeDisconnect(last)
    expect(d.code).toBe(0x8e)
    expect(propValue(d.props, 0x11)).toBeUndefined()
  })
})

describe('MQTT 3.1.1 will', () => {
  it('MQTT-3.1.2-8 MQTT-3.1.2-10 MQTT-3.1.2-12 MQTT-3.1.2-16 MQTT-3.1.2-17 MQTT-3.14.4-3 (3.1.1): a dropped connection publishes its will (retained or not) once; DISCONNECT, or no Will Flag, publishes none', async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const v4 = MQTT_VERSIONS['3.1.1']
    const polite = await connect(url, {
      ...v4,
      will: { topic: 'w/polite', payload: Buffer.from('x'), qos: 1, retain: false },
    })
    await endClient(polite)
    const noWill = await connect(url, v4)
    noWill.stream.destroy()
    await waitFor(noWill, 'close')
    for (const retain of [false, true]) {
      const c = await connect(url, {
        ...v4,
        will: { topic: `w/r${retain}`, payload: Buffer.from('w'), qos: 1, retain },
      })
      c.stream.destroy()
      await waitFor(c, 'close')
    }
    // The retained will reaches a late subscriber with RETAIN 1; the other
    // will was not retained; nothing else was published.
    const late = await connect(url, v4)
    const box = inbox(late)
    await subscribe(late, 'w/#', 1)
    const m = await box.next()
    expect([m.topic, m.packet.retain]).toEqual(['w/rtrue', true])
    expect(await drain(box, late, 'w/sentinel')).toEqual([])
  })
})
