// MQTT 5 enhanced authentication with SCRAM-SHA-256 (RFC 5802, RFC 7677):
// the client proves it knows the password without sending it, and the
// server proves it knows the user's stored key. Two steps:
//   CONNECT  (Authentication Method "SCRAM-SHA-256", data client-first)
//   AUTH 0x18 <- server-first (nonce, salt, iterations)
//   AUTH 0x18 -> client-final (proof)
//   CONNACK 0x00 <- server-final (the server's signature)
// The same exchange re-authenticates a connected client (AUTH 0x19).
//
//   server.setHooks({ onClientEnhancedAuth: scramSha256((user) => users.get(user)) })
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'
import type { EnhancedAuthRequest, EnhancedAuthResult } from 'embedded-mqtt-broker'

export const SCRAM_SHA_256 = 'SCRAM-SHA-256'

/** What the server stores for a user: derived keys, never the password. */
export interface ScramCredentials {
  salt: Buffer
  iterations: number
  storedKey: Buffer
  serverKey: Buffer
}

export const hmac = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text).digest()
export const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest()
export const xor = (a: Buffer, b: Buffer): Buffer => Buffer.from(a.map((x, i) => x ^ b[i]))

/** SaltedPassword of RFC 5802 (PBKDF2-HMAC-SHA-256). */
export const saltedPassword = (password: string, salt: Buffer, iterations: number): Buffer =>
  pbkdf2Sync(password, salt, iterations, 32, 'sha256')

/** The credentials to store for a user with this password. */
export function scramCredentials(password: string, iterations = 4096, salt = randomBytes(16)): ScramCredentials {
  const salted = saltedPassword(password, salt, iterations)
  return { salt, iterations, storedKey: sha256(hmac(salted, 'Client Key')), serverKey: hmac(salted, 'Server Key') }
}

interface Pending {
  clientFirstBare: string
  serverFirst: string
  nonce: string
  creds: ScramCredentials
  at: number
}

/** An `onClientEnhancedAuth` hook for SCRAM-SHA-256; `lookup` finds a user's credentials. */
export function scramSha256(
  lookup: (username: string) => ScramCredentials | undefined,
  { timeoutMs = 30_000 } = {},
): (request: EnhancedAuthRequest) => EnhancedAuthResult {
  // Exchanges between their two steps, by connection.
  const pending = new Map<string, Pending>()
  return (request) => {
    if (request.method !== SCRAM_SHA_256) return { allow: false, code: 'badAuthenticationMethod' }
    const key = `${request.clientId}\0${request.remoteAddr}`
    const text = request.data?.toString('utf8') ?? ''
    const now = Date.now()
    for (const [k, p] of pending) if (now - p.at > timeoutMs) pending.delete(k)

    if (!request.continued) {
      // client-first-message: "n,,n=<user>,r=<client nonce>" (no channel binding)
      const m = /^n,,(n=([^,]*),r=([^,]+))$/.exec(text)
      const creds = m ? lookup(m[2].replaceAll('=2C', ',').replaceAll('=3D', '=')) : undefined
      if (!m || !creds) return { allow: false, reason: 'unknown user or malformed client-first-message' }
      const nonce = m[3] + randomBytes(18).toString('base64')
      const serverFirst = `r=${nonce},s=${creds.salt.toString('base64')},i=${creds.iterations}`
      pending.set(key, { clientFirstBare: m[1], serverFirst, nonce, creds, at: now })
      return { continue: true, data: Buffer.from(serverFirst) }
    }

    // client-final-message: "c=biws,r=<nonce>,p=<client proof>"
    const state = pending.get(key)
    pending.delete(key)
    const m = /^(c=biws,r=([^,]+)),p=([A-Za-z0-9+/=]+)$/.exec(text)
    if (!state || !m || m[2] !== state.nonce) return { allow: false, reason: 'unexpected client-final-message' }
    const authMessage = `${state.clientFirstBare},${state.serverFirst},${m[1]}`
    const clientSignature = hmac(state.creds.storedKey, authMessage)
    const proof = Buffer.from(m[3], 'base64')
    if (proof.length !== clientSignature.length) return { allow: false, reason: 'bad proof' }
    if (!timingSafeEqual(sha256(xor(proof, clientSignature)), state.creds.storedKey)) {
      return { allow: false, reason: 'bad proof' }
    }
    const serverSignature = hmac(state.creds.serverKey, authMessage).toString('base64')
    return { allow: true, data: Buffer.from(`v=${serverSignature}`) }
  }
}
