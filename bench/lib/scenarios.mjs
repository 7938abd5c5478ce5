// The scenario matrix and its timing, full or quick.

export const THROUGHPUT_PEERS = ['embedded-mqtt-broker', 'aedes', 'mosquitto']
export const BUSY_PEERS = [
  'embedded-mqtt-broker',
  'embedded-mqtt-broker, busy main thread',
  'embedded-mqtt-broker + busy process',
]

const SHAPES = {
  fanin: { title: 'fan-in: 16 publishers → 1 wildcard subscriber', args: ['--mode', 'fanin', '--publishers', '16'] },
  p2p: { title: 'point-to-point: 64 pairs', args: ['--mode', 'p2p', '--pairs', '64'] },
  fanout: { title: 'fan-out: 1 publisher → 1,000 subscribers', args: ['--mode', 'fanout', '--subscribers', '1000'] },
}
/** Latency is measured point-to-point at a fixed rate every broker sustains. */
export const LATENCY = { pairs: 16, rate: 4000 }
/**
 * `even`: one message every 1/rate s, the publishers taking turns (the
 * fixed rate of the target). `burst`: all publishers at once every
 * pairs/rate s, which is what the load generator did before it had a pacer.
 */
export const PACES = ['even', 'burst']
export const SIZES = [64, 4096]
export const QOS = [0, 1]

export function timing(quick) {
  return quick
    ? { rounds: 1, duration: 1, drainMax: 1.5, drainIdle: 0.5, latencyDuration: 2, scaleConns: [10_000] }
    : { rounds: 3, duration: 3, drainMax: 2.5, drainIdle: 0.5, latencyDuration: 4, scaleConns: [10_000, 50_000] }
}

const sizeName = (s) => (s >= 1024 ? `${s / 1024} KiB` : `${s} B`)

/**
 * Every measured variant: `section` groups them in the report, `args` are
 * the loadgen flags, `peers` the brokers measured against each other.
 */
export function variants(t, only) {
  const want = (section) => !only || only.includes(section)
  const out = []
  const common = [
    '--duration',
    String(t.duration),
    '--drain-max',
    String(t.drainMax),
    '--drain-idle',
    String(t.drainIdle),
  ]
  for (const [shape, def] of Object.entries(SHAPES)) {
    if (!want(shape)) continue
    for (const qos of QOS)
      for (const size of SIZES)
        out.push({
          section: 'throughput',
          id: `${shape}-q${qos}-${size}`,
          shape,
          qos,
          size,
          title: `${def.title}, QoS ${qos}, ${sizeName(size)}`,
          args: [...def.args, '--qos', String(qos), '--size', String(size), ...common],
          peers: THROUGHPUT_PEERS,
        })
  }
  if (want('latency'))
    for (const pace of PACES)
      for (const qos of QOS)
        for (const size of SIZES)
          out.push({
            section: 'latency',
            id: `${pace === 'even' ? 'latency' : 'burst'}-q${qos}-${size}`,
            pace,
            qos,
            size,
            title:
              pace === 'even'
                ? `latency: ${LATENCY.pairs} pairs at ${LATENCY.rate.toLocaleString('en-US')} msgs/s, evenly paced, QoS ${qos}, ${sizeName(size)}`
                : `latency in bursts: ${LATENCY.pairs} pairs publishing together every ${(1000 * LATENCY.pairs) / LATENCY.rate} ms (${LATENCY.rate.toLocaleString('en-US')} msgs/s), QoS ${qos}, ${sizeName(size)}`,
            args: [...latencyArgs(t, qos, size), '--pace', pace],
            peers: THROUGHPUT_PEERS,
          })
  if (want('busy')) {
    out.push({
      section: 'busy',
      id: 'busy-p2p-q1-64',
      title: `embedding cost: ${SHAPES.p2p.title}, QoS 1, 64 B`,
      args: [...SHAPES.p2p.args, '--qos', '1', '--size', '64', ...common],
      peers: BUSY_PEERS,
      exclusive: true,
    })
    out.push({
      section: 'busy',
      id: 'busy-latency-q1-64',
      title: `embedding cost: latency, ${LATENCY.pairs} pairs at ${LATENCY.rate.toLocaleString('en-US')} msgs/s, QoS 1, 64 B`,
      args: latencyArgs(t, 1, 64),
      peers: BUSY_PEERS,
      exclusive: true,
    })
  }
  return out
}

// The load generator's arguments for a latency run: p2p pairs at a fixed
// rate, then a bounded drain.
function latencyArgs(t, qos, size) {
  return [
    ...['--mode', 'p2p', '--pairs', String(LATENCY.pairs), '--rate', String(LATENCY.rate)],
    ...['--qos', String(qos), '--size', String(size), '--duration', String(t.latencyDuration)],
    ...['--drain-max', String(t.drainMax), '--drain-idle', String(t.drainIdle)],
  ]
}
