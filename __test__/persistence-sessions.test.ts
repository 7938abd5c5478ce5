/**
 * `storage: { path }` keeps persistent sessions (3.1.1 `clean: false`, 5.0
 * Session Expiry > 0): their subscriptions, queued QoS 1/2 messages and
 * unacknowledged in-flight messages survive stop()/start() on the same
 * object, a clean process exit and kill -9; session expiry keeps counting
 * while the broker is down.
 */
import type { IClientOptions, MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import {
  type Inbox,
  type ListenerInfo,
  MqttServer,
  ROOT,
  type ServerConfig,
  cleanup,
  connect,
  endClient,
  inbox,
  killChildren,
  listener,
  nodeEval,
  removeTempDirs,
  startServer,
  subscribe,
  tempDir,
  track,
  urlFor,
} from './helpers'
import {
  PUBLISH,
  PUBREL,
  connectPacket,
  destroyRaw,
  packet,
  prop,
  props,
  rawConnect,
  subscribePacket,
  u16,
} from './raw'

/** How long a write may take to reach the disk (sled's flush interval; docs/persistence.md). */
const KILL_WINDOW_MS = 500

afterEach(async () => {
  destroyRaw()
  killChildren()
  await cleanup()
  removeTempDirs()
})

function config(path: string): ServerConfig {
  return { listeners: [listener('tcp')], storage: { path } }
}

type Version = 4 | 5

/** A persistent session's client options: 3.1.1 `clean: false`, 5.0 Clean Start 0 and an expiry. */
function persistent(clientId: string, version: Version, expiry = 300): IClientOptions {
  return {
    clientId,
    clean: false,
    protocolVersion: version,
    ...(version === 5 ? { properties: { sessionExpiryInterval: expiry } } : {}),
  }
}

/** Connects a persistent session; its inbox listens before the CONNACK (queued messages follow it at once). */
async function resume(
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

async function texts(box: Inbox, n: number): Promise<string[]> {
  const got: string[] = []
  for (let i = 0; i < n; i++) got.push((await box.next()).payload.toString())
  return got
}

describe('persistent sessions with storage.path', () => {
  it.each([4, 5] as Version[])(
    'MQTT %s: subscriptions and queued QoS 1/2 messages survive stop() and start() on the same object',
    async (version) => {
      const path = tempDir()
      const { server, listeners } = await startServer(config(path))
      const id = `keep-${version}`
      const sub = await connect(urlFor(listeners[0]), persistent(id, version))
      await subscribe(sub, 'q/#', 2)
      await endClient(sub)
      const pub = await connect(urlFor(listeners[0]))
      await pub.publishAsync('q/a', 'one', { qos: 1 })
      await pub.publishAsync('q/a', 'two', { qos: 2 })
      await server.publish('q/b', 'three', { qos: 1 })
      await server.stop()

      const [l] = await server.start(config(path))
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
    },
  )

  it('stop() waits until a backlog routed to offline sessions is on disk', async () => {
    const path = tempDir()
    const big = { listeners: [listener('tcp', { maxMqueueLen: 100_000 })], storage: { path } }
    const { server, listeners } = await startServer(big)
    const ids = Array.from({ length: 10 }, (_, i) => `backlog-${i}`)
    for (const id of ids) {
      const sub = await connect(urlFor(listeners[0]), persistent(id, 4))
      await subscribe(sub, 'b/#', 1)
      await endClient(sub)
    }
    // Routed at once, written by each session one by one (~14,000/s in
    // all): most are still in the sessions' channels when stop() is called,
    // even without a drain (upstream's stop dropped its unfinished writes).
    const count = 2_000
    const all = []
    for (let i = 0; i < count; i++) all.push(server.publish('b/x', String(i), { qos: 1 }))
    await Promise.all(all)
    await server.stop({ drainTimeoutMs: 0 })

    const [l] = await server.start(big)
    for (const id of ids) {
      const back = await resume(urlFor(l), persistent(id, 4))
      expect(back.sessionPresent).toBe(true)
      const got = await texts(back.box, count)
      expect([got[0], got[count - 1]]).toEqual(['0', String(count - 1)])
      await endClient(back.client)
    }
  })

  it('without storage nothing is kept (the control)', async () => {
    const { server, listeners } = await startServer([listener('tcp')])
    const sub = await connect(urlFor(listeners[0]), persistent('gone', 5))
    await subscribe(sub, 'q/#', 1)
    await endClient(sub)
    await server.publish('q/a', 'lost', { qos: 1 })
    await server.stop()
    const [l] = await server.start({ listeners: [listener('tcp')] })
    const back = await resume(urlFor(l), persistent('gone', 5))
    expect(back.sessionPresent).toBe(false)
  })

  it('unacknowledged in-flight QoS 1 and QoS 2 messages are sent again, and a PUBREC-ed QoS 2 gets its PUBREL', async () => {
    const path = tempDir()
    const { server, listeners } = await startServer(config(path))
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

    const [l] = await server.start(config(path))
    const again = await open(l)
    const resent = await again.count(PUBLISH, 2)
    const topics = resent.map((p) => p.body.subarray(2, 2 + p.body.readUInt16BE(0)).toString())
    expect(topics).toEqual(['f/1', 'f/2'])
    // Sent again with DUP.
    expect(resent.every((p) => (p.flags & 0x08) !== 0)).toBe(true)
    const rel = await again.next(PUBREL)
    expect(rel.body.readUInt16BE(0)).toBe(pid)
  })

  it('a session whose expiry passed while the broker was down is gone; one within its expiry is kept', async () => {
    const path = tempDir()
    const { server, listeners } = await startServer(config(path))
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

    const [l] = await server.start(config(path))
    const short = await resume(urlFor(l), persistent('short', 5, 1))
    expect(short.sessionPresent).toBe(false)
    const long = await resume(urlFor(l), persistent('long', 5))
    expect(long.sessionPresent).toBe(true)
    expect(await texts(long.box, 1)).toEqual(['queued'])
  })

  it('survive the process: a clean exit (close()), then kill -9', async () => {
    const path = tempDir()
    const broker = () =>
      nodeEval(`
        const { MqttServer } = require(${JSON.stringify(ROOT)});
        (async () => {
          const server = new MqttServer();
          const [l] = await server.start(${JSON.stringify(config(path))});
          process.on('SIGINT', () => server.close().then(() => process.exit(0)));
          console.log('port ' + l.port);
        })().catch((e) => { console.error(e); process.exit(1) });
      `)
    const session = persistent('proc', 4)
    /** A broker in a child process; the session gets what the last one kept, then `payload` is queued for it. */
    const run = async (payload: string, kept?: string) => {
      const child = broker()
      const [, port] = await child.stdoutMatch(/port (\d+)/, 15_000)
      const url = `mqtt://127.0.0.1:${port}`
      const sub = await resume(url, session)
      if (kept) {
        expect(sub.sessionPresent).toBe(true)
        expect(await texts(sub.box, 1)).toEqual([kept])
      } else {
        await subscribe(sub.client, 'p/#', 1)
      }
      await endClient(sub.client)
      const pub = await connect(url)
      await pub.publishAsync('p/x', payload, { qos: 1 })
      await endClient(pub)
      return child
    }

    const clean = await run('after a clean exit')
    clean.child.kill('SIGINT')
    expect((await clean.exit(15_000)).code).toBe(0)
    const killed = await run('after kill -9', 'after a clean exit')
    // The documented window: sled writes its log out every 500 ms; nothing
    // reports when, so the test waits past it, with room for a busy machine.
    await new Promise((r) => setTimeout(r, KILL_WINDOW_MS * 4))
    killed.child.kill('SIGKILL')
    expect((await killed.exit(15_000)).signal).toBe('SIGKILL')

    const server = track(new MqttServer())
    const [l] = await server.start(config(path))
    const back = await resume(urlFor(l), session)
    expect(back.sessionPresent).toBe(true)
    expect(await texts(back.box, 1)).toEqual(['after kill -9'])
  })
})
