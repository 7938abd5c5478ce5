import { createServer, type Server } from 'node:net'

import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, connect, listener, MqttServer, startServer, track, urlFor, waitFor } from './helpers'

afterEach(cleanup)

/** Binds a plain TCP socket; proves a port is free (or holds it taken). */
async function bindPort(port: number): Promise<Server> {
  const s = createServer()
  s.listen(port, '127.0.0.1')
  await waitFor(s, 'listening')
  return s
}

async function closeNet(s: Server): Promise<void> {
  await new Promise<void>((res) => s.close(() => res()))
}

const ALREADY_RUNNING = /^start: the server is already running$/
const CLOSED = /^start: the server is closed; create a new MqttServer$/

describe('start', () => {
  it('resolves with the real bound listeners; running and listeners follow the state', async () => {
    const server = track(new MqttServer())
    expect(server.running).toBe(false)
    expect(server.listeners).toEqual([])
    const infos = await server.start({
      listeners: [listener('tcp'), listener('ws', { name: 'web' })],
    })
    expect(infos).toEqual([
      { name: 'tcp-0', protocol: 'tcp', address: '127.0.0.1', port: expect.any(Number), url: expect.any(String) },
      { name: 'web', protocol: 'ws', address: '127.0.0.1', port: expect.any(Number), url: expect.any(String) },
    ])
    expect(infos[0].port).toBeGreaterThan(0)
    expect(infos[1].port).toBeGreaterThan(0)
    expect(infos[0].port).not.toBe(infos[1].port)
    expect(server.running).toBe(true)
    expect(server.listeners).toEqual(infos)
    // Both ports really accept MQTT clients.
    const c1 = await connect(urlFor(infos[0]))
    const c2 = await connect(urlFor(infos[1]))
    expect(c1.connected && c2.connected).toBe(true)
    await server.stop()
    expect(server.running).toBe(false)
    expect(server.listeners).toEqual([])
  })

  it('binds a host name ("localhost") to its loopback address', async () => {
    const { listeners } = await startServer([listener('tcp', { address: 'localhost' })])
    expect(listeners[0].address).toMatch(/^(127\.0\.0\.1|::1)$/)
    const c = await connect(urlFor(listeners[0]))
    expect(c.connected).toBe(true)
  })

  it('rejects a second start while running and keeps serving the first config', async () => {
    const { server, listeners } = await startServer()
    const err = await server.start({ listeners: [listener('tcp')] }).catch((e) => e)
    expect(err).toBeInstanceOf(Error)
    expect(err.code).toBe('GenericFailure')
    expect(err.message).toMatch(ALREADY_RUNNING)
    expect(server.running).toBe(true)
    expect(server.listeners).toEqual(listeners)
    const c = await connect(urlFor(listeners[0]))
    expect(c.connected).toBe(true)
  })

  it('checks "already running" before validating the new config', async () => {
    const { server } = await startServer()
    const err = await server.start({ listeners: [] }).catch((e) => e)
    expect(err.code).toBe('GenericFailure')
    expect(err.message).toMatch(ALREADY_RUNNING)
  })

  it('of two concurrent starts exactly one wins, the other rejects', async () => {
    const server = track(new MqttServer())
    const results = await Promise.allSettled([
      server.start({ listeners: [listener('tcp', { name: 'first' })] }),
      server.start({ listeners: [listener('tcp', { name: 'second' })] }),
    ])
    const ok = results.filter((r) => r.status === 'fulfilled')
    const failed = results.filter((r) => r.status === 'rejected')
    expect(ok).toHaveLength(1)
    expect(failed).toHaveLength(1)
    const reason = failed[0].reason
    expect(reason.code).toBe('GenericFailure')
    expect(reason.message).toMatch(ALREADY_RUNNING)
    const won = ok[0].value
    expect(server.listeners).toEqual(won)
    expect(won).toHaveLength(1)
    const c = await connect(urlFor(won[0]))
    expect(c.connected).toBe(true)
  })

  it('a failed start (port in use) leaves nothing running and the server usable', async () => {
    const blocker = await bindPort(0)
    try {
      const busy = (blocker.address() as { port: number }).port
      const server = track(new MqttServer())
      const err = await server.start({ listeners: [listener('tcp', { port: busy })] }).catch((e) => e)
      expect(err.code).toBe('EADDRINUSE')
      expect(err.message).toMatch(
        new RegExp(`^listener "tcp-0" \\(tcp on 127\\.0\\.0\\.1:${busy}\\): cannot bind: Address already in use`),
      )
      expect(server.running).toBe(false)
      expect(server.listeners).toEqual([])
      // The same object starts fine afterwards.
      const infos = await server.start({ listeners: [listener('tcp')] })
      expect(server.running).toBe(true)
      const c = await connect(urlFor(infos[0]))
      expect(c.connected).toBe(true)
    } finally {
      await closeNet(blocker)
    }
  })

  it('a failed start releases the listeners it had already bound', async () => {
    // Learn a free port, then ask for it next to a taken one.
    const probe = await bindPort(0)
    const freePort = (probe.address() as { port: number }).port
    await closeNet(probe)
    const blocker = await bindPort(0)
    try {
      const busy = (blocker.address() as { port: number }).port
      const server = track(new MqttServer())
      const err = await server
        .start({
          listeners: [listener('tcp', { name: 'ok', port: freePort }), listener('tcp', { name: 'taken', port: busy })],
        })
        .catch((e) => e)
      expect(err.code).toBe('EADDRINUSE')
      expect(err.message).toMatch(/^listener "taken" \(tcp on 127\.0\.0\.1:\d+\): cannot bind: Address already in use/)
      expect(server.running).toBe(false)
      // "ok" was bound before "taken" failed: its port must be free again.
      const again = await bindPort(freePort)
      await closeNet(again)
    } finally {
      await closeNet(blocker)
    }
  })

  it('a failed start (bad config) leaves the server usable', async () => {
    const server = track(new MqttServer())
    const err = await server.start({ listeners: [] }).catch((e) => e)
    expect(err.code).toBe('InvalidArg')
    expect(server.running).toBe(false)
    const infos = await server.start({ listeners: [listener('tcp')] })
    const c = await connect(urlFor(infos[0]))
    expect(c.connected).toBe(true)
  })
})

