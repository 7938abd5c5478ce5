// What reading the stats costs: message throughput of a flood with
// `stats()` and `metrics()` called 10 times a second (as a dashboard or a
// Prometheus scrape would, much more often) next to the same flood without.
// Variants run interleaved (off poll off poll ...), medians reported.
//
//   npm run bench:stats [-- --rounds N] [--duration S] [--no-build | --addon FILE] [--out FILE]
//
// Writes bench/results/stats.md.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { runLoadgen } from './lib/loadgen.mjs'
import { machineInfo } from './lib/machine.mjs'
import { HOST, Peer } from './lib/peers.mjs'
import { portable } from './lib/report.mjs'
import { benchSetup, root } from './lib/setup.mjs'
import { median } from './lib/stats.mjs'

const { opt, rounds, lg, addon } = benchSetup()
const variants = { off: [], poll: ['--poll-stats'] }
const runs = [
  { name: 'p2p, 16 pairs, QoS 0, 64 B', args: ['--mode', 'p2p', '--pairs', '16', '--qos', '0'] },
  { name: 'p2p, 16 pairs, QoS 1, 64 B', args: ['--mode', 'p2p', '--pairs', '16', '--qos', '1'] },
]

async function flood(variant, args) {
  const peerArgs = (port) => ['--port', String(port), '--host', HOST, ...variants[variant]]
  const p = await new Peer(
    `embedded-mqtt-broker stats=${variant}`,
    (port) => ({
      cmd: process.execPath,
      args: [join(root, 'bench/peers/embedded-mqtt-broker.mjs'), ...peerArgs(port)],
      env: { NAPI_RS_NATIVE_LIBRARY_PATH: addon.path },
    }),
    { nofile: 20000, logDir: join(root, 'bench/.cache/logs') },
  ).start()
  try {
    const res = await runLoadgen(lg.bin, ['--host', HOST, '--port', String(p.port), ...args], {
      nofile: 20000,
      timeoutMs: 120_000,
    })
    if (res.error) throw new Error(`${variant}: ${res.error}`)
    return res.msgs_per_s
  } finally {
    await p.stop()
  }
}

const fmt = (x) => Math.round(x).toLocaleString('en-US')
const m = machineInfo(root)
const lines = [
  '# Cost of reading the stats',
  '',
  `Run ${new Date().toISOString()} by \`npm run bench:stats\`: ${rounds} rounds, variants interleaved, medians. ` +
    `Machine: ${m.cpuModel}, ${m.nproc} cores. Release addon (${portable(addon.how)}); load from bench/loadgen over loopback TCP, MQTT 3.1.1. ` +
    '"poll": `stats()` and `metrics()` each called every 100 ms during the flood.',
  '',
]
for (const run of runs) {
  const figures = { off: [], poll: [] }
  for (let r = 0; r < rounds; r++) {
    for (const v of Object.keys(variants)) {
      figures[v].push(await flood(v, [...run.args, '--duration', opt.duration]))
      console.log(`${run.name} stats=${v} round ${r + 1}: ${fmt(figures[v].at(-1))} msgs/s`)
    }
  }
  const base = median(figures.off)
  lines.push(`## ${run.name}`, '', '| stats | msgs/s | × off | each round |', '|---|--:|--:|---|')
  for (const [v, xs] of Object.entries(figures))
    lines.push(`| ${v} | ${fmt(median(xs))} | ${(median(xs) / base).toFixed(2)}× | ${xs.map(fmt).join(', ')} |`)
  lines.push('')
}
const out = opt.out ?? join(root, 'bench/results/stats.md')
writeFileSync(out, `${lines.join('\n')}\n`)
console.log(lines.join('\n'))
console.log(`written to ${out}`)
