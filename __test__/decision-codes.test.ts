/**
 * Decision hooks choose their refusal: `code` (number or name) and `reason`
 * reach MQTT 5.0 clients in CONNACK, SUBACK, PUBACK/PUBREC and DISCONNECT;
 * `onClientAuthenticate` may redirect (0x9C/0x9D with Server Reference);
 * 3.1.1 clients get the closest 3.1.1 code; a code not valid for the packet
 * is the hook's failure (denied with the default code, counted).
 */
import type { IClientOptions, MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import type * as Addon from '../index'
import { cleanup, connect, drain, inbox, listener, subscribe, waitFor, startServer } from './helpers'

afterEach(cleanup)

async function serverWithHooks(hooks: Addon.HookCallbacks) {
  return startServer([listener('tcp', { allowAnonymous: false })], { hooks })
}

/** The first packet of type `cmd` the client receives. */
function nextPacket(client: MqttClient, cmd: string): Promise<any> {
  return new Promise((resolve) => {
    const on = (p: any) => {
      if (p.cmd !== cmd) return
      client.off('packetreceive', on)
      resolve(p)
    }
    client.on('packetreceive', on)
  })
}

/** Connects expecting a refusal; resolves with the CONNACK packet. */
async function refusedConnack(url: string, opts: IClientOptions): Promise<any> {
  let connack: Promise<any> | undefined
  try {
    await connect(url, opts, (c) => {
      connack = nextPacket(c, 'connack')
    })
  } catch {
    return await connack
  }
  throw new Error('expected the CONNACK to refuse')
}

/** Subscribes and resolves with the SUBACK packet (granted codes and properties). */
function suback(client: MqttClient, subs: Record<string, { qos: 0 | 1 | 2 }>): Promise<any> {
  const p = nextPacket(client, 'suback')
  client.subscribe(subs, () => {})
  return p
}

describe('CONNACK', () => {
  it.each([
    ['a name', 'banned', 0x8a, 5],
    ['a number', 0x8a, 0x8a, 5],
    ['quotaExceeded', 'quotaExceeded', 0x97, 3],
    ['serverBusy', 'serverBusy', 0x89, 3],
    ['clientIdentifierNotValid', 'clientIdentifierNotValid', 0x85, 2],
  ] as const)(
    'refuses with the code given as %s, and its reason as Reason String (3.1.1: closest code)',
    async (_, code, v5, v3) => {
      const { url } = await serverWithHooks({
        onClientAuthenticate: () => ({ allow: false, code, reason: 'too many devices' }),
      })
      const ack5 = await refusedConnack(url, { protocolVersion: 5, username: 'u', password: 'p' })
      expect(ack5.reasonCode).toBe(v5)
      expect(ack5.properties?.reasonString).toBe('too many devices')
      const ack4 = await refusedConnack(url, { protocolVersion: 4, username: 'u', password: 'p' })
      expect(ack4.returnCode).toBe(v3)
    },
  )

  it.each([
    ['useAnotherServer', 0x9c],
    ['serverMoved', 0x9d],
  ] as const)('redirects with %s and a Server Reference', async (code, value) => {
    const { url } = await serverWithHooks({
      onClientAuthenticate: () => ({ allow: false, code, serverReference: 'other.example:1883' }),
    })
    const ack = await refusedConnack(url, { protocolVersion: 5, username: 'u', password: 'p' })
    expect(ack.reasonCode).toBe(value)
    expect(ack.properties?.serverReference).toBe('other.example:1883')
    const ack4 = await refusedConnack(url, { protocolVersion: 4, username: 'u', password: 'p' })
    expect(ack4.returnCode).toBe(3) // server unavailable: 3.1.1 has no redirect
  })

  it.each([
    ['a code not valid in a CONNACK', { code: 'topicFilterInvalid' }],
    ['an unknown name', { code: 'nope' }],
    ['an unknown number', { code: 0x42 }],
    ['a success code', { code: 0 }],
    ['a Server Reference without a redirect code', { code: 'notAuthorized', serverReference: 'x:1' }],
  ])('counts %s as a failure and refuses with notAuthorized', async (_, answer) => {
    const { server, url } = await serverWithHooks({
      onClientAuthenticate: () => ({ allow: false, ...answer }) as any,
    })
    const ack = await refusedConnack(url, { protocolVersion: 5, username: 'u', password: 'p' })
    expect(ack.reasonCode).toBe(0x87)
    expect(ack.properties?.serverReference).toBeUndefined()
    expect(server.hookStats.failures).toBe(1)
  })

  it('keeps the default codes when no code is given', async () => {
    const { server, url } = await serverWithHooks({ onClientAuthenticate: () => ({ allow: false }) })
    const ack = await refusedConnack(url, { protocolVersion: 5, username: 'u', password: 'p' })
    expect(ack.reasonCode).toBe(0x86)
    expect(ack.properties?.reasonString).toBeUndefined()
    expect(server.hookStats.failures).toBe(0)
  })
})

describe('SUBACK', () => {
  it('denies each filter with its own code; the reasons become the Reason String (3.1.1: 0x80)', async () => {
    const { url } = await serverWithHooks({
      onClientAuthenticate: () => ({ allow: true }),
      onClientSubscribeAuthorize: (_s, sub) => {
        if (sub.topicFilter === 'quota') return { allow: false, code: 'quotaExceeded', reason: 'too many' }
        if (sub.topicFilter === 'bad/#') return { allow: false, code: 0x8f, reason: 'no wildcards here' }
        return { allow: true }
      },
    })
    const c5 = await connect(url, { protocolVersion: 5, username: 'u', password: 'p' })
    const ack5 = await suback(c5, { quota: { qos: 1 }, 'bad/#': { qos: 0 }, ok: { qos: 1 } })
    expect(ack5.granted).toEqual([0x97, 0x8f, 1])
    expect(ack5.properties?.reasonString).toBe('too many; no wildcards here')

    const c4 = await connect(url, { protocolVersion: 4, username: 'u', password: 'p' })
    const ack4 = await suback(c4, { quota: { qos: 1 }, ok: { qos: 1 } })
    expect(ack4.granted).toEqual([0x80, 1])
  })

  it('counts a code not valid in a SUBACK as a failure and denies with 0x87', async () => {
    const { server, url } = await serverWithHooks({
      onClientAuthenticate: () => ({ allow: true }),
      onClientSubscribeAuthorize: () => ({ allow: false, code: 'banned' }),
    })
    const c = await connect(url, { protocolVersion: 5, username: 'u', password: 'p' })
    expect((await suback(c, { t: { qos: 0 } })).granted).toEqual([0x87])
    expect(server.hookStats.failures).toBe(1)
  })
})

describe('Maximum Packet Size', () => {
  it('leaves out a Reason String that would make the packet larger than the client allows [MQTT-3.2.2-19, MQTT-3.9.2-1]', async () => {
    const long = 'x'.repeat(200)
    const { url } = await serverWithHooks({
      onClientAuthenticate: (req) =>
        req.username === 'in' ? { allow: true } : { allow: false, code: 'banned', reason: long },
      onClientSubscribeAuthorize: () => ({ allow: false, code: 'quotaExceeded', reason: long }),
    })
    const small = { protocolVersion: 5, properties: { maximumPacketSize: 64 } } as const
    const ack = await refusedConnack(url, { ...small, username: 'out', password: 'p' })
    expect(ack.reasonCode).toBe(0x8a)
    expect(ack.properties?.reasonString).toBeUndefined()
    const c = await connect(url, { ...small, username: 'in', password: 'p' })
    const sub = await suback(c, { t: { qos: 0 } })
    expect(sub.granted).toEqual([0x97])
    expect(sub.properties?.reasonString).toBeUndefined()
    // Control: with room for it, the same Reason String is sent.
    const roomy = await connect(url, { protocolVersion: 5, username: 'in', password: 'p' })
    expect((await suback(roomy, { t: { qos: 0 } })).properties?.reasonString).toBe(long)
  })
})

describe('Request Problem Information 0', () => {
  it.each([1, 2] as const)(
    'MQTT-3.1.2-29: no Reason String on SUBACK or a QoS %s acknowledgement; the codes still come, and a client that asks gets them',
    async (qos) => {
      const { url } = await serverWithHooks({
        onClientAuthenticate: () => ({ allow: true }),
        onClientSubscribeAuthorize: () => ({ allow: false, code: 'quotaExceeded', reason: 'no subscriptions' }),
        onClientPublishAuthorize: () => ({ allow: false, code: 'quotaExceeded', reason: 'no publishing' }),
      })
      const ackCmd = qos === 1 ? 'puback' : 'pubrec'
      const quiet = await connect(url, {
        protocolVersion: 5,
        username: 'u',
        password: 'p',
        properties: { requestProblemInformation: false },
      })
      const sub = await suback(quiet, { t: { qos: 0 } })
      expect(sub.granted).toEqual([0x97])
      expect(sub.properties?.reasonString).toBeUndefined()
      const ack = nextPacket(quiet, ackCmd)
      await expect(quiet.publishAsync('t', 'x', { qos })).rejects.toMatchObject({ code: 0x97 })
      expect((await ack).properties?.reasonString).toBeUndefined()

      // Control: the default (1) gets both Reason Strings.
      const asks = await connect(url, { protocolVersion: 5, username: 'u', password: 'p' })
      expect((await suback(asks, { t: { qos: 0 } })).properties?.reasonString).toBe('no subscriptions')
      const ack2 = nextPacket(asks, ackCmd)
      await expect(asks.publishAsync('t', 'x', { qos })).rejects.toMatchObject({ code: 0x97 })
      expect((await ack2).properties?.reasonString).toBe('no publishing')
    },
  )
})

describe('PUBACK / PUBREC / DISCONNECT', () => {
  it.each([1, 2] as const)('denies a QoS %s PUBLISH with its code and reason', async (qos) => {
    const { url } = await serverWithHooks({
      onClientAuthenticate: () => ({ allow: true }),
      onClientPublishAuthorize: (_s, m) =>
        m.topic === 'full' ? { allow: false, code: 'quotaExceeded', reason: 'daily quota used' } : { allow: true },
    })
    const pub = await connect(url, { protocolVersion: 5, username: 'u', password: 'p' })
    const ack = nextPacket(pub, qos === 1 ? 'puback' : 'pubrec')
    await expect(pub.publishAsync('full', 'x', { qos })).rejects.toMatchObject({ code: 0x97 })
    expect((await ack).properties?.reasonString).toBe('daily quota used')
  })

  it('disconnects with the code and reason of a denial with disconnect: true', async () => {
    const { url } = await serverWithHooks({
      onClientAuthenticate: () => ({ allow: true }),
      onClientPublishAuthorize: () => ({
        allow: false,
        code: 'payloadFormatInvalid',
        reason: 'not JSON',
        disconnect: true,
      }),
    })
    const pub = await connect(url, { protocolVersion: 5, username: 'u', password: 'p' })
    pub.on('error', () => {})
    const disconnect = waitFor<[any]>(pub, 'disconnect')
    const closed = waitFor(pub, 'close')
    pub.publish('t', 'x', { qos: 1 })
    const [packet] = await disconnect
    await closed
    expect(packet.reasonCode).toBe(0x99)
    expect(packet.properties?.reasonString).toBe('not JSON')
  })

  it('counts a code not valid in a PUBACK as a failure, denies with 0x87 and routes nothing', async () => {
    const { server, url } = await serverWithHooks({
      onClientAuthenticate: () => ({ allow: true }),
      onClientPublishAuthorize: (_s, m) =>
        m.topic === 'bad' ? { allow: false, code: 'topicFilterInvalid' } : { allow: true },
    })
    const sub = await connect(url, { protocolVersion: 5, username: 'u', password: 'p' })
    await subscribe(sub, '#', 1)
    const box = inbox(sub)
    const pub = await connect(url, { protocolVersion: 5, username: 'u', password: 'p' })
    await expect(pub.publishAsync('bad', 'x', { qos: 1 })).rejects.toMatchObject({ code: 0x87 })
    expect(server.hookStats.failures).toBe(1)
    expect(await drain(box, pub, 'after')).toEqual([])
  })
})
