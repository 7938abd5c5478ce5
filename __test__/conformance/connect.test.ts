/**
 * Conformance: CONNECT and CONNACK (MQTT 5.0 3.1, 3.2; MQTT 3.1.1 3.1, 3.2).
 * Raw clients: the tests send what mqtt.js will not (wrong names, levels,
 * client ids) and read the CONNACK's bytes. Test names start with the
 * statement id.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { listener, startServer } from '../helpers'
import {
  CONNACK,
  connectPacket,
  DISCONNECT,
  decodeConnack,
  nextPublish,
  PINGRESP,
  packet,
  prop,
  propValue,
  props,
  publishes,
  publishPacket,
  rawConnect,
  rawSession,
  rawSubscribe,
  str,
  u16,
  type Version,
} from '../raw'
import { label, pick, teardown } from './spec'

afterEach(teardown)

describe.each([4, 5] as Version[])('MQTT %s CONNECT', (v) => {
  const name = label(v)

  it(`${name}: MQTT-3.1.0-1 MQTT-4.8.0-1: a first packet other than CONNECT is closed without a CONNACK`, async () => {
    const { listeners } = await startServer()
    const c = await rawConnect(listeners[0])
    await c.write(publishPacket(v, 'a', 'x'))
    await c.waitClosed()
    expect(c.packets()).toEqual([])
  })

  it(`${name}: ${pick(v, 'MQTT-3.1.0-2 MQTT-3.2.0-2', 'MQTT-3.1.0-2')}: a second CONNECT closes the connection, with no second CONNACK`, async () => {
    const { listeners } = await startServer()
    const c = await rawSession(listeners[0], v)
    await c.write(connectPacket({ version: v, clientId: 'again' }))
    await c.waitClosed()
    const types = c.packets().map((p) => p.type)
    expect(types.filter((t) => t === CONNACK)).toHaveLength(1)
    // 5.0: DISCONNECT 0x82 Protocol Error before the close.
    if (v === 5) expect(c.packets().find((p) => p.type === DISCONNECT)?.body[0]).toBe(0x82)
  })

  it(`${name}: MQTT-3.1.2-1: a protocol name other than "MQTT" is closed, at most after a refusing CONNACK`, async () => {
    const { listeners } = await startServer()
    const c = await rawConnect(listeners[0])
    await c.write(packet(0x10, str('MQTX'), Buffer.from([v, 0x02]), u16(60), ...(v === 5 ? [props()] : []), str('c')))
    await c.waitClosed()
    for (const p of c.packets()) {
      expect(p.type).toBe(CONNACK)
      expect(p.body[1]).not.toBe(0)
    }
  })

  it(`${name}: ${pick(v, 'MQTT-3.1.4-5 MQTT-3.2.2-1 MQTT-3.2.2-2', 'MQTT-3.1.4-4 MQTT-3.2.2-1')} MQTT-3.2.0-1 MQTT-3.1.3-5 MQTT-3.12.4-1: CONNACK 0x00 with reserved flags 0 comes first, then PINGRESP; a 23 character client id of [0-9a-zA-Z] is accepted`, async () => {
    const { listeners } = await startServer()
    const c = await rawConnect(listeners[0])
    await c.write(Buffer.concat([connectPacket({ version: v, clientId: 'aZ09aZ09aZ09aZ09aZ09aZ0' }), packet(0xc0)]))
    await c.next(PINGRESP)
    const [first] = c.packets()
    expect(first.type).toBe(CONNACK)
    const ack = decodeConnack(first, v)
    expect([ack.ackFlags, ack.code]).toEqual([0, 0])
  })

  it(`${name}: ${pick(v, 'MQTT-3.1.4-2 MQTT-3.2.2-6 MQTT-3.2.2-7 MQTT-3.2.2-8 MQTT-4.13.2-1 MQTT-3.14.0-1 MQTT-3.1.4-6', 'MQTT-3.2.2-4 MQTT-3.2.2-5 MQTT-3.1.4-5')}: a refused CONNECT gets a refusing CONNACK with Session Present 0, then the close; nothing sent after it is processed`, async () => {
    const { listeners } = await startServer([listener('tcp'), listener('tcp', { allowAnonymous: false })])
    const watcher = await rawSession(listeners[0], 5)
    await rawSubscribe(watcher, 5, 1, [['#', 0]])
    const c = await rawConnect(listeners[1])
    await c.write(
      Buffer.concat([
        connectPacket({ version: v, clientId: `refused-${v}`, flags: 0x00 }),
        publishPacket(v, 'sneaked/in', 'x'),
      ]),
    )
    await c.waitClosed()
    const ps = c.packets()
    expect(ps.map((p) => p.type)).toEqual([CONNACK])
    const ack = decodeConnack(ps[0], v)
    expect(ack.sessionPresent).toBe(false)
    expect(ack.code).toBe(v === 5 ? 0x87 : 0x05)
    // A publish after the refusal never reached the watcher.
    const pub = await rawSession(listeners[0], 5)
    await pub.write(publishPacket(5, 'sentinel', 's'))
    await nextPublish(watcher, 'sentinel')
    expect(publishes(watcher).map((p) => p.topic)).toEqual(['sentinel'])
  })
})

describe('MQTT 5.0 CONNECT', () => {
  it('MQTT-3.1.2-2: an unsupported protocol version gets CONNACK 0x84 (or the 3.1.1 0x01), then the close', async () => {
    const { listeners } = await startServer()
    const c = await rawConnect(listeners[0])
    await c.write(packet(0x10, str('MQTT'), Buffer.from([6, 0x02]), u16(60), props(), str('c')))
    await c.waitClosed()
    const acks = c.packets().filter((p) => p.type === CONNACK)
    expect(acks).toHaveLength(1)
    expect([0x84, 0x01]).toContain(acks[0].body[1])
  })

  it('MQTT-3.1.3-6 MQTT-3.1.3-7 MQTT-3.2.2-16: an empty client id is assigned a unique one, returned in CONNACK, and used for the session', async () => {
    const { listeners } = await startServer()
    const assigned: string[] = []
    for (let i = 0; i < 3; i++) {
      const c = await rawSession(listeners[0], 5, { clientId: '' })
      const id = propValue<string>(decodeConnack(await c.next(CONNACK)).props, 0x12)
      expect(typeof id).toBe('string')
      assigned.push(id as string)
    }
    expect(new Set(assigned).size).toBe(3)
    expect(assigned.every((id) => id.length > 0)).toBe(true)
  })

  it('MQTT-4.12.0-1 MQTT-4.13.2-1: an Authentication Method the broker does not support: CONNACK 0x8C (or 0x87), then the close', async () => {
    const { listeners } = await startServer()
    const c = await rawConnect(listeners[0])
    await c.write(
      connectPacket({ version: 5, clientId: 'a', properties: props(prop.authenticationMethod('SCRAM-SHA-1')) }),
    )
    await c.waitClosed()
    const acks = c.packets().map((p) => decodeConnack(p))
    expect(acks).toHaveLength(1)
    expect([0x8c, 0x87]).toContain(acks[0].code)
  })

  it('MQTT-3.1.2-28: without Request Response Information there is no Response Information in CONNACK', async () => {
    const { listeners } = await startServer()
    for (const properties of [props(), props(prop.requestResponseInformation(0))]) {
      const c = await rawSession(listeners[0], 5, { properties })
      expect(propValue(decodeConnack(await c.next(CONNACK)).props, 0x1a)).toBeUndefined()
    }
  })

  it('MQTT-3.1.2-9 MQTT-3.1.2-17 MQTT-3.1.2-19 MQTT-3.1.4-1: a will, user name or password announced by a flag but missing is malformed: CONNACK 0x81 or a plain close', async () => {
    const { listeners } = await startServer()
    for (const flags of [0x02 | 0x04, 0x02 | 0x80, 0x02 | 0x40]) {
      const c = await rawConnect(listeners[0])
      await c.write(connectPacket({ version: 5, flags, clientId: 'c' }))
      await c.waitClosed()
      for (const p of c.packets()) expect([p.type, p.body[1]]).toEqual([CONNACK, 0x81])
    }
  })

  it('MQTT-3.1.2-16 MQTT-3.1.2-18: bytes after the client id that no flag announces are malformed: CONNACK 0x81 or a plain close', async () => {
    const { listeners } = await startServer()
    const c = await rawConnect(listeners[0])
    await c.write(connectPacket({ version: 5, clientId: 'c', rest: [str('user'), str('pass')] }))
    await c.waitClosed()
    for (const p of c.packets()) expect([p.type, p.body[1]]).toEqual([CONNACK, 0x81])
  })

  it('MQTT-3.1.3-4 MQTT-3.1.3-11 MQTT-3.1.3-12: invalid UTF-8 in the client id, will topic or user name: CONNACK 0x81 or a plain close', async () => {
    const { listeners } = await startServer()
    const bad = Buffer.from([0x61, 0xc3, 0x28])
    const cases = [
      { clientId: bad, flags: 0x02, rest: [] },
      { clientId: 'c', flags: 0x02 | 0x04, rest: [props(), str(bad), str('w')] },
      { clientId: 'c', flags: 0x02 | 0x80, rest: [str(bad)] },
    ]
    for (const f of cases) {
      const c = await rawConnect(listeners[0])
      await c.write(connectPacket({ version: 5, ...f }))
      await c.waitClosed()
      for (const p of c.packets()) expect([p.type, p.body[1]]).toEqual([CONNACK, 0x81])
    }
  })
})

describe('MQTT 3.1.1 CONNECT', () => {
  it('MQTT-3.1.2-2 (3.1.1): an unsupported protocol level gets CONNACK 0x01, then the close', async () => {
    const { listeners } = await startServer()
    const c = await rawConnect(listeners[0])
    await c.write(packet(0x10, str('MQTT'), Buffer.from([7, 0x02]), u16(60), str('c')))
    await c.waitClosed()
    expect(c.packets().map((p) => [p.type, p.body[1]])).toEqual([[CONNACK, 0x01]])
  })

  it('MQTT-3.1.3-6 MQTT-3.1.3-8 MQTT-3.2.2-4 MQTT-3.2.2-5 (3.1.1): an empty client id is accepted with CleanSession 1, refused with 0x02 and closed with CleanSession 0', async () => {
    const { listeners } = await startServer()
    await rawSession(listeners[0], 4, { clientId: '', flags: 0x02 })
    await rawSession(listeners[0], 4, { clientId: '', flags: 0x02 })
    const c = await rawConnect(listeners[0])
    await c.write(connectPacket({ version: 4, clientId: '', flags: 0x00 }))
    await c.waitClosed()
    expect(c.packets().map((p) => [p.type, p.body[0], p.body[1]])).toEqual([[CONNACK, 0, 0x02]])
  })

  it('MQTT-3.1.2-9 MQTT-3.1.2-19 MQTT-3.1.2-21 MQTT-3.1.2-18 MQTT-3.1.2-20 MQTT-3.1.2-11 MQTT-3.1.4-1 MQTT-3.2.2-6 (3.1.1): missing or unannounced will, user name or password fields: closed without a CONNACK', async () => {
    const { listeners } = await startServer()
    const cases: Array<[number, Buffer[]]> = [
      [0x02 | 0x04, []],
      [0x02 | 0x80, []],
      [0x02 | 0x80 | 0x40, [str('u')]],
      [0x02, [str('u'), str('p')]],
      [0x02, [str('will/t'), str('w')]],
    ]
    for (const [flags, rest] of cases) {
      const c = await rawConnect(listeners[0])
      await c.write(connectPacket({ version: 4, flags, clientId: 'c', rest }))
      await c.waitClosed()
      expect(c.packets()).toEqual([])
    }
  })

  it('MQTT-3.1.3-4 MQTT-3.1.3-10 MQTT-3.1.3-11 (3.1.1): invalid UTF-8 in the client id, will topic or user name: closed without a CONNACK', async () => {
    const { listeners } = await startServer()
    const bad = Buffer.from([0x61, 0xc3, 0x28])
    const cases = [
      { clientId: bad, flags: 0x02, rest: [] },
      { clientId: 'c', flags: 0x02 | 0x04, rest: [str(bad), str('w')] },
      { clientId: 'c', flags: 0x02 | 0x80, rest: [str(bad)] },
    ]
    for (const f of cases) {
      const c = await rawConnect(listeners[0])
      await c.write(connectPacket({ version: 4, ...f }))
      await c.waitClosed()
      expect(c.packets()).toEqual([])
    }
  })
})
