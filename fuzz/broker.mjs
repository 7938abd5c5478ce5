// The broker under fuzz, in a child process of its own (forked by run.mjs
// with an IPC channel) so a crash cannot take the fuzzer with it.
//
// Listens on 127.0.0.1: tcp, ws, and a tcp listener that requires
// authentication (so onClientAuthenticate decides every client there).
// Installs every hook; decision hooks mostly allow, and by a hash of what
// they decide on also deny, answer late, answer after the timeout, throw,
// reject or answer nonsense. Messages from the parent: {cmd: 'rss'} and
// {cmd: 'stop'}; it answers {type: 'ready' | 'rss' | 'stopped', ...}.
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'

const require = createRequire(import.meta.url)
const { MqttServer } = require('../index.js')

/** Decision hooks time out (and deny) after this long. */
const HOOK_TIMEOUT_MS = 1000
/** The liveness probes' client ids start with this; they are always allowed. */
const PROBE_PREFIX = 'fuzzprobe-'

/** FNV-1a over (at most 64 chars of) `s` and its length: a stable choice per input. */
function hash(s) {
  let h = 0x811c9dc5 ^ s.length
  const n = Math.min(s.length, 64)
  for (let i = 0; i < n; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return (h >>> 0) % 1000
}

/**
 * The answer for a decision on `key`: ~85% `allow`, the rest a denial, a
 * late answer, an answer after the timeout, a throw, a rejection, or a value
 * of the wrong shape (each must end in a denial, never a crash).
 */
function decide(key, allow, deny) {
  const h = hash(key)
  if (h < 850) return allow
  if (h < 900) return deny
  if (h < 930) return sleep(h - 880).then(() => allow) // 20-50 ms late
  if (h < 935) return sleep(HOOK_TIMEOUT_MS + 200).then(() => allow) // timed out
  if (h < 955) throw new Error('hook failure (fuzz)')
  if (h < 975) return Promise.reject(new Error('hook rejection (fuzz)'))
  return h < 990 ? { allow: 'yes' } : 42
}

let notified = 0
const touch = (...args) => {
  notified++
  // Read every argument as a user would: the conversions must hold up.
  for (const a of args) if (a && typeof a === 'object') for (const k in a) void a[k]
  if (notified % 997 === 0) throw new Error('notification hook failure (fuzz)')
}

const hooks = {
  onClientAuthenticate: (req) =>
    req.clientId.startsWith(PROBE_PREFIX)
      ? { allow: true }
      : decide(
          `${req.clientId}|${req.username}`,
          hash(req.username ?? '') % 10 === 0 ? { allow: true, superuser: true } : { allow: true },
          {
            allow: false,
            reason: 'fuzz says no',
            code: hash(req.clientId) % 2 ? 'notAuthorized' : 'badUsernameOrPassword',
          },
        ),
  onClientSubscribeAuthorize: (session, sub) =>
    session.clientId.startsWith(PROBE_PREFIX)
      ? { allow: true }
      : decide(sub.topicFilter, hash(sub.topicFilter) % 3 === 0 ? { allow: true, qos: 0 } : { allow: true }, {
          allow: false,
          reason: 'fuzz says no',
        }),
  onClientPublishAuthorize: (session, msg) =>
    session.clientId.startsWith(PROBE_PREFIX)
      ? { allow: true }
      : decide(
          `${msg.topic}|${msg.payload.length}`,
          { allow: true },
          {
            allow: false,
            reason: 'fuzz says no',
            disconnect: msg.payload.length % 7 === 0,
          },
        ),
  onMessagePublish: touch,
  onClientSubscribe: touch,
  onClientUnsubscribe: touch,
  onClientConnected: touch,
  onClientDisconnected: touch,
  onMessageDelivered: touch,
  onMessageAcked: touch,
  onMessageDropped: touch,
  onSessionCreated: touch,
  onSessionTerminated: touch,
}

const server = new MqttServer()
server.setHooks(hooks, { timeoutMs: HOOK_TIMEOUT_MS })
const host = '127.0.0.1'
const listeners = await server.start({
  listeners: [
    { name: 'tcp', protocol: 'tcp', address: host, port: 0, maxTopicAliases: 10 },
    { name: 'ws', protocol: 'ws', address: host, port: 0, maxTopicAliases: 10 },
    { name: 'tcp-auth', protocol: 'tcp', address: host, port: 0, allowAnonymous: false },
  ],
})

const rss = () => process.memoryUsage.rss()
/** Open file descriptors (Linux; null elsewhere): sockets the broker still holds. */
const fds = () => {
  try {
    return readdirSync('/proc/self/fd').length
  } catch {
    return null
  }
}
const ports = Object.fromEntries(listeners.map((l) => [l.name, l.port]))
process.send({ type: 'ready', ports, rss: rss(), fds: fds() })

process.on('message', async (m) => {
  if (m.cmd === 'rss') process.send({ type: 'rss', rss: rss(), fds: fds(), hookStats: server.hookStats, notified })
  if (m.cmd === 'stop') {
    const t0 = Date.now()
    await server.stop()
    const stopMs = Date.now() - t0
    // Let the hook queue and the JS heap settle before measuring.
    await sleep(500)
    globalThis.gc?.()
    await sleep(500)
    process.send({ type: 'stopped', stopMs, rss: rss(), fds: fds(), hookStats: server.hookStats, notified })
    await server.close()
    process.disconnect()
  }
})
// The parent is gone: nothing to report to.
process.on('disconnect', () => process.exit(0))
