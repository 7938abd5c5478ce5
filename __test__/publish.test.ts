import { afterEach, describe, expect, it } from 'vitest'

import {
  allBytes,
  cleanup,
  connect,
  drain,
  inbox,
  MQTT_VERSIONS,
  MqttServer,
  patternBytes,
  QoS,
  startServer,
  subscribe,
  track,
  urlFor,
} from './helpers'

afterEach(cleanup)

async function withSubscriber(filter = 'srv/#', subQos: 0 | 1 | 2 = 2, version: '3.1.1' | '5.0' = '5.0') {
  const { server, listeners } = await startServer()
  const url = urlFor(listeners[0])
  const sub = await connect(url, MQTT_VERSIONS[version])
  const box = inbox(sub)
  await subscribe(sub, filter, subQos)
  return { server, url, sub, box }
}

describe('server.publish delivers to subscribers', () => {
  it('QoS enum values match MQTT', () => {
    expect(QoS).toEqual({ AtMostOnce: 0, AtLeastOnce: 1, ExactlyOnce: 2 })
  })

  it.each([
    ['default (AtMostOnce)', undefined, 0],
    ['QoS.AtMostOnce', QoS.AtMostOnce, 0],
    ['QoS.AtLeastOnce', QoS.AtLeastOnce, 1],
    ['QoS.ExactlyOnce', QoS.ExactlyOnce, 2],
  ] as const)('%s reaches a QoS 2 subscriber at that QoS', async (_label, qos, expected) => {
    const { server, box } = await withSubscriber()
    await server.publish('srv/q', `qos-${expected}`, qos === undefined ? undefined : { qos })
    const m = await box.next()
    expect(m.topic).toBe('srv/q')
    expect(m.payload.toString()).toBe(`qos-${expected}`)
    expect(m.packet.qos).toBe(expected)
    expect(m.packet.retain).toBe(false)
  })

  it.each([0, 1] as const)('is downgraded to a QoS %i subscription', async (subQos) => {
    const { server, box } = await withSubscriber('srv/#', subQos, '3.1.1')
    await server.publish('srv/down', 'x', { qos: QoS.ExactlyOnce })
    const m = await box.next()
    expect(m.packet.qos).toBe(subQos)
  })

  it('a string payload arrives as its UTF-8 bytes', async () => {
    const { server, box } = await withSubscriber()
    const text = 'grüße 🌍'
    await server.publish('srv/text', text, { qos: 1 })
    const m = await box.next()
    expect(Buffer.compare(m.payload, Buffer.from(text, 'utf8'))).toBe(0)
  })

  it('a Buffer payload with every byte value arrives byte-exact', async () => {
    const { server, box } = await withSubscriber()
    await server.publish('srv/buf', allBytes(), { qos: 1 })
    const m = await box.next()
    expect([...m.payload]).toEqual([...allBytes()])
  })

  it('a Uint8Array payload arrives byte-exact, respecting a view offset and length', async () => {
    const { server, box } = await withSubscriber()
    const backing = new Uint8Array(300).map((_, i) => (i * 7) & 0xff)
    const view = new Uint8Array(backing.buffer, 10, 256)
    await server.publish('srv/u8', view, { qos: 1 })
    const m = await box.next()
    expect(m.payload.length).toBe(256)
    expect([...m.payload]).toEqual([...view])
  })

  it('a Buffer that is a slice of a larger pool is sent as the slice only', async () => {
    const { server, box } = await withSubscriber()
    const pool = Buffer.from('0123456789abcdef')
    await server.publish('srv/slice', pool.subarray(4, 9), { qos: 1 })
    expect((await box.next()).payload.toString()).toBe('45678')
  })

  it('a ~100 KiB payload arrives byte-exact', async () => {
    const { server, box } = await withSubscriber()
    const big = patternBytes(100 * 1024, 99)
    await server.publish('srv/big', big, { qos: 2 })
    const m = await box.next()
    expect(Buffer.compare(m.payload, big)).toBe(0)
  })

  it('an empty payload without retain is delivered as an empty message', async () => {
    const { server, box } = await withSubscriber()
    await server.publish('srv/empty', '', { qos: 1 })
    const m = await box.next()
    expect(m.topic).toBe('srv/empty')
    expect(m.payload.length).toBe(0)
  })

  it('the payload is copied at call time: changing the Buffer afterwards does not change the message', async () => {
    const { server, box } = await withSubscriber()
    const buf = Buffer.from('original')
    const done = server.publish('srv/copy', buf, { qos: 1 })
    buf.fill(0x58) // 'X'
    await done
    expect((await box.next()).payload.toString()).toBe('original')
  })

  it('retain: live 3.1.1 subscribers get retain=false, a late subscriber gets retain=true', async () => {
    const { server, url, box } = await withSubscriber('srv/#', 2, '3.1.1')
    await server.publish('srv/ret', 'kept', { qos: 1, retain: true })
    const live = await box.next()
    expect(live.payload.toString()).toBe('kept')
    expect(live.packet.retain).toBe(false)
    expect(live.packet.qos).toBe(1)
    const late = await connect(url, MQTT_VERSIONS['5.0'])
    const lateBox = inbox(late)
    await subscribe(late, 'srv/ret', 2)
    const m = await lateBox.next()
    expect(m.payload.toString()).toBe('kept')
    expect(m.packet.retain).toBe(true)
    expect(m.packet.qos).toBe(1)
  })

  it('retain: an MQTT 5 retainAsPublished subscriber sees retain=true live', async () => {
    const { server, url } = await startServer().then(({ server, listeners }) => ({ server, url: urlFor(listeners[0]) }))
    const c = await connect(url, MQTT_VERSIONS['5.0'])
    const box = inbox(c)
    // Retain handling 2: rmqtt sends the retained messages of a new
    // subscription from a task of its own after SUBACK, which can find the
    // message published next and send it a second time, as retained.
    await c.subscribeAsync('srv/rap', { qos: 1, rap: true, rh: 2 })
    await server.publish('srv/rap', 'r', { retain: true, qos: 1 })
    const m = await box.next()
    expect(m.packet.retain).toBe(true)
    await server.publish('srv/rap', 'n', { retain: false, qos: 1 })
    expect((await box.next()).packet.retain).toBe(false)
  })

  it('reaches only matching subscriptions (wildcards), every matching client once', async () => {
    const { server, url, box } = await withSubscriber('srv/+/temp', 1)
    const other = await connect(url)
    const otherBox = inbox(other)
    await subscribe(other, 'srv/kitchen/#', 1)
    await server.publish('srv/kitchen/temp', '21', { qos: 1 })
    await server.publish('srv/kitchen/humidity', '40', { qos: 1 })
    await server.publish('srv/garage/temp', '12', { qos: 1 })
    const a = await drain(box, server, 'srv/x/temp')
    const b = await drain(otherBox, server, 'srv/kitchen/end')
    expect(a.map((m) => `${m.topic}=${m.payload}`)).toEqual(['srv/kitchen/temp=21', 'srv/garage/temp=12'])
    expect(b.map((m) => `${m.topic}=${m.payload}`)).toEqual(['srv/kitchen/temp=21', 'srv/kitchen/humidity=40'])
  })

  it('sequentially awaited publishes arrive in order', async () => {
    const { server, box } = await withSubscriber()
    for (let i = 0; i < 100; i++) await server.publish('srv/seq', String(i), { qos: 1 })
    const got: string[] = []
    for (let i = 0; i < 100; i++) got.push((await box.next()).payload.toString())
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => String(i)))
  })

  it('200 concurrent publishes all arrive exactly once', async () => {
    const { server, box } = await withSubscriber()
    await Promise.all(Array.from({ length: 200 }, (_, i) => server.publish('srv/many', String(i), { qos: 1 })))
    const got: number[] = []
    for (let i = 0; i < 200; i++) got.push(Number((await box.next()).payload.toString()))
    expect(got.sort((x, y) => x - y)).toEqual(Array.from({ length: 200 }, (_, i) => i))
    expect(await drain(box, server, 'srv/many')).toEqual([])
  })

  // A session takes the messages waiting on its channel in batches (64 at a
  // time): none may be lost at a batch's edge. The subscriber stops reading,
  // so its session blocks on a full socket while host publishes (never held
  // back by flow control) pile up on its channel; then it reads again.
  it('2,000 QoS 0 publishes queued behind a stalled subscriber all arrive, in order', async () => {
    const { server, box, sub } = await withSubscriber('srv/#', 0)
    sub.stream.pause()
    const n = 2000
    // 8 MiB in all: more than loopback socket buffers hold.
    const payload = (i: number) => Buffer.concat([Buffer.from(`${i}:`), Buffer.alloc(4096)])
    await Promise.all(Array.from({ length: n }, (_, i) => server.publish('srv/burst', payload(i))))
    sub.stream.resume()
    const got: number[] = []
    for (let i = 0; i < n; i++) got.push(Number((await box.next()).payload.toString().split(':')[0]))
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i))
    expect(await drain(box, server, 'srv/burst')).toEqual([])
  }, 30_000)

  // Known defect (reported): each publish() is routed by its own task, so
  // publishes issued back to back without awaiting each one can overtake
  // each other. MQTT orders messages per publisher; the server is one.
  it('publishes issued back to back keep their order', async () => {
    const { server, box } = await withSubscriber()
    const n = 300
    await Promise.all(Array.from({ length: n }, (_, i) => server.publish('srv/order', String(i), { qos: 1 })))
    const got: string[] = []
    for (let i = 0; i < n; i++) got.push((await box.next()).payload.toString())
    expect(got).toEqual(Array.from({ length: n }, (_, i) => String(i)))
  })

  it('$-topics are not matched by "#" but by an explicit $SYS/# subscription', async () => {
    const { server, url, box } = await withSubscriber('#', 1)
    const sys = await connect(url)
    const sysBox = inbox(sys)
    await subscribe(sys, '$SYS/#', 1)
    await server.publish('$SYS/test', 'sys', { qos: 1 })
    const s = await sysBox.next()
    expect(s.topic).toBe('$SYS/test')
    expect(await drain(box, server, 'plain/sentinel')).toEqual([])
  })

  it('resolves with nobody subscribed', async () => {
    const { server } = await startServer()
    await expect(server.publish('nobody/here', 'x', { qos: 2 })).resolves.toBeUndefined()
  })
})

