// Network fuzzer: mutated MQTT 3.1 / 3.1.1 / 5.0 packets of every type over
// TCP and WebSocket against the broker in a child process (broker.mjs, every
// hook installed), with liveness probes throughout. See docs/fuzzing.md.
//
//   node fuzz/run.mjs [--duration 60] [--seed N] [--transport tcp,ws]
//     [--connections 48] [--mutate-rate 0.05] [--ws-mutate-rate 0.01]
//     [--exclude deep,share,...] [--stall-ms 10000] [--min-packets N]
//     [--rss-slack-mb 96] [--fd-slack 16] [--out DIR]
//   node fuzz/run.mjs --replay FILE     (a failure or culprit record)
//
// Exit code 0 when the run ended with no crash, no stall, stop() resolved,
// sockets released, memory back within the bound and (with --min-packets)
// enough packets sent; 1 otherwise; 2 on bad arguments.
import { fork, execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { setImmediate as yieldNow, setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { Link } from './link.mjs'
import { MUTATION_NAMES, mutator } from './mutate.mjs'
import { GEN_STRATEGIES, PACKET_WEIGHTS, Session } from './packets.mjs'
import { Probe } from './probe.mjs'
import { Rng } from './rng.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const HOST = '127.0.0.1'
/** Packets remembered per connection slot for the crash record (last sessions). */
const RING = 256
const SESSIONS_KEPT = 3
/** A connection the broker has not read from for this long is given up. */
const WRITE_BLOCKED_MS = 10000

function usage(msg) {
  console.error(`fuzz: ${msg}`)
  process.exit(2)
}

function parseOptions(argv) {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        duration: { type: 'string', default: '60' },
        seed: { type: 'string' },
        transport: { type: 'string', default: 'tcp,ws' },
        connections: { type: 'string', default: '48' },
        'mutate-rate': { type: 'string', default: '0.05' },
        'ws-mutate-rate': { type: 'string', default: '0.01' },
        exclude: { type: 'string', default: '' },
        'stall-ms': { type: 'string', default: '10000' },
        'min-packets': { type: 'string', default: '0' },
        'rss-slack-mb': { type: 'string', default: '96' },
        'fd-slack': { type: 'string', default: '16' },
        out: { type: 'string', default: join(HERE, 'out') },
        replay: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }))
  } catch (e) {
    usage(e.message)
  }
  if (values.help) {
    const lines = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n')
    console.log(
      lines
        .slice(
          4,
          lines.findIndex((l) => !l.startsWith('//')),
        )
        .map((l) => l.slice(3))
        .join('\n'),
    )
    process.exit(0)
  }
  const num = (name, lo, hi) => {
    const v = Number(values[name])
    if (!Number.isFinite(v) || v < lo || v > hi) usage(`--${name}: a number in [${lo}, ${hi}], got "${values[name]}"`)
    return v
  }
  const transports = values.transport.split(',').filter(Boolean)
  if (!transports.length || transports.some((t) => t !== 'tcp' && t !== 'ws')) {
    usage(`--transport: a list of tcp and ws, got "${values.transport}"`)
  }
  const known = new Set([...GEN_STRATEGIES, ...MUTATION_NAMES, ...Object.keys(PACKET_WEIGHTS)])
  const exclude = new Set(values.exclude.split(',').filter(Boolean))
  for (const x of exclude) if (!known.has(x)) usage(`--exclude: unknown "${x}" (known: ${[...known].join(', ')})`)
  if (Object.keys(PACKET_WEIGHTS).every((k) => exclude.has(k))) usage('--exclude: leaves no packet kind')
  const seed = values.seed === undefined ? (Math.random() * 2 ** 32) >>> 0 : num('seed', 0, 2 ** 32 - 1)
  return {
    duration: num('duration', 1, 7 * 24 * 3600),
    seed,
    transports,
    connections: num('connections', 1, 4096),
    mutateRate: MUTATION_NAMES.every((m) => exclude.has(m)) ? 0 : num('mutate-rate', 0, 1),
    wsMutateRate: num('ws-mutate-rate', 0, 1),
    exclude,
    stallMs: num('stall-ms', 1000, 600000),
    minPackets: num('min-packets', 0, Number.MAX_SAFE_INTEGER),
    rssSlackMb: num('rss-slack-mb', 0, 1e6),
    fdSlack: num('fd-slack', 0, 1e9),
    out: resolve(values.out),
    replay: values.replay,
  }
}

