import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { afterEach, describe, expect, it } from 'vitest'

import {
  certs,
  cleanup,
  connect,
  connectRefused,
  inbox,
  listener,
  MqttServer,
  startServer,
  subscribe,
  startError,
  urlFor,
  waitFor,
} from './helpers'

afterEach(cleanup)

const tcp = (extra: Record<string, unknown> = {}) => ({ address: '127.0.0.1', port: 0, protocol: 'tcp', ...extra })

/** A file that exists but holds no PEM item. */
function junkFile(name: string, content: string): string {
  const p = join(certs().dir, name)
  writeFileSync(p, content)
  return p
}

describe('invalid config rejects with InvalidArg naming the field', () => {
  const missingDir = join(certs().dir, 'does-not-exist')
  const cases: Array<[string, unknown, RegExp]> = [
    ['config undefined', undefined, /^config: expected an object with a `listeners` array, got undefined$/],
    ['config null', null, /^config: expected an object with a `listeners` array, got null$/],
    ['config a number', 5, /^config: expected an object with a `listeners` array, got a number$/],
    ['config a string', 'tcp', /^config: expected an object with a `listeners` array, got a string$/],
    ['config an array', [tcp()], /^config: expected an object with a `listeners` array, got an array$/],
    ['no listeners field', {}, /^config: missing field `listeners`$/],
    ['empty listeners', { listeners: [] }, /^listeners: at least one listener is required$/],
    ['listeners not an array', { listeners: 'x' }, /^listeners: invalid type: string "x", expected a sequence$/],
    ['listener null', { listeners: [null] }, /^listeners\[0\]: invalid type: null/],
    [
      'unknown top-level field',
      { listeners: [tcp()], foo: 1 },
      /^foo: unknown field `foo`, expected one of `listeners`, `pluginsConfigDir`, `workerThreads`, `maxSessionExpiryInterval`, `sessionExpiryInterval`, `sysTopics`, `acl`, `aclDefault`, `users`, `passwordFile`, `jwt`, `storage`, `maxRetainedMessages`, `maxRetainedBytes`$/,
    ],
    [
      'unknown listener field',
      { listeners: [tcp({ foo: 1 })] },
      /^listeners\[0\]\.foo: unknown field `foo`, expected one of `name`, `address`, `port`/,
    ],
    ['port missing', { listeners: [{ protocol: 'tcp' }] }, /^listeners\[0\]: missing field `port`$/],
    [
      'port too large',
      { listeners: [tcp({ port: 70000 })] },
      /^listeners\[0\]\.port: must be an integer from 0 to 65535, got 70000$/,
    ],
    [
      'port negative',
      { listeners: [tcp({ port: -1 })] },
      /^listeners\[0\]\.port: must be an integer from 0 to 65535, got -1$/,
    ],
    [
      'port fractional',
      { listeners: [tcp({ port: 1.5 })] },
      /^listeners\[0\]\.port: must be an integer from 0 to 65535, got 1\.5$/,
    ],
    ['port a string', { listeners: [tcp({ port: '1883' })] }, /^listeners\[0\]\.port: invalid type: string "1883"/],
    [
      'error in the second listener names index 1',
      { listeners: [tcp(), tcp({ port: 65536 })] },
      /^listeners\[1\]\.port: must be an integer from 0 to 65535, got 65536$/,
    ],
    ['protocol missing', { listeners: [{ port: 0 }] }, /^listeners\[0\]: missing field `protocol`$/],
    [
      'protocol unknown',
      { listeners: [tcp({ protocol: 'tcpx' })] },
      /^listeners\[0\]\.protocol: unknown protocol "tcpx"; expected one of "tcp", "tls", "ws", "wss"$/,
    ],
    [
      'protocol is case-sensitive',
      { listeners: [tcp({ protocol: 'TCP' })] },
      /^listeners\[0\]\.protocol: unknown protocol "TCP"; /,
    ],
    [
      'name duplicated',
      { listeners: [tcp({ name: 'x' }), tcp(), tcp({ name: 'x' })] },
      /^listeners\[2\]\.name: "x" is already used by listeners\[0\]; names must be unique$/,
    ],
    ['name empty', { listeners: [tcp({ name: '' })] }, /^listeners\[0\]\.name: must not be empty$/],
    [
      'name not a string',
      { listeners: [tcp({ name: 5 })] },
      /^listeners\[0\]\.name: invalid type: integer `5`, expected a string$/,
    ],
    ['address empty', { listeners: [tcp({ address: '' })] }, /^listeners\[0\]\.address: must not be empty$/],
    [
      'address garbage',
      { listeners: [tcp({ address: 'not an ip!' })] },
      /^listeners\[0\]\.address: "not an ip!" is neither an IP address nor a host name$/,
    ],
    [
      'address with a port',
      { listeners: [tcp({ address: '127.0.0.1:1883' })] },
      /^listeners\[0\]\.address: "127\.0\.0\.1:1883" is neither an IP address nor a host name$/,
    ],
    [
      'tls without cert',
      { listeners: [tcp({ protocol: 'tls' })] },
      /^listeners\[0\]\.tlsCert: required for a "tls" listener \(a file path, PEM text or a Buffer\)$/,
    ],
    [
      'tls without key',
      { listeners: [tcp({ protocol: 'tls', tlsCert: certs().cert })] },
      /^listeners\[0\]\.tlsKey: required for a "tls" listener \(a file path, PEM text or a Buffer\)$/,
    ],
    [
      'wss without cert',
      { listeners: [tcp({ protocol: 'wss', tlsKey: certs().key })] },
      /^listeners\[0\]\.tlsCert: required for a "wss" listener \(a file path, PEM text or a Buffer\)$/,
    ],
    [
      'wss without key',
      { listeners: [tcp({ protocol: 'wss', tlsCert: certs().cert })] },
      /^listeners\[0\]\.tlsKey: required for a "wss" listener \(a file path, PEM text or a Buffer\)$/,
    ],
    // A missing tlsCert/tlsKey file is ENOENT, not InvalidArg: node-conventions.test.ts.
    [
      'tls cert is a directory',
      { listeners: [tcp({ protocol: 'tls', tlsCert: certs().dir, tlsKey: certs().key })] },
      /^listeners\[0\]\.tlsCert: ".*" is not a file$/,
    ],
    [
      'tlsCert on tcp',
      { listeners: [tcp({ tlsCert: certs().cert })] },
      /^listeners\[0\]\.tlsCert: only valid for "tls" and "wss" listeners, this one is "tcp"$/,
    ],
    [
      'tlsKey on ws',
      { listeners: [tcp({ protocol: 'ws', tlsKey: certs().key })] },
      /^listeners\[0\]\.tlsKey: only valid for "tls" and "wss" listeners, this one is "ws"$/,
    ],
    [
      'allowAnonymous not a boolean',
      { listeners: [tcp({ allowAnonymous: 'yes' })] },
      /^listeners\[0\]\.allowAnonymous: invalid type: string "yes", expected a boolean$/,
    ],
    [
      'port a numeric string',
      { listeners: [tcp({ port: '1883' as never })] },
      /^listeners\[0\]\.port: invalid type: string "1883", expected a number$/,
    ],
    [
      'listener null',
      { listeners: [null as never] },
      /^listeners\[0\]: invalid type: null, expected a listener object$/,
    ],
    [
      'workerThreads 0',
      { listeners: [tcp()], workerThreads: 0 },
      /^workerThreads: must be an integer from 1 to 256, got 0$/,
    ],
    [
      'workerThreads fractional',
      { listeners: [tcp()], workerThreads: 1.5 },
      /^workerThreads: must be an integer from 1 to 256, got 1.5$/,
    ],
    [
      'port a bigint',
      { listeners: [tcp({ port: 0n as never })] },
      /^config\.listeners\[0\]\.port: expected plain data, got a bigint$/,
    ],
    [
      'maxPacketSize too small',
      { listeners: [tcp({ maxPacketSize: 15 })] },
      /^listeners\[0\]\.maxPacketSize: must be an integer from 16 to 268435455, got 15$/,
    ],
    [
      'maxPacketSize too large',
      { listeners: [tcp({ maxPacketSize: 268435456 })] },
      /^listeners\[0\]\.maxPacketSize: must be an integer from 16 to 268435455, got 268435456$/,
    ],
    [
      'maxInflight 0',
      { listeners: [tcp({ maxInflight: 0 })] },
      /^listeners\[0\]\.maxInflight: must be an integer from 1 to 65535, got 0$/,
    ],
    [
      'maxInflight too large',
      { listeners: [tcp({ maxInflight: 65536 })] },
      /^listeners\[0\]\.maxInflight: must be an integer from 1 to 65535, got 65536$/,
    ],
    [
      'maxMqueueLen fractional',
      { listeners: [tcp({ maxMqueueLen: 1.5 })] },
      /^listeners\[0\]\.maxMqueueLen: must be an integer from 1 to 4294967295, got 1\.5$/,
    ],
    [
      'maxTopicAliases too large',
      { listeners: [tcp({ maxTopicAliases: 65536 })] },
      /^listeners\[0\]\.maxTopicAliases: must be an integer from 0 to 65535, got 65536$/,
    ],
    [
      'maxTopicAliases negative',
      { listeners: [tcp({ maxTopicAliases: -1 })] },
      /^listeners\[0\]\.maxTopicAliases: must be an integer from 0 to 65535, got -1$/,
    ],
    [
      'maxKeepAlive 0',
      { listeners: [tcp({ maxKeepAlive: 0 })] },
      /^listeners\[0\]\.maxKeepAlive: must be an integer from 1 to 65535, got 0$/,
    ],
    [
      'maxKeepAlive too large',
      { listeners: [tcp({ maxKeepAlive: 65536 })] },
      /^listeners\[0\]\.maxKeepAlive: must be an integer from 1 to 65535, got 65536$/,
    ],
    [
      'maxKeepAlive a string',
      { listeners: [tcp({ maxKeepAlive: '60' })] },
      /^listeners\[0\]\.maxKeepAlive: invalid type: string "60", expected a number$/,
    ],
    [
      'maxSubscriptionsPerClient 0',
      { listeners: [tcp({ maxSubscriptionsPerClient: 0 })] },
      /^listeners\[0\]\.maxSubscriptionsPerClient: must be an integer from 1 to 4294967295, got 0$/,
    ],
    [
      'maxSubscriptionsPerClient fractional',
      { listeners: [tcp({ maxSubscriptionsPerClient: 2.5 })] },
      /^listeners\[0\]\.maxSubscriptionsPerClient: must be an integer from 1 to 4294967295, got 2\.5$/,
    ],
    [
      'messageRetryInterval 0',
      { listeners: [tcp({ messageRetryInterval: 0 })] },
      /^listeners\[0\]\.messageRetryInterval: must be an integer from 1 to 65535, got 0$/,
    ],
    [
      'messageRetryInterval too large',
      { listeners: [tcp({ messageRetryInterval: 65536 })] },
      /^listeners\[0\]\.messageRetryInterval: must be an integer from 1 to 65535, got 65536$/,
    ],
    [
      'sessionExpiryInterval 0',
      { listeners: [tcp()], sessionExpiryInterval: 0 },
      /^sessionExpiryInterval: must be an integer from 1 to 4294967295, got 0$/,
    ],
    [
      'sessionExpiryInterval above the default maximum',
      { listeners: [tcp()], sessionExpiryInterval: 7201 },
      /^sessionExpiryInterval: 7201 is above maxSessionExpiryInterval \(7200\)$/,
    ],
    [
      'sessionExpiryInterval above maxSessionExpiryInterval',
      { listeners: [tcp()], maxSessionExpiryInterval: 60, sessionExpiryInterval: 61 },
      /^sessionExpiryInterval: 61 is above maxSessionExpiryInterval \(60\)$/,
    ],
    [
      'pluginsConfigDir missing',
      { listeners: [tcp()], pluginsConfigDir: missingDir },
      /^pluginsConfigDir: ".*does-not-exist" is not a directory$/,
    ],
    [
      'pluginsConfigDir a file',
      { listeners: [tcp()], pluginsConfigDir: certs().cert },
      /^pluginsConfigDir: ".*" is not a directory$/,
    ],
    [
      'pluginsConfigDir not a string',
      { listeners: [tcp()], pluginsConfigDir: 5 },
      /^pluginsConfigDir: invalid type: integer `5`, expected a string$/,
    ],
  ]

  it.each(cases)('%s', async (_label, config, message) => {
    const err = await startError(config)
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toMatch(message)
  })

  it('a default listener name clashing with an explicit one is reported on the unnamed listener', async () => {
    // listeners[1] has no name; its default is "tcp-1", which listeners[0] took.
    const err = await startError({ listeners: [tcp({ name: 'tcp-1' }), tcp()] })
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toMatch(/^listeners\[1\]\.name: "tcp-1" \(its default name\) is already used by listeners\[0\]/)
  })

  it.each([
    ['port NaN', NaN],
    ['port Infinity', Infinity],
  ])('%s names the field', async (_label, port) => {
    const err = await startError({ listeners: [tcp({ port })] })
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toMatch(/^config\.listeners\[0\]\.port: must be a finite number, got (NaN|inf)/)
  })
})

