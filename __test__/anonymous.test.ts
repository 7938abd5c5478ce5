import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  connectRefused,
  listener,
  MQTT_VERSIONS,
  type MqttVersion,
  startServer,
  urlFor,
} from './helpers'

afterEach(cleanup)

/** CONNACK "not authorized": return code 5 in 3.1/3.1.1, reason code 0x87 in 5.0. */
const NOT_AUTHORIZED: Record<MqttVersion, number> = { '3.1': 5, '3.1.1': 5, '5.0': 135 }
const VERSIONS = Object.keys(MQTT_VERSIONS) as MqttVersion[]

describe('allowAnonymous: false (no authentication hook installed)', () => {
  it.each(VERSIONS)(
    'MQTT %s: a client without a username is refused with CONNACK "not authorized"',
    async (version) => {
      const { listeners } = await startServer([listener('tcp', { allowAnonymous: false })])
      const err = await connectRefused(urlFor(listeners[0]), MQTT_VERSIONS[version])
      expect(err.code).toBe(NOT_AUTHORIZED[version])
      expect(err.message).toMatch(/Not authorized/i)
    },
  )

  // Observed rmqtt 0.24 behaviour, documented here: without an authenticate
  // hook nothing can vouch for credentials, so a username/password does not
  // help either: every client is refused on such a listener.
  it.each(VERSIONS)('MQTT %s: a client WITH username and password is refused too (observed)', async (version) => {
    const { listeners } = await startServer([listener('tcp', { allowAnonymous: false })])
    const err = await connectRefused(urlFor(listeners[0]), {
      ...MQTT_VERSIONS[version],
      username: 'alice',
      password: 'secret',
    })
    expect(err.code).toBe(NOT_AUTHORIZED[version])
  })

  it('a username without password and an empty username are refused as well (observed)', async () => {
    const { listeners } = await startServer([listener('tcp', { allowAnonymous: false })])
    const url = urlFor(listeners[0])
    expect((await connectRefused(url, { username: 'bob' })).code).toBe(5)
    expect((await connectRefused(url, { username: '' })).code).toBe(5)
  })

  it('applies per listener: the same server accepts anonymous clients on another listener', async () => {
    const { listeners } = await startServer([
      listener('tcp', { name: 'closed', allowAnonymous: false }),
      listener('ws', { name: 'open' }),
    ])
    const [closed, open] = listeners
    expect((await connectRefused(urlFor(closed))).code).toBe(5)
    const c = await connect(urlFor(open))
    expect(c.connected).toBe(true)
  })

  it('is enforced on tls and wss listeners too', async () => {
    const { listeners } = await startServer([
      listener('tls', { allowAnonymous: false }),
      listener('wss', { allowAnonymous: false }),
    ])
    for (const info of listeners) {
      expect((await connectRefused(urlFor(info), MQTT_VERSIONS['5.0'])).code, info.protocol).toBe(135)
    }
  })
})

describe('allowAnonymous default (true)', () => {
  it('accepts clients with and without credentials', async () => {
    const { listeners } = await startServer()
    const url = urlFor(listeners[0])
    const anon = await connect(url)
    const withUser = await connect(url, { username: 'alice', password: 'secret' })
    expect(anon.connected && withUser.connected).toBe(true)
  })
})
