/**
 * Raw MQTT over a plain socket, for the packets mqtt.js refuses to send
 * (malformed, invalid or half-sent): a tiny encoder, and a connection that
 * collects what the broker answers and reports when it closes.
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'

import { certs, EVENT_TIMEOUT, type ListenerInfo } from './helpers'

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/** MQTT's variable byte integer. */
export function varint(n: number): Buffer {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return Buffer.from(out)
}

export function u16(n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

/** A length-prefixed string or binary field (bytes as given: may be invalid UTF-8). */
export function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s
  return Buffer.concat([u16(b.length), b])
}

/** A packet: first byte, remaining length, body. */
export function packet(firstByte: number, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body)
  return Buffer.concat([Buffer.from([firstByte]), varint(b.length), b])
}

/** An MQTT 5 property block. */
export function props(...p: Buffer[]): Buffer {
  const b = Buffer.concat(p)
  return Buffer.concat([varint(b.length), b])
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

const tagged = (id: number, ...value: Buffer[]) => Buffer.concat([Buffer.from([id]), ...value])

export const prop = {
  payloadFormat: (n: number) => tagged(0x01, Buffer.from([n])),
  messageExpiry: (s: number) => tagged(0x02, u32(s)),
  contentType: (t: string | Buffer) => tagged(0x03, str(t)),
  responseTopic: (t: string | Buffer) => tagged(0x08, str(t)),
  correlationData: (b: Buffer) => tagged(0x09, str(b)),
  subscriptionId: (n: number) => tagged(0x0b, varint(n)),
  sessionExpiry: (s: number) => tagged(0x11, u32(s)),
  willDelay: (s: number) => tagged(0x18, u32(s)),
  requestResponseInformation: (n: number) => tagged(0x19, Buffer.from([n])),
  requestProblemInformation: (n: number) => tagged(0x17, Buffer.from([n])),
  receiveMaximum: (n: number) => tagged(0x21, u16(n)),
  topicAliasMaximum: (n: number) => tagged(0x22, u16(n)),
  topicAlias: (n: number) => tagged(0x23, u16(n)),
  authenticationMethod: (m: string) => tagged(0x15, str(m)),
  authenticationData: (d: Buffer) => tagged(0x16, str(d)),
  userProperty: (k: string | Buffer, v: string | Buffer) => tagged(0x26, str(k), str(v)),
  maximumPacketSize: (n: number) => tagged(0x27, u32(n)),
}

export type Version = 4 | 5

export interface ConnectFields {
  version: Version
  /** The connect flags byte as sent (defaults to clean start only). */
  flags?: number
  keepAlive?: number
  clientId?: string | Buffer
  /** The 5.0 CONNECT property block (default: empty). */
  properties?: Buffer
  /** Fields after the client id (will, username, password), raw. */
  rest?: Buffer[]
}

export function connectPacket({
  version,
  flags = 0x02,
  keepAlive = 60,
  clientId = '',
  properties = props(),
  rest = [],
}: ConnectFields): Buffer {
  return packet(
    0x10,
    str('MQTT'),
    Buffer.from([version, flags]),
    u16(keepAlive),
    ...(version === 5 ? [properties] : []),
    str(clientId),
    ...rest,
  )
}

/** A PUBLISH at QoS 0 (QoS 1 with `packetId`, or the `qos` given). */
export function publishPacket(
  version: Version,
  topic: string | Buffer,
  payload: string | Buffer,
  opts: { properties?: Buffer; packetId?: number; qos?: number; retain?: boolean; dup?: boolean } = {},
): Buffer {
  const qos = opts.qos ?? (opts.packetId === undefined ? 0 : 1)
  return packet(
    0x30 | (opts.dup ? 8 : 0) | (qos << 1) | (opts.retain ? 1 : 0),
    str(topic),
    ...(opts.packetId === undefined ? [] : [u16(opts.packetId)]),
    ...(version === 5 ? [opts.properties ?? props()] : []),
    Buffer.from(payload),
  )
}

/**
 * A SUBSCRIBE of each filter, at QoS 0 or with the subscription options
 * byte given next to it (QoS, No Local, Retain As Published, Retain Handling).
 */
export function subscribePacket(
  version: Version,
  packetId: number,
  filters: Array<string | Buffer | [string | Buffer, number]>,
  properties: Buffer = props(),
): Buffer {
  return packet(
    0x82,
    u16(packetId),
    ...(version === 5 ? [properties] : []),
    ...filters.flatMap((f) => (Array.isArray(f) ? [str(f[0]), Buffer.from([f[1]])] : [str(f), Buffer.from([0])])),
  )
}

/** Subscription options byte (MQTT 5.0 3.8.3.1). */
export function subOptions(qos: number, o: { noLocal?: boolean; rap?: boolean; retainHandling?: number } = {}): number {
  return qos | (o.noLocal ? 4 : 0) | (o.rap ? 8 : 0) | ((o.retainHandling ?? 0) << 4)
}

// ---------------------------------------------------------------------------
// Decoding what the broker sends back
// ---------------------------------------------------------------------------

export interface Packet {
  type: number
  flags: number
  body: Buffer
}

/** Splits a byte stream into whole packets (a trailing partial one is left out). */
export function parsePackets(data: Buffer): Packet[] {
  const out: Packet[] = []
  let i = 0
  while (i + 2 <= data.length) {
    let len = 0
    let mult = 1
    let j = i + 1
    for (;;) {
      if (j >= data.length) return out
      const b = data[j++]
      len += (b & 0x7f) * mult
      mult *= 128
      if ((b & 0x80) === 0) break
    }
    if (j + len > data.length) return out
    out.push({ type: data[i] >> 4, flags: data[i] & 0x0f, body: data.subarray(j, j + len) })
    i = j + len
  }
  return out
}

export const CONNACK = 2
export const PUBLISH = 3
export const PUBACK = 4
export const PUBREC = 5
export const PUBREL = 6
export const PUBCOMP = 7
export const SUBACK = 9
export const UNSUBACK = 11
export const PINGRESP = 13
export const DISCONNECT = 14
export const AUTH = 15

/** A 5.0 AUTH packet with its reason code and property block. */
export function authPacket(reasonCode: number, properties: Buffer): Buffer {
  return packet(0xf0, Buffer.from([reasonCode]), properties)
}

// ---------------------------------------------------------------------------
// MQTT 5 properties (2.2.2), read back in wire order
// ---------------------------------------------------------------------------

export type PropertyValue = number | string | Buffer | [string, string]
export interface Property {
  id: number
  value: PropertyValue
}

/** Each property identifier's value type (MQTT 5.0, table 2-4). */
const PROPERTY_TYPES: Record<number, 'byte' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair'> = {
  0x01: 'byte',
  0x02: 'u32',
  0x03: 'string',
  0x08: 'string',
  0x09: 'binary',
  0x0b: 'varint',
  0x11: 'u32',
  0x12: 'string',
  0x13: 'u16',
  0x15: 'string',
  0x16: 'binary',
  0x17: 'byte',
  0x18: 'u32',
  0x19: 'byte',
  0x1a: 'string',
  0x1c: 'string',
  0x1f: 'string',
  0x21: 'u16',
  0x22: 'u16',
  0x23: 'u16',
  0x24: 'byte',
  0x25: 'byte',
  0x26: 'pair',
  0x27: 'u32',
  0x28: 'byte',
  0x29: 'byte',
  0x2a: 'byte',
}

