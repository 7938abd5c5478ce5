// Valid (and deliberately edgy) MQTT packets of every type a client can
// send, plus the types only a server may send, drawn from a session's RNG.
// Topics come mostly from a small pool so publishes meet subscriptions;
// the `edge`, `huge` and `deep` strategies draw boundary, 64 KB and
// thousands-of-levels topics, `props` draws 5.0 properties with unknown ids,
// `share` draws shared subscriptions ($share/group/filter).
import * as enc from './encode.mjs'
import { weighted } from './rng.mjs'

const LEVELS = ['a', 'b', 'c', 'data', 'x', 'room', 'sensor', '1', '2', 't']
const EDGE_TOPICS = [
  '',
  '/',
  '//',
  '+',
  '#',
  'a/#/b',
  'a+',
  'a/+/',
  '$share//t',
  '$share/g+/t',
  '$share/g',
  '$share/g/',
  '$SYS/broker/uptime',
  '$SYS/#',
  'a\u0000b',
  '\uffff',
  '\ud83d\ude00/\u00e9',
  Buffer.from([0xc0, 0x80]), // overlong NUL: invalid UTF-8
  Buffer.from([0xed, 0xa0, 0x80]), // UTF-16 surrogate: invalid UTF-8
  Buffer.from([0x61, 0xff]),
  Buffer.from([0x61, 0x01]), // control character
]
/** Depths around the ones issue 28 found fatal (trie recursion). */
const DEEP_LEVELS = [1000, 2500, 4000, 5000, 6000, 10000, 20000, 32767, 65535]
const PUBACK_REASONS = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
const PUBREL_REASONS = [0x00, 0x92]
const DISCONNECT_REASONS = [0x00, 0x04, 0x80, 0x81, 0x82, 0x8d, 0x93, 0x95, 0x98]
const AUTH_REASONS = [0x00, 0x18, 0x19]
const U32_EDGES = [0, 1, 10, 3600, 0x7fffffff, 0xffffffff]
const U16_EDGES = [0, 1, 2, 10, 11, 0x7fff, 0xffff]
const VAR_EDGES = [0, 1, 127, 128, 16383, 16384, 268435455]

/** Packet kinds and their weights in a session's stream. */
export const PACKET_WEIGHTS = {
  publish: 40,
  puback: 5,
  pubrec: 4,
  pubrel: 4,
  pubcomp: 4,
  subscribe: 10,
  unsubscribe: 6,
  pingreq: 4,
  auth: 1,
  disconnect: 0.3,
  connect: 0.3, // a second CONNECT: protocol violation
  serverOnly: 0.5, // CONNACK, SUBACK, UNSUBACK, PINGRESP from a client
  reserved: 0.1, // packet type 0
}

/** Generation strategies that `--exclude` can turn off. */
export const GEN_STRATEGIES = ['edge', 'huge', 'deep', 'props', 'share']

function deepTopic(rng, filter) {
  const n = rng.chance(0.5) ? rng.pick(DEEP_LEVELS) : rng.range(100, 40000)
  if (filter && rng.chance(0.3)) {
    const k = Math.min(n - 1, 32766)
    return '+/'.repeat(k) + '#'
  }
  // `a/` levels fit in a 65,535-byte string up to 32,768 levels; beyond that
  // empty levels do.
  return 2 * n - 1 <= 65535 ? 'a/'.repeat(n - 1) + 'a' : '/'.repeat(Math.min(n - 1, 65535))
}

function hugeTopic(rng) {
  const n = rng.logInt(65535)
  return rng.chance(0.8) ? 'x'.repeat(n) : '\u00e9'.repeat(n >> 1)
}

/** Session state and generators for one connection. */
export class Session {
  /**
   * `rng`: this session's generator; `exclude`: a Set of strategy and packet
   * kind names not to use.
   */
  constructor(rng, exclude) {
    this.rng = rng
    this.ex = exclude
    const r = rng
    this.version = r.chance(0.45) ? 5 : r.chance(0.85) ? 4 : 3
    this.v5 = this.version === 5
    this.nextId = r.range(1, 65535)
    this.recentIds = []
    this.filters = []
    this.aliases = new Map()
    this.kind = weighted(PACKET_WEIGHTS, exclude)
    this.edge = !exclude.has('edge')
    this.deep = !exclude.has('deep')
    this.huge = !exclude.has('huge')
    this.randomProps = !exclude.has('props')
    this.share = !exclude.has('share')
    this.edgeTopics = this.share ? EDGE_TOPICS : EDGE_TOPICS.filter((t) => !String(t).startsWith('$share'))
  }

