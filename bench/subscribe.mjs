// The in-process subscriber: 16 publishers (bench/loadgen, fan-in, no
// network subscriber) flood one `server.subscribe('#')`, next to an
// `onMessagePublish` hook on the same broker and to aedes'
// `broker.subscribe('#')`, and to the broker's ingest with no subscriber
// (the ceiling any in-process subscriber can reach). Each handler only
// counts; the broker process prints its count at the end (`SINK` line of
// its log), and the rate is that count over the time from its first to its
// last message. Variants run interleaved (A B C A B C ...), medians
// reported. Before and after each run, `loadgen core-latency` measures how far apart
// the two cores are (a VM's host moves its vCPUs: ~50 ns near, ~330 ns far
// here, and this broker's CPU per message follows it, aedes' does not);
// each round's figure is printed with it, and the ratios are given over
// all rounds and over the rounds where every variant ran near.
//
//   npm run bench:subscribe [-- --rounds N] [--duration S] [--no-build | --addon FILE] [--out FILE]
//
// Writes bench/results/subscribe.md.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { coreLatency, runLoadgen } from './lib/loadgen.mjs'
import { machineInfo } from './lib/machine.mjs'
import { HOST, Peer } from './lib/peers.mjs'
import { portable } from './lib/report.mjs'
import { benchSetup, root } from './lib/setup.mjs'
import { median } from './lib/stats.mjs'

const { opt, rounds, lg, addon, logDir } = benchSetup()
const node = process.execPath
const variants = {
  subscribe: {
    label: "server.subscribe('#')",
    script: 'bench/peers/embedded-mqtt-broker.mjs',
    args: ['--sink', 'subscribe'],
  },
  notify: { label: 'onMessagePublish', script: 'bench/peers/embedded-mqtt-broker.mjs', args: ['--sink', 'notify'] },
  aedes: { label: "aedes broker.subscribe('#')", script: 'bench/peers/aedes.mjs', args: ['--sink', 'subscribe'] },
  // The ceiling: the same broker with nobody taking the messages; the rate
  // is what the publishers got in (loadgen's send rate).
  ingest: {
    label: 'no subscriber (ingest ceiling)',
    script: 'bench/peers/embedded-mqtt-broker.mjs',
    args: [],
    ingest: true,
  },
}
const peer = (v) =>
  new Peer(
    `subscribe-${v}`,
    (port) => ({
      cmd: node,
      args: [join(root, variants[v].script), '--port', String(port), '--host', HOST, ...variants[v].args],
      env: { NAPI_RS_NATIVE_LIBRARY_PATH: addon.path },
    }),
    { nofile: 20000, logDir },
  )

const runs = [
  { name: '16 publishers -> in-process subscriber, QoS 0, 64 B', qos: '0' },
  { name: '16 publishers -> in-process subscriber, QoS 1, 64 B', qos: '1' },
]

/** One run: the rate the broker's handler saw, and what loadgen sent. */
async function once(v, qos) {
  const before = await coreLatency(lg.bin)
  const p = await peer(v).start()
  let res
  try {
    res = await runLoadgen(
      lg.bin,
      [
        '--host',
        HOST,
        '--port',
        String(p.port),
        '--mode',
        'fanin',
        '--subscriber',
        'none',
        '--qos',
        qos,
        '--duration',
        opt.duration,
      ],
      { nofile: 20000, timeoutMs: 120_000 },
    )
  } finally {
    await p.stop()
  }
  if (res.error) throw new Error(`${v}: ${res.error}`)
  // The placement may change during the run: the farther of before and after.
  const latency = Math.max(before, await coreLatency(lg.bin))
  if (variants[v].ingest) return { rate: res.sent_per_s, count: res.sent, sent: res.sent, latency }
  const line = readFileSync(p.logPath, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('SINK '))
  if (!line) throw new Error(`${v}: no SINK line in ${p.logPath}`)
  const sink = JSON.parse(line.slice(5))
  // From the first message to the last one timed (bench/lib/sink.mjs).
  const seconds = (sink.lastMs - sink.firstMs) / 1000
  return { rate: seconds > 0 ? (sink.timedCount - 1) / seconds : 0, count: sink.count, sent: res.sent, latency }
}

const results = []
for (const run of runs) {
  const figures = Object.fromEntries(Object.keys(variants).map((v) => [v, []]))
  const latencies = Object.fromEntries(Object.keys(variants).map((v) => [v, []]))
  for (let r = 0; r < rounds; r++) {
    for (const v of Object.keys(variants)) {
      const x = await once(v, run.qos)
      figures[v].push(x.rate)
      latencies[v].push(x.latency)
      console.log(
        `${run.name} ${v} round ${r + 1}: ${Math.round(x.rate)} msgs/s (${x.count} of ${x.sent} sent), cores ${x.latency.toFixed(0)} ns apart`,
      )
    }
  }
  results.push({ ...run, figures, latencies })
}

const m = machineInfo(root)
const fmt = (x) => Math.round(x).toLocaleString('en-US')
const lines = [
  '# In-process subscriber',
  '',
  `Run ${new Date().toISOString()} by \`npm run bench:subscribe\`: ${rounds} rounds of ${opt.duration} s, variants interleaved, medians. ` +
    `Machine: ${m.cpuModel}, ${m.nproc} cores. Release addon (${portable(addon.how)}); 16 publishers from bench/loadgen ` +
    '(fan-in, no network subscriber) over loopback TCP, MQTT 3.1.1. Each handler only counts; msgs/s is its count over the time from its first message to its last.',
  '',
]
// A round is near when every variant of it ran with the cores near.
const NEAR_NS = 120
for (const r of results) {
  const near = r.figures.aedes.map((_, i) => Object.values(r.latencies).every((l) => l[i] < NEAR_NS))
  const nearRounds = near.filter(Boolean).length
  lines.push(
    `## ${r.name}`,
    '',
    `| subscriber | msgs/s | × aedes | near rounds: msgs/s | × aedes | each round (msgs/s @ core round trip) |`,
    '|---|--:|--:|--:|--:|---|',
  )
  const aedes = median(r.figures.aedes)
  const aedesNear = median(r.figures.aedes.filter((_, i) => near[i]))
  for (const [v, xs] of Object.entries(r.figures)) {
    const med = median(xs)
    const medNear = median(xs.filter((_, i) => near[i]))
    const each = xs.map((x, i) => `${fmt(x)} @ ${r.latencies[v][i].toFixed(0)} ns`).join(', ')
    const nearCells = nearRounds ? `${fmt(medNear)} | ${(medNear / aedesNear).toFixed(2)}×` : '- | -'
    lines.push(`| ${variants[v].label} | ${fmt(med)} | ${(med / aedes).toFixed(2)}× | ${nearCells} | ${each} |`)
  }
  lines.push('', `Near rounds (every variant's cores < ${NEAR_NS} ns round trip): ${nearRounds} of ${near.length}.`, '')
}
const out = opt.out ?? join(root, 'bench/results/subscribe.md')
writeFileSync(out, `${lines.join('\n')}\n`)
console.log(lines.join('\n'))
console.log(`written to ${out}`)
