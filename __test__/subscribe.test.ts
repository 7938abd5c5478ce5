/**
 * In-process subscribe (`server.subscribe()`, `server.messages()`): a real
 * subscriber inside the broker, fed by real mqtt.js publishers (3.1.1 and
 * 5.0) and by `server.publish()`.
 */
import type { MqttClient } from 'mqtt'
import { afterEach, expect, it } from 'vitest'

import type * as Addon from '../index'
import {
  cleanup,
  connect,
  EVENT_TIMEOUT,
  inbox,
  MQTT_VERSIONS,
  type MqttServer,
  startServer,
  subscribe,
  urlFor,
  withDeadline,
} from './helpers'

type Message = Addon.MessageInfo

afterEach(cleanup)

/** Collects a subscription's messages; `until` waits for a predicate with a deadline. */
function collector() {
  const got: Message[] = []
  let wake: () => void = () => {}
  const handler = (m: Message) => {
    got.push(m)
    wake()
  }
  const until = async (what: string, ok: (got: Message[]) => boolean, ms = EVENT_TIMEOUT) => {
    const deadline = Date.now() + ms
    while (!ok(got)) {
      const left = deadline - Date.now()
      if (left <= 0) {
        throw new Error(`timed out waiting for ${what}; got ${got.length}: ${got.map((m) => m.topic).join(', ')}`)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  }
  /** Waits for a message on `topic`; returns what came before it. */
  const before = async (topic: string) => {
    await until(topic, (g) => g.some((m) => m.topic === topic))
    return got.slice(
      0,
      got.findIndex((m) => m.topic === topic),
    )
  }
  return { got, handler, until, before }
}

async function client(server: MqttServer, version: keyof typeof MQTT_VERSIONS = '5.0'): Promise<MqttClient> {
  return connect(urlFor(server.listeners[0]), MQTT_VERSIONS[version])
}

const topics = (ms: Message[]) => ms.map((m) => m.topic)

it('delivers what matches the filter, wildcards included, before any client connected', async () => {
  const { server } = await startServer()
  const plus = collector()
  const hash = collector()
  await server.subscribe('a/+/c', plus.handler)
  await server.subscribe('a/#', hash.handler)
  for (const t of ['a/b/c', 'a/x', 'b/c', 'a/b/c/d', 'a/y/c']) await server.publish(t, t)
  await server.publish('a/end/c', '')
  expect(topics(await plus.before('a/end/c'))).toEqual(['a/b/c', 'a/y/c'])
  expect(topics(await hash.before('a/end/c'))).toEqual(['a/b/c', 'a/x', 'a/b/c/d', 'a/y/c'])
  // `#` does not match `$` topics.
  await server.publish('$SYS/x', '')
  await server.publish('a/end2/c', '')
  expect(topics(await hash.before('a/end2/c'))).not.toContain('$SYS/x')
})

it.each(['3.1.1', '5.0'] as const)('gives topic, payload, qos, retain and dup of a %s publisher', async (version) => {
  const { server } = await startServer()
  const c = collector()
  await server.subscribe('m/#', c.handler)
  const pub = await client(server, version)
  const payload = Buffer.from([0, 1, 2, 255])
  await pub.publishAsync('m/1', payload, { qos: 1 })
  await pub.publishAsync('m/2', 'two', { qos: 2 })
  await pub.publishAsync('m/3', 'three', { qos: 0 })
  await c.until('3 messages', (g) => g.length === 3)
  expect(c.got.map((m) => [m.topic, m.qos, m.retain, m.dup])).toEqual([
    ['m/1', 1, false, false],
    ['m/2', 2, false, false],
    ['m/3', 0, false, false],
  ])
  expect(Buffer.isBuffer(c.got[0].payload)).toBe(true)
  expect(c.got[0].payload.equals(payload)).toBe(true)
  expect(c.got[1].payload.toString()).toBe('two')
  expect(c.got[0].properties).toBeUndefined()
})

it('gives the MQTT 5 properties of a 5.0 publisher', async () => {
  const { server } = await startServer()
  const c = collector()
  await server.subscribe('p', c.handler)
  const pub = await client(server, '5.0')
  await pub.publishAsync('p', '{}', {
    qos: 1,
    properties: {
      contentType: 'application/json',
      responseTopic: 'reply/here',
      correlationData: Buffer.from('id-1'),
      userProperties: { k: 'v' },
    },
  })
  await c.until('1 message', (g) => g.length === 1)
  const p = c.got[0].properties
  expect(p?.contentType).toBe('application/json')
  expect(p?.responseTopic).toBe('reply/here')
  expect(p?.correlationData?.toString()).toBe('id-1')
  expect(p?.userProperties).toEqual([['k', 'v']])
})

it('takes the QoS of its subscription as the highest delivered', async () => {
  const { server } = await startServer()
  const c = collector()
  await server.subscribe('q', c.handler, { qos: 1 })
  await server.publish('q', 'x', { qos: 2 })
  await server.publish('q', 'y', { qos: 0 })
  await c.until('2 messages', (g) => g.length === 2)
  expect(c.got.map((m) => m.qos)).toEqual([1, 0])
})

it('shares a $share group with a network client: each message goes to exactly one', async () => {
  const { server } = await startServer()
  const c = collector()
  await server.subscribe('$share/g/s/#', c.handler, { qos: 1 })
  const member = await client(server)
  const box = inbox(member)
  await subscribe(member, '$share/g/s/#', 1)
  const pub = await client(server, '3.1.1')
  const n = 20
  for (let i = 0; i < n; i++) await pub.publishAsync(`s/${i}`, String(i), { qos: 1 })
  const deadline = Date.now() + EVENT_TIMEOUT
  while (c.got.length + box.all.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  const all = [...topics(c.got), ...box.all.map((m) => m.topic)].sort()
  expect(all).toEqual(Array.from({ length: n }, (_, i) => `s/${i}`).sort())
  expect(c.got.length).toBeGreaterThan(0)
  expect(box.all.length).toBeGreaterThan(0)
})

it('sends retained messages on subscribe, unless retainHandling is 2 or the filter is shared', async () => {
  const { server } = await startServer()
  await server.publish('r/server', 'S', { retain: true })
  const pub = await client(server, '5.0')
  await pub.publishAsync('r/client', 'C', { qos: 1, retain: true })

  const c = collector()
  await server.subscribe('r/#', c.handler)
  await c.until('2 retained', (g) => g.length === 2)
  expect(c.got.map((m) => [m.topic, m.payload.toString(), m.retain]).sort()).toEqual([
    ['r/client', 'C', true],
    ['r/server', 'S', true],
  ])

  const none = collector()
  await server.subscribe('r/#', none.handler, { retainHandling: 2 })
  const shared = collector()
  await server.subscribe('$share/g/r/#', shared.handler)
  // Positive control: a live message arrives (not retained), nothing before it.
  await server.publish('r/live', 'L')
  expect(await none.before('r/live')).toEqual([])
  expect(await shared.before('r/live')).toEqual([])
  expect(none.got[0].retain).toBe(false)
})

it('noLocal leaves out what server.publish() sends, not what clients send', async () => {
  const { server } = await startServer()
  const local = collector()
  const all = collector()
  await server.subscribe('n/#', local.handler, { noLocal: true })
  await server.subscribe('n/#', all.handler)
  const pub = await client(server, '3.1.1')
  await server.publish('n/server', 'x', { qos: 1 })
  await pub.publishAsync('n/client', 'y', { qos: 1 })
  expect(topics(await all.before('n/client'))).toEqual(['n/server'])
  expect(topics(await local.before('n/client'))).toEqual([])
})

it('QoS 1 from a flood of 3.1.1 and 5.0 publishers into a slow async handler: every message, in order per publisher, publishers held back', async () => {
  const { server } = await startServer()
  const dropped: string[] = []
  server.setHooks({ onMessageDropped: (_to, _from, m) => void dropped.push(m.topic) })
  const perPublisher = 500
  const publishers = 4
  const total = perPublisher * publishers
  const seen = new Map<string, number[]>()
  let done = 0
  let outstanding = 0
  let maxOutstanding = 0
  let chain = Promise.resolve()
  let allDone!: () => void
  const finished = new Promise<void>((r) => (allDone = r))
  await server.subscribe(
    'flood/#',
    (m) => {
      const [, who, seq] = m.topic.split('/')
      if (!seen.has(who)) seen.set(who, [])
      seen.get(who)?.push(Number(seq))
      outstanding++
      maxOutstanding = Math.max(maxOutstanding, outstanding)
      // Handled one after another, with a timer every 10th message: far
      // slower than the publishers.
      const n = done + outstanding
      chain = chain.then(() => (n % 10 === 0 ? new Promise((r) => setTimeout(r, 1)) : undefined))
      return chain.then(() => {
        outstanding--
        if (++done === total) allDone()
      })
    },
    // Publishers held from 75 pending (¾ of maxQueued).
    { qos: 1, maxQueued: 100 },
  )
  const clients = await Promise.all(
    Array.from({ length: publishers }, (_, i) => client(server, i % 2 ? '5.0' : '3.1.1')),
  )
  await Promise.all(
    clients.map((c, who) =>
      Promise.all(
        Array.from({ length: perPublisher }, (_, seq) => c.publishAsync(`flood/${who}/${seq}`, 'x', { qos: 1 })),
      ),
    ),
  )
  await withDeadline(finished, 60_000, () => `handled ${done} of ${total}`)
  expect(dropped).toEqual([])
  expect([...seen.keys()].sort()).toEqual(['0', '1', '2', '3'])
  for (const seqs of seen.values()) expect(seqs).toEqual(Array.from({ length: perPublisher }, (_, i) => i))
  // Held back: the handler never had the flood waiting on it at once.
  expect(maxOutstanding).toBeLessThan(total / 4)
})

it('QoS 0 beyond maxQueued waiting is dropped, counted and reported through onMessageDropped', async () => {
  const { server } = await startServer()
  const reported: string[] = []
  server.setHooks({ onMessageDropped: (to) => void reported.push(to?.clientId ?? 'null') })
  const c = collector()
  const sub = await server.subscribe('z/#', c.handler, { maxQueued: 10 })
  const n = 3000
  // The JS thread is busy publishing: nothing is handled meanwhile, while
  // the broker routes them.
  const routed = Array.from({ length: n }, (_, i) => server.publish(`z/${i}`, 'x'))
  await Promise.all(routed)
  await server.publish('z/end', '', { qos: 1 })
  const before = await c.before('z/end')
  expect(sub.dropped).toBeGreaterThan(0)
  expect(before.length + sub.dropped).toBe(n)
  // In order, gaps where messages were dropped.
  const seqs = before.map((m) => Number(m.topic.split('/')[1]))
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
  await withDeadline(
    (async () => {
      while (reported.length < sub.dropped) await new Promise((r) => setTimeout(r, 5))
    })(),
    EVENT_TIMEOUT,
    () => `onMessageDropped reported ${reported.length} of ${sub.dropped}`,
  )
  expect(reported.length).toBe(sub.dropped)
  expect(reported.every((id) => id.startsWith('\0subscription/'))).toBe(true)
})

it('a throwing handler is counted in hookStats.failures and delivery goes on', async () => {
  const { server } = await startServer()
  const c = collector()
  await server.subscribe('t', (m) => {
    c.handler(m)
    if (m.payload.toString() === 'throw') throw new Error('boom')
    if (m.payload.toString() === 'reject') return Promise.reject(new Error('async boom'))
  })
  await server.publish('t', 'throw')
  await server.publish('t', 'reject')
  await server.publish('t', 'ok')
  await c.until('3 messages', (g) => g.length === 3)
  expect(c.got.map((m) => m.payload.toString())).toEqual(['throw', 'reject', 'ok'])
  await withDeadline(
    (async () => {
      while (server.hookStats.failures < 2) await new Promise((r) => setTimeout(r, 5))
    })(),
    EVENT_TIMEOUT,
    () => `failures: ${server.hookStats.failures}`,
  )
})

it('more distinct topics than the topic table holds, large payloads and properties among the rest: each message keeps its own', async () => {
  const { server } = await startServer()
  const c = collector()
  await server.subscribe('d/#', c.handler, { qos: 1 })
  // Over the 4,096 topics native code lets JavaScript keep before it starts
  // the table again. Two payloads in 1,000 are over the 4 KiB that share a
  // run's buffer, every 10th message has properties (some both).
  const n = 9000
  const payload = (i: number) =>
    i % 1000 === 7 || i % 1000 === 10 ? Buffer.alloc(5000, i % 256) : Buffer.from(`p${i}`)
  const properties = (i: number) => (i % 10 === 0 ? { contentType: `c${i}` } : undefined)
  await Promise.all(
    Array.from({ length: n }, (_, i) => server.publish(`d/${i}`, payload(i), { qos: 1, properties: properties(i) })),
  )
  await c.until(`${n} messages`, (g) => g.length === n)
  const wrong = c.got.filter(
    (m, i) =>
      m.topic !== `d/${i}` || !m.payload.equals(payload(i)) || m.properties?.contentType !== properties(i)?.contentType,
  )
  expect(wrong.map((m) => m.topic).slice(0, 5)).toEqual([])
})

it('unsubscribe() from inside the handler: nothing after it is delivered, even what was queued with it', async () => {
  const { server } = await startServer()
  let calls = 0
  let sub: Addon.Subscription | undefined
  let unsubscribed: Promise<void> | undefined
  sub = await server.subscribe('q/#', () => {
    calls++
    if (calls === 10) unsubscribed = sub?.unsubscribe()
  })
  // Published while the JS thread is busy here: they wait for the handler
  // together, so the tenth is in the middle of what runs at once.
  await Promise.all(Array.from({ length: 500 }, (_, i) => server.publish(`q/${i}`, 'x', { qos: 1 })))
  await withDeadline(sub.closed, EVENT_TIMEOUT, () => `closed did not resolve; ${calls} calls`)
  await unsubscribed
  await server.publish('q/last', 'x', { qos: 1 })
  expect(calls).toBe(10)
})

it('unsubscribe() stops delivery, is idempotent, and ends the subscription', async () => {
  const { server } = await startServer()
  const gone = collector()
  const control = collector()
  const sub = await server.subscribe('u/#', gone.handler)
  await server.subscribe('u/#', control.handler)
  await server.publish('u/1', '')
  await gone.until('u/1', (g) => g.length === 1)
  expect(sub.active).toBe(true)
  expect(sub.filter).toBe('u/#')
  await sub.unsubscribe()
  await sub.unsubscribe()
  expect(sub.active).toBe(false)
  await withDeadline(sub.closed, EVENT_TIMEOUT, () => 'closed did not resolve')
  const pub = await client(server)
  await pub.publishAsync('u/2', '', { qos: 1 })
  await server.publish('u/3', '', { qos: 1 })
  // The control got them; the unsubscribed one nothing more.
  await control.until('u/3', (g) => g.some((m) => m.topic === 'u/3'))
  expect(topics(gone.got)).toEqual(['u/1'])
})

it('stop() ends every subscription; none is called after it', async () => {
  const { server } = await startServer()
  const c = collector()
  const sub = await server.subscribe('#', c.handler)
  await server.stop()
  expect(sub.active).toBe(false)
  await withDeadline(sub.closed, EVENT_TIMEOUT, () => 'closed did not resolve')
  await sub.unsubscribe()
  await expect(server.subscribe('#', c.handler)).rejects.toThrow(/not running/)
})

it('messages(): for await over the matching messages; break unsubscribes', async () => {
  const { server } = await startServer()
  const it = server.messages('i/#', { qos: 1 })
  await it.ready
  const pub = await client(server, '3.1.1')
  for (let i = 0; i < 5; i++) await pub.publishAsync(`i/${i}`, String(i), { qos: 1 })
  const got: string[] = []
  for await (const m of it) {
    got.push(m.topic)
    if (got.length === 3) break
  }
  expect(got).toEqual(['i/0', 'i/1', 'i/2'])
  expect(await it.next()).toEqual({ value: undefined, done: true })
})

it('messages(): the loop ends when the server stops', async () => {
  const { server } = await startServer()
  const it = server.messages('#')
  await it.ready
  let first!: () => void
  const got1 = new Promise<void>((r) => (first = r))
  const loop = (async () => {
    const got: string[] = []
    for await (const m of it) {
      got.push(m.topic)
      first()
    }
    return got
  })()
  await server.publish('x', '1')
  await withDeadline(got1, EVENT_TIMEOUT, () => 'x did not arrive')
  await server.stop()
  expect(await withDeadline(loop, EVENT_TIMEOUT, () => 'the loop did not end')).toEqual(['x'])
})

it('refuses bad arguments with a typed error naming the field', async () => {
  const { server } = await startServer()
  const f = () => {}
  const cases: Array<[() => unknown, RegExp]> = [
    [() => server.subscribe(1 as unknown as string, f), /^filter: expected a string, got a number/],
    [() => server.subscribe('', f), /^filter: must not be empty/],
    [() => server.subscribe('a/#/b', f), /^filter: "a\/#\/b": a wildcard/],
    [() => server.subscribe('a+', f), /^filter: "a\+": a wildcard/],
    [() => server.subscribe('$share/g', f), /^filter: .*\$share\/group\/filter/],
    [() => server.subscribe('$share//x', f), /^filter: .*group name/],
    [() => server.subscribe('a', 'nope' as unknown as () => void), /^handler: expected a function, got a string/],
    [() => server.subscribe('a', f, { qos: 3 as Addon.QoS }), /^options\.qos: must be 0, 1 or 2/],
    [() => server.subscribe('a', f, { retainHandling: 5 }), /^options\.retainHandling: must be 0, 1 or 2/],
    [() => server.subscribe('a', f, { maxQueued: 0 }), /^options\.maxQueued: must be an integer/],
    [() => server.subscribe('a', f, { nope: 1 } as Addon.SubscribeOptions), /^options\.nope: unknown field/],
    [() => server.subscribe('a', f, { noLocal: 'yes' as unknown as boolean }), /^options\.noLocal: /],
    [() => server.messages('a/#/b'), /^filter: /],
  ]
  for (const [call, message] of cases) {
    expect(call).toThrow(message)
    try {
      call()
    } catch (e) {
      expect((e as { code?: string }).code).toBe('InvalidArg')
    }
  }
})

it('clients(), client() and subscriptions() list network clients only, not in-process subscriptions', async () => {
  const { server } = await startServer()
  await server.subscribe('in/#', () => {})
  const c = await client(server)
  await subscribe(c, 'net/#')
  const ids: string[] = []
  for await (const info of server.clients()) ids.push(info.clientId)
  expect(ids).toEqual([c.options.clientId])
  expect(await server.client('\0subscription/0')).toBeNull()
  expect((await server.subscriptions()).map((s) => s.topicFilter)).toEqual(['net/#'])
})
