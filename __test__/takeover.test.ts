/**
 * A client id's connections follow each other without a race: rapid
 * reconnects (graceful and abrupt, clean and persistent, MQTT 3.1.1 and 5.0)
 * and many clients fighting over one id are never refused, get the right
 * `sessionPresent`, and the newest connection wins while the older ones are
 * closed (5.0: DISCONNECT 0x8E first). Sessions are counted through the
 * session hooks and sockets through this process's file descriptors (the
 * broker runs in it).
 */
import { readdirSync, readlinkSync } from 'node:fs'

import { afterEach, describe, expect, it } from 'vitest'

import {
  cleanup,
  connect,
  EVENT_TIMEOUT,
  eventually,
  type ListenerInfo,
  MQTT_VERSIONS,
  type MqttServer,
  startServer,
  urlFor,
  withDeadline,
} from './helpers'
import {
  CONNACK,
  DISCONNECT,
  destroyRaw,
  packet,
  props,
  rawConnect,
  type RawClient,
  str,
  u16,
  type Version,
} from './raw'

afterEach(async () => {
  destroyRaw()
  await cleanup()
})

/** How one connection of a client id starts and ends. */
interface Shape {
  version: Version
  /** Clean Session (3.1.1) / Clean Start (5.0). */
  clean: boolean
  /** 5.0 Session Expiry Interval, seconds (3.1.1: the session persists iff not clean). */
  expiry: number
  /** Ended by destroying the socket, without DISCONNECT. */
  abrupt: boolean
}

/** Whether the session outlives the connection (MQTT-3.1.2-23 / 3.1.1 MQTT-3.1.2-4). */
const persists = (s: Shape) => (s.version === 5 ? s.expiry > 0 : !s.clean)

function connectPacket(id: string, s: Shape): Buffer {
  const expiry = Buffer.alloc(5)
  expiry[0] = 0x11
  expiry.writeUInt32BE(s.expiry, 1)
  return packet(
    0x10,
    str('MQTT'),
    Buffer.from([s.version, s.clean ? 0x02 : 0x00]),
    u16(60),
    ...(s.version === 5 ? [s.expiry > 0 ? props(expiry) : props()] : []),
    str(id),
  )
}

/** CONNACK's return / reason code and Session Present flag. */
async function connack(c: RawClient): Promise<{ code: number; sessionPresent: boolean }> {
  const ack = await c.next(CONNACK)
  return { code: ack.body[1], sessionPresent: (ack.body[0] & 1) === 1 }
}

async function open(info: ListenerInfo, id: string, s: Shape): Promise<RawClient> {
  const c = await rawConnect(info)
  await c.write(connectPacket(id, s))
  return c
}

/** Ends a connection the way `s` says, without waiting for the broker. */
function close(c: RawClient, s: Shape): void {
  if (s.abrupt) c.destroy()
  else c.socket.end(packet(0xe0, ...(s.version === 5 ? [Buffer.from([0])] : [])))
}

/** A small seeded PRNG (mulberry32), so a failing sequence can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Live sessions per client id, from `onSessionCreated` / `onSessionTerminated`,
 * with a wait for the counts to settle (the hooks arrive after the broker acts).
 */
function sessionCounter(server: MqttServer) {
  const live = new Map<string, number>()
  let events = 0
  let wake: (() => void) | undefined
  const bump = (id: string, d: number) => {
    live.set(id, (live.get(id) ?? 0) + d)
    events++
    wake?.()
  }
  server.setHooks({
    onSessionCreated: (s) => bump(s.clientId, 1),
    onSessionTerminated: (s) => bump(s.clientId, -1),
  })
  return {
    live,
    /** Resolves once `ok()` holds, or with false after `ms` without a hook event. */
    async settle(ok: () => boolean, ms = EVENT_TIMEOUT): Promise<boolean> {
      for (;;) {
        if (ok()) return true
        const seen = events
        await new Promise<void>((res) => {
          const t = setTimeout(res, ms)
          wake = () => {
            clearTimeout(t)
            res()
          }
        })
        if (events === seen) return ok()
      }
    },
  }
}

