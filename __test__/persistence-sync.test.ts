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
import {
  cleanup,
  connect,
  EVENT_TIMEOUT,
  endClient,
  type Inbox,
  inbox,
  killChildren,
  listener,
  removeTempDirs,
  startServer,
  subscribe,
  tempDir,
  track,
} from './helpers'
import { broker, drop, flood } from './kill-flood'
import { decodeAck, PUBACK, publishPacket, rawSession } from './raw'
import { resume, storeQueues, texts } from './sessions'

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
    expect(o.markersMissed, 'connected rounds whose session came back without its subscription').toEqual([])
    expect(o.acknowledged).toBeGreaterThan(20 * 10)
    expect(o.lost, 'messages acknowledged to the publisher and never delivered').toBe(0)
  })

  it('a QoS 2 flood killed 6 times: nothing lost, never a duplicate', { timeout: 60_000 }, async () => {
    const o = await flood(2, 6, 500, { sync: 'always', offline: true })
    expect(o.sentinel, 'the sentinel published after the last restart arrived').toBe(true)
    expect(o.markersMissed, 'connected rounds whose session came back without its subscription').toEqual([])
    expect(o.acknowledged).toBeGreaterThan(6 * 10)
    expect(o.lost, 'messages acknowledged to the publisher and never delivered').toBe(0)
    expect(o.duplicates).toBe(0)
  })
})

describe("storage.sync: 'always' while a restart reads the stored queues", () => {
  it('a publish to a restored offline session is acknowledged only once stored: a kill -9 right after its PUBACK loses nothing', {
    timeout: 90_000,
  }, async () => {
    const path = tempDir()
    const config = { listeners: [listener('tcp', { maxMqueueLen: 1_000_000 })], storage: { path } }
    // Reading 20,000 stored messages takes tens of ms after start()
    // resolves: the publish below reaches the session before its loop runs,
    // while its stored queue is still being read (without the fix its
    // PUBACK came at once and the message was lost).
    const session = { clientId: 'sync-loading', clean: false }
    const stored = await storeQueues(config, [session.clientId], 'q', 20_000)
    const child = broker(path, 'always')
    const [, port] = await child.stdoutMatch(/port (\d+)/, 15_000)
    const pub = await connect(`mqtt://127.0.0.1:${port}`)
    await pub.publishAsync('q/x', 'after', { qos: 1 })
    child.child.kill('SIGKILL')
    expect((await child.exit(15_000)).signal).toBe('SIGKILL')
    drop(pub)

    const { url } = await startServer(config)
    const { box } = await resume(url, session)
    expect(await texts(box, stored.length + 1)).toEqual([...stored, 'after'])
  })
})

describe("storage.sync: 'always' in a running broker", () => {
  it('held and immediate PUBACKs go out in PUBLISH order, and the held messages reach the session', async () => {
    const { server, listeners, url } = await startServer({
      listeners: [listener('tcp')],
      storage: { path: tempDir(), sync: 'always' },
    })
    const session = { clientId: 'sync-order', clean: false, protocolVersion: 4 as const }
    const sub = await connect(url, session)
    await subscribe(sub, 'held/#', 1)
    await endClient(sub)
    // Only a session in its offline loop holds acknowledgements; the broker
    // sees the disconnect a little after the client's end.
    const deadline = Date.now() + EVENT_TIMEOUT
    while ((await server.client('sync-order'))?.connected !== false) {
      if (Date.now() > deadline) throw new Error('the session never went offline')
      await new Promise((r) => setTimeout(r, 20))
    }
    // Odd packet ids reach the offline session (held until flushed), even
    // ones reach nobody (acknowledged at once, but not before the earlier).
    const pub = await rawSession(listeners[0], 4)
    const N = 40
    // In one write: the broker reads them together, held and not.
    await pub.write(
      Buffer.concat(
        Array.from({ length: N }, (_, i) =>
          publishPacket(4, (i + 1) % 2 ? 'held/x' : 'free/x', String(i + 1), { packetId: i + 1 }),
        ),
      ),
    )
    const acks = (await pub.count(PUBACK, N)).map((p) => decodeAck(p, 4).packetId)
    expect(acks).toEqual(Array.from({ length: N }, (_, i) => i + 1))
    let got: Inbox | undefined
    await connect(url, session, (c) => {
      got = inbox(c)
    })
    const payloads: string[] = []
    for (let i = 0; i < N / 2; i++) payloads.push((await got!.next()).payload.toString())
    expect(payloads).toEqual(Array.from({ length: N / 2 }, (_, i) => String(2 * i + 1)))
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
