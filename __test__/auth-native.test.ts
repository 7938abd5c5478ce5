/**
 * Native password authentication (`users`, `passwordFile`, `hashPassword()`)
 * with real mqtt.js clients on MQTT 3.1.1 and 5.0, against files made by
 * mosquitto_passwd.
 */
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { afterAll, afterEach, describe, expect, it } from 'vitest'

import type * as Addon from '../index'
import {
  MqttServer,
  ROOT,
  addon,
  cleanup,
  connect,
  connectRefused,
  killChildren,
  listener,
  spawnTracked,
  track,
  startServer,
} from './helpers'

afterEach(async () => {
  killChildren()
  await cleanup()
})

/** Made by Debian's mosquitto_passwd 2.0.11: alice ($7$), olduser (-H sha512, $6$), ünï ($7$). */
const FIXTURE = join(ROOT, '__test__', 'fixtures', 'mosquitto-passwd.txt')
const VERSIONS = [4, 5] as const
const BAD_CREDENTIALS = { 4: 4, 5: 0x86 } as const
const NOT_AUTHORIZED = { 4: 5, 5: 0x87 } as const

const dir = mkdtempSync(join(tmpdir(), 'auth-native-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function hasMosquittoPasswd(): boolean {
  try {
    execFileSync('mosquitto_passwd', ['-h'], { stdio: 'ignore' })
  } catch (e) {
    // It exits 1 after printing its usage; only a missing binary is ENOENT.
    return (e as NodeJS.ErrnoException).code !== 'ENOENT'
  }
  return true
}

function hasMosquitto(): boolean {
  try {
    execFileSync('mosquitto', ['-h'], { stdio: 'ignore' })
  } catch (e) {
    // It exits non-zero after printing its usage; only a missing binary is ENOENT.
    return (e as NodeJS.ErrnoException).code !== 'ENOENT'
  }
  return true
}

/** A port free on 127.0.0.1 a moment ago (for a broker that cannot bind port 0 and say which). */
async function freePort(): Promise<number> {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address() as AddressInfo
  srv.close()
  await once(srv, 'close')
  return port
}

async function authServer(config: Partial<Addon.ServerConfig>, hooks?: Addon.HookCallbacks, extra = {}) {
  return startServer({ listeners: [listener('tcp', extra)], ...config }, { hooks })
}

describe.each(VERSIONS)('password file on MQTT %s', (protocolVersion) => {
  it("accepts mosquitto_passwd's $7$ and $6$ entries and refuses wrong or unknown credentials", async () => {
    const { url } = await authServer({ passwordFile: FIXTURE })
    await connect(url, { protocolVersion, username: 'alice', password: 'alice pass' })
    await connect(url, { protocolVersion, username: 'olduser', password: 'old pass' })
    await connect(url, { protocolVersion, username: 'ünï', password: 'p@ss:wörd' })
    for (const [username, password] of [
      ['alice', 'alice pas'],
      ['alice', ''],
      ['olduser', 'alice pass'],
      ['mallory', 'alice pass'],
    ]) {
      const err = await connectRefused(url, { protocolVersion, username, password })
      expect(err.code, `${username}/${password}`).toBe(BAD_CREDENTIALS[protocolVersion])
    }
  })

  it('leaves anonymous clients to allowAnonymous', async () => {
    const open = await authServer({ passwordFile: FIXTURE })
    await connect(open.url, { protocolVersion })
    const closed = await authServer({ passwordFile: FIXTURE }, undefined, { allowAnonymous: false })
    const err = await connectRefused(closed.url, { protocolVersion })
    expect(err.code).toBe(NOT_AUTHORIZED[protocolVersion])
  })

  it('decides before onClientAuthenticate, which is asked only for users it does not know', async () => {
    const asked: Array<string | null> = []
    const { url } = await authServer(
      { passwordFile: FIXTURE },
      {
        onClientAuthenticate: (r) => {
          asked.push(r.username)
          return { allow: r.username === 'from-hook' }
        },
      },
    )
    await connect(url, { protocolVersion, username: 'alice', password: 'alice pass' })
    const err = await connectRefused(url, { protocolVersion, username: 'alice', password: 'wrong' })
    expect(err.code).toBe(BAD_CREDENTIALS[protocolVersion])
    await connect(url, { protocolVersion, username: 'from-hook', password: 'anything' })
    expect(asked).toEqual(['from-hook'])
  })
})

describe('users and hashPassword()', () => {
  it('authenticates users given inline with a hashPassword() hash; superuser skips the ACL', async () => {
    const hash = await addon.hashPassword('s3cret')
    expect(hash).toMatch(/^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/)
    expect(await addon.hashPassword('s3cret')).not.toBe(hash) // a fresh salt each time
    const { url } = await authServer({
      users: [
        { username: 'root', passwordHash: hash, superuser: true },
        { username: 'plain', passwordHash: await addon.hashPassword('pw', { iterations: 1000 }) },
      ],
      acl: [],
    })
    const root = await connect(url, { protocolVersion: 5, username: 'root', password: 's3cret' })
    const plain = await connect(url, { protocolVersion: 5, username: 'plain', password: 'pw' })
    await root.publishAsync('any/topic', 'x', { qos: 1 })
    await expect(plain.publishAsync('any/topic', 'x', { qos: 1 })).rejects.toMatchObject({ code: 0x87 })
  })

  it('makes hashes mosquitto_passwd-style files accept alongside its own entries', async () => {
    const file = join(dir, 'mixed.txt')
    writeFileSync(
      file,
      `# comment\n\nnew:${await addon.hashPassword('new pass')}\r\nalice:${'$7$101$TFPc/pXdApJ7rfXk$ILRfq/Q/7ZTuiy8oDq7+++qfk8zv6iLYHW8PlHdJttRNEUuSIiVJR2cfcgcTZPY7HMbPwFkN4Xt+jMDXH++WkA=='}\n`,
    )
    const { url } = await authServer({ passwordFile: file })
    await connect(url, { protocolVersion: 4, username: 'new', password: 'new pass' })
    await connect(url, { protocolVersion: 4, username: 'alice', password: 'alice pass' })
  })

  it.skipIf(!hasMosquittoPasswd())(
    'accepts a file mosquitto_passwd makes now (skipped: mosquitto_passwd not installed)',
    async () => {
      const file = join(dir, 'fresh.txt')
      writeFileSync(file, '')
      execFileSync('mosquitto_passwd', ['-b', file, 'fresh', 'fresh pass'])
      execFileSync('mosquitto_passwd', ['-H', 'sha512', '-b', file, 'sha', 'sha pass'])
      const { url } = await authServer({ passwordFile: file })
      await connect(url, { protocolVersion: 5, username: 'fresh', password: 'fresh pass' })
      await connect(url, { protocolVersion: 5, username: 'sha', password: 'sha pass' })
      const err = await connectRefused(url, { protocolVersion: 5, username: 'fresh', password: 'sha pass' })
      expect(err.code).toBe(0x86)
    },
  )

  it.skipIf(!hasMosquitto())('makes hashes mosquitto itself accepts (skipped: mosquitto not installed)', async () => {
    const file = join(dir, 'for-mosquitto.txt')
    writeFileSync(file, `made:${await addon.hashPassword('made pass')}\n`)
    const port = await freePort()
    const conf = join(dir, 'mosquitto.conf')
    // `user root`: as root, mosquitto would otherwise drop to its own user,
    // which cannot read this test's private temp directory.
    writeFileSync(conf, `user root\nlistener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${file}\n`)
    const broker = spawnTracked('mosquitto', ['-c', conf])
    await broker.stderrMatch(/running/)
    const url = `mqtt://127.0.0.1:${port}`
    await connect(url, { protocolVersion: 5, username: 'made', password: 'made pass' })
    const err = await connectRefused(url, { protocolVersion: 5, username: 'made', password: 'wrong' })
    expect(err.code).toBe(0x87) // mosquitto's answer to a wrong password: not authorized
  })

  it('rejects bad input naming the field, never echoing a hash or a password', async () => {
    const secretHash = '$7$101$c2VjcmV0c2FsdA==$TOPSECRETHASHTEXT'
    const server = track(new MqttServer())
    const start = (config: Partial<Addon.ServerConfig>) => server.start({ listeners: [listener('tcp')], ...config })
    const fails = async (config: Partial<Addon.ServerConfig>, message: RegExp) => {
      const err = await start(config).then(
        () => new Error('started'),
        (e: Error) => e,
      )
      expect(err.message).toMatch(message)
      expect(err.message).not.toContain('TOPSECRET')
    }
    await fails(
      { users: [{ username: 'u', passwordHash: secretHash }] },
      /^users\[0\]\.passwordHash: the hash is not valid base64/,
    )
    await fails(
      { users: [{ username: 'u', passwordHash: 'TOPSECRET-plain-password' }] },
      /^users\[0\]\.passwordHash: expected a mosquitto_passwd hash/,
    )
    await fails({ users: [{ username: '', passwordHash: secretHash }] }, /^users\[0\]\.username: must not be empty/)
    const file = join(dir, 'bad.txt')
    writeFileSync(file, `ok:${await addon.hashPassword('x')}\nbroken TOPSECRET line\n`)
    await fails({ passwordFile: file }, /^passwordFile ".*bad\.txt" line 2: expected "username:hash"/)
    writeFileSync(file, `u:${await addon.hashPassword('x')}\n`)
    await fails(
      { passwordFile: file, users: [{ username: 'u', passwordHash: await addon.hashPassword('y') }] },
      /line 1: user "u" is already defined by users\[0\]/,
    )
    await fails({ passwordFile: join(dir, 'missing.txt') }, /^passwordFile: cannot read ".*missing\.txt"/)
    expect(server.running).toBe(false)

    await expect(async () => addon.hashPassword(42 as unknown as string)).rejects.toThrow(
      /^password: expected a string, got a number$/,
    )
    await expect(async () => addon.hashPassword('x', { iterations: 0 })).rejects.toThrow(
      /^options\.iterations: must be an integer from 1 to 10000000, got 0$/,
    )
  })

  it('logs refusals without the password, the hash, the token or the JWT secret, even at trace level', async () => {
    const probe = spawnTracked(process.execPath, [join(ROOT, '__test__', 'fixtures', 'auth-log-probe.cjs'), 'trace'])
    const { code, stdout, stderr } = await probe.exit(20000)
    expect(code, stderr).toBe(0)
    const { passwordHash, tokens, jwtSecret } = JSON.parse(stdout)
    const [, , , salt, hash] = passwordHash.split('$')
    // Logging was on, and saw both refusals.
    expect(stderr).toContain('wrong password, refused')
    expect(stderr).toContain('token refused: bad signature')
    const secrets = ['right-secret-1', 'wrong-secret-2', 'wrong-secret-3', salt, hash, jwtSecret]
    // A token's signature is its secret part; its header and claims are not.
    for (const t of tokens) secrets.push(t, t.split('.')[2])
    for (const secret of secrets) expect(stderr).not.toContain(secret)
  })
})

describe('setUsers()', () => {
  it('replaces the users at runtime (file read again); the next CONNECT uses them', async () => {
    const { server, url } = await authServer({ passwordFile: FIXTURE })
    await connect(url, { protocolVersion: 5, username: 'alice', password: 'alice pass' })
    await server.setUsers({ users: [{ username: 'bob', passwordHash: await addon.hashPassword('bob pw') }] })
    await connect(url, { protocolVersion: 5, username: 'bob', password: 'bob pw' })
    expect((await connectRefused(url, { protocolVersion: 5, username: 'alice', password: 'alice pass' })).code).toBe(
      0x86,
    )
    await server.setUsers({ passwordFile: FIXTURE })
    await connect(url, { protocolVersion: 4, username: 'alice', password: 'alice pass' })
  })

  it('starts authenticating on a server started without users', async () => {
    const { server, url } = await authServer({})
    await connect(url, { protocolVersion: 5, username: 'anyone', password: 'x' })
    await server.setUsers({ passwordFile: FIXTURE })
    expect((await connectRefused(url, { protocolVersion: 5, username: 'anyone', password: 'x' })).code).toBe(0x86)
    await connect(url, { protocolVersion: 5, username: 'alice', password: 'alice pass' })
  })

  it('rejects bad input naming the field and keeps the old users', async () => {
    const { server, url } = await authServer({ passwordFile: FIXTURE })
    const bad: Array<[unknown, RegExp]> = [
      [
        { users: [{ username: 'u', passwordHash: 'TOPSECRET' }] },
        /^users\[0\]\.passwordHash: expected a mosquitto_passwd hash/,
      ],
      [{ passwordFile: join(dir, 'missing.txt') }, /^passwordFile: cannot read/],
      [{ user: [] }, /^user: unknown field/],
      [{}, /^setUsers: give users or passwordFile/],
      ['TOPSECRET', /^setUsers: expected an object/],
    ]
    for (const [arg, message] of bad) {
      const err = await server.setUsers(arg as Parameters<MqttServer['setUsers']>[0]).then(
        () => new Error('accepted'),
        (e: Error) => e,
      )
      expect(err.message).toMatch(message)
      expect(err.message).not.toContain('TOPSECRET')
    }
    await connect(url, { protocolVersion: 5, username: 'alice', password: 'alice pass' })
    await expect(track(new MqttServer()).setUsers({ users: [] })).rejects.toThrow(/setUsers: the server is not running/)
  })
})

describe('embedded-mqtt-broker passwd', () => {
  const cli = (args: string[], input: string) =>
    execFileSync(process.execPath, [join(ROOT, 'cli.js'), 'passwd', ...args], {
      input,
      encoding: 'utf8',
      stdio: 'pipe',
    })

  it('adds, changes and deletes users of a file the broker then reads, keeping other lines', async () => {
    const file = join(dir, 'cli.txt')
    writeFileSync(
      file,
      '# kept comment\nalice:$7$101$TFPc/pXdApJ7rfXk$ILRfq/Q/7ZTuiy8oDq7+++qfk8zv6iLYHW8PlHdJttRNEUuSIiVJR2cfcgcTZPY7HMbPwFkN4Xt+jMDXH++WkA==\n',
    )
    cli([file, 'bob'], 'first\n')
    cli([file, 'bob'], 'second\n')
    cli(['--iterations', '2000', file, 'carol'], 'carol pw\n')
    cli([file, 'gone'], 'x\n')
    cli(['-D', file, 'gone'], '')
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n')
    expect(lines.map((l) => l.split(':')[0])).toEqual(['# kept comment', 'alice', 'bob', 'carol'])
    expect(lines[3]).toMatch(/^carol:\$7\$2000\$/)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    const { url } = await authServer({ passwordFile: file })
    await connect(url, { protocolVersion: 5, username: 'bob', password: 'second' })
    await connect(url, { protocolVersion: 5, username: 'carol', password: 'carol pw' })
    await connect(url, { protocolVersion: 5, username: 'alice', password: 'alice pass' })
    expect((await connectRefused(url, { protocolVersion: 5, username: 'bob', password: 'first' })).code).toBe(0x86)
  })

  it('fails with a message and a non-zero status on bad use', () => {
    const run = (args: string[]) => {
      try {
        cli(args, 'pw\n')
      } catch (e) {
        const err = e as { status: number; stderr: string }
        return { status: err.status, stderr: err.stderr }
      }
      throw new Error(`passwd ${args.join(' ')} succeeded`)
    }
    expect(run([join(dir, 'x.txt')])).toMatchObject({
      status: 2,
      stderr: expect.stringContaining('expected FILE and USER'),
    })
    expect(run(['-D', join(dir, 'none.txt'), 'u'])).toMatchObject({
      status: 1,
      stderr: expect.stringContaining('cannot read'),
    })
    expect(run(['--iterations', '0', join(dir, 'y.txt'), 'u'])).toMatchObject({
      status: 1,
      stderr: expect.stringContaining('--iterations: must be an integer'),
    })
  })
})