const mb = (n) => (n == null ? 'n/a' : `${(n / 1048576).toFixed(1)} MiB`)
const withTimeout = (p, ms) => Promise.race([p, sleep(ms).then(() => 'timeout')])

/** The broker child: start, IPC requests, log tail, exit status. */
class Broker {
  constructor() {
    this.child = fork(join(HERE, 'broker.mjs'), [], {
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    })
    this.logTail = []
    this.logLines = 0
    for (const s of [this.child.stdout, this.child.stderr]) {
      s.setEncoding('utf8')
      s.on('data', (d) => {
        for (const line of d.split('\n')) {
          if (!line) continue
          this.logLines++
          this.logTail.push(line.slice(0, 500))
          if (this.logTail.length > 200) this.logTail.shift()
        }
      })
    }
    this.waiters = new Map()
    this.child.on('message', (m) => {
      const w = this.waiters.get(m.type)
      if (w) {
        this.waiters.delete(m.type)
        w(m)
      }
    })
    this.exited = new Promise((res) => this.child.on('exit', (code, signal) => res({ code, signal })))
  }

  /** The next message of `type` (after sending `cmd`, if given), or 'timeout' / the exit. */
  request(type, cmd, ms) {
    const p = new Promise((res) => this.waiters.set(type, res))
    if (cmd && this.child.connected) this.child.send({ cmd })
    return withTimeout(Promise.race([p, this.exited.then((e) => ({ type: 'exit', ...e }))]), ms)
  }

  /** All threads' stacks of the child (when gdb is installed), for a stall report. */
  stacks() {
    try {
      return execFileSync('gdb', ['-p', String(this.child.pid), '-batch', '-ex', 'thread apply all bt 30'], {
        encoding: 'utf8',
        timeout: 60000,
        stdio: ['ignore', 'pipe', 'ignore'],
      })
    } catch (e) {
      return `gdb unavailable or failed: ${e.message.split('\n')[0]}`
    }
  }
}

function newStats() {
  return {
    packets: 0,
    bytes: 0,
    mutated: 0,
    acksSent: 0,
    byKind: {},
    byMutation: {},
    wsMutatedWrites: 0,
    sessions: 0,
    connectFailed: 0,
    connackOk: 0,
    connackRefused: 0,
    noConnackClosed: 0,
    noConnackAbandoned: 0,
    validConnectNoConnack: 0,
    closedByBroker: 0,
    closedByUs: 0,
    lingering: 0,
    writeBlocked: 0,
    received: 0,
    bytesIn: 0,
  }
}

/** The fuzzing run: slots of connections, probes, watchdogs, report. */
class Fuzz {
  constructor(opt) {
    this.opt = opt
    this.stats = newStats()
    this.failures = []
    this.stopping = false
    this.slots = Array.from({ length: opt.connections }, () => [])
    this.links = new Set()
    this.mutate = mutator(opt.exclude)
    this.halted = new Promise((res) => (this.onHalt = res))
  }

  fail(kind, detail) {
    if (this.failures.some((f) => f.kind === kind)) return
    const t = ((Date.now() - this.t0) / 1000).toFixed(1)
    console.error(`fuzz: ${kind.toUpperCase()} at ${t} s: ${detail}`)
    this.failures.push({ kind, detail, atSeconds: Number(t) })
    this.stopping = true
    this.onHalt()
  }

