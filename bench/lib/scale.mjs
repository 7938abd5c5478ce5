// The idle-connections measurement for one fresh broker: memory before,
// while the clients are held, and after they leave.
import { setTimeout as sleep } from 'node:timers/promises'

import { runLoadgen } from './loadgen.mjs'
import { rssBytes } from './proc.mjs'
import { HOST } from './peers.mjs'

/** Each source address has ~28k ephemeral ports; 10k per address stays well clear. */
const PER_SOURCE_IP = 10_000
/**
 * Each measurement takes fresh source addresses (127.<n>.0.x: all of
 * 127/8 is loopback). The previous run's ports sit in TIME_WAIT for a
 * minute, and binding to an address whose ports are mostly taken slows
 * connects down by orders of magnitude.
 */
let block = 10

export async function measureIdle(peer, conns, { loadgen, nofile, settleMs }) {
  await sleep(1000)
  const rss_base = rssBytes(peer.pid)
  const subnet = block++
  const ips = Array.from(
    { length: Math.max(2, Math.ceil(conns / PER_SOURCE_IP)) },
    (_, i) => `127.${subnet}.0.${i + 1}`,
  )
  let rss_held = null
  const res = await runLoadgen(
    loadgen,
    [
      '--mode',
      'idle',
      '--host',
      HOST,
      '--port',
      String(peer.port),
      '--conns',
      String(conns),
      '--src-ips',
      ips.join(','),
    ],
    {
      nofile,
      timeoutMs: 300_000,
      onLine: async (j, p) => {
        if (j.phase !== 'held') return
        // Let the broker finish its per-connection setup before measuring.
        await sleep(settleMs)
        rss_held = rssBytes(peer.pid)
        p.stdin.end('release\n')
      },
    },
  )
  await sleep(settleMs + 1000)
  const rss_after = rssBytes(peer.pid)
  const grew = rss_held - rss_base
  return {
    ...res,
    rss_base,
    rss_held,
    rss_after,
    rss_per_conn: res.connected ? grew / res.connected : null,
    released_pct: grew > 0 && rss_after != null ? (100 * (rss_held - rss_after)) / grew : null,
    broker_alive: peer.alive(),
  }
}
