#!/usr/bin/env node
// `npx embedded-mqtt-broker`: run the embedded broker as a standalone process.
// docs/cli.md describes the config file, the environment and the signals.
'use strict'

const { readFileSync } = require('node:fs')
const { isIP } = require('node:net')
const { isDeepStrictEqual, parseArgs } = require('node:util')

const NAME = 'embedded-mqtt-broker'
const ENV = {
  config: 'EMBEDDED_MQTT_BROKER_CONFIG',
  port: 'EMBEDDED_MQTT_BROKER_PORT',
  host: 'EMBEDDED_MQTT_BROKER_HOST',
}
const LOG_ENV = 'MQTT_SERVER_LOG'
const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace']
// Keys of the config file that are the CLI's, not start()'s (scripts/cli-config.d.ts).
const CLI_KEYS = ['$schema', 'logLevel']
// Flags that make listeners: they cannot be mixed with a config file's `listeners`.
const LISTENER_FLAGS = ['port', 'host', 'ws-port', 'tls-port', 'wss-port', 'tls-cert', 'tls-key', 'no-anonymous']

const USAGE = `Usage: ${NAME} [options]
       ${NAME} passwd [-D] FILE USER   (see passwd --help)

Options:
  -c, --config <file>   JSON config file: what MqttServer.start() takes, plus
                        "logLevel" (schema: config.schema.json in the package)
  -p, --port <n>        MQTT over TCP port (default 1883; 0 picks a free port)
  -H, --host <addr>     address to bind every listener (default 127.0.0.1:
                        this machine only; 0.0.0.0 for every interface)
      --ws-port <n>     also listen for MQTT over WebSocket
      --tls-port <n>    also listen for MQTT over TLS (needs --tls-cert/--tls-key)
      --wss-port <n>    also listen for MQTT over secure WebSocket (needs --tls-cert/--tls-key)
      --tls-cert <file> PEM certificate for the TLS listeners
      --tls-key <file>  PEM private key for the TLS listeners
      --no-anonymous    refuse clients that send no username
      --metrics-port <n> serve Prometheus metrics at http://<host>:<n>/metrics
  -v, --verbose         log each client connect, disconnect and refused CONNECT
  -h, --help            show this help
      --version         print the version

The listener flags cannot be combined with a config file that has "listeners".

Environment:
  ${ENV.config}   same as --config
  ${ENV.port}     same as --port
  ${ENV.host}     same as --host
  ${LOG_ENV}               log filter for stderr ("info", "rmqtt=debug"); wins over
                                -v and "logLevel"

Signals: SIGHUP reloads the config file (users, ACL: what the server can
replace while running); SIGINT/SIGTERM stop; a second one exits at once.`

/** An environment variable; set to "" counts as unset. */
const env = (name) => process.env[name] || undefined
const out = (line) => process.stdout.write(`${NAME}${line}\n`)
const err = (line) => process.stderr.write(`${NAME}: ${line}\n`)

function fail(message) {
  process.stderr.write(`${NAME}: ${message}\n\n${USAGE}\n`)
  process.exit(2)
}

/** A config file or its content is wrong: exit 2, without the usage. */
function badConfig(message) {
  err(message)
  process.exit(2)
}

function port(name, value) {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 65535) fail(`${name} must be a port number from 0 to 65535, got "${value}"`)
  return n
}

function options(argv) {
  try {
    return parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        port: { type: 'string', short: 'p' },
        host: { type: 'string', short: 'H' },
        'ws-port': { type: 'string' },
        'tls-port': { type: 'string' },
        'wss-port': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'no-anonymous': { type: 'boolean' },
        'metrics-port': { type: 'string' },
        verbose: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    }).values
  } catch (e) {
    fail(e.message)
  }
}

/**
 * Reads the config file: `{ cli, server }`, the CLI's keys and the rest,
 * passed to start() unchanged (start() validates it, naming the field).
 * Throws an Error naming the file.
 */
