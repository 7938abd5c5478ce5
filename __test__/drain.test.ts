/**
 * stop() drains: it stops accepting, lets what was routed to connected
 * subscribers before the call reach them (acknowledged, at QoS 1 and 2),
 * then sends MQTT 5 clients DISCONNECT 0x8B; bounded by `drainTimeoutMs`.
 */
import { connect as netConnect } from 'node:net'

import type { MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import { MQTT_VERSIONS, type MqttVersion, cleanup, connect, listener, startServer, subscribe, urlFor } from './helpers'

afterEach(cleanup)

const BACKLOG = 2001
const TOPIC = 'drain/backlog'

/** What a subscriber saw, in order: message payloads, then the DISCONNECT. */
function record(client: MqttClient): Array<string | { disconnect: number | undefined }> {
  const seen: Array<string | { disconnect: number | undefined }> = []
  client.on('message', (_topic, payload) => seen.push(payload.toString()))
  client.on('disconnect', (packet) => seen.push({ disconnect: packet.reasonCode }))
  return seen
}

/**
 * A running server and a subscriber with `BACKLOG` messages routed to it and
 * none read yet: its socket is paused until `resume()`.
 */
async function backlog(version: MqttVersion, qos: 1 | 2) {
  // The deliver queue holds the whole backlog (default 1000 would drop some).
  const { server, listeners } = await startServer([listener('tcp', { maxMqueueLen: 10_000 })])
  const sub = await connect(urlFor(listeners[0]), { ...MQTT_VERSIONS[version], clean: true })
  await subscribe(sub, TOPIC, qos)
  const seen = record(sub)
  // Acks written after the server closed the socket (the tests that cut
  // the drain short) fail with EPIPE / ECONNRESET: expected there.
  sub.on('error', (e: Error & { code?: string | number }) => {
    if (e.code !== 'EPIPE' && e.code !== 'ECONNRESET') throw e
  })
  sub.stream.pause()
  await Promise.all(Array.from({ length: BACKLOG }, (_, i) => server.publish(TOPIC, String(i), { qos })))
  return { server, listeners, sub, seen, resume: () => sub.stream.resume() }
}

/** Resolves when the client's connection closes; unlike `waitFor`, an
 * expected EPIPE on the way does not reject it. */
function closeOf(client: MqttClient, timeoutMs = 20_000): Promise<void> {
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`timed out after ${timeoutMs} ms waiting for 'close'`)), timeoutMs)
    client.once('close', () => {
      clearTimeout(timer)
      res()
    })
  })
}

const expected = Array.from({ length: BACKLOG }, (_, i) => String(i))

describe('stop() drains connected subscribers', () => {
  it.each([
    ['5.0', 1],
    ['5.0', 2],
    ['3.1.1', 1],
  ] as const)('%s QoS %i: every message routed before stop() arrives, then the disconnect', async (version, qos) => {
    const { server, sub, seen, resume } = await backlog(version, qos)
    expect(seen).toEqual([]) // the backlog is all still queued
    const closed = closeOf(sub)
    const stopped = server.stop()
    resume()
    await stopped
    await closed
    if (version === '5.0') {
      expect(seen.at(-1)).toEqual({ disconnect: 0x8b })
      seen.pop()
    }
    expect(seen).toEqual(expected)
  })

  it('refuses new connections while draining', async () => {
    const { server, listeners, resume } = await backlog('5.0', 1)
    let draining = true
    const stopped = server.stop({ drainTimeoutMs: 10_000 }).finally(() => {
      draining = false
    })
    const attempt = () =>
      new Promise<string>((res) => {
        const s = netConnect(listeners[0].port, '127.0.0.1')
        s.on('connect', () => {
          s.destroy()
          res('connected')
        })
        s.on('error', (e: NodeJS.ErrnoException) => res(e.code ?? e.message))
      })
    // The drain is held by the paused subscriber; the listener closes at
    // the start of stop(), which nothing reports: a connection the kernel
    // queued just before is reset, not refused. So: attempts until one is
    // refused, which must happen while the drain is still held.
    let refused = await attempt()
    for (const deadline = Date.now() + 5000; refused !== 'ECONNREFUSED' && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 20))
      refused = await attempt()
    }
    expect(draining, 'still draining when refused').toBe(true)
    resume()
    await stopped
    expect(refused).toBe('ECONNREFUSED')
  })

  it('gives up after drainTimeoutMs on a subscriber that does not read', async () => {
    const { server, sub, seen, resume } = await backlog('5.0', 1)
    const closed = closeOf(sub)
    const began = performance.now()
    await server.stop({ drainTimeoutMs: 400 })
    const took = performance.now() - began
    // What it reads now is what the broker had written before it gave up.
    resume()
    await closed
    expect(took).toBeGreaterThanOrEqual(390)
    expect(took).toBeLessThan(4000)
    expect(seen.at(-1)).toEqual({ disconnect: 0x8b })
    expect(seen.length - 1).toBeLessThan(BACKLOG)
  })

  it('drainTimeoutMs: 0 disconnects at once, leaving the backlog', async () => {
    const { server, sub, seen, resume } = await backlog('5.0', 1)
    const closed = closeOf(sub)
    await server.stop({ drainTimeoutMs: 0 })
    resume()
    await closed
    expect(seen.at(-1)).toEqual({ disconnect: 0x8b })
    expect(seen.length - 1).toBeLessThan(BACKLOG)
  })

  it('close() drains too', async () => {
    const { server, sub, seen, resume } = await backlog('5.0', 1)
    const closed = closeOf(sub)
    const done = server.close()
    resume()
    await done
    await closed
    expect(seen.pop()).toEqual({ disconnect: 0x8b })
    expect(seen).toEqual(expected)
  })
})

describe('stop() options', () => {
  it.each([
    [{ drainTimeoutMs: -1 }, 'stop: options.drainTimeoutMs: must be an integer from 0 to 3600000, got -1'],
    [{ drainTimeoutMs: 1.5 }, 'stop: options.drainTimeoutMs: must be an integer from 0 to 3600000, got 1.5'],
    [{ drainTimeoutMs: '10' }, 'stop: options.drainTimeoutMs: invalid type: string "10", expected a number'],
    [{ drainTimeoutMs: Number.NaN }, 'stop: options.drainTimeoutMs: must be a finite number, got NaN'],
    [{ drain: 10 }, 'stop: options.drain: unknown field `drain`, expected `drainTimeoutMs`'],
    ['fast', 'stop: options: expected an object, got a string'],
    [[1], 'stop: options: expected an object, got an array'],
  ])('%j rejects naming the field, and stops nothing', async (options, message) => {
    const { server } = await startServer()
    const err = await server.stop(options as never).catch((e: Error & { code?: string }) => e)
    expect(err).toBeInstanceOf(Error)
    expect((err as Error & { code?: string }).code).toBe('InvalidArg')
    expect((err as Error).message).toBe(message)
    expect(server.running).toBe(true)
  })

  it('close() checks its options the same way', async () => {
    const { server } = await startServer()
    const err = await server.close({ drainTimeoutMs: -5 }).catch((e: Error) => e)
    expect((err as Error).message).toBe('close: options.drainTimeoutMs: must be an integer from 0 to 3600000, got -5')
    expect(server.running).toBe(true)
  })
})