/** Reads a variable byte integer at `offset`: its value and where it ends. */
export function readVarint(buf: Buffer, offset: number): { value: number; end: number } {
  let value = 0
  let mult = 1
  let i = offset
  for (;;) {
    if (i >= buf.length) throw new Error(`variable byte integer runs past the end at ${offset}`)
    const b = buf[i++]
    value += (b & 0x7f) * mult
    mult *= 128
    if ((b & 0x80) === 0) return { value, end: i }
  }
}

/** Reads the property block that starts at `offset`: the properties in wire order, and where the block ends. */
export function readProperties(buf: Buffer, offset = 0): { props: Property[]; end: number } {
  const { value: len, end: start } = readVarint(buf, offset)
  const end = start + len
  const out: Property[] = []
  let i = start
  const bytes = () => {
    const n = buf.readUInt16BE(i)
    const b = buf.subarray(i + 2, i + 2 + n)
    i += 2 + n
    return b
  }
  while (i < end) {
    const id = buf[i++]
    const type = PROPERTY_TYPES[id]
    if (type === undefined) throw new Error(`unknown property 0x${id.toString(16)}`)
    let value: PropertyValue
    if (type === 'byte') value = buf[i++]
    else if (type === 'u16') {
      value = buf.readUInt16BE(i)
      i += 2
    } else if (type === 'u32') {
      value = buf.readUInt32BE(i)
      i += 4
    } else if (type === 'varint') {
      const v = readVarint(buf, i)
      value = v.value
      i = v.end
    } else if (type === 'binary') value = Buffer.from(bytes())
    else if (type === 'string') value = bytes().toString('utf8')
    else value = [bytes().toString('utf8'), bytes().toString('utf8')]
    out.push({ id, value })
  }
  if (i !== end) throw new Error(`property block overruns its length (${i} != ${end})`)
  return { props: out, end }
}

