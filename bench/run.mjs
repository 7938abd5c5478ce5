// The benchmark: embedded-mqtt-broker against aedes and mosquitto, same machine, same
// run, interleaved round by round. `npm run bench` (never part of npm test).
//
//   node bench/run.mjs [--quick] [--rounds N] [--scenario fanin,p2p,fanout,latency,busy,scale]
//                      [--peers embedded-mqtt-broker,aedes,mosquitto] [--duration S] [--threads N]
//                      [--embedded-mqtt-broker-args="--max-inflight 64 --max-mqueue-len 10000"]
//                      [--window N] [--addon PATH | --no-build] [--baseline PATH] [--out FILE]
//
// Prints the tables and writes them to bench/results/latest.md (a full run),
// bench/results/quick.md (--quick) or bench/results/partial.md (a subset);
// every run's raw figures go to bench/results/<date>.json. --baseline runs a
// second build of the addon (e.g. one built at an earlier commit) as a peer
// of its own next to ours, interleaved like the others: an A/B in one run.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'

import { buildLoadgen, ensureAddon, ensureAedes } from './lib/build.mjs'
import { coreLatency, runLoadgen } from './lib/loadgen.mjs'
import { addonDefaults, loadNow, machineInfo } from './lib/machine.mjs'
import { BASELINE, HOST, OURS, Peer, peerKinds } from './lib/peers.mjs'
import { cpuSeconds, nofileLimit, rssSampler, stolenSeconds } from './lib/proc.mjs'
import { renderMarkdown } from './lib/report.mjs'
import { measureIdle } from './lib/scale.mjs'
import { THROUGHPUT_PEERS, timing, variants } from './lib/scenarios.mjs'
import { ensureMosquitto, mosquittoVersion } from './peers/mosquitto.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const argv = process.argv.slice(2)
const { values: opt } = parseArgs({
  args: argv,
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    scenario: { type: 'string' },
    peers: { type: 'string' },
    threads: { type: 'string', default: '1' },
    window: { type: 'string', default: '64' },
    'embedded-mqtt-broker-args': { type: 'string', default: '' },
    addon: { type: 'string' },
    baseline: { type: 'string' },
    'no-build': { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (opt.help) {
  console.log(
    readFileSync(fileURLToPath(import.meta.url), 'utf8')
      .split('\nimport')[0]
      .replace(/^\/\/ ?/gm, ''),
  )
  process.exit(0)
}

const t = timing(opt.quick)
if (opt.rounds) t.rounds = Number(opt.rounds)
if (opt.duration) t.duration = t.latencyDuration = Number(opt.duration)
const only = opt.scenario?.split(',').map((s) => s.trim())
const peerFilter = opt.peers?.split(',').map((s) => s.trim())
const partial = Boolean(only || peerFilter)
const outFile = opt.out ?? join(root, 'bench/results', partial ? 'partial.md' : opt.quick ? 'quick.md' : 'latest.md')
const mqttServerArgs = opt['embedded-mqtt-broker-args'].split(/\s+/).filter(Boolean)
const loadgenFlags = ['--threads', opt.threads, '--window', opt.window]

const started = Date.now()
const machine = machineInfo(root)
console.log(
  `embedded-mqtt-broker benchmark on ${machine.cpuModel} (${machine.nproc} cores), load average ${machine.loadavgStart.join(' ')}`,
)

console.log('building bench/loadgen ...')
const lg = buildLoadgen(root)
console.log(`loadgen ready (${lg.seconds.toFixed(1)} s)`)
console.log('release build of the addon ...')
const addon = ensureAddon(root, { addon: opt.addon, build: !opt['no-build'] })
console.log(`addon: ${addon.how}`)
const aedesVersion = ensureAedes(root)
const mosquittoBin = ensureMosquitto()
const nofile = nofileLimit()
console.log(`open-files limit for brokers and load generator: ${nofile}`)

const logDir = join(root, 'bench/.cache/logs')
const baseline = opt.baseline && resolve(opt.baseline)
if (baseline && !existsSync(baseline)) throw new Error(`--baseline: no such addon: ${baseline}`)
const kinds = peerKinds({ root, addon: addon.path, baseline, mosquittoBin, mqttServerArgs, logDir })
const makePeer = (name) => new Peer(name, kinds[name], { nofile, logDir })
// A baseline addon runs next to ours wherever ours runs, as its own peer.
const withBaseline = (names) => (baseline ? names.flatMap((n) => (n === OURS ? [n, BASELINE] : [n])) : names)
const usePeers = (names) =>
  withBaseline(names).filter((p) => !peerFilter || p === BASELINE || peerFilter.some((f) => p.startsWith(f)))

const plan = variants(t, only)
const scaleSteps = !only || only.includes('scale') ? t.scaleConns : []
const totalRuns = plan.reduce((n, v) => n + usePeers(v.peers).length * t.rounds, 0)
let done = 0

/**
 * One loadgen run against a running peer, with the broker's peak RSS and CPU,
 * and the share of the machine's CPU time the host took meanwhile (a virtual
 * machine's vCPUs can be descheduled for milliseconds: the tail latency of
 * any broker then follows the host, not the broker), and how far apart the
 * two cores were (`coreLatency`: the farther of before and after).
 */
async function measure(peer, v) {
  const core0 = await coreLatency(lg.bin)
  const cpu0 = cpuSeconds(peer.pid)
  const steal0 = stolenSeconds()
  const t0 = Date.now()
  const rss = rssSampler(peer.pid)
  const res = await runLoadgen(lg.bin, ['--host', HOST, '--port', String(peer.port), ...v.args, ...loadgenFlags], {
    nofile,
    timeoutMs: 120_000,
  })
  res.rss_peak = rss.stop()
  const secs = (Date.now() - t0) / 1000
  res.broker_cpu_pct = (100 * (cpuSeconds(peer.pid) - cpu0)) / secs
  res.steal_pct = (100 * (stolenSeconds() - steal0)) / (secs * machine.nproc)
  res.core_ns = Math.max(core0, await coreLatency(lg.bin))
  if (!peer.alive()) res.error = peer.deathNote()
  return res
}

/**
 * Waits until the broker is idle (under 5% of a core for 250 ms, at most
 * 15 s): one that is still working off a flood it buffered must not take
 * CPU from the next peer's run.
 */
async function quiesce(peer) {
  const until = Date.now() + 15_000
  while (peer.alive() && Date.now() < until) {
    const c0 = cpuSeconds(peer.pid)
    await sleep(250)
    if (cpuSeconds(peer.pid) - c0 < 0.0125) return
  }
}

const fmtRun = (r) =>
  r.error
    ? `ERROR ${r.error}`
    : `${Math.round(r.msgs_per_s).toLocaleString('en-US')} msgs/s, loss ${r.loss_pct.toFixed(2)}%${r.drained ? '' : '*'}, p99 ${(r.latency_us.p99 / 1000).toFixed(2)} ms, RSS ${(r.rss_peak / 2 ** 20).toFixed(0)} MiB, broker CPU ${r.broker_cpu_pct.toFixed(0)}%, loadgen CPU ${r.loadgen_cpu_pct?.toFixed(0)}%, cores ${r.core_ns?.toFixed(0)} ns apart`

const results = { machine, variants: [], scale: [] }
for (const v of plan) {
  const names = usePeers(v.peers)
  if (!names.length) continue
  const runs = Object.fromEntries(names.map((n) => [n, []]))
  const restarts = {}
  results.variants.push({ ...v, peers: names, runs, restarts })
  const peers = names.map(makePeer)
  // A peer that fails to start is retried before each of its runs, and its
  // runs record why. A busy configuration burns a core for as long as it
  // runs, so those run one at a time: started for their own run only.
  if (!v.exclusive) await Promise.allSettled(peers.map((p) => p.start()))
  for (let r = 0; r < t.rounds; r++) {
    // Rotate the order each round, so no broker always runs first or last.
    const order = peers.map((_, i) => peers[(i + r) % peers.length])
    for (const peer of order) {
      let res
      try {
        if (v.exclusive) await peer.start()
        else if (!peer.alive()) {
          // It died after its last run (e.g. while working off a buffered flood).
          const note = peer.proc
            ? peer.deathNote().replace('during the run', 'after a run')
            : `${peer.name} was not running`
          console.log(`  ${note}: restarting it`)
          restarts[peer.name] = [...(restarts[peer.name] ?? []), note]
          await peer.start()
        }
        const t0 = Date.now()
        res = await measure(peer, v)
        if (v.exclusive) await peer.stop()
        else await quiesce(peer)
        res.run_s = (Date.now() - t0) / 1000
      } catch (e) {
        res = { error: e.message }
        if (v.exclusive) await peer.stop()
      }
      res.round = r
      runs[peer.name].push(res)
      done++
      console.log(`[${done}/${totalRuns}] ${v.id} ${peer.name} round ${r + 1}: ${fmtRun(res)}`)
    }
  }
  await Promise.all(peers.map((p) => p.stop()))
}

// Each broker process holds one descriptor per client, and so does the load
// generator: past the open-files limit, connections cannot be opened at all.
for (const requested of scaleSteps) {
  const conns = Math.min(requested, nofile - 500)
  if (conns < requested)
    console.log(
      `${requested} connections need an open-files limit above ${requested}; this machine allows ${nofile}: using ${conns}`,
    )
  const names = usePeers(THROUGHPUT_PEERS)
  const runs = Object.fromEntries(names.map((n) => [n, []]))
  results.scale.push({ conns, requested, peers: names, runs })
  for (let r = 0; r < t.rounds; r++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + r) % names.length]
      // A fresh broker each time: its baseline memory must not carry earlier runs.
      const peer = await makePeer(name).start()
      const res = await measureIdle(peer, conns, { loadgen: lg.bin, nofile, settleMs: opt.quick ? 1000 : 1500 })
      await peer.stop()
      runs[name].push(res)
      console.log(
        `scale ${conns} ${name} round ${r + 1}: ${res.connected ?? 0} connected, ${res.failed ?? '?'} failed, ${Math.round(res.conns_per_s ?? 0)}/s, RSS ${(res.rss_base / 2 ** 20).toFixed(0)} -> ${(res.rss_held / 2 ** 20).toFixed(0)} -> ${(res.rss_after / 2 ** 20).toFixed(0)} MiB (${((res.rss_per_conn ?? 0) / 1024).toFixed(1)} KiB/conn)${res.error ? ` ERROR ${res.error}` : ''}`,
      )
    }
  }
}

