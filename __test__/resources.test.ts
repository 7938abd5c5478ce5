/**
 * Per-client resources are released when the connection ends, whatever
 * happens to the client's session. The broker runs in this test's process,
 * so its sockets are this process's file descriptors.
 */
import { readdirSync } from 'node:fs'
import { connect as tcpConnect } from 'node:net'

import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, connect, endClient, inbox, type Inbox, MQTT_VERSIONS, startServer, subscribe, urlFor } from './helpers'

afterEach(cleanup)

const openFds = () => readdirSync('/proc/self/fd').length

/** Polls `probe` until it passes or `ms` run out (no event tells when the broker closed a socket). */
async function eventually(probe: () => boolean, ms = 10000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (probe()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return probe()
}

describe.runIf(process.platform === 'linux')('sockets of ended connections', () => {
  it.each([
    ['3.1.1 clean: false', { ...MQTT_VERSIONS['3.1.1'], clean: false }],
    ['5.0 session expiry 3600 s', { ...MQTT_VERSIONS['5.0'], clean: false, properties: { sessionExpiryInterval: 3600 } }],
  ] as const)('MQTT %s: 300 persistent sessions that went offline hold no socket', async (_, opts) => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const before = openFds()
    const clients = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const c = await connect(url, { ...opts, clientId: `offline-${i}` })
        await subscribe(c, `offline/${i}`, 1)
        return c
      }),
    )
    expect(openFds()).toBeGreaterThanOrEqual(before + 600)
    // DISCONNECT, then the client closes its socket.
    await Promise.all(clients.map((c) => endClient(c)))
    const released = await eventually(() => openFds() < before + 30)
    expect({ released, extraFds: openFds() - before }).toMatchObject({ released: true })
    // The sessions are still there: a message queued for one is delivered
    // when it comes back.
    await server.publish('offline/7', 'kept', { qos: 1 })
    let box: Inbox | undefined
    await connect(url, { ...opts, clientId: 'offline-7' }, (c) => {
      box = inbox(c)
    })
    const m = await box!.next()
    expect([m.topic, m.payload.toString()]).toEqual(['offline/7', 'kept'])
  })
})

describe('a DISCONNECT', () => {
  it.each([
    ['3.1.1', 4],
    ['5.0', 5],
  ] as const)('MQTT %s: the broker closes the connection after it even if the client does not (MQTT-3.14.4-1 asks the client; the server SHOULD)', async (_, level) => {
    const { listeners } = await startServer()
    const sock = tcpConnect(listeners[0].port, '127.0.0.1')
    const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()))
    sock.on('error', () => {})
    sock.resume() // read (and drop) the CONNACK, so the end of the stream is seen
    // CONNECT (clean, keep-alive 0: nothing else would close it), then DISCONNECT.
    const id = Buffer.from('disc')
    const props = level === 5 ? [0] : []
    const body = [0, 4, ...Buffer.from('MQTT'), level, 0x02, 0, 0, ...props, 0, id.length, ...id]
    sock.write(Buffer.from([0x10, body.length, ...body]))
    sock.write(Buffer.from(level === 5 ? [0xe0, 1, 0] : [0xe0, 0]))
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still open after 5 s'), 5000)))
    expect(await Promise.race([closed.then(() => 'closed'), late])).toBe('closed')
    clearTimeout(timer)
    sock.destroy()
  })
})