/** The value of the first property `id` in `list`, if any. */
export function propValue<T extends PropertyValue>(list: Property[], id: number): T | undefined {
  return list.find((p) => p.id === id)?.value as T | undefined
}

/** Every value of property `id` in `list`, in wire order. */
export function propValues<T extends PropertyValue>(list: Property[], id: number): T[] {
  return list.filter((p) => p.id === id).map((p) => p.value as T)
}

export interface Connack {
  sessionPresent: boolean
  /** The whole acknowledge flags byte (bits 7-1 are reserved). */
  ackFlags: number
  code: number
  props: Property[]
}

export function decodeConnack(p: Packet, version: Version = 5): Connack {
  return {
    ackFlags: p.body[0],
    sessionPresent: (p.body[0] & 1) === 1,
    code: p.body[1],
    props: version === 5 && p.body.length > 2 ? readProperties(p.body, 2).props : [],
  }
}

export interface Publish {
  dup: boolean
  qos: number
  retain: boolean
  topic: string
  packetId?: number
  props: Property[]
  payload: Buffer
}

export function decodePublish(p: Packet, version: Version = 5): Publish {
  const qos = (p.flags >> 1) & 3
  const topicLen = p.body.readUInt16BE(0)
  let i = 2 + topicLen
  let packetId: number | undefined
  if (qos > 0) {
    packetId = p.body.readUInt16BE(i)
    i += 2
  }
  let list: Property[] = []
  if (version === 5) {
    const r = readProperties(p.body, i)
    list = r.props
    i = r.end
  }
  return {
    dup: (p.flags & 8) !== 0,
    qos,
    retain: (p.flags & 1) !== 0,
    topic: p.body.subarray(2, 2 + topicLen).toString('utf8'),
    packetId,
    props: list,
    payload: p.body.subarray(i),
  }
}

/**
 * An acknowledgement with a packet identifier (PUBACK, PUBREC, PUBREL,
 * PUBCOMP: one reason code; SUBACK, UNSUBACK: one per filter). A 5.0
 * PUBACK-like packet of length 2 means reason 0x00, no properties.
 */
export function decodeAck(p: Packet, version: Version = 5): { packetId: number; codes: number[]; props: Property[] } {
  const packetId = p.body.readUInt16BE(0)
  const list = p.type === SUBACK || p.type === UNSUBACK
  if (version === 4) return { packetId, codes: [...p.body.subarray(2)], props: [] }
  if (!list && p.body.length === 2) return { packetId, codes: [0], props: [] }
  if (!list && p.body.length === 3) return { packetId, codes: [p.body[2]], props: [] }
  if (list) {
    const r = readProperties(p.body, 2)
    return { packetId, codes: [...p.body.subarray(r.end)], props: r.props }
  }
  const r = readProperties(p.body, 3)
  return { packetId, codes: [p.body[2]], props: r.props }
}

