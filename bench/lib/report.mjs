// The Markdown report: the targets first, then one table per scenario.
import { max, median } from './stats.mjs'
import { BASELINE, OURS } from './peers.mjs'
import { LATENCY } from './scenarios.mjs'

const REF = 'mosquitto'

/**
 * `text` with each absolute path cut to its file name: reports are
 * committed, and a machine's directories say nothing to a reader.
 */
export function portable(text) {
  return String(text).replace(/(^|[\s('"`])(?:[A-Za-z]:)?[\\/](?:[^\s()'"`\\/]+[\\/])*([^\s()'"`\\/]+)/g, '$1$2')
}

const int = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'))
const ratio = (x) => (x == null || !Number.isFinite(x) ? '–' : `${x.toFixed(2)}×`)
const pct = (x) => (x == null ? '–' : x === 0 ? '0' : x < 0.01 ? '<0.01%' : `${x.toFixed(2)}%`)
const mib = (b) => (b == null ? '–' : `${(b / 2 ** 20).toFixed(1)} MiB`)
const kib = (b) => (b == null ? '–' : `${(b / 1024).toFixed(1)} KiB`)
/** Microseconds, shown in ms (latency under a flood is queueing time, often seconds). */
function ms(us) {
  if (us == null) return '–'
  const v = us / 1000
  return v >= 100
    ? `${Math.round(v).toLocaleString('en-US')} ms`
    : v >= 10
      ? `${v.toFixed(1)} ms`
      : `${v.toFixed(2)} ms`
}
const steal = (x) => (x == null ? '–' : `${x.toFixed(1)}%`)
const ok = (b) => (b == null ? '–' : b ? 'yes' : '**no**')

/** One peer's rounds of one variant, reduced to medians (loss: the worst round). */
export function summarize(runs = []) {
  const good = runs.filter((r) => !r.error)
  const lat = (k) => median(good.map((r) => r.latency_us?.[k]))
  return {
    n: runs.length,
    failed: runs.length - good.length,
    errors: [...new Set(runs.filter((r) => r.error).map((r) => r.error))],
    rate: median(good.map((r) => r.msgs_per_s)),
    rates: runs.map((r) => (r.error ? null : r.msgs_per_s)),
    p50: lat('p50'),
    p99: lat('p99'),
    p999: lat('p999'),
    max: max(good.map((r) => r.latency_us?.max)),
    loss: max(good.map((r) => r.loss_pct)),
    lost: good.reduce((s, r) => s + (r.lost ?? 0), 0),
    cut: good.some((r) => r.drained === false),
    rss: median(good.map((r) => r.rss_peak)),
    cpu: median(good.map((r) => r.broker_cpu_pct)),
    lgCpu: max(good.map((r) => r.loadgen_cpu_pct)),
    p99s: runs.map((r) => (r.error ? null : r.latency_us?.p99)),
    steals: runs.map((r) => (r.error ? null : r.steal_pct)),
  }
}

function lossCell(s) {
  if (s.loss == null) return '–'
  return `${pct(s.loss)}${s.cut ? '*' : ''}`
}

function errorNotes(name, s, v) {
  return [
    ...s.errors.map((e) => `- ${name}: ${s.failed}/${s.n} rounds failed: ${e}`),
    ...(v.restarts?.[name] ?? []).map((e) => `- ${e}; restarted for the next round`),
  ]
}

function throughputTable(v) {
  const S = Object.fromEntries(v.peers.map((p) => [p, summarize(v.runs[p])]))
  const ref = S[REF]?.rate
  const base = S[BASELINE]?.rate
  const lines = [
    `### ${v.title}`,
    '',
    `| peer | msgs/s | × mosquitto |${base ? ' × baseline |' : ''} loss (worst round) | p50 | p99 | peak RSS | broker CPU | load generator CPU | msgs/s each round |`,
    `|---|--:|--:|${base ? '--:|' : ''}--:|--:|--:|--:|--:|--:|---|`,
  ]
  for (const p of v.peers) {
    const s = S[p]
    lines.push(
      `| ${p} | ${int(s.rate)} | ${ratio(s.rate / ref)} |${base ? ` ${ratio(s.rate / base)} |` : ''} ${lossCell(s)} | ${ms(s.p50)} | ${ms(s.p99)} | ${mib(s.rss)} | ${int(s.cpu)}% | ${int(s.lgCpu)}% | ${s.rates.map(int).join(', ')} |`,
    )
  }
  lines.push('', ...v.peers.flatMap((p) => errorNotes(p, S[p], v)))
  return { text: lines.join('\n').trimEnd(), S }
}

function latencyTable(v) {
  const S = Object.fromEntries(v.peers.map((p) => [p, summarize(v.runs[p])]))
  const lines = [
    `### ${v.title}`,
    '',
    '| peer | p50 | p99 | p99.9 | max | × mosquitto p99 | delivered msgs/s | loss | peak RSS | broker CPU | p99 each round | host steal each round |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|',
  ]
  for (const p of v.peers) {
    const s = S[p]
    lines.push(
      `| ${p} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.p999)} | ${ms(s.max)} | ${ratio(s.p99 / S[REF]?.p99)} | ${int(s.rate)} | ${lossCell(s)} | ${mib(s.rss)} | ${int(s.cpu)}% | ${s.p99s.map(ms).join(', ')} | ${s.steals.map(steal).join(', ')} |`,
    )
  }
  lines.push('', ...v.peers.flatMap((p) => errorNotes(p, S[p], v)))
  return { text: lines.join('\n').trimEnd(), S }
}

function busyTable(v) {
  const S = Object.fromEntries(v.peers.map((p) => [p, summarize(v.runs[p])]))
  const base = S[v.peers[0]]
  const lines = [
    `### ${v.title}`,
    '',
    '| configuration | msgs/s | × idle host | loss | p50 | p99 | broker process CPU | msgs/s each round |',
    '|---|--:|--:|--:|--:|--:|--:|---|',
  ]
  for (const p of v.peers) {
    const s = S[p]
    lines.push(
      `| ${p} | ${int(s.rate)} | ${ratio(s.rate / base.rate)} | ${lossCell(s)} | ${ms(s.p50)} | ${ms(s.p99)} | ${int(s.cpu)}% | ${s.rates.map(int).join(', ')} |`,
    )
  }
  lines.push('', ...v.peers.flatMap((p) => errorNotes(p, S[p], v)))
  return { text: lines.join('\n').trimEnd(), S }
}

/** Scale runs of one peer at one size, reduced to medians. */
export function summarizeScale(runs = []) {
  const m = (k) => median(runs.map((r) => r[k]))
  return {
    n: runs.length,
    connected: m('connected'),
    failed: max(runs.map((r) => r.failed)),
    rate: m('conns_per_s'),
    base: m('rss_base'),
    held: m('rss_held'),
    perConn: m('rss_per_conn'),
    after: m('rss_after'),
    released: m('released_pct'),
    alive: m('alive_at_release'),
    errors: [...new Set(runs.map((r) => r.error).filter(Boolean))],
  }
}

function scaleTable(sc) {
  const lines = [
    `### ${sc.conns.toLocaleString('en-US')} idle connections${sc.requested !== sc.conns ? ` (${sc.requested.toLocaleString('en-US')} asked; capped by the open-files limit)` : ''}`,
    '',
    '| peer | connected | failed | connect rate | RSS before | RSS held | RSS / connection | RSS after leaving | memory released | still open at release |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ]
  const S = {}
  for (const p of sc.peers) {
    const s = summarizeScale(sc.runs[p])
    S[p] = s
    lines.push(
      `| ${p} | ${int(s.connected)} | ${int(s.failed)} | ${int(s.rate)}/s | ${mib(s.base)} | ${mib(s.held)} | ${kib(s.perConn)} | ${mib(s.after)} | ${s.released == null ? '–' : `${s.released.toFixed(0)}%`} | ${int(s.alive)} |`,
    )
  }
  lines.push('', ...sc.peers.flatMap((p) => S[p].errors.map((e) => `- ${p}: ${e}`)))
  return { text: lines.join('\n').trimEnd(), S }
}

function targets(res, T, L, B, C) {
  const rows = []
  const tp = T.filter((t) => t.S[OURS] && t.S[REF])
  if (tp.length) {
    // A scenario where either broker has no figure (every round failed) cannot be compared.
    const vs = (peer) =>
      tp
        .filter((t) => t.S[peer])
        .map((t) => ({ id: t.v.id, r: t.S[OURS].rate / t.S[peer].rate }))
        .filter((x) => Number.isFinite(x.r))
    const worst = (xs) => xs.reduce((a, b) => (b.r < a.r ? b : a), xs[0])
    for (const [peer, want] of [
      [REF, 1.5],
      ['aedes', 5],
    ]) {
      const xs = vs(peer)
      if (!xs.length) continue
      const w = worst(xs)
      const missing = tp.length - xs.length
      rows.push(
        `| throughput ≥ ${want}× ${peer} in every scenario | met in ${xs.filter((x) => x.r >= want).length}/${xs.length}${missing ? ` (${missing} not comparable: no figure)` : ''}; lowest ${ratio(w.r)} (${w.id}) | ${ok(xs.every((x) => x.r >= want))} |`,
      )
    }
  }
  const q1 = [...T, ...L].filter((t) => t.v.qos === 1 && t.S[OURS])
  if (q1.length) {
    const lossy = q1.filter((t) => t.S[OURS].loss > 0)
    rows.push(
      `| QoS 1 loses nothing | ${lossy.length ? `lost in ${lossy.map((t) => `${t.v.id} (${pct(t.S[OURS].loss)})`).join(', ')}` : `no loss in ${q1.length} QoS 1 scenarios`} | ${ok(!lossy.length)} |`,
    )
  }
  const lat = L.filter((t) => t.S[OURS] && t.S[REF] && t.v.pace !== 'burst')
  if (lat.length) {
    const bad = lat.filter((t) => !(t.S[OURS].p99 <= t.S[REF].p99))
    // Round by round: the two ran seconds apart, so the host disturbed both alike.
    const pairs = lat.flatMap((t) =>
      t.S[OURS].p99s.map((o, i) => [o, t.S[REF].p99s[i]]).filter(([o, m]) => o != null && m != null),
    )
    const steals = lat.flatMap((t) => [...t.S[OURS].steals, ...t.S[REF].steals]).filter(Number.isFinite)
    const stolen = steals.length
      ? `; host steal in these runs ${steal(Math.min(...steals))}-${steal(max(steals))} of CPU time`
      : ''
    rows.push(
      `| latency p99 ≤ mosquitto's at fixed rate | ${lat.map((t) => `${t.v.id}: ${ms(t.S[OURS].p99)} vs ${ms(t.S[REF].p99)}`).join('; ')}; round by round ≤ in ${pairs.filter(([o, m]) => o <= m).length}/${pairs.length}${stolen} | ${ok(!bad.length)} |`,
    )
  }
  // Not a target: how each broker works off a burst, reported beside it.
  const burst = L.filter((t) => t.S[OURS] && t.S[REF] && t.v.pace === 'burst')
  if (burst.length) {
    rows.push(
      `| (reported) latency p99 in bursts of ${LATENCY.pairs} | ${burst.map((t) => `${t.v.id}: ${ms(t.S[OURS].p99)} vs ${ms(t.S[REF].p99)}`).join('; ')} | – |`,
    )
  }
  const ours = C.filter((c) => c.S[OURS])
  if (ours.length) {
    const per = ours.map((c) => `${c.sc.conns.toLocaleString('en-US')}: ${kib(c.S[OURS].perConn)}`).join('; ')
    rows.push(`| ≤ 8 KiB RSS per idle connection | ${per} | ${ok(ours.every((c) => c.S[OURS].perConn <= 8192))} |`)
    const big = ours[ours.length - 1]
    const s = big.S[OURS]
    const held = s.connected === big.sc.conns && !s.failed && s.alive === big.sc.conns
    const capped = big.sc.conns < big.sc.requested
    const what =
      big.sc.requested < 50_000
        ? `not run (largest step: ${int(big.sc.requested)})`
        : `${int(s.connected)} of ${int(big.sc.conns)} connected, ${int(s.failed)} failed, ${int(s.alive)} still open at release${capped ? `; capped from ${int(big.sc.requested)} by the open-files limit (${int(res.settings.nofile)})` : ''}`
    rows.push(
      `| 50,000 connections held without errors | ${what} | ${big.sc.requested < 50_000 ? '–' : capped ? `${held ? 'yes' : '**no**'} at ${int(big.sc.conns)}; 50,000 not measurable here` : ok(held)} |`,
    )
    rows.push(
      `| memory back near baseline after clients leave (≥ 80% of the connections' memory released) | ${ours.map((c) => `${c.sc.conns.toLocaleString('en-US')}: ${c.S[OURS].released?.toFixed(0)}% released`).join('; ')} | ${ok(ours.every((c) => c.S[OURS].released >= 80))} |`,
    )
  }
  const bt = B.find((b) => b.v.id.startsWith('busy-p2p'))
  if (bt) {
    const [idle, busy, proc] = bt.v.peers.map((p) => bt.S[p])
    rows.push(
      `| busy Node main thread costs no throughput (within 10%) | ${ratio(busy.rate / idle.rate)} of idle host; a separate busy process: ${ratio(proc.rate / idle.rate)} | ${ok(busy.rate >= 0.9 * idle.rate)} |`,
    )
  }
  if (!rows.length) return ''
  return ['## Targets', '', '| target | measured | met |', '|---|---|---|', ...rows].join('\n')
}

function summaryTable(T) {
  if (!T.length) return ''
  const ab = T.some((t) => t.S[BASELINE])
  const lines = [
    '## Throughput summary (delivered msgs/s, medians)',
    '',
    `| scenario | embedded-mqtt-broker | aedes | mosquitto | × mosquitto | × aedes |${ab ? ' baseline | × baseline |' : ''} embedded-mqtt-broker loss |`,
    `|---|--:|--:|--:|--:|--:|${ab ? '--:|--:|' : ''}--:|`,
  ]
  for (const t of T) {
    const o = t.S[OURS]
    const b = t.S[BASELINE]?.rate
    lines.push(
      `| ${t.v.id} | ${int(o?.rate)} | ${int(t.S.aedes?.rate)} | ${int(t.S[REF]?.rate)} | ${ratio(o?.rate / t.S[REF]?.rate)} | ${ratio(o?.rate / t.S.aedes?.rate)} |${ab ? ` ${int(b)} | ${ratio(o?.rate / b)} |` : ''} ${o ? lossCell(o) : '–'} |`,
    )
  }
  return lines.join('\n')
}

function defaults(s) {
  const d = Object.entries(s.addonDefaults ?? {})
  return d.length ? ` (${d.map(([k, v]) => `${k} ${v}`).join(', ')})` : ''
}

function header(res) {
  const m = res.machine
  const s = res.settings
  return [
    '# embedded-mqtt-broker benchmark results',
    '',
    `Run ${m.date} (${s.quick ? 'quick' : 'full'} run, ${s.rounds} round${s.rounds > 1 ? 's' : ''}, ${s.minutes} min), by \`npm run bench${s.argv.length ? ` -- ${portable(s.argv.join(' '))}` : ''}\`.`,
    '',
    `- Machine: ${m.cpuModel}, ${m.nproc} cores, ${m.memGiB} GiB, Linux ${m.kernel}; load average ${m.loadavgStart.join(' / ')} at start, ${res.loadavgEnd.join(' / ')} at end (the broker, the load generator and anything else running share these cores).`,
    `- Peers: **embedded-mqtt-broker** ${s.version} at ${m.commit}${m.dirty ? ' (uncommitted changes)' : ''}, rmqtt ${m.rmqtt}, release addon (${portable(s.addon)})${s.baseline ? `, next to a baseline addon (${portable(s.baseline)})` : ''}, Node ${m.node}, default limits${defaults(s)}${s.mqttServerArgs.length ? ` except \`${s.mqttServerArgs.join(' ')}\`` : ''}; **aedes** ${s.aedes} (net server, default options, Node ${m.node}); **mosquitto** ${s.mosquitto} (Debian, single-threaded, default config).`,
    `- Load: bench/loadgen (Rust, tokio, ${s.threads} thread${s.threads > 1 ? 's' : ''}), MQTT 3.1.1 over loopback TCP; publishers publish for ${s.duration} s (latency runs ${s.latencyDuration} s), QoS 1 publishers keep ≤ ${s.window} messages unacknowledged; peak load-generator CPU in any run: ${s.peakLoadgenCpu == null ? '–' : `${s.peakLoadgenCpu.toFixed(0)}%`} of its ${s.threads} thread${s.threads > 1 ? 's' : ''}.`,
    ...(res.notes ?? []).map((n) => `- ${n}`),
    "- msgs/s: messages delivered to subscribers while publishers were publishing, divided by that time (fan-out counts each copy). Loss: messages published (written, at QoS 1 also acknowledged) that never reached a subscriber, worst round; `*`: still arriving when the drain limit cut the run, so partly late rather than lost. p50/p99: end-to-end latency (a flood measures queueing). Peak RSS and CPU: the broker process (100% = one core; embedded-mqtt-broker's includes Node). Load generator CPU: its highest of the rounds (100% = one core), so a run where it, not the broker, was the limit shows.",
  ].join('\n')
}

export function renderMarkdown(res) {
  const T = res.variants.filter((v) => v.section === 'throughput').map((v) => ({ v, ...throughputTable(v) }))
  const L = res.variants.filter((v) => v.section === 'latency').map((v) => ({ v, ...latencyTable(v) }))
  const B = res.variants.filter((v) => v.section === 'busy').map((v) => ({ v, ...busyTable(v) }))
  const C = res.scale.map((sc) => ({ sc, ...scaleTable(sc) }))
  const parts = [header(res), targets(res, T, L, B, C), summaryTable(T)]
  if (T.length) parts.push('## Throughput', ...T.map((t) => t.text))
  if (L.length)
    parts.push(
      '## Latency at a fixed rate',
      `Evenly paced runs send one message every ${1e6 / LATENCY.rate} µs, the ${LATENCY.pairs} publishers taking turns: the fixed rate of the target. Burst runs send the same rate as all ${LATENCY.pairs} publishers at once every ${(1000 * LATENCY.pairs) / LATENCY.rate} ms, so the last message of each burst waits for the ones before it; they show how a broker works off a burst.`,
      ...L.map((t) => t.text),
    )
  if (C.length) parts.push('## Idle connections', ...C.map((t) => t.text))
  if (B.length)
    parts.push(
      '## Embedding cost (host Node process busy)',
      'The same broker with an idle Node main thread, with the main thread spinning on a CPU-bound loop, and with an idle main thread but a separate process spinning. On a machine with few cores, spinning takes a core away from the broker either way; the separate process shows how much of any drop is that, rather than embedding.',
      ...B.map((t) => t.text),
    )
  return parts.filter(Boolean).join('\n\n') + '\n'
}
