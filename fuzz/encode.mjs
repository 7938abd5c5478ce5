// Byte-level MQTT 3.1 / 3.1.1 / 5.0 packet encoder. Hand-written rather than
// mqtt-packet because the fuzzer must also express what a validating encoder
// refuses: wildcard topic names, 60,000-level topics, unknown property ids,
// reserved flags. `selfcheck.mjs` proves its valid output parses with
// mqtt-packet.

/** MQTT Variable Byte Integer (1-4 bytes). */
export function varint(n) {
  const out = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return Buffer.from(out)
}

export function u16(n) {
  const b = Buffer.allocUnsafe(2)
  b.writeUInt16BE(n & 0xffff)
  return b
}

export function u32(n) {
  const b = Buffer.allocUnsafe(4)
  b.writeUInt32BE(n >>> 0)
  return b
}

/** UTF-8 string or raw bytes with a 2-byte length prefix. */
export function str(s) {
  const body = typeof s === 'string' ? Buffer.from(s, 'utf8') : s
  return Buffer.concat([u16(body.length), body])
}

/** Fixed header (`byte0`, remaining length) followed by `parts`. */
export function packet(byte0, parts) {
  let len = 0
  for (const p of parts) len += p.length
  return Buffer.concat([Buffer.from([byte0]), varint(len), ...parts])
}

/** MQTT 5.0 property types by id. */
export const PROPS = {
  0x01: 'byte', // payload format indicator
  0x02: 'u32', // message expiry interval
  0x03: 'str', // content type
  0x08: 'str', // response topic
  0x09: 'bin', // correlation data
  0x0b: 'var', // subscription identifier
  0x11: 'u32', // session expiry interval
  0x12: 'str', // assigned client identifier
  0x13: 'u16', // server keep alive
  0x15: 'str', // authentication method
  0x16: 'bin', // authentication data
  0x17: 'byte', // request problem information
  0x18: 'u32', // will delay interval
  0x19: 'byte', // request response information
  0x1a: 'str', // response information
  0x1c: 'str', // server reference
  0x1f: 'str', // reason string
  0x21: 'u16', // receive maximum
  0x22: 'u16', // topic alias maximum
  0x23: 'u16', // topic alias
  0x24: 'byte', // maximum qos
  0x25: 'byte', // retain available
  0x26: 'pair', // user property
  0x27: 'u32', // maximum packet size
  0x28: 'byte', // wildcard subscription available
  0x29: 'byte', // subscription identifier available
  0x2a: 'byte', // shared subscription available
}

/** One property: `value` is a number, string/Buffer, or [key, value] for a pair. */
export function prop(id, value) {
  const head = varint(id)
  switch (PROPS[id]) {
    case 'byte':
      return Buffer.concat([head, Buffer.from([value & 0xff])])
    case 'u16':
      return Buffer.concat([head, u16(value)])
    case 'u32':
      return Buffer.concat([head, u32(value)])
    case 'var':
      return Buffer.concat([head, varint(value)])
    case 'str':
    case 'bin':
      return Buffer.concat([head, str(value)])
    case 'pair':
      return Buffer.concat([head, str(value[0]), str(value[1])])
    default:
      // Unknown id: `value` is the raw bytes that follow it.
      return Buffer.concat([head, value])
  }
}

/** A property block: its length, then the encoded properties. */
export function props(list) {
  const body = Buffer.concat(list)
  return Buffer.concat([varint(body.length), body])
}

const NO_PROPS = Buffer.from([0])

/**
 * CONNECT. `c`: { version 3|4|5, clientId, clean, keepAlive, props?, will?:
 * { topic, payload, qos, retain, props? }, username?, password?, reservedFlag? }.
 */
export function connect(c) {
  const v5 = c.version === 5
  const name = c.version === 3 ? 'MQIsdp' : 'MQTT'
  let flags = 0
  if (c.username != null) flags |= 0x80
  if (c.password != null) flags |= 0x40
  if (c.will) flags |= 0x04 | ((c.will.qos & 3) << 3) | (c.will.retain ? 0x20 : 0)
  if (c.clean) flags |= 0x02
  if (c.reservedFlag) flags |= 0x01
  const parts = [str(name), Buffer.from([c.version, flags]), u16(c.keepAlive)]
  if (v5) parts.push(c.props ?? NO_PROPS)
  parts.push(str(c.clientId))
  if (c.will) {
    if (v5) parts.push(c.will.props ?? NO_PROPS)
    parts.push(str(c.will.topic), str(c.will.payload))
  }
  if (c.username != null) parts.push(str(c.username))
  if (c.password != null) parts.push(str(c.password))
  return packet(0x10, parts)
}

/** PUBLISH. `p`: { v5, topic, qos, retain, dup, id, props?, payload }. */
export function publish(p) {
  const byte0 = 0x30 | (p.dup ? 8 : 0) | ((p.qos & 3) << 1) | (p.retain ? 1 : 0)
  const parts = [str(p.topic)]
  if (p.qos > 0) parts.push(u16(p.id))
  if (p.v5) parts.push(p.props ?? NO_PROPS)
  parts.push(p.payload)
  return packet(byte0, parts)
}

/**
 * PUBACK (4), PUBREC (5), PUBREL (6), PUBCOMP (7): packet id, and for 5.0
 * optionally a reason code and properties.
 */
export function ack(type, id, v5 = false, reason, ackProps) {
  const parts = [u16(id)]
  if (v5 && reason !== undefined) {
    parts.push(Buffer.from([reason]))
    if (ackProps) parts.push(ackProps)
  }
  return packet((type << 4) | (type === 6 ? 2 : 0), parts)
}

/** SUBSCRIBE. `filters`: [[filter, optionsByte], ...]. */
export function subscribe(v5, id, filters, subProps) {
  const parts = [u16(id)]
  if (v5) parts.push(subProps ?? NO_PROPS)
  for (const [f, o] of filters) parts.push(str(f), Buffer.from([o]))
  return packet(0x82, parts)
}

/** UNSUBSCRIBE. */
export function unsubscribe(v5, id, filters, unsubProps) {
  const parts = [u16(id)]
  if (v5) parts.push(unsubProps ?? NO_PROPS)
  for (const f of filters) parts.push(str(f))
  return packet(0xa2, parts)
}

export const PINGREQ = Buffer.from([0xc0, 0])

/** DISCONNECT; for 5.0 optionally a reason code and properties. */
export function disconnect(v5, reason, discProps) {
  if (!v5 || reason === undefined) return Buffer.from([0xe0, 0])
  return packet(0xe0, discProps ? [Buffer.from([reason]), discProps] : [Buffer.from([reason])])
}

/** AUTH (5.0 only). */
export function auth(reason, authProps) {
  if (reason === undefined) return Buffer.from([0xf0, 0])
  return packet(0xf0, [Buffer.from([reason]), authProps ?? NO_PROPS])
}
