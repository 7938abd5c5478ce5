/**
 * Valid traffic that once froze the broker: shared subscriptions while other
 * clients subscribe and unsubscribe, under a flood. The router held a map
 * guard across an await while it asked whether a group member was online;
 * a subscribe waiting for that map's write lock then parked both worker
 * threads, and every client (and `stop()`) waited forever.
 *
 * A watchdog client does QoS 1 round trips throughout; each must complete
 * within a bound, and `stop()` must resolve within one too.
 */
import type { MqttClient } from 'mqtt'
import { afterEach, expect, it } from 'vitest'

import { cleanup, connect, listener, MqttServer, subscribe, track, urlFor, withDeadline } from './helpers'

afterEach(cleanup)

const RUN_MS = 8000
const ROUND_TRIP_BOUND_MS = 5000

it.each([
  [1, 0],
  [2, 0],
] as const)(
  'shared subscriptions + subscribe/unsubscribe churn + a flood, %i worker thread(s), QoS %i, every hook installed: the broker keeps answering and stop() resolves',
  async (workerThreads, qos) => {
    const server = track(new MqttServer())
    let delivered = 0
    server.setHooks({
      onMessageDelivered: () => {
        delivered++
      },
      onClientSubscribeAuthorize: () => ({ allow: true }),
      onClientPublishAuthorize: () => ({ allow: true }),
    })
    const [info] = await server.start({ workerThreads, listeners: [listener('tcp')] })
    const url = urlFor(info)
    const members = await Promise.all(Array.from({ length: 10 }, () => connect(url)))
    for (const m of members) await subscribe(m, '$share/g/data/#', 1)
    const publishers = await Promise.all(Array.from({ length: 6 }, () => connect(url)))
    // Several clients change subscriptions at once: each change takes a
    // write lock on one shard of the router's map.
    const churners = await Promise.all(Array.from({ length: 4 }, () => connect(url)))
    const watchdog = await connect(url)
    await subscribe(watchdog, 'watchdog/echo', 1)

    const until = Date.now() + RUN_MS
    const flood = async (p: MqttClient, i: number) => {
      for (let n = 0; Date.now() < until; n++) {
        await Promise.all(Array.from({ length: 50 }, (_, k) => p.publishAsync(`data/${i}`, `${n}.${k}`, { qos })))
      }
    }
    const churn = async (churner: MqttClient, j: number) => {
      for (let n = 0; Date.now() < until; n++) {
        await churner.subscribeAsync(`churn/${j}/${n % 64}/#`, { qos: 1 })
        await churner.unsubscribeAsync(`churn/${j}/${n % 64}/#`)
      }
    }
    let trips = 0
    const watch = async () => {
      while (Date.now() < until) {
        const echo = new Promise<void>((res) => watchdog.once('message', () => res()))
        await withDeadline(
          Promise.all([watchdog.publishAsync('watchdog/echo', String(trips), { qos: 1 }), echo]),
          ROUND_TRIP_BOUND_MS,
          () => `watchdog round trip ${trips} took longer than ${ROUND_TRIP_BOUND_MS} ms`,
        )
        trips++
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    await Promise.all([watch(), ...churners.map(churn), ...publishers.map(flood)])
    expect(trips).toBeGreaterThan(10)
    expect(delivered).toBeGreaterThan(0)
    // A fresh client is still served.
    const late = await connect(url)
    await late.publishAsync('data/late', 'x', { qos: 1 })
    await withDeadline(server.stop(), 10_000, () => 'stop() took longer than 10000 ms')
  },
  40_000,
)
