/**
 * `storage.sync: 'always'`: a publisher's PUBACK (QoS 1) / PUBREC (QoS 2)
 * is sent only once the offline persistent sessions its message was routed
 * to have it on disk. So after kill -9 at random moments of a flood, every
 * message the publisher saw acknowledged reaches the subscriber: none lost,
 * QoS 1 duplicates counted, none for QoS 2. The control is the 'interval'
 * test of persistence-sessions-kill.test.ts (messages acknowledged in the
 * last ~0.5 s lost); docs/persistence.md.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { MqttServer } from '../index.js'
import { cleanup, killChildren, removeTempDirs, tempDir, track } from './helpers'
import { flood } from './kill-flood'

afterEach(async () => {
  killChildren()
  await cleanup()
  removeTempDirs()
})

describe("storage.sync: 'always' under kill -9", () => {
  it('a QoS 1 flood into an offline persistent session killed 20 times: nothing acknowledged is lost', {
    timeout: 90_000,
  }, async () => {
    const o = await flood(1, 20, 4000, { sync: 'always', offline: true })
    expect(o.sentinel, 'the sentinel published after the last restart arrived').toBe(true)
    expect(o.acknowledged).toBeGreaterThan(20 * 10)
    expect(o.lost, 'messages acknowledged to the publisher and never delivered').toBe(0)
  })

  it('a QoS 2 flood killed 6 times: nothing lost, never a duplicate', { timeout: 60_000 }, async () => {
    const o = await flood(2, 6, 500, { sync: 'always', offline: true })
    expect(o.sentinel, 'the sentinel published after the last restart arrived').toBe(true)
    expect(o.acknowledged).toBeGreaterThan(6 * 10)
    expect(o.lost, 'messages acknowledged to the publisher and never delivered').toBe(0)
    expect(o.duplicates).toBe(0)
  })
})

describe('storage.sync is checked at start()', () => {
  it.each([
    [
      'a bad value',
      { path: '.', sync: 'sometimes' },
      /^storage\.sync: must be 'always' or 'interval', not "sometimes"$/,
    ],
    [
      'with storage.redis',
      { redis: 'redis://127.0.0.1:1', sync: 'always' },
      /^storage\.sync: only with storage\.path; with storage\.redis, durability is the Redis server's own setting/,
    ],
  ])('%s is refused naming storage.sync', async (_what, storage, message) => {
    const server = track(new MqttServer())
    const path = tempDir()
    const s = 'path' in storage ? { ...storage, path } : storage
    const err = await server
      .start({ listeners: [{ protocol: 'tcp', port: 0, address: '127.0.0.1' }], storage: s as never })
      .catch((e: Error & { code?: string }) => e)
    expect((err as Error & { code?: string }).code).toBe('InvalidArg')
    expect((err as Error).message).toMatch(message)
    expect(server.running).toBe(false)
  })
})
