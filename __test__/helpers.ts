/**
 * Shared test helpers: a real broker on ephemeral loopback ports, real mqtt.js
 * clients, certificates made with the openssl CLI, child Node.js processes.
 *
 * Every server started with `startServer` and every client made with
 * `connect` is tracked; call `cleanup()` in `afterEach` so nothing leaks even
 * when a test fails half way.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'

import type * as Addon from '../index'

export const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..')

/** The package as CommonJS users get it (`require('embedded-mqtt-broker')`). */
const requireCjs = createRequire(import.meta.url)
export const addon: typeof Addon = requireCjs(join(ROOT, 'index.js'))
export const { MqttServer, QoS } = addon
export type MqttServer = Addon.MqttServer
export type ListenerConfig = Addon.ListenerConfig
export type ListenerInfo = Addon.ListenerInfo
export type ServerConfig = Addon.ServerConfig
export type HookCallbacks = Addon.HookCallbacks
export type Protocol = ListenerConfig['protocol']

/** How long any single awaited event may take before the test fails. */
export const EVENT_TIMEOUT = 5000

// ---------------------------------------------------------------------------
// Resource tracking
// ---------------------------------------------------------------------------

const servers = new Set<MqttServer>()
const clients = new Set<MqttClient>()

/** A rejected start(): its message, and Node's fields when it is a system error. */
export interface StartError extends Error {
  code?: string
  errno?: number
  syscall?: string
  address?: string
  port?: number
  path?: string
}

/**
 * Starts a fresh tracked server with `config`, expects a rejection and
 * returns it; a rejected start never leaves anything running.
 */
export async function startError(config: unknown): Promise<StartError> {
  const server = track(new MqttServer())
  let err: StartError | undefined
  try {
    await server.start(config as never)
  } catch (e) {
    err = e as StartError
  }
  if (!err) throw new Error(`start(${JSON.stringify(config)}) resolved; expected a rejection`)
  if (!(err instanceof Error)) throw new Error(`start() rejected with a non-Error: ${String(err)}`)
  if (server.running) throw new Error('a rejected start() left the server running')
  if (server.listeners.length !== 0) throw new Error('a rejected start() left listeners')
  return err
}

/** Tracks a server so `cleanup()` closes it. */
export function track(server: MqttServer): MqttServer {
  servers.add(server)
  return server
}

const tempDirs: string[] = []

/** A fresh directory under the system's temp dir, removed by `removeTempDirs()` (call it from `afterEach`). */
export function tempDir(prefix = 'mqtt-store-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.push(d)
  return d
}

export function removeTempDirs(): void {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true })
}

