/**
 * A client's Will Message is authorized as a PUBLISH of that client, when it
 * is published (rmqtt 0044-will-acl): by the native ACL rules and by
 * `onClientPublishAuthorize`. A refused will is not routed and is reported
 * through `onMessageDropped`; an allowed one still goes out. MQTT 3.1.1 and
 * 5.0, real mqtt.js clients whose connections break.
 */
import type { MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'

import type * as Addon from '../index'
import {
  cleanup,
  connect,
  inbox,
  listener,
  MqttServer,
  subscribe,
  track,
  urlFor,
  withDeadline,
  EVENT_TIMEOUT,
} from './helpers'

afterEach(cleanup)

const VERSIONS = [4, 5] as const

/** Drops the connection without DISCONNECT, so the broker publishes the will. */
function breakConnection(c: MqttClient) {
  c.on('error', () => {})
  c.stream.destroy()
}

/** The next will dropped, as `onMessageDropped` reports it. */
function droppedWills() {
  const seen: Array<{ topic: string; from: string; reason: string }> = []
  const waiting: Array<() => void> = []
  const onMessageDropped: Addon.HookCallbacks['onMessageDropped'] = (_to, from, m, info) => {
    if (from.type !== 'lastwill') return
    seen.push({ topic: m.topic, from: from.clientId, reason: info.reason })
    for (const w of waiting.splice(0)) w()
  }
  const next = (topic: string) =>
    withDeadline(
      new Promise<void>((res) => {
        const check = () => (seen.some((s) => s.topic === topic) ? res() : waiting.push(check))
        check()
      }),
      EVENT_TIMEOUT,
      () => `no onMessageDropped for the will on ${topic} (seen: ${JSON.stringify(seen)})`,
    )
  return { seen, onMessageDropped, next }
}

async function willServer(config: Partial<Addon.ServerConfig>, hooks: Addon.HookCallbacks) {
  const server = track(new MqttServer())
  await server.setHooks(hooks)
  const [info] = await server.start({ listeners: [listener('tcp')], ...config })
  return urlFor(info)
}

/** Two clients with wills, one allowed and one not; both connections break. */
async function breakBoth(url: string, protocolVersion: 4 | 5, v: string) {
  const watcher = await connect(url, { protocolVersion, username: 'watcher' })
  await subscribe(watcher, '#', 1)
  const box = inbox(watcher)
  const will = (topic: string) => ({ topic, payload: Buffer.from('gone'), qos: 1 as const, retain: false })
  const denied = await connect(url, { protocolVersion, clientId: `denied-${v}`, will: will(`forbidden/${v}`) })
  const allowed = await connect(url, { protocolVersion, clientId: `allowed-${v}`, will: will(`allowed/${v}`) })
  breakConnection(denied)
  breakConnection(allowed)
  return box
}

describe('a will is authorized as a publish of its client', () => {
  it.each(VERSIONS)('MQTT %i: by the native ACL rules', async (protocolVersion) => {
    const dropped = droppedWills()
    const url = await willServer(
      {
        acl: [
          { permission: 'allow', action: 'publish', topics: ['allowed/#'] },
          { permission: 'allow', action: 'subscribe', topics: ['#'] },
        ],
        aclDefault: 'deny',
      },
      { onMessageDropped: dropped.onMessageDropped },
    )
    const v = `acl${protocolVersion}`
    const box = await breakBoth(url, protocolVersion, v)
    await dropped.next(`forbidden/${v}`)
    expect((await box.next()).topic).toBe(`allowed/${v}`)
    // Refused before routing: reported, never delivered.
    expect(box.all.map((m) => m.topic)).not.toContain(`forbidden/${v}`)
    expect(dropped.seen).toEqual([{ topic: `forbidden/${v}`, from: `denied-${v}`, reason: expect.any(String) }])
  })

  it.each(VERSIONS)(
    'MQTT %i: by the rules in force when it is published, not at CONNECT (setAcl() in between)',
    async (protocolVersion) => {
      const dropped = droppedWills()
      const server = track(new MqttServer())
      await server.setHooks({ onMessageDropped: dropped.onMessageDropped })
      const allowAll: Addon.AclRule = { permission: 'allow', action: 'all', topics: ['#'] }
      const [info] = await server.start({ listeners: [listener('tcp')], acl: [allowAll] })
      const url = urlFor(info)
      const v = `later${protocolVersion}`
      const willTopic = `w/${v}`
      const c = await connect(url, {
        protocolVersion,
        will: { topic: willTopic, payload: Buffer.from('gone'), qos: 1, retain: false },
      })
      await server.setAcl([{ permission: 'deny', action: 'publish', topics: ['w/#'] }, allowAll])
      breakConnection(c)
      await dropped.next(willTopic)
    },
  )

  it.each(VERSIONS)('MQTT %i: by onClientPublishAuthorize, asked with the will', async (protocolVersion) => {
    const dropped = droppedWills()
    const asked: string[] = []
    const url = await willServer(
      {},
      {
        onMessageDropped: dropped.onMessageDropped,
        onClientPublishAuthorize: (session, m) => {
          asked.push(`${session.clientId} ${m.topic}`)
          return { allow: !m.topic.startsWith('forbidden/') }
        },
      },
    )
    const v = `hook${protocolVersion}`
    const box = await breakBoth(url, protocolVersion, v)
    await dropped.next(`forbidden/${v}`)
    expect((await box.next()).topic).toBe(`allowed/${v}`)
    expect(box.all.map((m) => m.topic)).not.toContain(`forbidden/${v}`)
    expect(asked.sort()).toEqual([`allowed-${v} allowed/${v}`, `denied-${v} forbidden/${v}`])
  })
})