results.loadavgEnd = loadNow()
const allRuns = results.variants.flatMap((v) => Object.values(v.runs).flat())
results.settings = {
  argv,
  quick: opt.quick,
  rounds: t.rounds,
  duration: t.duration,
  latencyDuration: t.latencyDuration,
  minutes: ((Date.now() - started) / 60000).toFixed(1),
  threads: Number(opt.threads),
  window: Number(opt.window),
  nofile,
  addon: addon.how,
  baseline: baseline ?? null,
  aedes: aedesVersion,
  mosquitto: mosquittoVersion(mosquittoBin),
  version: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
  mqttServerArgs,
  addonDefaults: addonDefaults(root),
  loadgenBuildSeconds: lg.seconds,
  peakLoadgenCpu: allRuns.reduce((m, r) => Math.max(m, r.loadgen_cpu_pct ?? 0), 0) || null,
}

const md = renderMarkdown(results)
mkdirSync(dirname(outFile), { recursive: true })
writeFileSync(outFile, md)
const rawFile = join(root, 'bench/results', `${machine.date.replace(/[:.]/g, '-')}.json`)
writeFileSync(rawFile, JSON.stringify(results, null, 1))
console.log(`\n${md}`)
console.log(`written to ${relative(root, outFile)} (raw figures: ${relative(root, rawFile)})`)
