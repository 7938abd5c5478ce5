/**
 * Conformance: malformed packets and Protocol Errors after CONNACK are
 * answered with the reason code the spec gives (5.0: DISCONNECT, then the
 * close) or closed (3.1.1), and never acted on (MQTT 5.0 2.1.3, 3.x.1, 4.13;
 * MQTT 3.1.1 2.2.2, 4.8). Raw packets: mqtt.js cannot send them. Test names
 * start with the statement ids.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { startServer } from '../helpers'
import {
  DISCONNECT,
  decodeDisconnect,
  nextPublish,
  packet,
  prop,
  props,
  publishes,
  publishPacket,
  rawSession,
  rawSubscribe,
  str,
  u16,
  type Version,
} from '../raw'
import { teardown } from './spec'

afterEach(teardown)

const bad = Buffer.from([0x61, 0xc3, 0x28])
const body5 = (v: Version) => (v === 5 ? [props()] : [])

// [what, the 5.0 ids, the 3.1.1 ids, the bytes, the 5.0 reason codes
// accepted (0x81 Malformed Packet, 0x82 Protocol Error: the spec names one,
// rmqtt's decoder may classify the same fault as the other)]
type Case = [string, string, string, (v: Version) => Buffer, number[]]
const cases: Case[] = [
  ['PUBLISH with QoS 3', 'MQTT-3.3.1-4', 'MQTT-3.3.1-4', (v) => packet(0x36, str('t'), u16(1), ...body5(v)), [0x81]],
  [
    'PUBREL with flags 0000',
    'MQTT-3.6.1-1 MQTT-2.1.3-1',
    'MQTT-3.6.1-1 MQTT-2.2.2-1 MQTT-2.2.2-2',
    () => packet(0x60, u16(1)),
    [0x81],
  ],
  [
    'SUBSCRIBE with flags 0000',
    'MQTT-3.8.1-1 MQTT-2.1.3-1',
    'MQTT-3.8.1-1 MQTT-2.2.2-2',
    (v) => packet(0x80, u16(1), ...body5(v), str('t'), Buffer.from([0])),
    [0x81],
  ],
  [
    'UNSUBSCRIBE with flags 0000',
    'MQTT-3.10.1-1',
    'MQTT-3.10.1-1',
    (v) => packet(0xa0, u16(1), ...body5(v), str('t')),
    [0x81],
  ],
  ['PINGREQ with flags 0001', 'MQTT-2.1.3-1', 'MQTT-2.2.2-2', () => packet(0xc1), [0x81]],
  [
    'SUBSCRIBE without a filter',
    'MQTT-3.8.3-2',
    'MQTT-3.8.3-3',
    (v) => packet(0x82, u16(1), ...body5(v)),
    [0x81, 0x82],
  ],
  [
    'UNSUBSCRIBE without a filter',
    'MQTT-3.10.3-2',
    'MQTT-3.10.3-2',
    (v) => packet(0xa2, u16(1), ...body5(v)),
    [0x81, 0x82],
  ],
  [
    'SUBSCRIBE with a filter of invalid UTF-8',
    'MQTT-3.8.3-1 MQTT-1.5.4-1',
    'MQTT-3.8.3-1 MQTT-1.5.3-1',
    (v) => packet(0x82, u16(1), ...body5(v), str(bad), Buffer.from([0])),
    [0x81],
  ],
  [
    'UNSUBSCRIBE with a filter of invalid UTF-8',
    'MQTT-3.10.3-1',
    'MQTT-3.10.3-1',
    (v) => packet(0xa2, u16(1), ...body5(v), str(bad)),
    [0x81],
  ],
  ['PUBLISH with a topic of invalid UTF-8', 'MQTT-3.3.2-1', 'MQTT-3.3.2-1', (v) => publishPacket(v, bad, 'x'), [0x81]],
  [
    'SUBSCRIBE with reserved option bits set',
    'MQTT-3.8.3-5',
    'MQTT-3.8.3-4',
    (v) => packet(0x82, u16(1), ...body5(v), str('t'), Buffer.from([0xc0])),
    [0x81],
  ],
  [
    'SUBSCRIBE asking QoS 3',
    'MQTT-3.8.3-5',
    'MQTT-3.8.3-4',
    (v) => packet(0x82, u16(1), ...body5(v), str('t'), Buffer.from([3])),
    [0x81],
  ],
  ['DISCONNECT with flags 0001', 'MQTT-3.14.1-1', 'MQTT-3.14.1-1', () => packet(0xe1), [0x81]],
]

// MQTT 5 only: properties.
const cases5: Case[] = [
  [
    'a Response Topic of invalid UTF-8',
    'MQTT-3.3.2-13',
    '',
    () => publishPacket(5, 'p/t', 'x', { properties: props(prop.responseTopic(bad)) }),
    [0x81],
  ],
  [
    'a Content Type of invalid UTF-8',
    'MQTT-3.3.2-19',
    '',
    () => publishPacket(5, 'p/t', 'x', { properties: props(prop.contentType(bad)) }),
    [0x81],
  ],
  [
    'a User Property of invalid UTF-8',
    'MQTT-1.5.7-1',
    '',
    () => publishPacket(5, 'p/t', 'x', { properties: props(prop.userProperty('k', bad)) }),
    [0x81],
  ],
  [
    'SUBSCRIBE with Retain Handling 3',
    'MQTT-4.13.1-1',
    '',
    () => packet(0x82, u16(1), props(), str('t'), Buffer.from([0x30])),
    [0x81, 0x82],
  ],
  ['AUTH with flags 0001', 'MQTT-3.15.1-1', '', () => packet(0xf1, Buffer.from([0, 0])), [0x81]],
]

describe('MQTT 5.0 malformed packets and Protocol Errors', () => {
  it.each([...cases, ...cases5])(
    'MQTT 5.0, %s: %s MQTT-4.13.1-1 MQTT-4.13.2-1 MQTT-3.14.2-1: DISCONNECT with the reason code, then the close; nothing routed',
    async (_what, _ids, _ids311, bytes, codes) => {
      const { listeners } = await startServer()
      const watcher = await rawSession(listeners[0], 5)
      await rawSubscribe(watcher, 5, 1, [['#', 0]])
      const c = await rawSession(listeners[0], 5, {
        flags: 0x02 | 0x04,
        rest: [props(), str('will/m'), str('dropped')],
      })
      await c.write(bytes(5))
      await c.waitClosed()
      const d = c.packets().find((p) => p.type === DISCONNECT)
      expect(d, 'a DISCONNECT before the close').toBeDefined()
      expect(codes).toContain(decodeDisconnect(d as NonNullable<typeof d>).code)
      // The will is published (no DISCONNECT 0x00 came from the client);
      // what the bad packet carried is not.
      await nextPublish(watcher, 'will/m')
      expect(publishes(watcher).map((p) => p.topic)).toEqual(['will/m'])
    },
  )
})

describe('MQTT 3.1.1 malformed packets', () => {
  it.each(cases.map(([what, _ids5, ids, bytes, codes]) => [what, ids, bytes, codes] as const))(
    'MQTT 3.1.1, %s: %s MQTT-4.8.0-1 MQTT-3.1.2-8: closed, nothing sent back; the will is published',
    async (_what, _ids, bytes) => {
      const { listeners } = await startServer()
      const watcher = await rawSession(listeners[0], 5)
      await rawSubscribe(watcher, 5, 1, [['#', 0]])
      const c = await rawSession(listeners[0], 4, { flags: 0x02 | 0x04, rest: [str('will/m'), str('dropped')] })
      await c.write(bytes(4))
      await c.waitClosed()
      // The CONNACK only.
      expect(c.packets()).toHaveLength(1)
      await nextPublish(watcher, 'will/m')
      expect(publishes(watcher).map((p) => p.topic)).toEqual(['will/m'])
    },
  )
})
