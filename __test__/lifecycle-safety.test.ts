/**
 * What no client and no call order can do to the broker's lifecycle and
 * limits: hold stop() hostage with a decision hook that never answers, leave
 * a broker running behind a stop() that raced start(), make the server
 * publish more than a client may, write the server's `$` topics, or keep a
 * session forever.
 */
import { createConnection, createServer } from 'node:net'
import { performance } from 'node:perf_hooks'

import type { IClientOptions, IConnackPacket, MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import {
  MQTT_VERSIONS,
  MqttServer,
  cleanup,
  connect,
  drain,
  endClient,
  inbox,
  listener,
  startServer,
  subscribe,
  track,
  urlFor,
  waitFor,
} from './helpers'

afterEach(cleanup)

/** A port free right now on 127.0.0.1. */
async function freePort(): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await waitFor(s, 'listening')
  const { port } = s.address() as { port: number }
  await new Promise<void>((res) => s.close(() => res()))
  return port
}

/** Resolves once a TCP connection to `port` is refused; fails if one is accepted. */
async function expectRefused(port: number, context: string): Promise<void> {
  const sock = createConnection(port, '127.0.0.1')
  const outcome = await Promise.race([
    waitFor<[NodeJS.ErrnoException]>(sock, 'error').then(([e]) => e.code),
    waitFor(sock, 'connect').then(() => 'connected'),
  ])
  sock.destroy()
  expect(outcome, `${context}: connecting to port ${port}`).toBe('ECONNREFUSED')
}

/** CONNACK refusal codes for a client whose authentication was denied. */
const NOT_AUTHORIZED = { 4: 5, 5: 0x87 } as const

// ---------------------------------------------------------------------------
// stop()/close() with decision hooks pending
// ---------------------------------------------------------------------------

describe('stop() and close() deny pending decisions at once instead of waiting for the hook timeout', () => {
  /** Long enough that waiting for it cannot be mistaken for a prompt stop. */
  const HOOK_TIMEOUT = 30_000

  type Decision = 'onClientAuthenticate' | 'onClientSubscribeAuthorize' | 'onClientPublishAuthorize'

  /**
   * A running server whose decision hook `name` answers only when the test
   * says so, as one waiting on a slow service would (only that hook is
   * installed, so the rest of a client's traffic is let in). The resolvers
   * are kept, so the pending Promise is not garbage-collected, which would
   * end the wait early.
   */
  async function pendingDecision(name: Decision) {
    let asked!: () => void
    const called = new Promise<void>((res) => (asked = res))
    const late: Array<(answer: { allow: boolean }) => void> = []
    const server = track(new MqttServer())
    const hook = () => {
      asked()
      return new Promise<{ allow: boolean }>((res) => late.push(res))
    }
    server.setHooks({ [name]: hook }, { timeoutMs: HOOK_TIMEOUT })
    const allowAnonymous = name !== 'onClientAuthenticate'
    const [info] = await server.start({ listeners: [listener('tcp', { allowAnonymous })] })
    return {
      server,
      url: urlFor(info),
      /** Resolves once the hook has been called. */
      called,
      /** Answers every pending call with allow: too late to matter. */
      allowLate: () => {
        for (const res of late) res({ allow: true })
      },
    }
  }

  /** Runs stop() or close() and checks it did not wait for the hook timeout. */
  async function promptly(server: MqttServer, how: 'stop' | 'close'): Promise<void> {
    const t0 = performance.now()
    await server[how]()
    expect(performance.now() - t0).toBeLessThan(HOOK_TIMEOUT / 3)
    expect(server.running).toBe(false)
  }

  it.each([
    [4, 'stop'],
    [5, 'stop'],
    [4, 'close'],
    [5, 'close'],
  ] as const)(
    'MQTT %i, %s(): a CONNECT waiting on onClientAuthenticate is refused with not authorized, never accepted',
    async (protocolVersion, how) => {
      const { server, url, called, allowLate } = await pendingDecision('onClientAuthenticate')
      const opts: IClientOptions = { protocolVersion, username: 'u', password: 'p', connectTimeout: HOOK_TIMEOUT * 2 }
      const outcome = connect(url, opts).then(
        () => 'accepted',
        (e: Error & { code?: number }) => e,
      )
      await called
      await promptly(server, how)
      allowLate()
      const result = await outcome
      expect(result).not.toBe('accepted')
      expect((result as { code?: number }).code).toBe(NOT_AUTHORIZED[protocolVersion])
    },
    HOOK_TIMEOUT * 2,
  )

  it(
    'MQTT 5, stop(): a SUBSCRIBE waiting on onClientSubscribeAuthorize is not granted',
    async () => {
      const { server, url, called, allowLate } = await pendingDecision('onClientSubscribeAuthorize')
      const sub = await connect(url, MQTT_VERSIONS['5.0'])
      sub.on('error', () => {})
      const granted = sub.subscribeAsync('pending/#', { qos: 1 }).then(
        (g) => g.map((x) => x.qos),
        (e: Error) => e.message,
      )
      await called
      await promptly(server, 'stop')
      allowLate()
      const result = await granted
      // Either a SUBACK that refuses (0x87) or no SUBACK at all: never a grant.
      if (Array.isArray(result)) expect(result).toEqual([0x87])
      else expect(result).toBeTypeOf('string')
    },
    HOOK_TIMEOUT * 2,
  )

  it(
    'MQTT 5, stop(): a PUBLISH waiting on onClientPublishAuthorize is not acknowledged as accepted',
    async () => {
      const { server, url, called, allowLate } = await pendingDecision('onClientPublishAuthorize')
      const pub = await connect(url, MQTT_VERSIONS['5.0'])
      pub.on('error', () => {})
      const acked = pub.publishAsync('pending/t', 'x', { qos: 1 }).then(
        () => 'accepted',
        (e: Error & { code?: number }) => e.code ?? e.message,
      )
      await called
      await promptly(server, 'stop')
      allowLate()
      const result = await acked
      expect(result).not.toBe('accepted')
      if (typeof result === 'number') expect(result).toBe(0x87)
    },
    HOOK_TIMEOUT * 2,
  )
})