/** A 5.0 DISCONNECT: its reason code (0x00 when absent) and properties. */
export function decodeDisconnect(p: Packet): { code: number; props: Property[] } {
  if (p.body.length === 0) return { code: 0, props: [] }
  return { code: p.body[0], props: p.body.length > 1 ? readProperties(p.body, 1).props : [] }
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

/** A raw client: everything it received, and a promise of its close. */
export class RawClient {
  readonly chunks: Buffer[] = []
  readonly closed: Promise<void>
  /** A WebSocket client's HTTP upgrade response (head only). */
  upgrade = ''
  private waiters: Array<() => void> = []

  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d)
      for (const w of this.waiters.splice(0)) w()
    })
    // Writes to a socket the broker closed fail with EPIPE/ECONNRESET:
    // expected here, the close is what the tests wait for.
    socket.on('error', () => {})
    // Not `once(socket, 'close')`: that rejects on the 'error' before it.
    this.closed = new Promise<void>((res) =>
      socket.once('close', () => {
        for (const w of this.waiters.splice(0)) w()
        res()
      }),
    )
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks)
  }

  packets(): Packet[] {
    return parsePackets(this.received)
  }

  get isClosed(): boolean {
    return this.socket.destroyed && this.socket.closed
  }

  /** Writes and waits until the data is handed to the kernel. */
  async write(data: Buffer): Promise<void> {
    if (this.socket.destroyed) throw new Error('socket already closed')
    await new Promise<void>((res, rej) => this.socket.write(data, (e) => (e ? rej(e) : res())))
  }

  /** Resolves with the first packet of `type` (rejects if the socket closes first or on timeout). */
  async next(type: number, timeoutMs = EVENT_TIMEOUT): Promise<Packet> {
    return this.nth(type, 0, timeoutMs)
  }

  /** Resolves with the packet of `type` at `index` (0: the first) among those received. */
  async nth(type: number, index: number, timeoutMs = EVENT_TIMEOUT): Promise<Packet> {
    return (await this.count(type, index + 1, timeoutMs))[index]
  }

  /** Resolves with the first packet of `type` that `pred` accepts (rejects on close or timeout). */
  async match(type: number, pred: (p: Packet) => boolean, timeoutMs = EVENT_TIMEOUT): Promise<Packet> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const p = this.packets().find((x) => x.type === type && pred(x))
      if (p) return p
      if (this.socket.closed) throw new Error(`closed before the awaited packet of type ${type} arrived`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for a packet of type ${type}`)
      await this.arrival(left)
    }
  }

  /** Sends PINGREQ and waits for the PINGRESP: everything sent before it has been read by the broker. */
  async ping(): Promise<void> {
    const before = this.packets().filter((p) => p.type === PINGRESP).length
    await this.write(packet(0xc0))
    await this.count(PINGRESP, before + 1)
  }

  /** Resolves with every packet of `type` received once there are at least `n` (rejects on close or timeout). */
  async count(type: number, n: number, timeoutMs = EVENT_TIMEOUT): Promise<Packet[]> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const ps = this.packets().filter((x) => x.type === type)
      if (ps.length >= n) return ps
      if (this.socket.closed) throw new Error(`closed with ${ps.length} of ${n} packets of type ${type}`)
      const left = deadline - Date.now()
      if (left <= 0)
        throw new Error(`timed out after ${timeoutMs} ms with ${ps.length} of ${n} packets of type ${type}`)
      await this.arrival(left)
    }
  }

  /** Resolves on the next data or close, or after `ms`. */
  private arrival(ms: number): Promise<void> {
    return new Promise<void>((res) => {
      const t = setTimeout(res, ms)
      this.waiters.push(() => {
        clearTimeout(t)
        res()
      })
    })
  }

  /** Resolves once the broker closed the connection; rejects after `timeoutMs`. */
  async waitClosed(timeoutMs = EVENT_TIMEOUT): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(
        () => rej(new Error(`the broker did not close the connection within ${timeoutMs} ms`)),
        timeoutMs,
      )
    })
    try {
      await Promise.race([this.closed, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  destroy(): void {
    this.socket.destroy()
  }
}

const open = new Set<RawClient>()

/** Destroys every raw client still open (call from `afterEach`). */
export function destroyRaw(): void {
  for (const c of open) c.destroy()
  open.clear()
}

/** Opens a TCP (or TLS) connection to a listener and sends nothing. */
export async function rawConnect(info: ListenerInfo): Promise<RawClient> {
  const secure = info.protocol === 'tls' || info.protocol === 'wss'
  const socket = secure
    ? tlsConnect({ host: info.address, port: info.port, ca: certs().caPem, servername: 'localhost' })
    : netConnect(info.port, info.address)
  const c = new RawClient(socket)
  open.add(c)
  await once(socket, secure ? 'secureConnect' : 'connect')
  return c
}

/** Opens a raw TCP connection without any TLS handshake, whatever the listener. */
export async function rawTcp(info: ListenerInfo): Promise<RawClient> {
  const socket = netConnect(info.port, info.address)
  const c = new RawClient(socket)
  open.add(c)
  await once(socket, 'connect')
  return c
}

/** A raw MQTT client past its CONNACK (checked to be a success). */
export async function rawSession(
  info: ListenerInfo,
  version: Version,
  fields: Partial<ConnectFields> = {},
): Promise<RawClient> {
  const c = await rawConnect(info)
  await c.write(connectPacket({ version, clientId: `raw-${randomBytes(4).toString('hex')}`, ...fields }))
  const ack = await c.next(CONNACK)
  const code = ack.body[1]
  if (code !== 0) throw new Error(`CONNACK refused the raw client: code 0x${code.toString(16)}`)
  return c
}

// ---------------------------------------------------------------------------
// WebSocket (RFC 6455) by hand: mqtt.js cannot send an unfinished message
// ---------------------------------------------------------------------------

/** Opens a WebSocket to a `ws`/`wss` listener and completes the upgrade. */
export async function rawWebSocket(info: ListenerInfo): Promise<RawClient> {
  const c = await rawConnect(info)
  const key = randomBytes(16).toString('base64')
  await c.write(
    Buffer.from(
      `GET /mqtt HTTP/1.1\r\nHost: ${info.address}:${info.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n`,
    ),
  )
  const deadline = Date.now() + EVENT_TIMEOUT
  while (!c.received.includes('\r\n\r\n')) {
    if (c.socket.closed || Date.now() > deadline) throw new Error('no WebSocket upgrade response')
    await once(c.socket, 'data', { signal: AbortSignal.timeout(EVENT_TIMEOUT) })
  }
  const head = c.received.toString('latin1')
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${head.split('\r\n')[0]}`)
  c.upgrade = head.slice(0, head.indexOf('\r\n\r\n'))
  c.chunks.splice(0)
  return c
}

