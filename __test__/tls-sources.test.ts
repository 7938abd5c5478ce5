/**
 * TLS material the Node way: `tlsCert`, `tlsKey` and `tlsCa` take a file
 * path, PEM text or a Buffer/Uint8Array, as `tls.createServer` does; and a
 * private key passed in any wrong way never appears in an error message, a
 * warning or a log line (a child process runs every case with the broker's
 * logs on, and its whole output is searched for the key).
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { afterEach, describe, expect, it } from 'vitest'

import {
  MqttServer,
  ROOT,
  certs,
  cleanup,
  connect,
  killChildren,
  listener,
  spawnTracked,
  startServer,
  urlFor,
} from './helpers'

afterEach(async () => {
  killChildren()
  await cleanup()
})

const pem = (path: string) => readFileSync(path, 'utf8')
type Source = string | Buffer | Uint8Array
const forms: [string, (path: string) => Source][] = [
  ['a file path', (path) => path],
  ['PEM text', (path) => pem(path)],
  ['a Buffer', (path) => readFileSync(path)],
  ['a Uint8Array', (path) => new Uint8Array(readFileSync(path))],
]

describe('tlsCert and tlsKey as a path, PEM text or a Buffer', () => {
  it.each(forms)('%s, on tls and wss listeners; clients verify the certificate', async (_, form) => {
    const material = { tlsCert: form(certs().cert), tlsKey: form(certs().key) }
    const { listeners } = await startServer([listener('tls', material), listener('wss', material)])
    for (const l of listeners) {
      const c = await connect(urlFor(l))
      expect(c.connected).toBe(true)
    }
  })

  it('createMultiProtocolConfig takes Buffers and hands them back as Buffers', async () => {
    const config = MqttServer.createMultiProtocolConfig({
      tlsPort: 0,
      address: '127.0.0.1',
      tlsCert: readFileSync(certs().cert),
      tlsKey: readFileSync(certs().key),
    })
    expect(Buffer.isBuffer(config.listeners[0].tlsKey)).toBe(true)
    const { listeners } = await startServer(config)
    const c = await connect(urlFor(listeners[0]))
    expect(c.connected).toBe(true)
  })

  it.each([
    [
      'tlsCert',
      { tlsCert: 5 },
      'listeners[0].tlsCert: invalid type: integer `5`, expected a file path, PEM text or a Buffer',
    ],
    [
      'tlsKey',
      { tlsKey: { key: 'x' } },
      'listeners[0].tlsKey: invalid type: map, expected a file path, PEM text or a Buffer',
    ],
    [
      'tlsCa',
      { tlsCa: ['a'] },
      'listeners[0].tlsCa: expected a file path, PEM text or a Buffer, got an array that is not of bytes',
    ],
  ])('a wrong type for %s is named', async (_, extra, message) => {
    const err = await startServer([listener('tls', extra as object)]).catch((e) => e)
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toBe(message)
  })

  it('bare base64 (a key without its PEM lines) is neither a path nor PEM, and is not shown', async () => {
    const line = pem(certs().key).split('\n')[1]
    const err = await startServer([listener('tls', { tlsKey: line })]).catch((e) => e)
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toBe(
      'listeners[0].tlsKey: expected a file path, PEM text or a Buffer, got what looks like base64 without its PEM header line; its content is not shown',
    )
  })

  it('a key where the certificate belongs is named by its kind, not shown', async () => {
    const err = await startServer([listener('tls', { tlsCert: readFileSync(certs().key) })]).catch((e) => e)
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toBe('listeners[0].tlsCert: no PEM certificate in the Buffer')
  })
})

describe('a private key never appears in an error, a warning or a log line', () => {
  /**
   * What must not appear: every 16-character window (step 4) of the key's
   * base64 body, and of its DER bytes in hex, so a part of a line shown is
   * caught as well as a whole one. An EC key embeds its public key, which
   * the certificate (public, logged by rustls at trace) holds too: windows
   * found in the certificate are not key material.
   */
  function keyMaterial(keyPem: string, certPem: string): string[] {
    const body = (pem: string) =>
      pem
        .split('\n')
        .filter((l) => l && !l.startsWith('-----'))
        .join('')
    const b64 = body(keyPem)
    const hex = Buffer.from(b64, 'base64').toString('hex')
    const publicHex = Buffer.from(body(certPem), 'base64').toString('hex')
    const windows = (s: string) =>
      Array.from({ length: Math.floor((s.length - 16) / 4) + 1 }, (_, i) => s.slice(i * 4, i * 4 + 16))
    return [...windows(b64), ...windows(hex).filter((w) => !publicHex.includes(w))]
  }

  it('every wrong way, with the broker logging at trace level', async () => {
    const c = certs()
    // Logs on for everything (this package, rmqtt, rustls); the child inherits it.
    const saved = process.env.MQTT_SERVER_LOG
    process.env.MQTT_SERVER_LOG = 'trace'
    const args = [join(ROOT, '__test__/fixtures/key-leak.cjs'), ROOT, c.cert, c.key, join(c.dir, 'ca.pem')]
    let run: ReturnType<typeof spawnTracked>
    try {
      run = spawnTracked(process.execPath, args)
    } finally {
      if (saved === undefined) delete process.env.MQTT_SERVER_LOG
      else process.env.MQTT_SERVER_LOG = saved
    }
    const exit = await run.exit(60_000)
    const lines = exit.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines.filter((l) => l.fatal)).toEqual([])
    const byCase: Record<string, { started?: boolean; message?: string }> = Object.fromEntries(
      lines.filter((l) => l.case).map((l) => [l.case, l]),
    )
    // The wrong ways that must be refused are refused (so their messages were made and searched).
    const refused = Object.entries(byCase).filter(([, l]) => !l.started)
    expect(refused.length).toBeGreaterThanOrEqual(25)
    for (const name of [
      'key as tlsCert (PEM text)',
      'key as tlsCa (Buffer)',
      'truncated PEM as tlsKey (text)',
      'the base64 body alone, one line',
      'one base64 line of the key',
      'path-like string with the key body',
      'key as address',
      'key as a field name',
    ])
      expect(byCase[name]?.message, name).toBeTypeOf('string')
    expect(byCase.served.started).toBe(true)
    const output = exit.stdout + exit.stderr
    expect(exit.stderr.length).toBeGreaterThan(0) // the logs were on
    const leaked = keyMaterial(pem(c.key), pem(c.cert)).filter((chunk) => output.includes(chunk))
    expect(leaked).toEqual([])
    expect(output).not.toMatch(/PRIVATE KEY-----\s*\S/)
  }, 90_000)
})