// ---------------------------------------------------------------------------
// stop() racing start()
// ---------------------------------------------------------------------------

describe('stop() or close() called while start() is pending always ends stopped', () => {
  const CANCELLED = 'start: stop() or close() was called before the server started'

  async function race(how: 'stop' | 'close', tries: number) {
    const outcomes = { resolved: 0, rejected: 0 }
    for (let i = 0; i < tries; i++) {
      const port = await freePort()
      const server = track(new MqttServer())
      // Not awaited in between: the stop() is made while start() is pending.
      const started = server.start({ listeners: [listener('tcp', { port })] }).then(
        () => null,
        (e: Error) => e,
      )
      const stopped = server[how]()
      const err = await started
      await stopped
      const context = `try ${i}`
      expect(server.running, context).toBe(false)
      expect(server.listeners, context).toEqual([])
      if (err) {
        expect(err.message, context).toBe(CANCELLED)
        outcomes.rejected++
      } else {
        outcomes.resolved++
      }
      await expectRefused(port, context)
    }
    return outcomes
  }

  it('start() then stop() at once, 200 tries: never left running, the port is closed each time', async () => {
    const outcomes = await race('stop', 200)
    expect(outcomes.resolved + outcomes.rejected).toBe(200)
  }, 120_000)

  it('start() then close() at once, 50 tries', async () => {
    const outcomes = await race('close', 50)
    expect(outcomes.resolved + outcomes.rejected).toBe(50)
  }, 60_000)

  it('a start() made after stop() is not affected by it', async () => {
    const server = track(new MqttServer())
    const stopped = server.stop()
    const [info] = await server.start({ listeners: [listener('tcp')] })
    await stopped
    expect(server.running).toBe(true)
    const c = await connect(urlFor(info))
    expect(c.connected).toBe(true)
  })
})

// ---------------------------------------------------------------------------
// server.publish() size
// ---------------------------------------------------------------------------

