/**
 * The `embedded-mqtt-broker` command with a config file (`-c`), its
 * environment variables, default bind, connection log (`-v`), SIGHUP reload
 * and forced exit; and config.schema.json, the file's published schema.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import Ajv from 'ajv'
import { afterAll, afterEach, describe, expect, it } from 'vitest'

import { cleanup, connect, connectRefused, inbox, killChildren, MqttServer, ROOT, subscribe } from './helpers'
import { type CliRun, EXIT_DEADLINE, listening as listenersOf, runCli } from './cli-run'

afterEach(async () => {
  killChildren()
  await cleanup()
})

const STUCK = join(ROOT, '__test__', 'fixtures', 'cli-stuck-close.cjs')
const DIR = mkdtempSync(join(tmpdir(), 'embedded-mqtt-broker-cli-'))
afterAll(() => rmSync(DIR, { recursive: true, force: true }))

let files = 0
/** Writes `content` (JSON-encoded unless a string) to a new file; its path. */
function configFile(content: unknown): string {
  const path = join(DIR, `config-${files++}.json`)
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content))
  return path
}

const tcp = (extra: object = {}) => ({ protocol: 'tcp', address: '127.0.0.1', port: 0, ...extra })

/** An environment without this package's variables, plus `extra`. */
function environment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const k of Object.keys(env)) if (k.startsWith('EMBEDDED_MQTT_BROKER_') || k === 'MQTT_SERVER_LOG') delete env[k]
  return { ...env, ...extra }
}

/** Runs the CLI with the signal probe (and more preloads), in `env`. */
function cli(args: string[], env: Record<string, string> = {}, preloads: string[] = []) {
  return runCli(args, { signals: true, env: environment(env), preloads })
}

/** Waits for the first "listening" line and the signal handlers; its URL. */
async function listening(run: CliRun): Promise<{ address: string; url: string }> {
  const [{ address, port }] = await listenersOf(run)
  return { address, url: `mqtt://127.0.0.1:${port}` }
}

async function stop(run: CliRun) {
  run.child.kill('SIGTERM')
  const exit = await run.exit(EXIT_DEADLINE)
  expect(exit.code).toBe(0)
  return exit
}

describe('config.schema.json', () => {
  const schema = JSON.parse(readFileSync(join(ROOT, 'config.schema.json'), 'utf8'))
  const validate = new Ajv({ allErrors: true }).compile(schema)

  it('is what scripts/config-schema.mjs generates from the types (run `npm run schema`)', async () => {
    const { render } = await import('../scripts/config-schema.mjs')
    expect(readFileSync(join(ROOT, 'config.schema.json'), 'utf8')).toBe(render())
  })

  it('is published in the package', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
    expect(pkg.files).toContain('config.schema.json')
  })

  // Every ```json block of README.md and docs/cli.md is a config file example.
  const examples = ['README.md', 'docs/cli.md'].flatMap((doc) =>
    [...readFileSync(join(ROOT, doc), 'utf8').matchAll(/```json\n([\s\S]*?)```/g)].map(
      (m, i) => [`${doc} #${i + 1}`, JSON.parse(m[1])] as [string, Record<string, unknown>],
    ),
  )

  it('the docs have examples', () => {
    expect(examples.map(([name]) => name)).toEqual(expect.arrayContaining(['README.md #1', 'docs/cli.md #1']))
  })

  it.each(examples)('accepts the example in %s', (_, example) => {
    expect(validate(example), JSON.stringify(validate.errors)).toBe(true)
  })

  it.each([
    ['an unknown key', { listeners: [tcp()], bogus: 1 }, 'must NOT have additional properties'],
    ['an unknown listener key', { listeners: [tcp({ prot: 'x' })] }, 'must NOT have additional properties'],
    ['a listener without port', { listeners: [{ protocol: 'tcp' }] }, "must have required property 'port'"],
    ['an unknown protocol', { listeners: [tcp({ protocol: 'udp' })] }, 'must be equal to one of the allowed values'],
    ['a port as a string', { listeners: [tcp({ port: '1883' })] }, 'must be number'],
    ['an unknown logLevel', { logLevel: 'loud' }, 'must be equal to one of the allowed values'],
  ])('rejects %s', (_, config, message) => {
    expect(validate(config)).toBe(false)
    expect(validate.errors?.map((e) => e.message)).toContain(message)
  })
})

