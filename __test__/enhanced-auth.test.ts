/**
 * MQTT 5.0 enhanced authentication (AUTH packets) decided by
 * `onClientEnhancedAuth`: the SCRAM-SHA-256 example of
 * `examples/scram-sha-256.ts` through both of its steps at connect and on
 * re-authentication, with raw packets to read every AUTH, CONNACK and
 * DISCONNECT; protocol errors; and an mqtt.js client (its `handleAuth`).
 */
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'

import {
  hmac,
  SCRAM_SHA_256,
  saltedPassword,
  scramCredentials,
  scramSha256,
  sha256,
  xor,
} from '../examples/scram-sha-256'
import {
  cleanup,
  connect,
  EVENT_TIMEOUT,
  type HookCallbacks,
  inbox,
  type ListenerConfig,
  type ListenerInfo,
  listener,
  type MqttServer,
  subscribe,
  urlFor,
  withDeadline,
  startServer,
} from './helpers'
import {
  AUTH,
  authPacket,
  CONNACK,
  connectPacket,
  DISCONNECT,
  destroyRaw,
  type Packet,
  PUBLISH,
  propValue,
  prop,
  props,
  publishPacket,
  rawConnect,
  readProperties,
  subscribePacket,
  SUBACK,
} from './raw'

afterEach(async () => {
  destroyRaw()
  await cleanup()
})

const AUTH_METHOD = 0x15
const AUTH_DATA = 0x16
const REASON_STRING = 0x1f
const CONTINUE = 0x18
const REAUTH = 0x19

const USERS = new Map([['alice', scramCredentials('wonderland', 1024)]])