  id() {
    const r = this.rng
    if (this.edge && r.chance(0.01)) return r.pick([0, 65535])
    if (this.recentIds.length && r.chance(0.05)) return r.pick(this.recentIds)
    const id = this.nextId
    this.nextId = id === 65535 ? 1 : id + 1
    if (this.recentIds.length >= 16) this.recentIds.shift()
    this.recentIds.push(id)
    return id
  }

  /** Now and then a deep, huge or edge-case topic; otherwise undefined. */
  special(filter) {
    const r = this.rng
    if (this.deep && r.chance(0.002)) return deepTopic(r, filter)
    if (this.huge && r.chance(0.004)) return hugeTopic(r)
    if (this.edge && r.chance(0.05)) return r.pick(this.edgeTopics)
  }

  topic() {
    const r = this.rng
    const x = this.special(false)
    if (x !== undefined) return x
    const n = r.range(1, 4)
    let t = r.pick(LEVELS)
    for (let i = 1; i < n; i++) t += '/' + r.pick(LEVELS)
    return t
  }

  filter() {
    const r = this.rng
    const x = this.special(true)
    if (x !== undefined) return x
    if (r.chance(0.05)) return '#'
    const n = r.range(1, 4)
    const parts = []
    for (let i = 0; i < n; i++) parts.push(r.chance(0.2) ? '+' : r.pick(LEVELS))
    if (r.chance(0.2)) parts.push('#')
    const f = parts.join('/')
    return this.share && r.chance(0.08) ? `$share/${r.pick(['g', 'h', 'grp'])}/${f}` : f
  }

  payload() {
    const r = this.rng
    const x = r.float()
    if (x < 0.6) return r.bytes(r.int(32))
    if (x < 0.95) return r.bytes(r.logInt(4096))
    if (x < 0.9995) return Buffer.alloc(r.logInt(65536), 0x61)
    // Around the default 1 MiB packet limit.
    return Buffer.alloc(r.pick([1048000, 1048576 - 10, 1048576, 1048577, 2097152]), 0x62)
  }

  u32() {
    return this.rng.chance(0.5) ? this.rng.pick(U32_EDGES) : this.rng.u32()
  }

  u16() {
    return this.rng.chance(0.5) ? this.rng.pick(U16_EDGES) : this.rng.int(65536)
  }

  userProps() {
    const r = this.rng
    const n = r.chance(0.02) ? r.logInt(2000) : r.range(1, 3)
    const out = []
    for (let i = 0; i < n; i++) out.push(enc.prop(0x26, [r.pick(['k', 'key', '', 'x-trace']), r.pick(['v', '', '1'])]))
    return out
  }

  /** 5.0 properties with ids and values nobody asked for. */
  junkProps() {
    const r = this.rng
    const out = []
    for (let n = r.range(1, 5); n > 0; n--) {
      const id = r.chance(0.7) ? r.pick(Object.keys(enc.PROPS).map(Number)) : r.int(128)
      if (enc.PROPS[id] === 'pair') out.push(enc.prop(id, [r.bytes(r.int(8)), r.bytes(r.int(8))]))
      else if (enc.PROPS[id] === 'str' || enc.PROPS[id] === 'bin') out.push(enc.prop(id, r.bytes(r.int(16))))
      else if (enc.PROPS[id] === 'var') out.push(enc.prop(id, r.pick(VAR_EDGES)))
      else if (enc.PROPS[id]) out.push(enc.prop(id, r.u32()))
      else out.push(enc.prop(id, r.bytes(r.int(6))))
    }
    return enc.props(out)
  }

  maybeJunkProps() {
    return this.randomProps && this.rng.chance(0.05) ? this.junkProps() : undefined
  }