describe('-c FILE', () => {
  it('every example in docs/cli.md and README.md starts, on port 0 and 127.0.0.1 (TLS files from the tests)', async () => {
    const { certs } = await import('./helpers')
    const c = certs()
    const docs = ['README.md', 'docs/cli.md'].flatMap((doc) =>
      [...readFileSync(join(ROOT, doc), 'utf8').matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1])),
    )
    for (const example of docs) {
      delete example.$schema
      for (const l of example.listeners ?? []) Object.assign(l, { port: 0, address: '127.0.0.1' })
      for (const l of example.listeners ?? []) if (l.tlsCert) Object.assign(l, { tlsCert: c.cert, tlsKey: c.key })
      const run = cli(['-c', configFile(example)])
      const { url } = await listening(run)
      expect((await connect(url)).connected).toBe(true)
      await stop(run)
    }
  })

  it("passes start()'s keys through: a listener with allowAnonymous: false refuses anonymous clients", async () => {
    const run = cli(['-c', configFile({ listeners: [tcp({ allowAnonymous: false })], workerThreads: 1 })])
    const { url } = await listening(run)
    expect((await connectRefused(url)).code).toBe(5)
    const exit = await stop(run)
    // An explicit loopback address: no warning, no default-bind notice.
    expect(exit.stderr.replace(/\[cli-signal-probe\].*\n/, '')).toBe('')
  })

  it('serves publish/subscribe; flags may add listeners when the file has none', async () => {
    const run = cli(['-c', configFile({ maxSessionExpiryInterval: 60 }), '--port', '0', '--host', '127.0.0.1'])
    const { url } = await listening(run)
    const sub = await connect(url, { protocolVersion: 5 })
    const box = inbox(sub)
    await subscribe(sub, 'cfg/t', 1)
    const pub = await connect(url)
    await pub.publishAsync('cfg/t', 'hello', { qos: 1 })
    expect((await box.next()).payload.toString()).toBe('hello')
    await stop(run)
  })

  const bad: Array<[string, () => string[], RegExp]> = [
    ['a missing file', () => ['-c', join(DIR, 'nope.json')], /nope\.json: cannot read: ENOENT/],
    ['a file that is not JSON', () => ['-c', configFile('{ listeners: ')], /config-\d+\.json: not valid JSON: /],
    ['a file that is not an object', () => ['-c', configFile([1])], /config-\d+\.json: must hold a JSON object$/m],
    [
      'an unknown key',
      () => ['-c', configFile({ listeners: [tcp()], bogus: 1 })],
      /config-\d+\.json: bogus: unknown field `bogus`/,
    ],
    [
      'a bad listener value',
      () => ['-c', configFile({ listeners: [tcp({ port: 70000 })] })],
      /config-\d+\.json: listeners\[0\]\.port: /,
    ],
    [
      'a bad top-level value with flag listeners',
      () => ['-c', configFile({ workerThreads: 0 }), '--port', '0', '--host', '127.0.0.1'],
      /config-\d+\.json: workerThreads: /,
    ],
    [
      'a bad logLevel',
      () => ['-c', configFile({ listeners: [tcp()], logLevel: 'loud' })],
      /config-\d+\.json: logLevel: must be one of error, warn, info, debug, trace, got "loud"/,
    ],
    [
      'listener flags with file listeners',
      () => ['-c', configFile({ listeners: [tcp()] }), '--port', '0'],
      /--port cannot be combined with a config file that has "listeners"/,
    ],
  ]
  it.each(bad)('%s: exit 2, the message names the file and field', async (_, args, message) => {
    const exit = await runCli(args(), { env: environment() }).exit(EXIT_DEADLINE)
    expect(exit.code).toBe(2)
    expect(exit.stdout).toBe('')
    expect(exit.stderr).toMatch(/^embedded-mqtt-broker: /)
    expect(exit.stderr).toMatch(message)
  })
})