  async run() {
    const { opt } = this
    this.t0 = Date.now()
    this.broker = new Broker()
    const ready = await this.broker.request('ready', null, 30000)
    if (ready.type !== 'ready') {
      this.fail('crash', `broker did not start: ${JSON.stringify(ready)}\n${this.broker.logTail.join('\n')}`)
      return this.finish()
    }
    this.ports = ready.ports
    this.rss = { start: ready.rss, peak: ready.rss, after: null }
    this.fds = { start: ready.fds, peak: ready.fds, clientsGone: null, after: null }
    this.broker.exited.then((e) => {
      if (!this.expectExit) this.fail('crash', `broker exited (code ${e.code}, signal ${e.signal})`)
    })
    this.probes = opt.transports.map(
      (t) =>
        new Probe(t === 'ws' ? `ws://${HOST}:${this.ports.ws}/mqtt` : `mqtt://${HOST}:${this.ports.tcp}`, {
          stallMs: opt.stallMs,
          onStall: (d) => this.fail('stall', `${t} probe: ${d}`),
        }),
    )
    try {
      await Promise.all(this.probes.map((p) => p.start()))
    } catch (e) {
      this.fail('stall', e.message)
    }
    console.log(
      `fuzz: seed ${opt.seed}, ${opt.duration} s, ${opt.connections} connections over ${opt.transports.join('+')}, ` +
        `mutate ${opt.mutateRate}, exclude [${[...opt.exclude].join(',')}], broker pid ${this.broker.child.pid}`,
    )
    const sampler = setInterval(() => this.sample(), 1000)
    const deadline = this.t0 + opt.duration * 1000
    const haltTimer = setTimeout(() => {
      this.stopping = true
      this.onHalt()
    }, deadline - Date.now())
    const slots = this.slots.map((_, i) => this.slotLoop(i, deadline))
    await Promise.race([Promise.all(slots), this.halted])
    this.stopping = true
    clearTimeout(haltTimer)
    clearInterval(sampler)
    if (this.failures.length) {
      this.record()
      if (this.failures.some((f) => f.kind === 'stall') && this.broker.child.exitCode === null) {
        const file = join(opt.out, `stacks-${opt.seed}.txt`)
        writeFileSync(file, this.broker.stacks())
        console.error(`fuzz: broker thread stacks in ${file}`)
      }
    }
    // Sessions end at their next batch; any link still open is cut.
    await withTimeout(Promise.all(slots), 10000)
    for (const l of this.links) l.destroy()
    for (const p of this.probes) p.stop()
    if (!this.failures.length) await this.checkFds()
    return this.finish()
  }

  /** Every client is gone: the broker must have let go of their sockets. */
  async checkFds() {
    let m
    const t = Date.now()
    do {
      await sleep(500)
      m = await this.broker.request('rss', 'rss', 5000)
    } while (m.type === 'rss' && m.fds > this.fds.start + this.opt.fdSlack && Date.now() - t < 5000)
    if (m.type !== 'rss' || m.fds == null) return
    this.fds.clientsGone = m.fds
    if (m.fds > this.fds.start + this.opt.fdSlack) {
      this.fail('fd-leak', `${m.fds - this.fds.start} more open fds than at start, 5 s after every client closed`)
    }
  }

  async sample() {
    const m = await this.broker.request('rss', 'rss', 5000)
    if (m.type !== 'rss') return
    this.rss.peak = Math.max(this.rss.peak, m.rss)
    this.fds.peak = Math.max(this.fds.peak, m.fds)
    this.hookStats = m.hookStats
    const s = (Date.now() - this.t0) / 1000
    if (Math.round(s) % 10 === 0) {
      const p = this.probes.map((x) => x.stats().p99 ?? '-').join('/')
      console.log(
        `fuzz: ${s.toFixed(0)} s: ${this.stats.packets} packets (${Math.round(this.stats.packets / s)}/s), ` +
          `${this.stats.sessions} connections, ${this.stats.closedByBroker} closed by broker, ` +
          `rss ${mb(m.rss)}, ${m.fds} fds, probe p99 ${p} ms`,
      )
    }
  }

  async slotLoop(slot, deadline) {
    for (let n = 0; !this.stopping && Date.now() < deadline; n++) {
      await this.session(slot, n, deadline)
    }
  }

