/**
 * TLS material at start(): certificates out of their validity period start
 * with a warning, encrypted keys are refused naming the field. PEM text and
 * Buffers, and the key never appearing in an error: tls-sources.test.ts.
 * Certificates are made with the openssl CLI.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { afterEach, describe, expect, it } from 'vitest'

import { MqttServer, certs, cleanup, connect, listener, track, urlFor, startError } from './helpers'

afterEach(cleanup)

const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' })

let seq = 0

/**
 * A self-signed certificate for 127.0.0.1 valid only between `start` and
 * `end` (openssl's YYYYMMDDHHMMSSZ). `openssl ca` is used because
 * `openssl x509` of OpenSSL 3.0 cannot set dates in the past.
 */
function certValid(start: string, end: string): { cert: string; key: string } {
  const dir = join(certs().dir, `dated-${++seq}`)
  mkdirSync(join(dir, 'db'), { recursive: true })
  const p = (f: string) => join(dir, f)
  writeFileSync(p('db/index.txt'), '')
  writeFileSync(p('db/serial'), '01\n')
  writeFileSync(
    p('ca.cnf'),
    [
      '[ca]',
      'default_ca = d',
      '[d]',
      `database = ${p('db/index.txt')}`,
      `serial = ${p('db/serial')}`,
      `new_certs_dir = ${p('db')}`,
      'default_md = sha256',
      'policy = p',
      'email_in_dn = no',
      'copy_extensions = copy',
      '[p]',
      'commonName = supplied',
      '',
    ].join('\n'),
  )
  ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p('key.pem'))
  ossl(
    'req',
    '-new',
    '-key',
    p('key.pem'),
    '-subj',
    '/CN=dated',
    '-addext',
    'subjectAltName = IP:127.0.0.1',
    '-out',
    p('req.csr'),
  )
  ossl(
    'ca',
    '-batch',
    '-config',
    p('ca.cnf'),
    '-selfsign',
    '-keyfile',
    p('key.pem'),
    '-in',
    p('req.csr'),
    '-startdate',
    start,
    '-enddate',
    end,
    '-out',
    p('cert.pem'),
  )
  return { cert: p('cert.pem'), key: p('key.pem') }
}

interface EmittedWarning extends Error {
  code?: string
}

/** Collects the process warnings emitted while `run` runs, and one tick after. */
async function warningsDuring<T>(run: () => Promise<T>): Promise<{ value: T; warnings: EmittedWarning[] }> {
  const warnings: EmittedWarning[] = []
  const onWarning = (w: EmittedWarning) => warnings.push(w)
  process.on('warning', onWarning)
  try {
    const value = await run()
    // process.emitWarning emits on the next tick.
    await new Promise((res) => setImmediate(res))
    return { value, warnings }
  } finally {
    process.off('warning', onWarning)
  }
}

describe('a certificate outside its validity period starts with a warning', () => {
  it('expired: process warning MQTT_SERVER_TLS_CERT_EXPIRED naming the field and the date; the listener serves', async () => {
    const dated = certValid('20200101000000Z', '20200102000000Z')
    const server = track(new MqttServer())
    const { value: listeners, warnings } = await warningsDuring(() =>
      server.start({ listeners: [listener('tls', { tlsCert: dated.cert, tlsKey: dated.key })] }),
    )
    const expired = warnings.filter((w) => w.code === 'MQTT_SERVER_TLS_CERT_EXPIRED')
    expect(expired).toHaveLength(1)
    expect(expired[0].name).toBe('MqttServerWarning')
    expect(expired[0].message).toMatch(
      /^listeners\[0\]\.tlsCert: the certificate "CN=dated" in ".*cert\.pem" expired on .*2020/,
    )
    // Started anyway: a client that does not verify the certificate connects.
    const c = await connect(urlFor(listeners[0]), { rejectUnauthorized: false })
    expect(c.connected).toBe(true)
  })

  it('not yet valid: process warning MQTT_SERVER_TLS_CERT_NOT_YET_VALID', async () => {
    const dated = certValid('20990101000000Z', '21000101000000Z')
    const server = track(new MqttServer())
    const { warnings } = await warningsDuring(() =>
      server.start({ listeners: [listener('wss', { name: 'future', tlsCert: dated.cert, tlsKey: dated.key })] }),
    )
    const early = warnings.filter((w) => w.code === 'MQTT_SERVER_TLS_CERT_NOT_YET_VALID')
    expect(early).toHaveLength(1)
    expect(early[0].message).toMatch(
      /^listeners\[0\]\.tlsCert: the certificate "CN=dated" in ".*cert\.pem" is not valid before .*2099/,
    )
  })

  it('a valid certificate starts without a warning', async () => {
    const server = track(new MqttServer())
    const { warnings } = await warningsDuring(() => server.start({ listeners: [listener('tls')] }))
    expect(warnings.filter((w) => w.name === 'MqttServerWarning')).toEqual([])
  })
})

describe('keys that cannot be used are refused naming the field', () => {
  const encrypted = (name: string, ...args: string[]) => {
    const out = join(certs().dir, name)
    ossl(...args, '-in', certs().key, '-passout', 'pass:secret', '-out', out)
    return out
  }

  it.each([
    ['PKCS#8 (BEGIN ENCRYPTED PRIVATE KEY)', () => encrypted('enc-pkcs8.pem', 'pkcs8', '-topk8', '-v2', 'aes-256-cbc')],
    ['legacy (Proc-Type: 4,ENCRYPTED)', () => encrypted('enc-legacy.pem', 'ec', '-aes256')],
  ])('an encrypted private key, %s', async (_, make) => {
    const key = make()
    const err = await startError({ listeners: [listener('tls', { tlsKey: key })] })
    expect(err.code).toBe('InvalidArg')
    expect(err.message).toBe(
      `listeners[0].tlsKey: encrypted private keys are not supported; "${key}" is encrypted. ` +
        'Decrypt it into a file readable only by this process (e.g. `openssl pkey -in encrypted.pem -out key.pem`)',
    )
  })
})
