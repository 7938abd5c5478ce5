/**
 * Flow control cannot let one client slow the others. Publishers are held
 * back while a subscriber of theirs drains (so QoS 1/2 is not dropped for
 * it), but a subscriber that sends nothing for 1 s holds nobody from then on,
 * and a client held as a publisher is not waited for (its session cannot send
 * while it waits), so clients that publish to each other never wait on each
 * other. `flow.test.ts` has the lossless half for subscribers that keep up.
 */
import type { MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, connect, listener, MqttServer, subscribe, track, urlFor } from './helpers'

afterEach(cleanup)

/** Longest a publisher may wait for one acknowledgement here; flow control's own cap is 10 s. */
const ACK_BOUND_MS = 5000

/** A broker that counts the messages it drops, per subscriber. */
async function countingServer() {
  const dropped = new Map<string, number>()
  const server = track(new MqttServer())
  server.setHooks({
    onMessageDropped: (to) => {
      const id = to?.clientId ?? '(none)'
      dropped.set(id, (dropped.get(id) ?? 0) + 1)
    },
  })
  const [info] = await server.start({ listeners: [listener('tcp')] })
  return { server, url: urlFor(info), dropped }
}

/** Publishes `n` QoS 1 messages one after another; resolves with each acknowledgement's wait in ms. */
async function publishInTurn(client: MqttClient, topic: string, n: number, payload: Buffer): Promise<number[]> {
  const waits: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await client.publishAsync(topic, payload, { qos: 1 })
    waits.push(performance.now() - t0)
  }
  return waits
}

describe('a subscriber that stops reading', () => {
  it.each([1, 0] as const)(
    'subscribed to # at QoS %i, does not hold an unrelated QoS 1 publisher, and what it cannot take is dropped and reported',
    async (qos) => {
      const { url, dropped } = await countingServer()
      const stuck = await connect(url, { protocolVersion: 5, clientId: 'stuck' })
      await subscribe(stuck, '#', qos)
      // Stops reading: once the socket buffers are full (or, at QoS 1, its
      // in-flight window is, as it never acknowledges) nothing more reaches it.
      stuck.stream.pause()
      const victim = await connect(url, { protocolVersion: 5, clientId: 'victim' })
      // 1,500 x 16 KiB = 24 MiB: far past what the stuck subscriber's socket,
      // window and queue hold, so it is congested long before the end.
      const waits = await publishInTurn(victim, 'victim/t', 1500, Buffer.alloc(16 * 1024, 1))
      const slow = waits.filter((w) => w > ACK_BOUND_MS)
      expect({ acked: waits.length, slowerThanBound: slow.length }).toEqual({ acked: 1500, slowerThanBound: 0 })
      expect(dropped.get('stuck') ?? 0).toBeGreaterThan(0)
      expect(dropped.get('victim') ?? 0).toBe(0)
    },
    60_000,
  )
})

describe('clients that publish to each other', () => {
  it('4 peers that each subscribe room/# and publish to room/<own> with 100 in flight all get every message, none waits long', async () => {
    const { url, dropped } = await countingServer()
    const PEERS = 4
    const N = 2000
    const WINDOW = 100
    const peers = await Promise.all(
      Array.from({ length: PEERS }, (_, i) => connect(url, { protocolVersion: 5, clientId: `peer-${i}` })),
    )
    const got = peers.map(() => 0)
    const all = Promise.all(
      peers.map(
        (p, i) =>
          new Promise<void>((resolve) =>
            p.on('message', () => {
              if (++got[i] === PEERS * N) resolve()
            }),
          ),
      ),
    )
    for (const p of peers) await subscribe(p, 'room/#', 1)
    let slowest = 0
    await Promise.all(
      peers.map(async (p, i) => {
        let next = 0
        // WINDOW publishers in turn per peer: at most WINDOW unacknowledged.
        await Promise.all(
          Array.from({ length: WINDOW }, async () => {
            while (next < N) {
              const seq = next++
              const t0 = performance.now()
              await p.publishAsync(`room/${i}`, String(seq), { qos: 1 })
              slowest = Math.max(slowest, performance.now() - t0)
            }
          }),
        )
      }),
    )
    await all
    expect(got).toEqual(peers.map(() => PEERS * N))
    expect(Object.fromEntries(dropped)).toEqual({})
    expect(slowest).toBeLessThan(ACK_BOUND_MS)
  }, 60_000)
})
