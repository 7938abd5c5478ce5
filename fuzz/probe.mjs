// Liveness probe: a well-behaved mqtt.js client that publishes a QoS 1
// message to its own subscription every `intervalMs` and times the round
// trip (PUBLISH -> delivered back). A round trip still open after
// `stallMs` is a stall.
import { randomBytes } from 'node:crypto'

import mqtt from 'mqtt'

export class Probe {
  constructor(url, { intervalMs = 500, stallMs = 10000, onStall }) {
    this.id = `fuzzprobe-${randomBytes(6).toString('hex')}`
    this.topic = `${this.id}/rt`
    this.intervalMs = intervalMs
    this.stallMs = stallMs
    this.onStall = onStall
    this.rtts = []
    this.reconnects = 0
    this.seq = 0
    this.pending = null // { seq, t0, sent }
    this.republishes = 0
    this.client = mqtt.connect(url, {
      clientId: this.id,
      protocolVersion: 4,
      reconnectPeriod: 250,
      connectTimeout: stallMs,
      keepalive: 30,
      resubscribe: true,
    })
    this.client.on('error', () => {}) // reconnects; a stall shows as a late round trip
    this.client.on('reconnect', () => this.reconnects++)
    this.client.on('message', (topic, payload) => {
      if (this.pending && topic === this.topic && Number(payload.toString()) === this.pending.seq) {
        this.rtts.push(Date.now() - this.pending.t0)
        this.pending = null
      }
    })
  }

  /** Resolves once subscribed; then round trips run until stop(). */
  async start() {
    await new Promise((resolve, reject) => {
      this.client.once('connect', resolve)
      setTimeout(() => reject(new Error(`probe: no CONNACK in ${this.stallMs} ms`)), this.stallMs).unref()
    })
    await this.client.subscribeAsync(this.topic, { qos: 1 })
    this.timer = setInterval(() => this.tick(), Math.min(this.intervalMs, 250))
    this.lastSend = 0
  }

  tick() {
    const now = Date.now()
    if (this.pending) {
      if (now - this.pending.t0 > this.stallMs && !this.pending.reported) {
        this.pending.reported = true
        this.onStall(`round trip ${this.pending.seq} of ${this.id} open for ${now - this.pending.t0} ms`)
      }
      // Lost (a reconnect between PUBLISH and re-subscription): send it again;
      // the round trip still counts from the first attempt.
      if (now - this.pending.sent > 2000) {
        this.pending.sent = now
        this.republishes++
        this.client.publish(this.topic, String(this.pending.seq), { qos: 1 }, () => {})
      }
      return
    }
    if (now - this.lastSend < this.intervalMs) return
    this.lastSend = now
    this.pending = { seq: ++this.seq, t0: now, sent: now }
    this.client.publish(this.topic, String(this.seq), { qos: 1 }, () => {})
  }

  stats() {
    const s = [...this.rtts].sort((a, b) => a - b)
    const q = (p) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : null)
    return {
      roundTrips: s.length,
      p50: q(0.5),
      p99: q(0.99),
      max: s.length ? s[s.length - 1] : null,
      reconnects: this.reconnects,
      republishes: this.republishes,
    }
  }

  stop() {
    clearInterval(this.timer)
    this.client.end(true)
  }
}