const sockets = () =>
  readdirSync('/proc/self/fd').filter((f) => {
    try {
      return readlinkSync(`/proc/self/fd/${f}`).startsWith('socket:')
    } catch {
      return false
    }
  }).length

describe('rapid reconnects of one client id [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.1.2-6] [MQTT-3.1.2-23] [MQTT-3.2.2-2] [MQTT-3.2.2-3]', () => {
  it('5,200 connect/disconnect cycles over 40 ids, 3.1.1 and 5.0, clean and persistent, graceful and abrupt: no refusal, sessionPresent always right, no session or socket left', async () => {
    const { server, listeners } = await startServer()
    const info = listeners[0]
    const sessions = sessionCounter(server)
    const socketsBefore = sockets()
    const IDS = 40
    const CYCLES = 130
    const refused: string[] = []
    const wrongFlag: string[] = []
    const lastPersists = new Map<string, boolean>()
    const closed: Promise<void>[] = []
    const started = Date.now()
    await Promise.all(
      Array.from({ length: IDS }, async (_, w) => {
        const version: Version = w % 2 === 0 ? 4 : 5
        const id = `cycle-${w}`
        const rnd = prng(w + 1)
        let persisted = false
        for (let i = 0; i < CYCLES; i++) {
          const s: Shape = {
            version,
            clean: rnd() < 0.4,
            expiry: version === 5 && rnd() < 0.5 ? 60 : 0,
            abrupt: rnd() < 0.5,
          }
          const c = await open(info, id, s)
          closed.push(c.closed)
          const { code, sessionPresent } = await connack(c)
          const at = `${id} cycle ${i} ${JSON.stringify(s)}`
          if (code !== 0) refused.push(`${at}: code 0x${code.toString(16)}`)
          else {
            const expected = !s.clean && persisted
            if (sessionPresent !== expected) wrongFlag.push(`${at}: sessionPresent ${sessionPresent}`)
            persisted = persists(s)
          }
          close(c, s)
        }
        lastPersists.set(id, persisted)
      }),
    )
    const elapsed = Date.now() - started
    console.log(
      `takeover cycles: ${IDS * CYCLES} in ${elapsed} ms, refused ${refused.length}, wrong sessionPresent ${wrongFlag.length}`,
    )
    expect({ refused: refused.slice(0, 5), wrongFlag: wrongFlag.slice(0, 5) }).toEqual({ refused: [], wrongFlag: [] })
    expect({ refused: refused.length, wrongFlag: wrongFlag.length }).toEqual({ refused: 0, wrongFlag: 0 })
    // Every connection is closed, and only the persistent sessions remain.
    await withDeadline(Promise.all(closed), EVENT_TIMEOUT, () => 'a connection was never closed')
    const expectedLive = () => [...lastPersists].every(([id, p]) => (sessions.live.get(id) ?? 0) === (p ? 1 : 0))
    const settled = await sessions.settle(expectedLive)
    const wrong = [...lastPersists].filter(([id, p]) => (sessions.live.get(id) ?? 0) !== (p ? 1 : 0))
    expect({ settled, wrong: wrong.map(([id, p]) => `${id}: live ${sessions.live.get(id)}, persistent ${p}`) }).toEqual(
      {
        settled: true,
        wrong: [],
      },
    )
    if (process.platform === 'linux') {
      const released = await eventually(() => sockets() <= socketsBefore)
      expect({ released, extra: sockets() - socketsBefore }).toMatchObject({ released: true })
    }
  })

  it.each(['3.1.1', '5.0'] as const)(
    'MQTT %s with mqtt.js: 300 reconnects of one id, every third dropped without DISCONNECT: none refused, sessionPresent right',
    async (v) => {
      const { listeners } = await startServer()
      const url = urlFor(listeners[0])
      const problems: string[] = []
      let persisted = false
      for (let i = 0; i < 300; i++) {
        const clean = i % 4 === 1
        const expiry = v === '5.0' && i % 5 < 3 ? 60 : 0
        let sessionPresent: boolean | undefined
        const c = await connect(
          url,
          {
            ...MQTT_VERSIONS[v],
            clientId: `mqttjs-${v}`,
            clean,
            ...(v === '5.0' ? { properties: { sessionExpiryInterval: expiry } } : {}),
          },
          (c) => c.once('connect', (ack) => (sessionPresent = ack.sessionPresent)),
        ).catch((e: Error & { code?: number }) => {
          problems.push(`cycle ${i}: refused, code ${e.code}: ${e.message}`)
          return undefined
        })
        if (!c) continue
        if (sessionPresent !== (!clean && persisted)) problems.push(`cycle ${i}: sessionPresent ${sessionPresent}`)
        persisted = v === '5.0' ? expiry > 0 : !clean
        if (i % 3 === 2) c.stream.destroy()
        else c.end(true)
      }
      expect(problems).toEqual([])
    },
  )
})