describe('server.publish argument errors (InvalidArg, naming the argument)', () => {
  const cases: Array<[string, unknown[], RegExp]> = [
    ['empty topic', ['', 'x'], /^topic: must not be empty$/],
    [
      'topic with +',
      ['a/+', 'x'],
      /^topic: "a\/\+" contains a wildcard \(\+ or #\); wildcards are only valid in subscriptions$/,
    ],
    ['topic with #', ['a/#', 'x'], /^topic: "a\/#" contains a wildcard/],
    ['topic over 65535 bytes', ['t'.repeat(70000), 'x'], /^topic: is 70000 bytes long, the MQTT limit is 65535$/],
    [
      'topic over the limit in UTF-8 bytes, not characters',
      ['é'.repeat(32768), 'x'],
      /^topic: is 65536 bytes long, the MQTT limit is 65535$/,
    ],
    ['topic with NUL', ['a\u0000b', 'x'], /^topic: must not contain the NUL character$/],
    ['topic not a string', [5, 'x'], /^topic: expected a string, got a number$/],
    ['topic undefined', [undefined, 'x'], /^topic: expected a string, got undefined$/],
    ['payload a number', ['t', 5], /^payload: expected a string, Buffer or Uint8Array, got a number$/],
    ['payload null', ['t', null], /^payload: expected a string, Buffer or Uint8Array, got null$/],
    ['payload missing', ['t'], /^payload: expected a string, Buffer or Uint8Array, got undefined$/],
    ['payload a plain object', ['t', { a: 1 }], /^payload: expected a string, Buffer or Uint8Array, got an object$/],
    ['payload an ArrayBuffer', ['t', new ArrayBuffer(3)], /^payload: expected a string, Buffer or Uint8Array/],
    ['qos 3', ['t', 'x', { qos: 3 }], /^options\.qos: must be 0, 1 or 2 \(a QoS value\), got 3$/],
    ['qos -1', ['t', 'x', { qos: -1 }], /^options\.qos: must be 0, 1 or 2 \(a QoS value\), got -1$/],
    ['qos 1.5', ['t', 'x', { qos: 1.5 }], /^options\.qos: must be 0, 1 or 2 \(a QoS value\), got 1\.5$/],
    ['qos a string', ['t', 'x', { qos: '1' }], /^options\.qos: invalid type: string "1"/],
    [
      'retain not a boolean',
      ['t', 'x', { retain: 'y' }],
      /^options\.retain: invalid type: string "y", expected a boolean$/,
    ],
    [
      'unknown option',
      ['t', 'x', { qso: 1 }],
      /^options\.qso: unknown field `qso`, expected one of `qos`, `retain`, `properties`$/,
    ],
    ['options not an object', ['t', 'x', 5], /^options: expected an object, got a number$/],
  ]

  it.each(cases)('%s', async (_label, args, message) => {
    const { server } = await startServer()
    const err = await (server.publish as (...a: unknown[]) => Promise<void>)(...args).catch((e) => e)
    expect(err).toBeInstanceOf(Error)
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toMatch(message)
    expect(server.running).toBe(true)
  })

  it.each([
    ['Uint16Array', new Uint16Array(2)],
    ['DataView', new DataView(new ArrayBuffer(2))],
  ])('payload %s names the argument', async (_label, payload) => {
    const { server } = await startServer()
    const err = await server.publish('t', payload as never).catch((e) => e)
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toMatch(/^payload: /)
  })

  it('null and undefined options, and null fields, mean the defaults', async () => {
    const { server, box } = await withSubscriber('srv/d', 2, '3.1.1')
    await server.publish('srv/d', 'a', null as never)
    await server.publish('srv/d', 'b', undefined)
    await server.publish('srv/d', 'c', { qos: null, retain: null } as never)
    const got = [await box.next(), await box.next(), await box.next()]
    expect(got.map((m) => [m.payload.toString(), m.packet.qos, m.packet.retain])).toEqual([
      ['a', 0, false],
      ['b', 0, false],
      ['c', 0, false],
    ])
  })
})

describe('server.publish when not running (GenericFailure)', () => {
  const NOT_RUNNING = /^publish: the server is not running$/

  it('before start', async () => {
    const server = track(new MqttServer())
    const err = await server.publish('t', 'x').catch((e) => e)
    expect(err.code).toBe('GenericFailure')
    expect(err.message).toMatch(NOT_RUNNING)
  })

  it('after stop, and again after a restart it works', async () => {
    const { server, listeners } = await startServer()
    await server.stop()
    const err = await server.publish('t', 'x').catch((e) => e)
    expect(err.code).toBe('GenericFailure')
    expect(err.message).toMatch(NOT_RUNNING)
    const [info] = await server.start({
      listeners: [{ address: '127.0.0.1', port: listeners[0].port, protocol: 'tcp' }],
    })
    const c = await connect(urlFor(info))
    const box = inbox(c)
    await subscribe(c, 't', 1)
    await server.publish('t', 'back', { qos: 1 })
    expect((await box.next()).payload.toString()).toBe('back')
  })

  it('after close', async () => {
    const { server } = await startServer()
    await server.close()
    await expect(server.publish('t', 'x')).rejects.toThrow(NOT_RUNNING)
  })

  it('argument errors are reported before the not-running error', async () => {
    const server = track(new MqttServer())
    const err = await server.publish('', 'x').catch((e) => e)
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toMatch(/^topic: must not be empty$/)
  })
})