  /** The session's CONNECT: mostly valid, sometimes at the edges of valid. */
  connect() {
    const r = this.rng
    const edge = this.edge && r.chance(0.1)
    const c = { version: this.version, clean: r.chance(0.7), keepAlive: r.pick([0, 1, 5, 60, 60, 60, 65535]) }
    const idKind = r.float()
    if (idKind < 0.6)
      c.clientId = `fz${r.int(300)}` // shared: sessions take each other over
    else if (idKind < 0.7 && c.clean) c.clientId = ''
    else c.clientId = `fz-${r.u32().toString(36)}`
    if (edge && r.chance(0.5)) c.clientId = r.pick(['', 'x'.repeat(65535), '+#/', Buffer.from([0xff, 0xfe])])
    if (r.chance(0.4)) c.username = r.pick(['u', 'user', 'admin', '', 'x'.repeat(300)]) + r.int(50)
    if (r.chance(0.3) && (c.username != null || edge)) c.password = r.bytes(r.int(64))
    if (r.chance(0.15)) {
      c.will = {
        topic: this.topic(),
        payload: r.bytes(r.int(64)),
        qos: edge && r.chance(0.2) ? 3 : r.int(3),
        retain: r.chance(0.2),
      }
      if (this.v5 && r.chance(0.3)) {
        c.will.props = enc.props([enc.prop(0x18, r.pick([0, 1, 5])), enc.prop(0x02, this.u32())])
      }
    }
    if (this.v5) {
      const p = []
      if (r.chance(0.4)) p.push(enc.prop(0x11, r.pick([0, 10, 3600, 0xffffffff])))
      if (r.chance(0.2)) p.push(enc.prop(0x21, r.pick([1, 10, 65535, edge ? 0 : 5])))
      if (r.chance(0.2)) p.push(enc.prop(0x27, r.pick([128, 1000, 268435455, edge ? 0 : 65536])))
      if (r.chance(0.2)) p.push(enc.prop(0x22, r.pick([0, 10, 65535])))
      if (r.chance(0.1)) p.push(enc.prop(0x19, r.int(2)), enc.prop(0x17, r.int(2)))
      if (r.chance(0.1)) p.push(...this.userProps())
      if (edge && r.chance(0.2)) p.push(enc.prop(0x15, 'SCRAM-SHA-1'), enc.prop(0x16, r.bytes(16)))
      c.props = this.randomProps && r.chance(0.03) ? this.junkProps() : enc.props(p)
    }
    if (edge && r.chance(0.2)) c.reservedFlag = true
    if (edge && r.chance(0.2) && c.username == null) c.password = r.bytes(8) // MQTT-3.1.2-22
    this.clientId = c.clientId
    this.clean = c.clean
    return enc.connect(c)
  }

  publish() {
    const r = this.rng
    const qos = this.edge && r.chance(0.005) ? 3 : r.int(3)
    const p = { v5: this.v5, qos, retain: r.chance(0.05), dup: r.chance(0.02), id: qos ? this.id() : 0 }
    p.topic = this.topic()
    p.payload = this.payload()
    if (this.v5) {
      p.props = this.maybeJunkProps()
      if (!p.props && r.chance(0.4)) {
        const l = []
        if (r.chance(0.3)) {
          const alias = this.edge && r.chance(0.05) ? r.pick([0, 11, 65535]) : r.range(1, 10)
          if (this.aliases.has(alias) && r.chance(0.5)) p.topic = ''
          else this.aliases.set(alias, p.topic)
          l.push(enc.prop(0x23, alias))
        }
        if (r.chance(0.2)) l.push(enc.prop(0x01, r.chance(0.9) ? r.int(2) : r.int(256)))
        if (r.chance(0.2)) l.push(enc.prop(0x02, this.u32()))
        if (r.chance(0.1)) l.push(enc.prop(0x03, 'application/json'))
        if (r.chance(0.1)) l.push(enc.prop(0x08, this.topic()))
        if (r.chance(0.1)) l.push(enc.prop(0x09, r.bytes(r.int(32))))
        if (r.chance(0.2)) l.push(...this.userProps())
        if (this.edge && r.chance(0.02)) l.push(enc.prop(0x0b, r.pick(VAR_EDGES))) // server-only in PUBLISH
        p.props = enc.props(l)
      }
    }
    return enc.publish(p)
  }

