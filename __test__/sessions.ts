/**
 * Persistent sessions as the persistence tests use them: connect one (3.1.1
 * `clean: false`, 5.0 Clean Start 0 with an expiry), resume it, read what
 * was queued for it.
 */
import type { IClientOptions, MqttClient } from 'mqtt'
import { expect, it } from 'vitest'

import {
  type Inbox,
  type ListenerInfo,
  type MqttServer,
  type ServerConfig,
  connect,
  endClient,
  inbox,
  startServer,
  subscribe,
  urlFor,
} from './helpers'
import { PUBLISH, PUBREL, connectPacket, packet, prop, props, rawConnect, subscribePacket, u16 } from './raw'

export type Version = 4 | 5

/** A persistent session's client options: 3.1.1 `clean: false`, 5.0 Clean Start 0 and an expiry. */
export function persistent(clientId: string, version: Version, expiry = 300): IClientOptions {
  return {
    clientId,
    clean: false,
    protocolVersion: version,
    ...(version === 5 ? { properties: { sessionExpiryInterval: expiry } } : {}),
  }
}

/** Connects a persistent session; its inbox listens before the CONNACK (queued messages follow it at once). */
export async function resume(
  url: string,
  opts: IClientOptions,
): Promise<{ client: MqttClient; box: Inbox; sessionPresent: boolean }> {
  let box: Inbox | undefined
  let sessionPresent = false
  const client = await connect(url, opts, (c) => {
    box = inbox(c)
    c.once('connect', (connack) => {
      sessionPresent = connack.sessionPresent
    })
  })
  return { client, box: box!, sessionPresent }
}

/**
 * Builds a store with `config`: each of `ids` a persistent 3.1.1 session
 * subscribed to `topic/#` at QoS 1, offline, holding `perSession` queued
 * messages (`stored0`, `stored1`, ...); then stops its broker, waiting for
 * every write. Resolves with the queued payloads, in order.
 */
export async function storeQueues(
  config: ServerConfig,
  ids: string[],
  topic: string,
  perSession: number,
): Promise<string[]> {
  const { server, url } = await startServer(config)
  for (const clientId of ids) {
    const c = await connect(url, { clientId, clean: false })
    await subscribe(c, `${topic}/#`, 1)
    await endClient(c)
  }
  const stored = Array.from({ length: perSession }, (_, i) => `stored${i}`)
  for (const m of stored) await server.publish(`${topic}/x`, m, { qos: 1 })
  // stop() waits for the sessions' writes within drainTimeoutMs + 3 s; room
  // for a busy machine (~14,000 writes/s here).
  await server.stop({ drainTimeoutMs: 60_000 })
  return stored
}

/** Publishes `n` QoS 1 messages to `topic` through `server`, 1,000 at a time; `payload(i)` makes the i-th. */
export async function publishMany(
  server: MqttServer,
  topic: string,
  n: number,
  payload: (i: number) => string | Buffer,
): Promise<void> {
  for (let i = 0; i < n; i += 1000) {
    const batch = []
    for (let j = i; j < Math.min(n, i + 1000); j++) batch.push(server.publish(topic, payload(j), { qos: 1 }))
    await Promise.all(batch)
  }
}

/**
 * Connects with `opts` (listening before the CONNACK) and resolves with the
 * client once `done(payload)` has returned true for a message.
 */
export async function receiveUntil(
  url: string,
  opts: IClientOptions,
  done: (payload: Buffer) => boolean,
): Promise<MqttClient> {
  let finished: () => void
  const complete = new Promise<void>((res) => {
    finished = res
  })
  const client = await connect(url, opts, (c) =>
    c.on('message', (_t, payload) => {
      if (done(payload)) finished()
    }),
  )
  await complete
  return client
}

/** The next `n` payloads of `box`, as text. */
export async function texts(box: Inbox, n: number): Promise<string[]> {
  const got: string[] = []
  for (let i = 0; i < n; i++) got.push((await box.next()).payload.toString())
  return got
}

/**
 * Subscriptions and queued QoS 1/2 messages (from a client and from
 * `server.publish()`) survive stop() and start() on the same object with
 * `config` (a store).
 */
async function queuedSurvive(config: ServerConfig, version: Version): Promise<void> {
  const { server, listeners } = await startServer(config)
  const id = `keep-${version}`
  const sub = await connect(urlFor(listeners[0]), persistent(id, version))
  await subscribe(sub, 'q/#', 2)
  await endClient(sub)
  const pub = await connect(urlFor(listeners[0]))
  await pub.publishAsync('q/a', 'one', { qos: 1 })
  await pub.publishAsync('q/a', 'two', { qos: 2 })
  await server.publish('q/b', 'three', { qos: 1 })
  await server.stop()

  const [l] = await server.start(config)
  const back = await resume(urlFor(l), persistent(id, version))
  expect(back.sessionPresent).toBe(true)
  const got = await texts(back.box, 3)
  // QoS 1 in order; the QoS 2 one may come after a later QoS 1 one, as
  // it does in memory too (a resumed session sends QoS 2 after QoS 1).
  expect(got.filter((t) => t !== 'two')).toEqual(['one', 'three'])
  expect([...got].sort()).toEqual(['one', 'three', 'two'])
  // The subscription itself came back: a live message needs no SUBSCRIBE.
  await server.publish('q/c', 'live', { qos: 1 })
  expect(await texts(back.box, 1)).toEqual(['live'])
}