/** Ends every tracked client and closes every tracked server. */
export async function cleanup(): Promise<void> {
  const cs = [...clients]
  clients.clear()
  await Promise.all(cs.map((c) => endClient(c)))
  const ss = [...servers]
  servers.clear()
  await Promise.all(ss.map((s) => s.close()))
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/** A loopback listener on an ephemeral port, overridable field by field. */
export function listener(protocol: Protocol = 'tcp', extra: Partial<ListenerConfig> = {}): ListenerConfig {
  const tls = protocol === 'tls' || protocol === 'wss' ? { tlsCert: certs().cert, tlsKey: certs().key } : {}
  return { address: '127.0.0.1', port: 0, protocol, ...tls, ...extra }
}

/**
 * Starts a new tracked server. Accepts a full config, or a list of listeners,
 * or nothing (one tcp listener on 127.0.0.1:0). `hooks` are set before
 * `start()`, so they decide from the first client on (hooks set on a running
 * server attach asynchronously). `url` is the first listener's.
 */
export async function startServer(
  config: ServerConfig | ListenerConfig[] = [listener('tcp')],
  { hooks, hookOptions }: { hooks?: HookCallbacks; hookOptions?: Addon.HookOptions } = {},
): Promise<{ server: MqttServer; listeners: ListenerInfo[]; url: string }> {
  const server = track(new MqttServer())
  if (hooks) server.setHooks(hooks, hookOptions)
  let cfg = Array.isArray(config) ? { listeners: config } : config
  // MQTT_TEST_STORAGE=1 npx vitest run: every server the tests start keeps
  // its sessions and retained messages on disk (a store of its own), so the
  // whole suite checks that storage changes nothing it tests.
  if (process.env.MQTT_TEST_STORAGE && !cfg.storage) cfg = { ...cfg, storage: { path: tempDir() } }
  const listeners = await server.start(cfg)
  return { server, listeners, url: urlFor(listeners[0]) }
}

/** The URL mqtt.js needs to reach a bound listener. */
export function urlFor(info: ListenerInfo): string {
  const host = info.address.includes(':') ? `[${info.address}]` : info.address
  switch (info.protocol) {
    case 'tcp':
      return `mqtt://${host}:${info.port}`
    case 'tls':
      return `mqtts://${host}:${info.port}`
    case 'ws':
      return `ws://${host}:${info.port}/mqtt`
    case 'wss':
      return `wss://${host}:${info.port}/mqtt`
  }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/** MQTT protocol versions mqtt.js speaks, as connect options. */
export const MQTT_VERSIONS = {
  '3.1': { protocolVersion: 3, protocolId: 'MQIsdp' },
  '3.1.1': { protocolVersion: 4 },
  '5.0': { protocolVersion: 5 },
} as const satisfies Record<string, IClientOptions>
export type MqttVersion = keyof typeof MQTT_VERSIONS

let clientSeq = 0

function clientOptions(url: string, opts: IClientOptions): IClientOptions {
  const secure = url.startsWith('mqtts:') || url.startsWith('wss:')
  return {
    clientId: `t${process.pid}-${++clientSeq}`,
    reconnectPeriod: 0,
    connectTimeout: EVENT_TIMEOUT,
    // Verify the broker's certificate against the test CA (the leaf is
    // issued for 127.0.0.1 and localhost).
    ...(secure ? { ca: certs().caPem, rejectUnauthorized: true } : {}),
    ...opts,
  }
}

/**
 * Connects a tracked client and resolves on CONNACK success; rejects with the
 * client's error (or on close) otherwise. `setup` runs before any packet is
 * read (attach 'message' listeners there when messages may come right after
 * the CONNACK, e.g. a resumed session).
 */
export async function connect(
  url: string,
  opts: IClientOptions = {},
  setup?: (client: MqttClient) => void,
): Promise<MqttClient> {
  const client = mqtt.connect(url, clientOptions(url, opts))
  clients.add(client)
  setup?.(client)
  await new Promise<void>((res, rej) => {
    const onConnect = () => {
      off()
      res()
    }
    const onError = (e: Error) => {
      off()
      rej(e)
    }
    const onClose = () => {
      off()
      rej(new Error(`connection to ${url} closed before CONNACK`))
    }
    const off = () => {
      client.off('connect', onConnect)
      client.off('error', onError)
      client.off('close', onClose)
    }
    client.on('connect', onConnect)
    client.on('error', onError)
    client.on('close', onClose)
  })
  return client
}

/**
 * Connects a tracked client that is expected to be refused; resolves with the
 * error mqtt.js reports (its `code` is the CONNACK return/reason code).
 */
export async function connectRefused(url: string, opts: IClientOptions = {}): Promise<Error & { code?: number }> {
  try {
    await connect(url, opts)
  } catch (e) {
    return e as Error & { code?: number }
  }
  throw new Error(`expected the connection to ${url} to be refused, but it was accepted`)
}

/**
 * Ends a client: gracefully (DISCONNECT) when it is connected and has nothing
 * in flight, else forced. Never waits more than a few seconds: a graceful end
 * waits for in-flight messages, which a broken connection never completes.
 */
export async function endClient(client: MqttClient): Promise<void> {
  clients.delete(client)
  // A late 'error' (EPIPE, ECONNRESET) on a client being thrown away must not
  // become an uncaught exception.
  client.on('error', () => {})
  const graceful = client.connected && !client.disconnecting
  try {
    await withDeadline(client.endAsync(!graceful), 3000, () => 'end timed out')
  } catch {
    client.stream?.destroy()
  }
}

/** Awaits one event with a deadline (rejects on 'error' too). */
export async function waitFor<T extends unknown[] = unknown[]>(
  emitter: NodeJS.EventEmitter | MqttClient,
  event: string,
  timeoutMs = EVENT_TIMEOUT,
): Promise<T> {
  try {
    return (await once(emitter as NodeJS.EventEmitter, event, { signal: AbortSignal.timeout(timeoutMs) })) as T
  } catch (e) {
    if ((e as Error).name === 'AbortError') {
      throw new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`)
    }
    throw e
  }
}

export interface Inbox {
  all: Received[]
  next(timeoutMs?: number): Promise<Received>
}

export interface Received {
  topic: string
  payload: Buffer
  packet: IPublishPacket
}

/**
 * Starts collecting a client's messages now; `next()` resolves with the next
 * one in arrival order (with a deadline), `all` holds everything seen so far.
 */
export function inbox(client: MqttClient): Inbox {
  const all: Received[] = []
  const waiting: Array<(m: Received) => void> = []
  let read = 0
  client.on('message', (topic, payload, packet) => {
    all.push({ topic, payload, packet })
    const w = waiting.shift()
    if (w) w(all[read++])
  })
  return {
    all,
    next(timeoutMs = EVENT_TIMEOUT): Promise<Received> {
      if (read < all.length) return Promise.resolve(all[read++])
      return new Promise<Received>((res, rej) => {
        const timer = setTimeout(() => {
          const i = waiting.indexOf(deliver)
          if (i >= 0) waiting.splice(i, 1)
          rej(new Error(`timed out after ${timeoutMs} ms waiting for a message (got ${all.length} so far)`))
        }, timeoutMs)
        const deliver = (m: Received) => {
          clearTimeout(timer)
          res(m)
        }
        waiting.push(deliver)
      })
    },
  }
}

/**
 * Positive control for "nothing (else) arrives": publishes a unique sentinel
 * at QoS 2 on `topic` through `via` (a client, or anything with a
 * `publish(topic, payload, opts)` promise such as the server), and reads
 * `box` until the sentinel shows up. Resolves with the messages read before
 * it. `box`'s client must be subscribed to `topic`. QoS 2 so that it is
 * emitted after any earlier delivery at any QoS (mqtt.js emits QoS 2
 * messages only on PUBREL).
 */
export async function drain(
  box: Inbox,
  via: MqttClient | { publish(topic: string, payload: string, opts: { qos: 2 }): Promise<unknown> },
  topic: string,
): Promise<Received[]> {
  const token = `sentinel-${process.pid}-${++sentinelSeq}`
  if ('publishAsync' in via) await via.publishAsync(topic, token, { qos: 2 })
  else await via.publish(topic, token, { qos: 2 })
  const before: Received[] = []
  for (;;) {
    const m = await box.next()
    if (m.topic === topic && m.payload.toString() === token) return before
    before.push(m)
  }
}
let sentinelSeq = 0

/** Subscribes and checks that the broker granted the requested QoS. */
export async function subscribe(client: MqttClient, topic: string, qos: 0 | 1 | 2 = 0): Promise<void> {
  const granted = await client.subscribeAsync(topic, { qos })
  if (granted.length !== 1 || granted[0].qos !== qos) {
    throw new Error(`subscribe ${topic} at QoS ${qos}: broker granted ${JSON.stringify(granted)}`)
  }
}

/** Subscribes and resolves with the SUBACK's codes, one per filter, in order. */
export async function subackCodes(
  client: MqttClient,
  subs: Record<string, { qos: 0 | 1 | 2 }>,
  timeoutMs = EVENT_TIMEOUT,
): Promise<number[]> {
  const suback = new Promise<number[]>((resolve) => {
    const onPacket = (p: any) => {
      if (p.cmd !== 'suback') return
      client.off('packetreceive', onPacket)
      resolve(p.granted)
    }
    client.on('packetreceive', onPacket)
  })
  client.subscribe(subs, () => {})
  return withDeadline(suback, timeoutMs, () => `no SUBACK within ${timeoutMs} ms for ${Object.keys(subs).join(', ')}`)
}

/** Every byte value 0..255 once. */
export function allBytes(): Buffer {
  return Buffer.from(Array.from({ length: 256 }, (_, i) => i))
}

/** A deterministic pseudo-random buffer (no two runs differ). */
export function patternBytes(length: number, seed = 1): Buffer {
  const b = Buffer.alloc(length)
  let x = seed >>> 0 || 1
  for (let i = 0; i < length; i++) {
    // xorshift32
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 0xff
  }
  return b
}

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

export interface Certs {
  dir: string
  /** CA certificate (PEM) that clients trust. */
  caPem: string
  /** Server certificate file, issued by the CA for 127.0.0.1 and localhost. */
  cert: string
  /** Server private key file (PKCS#8 PEM). */
  key: string
  /** A second, unrelated key (for the key/cert mismatch case). */
  otherKey: string
}

let cached: Certs | undefined

/**
 * A throw-away CA and a server certificate signed by it, made once per test
 * file with the openssl CLI in a temp dir (removed at process exit).
 */
export function certs(): Certs {
  if (cached) return cached
  const dir = mkdtempSync(join(tmpdir(), 'embedded-mqtt-broker-test-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const p = (f: string) => join(dir, f)
  const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' })
  const ec = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']
  writeFileSync(
    p('ext.cnf'),
    [
      '[ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      '[leaf]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = serverAuth',
      'subjectAltName = IP:127.0.0.1, DNS:localhost',
      '',
    ].join('\n'),
  )
  ossl('genpkey', ...ec, '-out', p('ca.key'))
  ossl('req', '-new', '-key', p('ca.key'), '-subj', '/CN=embedded-mqtt-broker test CA', '-out', p('ca.csr'))
  ossl(
    'x509',
    '-req',
    '-in',
    p('ca.csr'),
    '-signkey',
    p('ca.key'),
    '-days',
    '2',
    '-extfile',
    p('ext.cnf'),
    '-extensions',
    'ca',
    '-out',
    p('ca.pem'),
  )
  ossl('genpkey', ...ec, '-out', p('server.key'))
  ossl('req', '-new', '-key', p('server.key'), '-subj', '/CN=localhost', '-out', p('server.csr'))
  ossl(
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    p('ext.cnf'),
    '-extensions',
    'leaf',
    '-out',
    p('server.pem'),
  )
  ossl('genpkey', ...ec, '-out', p('other.key'))
  cached = {
    dir,
    caPem: execFileSync('openssl', ['x509', '-in', p('ca.pem')], { encoding: 'utf8' }),
    cert: p('server.pem'),
    key: p('server.key'),
    otherKey: p('other.key'),
  }
  return cached
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

const children = new Set<ChildProcess>()

/** Kills (SIGKILL) any child a failed test left behind. */
export function killChildren(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  }
  children.clear()
}

/** Spawns a tracked child process (output collected as text). */
export function spawnTracked(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const exited = new Promise<Exit>((res) => {
    child.on('exit', (code, signal) => {
      // 'close' follows once the pipes are drained.
      child.on('close', () => res({ code, signal, stdout, stderr }))
    })
  })
  return {
    child,
    get stdout() {
      return stdout
    },
    get stderr() {
      return stderr
    },
    /** Resolves with the exit status, or rejects after `timeoutMs`. */
    exit(timeoutMs: number): Promise<Exit> {
      return withDeadline(
        exited,
        timeoutMs,
        () => `process did not exit within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`,
      )
    },
    /** Resolves once stdout matches `re` (with the match), rejects on exit or timeout. */
    stdoutMatch(re: RegExp, timeoutMs = 10000): Promise<RegExpMatchArray> {
      return match('stdout', re, timeoutMs)
    },
    /** Resolves once stderr matches `re` (with the match), rejects on exit or timeout. */
    stderrMatch(re: RegExp, timeoutMs = 10000): Promise<RegExpMatchArray> {
      return match('stderr', re, timeoutMs)
    },
  }

  function match(which: 'stdout' | 'stderr', re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const stream = child[which]!
    const text = () => (which === 'stdout' ? stdout : stderr)
    return withDeadline(
      new Promise<RegExpMatchArray>((res, rej) => {
        const check = () => {
          const m = text().match(re)
          if (m) {
            stream.off('data', check)
            res(m)
          }
        }
        stream.on('data', check)
        check()
        exited.then((e) =>
          rej(
            new Error(
              `process exited (${e.code ?? e.signal}) before ${which} matched ${re}; stdout: ${e.stdout}; stderr: ${e.stderr}`,
            ),
          ),
        )
      }),
      timeoutMs,
      () => `${which} did not match ${re} within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`,
    )
  }
}

/** Runs `node -e script` (CommonJS) as a tracked child. */
export function nodeEval(script: string) {
  return spawnTracked(process.execPath, ['-e', script])
}

/** Polls `probe` until it passes or `ms` run out (no event tells when the broker closed a socket). */
export async function eventually(probe: () => boolean, ms = 10000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (probe()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return probe()
}

/** Rejects with `msg()` if `p` has not settled after `ms`. */
export function withDeadline<T>(p: Promise<T>, ms: number, msg: () => string): Promise<T> {
  let timer: NodeJS.Timeout
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(msg())), ms)
    }),
  ])
}