describe('invalid TLS material is reported naming the file or the listener', () => {
  const prefix = (name: string, protocol: string) =>
    new RegExp(`^listener "${name}" \\(${protocol} on 127\\.0\\.0\\.1:0\\): invalid TLS certificate or key: .+`)

  it('certificate file without a PEM certificate', async () => {
    const bad = junkFile('junk-cert.pem', 'this is not a certificate\n')
    const err = await startError({ listeners: [listener('tls', { tlsCert: bad })] })
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toBe(`listeners[0].tlsCert: no PEM certificate in "${bad}"`)
  })

  it('key file without a PEM key', async () => {
    const bad = junkFile('junk-key.pem', 'this is not a key\n')
    const err = await startError({ listeners: [listener('tls', { tlsKey: bad })] })
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toBe(`listeners[0].tlsKey: no PEM private key in "${bad}"`)
  })

  it('cert and key swapped, on a named wss listener', async () => {
    const c = certs()
    const err = await startError({ listeners: [listener('wss', { name: 'secure', tlsCert: c.key, tlsKey: c.cert })] })
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toBe(`listeners[0].tlsCert: no PEM certificate in "${c.key}"`)
  })

  it('key that does not match the certificate', async () => {
    const err = await startError({ listeners: [listener('tls', { tlsKey: certs().otherKey })] })
    expect(err.code).toBe('GenericFailure')
    expect(err.message).toMatch(prefix('tls-0', 'tls'))
    expect(err.message).toMatch(/tlsKey is not the private key of tlsCert$/)
  })

  it('a bad TLS listener next to a good tcp one starts nothing', async () => {
    const bad = junkFile('junk-cert2.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')
    const err = await startError({ listeners: [listener('tcp'), listener('tls', { tlsCert: bad })] })
    expect(err.code).toBe('GenericFailure')
    expect(err.message).toMatch(/^listener "tls-1" \(tls on 127\.0\.0\.1:0\): invalid TLS certificate or key: /)
  })
})