  /** One connection: CONNECT, a stream of (sometimes mutated) packets, an end. */
  async session(slot, n, deadline) {
    const { opt, stats } = this
    const rng = new Rng(opt.seed, slot, n)
    const s = new Session(rng, opt.exclude)
    const transport = rng.pick(opt.transports)
    const listener = transport === 'ws' ? 'ws' : rng.chance(0.15) ? 'tcp-auth' : 'tcp'
    const acks = rng.chance(0.95) // a few sessions never acknowledge what they receive
    const length = rng.logInt(3000)
    const ending = rng.int(10) // 0-4 DISCONNECT + FIN, 5-7 FIN, 8-9 reset
    let connect = s.connect()
    let connectMutation = null
    if (rng.chance(opt.mutateRate * 2)) [connectMutation, connect] = this.mutate(rng, connect, s.publish())
    const rec = {
      slot,
      session: n,
      startMs: Date.now() - this.t0,
      transport,
      listener,
      version: s.version,
      connect,
      connectMutation,
      packets: [],
      sent: 0,
    }
    const kept = this.slots[slot]
    kept.push(rec)
    if (kept.length > SESSIONS_KEPT) kept.shift()
    stats.sessions++

    const pending = []
    let connack = null
    let onConnack
    const connackP = new Promise((res) => (onConnack = res))
    const link = new Link(
      transport,
      HOST,
      this.ports[listener],
      new Rng(opt.seed, slot, n, 1),
      (b0, body) => {
        stats.received++
        const type = b0 >> 4
        if (type === 2) {
          connack = body[1] ?? -1
          onConnack(connack)
        } else if (!acks) return
        else if (type === 3 && b0 & 6 && body.length >= 2) {
          const at = 2 + body.readUInt16BE(0)
          if (body.length >= at + 2)
            pending.push(Buffer.from([(b0 & 6) === 2 ? 0x40 : 0x50, 2, body[at], body[at + 1]]))
        } else if ((type === 5 || type === 6) && body.length >= 2) {
          pending.push(Buffer.from([type === 5 ? 0x62 : 0x70, 2, body[0], body[1]]))
        }
      },
      opt.wsMutateRate,
    )
    this.links.add(link)
    try {
      if (
        (await withTimeout(
          link.ready.then(
            () => 'ok',
            () => 'err',
          ),
          10000,
        )) !== 'ok'
      ) {
        stats.connectFailed++
        return
      }
      this.count('connect', connect, connectMutation)
      link.write(connect)
      // Decision hooks answer within 1.2 s (their timeout); a valid CONNECT
      // gets a CONNACK well within 10 s, a mutated one may never.
      const r = await withTimeout(
        Promise.race([connackP, link.closedPromise.then(() => 'closed')]),
        connectMutation ? 3000 : 10000,
      )
      if (connack === null) {
        if (r === 'closed' || link.closed) stats.noConnackClosed++
        else if (connectMutation) stats.noConnackAbandoned++
        else {
          stats.validConnectNoConnack++
          stats.noConnackAbandoned++
        }
        return
      }
      if (connack !== 0) {
        stats.connackRefused++
        return
      }
      stats.connackOk++
      let sent = 0
      let prev = connect
      while (sent < length && !link.closed && !this.stopping && Date.now() < deadline) {
        const batch = []
        for (let k = rng.range(1, 48); k > 0; k--) {
          let [kind, pkt] = s.next()
          let m = null
          if (rng.chance(opt.mutateRate)) [m, pkt] = this.mutate(rng, pkt, prev)
          prev = pkt
          this.count(kind, pkt, m)
          rec.packets[rec.sent++ % RING] = { kind, m, pkt }
          batch.push(pkt)
          sent++
        }
        if (pending.length) {
          stats.acksSent += pending.length
          stats.packets += pending.length
          batch.push(...pending.splice(0))
        }
        const ok = link.write(batch.length === 1 ? batch[0] : Buffer.concat(batch))
        if (ok) await yieldNow()
        else if ((await Promise.race([withTimeout(link.drain(), WRITE_BLOCKED_MS), this.halted])) === 'timeout') {
          // The broker stopped reading (after a DISCONNECT, or holding a
          // publisher under flow control): give the connection up.
          stats.writeBlocked++
          break
        }
      }
      if (!link.closed && ending < 5) link.write(s.disconnect())
    } finally {
      stats.wsMutatedWrites += link.wsMutations
      if (link.byPeer) stats.closedByBroker++
      else {
        stats.closedByUs++
        link.end(ending >= 8)
        if ((await withTimeout(link.closedPromise, 5000)) === 'timeout') {
          stats.lingering++
          link.destroy()
        }
      }
      stats.bytesIn += link.bytesIn
      this.links.delete(link)
    }
  }

