/**
 * JWT authentication (`jwt`): HS256, RS256 and ES256 tokens as CONNECT
 * passwords, claims mapped to the username and to per-connection ACL rules,
 * expiry at CONNECT and while connected; real mqtt.js clients, 3.1.1 and 5.0.
 */
import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { afterAll, afterEach, describe, expect, it } from 'vitest'

import type * as Addon from '../index'
import { MqttServer, cleanup, connect, connectRefused, listener, track, waitFor, startServer } from './helpers'

afterEach(cleanup)

const dir = mkdtempSync(join(tmpdir(), 'jwt-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const SECRET = 'a-shared-secret-of-at-least-32-bytes!'
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
function pemFile(name: string, key: KeyObject): string {
  const file = join(dir, name)
  writeFileSync(file, key.export({ type: 'spki', format: 'pem' }))
  return file
}
const RSA_PUB = pemFile('rsa.pem', rsa.publicKey)
const EC_PUB = pemFile('ec.pem', ec.publicKey)

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url')
const now = () => Math.floor(Date.now() / 1000)

function token(alg: 'HS256' | 'RS256' | 'ES256' | 'none', claims: object, key?: KeyObject): string {
  const signed = `${b64url(JSON.stringify({ alg, typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`
  const sig =
    alg === 'HS256'
      ? createHmac('sha256', SECRET).update(signed).digest()
      : alg === 'RS256'
        ? sign('sha256', Buffer.from(signed), key ?? rsa.privateKey)
        : alg === 'ES256'
          ? sign('sha256', Buffer.from(signed), { key: key ?? ec.privateKey, dsaEncoding: 'ieee-p1363' })
          : Buffer.from('x')
  return `${signed}.${b64url(sig)}`
}

async function jwtServer(jwt: Addon.JwtConfig, extra: Partial<Addon.ServerConfig> = {}, hooks?: Addon.HookCallbacks) {
  return startServer({ listeners: [listener('tcp')], jwt, ...extra }, { hooks })
}

const BAD = { 4: 4, 5: 0x86 } as const

describe.each([4, 5] as const)('JWT on MQTT %s', (protocolVersion) => {
  it('accepts HS256, RS256 and ES256 tokens whose sub is the username', async () => {
    const { url } = await jwtServer({ secret: SECRET, publicKey: RSA_PUB })
    const es = await jwtServer({ publicKey: EC_PUB })
    const claims = { sub: 'dev1', exp: now() + 60 }
    await connect(url, { protocolVersion, username: 'dev1', password: token('HS256', claims) })
    await connect(url, { protocolVersion, username: 'dev1', password: token('RS256', claims) })
    await connect(es.url, { protocolVersion, username: 'dev1', password: token('ES256', claims) })
  })

  it('refuses bad signatures, other algorithms, expired or early tokens, and another username', async () => {
    const { url } = await jwtServer({ secret: SECRET, publicKey: RSA_PUB })
    const ok = { sub: 'dev1', exp: now() + 60 }
    const refused: Array<[string, string, string]> = [
      ['dev1', token('RS256', ok, otherRsa.privateKey), 'signed by another key'],
      ['dev1', token('ES256', ok), 'ES256 with no EC key configured'],
      ['dev1', token('none', ok), 'alg none'],
      ['dev1', `${token('HS256', ok).slice(0, -4)}AAAA`, 'tampered signature'],
      ['dev1', token('HS256', { sub: 'dev1', exp: now() - 1 }), 'expired'],
      ['dev1', token('HS256', { sub: 'dev1', nbf: now() + 600 }), 'not yet valid'],
      ['dev2', token('HS256', ok), 'sub is another user'],
      ['dev1', token('HS256', { user: 'dev1' }), 'no sub'],
    ]
    for (const [username, password, why] of refused) {
      const err = await connectRefused(url, { protocolVersion, username, password })
      expect(err.code, why).toBe(BAD[protocolVersion])
    }
  })
})

describe('JWT claims and order', () => {
  it('maps usernameClaim and applies the aclClaim rules to that connection only', async () => {
    const { url } = await jwtServer(
      { secret: SECRET, usernameClaim: 'name', aclClaim: 'acl' },
      { acl: [{ permission: 'allow', action: 'subscribe', topics: ['public/#'] }] },
    )
    const rules = [{ permission: 'allow', action: 'publish', topics: ['own/%u/#'] }]
    const c = await connect(url, {
      protocolVersion: 5,
      username: 'ann',
      password: token('HS256', { name: 'ann', acl: rules }),
    })
    await c.publishAsync('own/ann/x', 'x', { qos: 1 })
    await expect(c.publishAsync('own/bob/x', 'x', { qos: 1 })).rejects.toMatchObject({ code: 0x87 })
    // The global rules still apply after the token's.
    expect((await c.subscribeAsync('public/a', { qos: 1 }))[0].qos).toBe(1)
    // Another connection with a token without rules gets only the global ones.
    const d = await connect(url, { protocolVersion: 5, username: 'bob', password: token('HS256', { name: 'bob' }) })
    await expect(d.publishAsync('own/bob/x', 'x', { qos: 1 })).rejects.toMatchObject({ code: 0x87 })
    // Bad rules in a token refuse it.
    const err = await connectRefused(url, {
      protocolVersion: 5,
      username: 'eve',
      password: token('HS256', { name: 'eve', acl: [{ permission: 'allow', action: 'all', topics: ['a/#/b'] }] }),
    })
    expect(err.code).toBe(0x86)
  })

  it('closes a connection when its token expires, with disconnectOnExpiry', async () => {
    const { url } = await jwtServer({ secret: SECRET, disconnectOnExpiry: true })
    const c = await connect(url, {
      protocolVersion: 5,
      username: 'dev1',
      password: token('HS256', { sub: 'dev1', exp: now() + 2 }),
    })
    const kept = await connect(url, {
      protocolVersion: 5,
      username: 'dev2',
      password: token('HS256', { sub: 'dev2', exp: now() + 600 }),
    })
    c.on('error', () => {})
    await waitFor(c, 'close', 8000)
    expect(kept.connected).toBe(true)
  })

  it('asks onClientAuthenticate only for passwords that are not tokens', async () => {
    const asked: Array<string | null> = []
    const { url } = await jwtServer(
      { secret: SECRET },
      {},
      {
        onClientAuthenticate: (r) => {
          asked.push(r.username)
          return { allow: true }
        },
      },
    )
    await connect(url, { protocolVersion: 5, username: 'dev1', password: token('HS256', { sub: 'dev1' }) })
    await connectRefused(url, { protocolVersion: 5, username: 'dev1', password: token('HS256', { sub: 'x' }) })
    await connect(url, { protocolVersion: 5, username: 'plain', password: 'not a token' })
    expect(asked).toEqual(['plain'])
  })

  it('validates the jwt config, naming the field', async () => {
    const server = track(new MqttServer())
    const start = (jwt: unknown) => server.start({ listeners: [listener('tcp')], jwt: jwt as Addon.JwtConfig })
    await expect(start({})).rejects.toThrow(/^jwt: give secret \(HS256\) or publicKey/)
    await expect(start({ secret: 'short' })).rejects.toThrow(/^jwt\.secret: must be at least 32 bytes/)
    await expect(start({ publicKey: join(dir, 'none.pem') })).rejects.toThrow(/^jwt\.publicKey: cannot read/)
    await expect(start({ secret: SECRET, issuer: 'x' })).rejects.toThrow(/^jwt\.issuer: unknown field/)
  })
})
