// Minimal WebSocket client framing (RFC 6455) over a raw socket: enough to
// carry MQTT, and to send the malformed frames a library would refuse to.
import { randomBytes } from 'node:crypto'

/** The HTTP upgrade request; rmqtt requires the `mqtt` subprotocol. */
export function upgradeRequest(host, port) {
  const key = randomBytes(16).toString('base64')
  return (
    `GET /mqtt HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n`
  )
}

/**
 * One frame. `mask` is a 4-byte key (client frames must be masked) or null
 * for an unmasked (invalid from a client) frame; `rsv` sets reserved bits.
 */
export function frame(opcode, payload, { fin = true, mask, rsv = 0 } = {}) {
  const n = payload.length
  const ext = n < 126 ? 0 : n < 65536 ? 2 : 8
  const head = Buffer.allocUnsafe(2 + ext + (mask ? 4 : 0))
  head[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)
  const lenByte = ext === 0 ? n : ext === 2 ? 126 : 127
  head[1] = (mask ? 0x80 : 0) | lenByte
  if (ext === 2) head.writeUInt16BE(n, 2)
  else if (ext === 8) head.writeBigUInt64BE(BigInt(n), 2)
  if (!mask) return Buffer.concat([head, payload])
  mask.copy(head, 2 + ext)
  const body = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) body[i] = payload[i] ^ mask[i & 3]
  return Buffer.concat([head, body])
}

/** Incremental decoder of server frames (unmasked): calls onFrame(opcode, payload). */
export class FrameDecoder {
  constructor(onFrame) {
    this.onFrame = onFrame
    this.buf = Buffer.alloc(0)
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk
    for (;;) {
      const b = this.buf
      if (b.length < 2) return
      let n = b[1] & 0x7f
      let off = 2
      if (n === 126) {
        if (b.length < 4) return
        n = b.readUInt16BE(2)
        off = 4
      } else if (n === 127) {
        if (b.length < 10) return
        n = Number(b.readBigUInt64BE(2))
        off = 10
      }
      if (b[1] & 0x80) off += 4 // a server must not mask; skip the key if it does
      if (b.length < off + n) return
      const payload = b.subarray(off, off + n)
      this.buf = b.subarray(off + n)
      this.onFrame(b[0] & 0x0f, payload)
    }
  }
}
