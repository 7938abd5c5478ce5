/**
 * `using sub = await server.subscribe(...)` and `await using it =
 * server.messages(...)`: leaving the scope unsubscribes (Symbol.dispose /
 * Symbol.asyncDispose, src/dispose.rs and src/messages.js).
 */
import { afterEach, expect, it } from 'vitest'

import type * as Addon from '../index'
import { cleanup, EVENT_TIMEOUT, type MqttServer, startServer, withDeadline } from './helpers'

type Message = Addon.MessageInfo

afterEach(cleanup)

/** Subscriptions the broker routes to (in-process ones included). */
async function routes(server: MqttServer): Promise<number> {
  return (await server.stats()).subscriptions
}

/** A handler that records topics, and a promise of the first `topic`. */
function recorder() {
  const topics: string[] = []
  const waiters = new Map<string, () => void>()
  const handler = (m: Message) => {
    topics.push(m.topic)
    waiters.get(m.topic)?.()
  }
  const seen = (topic: string) =>
    topics.includes(topic)
      ? Promise.resolve()
      : withDeadline(
          new Promise<void>((resolve) => waiters.set(topic, resolve)),
          EVENT_TIMEOUT,
          () => `timed out waiting for ${topic}; got ${topics.join(', ')}`,
        )
  return { topics, handler, seen }
}

it('using: a subscription ends with its scope, at once', async () => {
  const { server } = await startServer()
  const inner = recorder()
  const control = recorder()
  await server.subscribe('d/#', control.handler)
  let outer: Addon.Subscription | undefined
  {
    using sub = await server.subscribe('d/#', inner.handler)
    outer = sub
    expect(sub[Symbol.dispose]).toBe(sub.unsubscribe)
    await server.publish('d/in', 'x')
    await inner.seen('d/in')
  }
  // Delivery stopped when the scope ended; the removal from the router
  // completes on the broker's thread.
  expect(outer.active).toBe(false)
  await outer.closed
  await server.publish('d/after', 'x')
  await control.seen('d/after')
  expect(inner.topics).toEqual(['d/in'])
})

it('await using: the subscription is out of the router once the scope has ended', async () => {
  const { server } = await startServer()
  const got = recorder()
  {
    await using sub = await server.subscribe('e/#', got.handler)
    expect(sub[Symbol.asyncDispose]).toBe(sub.unsubscribe)
    expect(await routes(server)).toBe(1)
    await server.publish('e/1', 'x')
    await got.seen('e/1')
  }
  expect(await routes(server)).toBe(0)
})

it('await using: a messages() iterator unsubscribes with its scope, as leaving for-await does', async () => {
  const { server } = await startServer()
  let outer: (AsyncIterableIterator<Message> & AsyncDisposable) | undefined
  {
    await using it = server.messages('m/#')
    outer = it
    await it.ready
    await server.publish('m/1', 'one')
    const first = await withDeadline(it.next(), EVENT_TIMEOUT, () => 'no message from the iterator')
    expect(first.value?.topic).toBe('m/1')
    expect(await routes(server)).toBe(1)
  }
  expect(await routes(server)).toBe(0)
  expect(await outer.next()).toEqual({ value: undefined, done: true })
})