describe('accepted config details', () => {
  it('optional fields given as undefined or null are treated as absent', async () => {
    const { listeners } = await startServer({
      listeners: [
        {
          port: 0,
          protocol: 'tcp',
          address: '127.0.0.1',
          name: undefined,
          allowAnonymous: undefined,
          tlsCert: null as never,
        },
      ],
      pluginsConfigDir: undefined,
    })
    expect(listeners).toEqual([
      { name: 'tcp-0', protocol: 'tcp', address: '127.0.0.1', port: expect.any(Number), url: expect.any(String) },
    ])
  })

  it('limits within range are accepted and the listener serves clients', async () => {
    const { listeners } = await startServer({
      listeners: [
        listener('tcp', {
          maxPacketSize: 4096,
          maxInflight: 65535,
          maxMqueueLen: 1,
          maxTopicAliases: 65535,
          maxKeepAlive: 65535,
          maxSubscriptionsPerClient: 4294967295,
          messageRetryInterval: 65535,
        }),
      ],
      maxSessionExpiryInterval: 60,
      sessionExpiryInterval: 60,
    })
    const c = await connect(urlFor(listeners[0]))
    expect(c.connected).toBe(true)
  })

  it('maxPacketSize is enforced: a larger PUBLISH drops the sender, smaller ones pass', async () => {
    const { listeners } = await startServer([listener('tcp', { maxPacketSize: 1024 })])
    const url = urlFor(listeners[0])
    const sub = await connect(url)
    const box = inbox(sub)
    await subscribe(sub, 'limit/#', 1)
    const pub = await connect(url)
    await pub.publishAsync('limit/small', Buffer.alloc(900, 1), { qos: 1 })
    const small = await box.next()
    expect(small.topic).toBe('limit/small')
    expect(small.payload.length).toBe(900)
    const closed = waitFor(pub, 'close')
    pub.publish('limit/big', Buffer.alloc(2000, 2), { qos: 0 })
    await closed
    // The oversized message was not routed: the next one the subscriber
    // sees is the sentinel sent after it.
    const other = await connect(url)
    await other.publishAsync('limit/sentinel', 'after', { qos: 1 })
    const next = await box.next()
    expect(next.topic).toBe('limit/sentinel')
    expect(box.all.map((m) => m.topic)).toEqual(['limit/small', 'limit/sentinel'])
  })

  it('maxPacketSize smaller than a CONNECT packet refuses the client', async () => {
    const { listeners } = await startServer([listener('tcp', { maxPacketSize: 16 })])
    // CONNECT with a 20-character client id is 34 bytes long.
    const err = await connectRefused(urlFor(listeners[0]), { clientId: 'c'.repeat(20) })
    expect(err.message).toMatch(/Server unavailable/)
  })

  it('workerThreads: 1 runs a working broker', async () => {
    const { listeners } = await startServer({ listeners: [listener('tcp')], workerThreads: 1 })
    const c = await connect(urlFor(listeners[0]))
    expect(c.connected).toBe(true)
  })

  it('pluginsConfigDir pointing at an existing (empty) directory is accepted', async () => {
    const dir = join(certs().dir, 'plugins')
    mkdirSync(dir, { recursive: true })
    const { listeners } = await startServer({ listeners: [listener('tcp')], pluginsConfigDir: dir })
    const c = await connect(urlFor(listeners[0]))
    expect(c.connected).toBe(true)
  })
})