describe('environment and default bind', () => {
  it('binds 127.0.0.1 without --host, and says so on stderr', async () => {
    const run = cli(['--port', '0'])
    const { address } = await listening(run)
    expect(address).toBe('127.0.0.1')
    await run.stderrMatch(/no address given: listening on 127\.0\.0\.1 only/)
    await stop(run)
  })

  it('EMBEDDED_MQTT_BROKER_CONFIG names the config file', async () => {
    const path = configFile({ listeners: [tcp({ allowAnonymous: false })] })
    const run = cli([], { EMBEDDED_MQTT_BROKER_CONFIG: path })
    const { url } = await listening(run)
    expect((await connectRefused(url)).code).toBe(5)
    await stop(run)
  })

  it('EMBEDDED_MQTT_BROKER_PORT and _HOST stand for --port and --host; a flag wins', async () => {
    const run = cli(['--port', '0'], { EMBEDDED_MQTT_BROKER_PORT: '1', EMBEDDED_MQTT_BROKER_HOST: '0.0.0.0' })
    const { address } = await listening(run)
    expect(address).toBe('0.0.0.0')
    // Every interface and anonymous clients: said loudly.
    await run.stderrMatch(/WARNING: mqtt:\/\/0\.0\.0\.0:\d+ accepts clients without a username from any network/)
    await stop(run)
  })

  it('a bad EMBEDDED_MQTT_BROKER_PORT is named in the error', async () => {
    const exit = await runCli([], { env: environment({ EMBEDDED_MQTT_BROKER_PORT: 'x' }) }).exit(EXIT_DEADLINE)
    expect(exit.code).toBe(2)
    expect(exit.stderr).toMatch(/EMBEDDED_MQTT_BROKER_PORT must be a port number from 0 to 65535, got "x"/)
  })
})

describe('-v: one line per connect, disconnect and refused CONNECT', () => {
  it.each([
    ['-v', ['-v'], {}],
    ['"logLevel": "info"', [], { logLevel: 'info' }],
  ])('%s', async (_, flags, extra) => {
    const path = configFile({ listeners: [tcp(), tcp({ allowAnonymous: false })], ...extra })
    const run = cli(['-c', path, ...flags])
    const [, port1, port2] = await run.stdoutMatch(/listening: mqtt:\/\/\S+:(\d+)\n.*listening: mqtt:\/\/\S+:(\d+)\n/)
    await listening(run)
    const url = `mqtt://127.0.0.1:${port1}`

    const c = await connect(url, { clientId: 'log-me', username: 'alice' })
    await run.stderrMatch(
      /INFO embedded_mqtt_broker::clients: connected client "log-me" \(user "alice"\) from 127\.0\.0\.1:\d+\n/,
    )
    await c.endAsync()
    await run.stderrMatch(
      /INFO embedded_mqtt_broker::clients: disconnected client "log-me" \(user "alice"\) from 127\.0\.0\.1:\d+: \S/,
    )
    for (const protocolVersion of [4, 5] as const) {
      const id = `refused-v${protocolVersion}`
      expect((await connectRefused(`mqtt://127.0.0.1:${port2}`, { clientId: id, protocolVersion })).code).toBe(
        protocolVersion === 5 ? 135 : 5,
      )
      await run.stderrMatch(
        new RegExp(`INFO embedded_mqtt_broker::clients: refused client "${id}" from 127\\.0\\.0\\.1:\\d+: \\S`),
      )
    }
    const exit = await stop(run)
    // Only this package's lines: none of rmqtt's.
    expect(exit.stderr).not.toMatch(/rmqtt/)
  })

  it('a connection over maxConnections is logged with its address and the limit', async () => {
    const run = cli(['-v', '-c', configFile({ listeners: [tcp({ maxConnections: 1 })] })])
    const { url } = await listening(run)
    await connect(url, { clientId: 'holds-the-place' })
    expect((await connectRefused(url, { clientId: 'one-too-many' })).code).toBe(3)
    await run.stderrMatch(
      /INFO embedded_mqtt_broker::clients: refused a connection from 127\.0\.0\.1:\d+: the listener has 1 connections \(maxConnections\)\n/,
    )
    await stop(run)
  })

  it('without -v, no client lines', async () => {
    const run = cli(['-c', configFile({ listeners: [tcp()] })])
    const { url } = await listening(run)
    await (await connect(url, { clientId: 'quiet' })).endAsync()
    const exit = await stop(run)
    expect(exit.stderr).not.toMatch(/quiet/)
  })
})

