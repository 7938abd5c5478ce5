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

export const prop = {
  topicAlias: (n: number) => Buffer.concat([Buffer.from([0x23]), u16(n)]),
  responseTopic: (t: string) => Buffer.concat([Buffer.from([0x08]), str(t)]),
  subscriptionId: (n: number) => Buffer.concat([Buffer.from([0x0b]), varint(n)]),
  authMethod: (m: string) => Buffer.concat([Buffer.from([0x15]), str(m)]),
  authData: (d: Buffer) => Buffer.concat([Buffer.from([0x16]), str(d)]),
}

/** An MQTT 5 property as read back: its id and value. */
export type Property = { id: number; value: number | string | Buffer | [string, string] }

const PROPERTY_KIND: Record<number, 'byte' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair'> = {
  0x01: 'byte',
  0x17: 'byte',
  0x19: 'byte',
  0x24: 'byte',
  0x25: 'byte',
  0x28: 'byte',
  0x29: 'byte',
  0x2a: 'byte',
  0x13: 'u16',
  0x21: 'u16',
  0x22: 'u16',
  0x23: 'u16',
  0x02: 'u32',
  0x11: 'u32',
  0x18: 'u32',
  0x27: 'u32',
  0x0b: 'varint',
  0x03: 'string',
  0x08: 'string',
  0x12: 'string',
  0x15: 'string',
  0x1a: 'string',
  0x1c: 'string',
  0x1f: 'string',
  0x09: 'binary',
  0x16: 'binary',
  0x26: 'pair',
}

/** Reads the MQTT 5 property block that starts at `offset` of a packet body, in wire order. */
export function readProperties(body: Buffer, offset: number): Property[] {
  let i = offset
  const vint = (): number => {
    let n = 0
    let mult = 1
    for (;;) {
      const b = body[i++]
      n += (b & 0x7f) * mult
      mult *= 128
      if ((b & 0x80) === 0) return n
    }
  }
  const fixed = (width: 1 | 2 | 4): number => {
    const v = body.readUIntBE(i, width)
    i += width
    return v
  }
  const bin = (): Buffer => {
    const n = fixed(2)
    i += n
    return Buffer.from(body.subarray(i - n, i))
  }
  const read = (kind: (typeof PROPERTY_KIND)[number]): Property['value'] => {
    switch (kind) {
      case 'byte':
        return fixed(1)
      case 'u16':
        return fixed(2)
      case 'u32':
        return fixed(4)
      case 'varint':
        return vint()
      case 'binary':
        return bin()
      case 'string':
        return bin().toString('utf8')
      case 'pair':
        return [bin().toString('utf8'), bin().toString('utf8')]
    }
  }
  const length = vint()
  const end = i + length
  const out: Property[] = []
  while (i < end) {
    const id = body[i++]
    const kind = PROPERTY_KIND[id]
    if (kind === undefined) throw new Error(`unknown property 0x${id.toString(16)}`)
    out.push({ id, value: read(kind) })
  }
  return out
}

/** The value of the first property `id`, or undefined. */
export function property(props: Property[], id: number): Property['value'] | undefined {
  return props.find((p) => p.id === id)?.value
}

export type Version = 4 | 5

export interface ConnectFields {
  version: Version
  /** The connect flags byte as sent (defaults to clean start only). */
  flags?: number
  keepAlive?: number
  clientId?: string | Buffer
  /** MQTT 5 properties (a `props()` block); none by default. */
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

/** A PUBLISH at QoS 0 (QoS 1 with `packetId`). */
export function publishPacket(
  version: Version,
  topic: string | Buffer,
  payload: string | Buffer,
  opts: { properties?: Buffer; packetId?: number } = {},
): Buffer {
  const qos = opts.packetId === undefined ? 0 : 1
  return packet(
    0x30 | (qos << 1),
    str(topic),
    ...(opts.packetId === undefined ? [] : [u16(opts.packetId)]),
    ...(version === 5 ? [opts.properties ?? props()] : []),
    Buffer.from(payload),
  )
}

/** A SUBSCRIBE of each filter at QoS 0. */
export function subscribePacket(version: Version, packetId: number, filters: Array<string | Buffer>): Buffer {
  return packet(
    0x82,
    u16(packetId),
    ...(version === 5 ? [props()] : []),
    ...filters.flatMap((f) => [str(f), Buffer.from([0])]),
  )
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
export const SUBACK = 9
export const DISCONNECT = 14
export const AUTH = 15

/** An MQTT 5 AUTH packet. */
export function authPacket(reasonCode: number, properties: Buffer): Buffer {
  return packet(0xf0, Buffer.from([reasonCode]), properties)
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

/** A raw client: everything it received, and a promise of its close. */
export class RawClient {
  readonly chunks: Buffer[] = []
  readonly closed: Promise<void>
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
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const p = this.packets().filter((x) => x.type === type)[index]
      if (p) return p
      if (this.socket.closed) throw new Error(`closed before a packet of type ${type} arrived`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for a packet of type ${type}`)
      await new Promise<void>((res) => {
        const t = setTimeout(res, left)
        this.waiters.push(() => {
          clearTimeout(t)
          res()
        })
      })
    }
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
