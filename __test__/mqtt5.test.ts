/**
 * MQTT 5 features beyond the basics: shared subscriptions.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, connect, startServer, subscribe, urlFor, waitFor } from './helpers'

afterEach(cleanup)

describe('shared subscriptions', () => {
  it('spread a group\'s messages over its members, each message to exactly one', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const members = await Promise.all([1, 2].map((i) => connect(url, { protocolVersion: 5, clientId: `member-${i}` })))
    const N = 40
    const got: number[][] = [[], []]
    let total = 0
    const allIn = new Promise<void>((resolve) =>
      members.forEach((m, i) =>
        m.on('message', (topic, payload) => {
          if (!topic.startsWith('job/')) return
          got[i].push(Number(payload.toString()))
          if (++total === N) resolve()
        }),
      ),
    )
    for (const m of members) await subscribe(m, '$share/workers/job/#', 1)

    for (let i = 0; i < N; i++) await server.publish(`job/${i}`, String(i), { qos: 1 })
    await allIn
    // A sentinel through a plain subscription on each member proves nothing
    // else (no duplicate) was still on its way.
    for (const m of members) await subscribe(m, 'sentinel', 1)
    const sentinels = members.map((m) => waitFor(m, 'message'))
    await server.publish('sentinel', 'end', { qos: 1 })
    await Promise.all(sentinels)
    expect(total).toBe(N)
    const all = [...got[0], ...got[1]].sort((a, b) => a - b)
    expect(all).toEqual(Array.from({ length: N }, (_, i) => i)) // each job reached exactly one member
    expect(got[0].length).toBeGreaterThan(0) // and both members got some
    expect(got[1].length).toBeGreaterThan(0)
  })
})
