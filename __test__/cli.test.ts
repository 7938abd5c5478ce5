/**
 * The `embedded-mqtt-broker` command (cli.js), run as a real child process.
 */
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'

import { afterEach, describe, expect, it } from 'vitest'

import { certs, cleanup, connect, connectRefused, inbox, killChildren, ROOT, subscribe, waitFor } from './helpers'
import { CLI, EXIT_DEADLINE, listening, realStderr, runCli } from './cli-run'

afterEach(async () => {
  killChildren()
  await cleanup()
})

/** Runs the CLI exactly as the bin would (no preload). */
const cli = (...args: string[]) => runCli(args)
/** Runs the CLI with the signal probe (see runCli). */
const cliForSignals = (...args: string[]) => runCli(args, { signals: true })

it('cli.js exists and is the package bin', () => {
  expect(existsSync(CLI)).toBe(true)
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  expect(pkg.bin?.['embedded-mqtt-broker']).toMatch(/^(\.\/)?cli\.js$/)
  expect(readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node')).toBe(true)
})

describe('running', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    'starts on an ephemeral port, serves a client, and exits 0 on %s',
    async (signal) => {
      const run = cliForSignals('--port', '0', '--host', '127.0.0.1')
      const [l] = await listening(run, 1)
      expect(l).toEqual({ protocol: 'tcp', address: '127.0.0.1', port: expect.any(Number) })
      expect(l.port).toBeGreaterThan(0)

      const url = `mqtt://127.0.0.1:${l.port}`
      const sub = await connect(url)
      const box = inbox(sub)
      await subscribe(sub, 'cli/t', 1)
      const pub = await connect(url, { protocolVersion: 5 })
      await pub.publishAsync('cli/t', 'via cli', { qos: 1 })
      expect((await box.next()).payload.toString()).toBe('via cli')

      const closed = waitFor(sub, 'close', EXIT_DEADLINE)
      run.child.kill(signal)
      const exit = await run.exit(EXIT_DEADLINE)
      await closed
      expect(exit.code).toBe(0)
      expect(exit.signal).toBeNull()
      expect(exit.stdout).toMatch(/embedded-mqtt-broker stopped\n$/)
      expect(realStderr(exit.stderr)).toBe('')
      // The port is free again.
      const s = createServer().listen(l.port, '127.0.0.1')
      await waitFor(s, 'listening')
      s.close()
    },
  )

  it('--ws-port adds a WebSocket listener that works', async () => {
    const run = cliForSignals('--port', '0', '--host', '127.0.0.1', '--ws-port', '0')
    const ls = await listening(run, 2)
    expect(ls.map((l) => l.protocol)).toEqual(['tcp', 'ws'])
    const ws = await connect(`ws://127.0.0.1:${ls[1].port}/mqtt`)
    expect(ws.connected).toBe(true)
    run.child.kill('SIGTERM')
    expect((await run.exit(EXIT_DEADLINE)).code).toBe(0)
  })

  it('--tls-port/--wss-port with --tls-cert/--tls-key add TLS listeners that work', async () => {
    const c = certs()
    const run = cliForSignals(
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--tls-port',
      '0',
      '--wss-port',
      '0',
      '--tls-cert',
      c.cert,
      '--tls-key',
      c.key,
    )
    const ls = await listening(run, 3)
    expect(ls.map((l) => l.protocol)).toEqual(['tcp', 'tls', 'wss'])
    const tls = await connect(`mqtts://127.0.0.1:${ls[1].port}`)
    const wss = await connect(`wss://127.0.0.1:${ls[2].port}/mqtt`)
    expect(tls.connected && wss.connected).toBe(true)
    run.child.kill('SIGTERM')
    expect((await run.exit(EXIT_DEADLINE)).code).toBe(0)
  })

  it('--no-anonymous refuses a client without username', async () => {
    const run = cliForSignals('--port', '0', '--host', '127.0.0.1', '--no-anonymous')
    const [l] = await listening(run, 1)
    const err = await connectRefused(`mqtt://127.0.0.1:${l.port}`)
    expect(err.code).toBe(5)
    run.child.kill('SIGTERM')
    expect((await run.exit(EXIT_DEADLINE)).code).toBe(0)
  })

  it('--host localhost binds the loopback address', async () => {
    const run = cliForSignals('--port', '0', '--host', 'localhost')
    const [l] = await listening(run, 1)
    expect(l.address).toMatch(/^(127\.0\.0\.1|::1)$/)
    const c = await connect(`mqtt://${l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port}`)
    expect(c.connected).toBe(true)
    run.child.kill('SIGTERM')
    expect((await run.exit(EXIT_DEADLINE)).code).toBe(0)
  })

  it('a taken port makes it exit 1 with the broker error', async () => {
    const blocker = createServer().listen(0, '127.0.0.1')
    await waitFor(blocker, 'listening')
    try {
      const port = (blocker.address() as { port: number }).port
      const exit = await cli('--port', String(port), '--host', '127.0.0.1').exit(EXIT_DEADLINE)
      expect(exit.code).toBe(1)
      expect(exit.stdout).toBe('')
      expect(exit.stderr).toMatch(
        new RegExp(
          `^embedded-mqtt-broker: listener "tcp" \\(tcp on 127\\.0\\.0\\.1:${port}\\): cannot bind: Address already in use`,
        ),
      )
    } finally {
      blocker.close()
    }
  })
})

describe('bad flags exit 2 with a message on stderr', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--port', '70000'], /--port must be a port number from 0 to 65535, got "70000"/],
    [['--port', 'abc'], /--port must be a port number from 0 to 65535, got "abc"/],
    [['--port', '1.5'], /--port must be a port number/],
    [['--ws-port', '99999'], /--ws-port must be a port number from 0 to 65535, got "99999"/],
    [['--port'], /--port/],
    [['--bogus'], /Unknown option '--bogus'/],
    [['positional'], /Unexpected argument 'positional'/],
    [['--tls-port', '0'], /--tls-port and --wss-port need --tls-cert and --tls-key/],
    [['--wss-port', '0', '--tls-cert', 'x.pem'], /need --tls-cert and --tls-key/],
    [['--tls-cert', 'x.pem', '--tls-key', 'y.pem'], /--tls-cert and --tls-key need --tls-port or --wss-port/],
    [
      ['--port', '0', '--host', 'not an ip!'],
      /^embedded-mqtt-broker: --host: "not an ip!" is neither an IP address nor a host name/,
    ],
    [
      ['--port', '0', '--tls-port', '0', '--tls-cert', '/nope.pem', '--tls-key', '/nope.key'],
      /^embedded-mqtt-broker: --tls-cert: cannot read "\/nope\.pem"/,
    ],
  ]

  it.each(cases)('%j', async (args, message) => {
    const exit = await cli(...args).exit(EXIT_DEADLINE)
    expect(exit.code).toBe(2)
    expect(exit.stdout).toBe('')
    expect(exit.stderr).toMatch(/^embedded-mqtt-broker: /)
    expect(exit.stderr).toMatch(message)
  })
})

describe('info flags', () => {
  it('--help prints the usage and exits 0', async () => {
    const exit = await cli('--help').exit(EXIT_DEADLINE)
    expect(exit.code).toBe(0)
    expect(exit.stdout).toMatch(/^Usage: embedded-mqtt-broker/)
    expect(exit.stdout).toMatch(/--port/)
  })

  it('--version prints the package version and exits 0', async () => {
    const exit = await cli('--version').exit(EXIT_DEADLINE)
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
    expect(exit.code).toBe(0)
    expect(exit.stdout).toBe(`${version}\n`)
  })
})
