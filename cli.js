#!/usr/bin/env node
// `npx embedded-mqtt-broker`: run the embedded broker as a standalone process.
'use strict'

const { parseArgs } = require('node:util')
const { MqttServer } = require('./binding.cjs')

const USAGE = `Usage: embedded-mqtt-broker [options]

Options:
  -p, --port <n>        MQTT over TCP port (default 1883; 0 picks a free port)
  -H, --host <addr>     address to bind every listener (default 0.0.0.0)
      --ws-port <n>     also listen for MQTT over WebSocket
      --tls-port <n>    also listen for MQTT over TLS (needs --tls-cert/--tls-key)
      --wss-port <n>    also listen for MQTT over secure WebSocket (needs --tls-cert/--tls-key)
      --tls-cert <file> PEM certificate for the TLS listeners
      --tls-key <file>  PEM private key for the TLS listeners
      --no-anonymous    refuse clients that send no username
      --metrics-port <n> serve Prometheus metrics at http://<host>:<n>/metrics
  -h, --help            show this help
  -v, --version         print the version

Logs: set MQTT_SERVER_LOG (e.g. "info", "rmqtt=debug") to see broker logs on stderr.`

function fail(message) {
  process.stderr.write(`embedded-mqtt-broker: ${message}\n\n${USAGE}\n`)
  process.exit(2)
}

function port(name, value) {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 65535) fail(`--${name} must be a port number from 0 to 65535, got "${value}"`)
  return n
}

function options(argv) {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        port: { type: 'string', short: 'p' },
        host: { type: 'string', short: 'H' },
        'ws-port': { type: 'string' },
        'tls-port': { type: 'string' },
        'wss-port': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'no-anonymous': { type: 'boolean' },
        'metrics-port': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    }).values
  } catch (e) {
    fail(e.message)
  }
  return parsed
}

async function main() {
  const o = options(process.argv.slice(2))
  if (o.help) return void process.stdout.write(`${USAGE}\n`)
  if (o.version) return void process.stdout.write(`${require('./package.json').version}\n`)

  const tls = o['tls-port'] !== undefined || o['wss-port'] !== undefined
  if (tls && (!o['tls-cert'] || !o['tls-key'])) fail('--tls-port and --wss-port need --tls-cert and --tls-key')
  if (!tls && (o['tls-cert'] || o['tls-key'])) fail('--tls-cert and --tls-key need --tls-port or --wss-port')

  const config = MqttServer.createMultiProtocolConfig({
    tcpPort: port('port', o.port) ?? 1883,
    wsPort: port('ws-port', o['ws-port']),
    tlsPort: port('tls-port', o['tls-port']),
    wssPort: port('wss-port', o['wss-port']),
    address: o.host ?? '0.0.0.0',
    tlsCert: tls ? o['tls-cert'] : undefined,
    tlsKey: tls ? o['tls-key'] : undefined,
    allowAnonymous: !o['no-anonymous'],
  })
  const metricsPort = port('metrics-port', o['metrics-port'])

  const server = new MqttServer()
  // Handlers first: a signal that arrives as soon as we report "listening"
  // must already find them.
  let stopping = false
  const shutdown = async (signal) => {
    if (stopping) return
    stopping = true
    process.stdout.write(`embedded-mqtt-broker: ${signal}, stopping\n`)
    metrics?.close()
    await server.close()
    process.stdout.write('embedded-mqtt-broker stopped\n')
  }
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)

  let metrics
  let listeners
  try {
    listeners = await server.start(config)
  } catch (e) {
    // A bad value for a flag is a usage error: name the flag.
    if (e.code === 'InvalidArg') fail(flagMessage(e.message, config))
    process.stderr.write(`embedded-mqtt-broker: ${e.message}\n`)
    process.exit(1)
  }
  for (const l of listeners)
    process.stdout.write(`embedded-mqtt-broker listening: ${l.protocol} ${l.address}:${l.port}\n`)
  if (metricsPort !== undefined) metrics = await serveMetrics(server, o.host ?? '0.0.0.0', metricsPort)
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
    process.stderr.write(`embedded-mqtt-broker: --metrics-port: ${e.message}\n`)
    await server.close()
    process.exit(1)
  }
  const a = metrics.address()
  process.stdout.write(`embedded-mqtt-broker metrics: http://${a.address}:${a.port}/metrics\n`)
  return metrics
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
