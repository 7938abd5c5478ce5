// Starting and stopping the brokers under test, each in its own process on
// its own loopback port, with its output in a log file.
import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

import { mosquittoCommand } from '../peers/mosquitto.mjs'
import { spawnWithNofile } from './proc.mjs'

export const HOST = '127.0.0.1'
export const OURS = 'embedded-mqtt-broker'
/** Our broker with another build of the addon (`--baseline PATH`), for A/B runs. */
export const BASELINE = 'baseline'

/**
 * How to launch each peer. `extra` adds a sidecar process that only burns
 * CPU, to tell CPU contention apart from an effect of embedding.
 */
export function peerKinds({ root, addon, baseline, mosquittoBin, mqttServerArgs, logDir }) {
  const node = process.execPath
  const ms =
    (extra, lib = addon) =>
    (port) => ({
      cmd: node,
      args: [
        join(root, 'bench/peers/embedded-mqtt-broker.mjs'),
        '--port',
        String(port),
        '--host',
        HOST,
        ...mqttServerArgs,
        ...extra,
      ],
      env: { NAPI_RS_NATIVE_LIBRARY_PATH: lib },
    })
  return {
    [OURS]: ms([]),
    ...(baseline ? { [BASELINE]: ms([], baseline) } : {}),
    'embedded-mqtt-broker, busy main thread': ms(['--busy']),
    'embedded-mqtt-broker + busy process': (port) => ({
      ...ms([])(port),
      sidecar: { cmd: node, args: ['-e', 'for (;;) {}'] },
    }),
    aedes: (port) => ({
      cmd: node,
      args: [join(root, 'bench/peers/aedes.mjs'), '--port', String(port), '--host', HOST],
    }),
    mosquitto: (port) => {
      const [cmd, args] = mosquittoCommand(mosquittoBin, { port, host: HOST, dir: logDir })
      return { cmd, args }
    },
  }
}

/** A port below Linux's ephemeral range that nothing listens on. */
export async function freePort() {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12000)
    const ok = await new Promise((resolve) => {
      const s = net.createServer()
      s.once('error', () => resolve(false))
      s.listen(port, HOST, () => s.close(() => resolve(true)))
    })
    if (ok) return port
  }
}

function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, HOST)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

export class Peer {
  constructor(name, launch, { nofile, logDir }) {
    Object.assign(this, { name, launch, nofile, logDir })
    this.proc = null
    this.sidecar = null
  }

  get pid() {
    return this.proc?.pid
  }

  alive() {
    return this.proc != null && this.proc.exitCode === null && this.proc.signalCode === null
  }

  /** Starts the broker and resolves once its port accepts connections. */
  async start() {
    this.port = await freePort()
    const spec = this.launch(this.port)
    mkdirSync(this.logDir, { recursive: true })
    this.logPath = join(this.logDir, `${this.name.replace(/\W+/g, '-')}-${this.port}.log`)
    const log = openSync(this.logPath, 'w')
    this.proc = spawnWithNofile(this.nofile, spec.cmd, spec.args, {
      stdio: ['ignore', log, log],
      env: { ...process.env, ...spec.env },
    })
    closeSync(log)
    if (spec.sidecar) this.sidecar = spawn(spec.sidecar.cmd, spec.sidecar.args, { stdio: 'ignore' })
    const deadline = Date.now() + 20_000
    while (!(await accepts(this.port))) {
      if (!this.alive()) throw new Error(`${this.name} exited during start (see ${this.logDir})`)
      if (Date.now() > deadline) throw new Error(`${this.name} did not listen on ${this.port} within 20 s`)
      await sleep(50)
    }
    return this
  }

  /** Why the process ended: its exit status and the first error line of its log. */
  deathNote() {
    const p = this.proc
    let line = ''
    try {
      line =
        readFileSync(this.logPath, 'utf8')
          .split('\n')
          .find((l) => /error|panic|abort|fatal/i.test(l)) ?? ''
    } catch {}
    const status = p?.signalCode ?? `exit code ${p?.exitCode}`
    return `${this.name} exited during the run (${status})${line ? `: ${line.trim().slice(0, 160)}` : ''}`
  }

  /** SIGTERM, then SIGKILL if it is still there after 3 s. */
  async stop() {
    this.sidecar?.kill('SIGKILL')
    this.sidecar = null
    const p = this.proc
    if (!p || !this.alive()) return
    const exited = new Promise((resolve) => p.once('exit', resolve))
    p.kill('SIGTERM')
    const t = setTimeout(() => p.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(t)
  }
}
