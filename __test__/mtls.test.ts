/**
 * Client certificates (mTLS) on tls and wss listeners: `tlsCa`,
 * `requireClientCert`, `certAsUsername`, and the certificate's subject in
 * `onClientAuthenticate`. A client CA and client certificates are made at
 * test time with the openssl CLI: one signed by the CA, one by another CA.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { afterAll, afterEach, describe, expect, it } from 'vitest'

import type { AuthenticateRequest } from '../index'
import {
  MQTT_VERSIONS,
  type MqttVersion,
  cleanup,
  connect,
  connectRefused,
  listener,
  startServer,
  urlFor,
} from './helpers'

afterEach(cleanup)

const dir = mkdtempSync(join(tmpdir(), 'embedded-mqtt-broker-mtls-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const p = (f: string) => join(dir, f)
const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' })
const ec = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']
writeFileSync(
  p('ext.cnf'),
  [
    '[ca]',
    'basicConstraints = critical, CA:TRUE',
    'keyUsage = critical, keyCertSign, cRLSign',
    '[client]',
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature',
    'extendedKeyUsage = clientAuth',
    '',
  ].join('\n'),
)

/** A self-signed CA named `name`. */
function makeCa(name: string): void {
  ossl('genpkey', ...ec, '-out', p(`${name}.key`))
  ossl('req', '-new', '-key', p(`${name}.key`), '-subj', `/CN=${name}`, '-out', p(`${name}.csr`))
  // biome-ignore format: one option per line pair reads worse here
  ossl('x509', '-req', '-in', p(`${name}.csr`), '-signkey', p(`${name}.key`), '-days', '2',
    '-extfile', p('ext.cnf'), '-extensions', 'ca', '-out', p(`${name}.pem`))
}

/** A client certificate with `subject`, signed by the CA `ca`; returns its PEM cert and key. */
function makeClient(name: string, subject: string, ca: string): { cert: string; key: string } {
  ossl('genpkey', ...ec, '-out', p(`${name}.key`))
  ossl('req', '-new', '-key', p(`${name}.key`), '-subj', subject, '-out', p(`${name}.csr`))
  // biome-ignore format: one option per line pair reads worse here
  ossl('x509', '-req', '-in', p(`${name}.csr`), '-CA', p(`${ca}.pem`), '-CAkey', p(`${ca}.key`),
    '-CAcreateserial', '-days', '2', '-extfile', p('ext.cnf'), '-extensions', 'client', '-out', p(`${name}.pem`))
  return { cert: readFileSync(p(`${name}.pem`), 'utf8'), key: readFileSync(p(`${name}.key`), 'utf8') }
}

makeCa('clients-ca')
makeCa('wrong-ca')
const alice = makeClient('alice', '/O=Acme/CN=alice', 'clients-ca')
const mallory = makeClient('mallory', '/O=Acme/CN=alice', 'wrong-ca')
const clientCa = readFileSync(p('clients-ca.pem'))

/** Starts a server on one listener of `protocol` with `extra` and records what onClientAuthenticate sees. */
async function serve(protocol: 'tls' | 'wss', extra: Parameters<typeof listener>[1]) {
  const { server, listeners } = await startServer([listener(protocol, extra)])
  const seen: AuthenticateRequest[] = []
  server.setHooks({
    onClientAuthenticate: (request) => {
      seen.push(request)
      return { allow: true }
    },
  })
  return { url: urlFor(listeners[0]), seen }
}

/** The error a TLS handshake the broker refuses gives the client. */
async function refusedHandshake(url: string, opts: Parameters<typeof connect>[1]) {
  const err = await connectRefused(url, opts)
  // Refused during the handshake: no CONNACK code, a TLS alert or a reset.
  expect(err.code === undefined || typeof err.code === 'string').toBe(true)
  return err
}

