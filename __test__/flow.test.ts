/**
 * Overload: a QoS 1/2 flood into a subscriber with a tiny queue must not lose
 * messages; the broker holds the publisher back instead. QoS 0 publishers are
 * held only while the subscriber drains: one that stops reading must not hold
 * them.
 */
import { join } from 'node:path'

import { afterEach, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  killChildren,
  listener,
  MqttServer,
  ROOT,
  spawnTracked,
  subscribe,
  track,
  urlFor,
} from './helpers'

afterEach(async () => {
  killChildren()
  await cleanup()
})

/**
 * A broker whose first listener gives subscribers a window of 1 and a queue
 * of 10, and whose second has the defaults; every drop is recorded, and
 * `aDrop` resolves at the first so a test can fail fast.
 */
async function tinyQueueServer() {
  const dropped: string[] = []
  let firstDrop!: () => void
  const aDrop = new Promise<void>((resolve) => (firstDrop = resolve))
  const server = track(new MqttServer())
  server.setHooks({
    onMessageDropped: (_to, _from, _m, { reason }) => {
      dropped.push(reason)
      firstDrop()
    },
  })
  const [slow, fast] = await server.start({
    listeners: [listener('tcp', { maxMqueueLen: 10, maxInflight: 1 }), listener('tcp')],
  })
  return { dropped, aDrop, slow, fast }
}

it.each([
  [1, 'flood/#'],
  [2, 'flood/#'],
  // The member a shared group picks is held for like any subscriber.
  [1, '$share/g/flood/#'],
] as const)('a QoS %i flood into a queue of 10 loses nothing (%s)', async (qos, filter) => {
  // Tiny limits so that without flow control the queue would overflow at once.
  // The subscriber's listener has a window of 1 and a queue of 10; the
  // publisher's has the default window, so it can flood.
  const { dropped, aDrop, slow, fast } = await tinyQueueServer()
  const sub = await connect(urlFor(slow), { protocolVersion: 5 })
  await subscribe(sub, filter, qos)
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

/** QoS 0 MQTT 3.1.1 PUBLISH packets, encoded here so a whole flood goes out in one write. */
function qos0Publishes(topic: string, payloads: Buffer[]): Buffer {
  return Buffer.concat(
    payloads.flatMap((payload) => {
      let n = 2 + topic.length + payload.length
      const length: number[] = []
      do {
        length.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0))
        n >>= 7
      } while (n > 0)
      return [Buffer.from([0x30, ...length, topic.length >> 8, topic.length & 0xff]), Buffer.from(topic), payload]
    }),
  )
}

it('a QoS 0 flood is held at the publishers while the subscriber drains', async () => {
  const server = track(new MqttServer())
  // The broker's own view, in the order it happened: a message accepted from
  // a publisher, a message written to the subscriber.
  let accepted = 0
  let sent = 0
  let backlog = 0
  const dropped: string[] = []
  let firstDrop!: (reason: string) => void
  const aDrop = new Promise<string>((resolve) => (firstDrop = resolve))
  server.setHooks(
    {
      onMessagePublish: (session) => {
        if (session) backlog = Math.max(backlog, ++accepted - sent)
      },
      onMessageDelivered: () => void sent++,
      onMessageDropped: (_to, _from, _m, { reason }) => {
        dropped.push(reason)
        firstDrop(reason)
      },
    },
    // Room for every notification of the flood: the counts must be whole.
    { maxQueuedNotifications: 100_000 },
  )
  const [slow, fast] = await server.start({
    listeners: [listener('tcp', { maxMqueueLen: 10 }), listener('tcp')],
  })
  // 8 publishers x 1,000 x 4 KiB, each in one write: the broker could read
  // the 32 MiB far faster than it can send them to the one subscriber.
  const P = 8
  const N = 1000
  // The subscriber reads in a process of its own: this one runs the hooks,
  // and a pause of more than 100 ms in its reads (a busy machine) would make
  // the broker take it for stalled.
  const subscriber = spawnTracked(process.execPath, [
    join(ROOT, '__test__/fixtures/qos0-subscriber.mjs'),
    String(slow.port),
    'flood/#',
    String(P * N),
  ])
  await subscriber.stdoutMatch(/subscribed/)
  const floods = Array.from({ length: P }, (_, p) =>
    qos0Publishes(
      `flood/${p}`,
      Array.from({ length: N }, (_, i) => {
        const b = Buffer.alloc(4096)
        b.writeUInt32BE(p, 0)
        b.writeUInt32BE(i, 4)
        return b
      }),
    ),
  )
  // 3.1.1: the packets have no MQTT 5 property list.
  const pubs = await Promise.all(Array.from({ length: P }, () => connect(urlFor(fast), { protocolVersion: 4 })))
  pubs.forEach((pub, p) => {
    pub.stream.write(floods[p])
  })
  // The subscriber checks order and count; a drop fails at once, saying so.
  const outcome = await Promise.race([
    subscriber.stdoutMatch(/done|error: .*/, 25_000).then(([line]) => line),
    aDrop.then((reason) => `a message was dropped (${reason}) after ${sent} of ${P * N} were sent`),
  ])
  expect(outcome).toBe('done')
  expect(dropped).toEqual([])
  // Every notification ran, so the backlog below is the broker's real one.
  expect(server.hookStats.droppedNotifications).toBe(0)
  // Held at ¾ of the subscriber's queue of 10, plus at most one message per
  // publisher that was already past the check, plus the one each publisher
  // is held with (the hold is at routing, after `onMessagePublish`). Not
  // held, the broker takes in thousands ahead of what it has sent.
  expect(backlog).toBeLessThanOrEqual(8 + 2 * P)
}, 30_000)

