/**
 * Native ACL rules (`acl`, `aclDefault`, `setAcl()`) and `$` topics, with
 * real mqtt.js clients on MQTT 3.1.1 and 5.0.
 */
import type { MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import type * as Addon from '../index'
import {
  EVENT_TIMEOUT,
  MqttServer,
  cleanup,
  connect,
  drain,
  inbox,
  listener,
  subackCodes,
  subscribe,
  track,
  startServer,
} from './helpers'

afterEach(cleanup)

const VERSIONS = [4, 5] as const
type Version = (typeof VERSIONS)[number]

/** SUBACK code of a refused filter. */
const refusedSub = (v: Version) => (v === 5 ? 0x87 : 0x80)

async function aclServer(config: Partial<Addon.ServerConfig>, hooks?: Addon.HookCallbacks) {
  return startServer({ listeners: [listener('tcp')], ...config }, { hooks })
}

/**
 * Publishes at QoS 1 and resolves with the PUBACK reason code (0 on 3.1.1,
 * which cannot refuse in a PUBACK).
 */
async function pubackCode(client: MqttClient, topic: string): Promise<number> {
  try {
    await client.publishAsync(topic, 'x', { qos: 1 })
    return 0
  } catch (e) {
    const code = (e as { code?: number }).code
    if (code === undefined) throw e
    return code
  }
}

/** A subscriber to `#` and the topics it received before a sentinel. */
async function watcher(url: string, protocolVersion: Version, filter = '#') {
  const sub = await connect(url, { protocolVersion, username: 'watcher' })
  await subscribe(sub, filter, 1)
  const box = inbox(sub)
  return {
    /** Topics routed so far, read up to a sentinel sent on `sentinel` (by `via`). */
    routed: async (sentinel: string, via: Parameters<typeof drain>[1] = sub) =>
      (await drain(box, via, sentinel)).map((m) => m.topic),
  }
}

const WATCHER_RULES: Addon.AclRule[] = [{ permission: 'allow', action: 'all', topics: ['#'], username: 'watcher' }]

describe.each(VERSIONS)('ACL rules on MQTT %s', (protocolVersion) => {
  it('decides PUBLISH and SUBSCRIBE by the first matching rule; 5.0 gets 0x87', async () => {
    const { url } = await aclServer({
      acl: [
        ...WATCHER_RULES,
        { permission: 'deny', action: 'all', topics: ['sensors/secret'] },
        { permission: 'allow', action: 'publish', topics: ['sensors/+'] },
        { permission: 'allow', action: 'subscribe', topics: ['sensors/#'] },
      ],
    })
    const w = await watcher(url, protocolVersion)
    const c = await connect(url, { protocolVersion })
    const denied = protocolVersion === 5 ? 0x87 : 0
    expect(await pubackCode(c, 'sensors/t1')).toBe(0)
    expect(await pubackCode(c, 'sensors/secret')).toBe(denied)
    expect(await pubackCode(c, 'other/t')).toBe(denied) // no rule: aclDefault 'deny'
    expect(await w.routed('end')).toEqual(['sensors/t1'])

    // An allow rule must cover the whole filter; a deny refuses any overlap.
    expect(await subackCodes(c, { 'sensors/a': { qos: 1 }, 'sensors/#': { qos: 1 }, other: { qos: 0 } })).toEqual([
      1,
      refusedSub(protocolVersion),
      refusedSub(protocolVersion),
    ])
  })

  it('puts the username and client id in place of %u and %c, literally', async () => {
    const { url } = await aclServer({
      acl: [...WATCHER_RULES, { permission: 'allow', action: 'all', topics: ['users/%u/#', 'devices/%c'] }],
    })
    const w = await watcher(url, protocolVersion)
    const ann = await connect(url, { protocolVersion, username: 'ann', clientId: `dev-${protocolVersion}` })
    expect(await pubackCode(ann, 'users/ann/x')).toBe(0)
    expect(await pubackCode(ann, `devices/dev-${protocolVersion}`)).toBe(0)
    await pubackCode(ann, 'users/bob/x')
    await pubackCode(ann, 'devices/other')
    // A username that is a wildcard does not widen the rule.
    const plus = await connect(url, { protocolVersion, username: '+' })
    await pubackCode(plus, 'users/ann/y')
    expect(await subackCodes(plus, { 'users/+/#': { qos: 0 } })).toEqual([refusedSub(protocolVersion)])
    expect(await w.routed('end')).toEqual(['users/ann/x', `devices/dev-${protocolVersion}`])
  })

  it('matches the client address against a CIDR block', async () => {
    const { url } = await aclServer({
      acl: [
        ...WATCHER_RULES,
        { permission: 'allow', action: 'publish', topics: ['lan'], ipAddress: '10.0.0.0/8' },
        { permission: 'allow', action: 'publish', topics: ['local'], ipAddress: '127.0.0.0/8' },
      ],
    })
    const w = await watcher(url, protocolVersion)
    const c = await connect(url, { protocolVersion })
    await pubackCode(c, 'lan')
    await pubackCode(c, 'local')
    expect(await w.routed('end')).toEqual(['local'])
  })

  it('asks the JavaScript hook only when no rule decides, and the hook decides then', async () => {
    const asked: string[] = []
    const { url } = await aclServer(
      {
        acl: [
          ...WATCHER_RULES,
          { permission: 'allow', action: 'publish', topics: ['ruled/allowed'] },
          { permission: 'deny', action: 'publish', topics: ['ruled/denied'] },
        ],
      },
      {
        onClientPublishAuthorize: (_s, m) => {
          asked.push(m.topic)
          return { allow: m.topic === 'hooked/yes' }
        },
      },
    )
    const w = await watcher(url, protocolVersion)
    const c = await connect(url, { protocolVersion })
    for (const t of ['ruled/allowed', 'ruled/denied', 'hooked/yes', 'hooked/no']) await pubackCode(c, t)
    expect(await w.routed('end')).toEqual(['ruled/allowed', 'hooked/yes'])
    expect(asked).toEqual(['hooked/yes', 'hooked/no'])
  })

  it('reports to onMessagePublish only the publishes the rules allow', async () => {
    const reported: string[] = []
    const { url } = await aclServer(
      {
        acl: [
          ...WATCHER_RULES,
          { permission: 'deny', action: 'publish', topics: ['no/#'] },
          { permission: 'allow', action: 'publish', topics: ['yes/#'] },
        ],
      },
      { onMessagePublish: (_s, _from, m) => void reported.push(m.topic) },
    )
    const w = await watcher(url, protocolVersion)
    const c = await connect(url, { protocolVersion })
    for (const t of ['no/1', 'yes/1', 'other', '$SYS/x', 'yes/2']) await pubackCode(c, t)
    expect(await w.routed('end')).toEqual(['yes/1', 'yes/2'])
    // Notifications run in order: the sentinel's comes after any earlier one.
    await expect.poll(() => reported.at(-1), { timeout: EVENT_TIMEOUT }).toBe('end')
    expect(reported).toEqual(['yes/1', 'yes/2', 'end'])
  })

  it("aclDefault: 'allow' lets through what no rule matches", async () => {
    const { url } = await aclServer({
      acl: [...WATCHER_RULES, { permission: 'deny', action: 'publish', topics: ['blocked'] }],
      aclDefault: 'allow',
    })
    const w = await watcher(url, protocolVersion)
    const c = await connect(url, { protocolVersion })
    await pubackCode(c, 'blocked')
    await pubackCode(c, 'free')
    expect(await w.routed('end')).toEqual(['free'])
  })

  it('lets a superuser (from onClientAuthenticate) past the rules, but not onto $ topics', async () => {
    const { url } = await aclServer(
      { acl: [...WATCHER_RULES] },
      { onClientAuthenticate: (r) => ({ allow: true, superuser: r.username === 'root' }) },
    )
    const w = await watcher(url, protocolVersion)
    const root = await connect(url, { protocolVersion, username: 'root', password: 'x' })
    const user = await connect(url, { protocolVersion, username: 'user', password: 'x' })
    await pubackCode(user, 'anything')
    await pubackCode(root, 'anything')
    expect(await pubackCode(root, '$SYS/fake')).toBe(protocolVersion === 5 ? 0x87 : 0)
    expect(await w.routed('end')).toEqual(['anything'])
  })
})

describe.each(VERSIONS)('$ topics on MQTT %s', (protocolVersion) => {
  const refused = protocolVersion === 5 ? 0x87 : 0

  it('are refused to clients without ACL, and an allow-all hook does not open them', async () => {
    const plain = await aclServer({})
    const c = await connect(plain.url, { protocolVersion })
    expect(await pubackCode(c, '$SYS/fake')).toBe(refused)

    const hooked = await aclServer({}, { onClientPublishAuthorize: () => ({ allow: true }) })
    const w = await watcher(hooked.url, protocolVersion, '$SYS/#')
    const h = await connect(hooked.url, { protocolVersion })
    expect(await pubackCode(h, '$SYS/fake')).toBe(refused)
    expect(await pubackCode(h, '$app/x')).toBe(refused)
    expect(await w.routed('$SYS/end', hooked.server)).toEqual([])
  })

  it('are open to a client only where a rule allows them; # does not reach them', async () => {
    const { server, url } = await aclServer({
      acl: [
        { permission: 'allow', action: 'subscribe', topics: ['$SYS/#'], username: 'watcher' },
        { permission: 'allow', action: 'publish', topics: ['$SYS/bridge/%c'] },
        { permission: 'allow', action: 'all', topics: ['#'] },
      ],
    })
    const w = await watcher(url, protocolVersion, '$SYS/#')
    const c = await connect(url, { protocolVersion, clientId: `b${protocolVersion}` })
    expect(await pubackCode(c, `$SYS/bridge/b${protocolVersion}`)).toBe(0)
    expect(await pubackCode(c, '$SYS/other')).toBe(refused)
    expect(await pubackCode(c, '$app/x')).toBe(refused)
    expect(await w.routed('$SYS/end', server)).toEqual([`$SYS/bridge/b${protocolVersion}`])
    // '#' grants every subscription but not $SYS/#.
    expect(await subackCodes(c, { '#': { qos: 0 }, '$SYS/#': { qos: 0 } })).toEqual([0, refusedSub(protocolVersion)])
  })
})

describe('setAcl()', () => {
  it('replaces the rules of a running server; later requests use the new ones', async () => {
    const { server, url } = await aclServer({
      acl: [...WATCHER_RULES, { permission: 'allow', action: 'publish', topics: ['before'] }],
    })
    const w = await watcher(url, 5)
    const c = await connect(url, { protocolVersion: 5 })
    expect(await pubackCode(c, 'before')).toBe(0)
    await server.setAcl([...WATCHER_RULES, { permission: 'allow', action: 'publish', topics: ['after'] }])
    expect(await pubackCode(c, 'before')).toBe(0x87)
    expect(await pubackCode(c, 'after')).toBe(0)
    expect(await w.routed('end')).toEqual(['before', 'after'])
  })

  it('starts enforcing on a server started without acl', async () => {
    const { server, url } = await aclServer({})
    const c = await connect(url, { protocolVersion: 5 })
    expect(await pubackCode(c, 'open')).toBe(0)
    await server.setAcl([{ permission: 'deny', action: 'publish', topics: ['open'] }])
    expect(await pubackCode(c, 'open')).toBe(0x87)
  })

  it('rejects invalid rules naming the field, and keeps the old rules', async () => {
    const { server, url } = await aclServer({
      acl: [{ permission: 'allow', action: 'all', topics: ['ok'] }],
    })
    const bad: Array<[unknown, RegExp]> = [
      [
        [
          { permission: 'allow', action: 'all', topics: ['a'] },
          { permission: 'allow', action: 'all', topics: ['a/#/b'] },
        ],
        /^acl\[1\]\.topics\[0\]: .*'#' must be the last level/,
      ],
      [[{ permission: 'allow', action: 'all', topics: ['a', 'b+'] }], /^acl\[0\]\.topics\[1\]: /],
      [[{ permission: 'allow', action: 'all', topics: [] }], /^acl\[0\]\.topics: give at least one/],
      [[{ permission: 'maybe', action: 'all', topics: ['a'] }], /^acl\[0\]\.permission: expected "allow" or "deny"/],
      [[{ permission: 'allow', action: 'read', topics: ['a'] }], /^acl\[0\]\.action: /],
      [[{ permission: 'allow', action: 'all', topics: ['a'], ipAddress: '10.0.0.0/40' }], /^acl\[0\]\.ipAddress: /],
      [
        [{ permission: 'allow', action: 'all', topics: ['a'], ipaddr: '1.2.3.4' }],
        /^acl\[0\]\.ipaddr: unknown field `ipaddr`/,
      ],
      [[{ permission: 'allow', action: 'all', topics: 'a' }], /^acl\[0\]\.topics: /],
      ['rules', /^acl: /],
    ]
    for (const [rules, message] of bad) {
      expect(() => server.setAcl(rules as Addon.AclRule[]), JSON.stringify(rules)).toThrow(message)
    }
    const c = await connect(url, { protocolVersion: 5 })
    expect(await pubackCode(c, 'ok')).toBe(0)
    expect(await pubackCode(c, 'other')).toBe(0x87)
  })

  it('throws when the server is not running', () => {
    const server = track(new MqttServer())
    expect(() => server.setAcl([])).toThrow(/setAcl: the server is not running/)
  })
})

describe('acl in start()', () => {
  it('is validated with field paths, as is aclDefault', async () => {
    const server = track(new MqttServer())
    await expect(
      server.start({
        listeners: [listener('tcp')],
        acl: [{ permission: 'allow', action: 'all', topics: ['a/%u', '#/x'] }],
      }),
    ).rejects.toThrow(/^acl\[0\]\.topics\[1\]: /)
    await expect(server.start({ listeners: [listener('tcp')], aclDefault: 'maybe' as 'allow' })).rejects.toThrow(
      /^aclDefault: expected "allow" or "deny", got "maybe"/,
    )
    expect(server.running).toBe(false)
  })
})
