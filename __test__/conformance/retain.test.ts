/**
 * Conformance: retained messages (MQTT 5.0 3.3.1.3; MQTT 3.1.1 3.1.2.4,
 * 3.3.1.3). Raw subscribers: the RETAIN flag is read on the wire. Test names
 * start with the statement ids.
 */
import { afterEach, describe, expect, it } from 'vitest'

import { type ListenerInfo, startServer } from '../helpers'
import { nextPublish, publishes, publishPacket, rawSession, rawSubscribe, type Version } from '../raw'
import { teardown } from './spec'

afterEach(teardown)

/** What a new subscriber to `filter` gets before a sentinel: [topic, payload, retain, qos]. */
async function retainedFor(info: ListenerInfo, v: Version, filter: string) {
  const c = await rawSession(info, v)
  await rawSubscribe(c, v, 1, [
    [filter, 2],
    ['zz/sentinel', 0],
  ])
  const pub = await rawSession(info, v)
  await pub.write(publishPacket(v, 'zz/sentinel', 's'))
  await nextPublish(c, 'zz/sentinel', v)
  pub.destroy()
  c.destroy()
  return publishes(c, v)
    .filter((p) => p.topic !== 'zz/sentinel')
    .map((p) => [p.topic, p.payload.toString(), p.retain, p.qos])
}

describe.each([4, 5] as Version[])('MQTT %s retained messages', (v) => {
  const name = v === 5 ? '5.0' : '3.1.1'
  const ids =
    v === 5
      ? 'MQTT-3.3.1-5 MQTT-3.3.1-6 MQTT-3.3.1-7 MQTT-3.3.1-8'
      : 'MQTT-3.3.1-5 MQTT-3.3.1-6 MQTT-3.3.1-7 MQTT-3.3.1-8 MQTT-3.3.1-10 MQTT-3.3.1-11 MQTT-3.3.1-12'

  it(`${name}: ${ids}: a retained message replaces the last one (QoS 0 too) and reaches new subscribers with RETAIN 1; an empty one removes it and is not stored; RETAIN 0 changes nothing`, async () => {
    const { listeners } = await startServer()
    const pub = await rawSession(listeners[0], v)
    await pub.write(publishPacket(v, 'r/a', 'first', { retain: true, qos: 1, packetId: 1 }))
    await pub.write(publishPacket(v, 'r/a', 'second', { retain: true }))
    await pub.write(publishPacket(v, 'r/b', 'kept', { retain: true, qos: 1, packetId: 2 }))
    await pub.write(publishPacket(v, 'r/b', 'not retained'))
    await pub.write(publishPacket(v, 'r/c', 'gone', { retain: true }))
    await pub.write(publishPacket(v, 'r/c', '', { retain: true }))
    await pub.write(publishPacket(v, 'r/d', '', { retain: true }))
    await pub.ping()
    const got = await retainedFor(listeners[0], v, 'r/#')
    got.sort((x, y) => String(x[0]).localeCompare(String(y[0])))
    expect(got).toEqual([
      ['r/a', 'second', true, 0],
      ['r/b', 'kept', true, 1],
    ])
  })

  it(`${name}: ${v === 5 ? '' : 'MQTT-3.1.2-7: '}a retained message outlives the session of the client that sent it`, async () => {
    const { listeners } = await startServer()
    const pub = await rawSession(listeners[0], v, { clientId: `ret-${v}` })
    await pub.write(publishPacket(v, 'o/a', 'left behind', { retain: true, qos: 1, packetId: 1 }))
    await pub.ping()
    await pub.write(Buffer.from([0xe0, 0]))
    await pub.waitClosed()
    expect(await retainedFor(listeners[0], v, 'o/#')).toEqual([['o/a', 'left behind', true, 1]])
  })
})
