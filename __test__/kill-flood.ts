/**
 * A QoS 1/2 flood into a persistent session whose broker (a child process)
 * is killed with SIGKILL at random moments; counts what the broker
 * acknowledged to the publisher and never delivered after the restarts.
 * Used by the kill -9 tests of `storage.sync` 'interval' and 'always'.
 */
import type { MqttClient } from 'mqtt'
import { expect } from 'vitest'

import { ROOT, connect, nodeEval, subscribe, tempDir, withDeadline } from './helpers'

/** Publishes awaiting their PUBACK at once. */
const WINDOW = 32
/** How long a write may take to reach the disk (sled's flush interval; docs/persistence.md). */
export const KILL_WINDOW_MS = 500
/** The loss window asserted: sled's interval, with room for a busy machine. */
export const LOSS_WINDOW_MS = KILL_WINDOW_MS * 3

/** A broker in a child process on the store `path`; prints `port N` once start() resolved. */
export function broker(path: string, sync?: 'always' | 'interval') {
  // A queue deep enough for every message of the test: one dropped because
  // a queue is full is the queue's policy, not a durability failure.
  const config = {
    listeners: [{ protocol: 'tcp', port: 0, address: '127.0.0.1', maxMqueueLen: 1_000_000 }],
    storage: sync ? { path, sync } : { path },
  }
  return nodeEval(`
    const { MqttServer } = require(${JSON.stringify(ROOT)});
    (async () => {
      const server = new MqttServer();
      const [l] = await server.start(${JSON.stringify(config)});
      console.log('port ' + l.port);
    })().catch((e) => { console.error(e); process.exit(1) });
  `)
}

/** Drops a client without waiting for anything: its broker is gone. */
export function drop(c: MqttClient): void {
  c.on('error', () => {})
  c.stream?.destroy()
  c.end(true)
}

export interface Outcome {
  acknowledged: number
  lost: number
  duplicates: number
  /** The oldest a lost message's PUBACK/PUBCOMP was when its broker was killed (0: none lost). */
  window: number
  /**
   * The same over the messages routed while the subscriber was offline
   * (stored as they arrive: sled's flush interval); a connected
   * subscriber's queue is in memory only, lost whatever its age.
   */
  offlineWindow: number
  /** The sentinel published after the last restart arrived: the session and its subscription survived. */
  sentinel: boolean
  /** Connected rounds whose marker did not arrive: the session came back without its subscription. */
  markersMissed: number[]
}

export interface FloodOptions {
  /** The broker's `storage.sync` (unset: the default). */
  sync?: 'always' | 'interval'
  /**
   * The subscriber stays offline in every flooded round: it subscribes to a
   * first broker that is killed without a flood, and comes back only after
   * the last kill. Otherwise rounds alternate between it offline and online.
   */
  offline?: boolean
}

/**
 * Floods a persistent session at `qos` and kills its broker `kills` times
 * (at random moments of a flood).
 */
