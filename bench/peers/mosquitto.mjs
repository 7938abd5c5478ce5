// Peer: Eclipse Mosquitto (Debian package), single-threaded, with a minimal
// config: one listener on the given address and anonymous access (which
// mosquitto 2 refuses by default once a listener is configured). Everything
// else is mosquitto's default, notably:
//   max_connections -1 (unlimited; the real cap is the open-files limit)
//   max_inflight_messages 20, max_queued_messages 1000 per client (QoS 1/2
//     beyond that are dropped, for online clients too)
//   set_tcp_nodelay false (Nagle stays on)
//   persistence false
//
// This module only describes how to run it; run.mjs spawns the binary.
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** The mosquitto binary, installed from Debian's packages if missing. */
export function ensureMosquitto() {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']) {
    try {
      execFileSync(p, ['-h'], { stdio: 'ignore' })
    } catch (e) {
      // `mosquitto -h` exits 3 after printing its help; only a missing file is a miss.
      if (e.code === 'ENOENT') continue
    }
    return p
  }
  console.log('mosquitto not found: installing the Debian package (apt-get install -y mosquitto)')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env })
  execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'mosquitto'], { stdio: 'inherit', env })
  // The package enables a system service on port 1883; the benchmark does not use it.
  try {
    execFileSync('service', ['mosquitto', 'stop'], { stdio: 'ignore' })
  } catch {}
  return ensureMosquitto()
}

/** Writes the config for one instance and returns the command that runs it. */
export function mosquittoCommand(bin, { port, host, dir }) {
  const conf = join(dir, `mosquitto-${port}.conf`)
  writeFileSync(conf, `listener ${port} ${host}\nallow_anonymous true\n`)
  return [bin, ['-c', conf]]
}

/** `mosquitto 2.0.11`, from its help text. */
export function mosquittoVersion(bin) {
  try {
    return execFileSync(bin, ['-h'], { encoding: 'utf8' }).match(/mosquitto version (\S+)/)?.[1]
  } catch (e) {
    return String(e.stdout ?? '').match(/mosquitto version (\S+)/)?.[1] ?? 'unknown'
  }
}