describe('config helpers', () => {
  it('createBasicConfig() defaults to 0.0.0.0:1883 over tcp', () => {
    expect(MqttServer.createBasicConfig()).toEqual({
      listeners: [{ name: 'tcp', protocol: 'tcp', address: '0.0.0.0', port: 1883, allowAnonymous: true }],
    })
  })

  it('createBasicConfig(port, address) produces a config that starts', async () => {
    const cfg = MqttServer.createBasicConfig(0, '127.0.0.1')
    expect(cfg).toEqual({
      listeners: [{ name: 'tcp', protocol: 'tcp', address: '127.0.0.1', port: 0, allowAnonymous: true }],
    })
    const { listeners } = await startServer(cfg)
    expect(listeners).toEqual([
      { name: 'tcp', protocol: 'tcp', address: '127.0.0.1', port: expect.any(Number), url: expect.any(String) },
    ])
    const c = await connect(urlFor(listeners[0]))
    expect(c.connected).toBe(true)
  })

  it('createMultiProtocolConfig opens one listener per given port, all reachable', async () => {
    const c = certs()
    const cfg = MqttServer.createMultiProtocolConfig({
      tcpPort: 0,
      tlsPort: 0,
      wsPort: 0,
      wssPort: 0,
      address: '127.0.0.1',
      tlsCert: c.cert,
      tlsKey: c.key,
    })
    expect(cfg.listeners.map((l) => [l.name, l.protocol])).toEqual([
      ['tcp', 'tcp'],
      ['tls', 'tls'],
      ['ws', 'ws'],
      ['wss', 'wss'],
    ])
    // Certificates only on the TLS listeners.
    expect(cfg.listeners.map((l) => l.tlsCert ?? null)).toEqual([null, c.cert, null, c.cert])
    const { listeners } = await startServer(cfg)
    expect(listeners.map((l) => l.protocol)).toEqual(['tcp', 'tls', 'ws', 'wss'])
    for (const info of listeners) {
      const client = await connect(urlFor(info))
      expect(client.connected, info.protocol).toBe(true)
    }
  })

  it('createMultiProtocolConfig passes allowAnonymous to every listener', () => {
    const cfg = MqttServer.createMultiProtocolConfig({ tcpPort: 1, wsPort: 2, allowAnonymous: false })
    expect(cfg.listeners.map((l) => l.allowAnonymous)).toEqual([false, false])
    expect(cfg.listeners.map((l) => l.address)).toEqual(['0.0.0.0', '0.0.0.0'])
  })

  it('createMultiProtocolConfig without any port throws', () => {
    expect(() => MqttServer.createMultiProtocolConfig({})).toThrow(
      /^options: give at least one of tcpPort, tlsPort, wsPort, wssPort$/,
    )
  })

  it.each([
    [() => MqttServer.createBasicConfig(-1), /^createBasicConfig: port: must be an integer from 0 to 65535, got -1$/],
    [() => MqttServer.createBasicConfig(1.5), /^createBasicConfig: port: must be an integer from 0 to 65535, got 1.5$/],
    [() => MqttServer.createBasicConfig('x' as never), /^createBasicConfig: port must be a number, got a string$/],
    [
      () => MqttServer.createMultiProtocolConfig({ tcpPort: -1 }),
      /^options\.tcpPort: must be an integer from 0 to 65535, got -1$/,
    ],
    [() => MqttServer.createMultiProtocolConfig({ tcpPort: 1, tlsPrt: 2 } as never), /^options\.tlsPrt: unknown field/],
  ])('config helpers reject bad input (%#)', (call, message) => {
    let err: any
    try {
      call()
    } catch (e) {
      err = e
    }
    expect(err?.code).toBe('InvalidArg')
    expect(err?.message).toMatch(message)
  })
})
