/**
 * Per-client resources are released when the connection ends, whatever
 * happens to the client's session. The broker runs in this test's process,
 * so its sockets are this process's file descriptors.
 */
import { readdirSync } from 'node:fs'

import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  endClient,
  eventually,
  inbox,
  type Inbox,
  MQTT_VERSIONS,
  startServer,
  subscribe,
  urlFor,
} from './helpers'
import { destroyRaw, packet, rawSession } from './raw'

afterEach(async () => {
  destroyRaw()
  await cleanup()
})

const openFds = () => readdirSync('/proc/self/fd').length

describe.runIf(process.platform === 'linux')('sockets of ended connections', () => {
  it.each([
    ['3.1.1 clean: false', { ...MQTT_VERSIONS['3.1.1'], clean: false }],
    [
      '5.0 session expiry 3600 s',
      { ...MQTT_VERSIONS['5.0'], clean: false, properties: { sessionExpiryInterval: 3600 } },
    ],
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
    // Positive control: the 600 sockets (both ends) were open. Some slack:
    // the worker's own descriptors counted in `before` may close meanwhile
    // (a CI run counted 599).
    expect(openFds()).toBeGreaterThanOrEqual(before + 590)
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
  ] as const)(
    'MQTT %s: the broker closes the connection after it even if the client does not (MQTT-3.14.4-1 asks the client; the server SHOULD)',
    async (_, version) => {
      const { listeners } = await startServer()
      // Keep-alive 0: nothing else would close the connection.
      const c = await rawSession(listeners[0], version, { keepAlive: 0 })
      await c.write(version === 5 ? packet(0xe0, Buffer.from([0])) : packet(0xe0))
      await c.waitClosed(5000)
    },
  )
})
