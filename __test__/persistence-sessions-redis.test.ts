/**
 * `storage: { redis }` keeps persistent sessions in Redis (rmqtt-session-storage's
 * Redis backend) as `storage: { path }` does on disk: subscriptions, queued
 * and in-flight messages, QoS 2 state, expiry counted while the broker is
 * down; under the broker's key prefix, which one running broker holds at a
 * time. A real `redis-server` on a free port (`./redis`).
 */
import { spawnSync } from 'node:child_process'

import { afterEach, describe, expect, it } from 'vitest'

import {
  type ListenerInfo,
  MqttServer,
  ROOT,
  type ServerConfig,
  cleanup,
  connect,
  endClient,
  eventually,
  inbox,
  killChildren,
  listener,
  nodeEval,
  startError,
  startServer,
  subscribe,
  track,
  urlFor,
} from './helpers'
import { destroyRaw } from './raw'
import { redisTests, startRedis, useRedis } from './redis'
import { persistent, resume, storeTests, texts } from './sessions'

const redis = useRedis()
let prefixes = 0

afterEach(async () => {
  destroyRaw()
  killChildren()
  await cleanup()
})

/** A prefix of its own for each test: they share one Redis. */
function prefix(): string {
  return `sess${++prefixes}-${process.pid}`
}

function config(keyPrefix: string, url = redis().url): ServerConfig {
  return { listeners: [listener('tcp')], storage: { redis: url, keyPrefix } }
}

/** What start() says when another running broker holds the prefix. */
const IN_USE =
  /^storage\.redis: the key prefix "[^"]+" at redis:\/\/127\.0\.0\.1:\d+\/0 is in use by another running broker/

/** Whether Redis at `port` holds `key` (redis-cli, installed with redis-server). */
function exists(port: number, key: string): boolean {
  return spawnSync('redis-cli', ['-p', String(port), 'EXISTS', key], { encoding: 'utf8' }).stdout.trim() === '1'
}

