/**
 * Conformance: MQTT over WebSocket (MQTT 5.0 and 3.1.1 section 6). A raw
 * WebSocket client (`__test__/raw.ts`): frames are built by hand. Test names
 * start with the statement ids.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { listener, startServer } from '../helpers'
import { connectPacket, rawWebSocket, type Version, wsFrame } from '../raw'
import { teardown } from './spec'

afterEach(teardown)

describe.each([4, 5] as Version[])('MQTT %s over WebSocket', (v) => {
  const name = v === 5 ? '5.0' : '3.1.1'

  it(`${name}: MQTT-6.0.0-4 MQTT-6.0.0-2: the broker selects the "mqtt" subprotocol; a CONNECT split over two binary messages is answered`, async () => {
    const { listeners } = await startServer([listener('ws')])
    const c = await rawWebSocket(listeners[0])
    expect(c.upgrade).toMatch(/^sec-websocket-protocol: *mqtt *$/im)
    const connect = connectPacket({ version: v, clientId: `ws-${v}` })
    await c.write(wsFrame(2, connect.subarray(0, 5), true))
    await c.write(wsFrame(2, connect.subarray(5), true))
    // An unmasked binary frame from the server holding the CONNACK.
    const deadline = Date.now() + 5000
    while (!c.received.includes(Buffer.from([0x20])) && Date.now() < deadline && !c.socket.closed) {
      await new Promise((r) => c.socket.once('data', r).once('close', r))
    }
    const frame = c.received
    expect(frame[0]).toBe(0x82)
    const payload = frame.subarray(2, 2 + frame[1])
    expect([payload[0], payload[3]]).toEqual([0x20, 0])
  })

  it(`${name}: MQTT-6.0.0-1: a text frame closes the connection`, async () => {
    const { listeners } = await startServer([listener('ws')])
    const c = await rawWebSocket(listeners[0])
    await c.write(wsFrame(1, connectPacket({ version: v, clientId: `ws-text-${v}` }), true))
    await c.waitClosed()
  })
})