describe('SIGHUP reloads the config file', () => {
  it('reports the changed keys that need a restart and keeps serving', async () => {
    const path = configFile({ listeners: [tcp()], workerThreads: 2 })
    const run = cli(['-c', path])
    const { url } = await listening(run)
    writeFileSync(path, JSON.stringify({ listeners: [tcp()], workerThreads: 1, logLevel: 'info' }))
    run.child.kill('SIGHUP')
    await run.stdoutMatch(/SIGHUP: reloaded \S+: applied nothing; needs a restart: workerThreads, logLevel\n/)
    expect((await connect(url)).connected).toBe(true)
    await stop(run)
  })

  it('a broken file leaves the running configuration, and says why', async () => {
    const path = configFile({ listeners: [tcp()] })
    const run = cli(['-c', path])
    const { url } = await listening(run)
    writeFileSync(path, '{ not json')
    run.child.kill('SIGHUP')
    await run.stderrMatch(/SIGHUP: \S+: not valid JSON: .*; the running configuration is kept\n/)
    expect((await connect(url)).connected).toBe(true)
    // Fixed again: nothing changed since the last good one.
    writeFileSync(path, JSON.stringify({ listeners: [tcp()] }))
    run.child.kill('SIGHUP')
    await run.stdoutMatch(/SIGHUP: reloaded \S+: applied nothing; needs a restart: nothing\n/)
    await stop(run)
  })

  it('without a config file, says there is nothing to reload', async () => {
    const run = cli(['--port', '0', '--host', '127.0.0.1'])
    await listening(run)
    run.child.kill('SIGHUP')
    await run.stderrMatch(/SIGHUP: no config file \(-c\) to reload\n/)
    await stop(run)
  })

  // Runs once a server method such as setAcl() exists (feature-detected by
  // the CLI: `set<Key>` for a config key).
  it.skipIf(typeof (MqttServer.prototype as unknown as Record<string, unknown>).setAcl !== 'function')(
    'hands a key with a setter (acl) its new value',
    async () => {
      const path = configFile({ listeners: [tcp()], acl: [] })
      const run = cli(['-c', path])
      await listening(run)
      run.child.kill('SIGHUP')
      await run.stdoutMatch(/SIGHUP: reloaded \S+: applied acl; needs a restart: nothing\n/)
      await stop(run)
    },
  )
})

describe('a second SIGINT/SIGTERM exits at once', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s twice while the stop hangs: exit %i', async (signal, code) => {
    const run = cli(['--port', '0', '--host', '127.0.0.1'], {}, [STUCK])
    await listening(run)
    run.child.kill(signal)
    await run.stderrMatch(/\[cli-stuck-close\] close called\n/)
    run.child.kill(signal)
    const exit = await run.exit(EXIT_DEADLINE)
    expect(exit.code).toBe(code)
    expect(exit.stdout).toMatch(new RegExp(`${signal}, stopping\\n.*${signal} again, exiting now\\n$`))
  })
})
