// Smoke test of one Linux binary on its own CPU, under qemu-user where that
// is not this machine's: `node scripts/smoke/run.mjs <triple> <file.node>`.
// The target's Node.js (Debian's, unpacked by scripts/debian-node-sysroot.sh
// for arm) runs scripts/smoke/broker.cjs with that binary; this process, on
// the host's Node.js, drives it with mqtt.js: a TCP and a WebSocket client
// subscribe, each gets the retained message and a server publish, then the
// broker stops and its process must exit 0 by itself. Exits non-zero with
// the reason on any failure or after a bounded wait.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import mqtt from 'mqtt'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const [triple, binary] = process.argv.slice(2)
if (!triple || !binary) throw new Error('usage: node scripts/smoke/run.mjs <triple> <file.node>')
// qemu emulates every instruction: allow generously, but never hang.
const DEADLINE_MS = Number(process.env.SMOKE_TIMEOUT_MS ?? 180_000)

/** Command line that runs the target's Node.js on this machine. */
function targetNode() {
  const hostArch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch]
  if (triple.startsWith(`${hostArch}-`)) return [process.execPath]
  const emulated = {
    aarch64: { debian: 'arm64', qemu: 'qemu-aarch64' },
    armv7: { debian: 'armhf', qemu: 'qemu-arm' },
  }[triple.split('-')[0]]
  if (!emulated) throw new Error(`no way to run ${triple} here`)
  const sysroot = execFileSync('bash', [join(ROOT, 'scripts', 'debian-node-sysroot.sh'), emulated.debian], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim()
  // Debian's qemu-user-static names them *-static; qemu-user without.
  const qemu = [`${emulated.qemu}-static`, emulated.qemu].find((bin) => !spawnSync(bin, ['--version']).error)
  if (!qemu) throw new Error(`${emulated.qemu} not found: apt-get install qemu-user-static`)
  return [qemu, '-L', sysroot, join(sysroot, 'usr', 'bin', 'node')]
}

function withDeadline(promise, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`smoke ${triple}: timed out waiting for ${what}`)), DEADLINE_MS)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

if (!existsSync(binary)) throw new Error(`${binary} does not exist`)
const [cmd, ...args] = targetNode()

// Without a binary, the package's entry must name this platform as a
// supported one (it does its own platform naming, e.g. linux-arm-gnueabihf).
// Skipped when a checkout build of this platform sits where the loader looks.
const platform = basename(binary).match(/^embedded-mqtt-broker\.(.+)\.node$/)?.[1]
if (platform && !existsSync(join(ROOT, basename(binary)))) {
  const env = { ...process.env }
  delete env.NAPI_RS_NATIVE_LIBRARY_PATH
  const r = spawnSync(cmd, [...args, '-e', "require('./binding.cjs')"], { cwd: ROOT, env, encoding: 'utf8' })
  for (const expected of ['ERR_MQTT_SERVER_NO_BINARY', `native binary for ${platform}`, 'This platform is supported']) {
    if (!r.stderr.includes(expected)) {
      console.error(`smoke ${triple}: the no-binary error lacks "${expected}":\n${r.stderr}`)
      process.exit(1)
    }
  }
}
const started = Date.now()
const broker = spawn(cmd, [...args, join(ROOT, 'scripts', 'smoke', 'broker.cjs')], {
  cwd: ROOT,
  env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: resolve(binary) },
  stdio: ['pipe', 'pipe', 'inherit'],
})
const exited = once(broker, 'exit')
const reports = createInterface({ input: broker.stdout })[Symbol.asyncIterator]()
async function report(key) {
  const { value, done } = await withDeadline(reports.next(), `the broker's "${key}" report`)
  if (done) throw new Error(`smoke ${triple}: broker exited before reporting "${key}" (${(await exited).join(' ')})`)
  const msg = JSON.parse(value)
  if (!msg[key]) throw new Error(`smoke ${triple}: expected "${key}", broker said ${value}`)
  return msg
}

const clients = []
try {
  const ready = await report('ready')
  const urls = { tcp: `mqtt://127.0.0.1:${ready.ports.tcp}`, ws: `ws://127.0.0.1:${ready.ports.ws}/mqtt` }
  const inboxes = {}
  for (const [proto, url] of Object.entries(urls)) {
    const client = await withDeadline(
      mqtt.connectAsync(url, { clientId: `smoke-${proto}`, reconnectPeriod: 0, connectTimeout: DEADLINE_MS }),
      `the ${proto} connection`,
    )
    clients.push(client)
    const got = new Map()
    const both = new Promise((done) =>
      client.on('message', (topic, payload, packet) => {
        got.set(topic, { payload: String(payload), retain: packet.retain })
        if (got.size === 2) done(got)
      }),
    )
    await withDeadline(client.subscribeAsync('smoke/#', { qos: 1 }), `the ${proto} subscription`)
    inboxes[proto] = both
  }
  broker.stdin.write('publish\n')
  await report('published')
  for (const [proto, inbox] of Object.entries(inboxes)) {
    const got = await withDeadline(inbox, `both messages on ${proto}`)
    const expected = {
      'smoke/retained': { payload: 'kept by the broker', retain: true },
      'smoke/server': { payload: 'from the broker', retain: false },
    }
    if (JSON.stringify(Object.fromEntries([...got].sort())) !== JSON.stringify(expected)) {
      throw new Error(`smoke ${triple}: ${proto} got ${JSON.stringify(Object.fromEntries(got))}`)
    }
  }
  await Promise.all(clients.map((c) => c.endAsync()))
  broker.stdin.end('stop\n')
  await report('stopped')
  const [code, signal] = await withDeadline(exited, 'the broker process to exit after stop()')
  if (code !== 0) throw new Error(`smoke ${triple}: broker exited with ${code ?? signal}`)
  console.log(
    `smoke ${triple}: ok on Node ${ready.node} ${ready.arch} (${cmd.split('/').pop()}): ` +
      `tcp and ws clients got the retained message and a server publish; broker stopped and exited 0 ` +
      `(${((Date.now() - started) / 1000).toFixed(1)} s)`,
  )
} catch (error) {
  for (const c of clients) c.end(true)
  broker.kill('SIGKILL')
  console.error(String(error?.stack ?? error))
  process.exit(1)
}
