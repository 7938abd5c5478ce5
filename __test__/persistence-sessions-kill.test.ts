/**
 * Durability of persistent sessions under kill -9: a QoS 1 flood into a
 * persistent session, the broker (a child process) killed with SIGKILL at a
 * random moment, 20 times over; then every message the broker acknowledged
 * to its publisher (PUBACK received) must reach the subscriber. Duplicates
 * are allowed for QoS 1 and counted. The figures are printed for
 * docs/persistence.md.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, killChildren, removeTempDirs } from './helpers'
import { LOSS_WINDOW_MS, flood } from './kill-flood'

afterEach(async () => {
  killChildren()
  await cleanup()
  removeTempDirs()
})

const KILLS = 20

describe('persistent sessions under kill -9', () => {
  it(`a QoS 1 flood killed ${KILLS} times: the session survives, only messages acknowledged within the loss window are lost`, {
    timeout: 90_000,
  }, async () => {
    const o = await flood(1, KILLS, 4000)
    expect(o.sentinel, 'the sentinel published after the last restart arrived').toBe(true)
    expect(o.markersMissed, 'connected rounds whose session came back without its subscription').toEqual([])
    expect(o.acknowledged).toBeGreaterThan(KILLS * 10)
    // The documented window (docs/persistence.md): sled writes its log out
    // every 500 ms; a message stored for an offline subscriber and
    // acknowledged longer ago than that (with room for a busy machine) must
    // have survived. A connected subscriber's queue is in memory only
    // (documented): its losses are counted, not bounded.
    expect(o.offlineWindow).toBeLessThan(LOSS_WINDOW_MS)
  })

  it('a QoS 2 flood killed 6 times: never a duplicate', { timeout: 60_000 }, async () => {
    const o = await flood(2, 6, 500)
    expect(o.sentinel, 'the sentinel published after the last restart arrived').toBe(true)
    expect(o.markersMissed, 'connected rounds whose session came back without its subscription').toEqual([])
    expect(o.duplicates).toBe(0)
    expect(o.offlineWindow).toBeLessThan(LOSS_WINDOW_MS)
  })
})