describe('server.publish() obeys the packet size limit clients obey', () => {
  it('a 300 MB payload is refused naming the payload and the limit (default maxPacketSize 1 MiB)', async () => {
    const { server } = await startServer()
    const big = Buffer.alloc(300 * 1024 * 1024)
    const err = await server.publish('big/t', big).catch((e) => e)
    expect(err).toBeInstanceOf(Error)
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toBe(
      'payload: is 314572800 bytes; with this topic the message would be a 314572809-byte PUBLISH, ' +
        'larger than the largest maxPacketSize of the listeners (1048576 bytes), so at most 1048567 bytes fit',
    )
  })

  it('the limit is the largest maxPacketSize of the listeners: the largest message that fits is delivered, one byte more is refused', async () => {
    const { server, listeners } = await startServer([
      listener('tcp', { maxPacketSize: 2000 }),
      listener('tcp', { maxPacketSize: 4000 }),
    ])
    const sub = await connect(urlFor(listeners[1]))
    await subscribe(sub, 'fit/#', 1)
    const box = inbox(sub)
    // 4 bytes of header + 5 of topic + 3991 of payload = 4000.
    const fits = Buffer.alloc(3991, 7)
    await server.publish('fit/t', fits, { qos: 1 })
    expect((await box.next()).payload.equals(fits)).toBe(true)
    for (const tooBig of [Buffer.alloc(3992), 'x'.repeat(3992)]) {
      const err = await server.publish('fit/t', tooBig).catch((e) => e)
      expect(err.code).toBe('InvalidArg')
      expect(err.message).toMatch(/^payload: is 3992 bytes; .* \(4000 bytes\), so at most 3991 bytes fit$/)
    }
    expect(await drain(box, server, 'fit/sentinel')).toEqual([])
  })
})

// ---------------------------------------------------------------------------
// `$` topics
// ---------------------------------------------------------------------------

describe("clients may not publish to topics starting with $ (MQTT 5 4.7.2: they are the server's)", () => {
  it.each([4, 5] as const)(
    'MQTT %i: PUBLISH to $SYS/... at QoS 0, 1 and 2, retained, is neither routed nor retained; 5.0 gets 0x87 not authorized',
    async (protocolVersion) => {
      const { server, listeners } = await startServer()
      const url = urlFor(listeners[0])
      const watcher = await connect(url)
      await subscribe(watcher, '$SYS/#', 1)
      const box = inbox(watcher)
      const spoofer = await connect(url, { protocolVersion })
      const acks: unknown[] = []
      spoofer.on('packetreceive', (p) => {
        if (p.cmd === 'puback' || p.cmd === 'pubrec')
          acks.push({ cmd: p.cmd, reasonCode: p.reasonCode, reason: p.properties?.reasonString })
      })
      for (const qos of [0, 1, 2] as const) {
        const sent = spoofer.publishAsync(`$SYS/broker/spoof-${qos}`, 'fake', { qos, retain: true })
        if (protocolVersion === 5 && qos > 0) await expect(sent).rejects.toMatchObject({ code: 0x87 })
        else await sent // 3.1.1 cannot refuse a PUBLISH: it is acknowledged and dropped
      }
      if (protocolVersion === 5) {
        const reason = 'topics starting with $ are reserved for the server'
        expect(acks).toEqual([
          { cmd: 'puback', reasonCode: 0x87, reason },
          { cmd: 'pubrec', reasonCode: 0x87, reason },
        ])
      }
      // Not routed: the server's own $SYS message is the first to arrive.
      expect(await drain(box, server, '$SYS/sentinel')).toEqual([])
      // Not retained: a later $SYS/# subscriber gets nothing stored.
      const late = await connect(url)
      const lateBox = inbox(late)
      await subscribe(late, '$SYS/#', 1)
      expect(await drain(lateBox, server, '$SYS/sentinel')).toEqual([])
      // The spoofer is still connected: a refused publish is not a protocol error.
      expect(spoofer.connected).toBe(true)
    },
  )

  it("a will on a $ topic is not published (a will is a client's publish)", async () => {
    const { server, listeners } = await startServer()
    const url = urlFor(listeners[0])
    const watcher = await connect(url)
    await subscribe(watcher, '$SYS/#', 1)
    await subscribe(watcher, 'wills/#', 1)
    const box = inbox(watcher)
    const spoofer = await connect(url, {
      will: { topic: '$SYS/broker/will', payload: Buffer.from('fake'), qos: 1, retain: true },
    })
    const control = await connect(url, {
      will: { topic: 'wills/control', payload: Buffer.from('real'), qos: 1, retain: false },
    })
    // Sockets dropped without DISCONNECT: wills are due.
    spoofer.stream.destroy()
    await endClient(spoofer)
    control.stream.destroy()
    await endClient(control)
    const first = await box.next()
    expect(first.topic).toBe('wills/control')
    expect(await drain(box, server, '$SYS/sentinel')).toEqual([])
  })

  it('server.publish() may write $SYS, retained too, and later $SYS/# subscribers get it', async () => {
    const { server, listeners } = await startServer()
    await server.publish('$SYS/broker/version', '1.0', { qos: 1, retain: true })
    const late = await connect(urlFor(listeners[0]))
    const box = inbox(late)
    await subscribe(late, '$SYS/#', 1)
    const m = await box.next()
    expect(m.topic).toBe('$SYS/broker/version')
    expect(m.payload.toString()).toBe('1.0')
    expect(m.packet.retain).toBe(true)
  })
})