  count(kind, pkt, mutation) {
    const { stats } = this
    stats.packets++
    stats.bytes += pkt.length
    stats.byKind[kind] = (stats.byKind[kind] ?? 0) + 1
    if (mutation) {
      stats.mutated++
      stats.byMutation[mutation] = (stats.byMutation[mutation] ?? 0) + 1
    }
  }

  /** Writes the last packets of every slot's recent sessions, to replay a failure. */
  record() {
    const { opt } = this
    mkdirSync(opt.out, { recursive: true })
    const file = join(opt.out, `failure-${opt.seed}.json`)
    const hex = (b) => b.toString('hex')
    const slots = this.slots
      .flat()
      .sort((a, b) => a.startMs - b.startMs)
      .map((r) => {
        // The ring in send order: oldest first.
        const at = r.sent % RING
        const ordered = r.sent > RING ? [...r.packets.slice(at), ...r.packets.slice(0, at)] : r.packets
        return {
          ...r,
          connect: hex(r.connect),
          packets: ordered.map((p) => ({ kind: p.kind, mutation: p.m, hex: hex(p.pkt) })),
        }
      })
    const body = {
      seed: opt.seed,
      argv: process.argv.slice(2),
      failures: this.failures,
      brokerLogTail: this.broker.logTail,
      sessions: slots,
    }
    writeFileSync(file, JSON.stringify(body, null, 1))
    console.error(`fuzz: last packets of every connection in ${file}; replay: npm run fuzz -- --replay ${file}`)
    const ex = opt.exclude.size ? ` --exclude ${[...opt.exclude].join(',')}` : ''
    console.error(
      `fuzz: or rerun the same packet streams: npm run fuzz -- --seed ${opt.seed} --duration ${opt.duration} ` +
        `--transport ${opt.transports.join(',')} --connections ${opt.connections} --mutate-rate ${opt.mutateRate}${ex}`,
    )
  }

  /** Stops the broker, measures memory, prints the report; resolves the exit code. */
  async finish() {
    const { opt, stats } = this
    const elapsed = (Date.now() - this.t0) / 1000
    let stop = null
    if (this.broker.child.exitCode === null && this.broker.child.signalCode === null) {
      this.expectExit = true
      stop = await this.broker.request('stopped', 'stop', 30000)
      if (stop === 'timeout') {
        this.fail('stop', 'server.stop() did not resolve within 30 s')
        this.broker.child.kill('SIGKILL')
      } else if (stop.type === 'stopped') {
        this.rss.after = stop.rss
        this.fds.after = stop.fds
        this.hookStats = stop.hookStats
        const exit = await withTimeout(this.broker.exited, 15000)
        if (exit === 'timeout') {
          this.fail('stop', 'broker process did not exit within 15 s of close()')
          this.broker.child.kill('SIGKILL')
        } else if (exit.code !== 0)
          this.fail('crash', `broker exited at close() (code ${exit.code}, signal ${exit.signal})`)
      } else this.fail('crash', `broker exited during stop() (code ${stop.code}, signal ${stop.signal})`)
    }
    if (this.rss?.after != null && this.rss.after > this.rss.start + opt.rssSlackMb * 1048576) {
      this.fail(
        'memory',
        `RSS after stop() ${mb(this.rss.after)} > start ${mb(this.rss.start)} + ${opt.rssSlackMb} MiB`,
      )
    }
    if (!this.failures.length && stats.packets < opt.minPackets) {
      this.fail('throughput', `${stats.packets} packets < --min-packets ${opt.minPackets}`)
    }
    const report = {
      seed: opt.seed,
      seconds: Number(elapsed.toFixed(1)),
      transports: opt.transports,
      connections: opt.connections,
      packetsPerSecond: Math.round(stats.packets / elapsed),
      ...stats,
      probes: this.probes?.map((p, i) => ({ transport: opt.transports[i], ...p.stats() })),
      rss: this.rss && {
        startMiB: mb(this.rss.start),
        peakMiB: mb(this.rss.peak),
        afterStopMiB: mb(this.rss.after),
        boundMiB: opt.rssSlackMb,
      },
      brokerFds: this.fds,
      stopMs: stop?.stopMs ?? null,
      hookStats: this.hookStats,
      notificationsSeen: stop?.notified ?? null,
      brokerLogLines: this.broker.logLines,
      failures: this.failures,
    }
    console.log(JSON.stringify(report, null, 1))
    const crashes = this.failures.filter((f) => f.kind === 'crash').length
    const stalls = this.failures.filter((f) => f.kind === 'stall' || f.kind === 'stop').length
    console.log(
      `fuzz: ${this.failures.length ? 'FAIL' : 'OK'}: ${stats.packets} packets in ${elapsed.toFixed(0)} s ` +
        `(${report.packetsPerSecond}/s, ${stats.mutated} mutated), ${stats.sessions} connections, ` +
        `${stats.closedByBroker} closed by broker, ${crashes} crashes, ${stalls} stalls, ` +
        `RSS start ${mb(this.rss?.start)} / peak ${mb(this.rss?.peak)} / after stop() ${mb(this.rss?.after)} ` +
        `(bound start + ${opt.rssSlackMb} MiB), seed ${opt.seed}`,
    )
    return this.failures.length ? 1 : 0
  }
}