describe.each(['tls', 'wss'] as const)('mTLS on a %s listener', (protocol) => {
  it.each(Object.keys(MQTT_VERSIONS) as MqttVersion[])(
    'MQTT %s: a certificate signed by tlsCa connects; its subject is in onClientAuthenticate',
    async (version) => {
      const { url, seen } = await serve(protocol, { tlsCa: clientCa, requireClientCert: true })
      const c = await connect(url, { ...MQTT_VERSIONS[version], ...alice, username: 'claimed' })
      expect(c.connected).toBe(true)
      expect(seen).toHaveLength(1)
      expect(seen[0].username).toBe('claimed')
      expect(seen[0].certificate).toEqual({
        subject: 'O=Acme, CN=alice',
        cn: 'alice',
        organization: 'Acme',
        serial: expect.stringMatching(/^[0-9a-f]+$/),
      })
    },
  )

  it('a certificate signed by another CA is refused in the handshake', async () => {
    const { url, seen } = await serve(protocol, { tlsCa: clientCa, requireClientCert: true })
    await refusedHandshake(url, mallory)
    expect(seen).toEqual([])
  })

  it('no certificate is refused when requireClientCert is true', async () => {
    const { url, seen } = await serve(protocol, { tlsCa: clientCa, requireClientCert: true })
    await refusedHandshake(url, {})
    expect(seen).toEqual([])
  })

  it('without requireClientCert, no certificate connects with certificate null; a bad one is still refused', async () => {
    // allowAnonymous: false, so the hook is asked for CONNECTs without a username too.
    const { url, seen } = await serve(protocol, { tlsCa: clientCa, allowAnonymous: false })
    const c = await connect(url, {})
    expect(c.connected).toBe(true)
    expect(seen.map((s) => s.certificate)).toEqual([null])
    await refusedHandshake(url, mallory)
    const d = await connect(url, alice)
    expect(d.connected).toBe(true)
    expect(seen.map((s) => s.certificate?.cn ?? null)).toEqual([null, 'alice'])
  })

  it.each([
    ['cn', 'alice'],
    ['dn', 'O=Acme, CN=alice'],
  ] as const)(
    'certAsUsername %s: the username is the certificate’s, whatever the client sent',
    async (as, username) => {
      const { url, seen } = await serve(protocol, { tlsCa: clientCa, requireClientCert: true, certAsUsername: as })
      await connect(url, { ...alice, username: 'root' })
      await connect(url, alice)
      expect(seen.map((s) => s.username)).toEqual([username, username])
    },
  )

  it('a listener without tlsCa asks for no certificate: certificate null even if the client has one', async () => {
    const { url, seen } = await serve(protocol, { allowAnonymous: false })
    await connect(url, alice)
    expect(seen.map((s) => s.certificate)).toEqual([null])
  })
})

describe('mTLS options are checked', () => {
  it.each([
    [
      'requireClientCert without tlsCa',
      { requireClientCert: true },
      'listeners[0].requireClientCert: needs tlsCa, the CA certificates that sign the client certificates',
    ],
    [
      'certAsUsername without requireClientCert',
      { tlsCa: clientCa, certAsUsername: 'cn' as const },
      'listeners[0].certAsUsername: needs requireClientCert: true (else a client without a certificate would choose its own username)',
    ],
    [
      'certAsUsername neither cn nor dn',
      { tlsCa: clientCa, requireClientCert: true, certAsUsername: 'CN' as 'cn' },
      'listeners[0].certAsUsername: expected "cn" or "dn", got "CN"',
    ],
  ])('%s', async (_, extra, message) => {
    const err = await startServer([listener('tls', extra)]).catch((e) => e)
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toBe(message)
  })

  it.each(['tlsCa', 'requireClientCert', 'certAsUsername'] as const)('%s on a tcp listener', async (field) => {
    const value = { tlsCa: clientCa, requireClientCert: true, certAsUsername: 'cn' }[field]
    const err = await startServer([listener('tcp', { [field]: value })]).catch((e) => e)
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toBe(`listeners[0].${field}: only valid for "tls" and "wss" listeners, this one is "tcp"`)
  })

  it('tlsCa that holds no certificate is named', async () => {
    const err = await startServer([listener('tls', { tlsCa: Buffer.from('not a certificate') })]).catch((e) => e)
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toBe('listeners[0].tlsCa: no PEM certificate in the Buffer')
  })
})