function loadConfig(path) {
  let text
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new Error(`${path}: cannot read: ${e.message}`)
  }
  let value
  try {
    value = JSON.parse(text)
  } catch (e) {
    throw new Error(`${path}: not valid JSON: ${e.message}`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new Error(`${path}: must hold a JSON object`)
  const cli = {}
  const server = {}
  for (const [k, v] of Object.entries(value)) (CLI_KEYS.includes(k) ? cli : server)[k] = v
  if (cli.logLevel !== undefined && !LOG_LEVELS.includes(cli.logLevel))
    throw new Error(`${path}: logLevel: must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(cli.logLevel)}`)
  if (cli.$schema !== undefined && typeof cli.$schema !== 'string')
    throw new Error(`${path}: $schema: must be a string`)
  return { cli, server }
}

/** The listeners the flags (or their environment variables) describe. */
function flagListeners(o, MqttServer) {
  const tls = o['tls-port'] !== undefined || o['wss-port'] !== undefined
  if (tls && (!o['tls-cert'] || !o['tls-key'])) fail('--tls-port and --wss-port need --tls-cert and --tls-key')
  if (!tls && (o['tls-cert'] || o['tls-key'])) fail('--tls-cert and --tls-key need --tls-port or --wss-port')
  const portFlag = o.port !== undefined ? '--port' : ENV.port
  return MqttServer.createMultiProtocolConfig({
    tcpPort: port(portFlag, o.port ?? env(ENV.port)) ?? 1883,
    wsPort: port('--ws-port', o['ws-port']),
    tlsPort: port('--tls-port', o['tls-port']),
    wssPort: port('--wss-port', o['wss-port']),
    address: o.host ?? env(ENV.host) ?? '127.0.0.1',
    tlsCert: tls ? o['tls-cert'] : undefined,
    tlsKey: tls ? o['tls-key'] : undefined,
    allowAnonymous: !o['no-anonymous'],
  }).listeners
}

/** MQTT_SERVER_LOG wins; else -v; else the file's logLevel. */
function logFilter(o, cli) {
  if (env(LOG_ENV)) return env(LOG_ENV)
  const level = o.verbose ? 'info' : cli.logLevel
  if (!level) return undefined
  // Up to info, only this package's lines (client connects...); rmqtt's own
  // logs are internals, shown from debug on.
  return LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf('info') ? `embedded_mqtt_broker=${level}` : level
}

const loopback = (address) => address === '::1' || (isIP(address) === 4 && address.startsWith('127.'))

async function main() {
  if (process.argv[2] === 'passwd') return require('./cli-passwd.js').main(process.argv.slice(3))
  const o = options(process.argv.slice(2))
  if (o.help) return void process.stdout.write(`${USAGE}\n`)
  if (o.version) return void process.stdout.write(`${require('./package.json').version}\n`)

  const configPath = o.config ?? env(ENV.config)
  let config = { cli: {}, server: {} }
  if (configPath) {
    try {
      config = loadConfig(configPath)
    } catch (e) {
      badConfig(e.message)
    }
  }
  const fileListeners = config.server.listeners !== undefined
  if (fileListeners) {
    const flag = LISTENER_FLAGS.find((f) => o[f] !== undefined)
    const variable = [ENV.port, ENV.host].find((v) => env(v) !== undefined)
    if (flag || variable)
      fail(`${flag ? `--${flag}` : variable} cannot be combined with a config file that has "listeners"`)
  }

  // The logger is set up once per process, from this variable, when the
  // first MqttServer is made.
  const filter = logFilter(o, config.cli)
  if (filter) process.env[LOG_ENV] = filter
  const { MqttServer } = require('./binding.cjs')
  const startConfig = { ...config.server }
  if (!fileListeners) startConfig.listeners = flagListeners(o, MqttServer)

  const metricsPort = port('--metrics-port', o['metrics-port'])

  const server = new MqttServer()
  let metrics
  // Handlers first: a signal that arrives as soon as we report "listening"
  // must already find them.
  let stopping = false
  const shutdown = async (signal) => {
    // A stop that hangs (a client that will not go) must not trap the operator.
    if (stopping) {
      out(`: ${signal} again, exiting now`)
      process.exit(signal === 'SIGINT' ? 130 : 143)
    }
    stopping = true
    out(`: ${signal}, stopping`)
    metrics?.close()
    await server.close()
    out(' stopped')
  }
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)
  // One reload at a time, each from the configuration the last one left.
  let reloading = Promise.resolve()
  process.on('SIGHUP', () => {
    reloading = reloading.then(async () => {
      config = await reload(server, configPath, config)
    })
  })

  let listeners
  try {
    listeners = await server.start(startConfig)
  } catch (e) {
    // ENOENT/EACCES (syscall 'open'): a TLS file that cannot be read is a usage error too.
    if (e.code === 'InvalidArg' || e.syscall === 'open') {
      // A bad value is a usage error: name the file, or the flag.
      if (configPath && (fileListeners || !e.message.startsWith('listeners['))) badConfig(`${configPath}: ${e.message}`)
      fail(flagMessage(e.message, startConfig))
    }
    err(e.message)
    process.exit(1)
  }
  // As mosquitto 2 does: a broker open to anonymous clients is local until told otherwise.
  if (!fileListeners && o.host === undefined && env(ENV.host) === undefined)
    err(
      'no address given: listening on 127.0.0.1 only, so only clients on this machine can connect (--host 0.0.0.0, or a config file, to accept others)',
    )
  for (const [i, l] of listeners.entries()) {
    out(` listening: ${l.url}`)
    if (!loopback(l.address) && startConfig.listeners[i]?.allowAnonymous !== false)
      err(`WARNING: ${l.url} accepts clients without a username from any network that reaches it`)
  }
  if (metricsPort !== undefined)
    metrics = await serveMetrics(server, o.host ?? env(ENV.host) ?? '127.0.0.1', metricsPort)
}