describe('stop', () => {
  it('disconnects every client (3.1.1 and 5.0) and frees the port', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const v4 = await connect(url, { protocolVersion: 4 })
    const v5 = await connect(url, { protocolVersion: 5 })
    const told: Array<[number, number | undefined]> = []
    v4.on('disconnect', (p) => told.push([4, p.reasonCode]))
    v5.on('disconnect', (p) => told.push([5, p.reasonCode]))
    const closed = Promise.all([waitFor(v4, 'close'), waitFor(v5, 'close')])
    await server.stop()
    await closed
    // MQTT 5 says why before the socket closes: 0x8B server shutting down.
    expect(told).toEqual([[5, 0x8b]])
    expect(v4.connected).toBe(false)
    expect(v5.connected).toBe(false)
    expect(server.running).toBe(false)
    expect(server.listeners).toEqual([])
    // Nothing listens any more: a plain socket can take the port.
    const s = await bindPort(listeners[0].port)
    await closeNet(s)
  })

  it('refuses new connections after stop', async () => {
    const { server, listeners } = await startServer()
    await server.stop()
    const err = await connect(urlFor(listeners[0])).catch((e) => e)
    expect(err).toBeInstanceOf(Error)
    expect((err as NodeJS.ErrnoException).code).toBe('ECONNREFUSED')
  })

  it('restarts on the same port, with clients connected before the stop', async () => {
    const { server, listeners } = await startServer()
    const port = listeners[0].port
    const before = await connect(urlFor(listeners[0]))
    const closed = waitFor(before, 'close')
    await server.stop()
    await closed
    const again = await server.start({ listeners: [listener('tcp', { port })] })
    expect(again).toEqual([
      { name: 'tcp-0', protocol: 'tcp', address: '127.0.0.1', port, url: `mqtt://127.0.0.1:${port}` },
    ])
    const after = await connect(urlFor(again[0]))
    expect(after.connected).toBe(true)
    // And once more, a third cycle on the same port.
    await server.stop()
    const third = await server.start({ listeners: [listener('tcp', { port })] })
    expect(third[0].port).toBe(port)
  })

  it('resolves when not running, repeatedly and concurrently', async () => {
    const server = track(new MqttServer())
    await expect(server.stop()).resolves.toBeUndefined()
    await server.start({ listeners: [listener('tcp')] })
    const results = await Promise.allSettled([server.stop(), server.stop()])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled'])
    expect(server.running).toBe(false)
    await expect(server.stop()).resolves.toBeUndefined()
  })
})

describe('close', () => {
  it('stops a running server, disconnects clients and seals it', async () => {
    const { server, listeners } = await startServer()
    const c = await connect(urlFor(listeners[0]))
    const closed = waitFor(c, 'close')
    await server.close()
    await closed
    expect(server.running).toBe(false)
    expect(server.listeners).toEqual([])
    const err = await server.start({ listeners: [listener('tcp')] }).catch((e) => e)
    expect(err.code).toBe('GenericFailure')
    expect(err.message).toMatch(CLOSED)
    expect(server.running).toBe(false)
    // close and stop stay harmless afterwards.
    await expect(server.close()).resolves.toBeUndefined()
    await expect(server.stop()).resolves.toBeUndefined()
    const s = await bindPort(listeners[0].port)
    await closeNet(s)
  })

  it('seals a server that never started', async () => {
    const server = track(new MqttServer())
    await server.close()
    const err = await server.start({ listeners: [listener('tcp')] }).catch((e) => e)
    expect(err.code).toBe('GenericFailure')
    expect(err.message).toMatch(CLOSED)
  })

  it('close after stop still seals', async () => {
    const { server } = await startServer()
    await server.stop()
    await server.close()
    await expect(server.start({ listeners: [listener('tcp')] })).rejects.toThrow(CLOSED)
  })
})
