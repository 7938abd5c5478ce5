/**
 * MQTT 5 features beyond the basics: shared subscriptions.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, connect, inbox, startServer, subscribe, urlFor } from './helpers'

afterEach(cleanup)

describe('shared subscriptions', () => {
  it('spread a group\'s messages over its members, each message to exactly one', async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const members = await Promise.all([1, 2].map((i) => connect(url, { protocolVersion: 5, clientId: `member-${i}` })))
    const boxes = members.map(inbox)
    for (const m of members) await subscribe(m, '$share/workers/job/#', 1)
    const watcher = await connect(url, { protocolVersion: 5 })
    await subscribe(watcher, 'job/#', 1)
    const all = inbox(watcher)

    const N = 40
    for (let i = 0; i < N; i++) await server.publish(`job/${i}`, String(i), { qos: 1 })
    for (let i = 0; i < N; i++) await all.next() // the plain subscriber sees every one
    // Every job reached exactly one member of the group.
    while (boxes[0].all.length + boxes[1].all.length < N) await Promise.race(boxes.map((b) => b.next()))
    const got = [...boxes[0].all, ...boxes[1].all].map((m) => Number(m.payload.toString())).sort((a, b) => a - b)
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i))
    expect(boxes[0].all.length).toBeGreaterThan(0)
    expect(boxes[1].all.length).toBeGreaterThan(0)
  })
})