// `GET /metrics`: server.metrics() for Prometheus to scrape.
async function serveMetrics(server, host, port) {
  const http = require('node:http')
  const metrics = http.createServer(async (req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try GET /metrics\n')
      return
    }
    try {
      const body = await server.metrics()
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body)
    } catch (e) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end(`${e.message}\n`)
    }
  })
  try {
    await new Promise((resolve, reject) => {
      metrics.once('error', reject)
      metrics.listen(port, host, resolve)
    })
  } catch (e) {
    err(`--metrics-port: ${e.message}`)
    await server.close()
    process.exit(1)
  }
  const a = metrics.address()
  out(` metrics: http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics`)
  return metrics
}

/**
 * SIGHUP: re-reads the config file and hands each key the server can replace
 * while running (`server.setAcl(...)` for `acl`: whichever such setters this
 * version has) its new value; reports the changed keys that need a restart.
 * A file that cannot be read or parsed leaves everything as it was.
 * Resolves to the configuration now in force.
 */
async function reload(server, path, current) {
  if (!path) {
    err('SIGHUP: no config file (-c) to reload')
    return current
  }
  let next
  try {
    next = loadConfig(path)
  } catch (e) {
    err(`SIGHUP: ${e.message}; the running configuration is kept`)
    return current
  }
  const applied = []
  const restart = []
  const failed = []
  const keys = new Set([...Object.keys(current.server), ...Object.keys(next.server)])
  for (const key of keys) {
    const setter = server[`set${key[0].toUpperCase()}${key.slice(1)}`]
    if (typeof setter === 'function' && key in next.server) {
      try {
        await setter.call(server, next.server[key])
        applied.push(key)
      } catch (e) {
        failed.push(key)
        err(`SIGHUP: ${path}: ${e.message}`)
        next.server[key] = current.server[key]
      }
    } else if (!isDeepStrictEqual(current.server[key], next.server[key])) restart.push(key)
  }
  if (!isDeepStrictEqual(current.cli.logLevel, next.cli.logLevel)) restart.push('logLevel')
  const list = (keys) => (keys.length ? keys.join(', ') : 'nothing')
  const refused = failed.length ? `; refused (kept as it was): ${list(failed)}` : ''
  out(`: SIGHUP: reloaded ${path}: applied ${list(applied)}; needs a restart: ${list(restart)}${refused}`)
  return next
}

// `listeners[1].tlsCert: cannot read ...` -> `--tls-cert: cannot read ...`
function flagMessage(message, config) {
  const m = /^listeners\[(\d+)\]\.(\w+): (.*)$/.exec(message)
  if (!m) return message
  const protocol = config.listeners[Number(m[1])]?.protocol
  const portFlag = { tcp: '--port', ws: '--ws-port', tls: '--tls-port', wss: '--wss-port' }[protocol]
  const flag = { address: '--host', tlsCert: '--tls-cert', tlsKey: '--tls-key', port: portFlag }[m[2]]
  return flag ? `${flag}: ${m[3]}` : message
}

main()