export async function flood(qos: 1 | 2, kills: number, perRound: number, opts: FloodOptions = {}): Promise<Outcome> {
  const path = tempDir()
  const acked = new Set<number>()
  const received = new Map<number, number>()
  /** Round each message was published in, and whether its subscriber was online then. */
  const online = new Map<number, boolean>()
  const ackedAt = new Map<number, number>()
  const killAt = new Map<number, number>()
  let seq = 0
  let sentinel = false
  const markersMissed: number[] = []
  /** Non-numeric payloads (markers, the sentinel) the subscriber waits for. */
  const waiting = new Map<string, () => void>()
  const arrival = (text: string) => new Promise<void>((r) => waiting.set(text, r))
  const onMessage = (_t: string, payload: Buffer) => {
    const text = payload.toString()
    const n = Number(text)
    if (Number.isInteger(n)) received.set(n, (received.get(n) ?? 0) + 1)
    else waiting.get(text)?.()
  }
  const session = { clientId: `flood-${qos}`, clean: false, protocolVersion: 4 as const }
  const began = Date.now()

  const last = opts.offline ? kills + 1 : kills
  for (let round = 0; round <= last; round++) {
    const child = broker(path, opts.sync)
    const [, port] = await child.stdoutMatch(/port (\d+)/, 15_000)
    const url = `mqtt://127.0.0.1:${port}`
    const connected = !opts.offline || round === 0 || round === last
    const sub = connected ? await connect(url, session, (c) => c.on('message', onMessage)) : undefined
    if (sub && round === 0) {
      await subscribe(sub, 'f/#', qos)
      // A new session and its subscription reach the disk within sled's
      // flush interval (500 ms; docs/persistence.md); nothing reports when.
      await new Promise((r) => setTimeout(r, KILL_WINDOW_MS * 4))
    }
    // Half the rounds flood an offline session (stored as it arrives),
    // half an online one (delivered, or queued in memory, when killed).
    const subOnline = opts.offline ? round === last : round % 2 === 0
    if (!subOnline) sub?.end(true)
    const pub = await connect(url)

    // What the resumed session kept arrives before a marker published now
    // (in order, MQTT-4.6.0-6); waiting for it checks that the session came
    // back with its subscription, and leaves in memory only what is routed
    // from here on, so that a kill loses of the earlier rounds only what
    // was never written (a connected session's queue is in memory).
    const mark = async (text: string) => {
      const arrived = arrival(text)
      await pub.publishAsync('f/mark', text, { qos })
      return withDeadline(arrived, 15_000, () => `no ${text}`).then(
        () => true,
        () => false,
      )
    }
    if (round === last) {
      // The last broker is not killed: everything it kept arrives before
      // the sentinel.
      sentinel = await mark('end')
      break
    }
    if (sub && subOnline && round > 0 && !(await mark(`mark-${round}`))) markersMissed.push(round)

    // Flood (at most perRound messages) for a random 20-1500 ms, then
    // kill, with publishes in flight.
    const until = opts.offline && round === 0 ? 0 : Date.now() + 20 + Math.random() * 1480
    const pending = new Set<Promise<void>>()
    const firstOfRound = seq + 1
    for (let i = 0; i < perRound && Date.now() < until; i++) {
      const n = ++seq
      online.set(n, subOnline)
      const p = pub.publishAsync('f/x', String(n), { qos }).then(
        () => {
          acked.add(n)
          ackedAt.set(n, Date.now())
        },
        () => {},
      )
      const tracked = p.finally(() => pending.delete(tracked))
      pending.add(tracked)
      if (pending.size >= WINDOW) await Promise.race(pending)
    }
    // The cap reached, the broker idles until the kill (older messages
    // must then be on disk).
    if (Date.now() < until) await new Promise((r) => setTimeout(r, until - Date.now()))
    const killedAt = Date.now()
    for (let n = firstOfRound; n <= seq; n++) killAt.set(n, killedAt)
    child.child.kill('SIGKILL')
    expect((await child.exit(15_000)).signal).toBe('SIGKILL')
    drop(pub)
    if (sub) drop(sub)
  }

  const lost = [...acked].filter((n) => !received.has(n))
  const lostOnline = lost.filter((n) => online.get(n)).length
  const duplicates = [...received.values()].reduce((a, c) => a + c - 1, 0)
  /** The oldest a lost message's PUBACK was when the broker was killed: the loss window. */
  const age = (n: number) => killAt.get(n)! - ackedAt.get(n)!
  const window = Math.max(0, ...lost.map(age))
  const offlineWindow = Math.max(0, ...lost.filter((n) => !online.get(n)).map(age))
  console.log(
    `kill -9 QoS ${qos} flood (storage.sync ${opts.sync ?? 'default'}${opts.offline ? ', subscriber offline' : ''}): ${kills} kills in ${((Date.now() - began) / 1000).toFixed(1)} s, ${seq} published, ` +
      `${acked.size} acknowledged, ${received.size} received, ${lost.length} acknowledged and lost ` +
      `(${lostOnline} while the subscriber was online, ${lost.length - lostOnline} offline), ${duplicates} duplicates, ` +
      `loss window ${window} ms (the oldest lost message's PUBACK before its kill; ${offlineWindow} ms offline), sentinel ${sentinel}, ` +
      `markers missed ${markersMissed.length ? markersMissed.join(',') : 'none'}`,
  )
  return { acknowledged: acked.size, lost: lost.length, duplicates, window, offlineWindow, sentinel, markersMissed }
}
