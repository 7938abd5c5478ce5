/**
 * Overload: a QoS 1/2 flood into a subscriber with a tiny queue must not lose
 * messages; the broker holds the publisher back instead.
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