  ackOf(type) {
    const r = this.rng
    const id = this.recentIds.length && r.chance(0.7) ? r.pick(this.recentIds) : r.int(65536)
    if (!this.v5 || r.chance(0.5)) return enc.ack(type, id)
    const reasons = type === 6 || type === 7 ? PUBREL_REASONS : PUBACK_REASONS
    const reason = this.edge && r.chance(0.05) ? r.int(256) : r.pick(reasons)
    const ps = r.chance(0.3) ? (this.maybeJunkProps() ?? enc.props([enc.prop(0x1f, 'why')])) : undefined
    return enc.ack(type, id, true, reason, ps)
  }

  subscribe() {
    const r = this.rng
    const n = r.chance(0.01) ? r.logInt(500) : r.range(1, 4)
    const fs = []
    for (let i = 0; i < n; i++) {
      const f = this.filter()
      let o = this.edge && r.chance(0.01) ? 3 : r.int(3)
      if (this.v5) o |= (r.int(2) << 2) | (r.int(2) << 3) | ((this.edge && r.chance(0.01) ? 3 : r.int(3)) << 4)
      if (this.edge && r.chance(0.01)) o |= 0xc0 // reserved bits
      fs.push([f, o])
      if (this.filters.length < 64) this.filters.push(f)
    }
    let ps
    if (this.v5) {
      ps = this.maybeJunkProps()
      if (!ps && r.chance(0.3)) ps = enc.props([enc.prop(0x0b, r.chance(0.9) ? r.range(1, 1000) : r.pick(VAR_EDGES))])
    }
    return enc.subscribe(this.v5, this.id(), this.edge && r.chance(0.005) ? [] : fs, ps)
  }

  unsubscribe() {
    const r = this.rng
    const n = r.range(1, 4)
    const fs = []
    for (let i = 0; i < n; i++) fs.push(this.filters.length && r.chance(0.7) ? r.pick(this.filters) : this.filter())
    const ps = this.v5
      ? (this.maybeJunkProps() ?? (r.chance(0.2) ? enc.props(this.userProps()) : undefined))
      : undefined
    return enc.unsubscribe(this.v5, this.id(), this.edge && r.chance(0.005) ? [] : fs, ps)
  }

  disconnect() {
    const r = this.rng
    if (!this.v5 || r.chance(0.5)) return enc.disconnect(false)
    const l = []
    if (r.chance(0.3)) l.push(enc.prop(0x11, r.pick([0, 60, 0xffffffff])))
    if (r.chance(0.3)) l.push(enc.prop(0x1f, 'bye'))
    return enc.disconnect(true, r.pick(DISCONNECT_REASONS), l.length ? enc.props(l) : undefined)
  }

  auth() {
    const r = this.rng
    if (r.chance(0.2)) return enc.auth()
    const ps =
      this.maybeJunkProps() ??
      enc.props([enc.prop(0x15, r.pick(['SCRAM-SHA-1', ''])), enc.prop(0x16, r.bytes(r.int(32)))])
    return enc.auth(this.edge && r.chance(0.1) ? r.int(256) : r.pick(AUTH_REASONS), ps)
  }

  serverOnly() {
    const r = this.rng
    return r.pick([
      () => Buffer.from([0x20, 2, 0, 0]),
      () => enc.packet(0x90, [enc.u16(this.id()), Buffer.from([0])]),
      () => enc.packet(0xb0, [enc.u16(this.id())]),
      () => Buffer.from([0xd0, 0]),
    ])()
  }

  /** Next packet of the stream: [kind, bytes]. */
  next() {
    const k = this.kind(this.rng)
    switch (k) {
      case 'publish':
        return [k, this.publish()]
      case 'puback':
        return [k, this.ackOf(4)]
      case 'pubrec':
        return [k, this.ackOf(5)]
      case 'pubrel':
        return [k, this.ackOf(6)]
      case 'pubcomp':
        return [k, this.ackOf(7)]
      case 'subscribe':
        return [k, this.subscribe()]
      case 'unsubscribe':
        return [k, this.unsubscribe()]
      case 'pingreq':
        return [k, enc.PINGREQ]
      case 'auth':
        return [k, this.auth()]
      case 'disconnect':
        return [k, this.disconnect()]
      case 'connect':
        return [k, this.connect()]
      case 'serverOnly':
        return [k, this.serverOnly()]
      default:
        return [k, Buffer.from([0x00, 0x00])]
    }
  }
}