// ---------------------------------------------------------------------------
// Session expiry cap
// ---------------------------------------------------------------------------

describe('maxSessionExpiryInterval caps how long a session outlives its connection', () => {
  async function connackOf(
    url: string,
    opts: IClientOptions,
  ): Promise<{ client: MqttClient; connack: IConnackPacket }> {
    let connack!: IConnackPacket
    const client = await connect(url, opts, (c) => c.once('connect', (p) => (connack = p)))
    return { client, connack }
  }

  it('MQTT 5: a client asking 0xFFFFFFFF (never expire) is told the default cap, 7200 s, in CONNACK (3.2.2.3.2)', async () => {
    const { listeners } = await startServer()
    const { connack } = await connackOf(urlFor(listeners[0]), {
      ...MQTT_VERSIONS['5.0'],
      clean: false,
      properties: { sessionExpiryInterval: 0xffffffff },
    })
    expect(connack.properties?.sessionExpiryInterval).toBe(7200)
  })

  it('MQTT 5: above a configured cap the client gets the cap; below it keeps its own value', async () => {
    const { listeners } = await startServer({ listeners: [listener('tcp')], maxSessionExpiryInterval: 60 })
    const url = urlFor(listeners[0])
    const above = await connackOf(url, {
      ...MQTT_VERSIONS['5.0'],
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    })
    expect(above.connack.properties?.sessionExpiryInterval).toBe(60)
    const below = await connackOf(url, {
      ...MQTT_VERSIONS['5.0'],
      clean: false,
      properties: { sessionExpiryInterval: 30 },
    })
    expect(below.connack.properties?.sessionExpiryInterval ?? 30).toBe(30)
  })

  it.each([
    ['MQTT 5 asking 0xFFFFFFFF', { ...MQTT_VERSIONS['5.0'], properties: { sessionExpiryInterval: 0xffffffff } }],
    ['MQTT 3.1.1 clean: false', MQTT_VERSIONS['3.1.1']],
  ] as const)(
    '%s: the session ends once the cap (1 s) has passed after the client left',
    async (_, version) => {
      const { server, listeners } = await startServer({ listeners: [listener('tcp')], maxSessionExpiryInterval: 1 })
      const clientId = `capped-${version.protocolVersion}`
      const terminated = new Promise<string>((res) =>
        server.setHooks({ onSessionTerminated: (s, r) => (s.clientId === clientId ? res(r.reason) : undefined) }),
      )
      const client = await connect(urlFor(listeners[0]), { ...version, clientId, clean: false })
      await subscribe(client, 'capped/#', 1)
      const left = performance.now()
      await endClient(client)
      // Bounded well below rmqtt's uncapped 2 h (3.1.1) or forever (5.0).
      const reason = await Promise.race([
        terminated,
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error('session not terminated within 15 s')), 15_000)),
      ])
      expect(reason).toMatch(/expir/i)
      expect(performance.now() - left).toBeGreaterThanOrEqual(900)
    },
    30_000,
  )

  it.each([
    [0, /^maxSessionExpiryInterval: must be an integer from 1 to 4294967295, got 0$/],
    [-1, /^maxSessionExpiryInterval: must be an integer from 1 to 4294967295, got -1$/],
    [1.5, /^maxSessionExpiryInterval: must be an integer from 1 to 4294967295, got 1.5$/],
    [2 ** 32, /^maxSessionExpiryInterval: must be an integer from 1 to 4294967295, got 4294967296$/],
    ['60', /^maxSessionExpiryInterval: invalid type: string "60", expected a number/],
  ])('maxSessionExpiryInterval %j is refused naming the field', async (value, message) => {
    const server = track(new MqttServer())
    const err = await server
      .start({ listeners: [listener('tcp')], maxSessionExpiryInterval: value as number })
      .catch((e) => e)
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toMatch(message)
    expect(server.running).toBe(false)
  })
})
