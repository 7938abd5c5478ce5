/**
 * Overload: a QoS 1/2 flood into a subscriber with a tiny queue must not lose
 * messages; the broker holds the publisher back instead. QoS 0 publishers are
 * held only while the subscriber drains: one that stops reading must not hold
 * them.
 */
import { afterEach, expect, it } from 'vitest'

import { cleanup, connect, listener, MqttServer, subscribe, track, urlFor } from './helpers'

afterEach(cleanup)

it.each([1, 2] as const)('a QoS %i flood into a queue of 10 loses nothing', async (qos) => {
  const dropped: string[] = []
  const server = track(new MqttServer())
  let firstDrop!: () => void
  const aDrop = new Promise<void>((resolve) => (firstDrop = resolve))
  server.setHooks({
    onMessageDropped: (_to, _from, _m, { reason }) => {
      dropped.push(reason)
      firstDrop()
    },
  })
  // Tiny limits so that without flow control the queue would overflow at once.
  // The subscriber's listener has a window of 1 and a queue of 10; the
  // publisher's has the default window, so it can flood.
  const [slow, fast] = await server.start({
    listeners: [listener('tcp', { maxMqueueLen: 10, maxInflight: 1 }), listener('tcp')],
  })
  const sub = await connect(urlFor(slow), { protocolVersion: 5 })
  await subscribe(sub, 'flood/#', qos)
  const N = 3000
  const seen: number[] = []
  const all = new Promise<void>((resolve) =>
    sub.on('message', (_t, payload) => {
      seen.push(Number(payload.toString()))
      if (seen.length === N) resolve()
    }),
  )
  const pub = await connect(urlFor(fast), { protocolVersion: 5 })
  // Batches as large as the publisher's window (256) allows: each is written
  // at once, far faster than the subscriber's 1 + 10 messages can drain.
  for (let b = 0; b < N; b += 250) {
    const batch = Array.from({ length: Math.min(250, N - b) }, (_, i) => b + i)
    await Promise.all(batch.map((i) => pub.publishAsync('flood/x', String(i), { qos })))
  }
  await Promise.race([all, aDrop]) // a drop fails fast instead of timing out
  expect(dropped).toEqual([])
  expect(seen).toEqual(Array.from({ length: N }, (_, i) => i))
  expect(dropped).toEqual([])
})

it('a QoS 0 subscriber that stops reading does not hold its publishers', async () => {
  const server = track(new MqttServer())
  const [slow, fast] = await server.start({
    listeners: [listener('tcp', { maxMqueueLen: 10 }), listener('tcp')],
  })
  // The stuck subscriber stops reading its socket: once the socket buffers
  // are full the broker cannot send to it any more.
  const stuck = await connect(urlFor(slow), { protocolVersion: 5 })
  await subscribe(stuck, 'wide/#', 0)
  stuck.stream.pause()
  const live = await connect(urlFor(fast), { protocolVersion: 5 })
  await subscribe(live, 'wide/#', 0)
  // 400 x 64 KiB = 25 MiB: far more than loopback socket buffers hold, so the
  // stuck subscriber is congested long before the end.
  const N = 400
  const payload = Buffer.alloc(64 * 1024, 7)
  let got = 0
  const all = new Promise<void>((resolve) =>
    live.on('message', () => {
      if (++got === N) resolve()
    }),
  )
  const pub = await connect(urlFor(fast), { protocolVersion: 5 })
  for (let i = 0; i < N; i++) pub.publish('wide/x', payload, { qos: 0 })
  // Held 10 s per message (the QoS 1 cap) instead of being marked stalled
  // after 20 ms, this would take over an hour.
  await all
  expect(got).toBe(N)
}, 30_000)
