// What JavaScript hooks and native policy cost: message throughput with no
// hook, with an `onMessagePublish` notification, with an
// `onClientPublishAuthorize` decision (asked every time, and answered with
// `cacheMs`) and with 100 native ACL rules; connection rate with no check,
// with `onClientAuthenticate` and with a native password check
// (docs/acl.md, docs/auth.md).
// Variants run interleaved (A B C A B C ...), medians reported.
//
//   npm run bench:hooks [-- --rounds N] [--duration S] [--no-build | --addon FILE] [--out FILE]
//
// Writes bench/results/hooks.md.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { runLoadgen } from './lib/loadgen.mjs'
import { machineInfo } from './lib/machine.mjs'
import { HOST, Peer } from './lib/peers.mjs'
import { portable } from './lib/report.mjs'
import { benchSetup, root } from './lib/setup.mjs'
import { median } from './lib/stats.mjs'

const { opt, rounds, lg, addon, logDir } = benchSetup({ conns: { type: 'string', default: '3000' } })
const peer = (hooks) =>
  new Peer(
    `embedded-mqtt-broker hooks=${hooks}`,
    (port) => ({
      cmd: process.execPath,
      args: [
        join(root, 'bench/peers/embedded-mqtt-broker.mjs'),
        '--port',
        String(port),
        '--host',
        HOST,
        '--hooks',
        hooks,
      ],
      env: { NAPI_RS_NATIVE_LIBRARY_PATH: addon.path },
    }),
    { nofile: 20000, logDir },
  )

const messageRuns = [
  { name: 'p2p, 16 pairs, QoS 0, 64 B', args: ['--mode', 'p2p', '--pairs', '16', '--qos', '0'] },
  { name: 'p2p, 16 pairs, QoS 1, 64 B', args: ['--mode', 'p2p', '--pairs', '16', '--qos', '1'] },
]
const messageHooks = ['none', 'notify', 'authorize', 'authorize-cached', 'acl100']
const connectHooks = ['none', 'authenticate', 'passwd']
// What the load generator sends for a variant.
const clientArgs = { passwd: ['--credentials', 'bench:bench'] }

async function once(hooks, args, pick) {
  const p = await peer(hooks).start()
  try {
    const res = await runLoadgen(
      lg.bin,
      ['--host', HOST, '--port', String(p.port), ...args, ...(clientArgs[hooks] ?? [])],
      {
        nofile: 20000,
        timeoutMs: 120_000,
      },
    )
    if (res.error) throw new Error(`${hooks}: ${res.error}`)
    return pick(res)
  } finally {
    await p.stop()
  }
}

const results = []
for (const run of messageRuns) {
  const figures = Object.fromEntries(messageHooks.map((h) => [h, []]))
  const loss = Object.fromEntries(messageHooks.map((h) => [h, 0]))
  for (let r = 0; r < rounds; r++) {
    for (const h of messageHooks) {
      const res = await once(h, [...run.args, '--duration', opt.duration], (x) => x)
      figures[h].push(res.msgs_per_s)
      loss[h] = Math.max(loss[h], res.lost)
      console.log(`${run.name} hooks=${h} round ${r + 1}: ${Math.round(res.msgs_per_s)} msgs/s`)
    }
  }
  results.push({ ...run, unit: 'msgs/s', figures, loss })
}
{
  const run = { name: `connect ${opt.conns} clients`, unit: 'connections/s' }
  const figures = Object.fromEntries(connectHooks.map((h) => [h, []]))
  for (let r = 0; r < rounds; r++) {
    for (const h of connectHooks) {
      const rate = await once(h, ['--mode', 'idle', '--conns', opt.conns, '--hold', '0.1'], (x) => {
        if (x.failed) throw new Error(`${h}: ${x.failed} connections failed`)
        return x.conns_per_s
      })
      figures[h].push(rate)
      console.log(`${run.name} hooks=${h} round ${r + 1}: ${Math.round(rate)} connections/s`)
    }
  }
  results.push({ ...run, figures })
}

const m = machineInfo(root)
const fmt = (x) => Math.round(x).toLocaleString('en-US')
const lines = [
  '# Hook cost',
  '',
  `Run ${new Date().toISOString()} by \`npm run bench:hooks\`: ${rounds} rounds, variants interleaved, medians. ` +
    `Machine: ${m.cpuModel}, ${m.nproc} cores. Release addon (${portable(addon.how)}); load from bench/loadgen over loopback TCP, MQTT 3.1.1. ` +
    'Each hook is the cheapest of its kind (a no-op notification, an authorization that allows), so the figures are the cost of the bridge to JavaScript.',
  '',
]
for (const r of results) {
  lines.push(
    `## ${r.name}`,
    '',
    `| hooks | ${r.unit} | × no hook | each round |${r.loss ? ' lost |' : ''}`,
    `|---|--:|--:|---|${r.loss ? '--:|' : ''}`,
  )
  const base = median(r.figures.none)
  for (const [h, xs] of Object.entries(r.figures)) {
    const med = median(xs)
    const label = {
      none: 'none',
      notify: 'onMessagePublish',
      authorize: 'onClientPublishAuthorize',
      'authorize-cached': 'onClientPublishAuthorize, cacheMs',
      authenticate: 'onClientAuthenticate',
      acl100: '100 native ACL rules',
      passwd: 'native password ($7$, 101 iterations)',
    }[h]
    lines.push(
      `| ${label} | ${fmt(med)} | ${(med / base).toFixed(2)}× | ${xs.map(fmt).join(', ')} |${r.loss ? ` ${r.loss[h]} |` : ''}`,
    )
  }
  lines.push('')
}
const out = opt.out ?? join(root, 'bench/results/hooks.md')
writeFileSync(out, `${lines.join('\n')}\n`)
console.log(lines.join('\n'))
console.log(`written to ${out}`)
