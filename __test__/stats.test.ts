import { join } from 'node:path'

import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  eventually,
  inbox,
  killChildren,
  MQTT_VERSIONS,
  ROOT,
  spawnTracked,
  startServer,
  subscribe,
  urlFor,
  waitFor,
} from './helpers'

afterEach(async () => {
  killChildren()
  await cleanup()
})

/**
 * Known traffic: a 3.1.1 publisher sends 3 QoS 0 (3 B), 2 QoS 1 (10 B, one
 * retained) and 1 QoS 2 (100 B) message to one MQTT 5 subscriber at QoS 2.
 */
async function knownTraffic() {
  const { server, listeners } = await startServer()
  const url = urlFor(listeners[0])
  const sub = await connect(url, MQTT_VERSIONS['5.0'])
  const box = inbox(sub)
  await subscribe(sub, 's/#', 2)
  const pub = await connect(url, MQTT_VERSIONS['3.1.1'])
  for (let i = 0; i < 3; i++) pub.publish('s/0', 'abc', { qos: 0 })
  await pub.publishAsync('s/1', Buffer.alloc(10, 1), { qos: 1, retain: true })
  await pub.publishAsync('s/1', Buffer.alloc(10, 2), { qos: 1 })
  await pub.publishAsync('s/2', Buffer.alloc(100, 3), { qos: 2 })
  // Every message has reached the subscriber: every count is final.
  for (let i = 0; i < 6; i++) await box.next()
  return { server, url, sub, pub }
}

describe('server.stats()', () => {
  it('counts known traffic exactly', async () => {
    const { server } = await knownTraffic()
    const s = await server.stats()
    expect(s).toMatchObject({
      connections: 2,
      connectionsPeak: 2,
      sessions: 2,
      subscriptions: 1,
      retainedMessages: 1,
      retainedBytes: 10,
      messagesReceived: { qos0: 3, qos1: 2, qos2: 1 },
      messagesSent: { qos0: 3, qos1: 2, qos2: 1 },
      messagesDropped: { qos0: 0, qos1: 0, qos2: 0 },
    })
    expect(s.uptimeSeconds).toBeGreaterThanOrEqual(0)
    expect(s.uptimeSeconds).toBeLessThan(120)
  })

  it('follows connections, the peak, retained deliveries and server publishes', async () => {
    const { server, url, sub } = await knownTraffic()
    // A third client gets the retained message at its QoS 0 subscription.
    const late = await connect(url, MQTT_VERSIONS['3.1.1'])
    const lateBox = inbox(late)
    await subscribe(late, 's/1', 0)
    await lateBox.next()
    // The server's own message is no client's: sent, not received.
    const subBox = inbox(sub)
    await server.publish('s/server', 'xy', { qos: 1 })
    await subBox.next()
    const closed = waitFor(late, 'close')
    await late.endAsync()
    await closed
    const s = await server.stats()
    expect(s.connectionsPeak).toBe(3)
    expect(s.messagesReceived).toEqual({ qos0: 3, qos1: 2, qos2: 1 })
    // + the retained copy (QoS 0) + the server's message to `sub` (QoS 1).
    expect(s.messagesSent).toEqual({ qos0: 4, qos1: 3, qos2: 1 })
    // The late client's close is counted once the broker has seen it (no
    // event tells when): poll.
    let connections = -1
    await eventually(() => {
      void server.stats().then((x) => {
        connections = x.connections
      })
      return connections === 2
    })
    expect(connections).toBe(2)
  })

  it("counts a client's will as a message received, and a refused $ publish as dropped", async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const watcher = await connect(url, MQTT_VERSIONS['3.1.1'])
    const box = inbox(watcher)
    await subscribe(watcher, 'will/#', 1)
    const c = await connect(url, {
      ...MQTT_VERSIONS['5.0'],
      will: { topic: 'will/x', payload: Buffer.from('bye!'), qos: 1, retain: false },
    })
    await c.publishAsync('$SYS/spoof', 'no', { qos: 1 }).catch(() => undefined)
    c.stream.destroy()
    await box.next()
    const s = await server.stats()
    // The refused PUBLISH is not received (it never reached the broker's
    // publish path) but dropped; the will is received and sent.
    expect(s.messagesReceived).toEqual({ qos0: 0, qos1: 1, qos2: 0 })
    expect(s.messagesDropped).toEqual({ qos0: 0, qos1: 1, qos2: 0 })
    expect(s.messagesSent).toEqual({ qos0: 0, qos1: 1, qos2: 0 })
  })

  it('is per server, and refused when not running', async () => {
    const { server } = await knownTraffic()
    const other = await startServer()
    expect((await other.server.stats()).messagesReceived).toEqual({ qos0: 0, qos1: 0, qos2: 0 })
    await server.stop()
    expect(() => server.stats()).toThrow(/stats: the server is not running/)
    expect(() => server.metrics()).toThrow(/metrics: the server is not running/)
  })
})

describe('server.metrics()', () => {
  it('is valid Prometheus text with the same counts as stats()', async () => {
    const { server } = await knownTraffic()
    const families = parsePrometheusTextFormat(await server.metrics())
    const byName = new Map(families.map((f) => [f.name, f]))
    const value = (name: string, qos?: string) =>
      Number(byName.get(name)?.metrics.find((m) => qos === undefined || m.labels?.qos === qos)?.value)
    expect(byName.get('mqtt_messages_received_total')?.type).toBe('COUNTER')
    expect(value('mqtt_messages_received_total', '0')).toBe(3)
    expect(value('mqtt_messages_received_total', '1')).toBe(2)
    expect(value('mqtt_messages_received_total', '2')).toBe(1)
    expect(value('mqtt_messages_sent_total', '2')).toBe(1)
    expect(value('mqtt_messages_dropped_total', '0')).toBe(0)
    // Exact wire bytes: wire-bytes.test.ts.
    expect(value('mqtt_received_bytes_total')).toBeGreaterThan(129)
    expect(byName.get('mqtt_connections')?.type).toBe('GAUGE')
    expect(value('mqtt_connections')).toBe(2)
    expect(value('mqtt_retained_bytes')).toBe(10)
    for (const f of families) {
      expect(f.name).toMatch(/^mqtt_[a-z_]+$/)
      expect(f.help.length).toBeGreaterThan(10)
      if (f.type === 'COUNTER') expect(f.name).toMatch(/_total$/)
    }
  })

  it('is served by the CLI at GET /metrics with --metrics-port', async () => {
    const run = spawnTracked(process.execPath, [
      join(ROOT, 'cli.js'),
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--metrics-port',
      '0',
    ])
    const [, port] = await run.stdoutMatch(/metrics: http:\/\/127\.0\.0\.1:(\d+)\/metrics\n/)
    const res = await fetch(`http://127.0.0.1:${port}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const names = parsePrometheusTextFormat(await res.text()).map((f) => f.name)
    expect(names).toContain('mqtt_connections')
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404)
  })
})