/**
 * Unacknowledged in-flight QoS 1 and QoS 2 messages are sent again (DUP)
 * after stop() and start() with `config`, and a PUBREC-ed QoS 2 gets its PUBREL.
 */
async function inflightResent(config: ServerConfig): Promise<void> {
  const { server, listeners } = await startServer(config)
  const session = props(prop.sessionExpiry(300))
  const open = async (l: ListenerInfo) => {
    const c = await rawConnect(l)
    await c.write(connectPacket({ version: 5, flags: 0x00, clientId: 'inflight', properties: session }))
    return c
  }
  const first = await open(listeners[0])
  await first.write(subscribePacket(5, 1, [['f/#', 2]]))
  await first.next(9)
  await server.publish('f/1', 'q1', { qos: 1 })
  await server.publish('f/2', 'q2', { qos: 2 })
  await server.publish('f/3', 'q2-received', { qos: 2 })
  const sent = await first.count(PUBLISH, 3)
  // The third is PUBREC-ed: the broker owes a PUBREL, and must not send it again.
  const third = sent[2]
  const pid = third.body.readUInt16BE(2 + third.body.readUInt16BE(0))
  await first.write(packet(0x50, u16(pid)))
  await first.next(PUBREL)
  first.destroy()
  await server.stop()

  const [l] = await server.start(config)
  const again = await open(l)
  const resent = await again.count(PUBLISH, 2)
  const topics = resent.map((p) => p.body.subarray(2, 2 + p.body.readUInt16BE(0)).toString())
  expect(topics).toEqual(['f/1', 'f/2'])
  // Sent again with DUP.
  expect(resent.every((p) => (p.flags & 0x08) !== 0)).toBe(true)
  const rel = await again.next(PUBREL)
  expect(rel.body.readUInt16BE(0)).toBe(pid)
}

/**
 * A session whose client disconnects with messages still queued for it (in
 * memory while it was connected: 10 in flight, its Receive Maximum, the
 * rest queued) keeps them across stop() and start() with `config`: the
 * in-flight ones again first, then the queue, in order.
 */
async function connectedQueueKept(config: ServerConfig): Promise<void> {
  const { server, listeners } = await startServer(config)
  const session = props(prop.sessionExpiry(300), prop.receiveMaximum(10))
  const first = await rawConnect(listeners[0])
  await first.write(connectPacket({ version: 5, flags: 0x00, clientId: 'backlog', properties: session }))
  await first.write(subscribePacket(5, 1, [['k/#', 1]]))
  await first.next(9)
  const sent = Array.from({ length: 100 }, (_, i) => String(i))
  for (const m of sent) await server.publish('k/x', m, { qos: 1 })
  // Never acknowledged: the window is full, 90 wait in the queue.
  await first.count(PUBLISH, 10)
  first.destroy()
  await server.stop()

  const [l] = await server.start(config)
  const back = await resume(urlFor(l), persistent('backlog', 5))
  expect(back.sessionPresent).toBe(true)
  expect(await texts(back.box, 100)).toEqual(sent)
}

/** With `config`, a session whose expiry passed while the broker was down is gone; one within its expiry is kept. */
async function expiryCounts(config: ServerConfig): Promise<void> {
  const { server, listeners } = await startServer(config)
  const url = urlFor(listeners[0])
  for (const [id, expiry] of [
    ['short', 1],
    ['long', 300],
  ] as const) {
    const c = await connect(url, persistent(id, 5, expiry))
    await subscribe(c, 'e/#', 1)
    await endClient(c)
  }
  await server.publish('e/x', 'queued', { qos: 1 })
  await server.stop()
  // The subject is time passing while the broker is down: 1 s expiry, 1.5 s down.
  await new Promise((r) => setTimeout(r, 1500))

  const [l] = await server.start(config)
  const short = await resume(urlFor(l), persistent('short', 5, 1))
  expect(short.sessionPresent).toBe(false)
  const long = await resume(urlFor(l), persistent('long', 5))
  expect(long.sessionPresent).toBe(true)
  expect(await texts(long.box, 1)).toEqual(['queued'])
}

/** Declares the tests every session store passes, each on a store of its own from `config()`. */
export function storeTests(config: () => ServerConfig): void {
  it.each([4, 5] as Version[])(
    'MQTT %s: subscriptions and queued QoS 1/2 messages survive stop() and start() on the same object',
    (version) => queuedSurvive(config(), version),
  )

  it('unacknowledged in-flight QoS 1 and QoS 2 messages are sent again, and a PUBREC-ed QoS 2 gets its PUBREL', () =>
    inflightResent(config()))

  it('a session whose expiry passed while the broker was down is gone; one within its expiry is kept', () =>
    expiryCounts(config()))

  it('messages still queued for a client when it disconnected survive stop() and start(), after the in-flight ones', () =>
    connectedQueueKept(config()))
}