/**
 * Replays a failure record against a fresh broker, one recorded session at a
 * time in the order they started (CONNECT, then its last packets in order),
 * and names the first session after which the broker crashed or stopped
 * answering the probe.
 */
async function replay(opt) {
  const rec = JSON.parse(readFileSync(opt.replay, 'utf8'))
  const broker = new Broker()
  const ready = await broker.request('ready', null, 30000)
  if (ready.type !== 'ready') usage('broker did not start')
  let crashed = null
  broker.exited.then((e) => (crashed = e))
  let stalled = null
  const probe = new Probe(`mqtt://${HOST}:${ready.ports.tcp}`, { stallMs: opt.stallMs, onStall: (d) => (stalled = d) })
  await probe.start()
  console.log(`fuzz replay: ${rec.sessions.length} sessions from ${opt.replay} (seed ${rec.seed})`)
  const rng = new Rng(rec.seed)
  let culprit = null
  for (const s of rec.sessions) {
    const link = new Link(s.transport, HOST, ready.ports[s.listener], rng, () => {}, 0)
    if (
      (await withTimeout(
        link.ready.then(
          () => 'ok',
          () => 'err',
        ),
        10000,
      )) === 'ok'
    ) {
      link.write(Buffer.from(s.connect, 'hex'))
      await sleep(100)
      for (const p of s.packets) link.write(Buffer.from(p.hex, 'hex'))
      await withTimeout(link.closedPromise, 300)
      link.destroy()
    }
    // Let the broker finish with it, and a probe round trip prove it answers.
    const rtts = probe.rtts.length
    const t = Date.now()
    while (!crashed && !stalled && probe.rtts.length === rtts && Date.now() - t < opt.stallMs + 1000) await sleep(50)
    if (crashed || stalled || probe.rtts.length === rtts) {
      culprit = s
      break
    }
  }
  probe.stop()
  if (!crashed) broker.child.kill('SIGKILL')
  if (!culprit) {
    console.log('fuzz replay: no failure (the cause may lie before the recorded packets; rerun with --seed)')
    return 0
  }
  const what = crashed
    ? `CRASH (code ${crashed.code}, signal ${crashed.signal})`
    : `STALL (${stalled ?? 'no round trip'})`
  const big = culprit.packets
    .map((p, i) => ({ i, kind: p.kind, mutation: p.mutation, bytes: p.hex.length / 2 }))
    .filter((p) => p.bytes > 4096)
  console.log(
    `fuzz replay: ${what} after slot ${culprit.slot} session ${culprit.session} ` +
      `(${culprit.transport}, MQTT v${culprit.version}, ${culprit.packets.length} packets; ` +
      `packets over 4 KiB: ${JSON.stringify(big)})`,
  )
  const file = join(dirname(resolve(opt.replay)), `culprit-${rec.seed}.json`)
  writeFileSync(file, JSON.stringify({ ...rec, sessions: [culprit] }, null, 1))
  console.log(`fuzz replay: that session alone in ${file}`)
  return 1
}

const opt = parseOptions(process.argv.slice(2))
process.exitCode = opt.replay ? await replay(opt) : await new Fuzz(opt).run()
// Sockets of a wedged broker must not keep the fuzzer alive.
setTimeout(() => process.exit(), 2000).unref()
