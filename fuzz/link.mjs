// One client connection to the broker, over TCP or WebSocket: writes raw
// bytes, splits what the broker sends into MQTT packets, and records who
// closed it.
import net from 'node:net'

import { FrameDecoder, frame, upgradeRequest } from './ws.mjs'

const WS_OPCODES_INVALID = [3, 4, 5, 6, 7, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f]

/** Splits a byte stream into MQTT packets: onPacket(byte0, body). */
class PacketSplitter {
  constructor(onPacket) {
    this.onPacket = onPacket
    this.buf = Buffer.alloc(0)
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk
    for (;;) {
      const b = this.buf
      let len = 0
      let mul = 1
      let i = 1
      for (;;) {
        if (i >= b.length) return
        len += (b[i] & 0x7f) * mul
        mul *= 128
        if (!(b[i++] & 0x80) || i > 4) break
      }
      if (b.length < i + len) return
      this.buf = b.subarray(i + len)
      this.onPacket(b[0], b.subarray(i, i + len))
    }
  }
}

export class Link {
  /**
   * `kind`: 'tcp' | 'ws'; `rng`: the session's generator (WebSocket frame
   * mutations); `wsMutate`: probability a write's framing is mutated.
   */
  constructor(kind, host, port, rng, onPacket, wsMutate) {
    this.kind = kind
    this.rng = rng
    this.wsMutate = wsMutate
    this.closed = false
    this.byPeer = false // the broker ended the connection (FIN, RST or WS close)
    this.endedByUs = false
    this.wsMutations = 0
    this.bytesIn = 0
    const split = new PacketSplitter(onPacket)
    this.socket = net.connect({ host, port })
    this.socket.setNoDelay(true)
    this.closedPromise = new Promise((resolve) => {
      this.socket.on('close', () => {
        this.closed = true
        resolve()
      })
    })
    this.socket.on('error', (e) => {
      if (!this.endedByUs) this.byPeer = true
      this.error = e.code ?? e.message
    })
    this.socket.on('end', () => {
      if (!this.endedByUs) this.byPeer = true
    })
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', () => {
        if (kind === 'tcp') {
          this.socket.on('data', (c) => {
            this.bytesIn += c.length
            split.push(c)
          })
          resolve()
          return
        }
        this.socket.write(upgradeRequest(host, port))
        let head = Buffer.alloc(0)
        const dec = new FrameDecoder((op, payload) => {
          if (op === 8) {
            this.byPeer = !this.endedByUs
            this.socket.end()
          } else if (op === 9) this.socket.write(frame(10, payload, { mask: this.mask() }))
          else if (op === 0 || op === 2) split.push(payload)
        })
        const onData = (c) => {
          this.bytesIn += c.length
          if (dec.upgraded) return dec.push(c)
          head = Buffer.concat([head, c])
          const end = head.indexOf('\r\n\r\n')
          if (end < 0) return
          if (!head.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) {
            reject(new Error(`websocket upgrade refused: ${head.subarray(0, 40).toString()}`))
            this.socket.destroy()
            return
          }
          dec.upgraded = true
          resolve()
          if (head.length > end + 4) dec.push(head.subarray(end + 4))
        }
        this.socket.on('data', onData)
      })
      this.socket.once('close', () => reject(new Error('closed before ready')))
    })
    this.ready.catch(() => {})
  }

  mask() {
    return this.rng.bytes(4)
  }

  /** Writes MQTT bytes; false when the socket buffer is full (await drain()). */
  write(bytes) {
    if (this.closed || this.socket.destroyed) return true
    if (this.kind === 'tcp') return this.socket.write(bytes)
    const r = this.rng
    if (!r.chance(this.wsMutate)) return this.socket.write(frame(2, bytes, { mask: this.mask() }))
    this.wsMutations++
    switch (r.int(6)) {
      case 0: {
        // Fragmented across continuation frames, a ping in between: valid.
        const cut = r.int(bytes.length + 1)
        this.socket.write(frame(2, bytes.subarray(0, cut), { fin: false, mask: this.mask() }))
        this.socket.write(frame(9, r.bytes(r.int(8)), { mask: this.mask() }))
        return this.socket.write(frame(0, bytes.subarray(cut), { mask: this.mask() }))
      }
      case 1:
        return this.socket.write(frame(1, bytes, { mask: this.mask() })) // text frame
      case 2:
        return this.socket.write(frame(2, bytes, { mask: null })) // unmasked
      case 3:
        return this.socket.write(frame(2, bytes, { mask: this.mask(), rsv: r.range(1, 7) }))
      case 4:
        return this.socket.write(frame(r.pick(WS_OPCODES_INVALID), bytes, { mask: this.mask() }))
      default:
        // A continuation frame that nothing started.
        return this.socket.write(frame(0, bytes, { mask: this.mask() }))
    }
  }

  drain() {
    if (this.closed || !this.socket.writableNeedDrain) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done)
        this.socket.off('close', done)
        resolve()
      }
      this.socket.on('drain', done)
      this.socket.on('close', done)
    })
  }

  /** Half-closes (FIN), or resets when `abrupt`. */
  end(abrupt) {
    if (this.closed) return
    if (!this.byPeer) this.endedByUs = true
    if (abrupt) this.socket.resetAndDestroy()
    else {
      if (this.kind === 'ws' && !this.socket.destroyed) {
        this.socket.write(frame(8, Buffer.from([0x03, 0xe8]), { mask: this.mask() }))
      }
      this.socket.end()
    }
  }

  destroy() {
    if (!this.byPeer) this.endedByUs = true
    this.socket.destroy()
  }
}
