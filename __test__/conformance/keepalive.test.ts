/**
 * Conformance: the Keep Alive timeout (MQTT 5.0 3.1.2.10, 3.2.2.3.14; MQTT
 * 3.1.1 3.1.2.10). The broker closes a connection that sent nothing for 1.5 x
 * the Keep Alive, and not before. Raw clients, so nothing pings on its own.
 * Test names start with the statement id.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { startServer } from '../helpers'
import { CONNACK, decodeConnack, packet, PINGRESP, propValue, rawSession, type Version } from '../raw'
import { label, pick, teardown } from './spec'

afterEach(teardown)

/** CONNACK's Server Keep Alive property (5.0). */
const SERVER_KEEP_ALIVE = 0x13
/** How late the close may come on a busy machine (upstream's `ka + 3` is later for 1 s and 2 s). */
const LATE_MS = 1000
/** How early: the client reads the CONNACK a little after the broker starts its timer. */
const EARLY_MS = 100

describe.each([4, 5] as Version[])('MQTT %s Keep Alive', (v) => {
  const name = label(v)
  const ids = pick(v, 'MQTT-3.1.2-22 MQTT-3.2.2-22', 'MQTT-3.1.2-24')

  it.each([1, 2])(
    `${name}: ${ids}: Keep Alive %i s and no packet after CONNACK: closed after 1.5 x, not later`,
    async (ka) => {
      const { listeners } = await startServer()
      const c = await rawSession(listeners[0], v, { keepAlive: ka })
      const acked = performance.now()
      // 5.0: the Server Keep Alive, if sent, is the client's own value.
      const serverKa = propValue<number>(decodeConnack(await c.next(CONNACK), v).props, SERVER_KEEP_ALIVE)
      expect(serverKa ?? ka).toBe(ka)
      const timeout = ka * 1500
      await c.waitClosed(timeout + LATE_MS)
      const closedAfter = performance.now() - acked
      expect(closedAfter).toBeGreaterThanOrEqual(timeout - EARLY_MS)
      expect(closedAfter).toBeLessThanOrEqual(timeout + LATE_MS)
    },
  )

  it(`${name}: ${ids}: Keep Alive 1 s and a PINGREQ every 1.2 s: still connected after 5 s`, async () => {
    const { listeners } = await startServer()
    const c = await rawSession(listeners[0], v, { keepAlive: 1 })
    const start = performance.now()
    let sent = 0
    // Paced by the time of the previous PINGREQ, not its PINGRESP, so a slow
    // answer does not stretch the gaps the broker sees.
    let last = start
    while (performance.now() - start < 5000) {
      await new Promise((r) => setTimeout(r, Math.max(0, 1200 - (performance.now() - last))))
      last = performance.now()
      expect(c.isClosed, `closed ${Math.round(last - start)} ms after CONNACK`).toBe(false)
      await c.write(packet(0xc0))
      sent++
    }
    await c.count(PINGRESP, sent)
    // Still open: one more round trip answers.
    await c.ping()
    expect(c.isClosed).toBe(false)
  })
})