describe('concurrent CONNECTs of one client id: the newest wins [MQTT-3.1.4-2] [MQTT-3.1.4-3]', () => {
  const shapes: Array<[string, Omit<Shape, 'abrupt'>]> = [
    ['3.1.1 clean', { version: 4, clean: true, expiry: 0 }],
    ['3.1.1 persistent', { version: 4, clean: false, expiry: 0 }],
    ['5.0 clean start', { version: 5, clean: true, expiry: 0 }],
    ['5.0 clean start 0, expiry 0', { version: 5, clean: false, expiry: 0 }],
    ['5.0 clean start 0, expiry 60', { version: 5, clean: false, expiry: 60 }],
  ]
  it.each(shapes)(
    '%s: 50 clients at once, 3 rounds: all accepted, one left open, the others closed (5.0: 0x8E)',
    async (_, shape) => {
      const { server, listeners } = await startServer()
      const info = listeners[0]
      const sessions = sessionCounter(server)
      const s: Shape = { ...shape, abrupt: true }
      const id = 'contested'
      for (let round = 0; round < 3; round++) {
        const clients = await Promise.all(Array.from({ length: 50 }, () => open(info, id, s)))
        const acks = await Promise.all(clients.map((c) => connack(c)))
        expect(acks.filter((a) => a.code !== 0).map((a) => a.code)).toEqual([])
        // Each connection took over the one before it: its session was there
        // only if it outlives a connection, and then always but for the first.
        const present = acks.filter((a) => a.sessionPresent).length
        const expected = s.clean || !persists(s) ? 0 : round === 0 ? 49 : 50
        expect({ round, present }).toEqual({ round, present: expected })
        // All but one are closed by the broker; the one left is live.
        const left = await withDeadline(
          (async () => {
            for (;;) {
              const open = clients.filter((c) => !c.socket.closed)
              if (open.length <= 1) return open
              await Promise.race(open.map((c) => c.closed))
            }
          })(),
          EVENT_TIMEOUT * 2,
          () => `${clients.filter((c) => !c.socket.closed).length} connections still open`,
        )
        expect(left.length).toBe(1)
        await left[0].write(packet(0xc0))
        await left[0].next(13)
        if (s.version === 5) {
          const taken = clients
            .filter((c) => c !== left[0])
            .map((c) => c.packets().find((p) => p.type === DISCONNECT)?.body[0])
          expect(taken.filter((code) => code !== 0x8e)).toEqual([])
        }
        left[0].destroy()
      }
      const live = persists(s) ? 1 : 0
      expect(await sessions.settle(() => (sessions.live.get(id) ?? 0) === live)).toBe(true)
    },
  )
})
