/**
 * Conformance: topic names, topic filters and matching (MQTT 5.0 1.5.4, 4.7;
 * MQTT 3.1.1 1.5.3, 4.7). Test names start with the statement ids.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { startServer } from '../helpers'
import {
  DISCONNECT,
  decodeDisconnect,
  nextPublish,
  publishes,
  publishPacket,
  rawSession,
  rawSubscribe,
  type Version,
} from '../raw'
import { label, teardown } from './spec'

afterEach(teardown)

describe.each([4, 5] as Version[])('MQTT %s topics', (v) => {
  const name = label(v)
  const ids =
    v === 5
      ? 'MQTT-4.7.1-1 MQTT-4.7.1-2 MQTT-4.7.3-1 MQTT-4.7.3-2 MQTT-3.8.4-7'
      : 'MQTT-4.7.1-2 MQTT-4.7.1-3 MQTT-4.7.3-1 MQTT-4.7.3-2 MQTT-3.8.4-5'

  it(`${name}: ${ids}: misplaced '#' or '+', an empty filter or U+0000 are refused in SUBACK (or the connection closed); valid neighbours are granted`, async () => {
    const { listeners } = await startServer()
    const filters = ['a/#/b', 'a#', 'a/b+', '+a/b', '', 'a\u0000b']
    for (const f of filters) {
      const c = await rawSession(listeners[0], v)
      try {
        const ack = await rawSubscribe(c, v, 1, [
          ['ok/+/x', 0],
          [f, 0],
          ['ok/#', 0],
        ])
        expect(ack.codes[0], f).toBe(0)
        expect(ack.codes[1], f).toBeGreaterThanOrEqual(0x80)
        expect(ack.codes[2], f).toBe(0)
      } catch {
        // Closing instead is allowed: but then it must be closed.
        await c.waitClosed()
      }
    }
  })

  it(`${name}: MQTT-4.7.2-1: '#' and '+/...' do not match topics starting with '$'; a filter starting with '$' does`, async () => {
    const { listeners, server } = await startServer()
    const c = await rawSession(listeners[0], v)
    await rawSubscribe(c, v, 1, [
      ['#', 0],
      ['+/dollar', 0],
    ])
    const explicit = await rawSession(listeners[0], v)
    await rawSubscribe(explicit, v, 1, [['$app/+', 0]])
    await server.publish('$app/dollar', 'hidden')
    await server.publish('zz/sentinel', 's')
    expect((await nextPublish(explicit, '$app/dollar', v)).payload.toString()).toBe('hidden')
    await nextPublish(c, 'zz/sentinel', v)
    expect(publishes(c, v).map((p) => p.topic)).toEqual(['zz/sentinel'])
  })

  it(`${name}: ${v === 5 ? 'MQTT-4.7.3-4 MQTT-1.5.4-3' : 'MQTT-4.7.3-4 MQTT-1.5.3-3'}: matching is byte for byte: no case folding, no Unicode normalization, a BOM kept`, async () => {
    const { listeners } = await startServer()
    const c = await rawSession(listeners[0], v)
    await rawSubscribe(c, v, 1, [
      ['caf\u00e9/x', 0],
      ['Case/x', 0],
      ['\ufeffbom/x', 0],
    ])
    const pub = await rawSession(listeners[0], v)
    for (const t of ['cafe\u0301/x', 'case/x', 'bom/x', 'caf\u00e9/x', 'Case/x', '\ufeffbom/x']) {
      await pub.write(publishPacket(v, t, t))
    }
    await nextPublish(c, '\ufeffbom/x', v)
    expect(publishes(c, v).map((p) => p.topic)).toEqual(['caf\u00e9/x', 'Case/x', '\ufeffbom/x'])
  })

  it(`${name}: ${v === 5 ? 'MQTT-4.7.0-1' : 'MQTT-4.7.1-1'} MQTT-3.3.2-2: a PUBLISH to a topic name with a wildcard is refused (5.0: DISCONNECT 0x90), never routed`, async () => {
    const { listeners } = await startServer()
    const watcher = await rawSession(listeners[0], v)
    await rawSubscribe(watcher, v, 1, [['#', 0]])
    for (const t of ['w/+', 'w/#']) {
      const c = await rawSession(listeners[0], v)
      await c.write(publishPacket(v, t, 'x'))
      await c.waitClosed()
      if (v === 5) expect(decodeDisconnect(await c.next(DISCONNECT)).code).toBe(0x90)
    }
    const pub = await rawSession(listeners[0], v)
    await pub.write(publishPacket(v, 'w/sentinel', 's'))
    await nextPublish(watcher, 'w/sentinel', v)
    expect(publishes(watcher, v).map((p) => p.topic)).toEqual(['w/sentinel'])
  })
})
