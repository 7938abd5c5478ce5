import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, connect, drain, inbox, startServer, subscribe, urlFor, waitFor } from './helpers'

afterEach(cleanup)

/** Two servers in one process, each with one subscriber to `topic`. */
async function twoServers(topic = 'iso/#') {
  const a = await startServer()
  const b = await startServer()
  expect(a.listeners[0].port).not.toBe(b.listeners[0].port)
  const urlA = urlFor(a.listeners[0])
  const urlB = urlFor(b.listeners[0])
  const subA = await connect(urlA)
  const subB = await connect(urlB)
  const boxA = inbox(subA)
  const boxB = inbox(subB)
  await subscribe(subA, topic, 2)
  await subscribe(subB, topic, 2)
  return { a, b, urlA, urlB, subA, subB, boxA, boxB }
}

describe('two servers at once', () => {
  it('a client message on one server does not reach the other', async () => {
    const { urlA, urlB, boxA, boxB } = await twoServers()
    const pubA = await connect(urlA)
    const pubB = await connect(urlB)
    await pubA.publishAsync('iso/x', 'for A only', { qos: 1 })
    const m = await boxA.next()
    expect(m.payload.toString()).toBe('for A only')
    // Positive control: B's own sentinel arrives, and nothing before it.
    expect(await drain(boxB, pubB, 'iso/sentinel')).toEqual([])
    // And the converse.
    await pubB.publishAsync('iso/y', 'for B only', { qos: 1 })
    expect((await boxB.next()).payload.toString()).toBe('for B only')
    expect(await drain(boxA, pubA, 'iso/sentinel')).toEqual([])
  })

  it('server.publish on one server does not reach the other', async () => {
    const { a, b, boxA, boxB } = await twoServers()
    await a.server.publish('iso/srv', 'A', { qos: 1 })
    expect((await boxA.next()).payload.toString()).toBe('A')
    expect(await drain(boxB, b.server, 'iso/sentinel')).toEqual([])
  })

  it('retained messages are per server', async () => {
    const { a, b, urlB } = await twoServers()
    await a.server.publish('iso/ret', 'retained on A', { qos: 1, retain: true })
    const late = await connect(urlB)
    const box = inbox(late)
    await subscribe(late, 'iso/ret', 1)
    expect(await drain(box, b.server, 'iso/ret')).toEqual([])
  })

  it('the same client id on both servers does not take over the other session', async () => {
    const { a, b } = await twoServers()
    const onA = await connect(urlFor(a.listeners[0]), { clientId: 'same-id' })
    const onB = await connect(urlFor(b.listeners[0]), { clientId: 'same-id' })
    const boxA = inbox(onA)
    const boxB = inbox(onB)
    await subscribe(onA, 'id/t', 1)
    await subscribe(onB, 'id/t', 1)
    await a.server.publish('id/t', 'to A', { qos: 1 })
    await b.server.publish('id/t', 'to B', { qos: 1 })
    expect((await boxA.next()).payload.toString()).toBe('to A')
    expect((await boxB.next()).payload.toString()).toBe('to B')
    expect(onA.connected && onB.connected).toBe(true)
  })

  it('stopping one server leaves the other serving its clients', async () => {
    const { a, b, subA, subB, boxB, urlB } = await twoServers()
    const closedA = waitFor(subA, 'close')
    await a.server.stop()
    await closedA
    expect(a.server.running).toBe(false)
    expect(b.server.running).toBe(true)
    expect(subB.connected).toBe(true)
    const pub = await connect(urlB)
    await pub.publishAsync('iso/after', 'still here', { qos: 1 })
    expect((await boxB.next()).payload.toString()).toBe('still here')
    await b.server.publish('iso/after', 'server too', { qos: 1 })
    expect((await boxB.next()).payload.toString()).toBe('server too')
  })
})