it('a QoS 0 subscriber that stops reading does not hold its publishers', async () => {
  const server = track(new MqttServer())
  let droppedForStuck = 0
  server.setHooks({
    onMessageDropped: (to) => {
      if (to?.clientId === 'stuck') droppedForStuck++
    },
  })
  const [slow, fast] = await server.start({
    listeners: [listener('tcp', { maxMqueueLen: 10 }), listener('tcp')],
  })
  // The stuck subscriber stops reading its socket: once the socket buffers
  // are full the broker cannot send to it any more.
  const stuck = await connect(urlFor(slow), { protocolVersion: 5, clientId: 'stuck' })
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
  // after 100 ms, this would take over an hour.
  await all
  expect(got).toBe(N)
  // What the stuck subscriber cannot take is dropped and reported while it
  // is still connected, not kept for it in the broker's memory (measured:
  // 327-329 of 400; the rest fit its socket buffers and queue).
  expect(droppedForStuck).toBeGreaterThanOrEqual(N / 4)
}, 30_000)

it('publishes that are denied do not count against the subscriber', async () => {
  const server = track(new MqttServer())
  server.setHooks({
    onClientPublishAuthorize: (_s, m) => (m.topic === 'acl/denied' ? { allow: false } : { allow: true }),
  })
  const [slow, fast] = await server.start({
    listeners: [listener('tcp', { maxMqueueLen: 10 }), listener('tcp')],
  })
  const sub = await connect(urlFor(slow), { protocolVersion: 5 })
  await subscribe(sub, 'acl/#', 1)
  const got = new Promise<string>((resolve) => sub.on('message', (topic) => resolve(topic)))
  const pub = await connect(urlFor(fast), { protocolVersion: 5 })
  // Ten times the queue in denied messages: counted as on their way to the
  // subscriber, they would hold the next publish for the full 10 s cap.
  for (let i = 0; i < 100; i++) {
    const ack = await new Promise<number | undefined>((resolve, reject) =>
      pub.publish('acl/denied', 'no', { qos: 1 }, (err, packet) =>
        err ? reject(err) : resolve((packet as { reasonCode?: number } | undefined)?.reasonCode),
      ),
    ).catch((err) => err.code)
    expect(ack).toBe(0x87)
  }
  await pub.publishAsync('acl/allowed', 'yes', { qos: 1 })
  expect(await got).toBe('acl/allowed')
}, 5_000)

it('a subscriber that took over its client id is still held for', async () => {
  const { dropped, aDrop, slow, fast } = await tinyQueueServer()
  // The old connection's disconnect is reported around the new one's
  // connect, in either order: it must not take the new connection's counts
  // with it. (Removing by client id alone dropped 1,976 of 2,000 here in
  // about one run in three: it depends on which report comes first.)
  const old = await connect(urlFor(slow), { protocolVersion: 5, clientId: 'twice' })
  const kicked = new Promise<void>((resolve) => old.once('close', () => resolve()))
  const sub = await connect(urlFor(slow), { protocolVersion: 5, clientId: 'twice' })
  await kicked
  await subscribe(sub, 'again/#', 1)
  const N = 2000
  let got = 0
  const all = new Promise<void>((resolve) =>
    sub.on('message', () => {
      if (++got === N) resolve()
    }),
  )
  const pub = await connect(urlFor(fast), { protocolVersion: 5 })
  for (let b = 0; b < N; b += 250)
    await Promise.all(Array.from({ length: 250 }, (_, i) => pub.publishAsync('again/x', String(b + i), { qos: 1 })))
  await Promise.race([all, aDrop]) // a drop fails fast instead of timing out
  expect(dropped).toEqual([])
  expect(got).toBe(N)
})