/** A masked client frame: `opcode` 2 is binary, 0 continuation; `fin` ends the message. */
export function wsFrame(opcode: number, payload: Buffer, fin: boolean): Buffer {
  const mask = randomBytes(4)
  const n = payload.length
  const head =
    n < 126
      ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | n])
      : n < 65536
        ? Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126]), u16(n)])
        : (() => {
            const b = Buffer.alloc(10)
            b[0] = (fin ? 0x80 : 0) | opcode
            b[1] = 0x80 | 127
            b.writeBigUInt64BE(BigInt(n), 2)
            return b
          })()
  const body = Buffer.alloc(n)
  for (let i = 0; i < n; i++) body[i] = payload[i] ^ mask[i & 3]
  return Buffer.concat([head, mask, body])
}

// ---------------------------------------------------------------------------
// Conversations
// ---------------------------------------------------------------------------

/** Sends a SUBSCRIBE and resolves with its SUBACK (matched by packet id). */
export async function rawSubscribe(
  c: RawClient,
  version: Version,
  packetId: number,
  filters: Array<string | Buffer | [string | Buffer, number]>,
  properties?: Buffer,
): Promise<{ packetId: number; codes: number[]; props: Property[] }> {
  await c.write(subscribePacket(version, packetId, filters, properties))
  const ack = await c.match(SUBACK, (p) => p.body.readUInt16BE(0) === packetId)
  return decodeAck(ack, version)
}

/** The PUBLISH packets a raw client received so far, decoded. */
export function publishes(c: RawClient, version: Version = 5): Publish[] {
  return c
    .packets()
    .filter((p) => p.type === PUBLISH)
    .map((p) => decodePublish(p, version))
}

/** Resolves with the first PUBLISH on `topic` (decoded). */
export async function nextPublish(c: RawClient, topic: string, version: Version = 5, timeoutMs = EVENT_TIMEOUT) {
  return decodePublish(await c.match(PUBLISH, (p) => decodePublish(p, version).topic === topic, timeoutMs), version)
}
