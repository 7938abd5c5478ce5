/**
 * Node conventions: `await using` (Symbol.asyncDispose), system errors with
 * Node's `code`/`errno`/`syscall` (as net.Server and fs give them), and the
 * listener's URL.
 */
import { execFile } from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { getSystemErrorName, promisify } from 'node:util'

import { afterEach, describe, expect, it } from 'vitest'

import { MqttServer, ROOT, certs, cleanup, connect, listener, track, urlFor, waitFor, startError } from './helpers'

afterEach(cleanup)

describe('Symbol.asyncDispose', () => {
  it('await using closes the server at the end of the scope', async () => {
    let outer: MqttServer | undefined
    let port = 0
    {
      await using server = new MqttServer()
      outer = server
      const [l] = await server.start({ listeners: [listener('tcp')] })
      port = l.port
      const c = await connect(urlFor(l))
      expect(c.connected).toBe(true)
    }
    expect(outer.running).toBe(false)
    // Closed, not just stopped: it cannot start again, and the port is free.
    await expect(outer.start({ listeners: [listener('tcp')] })).rejects.toThrow(/the server is closed/)
    const probe = createServer().listen(port, '127.0.0.1')
    await waitFor(probe, 'listening')
    probe.close()
  })

  it('is close(), callable directly, and does nothing harmful on a server never started', async () => {
    const server = new MqttServer()
    expect(server[Symbol.asyncDispose]).toBe(server.close)
    await server[Symbol.asyncDispose]()
    expect(server.running).toBe(false)
  })
})

