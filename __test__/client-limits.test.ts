/**
 * Per-client bounds set in the config: the longest keep-alive
 * (`maxKeepAlive`), the most subscriptions (`maxSubscriptionsPerClient`)
 * and the lifetime of an MQTT 3.1.1 persistent session
 * (`sessionExpiryInterval`). Raw clients, to read CONNACK and SUBACK bytes.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, EVENT_TIMEOUT, listener, type ListenerInfo, startServer, withDeadline } from './helpers'
import {
  CONNACK,
  destroyRaw,
  packet,
  propValue,
  props,
  rawConnect,
  type RawClient,
  readProperties,
  str,
  SUBACK,
  u16,
  type Version,
} from './raw'

afterEach(async () => {
  destroyRaw()
  await cleanup()
})

async function connectRaw(
  info: ListenerInfo,
  version: Version,
  clientId: string,
  keepAlive: number,
  clean = true,
): Promise<{ c: RawClient; code: number; sessionPresent: boolean; props: Buffer }> {
  const c = await rawConnect(info)
  await c.write(
    packet(
      0x10,
      str('MQTT'),
      Buffer.from([version, clean ? 0x02 : 0x00]),
      u16(keepAlive),
      ...(version === 5 ? [props()] : []),
      str(clientId),
    ),
  )
  const ack = await c.next(CONNACK)
  return { c, code: ack.body[1], sessionPresent: (ack.body[0] & 1) === 1, props: ack.body.subarray(2) }
}

async function pingOk(c: RawClient): Promise<void> {
  await c.write(packet(0xc0))
  await c.next(13)
}

describe('maxKeepAlive', () => {
  it('MQTT 5: a client asking for more, or for none, is told the maximum in Server Keep Alive; one asking for less keeps its own [MQTT-3.2.2-21]', async () => {
    const { listeners } = await startServer([listener('tcp', { maxKeepAlive: 30 })])
    const asked: Array<[number, number]> = []
    for (const keepAlive of [120, 0, 10, 30]) {
      const { c, code, props: p } = await connectRaw(listeners[0], 5, `ka5-${keepAlive}`, keepAlive)
      expect(code).toBe(0)
      asked.push([keepAlive, propValue<number>(readProperties(p).props, 0x13) ?? keepAlive])
      await pingOk(c)
    }
    expect(asked).toEqual([
      [120, 30],
      [0, 30],
      [10, 10],
      [30, 30],
    ])
  })

  it('MQTT 3.1.1: a keep-alive above the maximum, or none, is refused with 0x02 and leaves the connected session alone; one within it is accepted', async () => {
    const { listeners } = await startServer([listener('tcp', { maxKeepAlive: 30 })])
    const ok = await connectRaw(listeners[0], 4, 'ka4', 30)
    expect(ok.code).toBe(0)
    for (const keepAlive of [31, 0]) {
      const refused = await connectRaw(listeners[0], 4, 'ka4', keepAlive)
      expect({ keepAlive, code: refused.code }).toEqual({ keepAlive, code: 0x02 })
      await refused.c.waitClosed()
    }
    await pingOk(ok.c)
  })

  it('without maxKeepAlive any keep-alive is accepted, 0 included', async () => {
    const { listeners } = await startServer()
    for (const [version, keepAlive] of [
      [4, 0],
      [4, 65535],
      [5, 0],
      [5, 65535],
    ] as const) {
      const { c, code } = await connectRaw(listeners[0], version, `ka-any-${version}-${keepAlive}`, keepAlive)
      expect({ version, keepAlive, code }).toEqual({ version, keepAlive, code: 0 })
      await pingOk(c)
    }
  })
})

describe('maxSubscriptionsPerClient', () => {
  it.each([
    ['5.0', 5, 0x97],
    ['3.1.1', 4, 0x80],
  ] as const)(
    'MQTT %s: filters beyond the limit fail (0x97 / 0x80), a held filter can still be subscribed again',
    async (_, version, failure) => {
      const { listeners } = await startServer([listener('tcp', { maxSubscriptionsPerClient: 2 })])
      const { c } = await connectRaw(listeners[0], version, `subs-${version}`, 60)
      const subscribe = async (id: number, filters: string[]) => {
        c.chunks.splice(0)
        await c.write(
          packet(
            0x82,
            u16(id),
            ...(version === 5 ? [props()] : []),
            ...filters.flatMap((f) => [str(f), Buffer.from([1])]),
          ),
        )
        const ack = await c.next(SUBACK)
        // SUBACK: packet id, (5.0: properties, short here), one code per filter.
        return [...ack.body.subarray(version === 5 ? 3 + ack.body[2] : 2)]
      }
      expect(await subscribe(1, ['a', 'b', 'c'])).toEqual([1, 1, failure])
      expect(await subscribe(2, ['a', 'd'])).toEqual([1, failure])
    },
  )
})

describe('sessionExpiryInterval', () => {
  it('an MQTT 3.1.1 persistent session ends sessionExpiryInterval after its connection', async () => {
    const { server, listeners } = await startServer({ listeners: [listener('tcp')], sessionExpiryInterval: 1 })
    let terminated: (() => void) | undefined
    const ended = new Promise<void>((res) => (terminated = res))
    server.setHooks({ onSessionTerminated: (s) => s.clientId === 'short' && terminated!() })
    const first = await connectRaw(listeners[0], 4, 'short', 60, false)
    expect(first.code).toBe(0)
    const resumed = await connectRaw(listeners[0], 4, 'short', 60, false)
    expect(resumed.sessionPresent).toBe(true)
    const left = Date.now()
    resumed.c.socket.end(packet(0xe0))
    await withDeadline(ended, EVENT_TIMEOUT, () => 'the session did not end')
    expect(Date.now() - left).toBeGreaterThanOrEqual(900)
    const after = await connectRaw(listeners[0], 4, 'short', 60, false)
    expect(after.sessionPresent).toBe(false)
  })
})
