import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  drain,
  inbox,
  listener,
  MQTT_VERSIONS,
  type MqttVersion,
  type Received,
  startServer,
  subscribe,
  urlFor,
} from './helpers'

afterEach(cleanup)

const sysConfig = (intervalSeconds = 1) => ({ listeners: [listener('tcp')], sysTopics: { intervalSeconds } })

/** Reads `box` until `topic` arrives with a payload `accept` takes. */
async function until(box: { next(ms?: number): Promise<Received> }, topic: string, accept: (v: string) => boolean) {
  for (;;) {
    const m = await box.next(5000)
    if (m.topic === topic && accept(m.payload.toString())) return m
  }
}

describe('$SYS topics (sysTopics)', () => {
  it.each(['3.1.1', '5.0'] as MqttVersion[])(
    'are published, retained, with mosquitto names, to an MQTT %s subscriber',
    async (version) => {
      const { listeners } = await startServer(sysConfig())
      const url = urlFor(listeners[0])
      const c = await connect(url, MQTT_VERSIONS[version])
      const box = inbox(c)
      await subscribe(c, '$SYS/broker/#', 0)
      const seen = new Map<string, string>()
      // One whole round: every topic of it.
      while (seen.size < 28) {
        const m = await box.next(5000)
        seen.set(m.topic, m.payload.toString())
      }
      expect(seen.get('$SYS/broker/version')).toMatch(/^embedded-mqtt-broker \d+\.\d+\.\d+/)
      expect(seen.get('$SYS/broker/uptime')).toMatch(/^\d+ seconds$/)
      for (const t of [
        'clients/connected',
        'clients/maximum',
        'clients/total',
        'clients/disconnected',
        'messages/received',
        'messages/sent',
        'publish/messages/dropped',
        'bytes/received',
        'bytes/sent',
        'subscriptions/count',
        'retained messages/count',
      ])
        expect(seen.get(`$SYS/broker/${t}`), t).toMatch(/^\d+$/)
      for (const t of ['messages/received', 'messages/sent', 'bytes/received', 'bytes/sent'])
        for (const span of ['1min', '5min', '15min'])
          expect(seen.get(`$SYS/broker/load/${t}/${span}`), `${t} ${span}`).toMatch(/^\d+\.\d\d$/)
    },
  )

  it('follow the broker: a second client shows in clients/connected, messages in messages/received', async () => {
    const { listeners } = await startServer(sysConfig())
    const url = urlFor(listeners[0])
    const c = await connect(url, MQTT_VERSIONS['5.0'])
    const box = inbox(c)
    await subscribe(c, '$SYS/broker/clients/connected', 0)
    await subscribe(c, '$SYS/broker/messages/received', 0)
    await until(box, '$SYS/broker/clients/connected', (v) => v === '1')
    const other = await connect(url, MQTT_VERSIONS['3.1.1'])
    await until(box, '$SYS/broker/clients/connected', (v) => v === '2')
    for (let i = 0; i < 5; i++) await other.publishAsync('x', 'y', { qos: 1 })
    await until(box, '$SYS/broker/messages/received', (v) => v === '5')
  })

  it('reach a late subscriber at once: they are retained', async () => {
    const { listeners, server } = await startServer(sysConfig(3600))
    // The first round is published at start.
    let found = 0
    for (let i = 0; i < 200 && found === 0; i++) {
      found = (await server.retained('$SYS/broker/version')).length
      if (found === 0) await new Promise((r) => setTimeout(r, 10))
    }
    const c = await connect(urlFor(listeners[0]), MQTT_VERSIONS['3.1.1'])
    const box = inbox(c)
    await subscribe(c, '$SYS/broker/version', 0)
    const m = await box.next()
    expect(m.packet.retain).toBe(true)
  })

  it('are not published without sysTopics', async () => {
    const { listeners, server } = await startServer()
    const c = await connect(urlFor(listeners[0]), MQTT_VERSIONS['3.1.1'])
    const box = inbox(c)
    await subscribe(c, '$SYS/#', 0)
    await subscribe(c, 'sentinel', 2)
    expect(await drain(box, server, 'sentinel')).toEqual([])
    expect(await server.retained('$SYS/#')).toEqual([])
  })

  it('never match # or + at the first level', async () => {
    const { listeners, server } = await startServer(sysConfig())
    const url = urlFor(listeners[0])
    const sys = await connect(url, MQTT_VERSIONS['3.1.1'])
    const sysBox = inbox(sys)
    const wild = await connect(url, MQTT_VERSIONS['5.0'])
    const wildBox = inbox(wild)
    await subscribe(wild, '#', 0)
    await subscribe(wild, '+/broker/#', 0)
    await subscribe(sys, '$SYS/broker/uptime', 0)
    // Two rounds published since `wild` subscribed (retained + live).
    await sysBox.next()
    await sysBox.next()
    await sysBox.next()
    const got = await drain(wildBox, server, 'sentinel')
    expect(got.filter((m) => m.topic.startsWith('$'))).toEqual([])
  })

  it.each(['3.1.1', '5.0'] as MqttVersion[])('cannot be published by an MQTT %s client', async (version) => {
    const { listeners, server } = await startServer(sysConfig(3600))
    const url = urlFor(listeners[0])
    const watcher = await connect(url, MQTT_VERSIONS['3.1.1'])
    const box = inbox(watcher)
    await subscribe(watcher, '$SYS/#', 0)
    await subscribe(watcher, 'sentinel', 2)
    await drain(box, server, 'sentinel') // the retained round
    const c = await connect(url, MQTT_VERSIONS[version])
    try {
      await c.publishAsync('$SYS/broker/version', 'spoof', { qos: 1, retain: true })
    } catch {
      // 5.0: PUBACK 0x87 Not authorized.
    }
    await c.publishAsync('$SYS/fake', 'spoof', { qos: 0, retain: true })
    expect(await drain(box, server, 'sentinel')).toEqual([])
    const retained = await server.retained('$SYS/#')
    expect(retained.filter((m) => m.payload.toString() === 'spoof')).toEqual([])
  })

  it.each([
    [{ intervalSeconds: 0 }, /sysTopics\.intervalSeconds: must be an integer from 1 to 86400, got 0/],
    [{ intervalSeconds: 1.5 }, /sysTopics\.intervalSeconds: must be an integer/],
    [{ interval: 5 }, /sysTopics\.interval: unknown field/],
    [5, /sysTopics: .*expected an object/],
  ])('refuse a bad config %j with the field named', async (sysTopics, message) => {
    const { MqttServer } = await import('./helpers')
    const server = new MqttServer()
    // @ts-expect-error wrong types on purpose
    await expect(server.start({ listeners: [listener('tcp')], sysTopics })).rejects.toThrow(message)
    await server.close()
  })
})