describe("system errors carry Node's code, errno and syscall", () => {
  it('a port in use: EADDRINUSE, syscall listen, address and port, as net.Server', async () => {
    const blocker = createServer().listen(0, '127.0.0.1')
    await waitFor(blocker, 'listening')
    try {
      const port = (blocker.address() as { port: number }).port
      const err = await startError({ listeners: [listener('tcp', { port })] })
      const node = await new Promise<NodeJS.ErrnoException>((res) =>
        createServer().listen(port, '127.0.0.1').on('error', res),
      )
      expect(err).toBeInstanceOf(Error)
      expect(err.code).toBe('EADDRINUSE')
      expect(err.errno).toBe(node.errno)
      expect(getSystemErrorName(err.errno!)).toBe('EADDRINUSE')
      expect(err.syscall).toBe(node.syscall)
      expect(err.address).toBe('127.0.0.1')
      expect(err.port).toBe(port)
      expect(err.message).toMatch(
        new RegExp(`^listener "tcp-0" \\(tcp on 127\\.0\\.0\\.1:${port}\\): cannot bind: Address already in use`),
      )
    } finally {
      blocker.close()
    }
  })

  it('an address not on this host: EADDRNOTAVAIL', async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a local address.
    const err = await startError({ listeners: [listener('tcp', { address: '192.0.2.1' })] })
    const node = await new Promise<NodeJS.ErrnoException>((res) =>
      createServer().listen(0, '192.0.2.1').on('error', res),
    )
    expect(err.code).toBe('EADDRNOTAVAIL')
    expect(err.errno).toBe(node.errno)
    expect(err.syscall).toBe('listen')
    expect(err.address).toBe('192.0.2.1')
  })

  it.skipIf(process.platform === 'win32')(
    'without the privilege: EACCES for a privileged port and for an unreadable tlsCert',
    async () => {
      // Run by a user without privileges: as root nothing is refused, so the
      // check then runs as `nobody`. The file is in the world-readable tmpdir,
      // and so is a copy of the loader and the addon: the checkout may sit in
      // a directory `nobody` cannot enter (a `mktemp -d` clone is 0700).
      const dir = mkdtempSync(join(tmpdir(), 'eacces-'))
      chmodSync(dir, 0o755)
      const unreadable = join(dir, 'cert.pem')
      writeFileSync(unreadable, readFileSync(certs().cert), { mode: 0o000 })
      for (const f of readdirSync(ROOT).filter((f) => f === 'index.js' || f.endsWith('.node'))) {
        copyFileSync(join(ROOT, f), join(dir, f))
      }
      const unprivileged = '/proc/sys/net/ipv4/ip_unprivileged_port_start'
      const firstFree = existsSync(unprivileged) ? Number(readFileSync(unprivileged, 'utf8')) : 1024
      const script = `
        const { MqttServer } = require(${JSON.stringify(join(dir, 'index.js'))});
        const pick = (e) => ({ code: e.code, errno: e.errno, syscall: e.syscall, port: e.port, path: e.path });
        const tryStart = (l) => new MqttServer().start({ listeners: [{ address: '127.0.0.1', ...l }] }).then(() => null, pick);
        (async () => {
          const port = ${firstFree > 1} ? await tryStart({ port: 1, protocol: 'tcp' }) : null;
          const file = await tryStart({ port: 0, protocol: 'tls', tlsCert: ${JSON.stringify(unreadable)}, tlsKey: ${JSON.stringify(certs().key)} });
          console.log(JSON.stringify({ port, file }));
          process.exit(0);
        })();
      `
      const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
      const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], {
        ...asNobody,
        timeout: 20_000,
      }).finally(() => rmSync(dir, { recursive: true, force: true }))
      const { port, file } = JSON.parse(stdout)
      if (firstFree > 1) {
        expect(port).toEqual({ code: 'EACCES', errno: expect.any(Number), syscall: 'listen', port: 1 })
        expect(getSystemErrorName(port.errno)).toBe('EACCES')
      }
      expect(file).toEqual({ code: 'EACCES', errno: expect.any(Number), syscall: 'open', path: unreadable })
      expect(getSystemErrorName(file.errno)).toBe('EACCES')
    },
  )

  it.each(['tlsCert', 'tlsKey', 'tlsCa'] as const)('a missing %s file: ENOENT, syscall open, path', async (field) => {
    const path = join(certs().dir, 'missing.pem')
    const err = await startError({ listeners: [listener('tls', { [field]: path })] })
    expect(err.code).toBe('ENOENT')
    expect(getSystemErrorName(err.errno!)).toBe('ENOENT')
    expect(err.syscall).toBe('open')
    expect(err.path).toBe(path)
    expect(err.message).toBe(`listeners[0].${field}: cannot read "${path}": No such file or directory (os error 2)`)
  })

  it('errors that are not system errors keep InvalidArg / GenericFailure, without errno', async () => {
    const err = await startError({ listeners: [listener('tcp', { port: 70000 })] })
    expect(err.code).toBe('InvalidArg')
    expect(err.errno).toBeUndefined()
    const { server } = { server: track(new MqttServer()) }
    await server.start({ listeners: [listener('tcp')] })
    const again = await server.start({ listeners: [listener('tcp')] }).catch((e) => e)
    expect(again.code).toBe('GenericFailure')
    expect(again.errno).toBeUndefined()
  })
})

describe('listener URL', () => {
  it.each([
    ['tcp', 'mqtt', ''],
    ['tls', 'mqtts', ''],
    ['ws', 'ws', '/mqtt'],
    ['wss', 'wss', '/mqtt'],
  ] as const)('%s: %s://address:port%s, which a client connects to', async (protocol, scheme, path) => {
    const server = track(new MqttServer())
    const [l] = await server.start({ listeners: [listener(protocol)] })
    expect(l.url).toBe(`${scheme}://127.0.0.1:${l.port}${path}`)
    const c = await connect(l.url)
    expect(c.connected).toBe(true)
  })

  it('an IPv6 address is in brackets', async () => {
    const server = track(new MqttServer())
    const [l] = await server.start({ listeners: [listener('tcp', { address: '::1' })] })
    expect(l.url).toBe(`mqtt://[::1]:${l.port}`)
  })
})