/** The client's side of SCRAM-SHA-256. */
function scramClient(user: string, password: string) {
  const nonce = randomBytes(18).toString('base64')
  const bare = `n=${user},r=${nonce}`
  let expected = ''
  return {
    first: Buffer.from(`n,,${bare}`),
    final(serverFirst: string): Buffer {
      const m = /^r=([^,]+),s=([^,]+),i=(\d+)$/.exec(serverFirst)
      if (!m?.[1].startsWith(nonce)) throw new Error(`bad server-first-message: ${serverFirst}`)
      const salted = saltedPassword(password, Buffer.from(m[2], 'base64'), Number(m[3]))
      const clientKey = hmac(salted, 'Client Key')
      const withoutProof = `c=biws,r=${m[1]}`
      const authMessage = `${bare},${serverFirst},${withoutProof}`
      const proof = xor(clientKey, hmac(sha256(clientKey), authMessage))
      expected = `v=${hmac(hmac(salted, 'Server Key'), authMessage).toString('base64')}`
      return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`)
    },
    /** The server's final message proves it holds this user's keys. */
    verify: (serverFinal: string) => serverFinal === expected,
  }
}

/** A broker whose onClientEnhancedAuth is the SCRAM example, counting calls by `continued`. */
async function scramServer(): Promise<{ server: MqttServer; info: ListenerInfo; steps: boolean[] }> {
  const scram = scramSha256((u) => USERS.get(u))
  const steps: boolean[] = []
  const { server, listeners } = await startWithHooks({
    onClientEnhancedAuth: (req) => {
      steps.push(req.continued)
      return scram(req)
    },
  })
  return { server, info: listeners[0], steps }
}

/** A server with these hooks from its start. */
function startWithHooks(hooks: HookCallbacks, config: ListenerConfig[] = [listener('tcp')]) {
  return startServer(config, { hooks })
}

const authProps = (data: Buffer, method = SCRAM_SHA_256) =>
  props(prop.authenticationMethod(method), prop.authenticationData(data))

/** CONNECT with SCRAM's first message; resolves with the server's challenge. */
async function scramConnect(info: ListenerInfo, client: ReturnType<typeof scramClient>, clientId = 'scram') {
  const c = await rawConnect(info)
  await c.write(connectPacket({ version: 5, clientId, properties: authProps(client.first) }))
  const challenge = await c.next(AUTH)
  return { c, challenge }
}

/** Reason code and properties of an AUTH, CONNACK or DISCONNECT. */
function decode(p: Packet) {
  const at = p.type === CONNACK ? 1 : 0
  const code = p.body.length > at ? p.body[at] : 0
  const properties = p.body.length > at + 1 ? readProperties(p.body, at + 1).props : []
  const data = propValue(properties, AUTH_DATA)
  return {
    code,
    method: propValue(properties, AUTH_METHOD),
    data: Buffer.isBuffer(data) ? data.toString('utf8') : undefined,
    reasonString: propValue(properties, REASON_STRING),
  }
}

describe('enhanced authentication at connect (SCRAM-SHA-256 through both steps)', () => {
  it('MQTT-4.12.0-2 MQTT-4.12.0-5 MQTT-3.15.2-1: challenge (AUTH 0x18), answer, CONNACK 0x00 with the same method and the server signature; the client then works', async () => {
    const { info, steps } = await scramServer()
    const client = scramClient('alice', 'wonderland')
    const { c, challenge } = await scramConnect(info, client)

    const ch = decode(challenge)
    expect(ch).toMatchObject({ code: CONTINUE, method: SCRAM_SHA_256 })
    await c.write(authPacket(CONTINUE, authProps(client.final(ch.data ?? ''))))

    const ack = decode(await c.next(CONNACK))
    expect(ack.code).toBe(0)
    // The CONNACK names the method the CONNECT chose.
    expect(ack.method).toBe(SCRAM_SHA_256)
    expect(client.verify(ack.data ?? '')).toBe(true)
    expect(steps).toEqual([false, true])

    await c.write(subscribePacket(5, 1, ['scram/t']))
    await c.next(SUBACK)
    await c.write(publishPacket(5, 'scram/t', 'after auth'))
    expect((await c.next(PUBLISH)).body.includes(Buffer.from('after auth'))).toBe(true)
  })

  it('MQTT-4.12.0-4: a wrong password: CONNACK 0x87 after the second step, then the connection closes', async () => {
    const { info, steps } = await scramServer()
    const client = scramClient('alice', 'not the password')
    const { c, challenge } = await scramConnect(info, client)
    await c.write(authPacket(CONTINUE, authProps(client.final(decode(challenge).data ?? ''))))

    const ack = decode(await c.next(CONNACK))
    expect(ack.code).toBe(0x87)
    expect(ack.data).toBeUndefined()
    await c.waitClosed()
    expect(steps).toEqual([false, true])
  })

  it('MQTT-4.12.0-4: an unknown user is refused at the first step (0x87), before any challenge', async () => {
    const { info } = await scramServer()
    const c = await rawConnect(info)
    await c.write(connectPacket({ version: 5, clientId: 'x', properties: authProps(scramClient('bob', 'pw').first) }))
    expect(decode(await c.next(CONNACK)).code).toBe(0x87)
    expect(c.packets().some((p) => p.type === AUTH)).toBe(false)
    await c.waitClosed()
  })

  it('a method the hook does not take: CONNACK 0x8C Bad authentication method', async () => {
    const { info } = await scramServer()
    const c = await rawConnect(info)
    await c.write(connectPacket({ version: 5, clientId: 'x', properties: authProps(Buffer.from('x'), 'KERBEROS') }))
    expect(decode(await c.next(CONNACK)).code).toBe(0x8c)
    await c.waitClosed()
  })

  it('without onClientEnhancedAuth a CONNECT with an Authentication Method is refused with 0x8C, and others still connect', async () => {
    const { listeners } = await startWithHooks({ onClientAuthenticate: () => ({ allow: true }) })
    const c = await rawConnect(listeners[0])
    await c.write(connectPacket({ version: 5, clientId: 'x', properties: authProps(Buffer.from('n,,n=a,r=b')) }))
    expect(decode(await c.next(CONNACK)).code).toBe(0x8c)
    await c.waitClosed()
    await connect(urlFor(listeners[0]), { protocolVersion: 5 })
  })

  it('MQTT-4.12.0-5: an AUTH with another method in the exchange is a protocol error (CONNACK 0x82)', async () => {
    const { info } = await scramServer()
    const client = scramClient('alice', 'wonderland')
    const { c, challenge } = await scramConnect(info, client)
    await c.write(authPacket(CONTINUE, authProps(client.final(decode(challenge).data ?? ''), 'SCRAM-SHA-1')))
    expect(decode(await c.next(CONNACK)).code).toBe(0x82)
    await c.waitClosed()
  })

  it('a client that never answers the challenge is closed by the handshake timeout', async () => {
    const { listeners } = await startWithHooks(
      { onClientEnhancedAuth: () => ({ continue: true, data: Buffer.from('challenge') }) },
      [listener('tcp', { handshakeTimeout: 1000 })],
    )
    const c = await rawConnect(listeners[0])
    await c.write(connectPacket({ version: 5, clientId: 'x', properties: authProps(Buffer.from('hi')) }))
    await c.next(AUTH)
    await c.waitClosed(EVENT_TIMEOUT)
    expect(c.packets().some((p) => p.type === CONNACK)).toBe(false)
  })

  it('an answer that is not one step (continue and allow) refuses with 0x87 and counts a failure', async () => {
    const { server, listeners } = await startWithHooks({
      onClientEnhancedAuth: () => ({ continue: true, allow: true }),
    })
    const before = server.hookStats.failures
    const c = await rawConnect(listeners[0])
    await c.write(connectPacket({ version: 5, clientId: 'x', properties: authProps(Buffer.from('hi')) }))
    expect(decode(await c.next(CONNACK)).code).toBe(0x87)
    expect(server.hookStats.failures).toBe(before + 1)
  })

  it('an mqtt.js client completes the exchange through its handleAuth', async () => {
    const { info, steps } = await scramServer()
    const scram = scramClient('alice', 'wonderland')
    let serverFinal = ''
    const client = await connect(
      urlFor(info),
      {
        protocolVersion: 5,
        properties: { authenticationMethod: SCRAM_SHA_256, authenticationData: scram.first },
      },
      (c) => {
        c.handleAuth = (packet, cb) => {
          const data = packet.properties?.authenticationData?.toString('utf8') ?? ''
          cb(undefined, {
            cmd: 'auth',
            reasonCode: CONTINUE,
            properties: { authenticationMethod: SCRAM_SHA_256, authenticationData: scram.final(data) },
          })
        }
        c.once('packetreceive', function onPacket(p) {
          if (p.cmd === 'connack') serverFinal = p.properties?.authenticationData?.toString('utf8') ?? ''
          else c.once('packetreceive', onPacket)
        })
      },
    )
    expect(scram.verify(serverFinal)).toBe(true)
    expect(steps).toEqual([false, true])
    await subscribe(client, 'js/t', 1)
    const box = inbox(client)
    await client.publishAsync('js/t', 'ok', { qos: 1 })
    expect((await box.next()).payload.toString()).toBe('ok')
  })
})

describe('re-authentication on a live connection', () => {
  async function authenticated() {
    const { info, steps } = await scramServer()
    const client = scramClient('alice', 'wonderland')
    const { c, challenge } = await scramConnect(info, client)
    await c.write(authPacket(CONTINUE, authProps(client.final(decode(challenge).data ?? ''))))
    expect(decode(await c.next(CONNACK)).code).toBe(0)
    return { c, steps }
  }

  it('MQTT-3.15.2-1: AUTH 0x19, challenge (0x18), answer, AUTH 0x00 with the server signature; the connection stays up', async () => {
    const { c, steps } = await authenticated()
    const again = scramClient('alice', 'wonderland')
    await c.write(authPacket(REAUTH, authProps(again.first)))
    const ch = decode(await c.nth(AUTH, 1))
    expect(ch).toMatchObject({ code: CONTINUE, method: SCRAM_SHA_256 })
    await c.write(authPacket(CONTINUE, authProps(again.final(ch.data ?? ''))))
    const done = decode(await c.nth(AUTH, 2))
    expect(done.code).toBe(0)
    expect(again.verify(done.data ?? '')).toBe(true)
    expect(steps).toEqual([false, true, false, true])

    await c.write(subscribePacket(5, 1, ['re/t']))
    await c.next(SUBACK)
  })

  it('MQTT-4.12.1-2: a failed re-authentication gets DISCONNECT 0x87 and the connection closes', async () => {
    const { c } = await authenticated()
    const wrong = scramClient('alice', 'guess')
    await c.write(authPacket(REAUTH, authProps(wrong.first)))
    const ch = decode(await c.nth(AUTH, 1))
    await c.write(authPacket(CONTINUE, authProps(wrong.final(ch.data ?? ''))))
    const d = decode(await c.next(DISCONNECT))
    expect(d.code).toBe(0x87)
    expect(d.reasonString).toBe('bad proof')
    await c.waitClosed()
  })

  it("re-authentication with another method than the CONNECT's is a protocol error (DISCONNECT 0x82)", async () => {
    const { c } = await authenticated()
    await c.write(authPacket(REAUTH, authProps(scramClient('alice', 'wonderland').first, 'PLAIN')))
    expect(decode(await c.next(DISCONNECT)).code).toBe(0x82)
    await c.waitClosed()
  })

  it('an AUTH 0x18 that answers no challenge is a protocol error (DISCONNECT 0x82)', async () => {
    const { c } = await authenticated()
    await c.write(authPacket(CONTINUE, authProps(Buffer.from('c=biws,r=x,p=AAAA'))))
    expect(decode(await c.next(DISCONNECT)).code).toBe(0x82)
    await c.waitClosed()
  })

  it('MQTT-4.12.0-6: a client that connected without a method is never sent AUTH; an AUTH from it is a protocol error (DISCONNECT 0x82)', async () => {
    const { info } = await scramServer()
    const c = await rawConnect(info)
    await c.write(connectPacket({ version: 5, clientId: 'plain' }))
    expect(decode(await c.next(CONNACK)).code).toBe(0)
    await c.write(authPacket(REAUTH, authProps(Buffer.from('n,,n=alice,r=x'))))
    expect(decode(await c.next(DISCONNECT)).code).toBe(0x82)
    await withDeadline(c.closed, EVENT_TIMEOUT, () => 'not closed')
    expect(c.packets().some((p) => p.type === AUTH)).toBe(false)
  })
})