describe.runIf(redisTests)('persistent sessions with storage.redis', () => {
  storeTests(() => config(prefix()))

  it('another key prefix is another store; the same prefix is refused while a broker runs, and free after its stop()', async () => {
    const p = prefix()
    const { server, listeners } = await startServer(config(p))
    const sub = await connect(urlFor(listeners[0]), persistent('shared-id', 4))
    await subscribe(sub, 's/#', 1)
    await endClient(sub)
    await server.publish('s/1', 'for the first prefix', { qos: 1 })

    // Running: a second broker on the prefix is refused, and says why.
    const refused = await startError(config(p))
    expect(refused.message).toMatch(IN_USE)
    expect(refused.message).toContain(`"${p}"`)

    // Another prefix, same client id: no session there, and its own session
    // does not touch the first one.
    const { server: other, listeners: otherListeners } = await startServer(config(prefix()))
    const there = await resume(urlFor(otherListeners[0]), persistent('shared-id', 4))
    expect(there.sessionPresent).toBe(false)
    await subscribe(there.client, 'other/#', 1)
    await endClient(there.client)
    await other.stop()

    await server.stop()
    // Free once stopped: another broker (object) on the prefix gets the session.
    const { url } = await startServer(config(p))
    const back = await resume(url, persistent('shared-id', 4))
    expect(back.sessionPresent).toBe(true)
    expect(await texts(back.box, 1)).toEqual(['for the first prefix'])
  })

  it('a start() that fails after taking the prefix (a port in use) lets it go', async () => {
    const p = prefix()
    const { listeners } = await startServer()
    const busy = { ...config(p), listeners: [listener('tcp', { port: listeners[0].port })] }
    expect((await startError(busy)).code).toBe('EADDRINUSE')
    // Not left locked for the TTL: another broker takes the prefix at once.
    const { server } = await startServer(config(p))
    await server.stop()
  })

  it('survive kill -9 of the broker process; its prefix is refused while it runs and taken over at once after', async () => {
    const p = prefix()
    const child = nodeEval(`
      const { MqttServer } = require(${JSON.stringify(ROOT)});
      (async () => {
        const server = new MqttServer();
        const [l] = await server.start(${JSON.stringify(config(p))});
        console.log('port ' + l.port);
      })().catch((e) => { console.error(e); process.exit(1) });
    `)
    const [, port] = await child.stdoutMatch(/port (\d+)/, 15_000)
    const url = `mqtt://127.0.0.1:${port}`
    const sub = await connect(url, persistent('killed', 5))
    await subscribe(sub, 'k/#', 2)
    await endClient(sub)
    const pub = await connect(url)
    await pub.publishAsync('k/1', 'one', { qos: 1 })
    await pub.publishAsync('k/2', 'two', { qos: 2 })
    await endClient(pub)

    // Another process holds the prefix while it runs.
    expect((await startError(config(p))).message).toMatch(IN_USE)

    // No wait: an offline session's message is in Redis before its next one
    // is taken, and Redis is left running.
    child.child.kill('SIGKILL')
    expect((await child.exit(15_000)).signal).toBe('SIGKILL')

    // Its lock is still in Redis (it never ran stop()), but its holder is
    // known gone: taken over without waiting for the lock's TTL.
    const began = Date.now()
    const server = track(new MqttServer())
    let l: ListenerInfo | undefined
    // Only Linux tells a dead holder from a live one; elsewhere its lock
    // runs out after its 10 s TTL, and nothing signals when.
    const patience = process.platform === 'linux' ? 0 : 15_000
    while (!l) {
      try {
        ;[l] = await server.start(config(p))
      } catch (e) {
        if (Date.now() - began > patience) throw e
        await new Promise((r) => setTimeout(r, 500))
      }
    }
    if (process.platform === 'linux') expect(Date.now() - began).toBeLessThan(5_000)
    const back = await resume(urlFor(l), persistent('killed', 5))
    expect(back.sessionPresent).toBe(true)
    expect((await texts(back.box, 2)).sort()).toEqual(['one', 'two'])
  })
})

describe.runIf(redisTests)('Redis killed under a broker with persistent sessions', () => {
  it('live traffic goes on; the outage is counted once; the prefix is locked again once Redis is back', async () => {
    const own = await startRedis()
    try {
      const p = prefix()
      const { server, url } = await startServer(config(p, own.url))
      const sub = await connect(url, persistent('live', 5))
      const box = inbox(sub)
      await subscribe(sub, 'l/#', 1)
      const pub = await connect(url)

      await own.kill()
      // The watcher pings every second; no event says when it has noticed.
      const noticed = Date.now() + 10_000
      while ((await server.stats()).storageOutages === 0 && Date.now() < noticed) {
        await new Promise((r) => setTimeout(r, 100))
      }
      expect((await server.stats()).storageOutages).toBe(1)
      // A persistent subscriber still gets live messages; a new persistent
      // client connects, subscribes and gets them too.
      await pub.publishAsync('l/1', 'during the outage', { qos: 1 })
      expect((await box.next()).payload.toString()).toBe('during the outage')
      const late = await connect(url, persistent('late', 4))
      const lateBox = inbox(late)
      await subscribe(late, 'l/#', 1)
      await pub.publishAsync('l/2', 'still during it', { qos: 1 })
      expect((await lateBox.next()).payload.toString()).toBe('still during it')

      // Back, empty (it saves nothing): the running broker puts its lock back
      // within its renewal period, so a second broker is refused again.
      await own.start()
      expect(await eventually(() => exists(own.port, `${p}:lock`), 10_000)).toBe(true)
      expect((await startError(config(p, own.url))).message).toMatch(IN_USE)
      expect((await server.stats()).storageOutages).toBe(1)
      await endClient(late)
      await endClient(sub)
      await endClient(pub)
    } finally {
      await own.kill()
    }
  })
})
