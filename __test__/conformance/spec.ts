/**
 * What the conformance suite's files share: the MQTT version a test is about
 * (raw clients speak protocol levels 4 and 5), the statement ids it checks in
 * that version (the two specs number alike statements differently), a
 * persistent session's CONNECT fields, and the teardown.
 */
import { cleanup } from '../helpers'
import { type ConnectFields, destroyRaw, prop, props, type Version } from '../raw'

/** The spec's name of a protocol level: it goes in test names. */
export const label = (v: Version) => (v === 5 ? '5.0' : '3.1.1')

/** The statement ids a test checks in version `v`. */
export const pick = (v: Version, v5: string, v311: string) => (v === 5 ? v5 : v311)

/** CONNECT fields of a session that outlives its connection (5.0: expiry 60 s; 3.1.1: CleanSession 0). */
export function persistent(v: Version, clientId: string): Partial<ConnectFields> {
  return v === 5 ? { clientId, flags: 0x00, properties: props(prop.sessionExpiry(60)) } : { clientId, flags: 0x00 }
}

/** For `afterEach`: raw clients, then mqtt.js clients and servers. */
export async function teardown(): Promise<void> {
  destroyRaw()
  await cleanup()
}
