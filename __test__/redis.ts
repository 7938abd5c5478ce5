/**
 * A real `redis-server` (Debian's package, installed by `.ci/run`) for
 * tests: on a free 127.0.0.1 port, in a temporary directory, nothing saved
 * to disk. Stop it in afterAll; a process exit kills it too.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { afterAll, beforeAll } from 'vitest'

import { withDeadline } from './helpers'

const READY_MS = 10_000

/**
 * Whether the Redis tests run: where `redis-server` is missing (macOS,
 * Windows, Alpine) they are skipped, unless `MQTT_TEST_REDIS=required`
 * (`.ci/run`), where a missing one fails them.
 */
export const redisTests: boolean =
  process.env.MQTT_TEST_REDIS === 'required' || spawnSync('redis-server', ['--version']).status === 0
const running = new Set<ChildProcess>()
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL')
})

/** A port nothing listens on now. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res))
  const { port } = server.address() as { port: number }
  await new Promise((res) => server.close(res))
  return port
}

export interface RedisServer {
  port: number
  /** `redis://[:password@]127.0.0.1:port` */
  url: string
  /** Starts it again on the same port (empty: nothing is saved). */
  start(): Promise<void>
  /** SIGKILL, as a crash; resolves once it has exited. */
  kill(): Promise<void>
}

export async function startRedis(opts: { password?: string } = {}): Promise<RedisServer> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'mqtt-redis-'))
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : ''
  let child: ChildProcess | undefined
  const redis: RedisServer = {
    port,
    url: `redis://${auth}127.0.0.1:${port}`,
    async start() {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
      if (opts.password) args.push('--requirepass', opts.password)
      const c = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })
      child = c
      running.add(c)
      let out = ''
      await withDeadline(
        new Promise<void>((res, rej) => {
          c.stdout!.setEncoding('utf8').on('data', (d: string) => {
            out += d
            if (out.includes('Ready to accept connections')) res()
          })
          c.on('error', (e) =>
            rej(new Error(`cannot run redis-server (${e.message}): install Debian's redis-server, as .ci/run does`)),
          )
          c.on('exit', (code) => rej(new Error(`redis-server exited (${code}): ${out}`)))
        }),
        READY_MS,
        () => `redis-server not ready within ${READY_MS} ms: ${out}`,
      )
    },
    async kill() {
      const c = child
      if (!c || c.exitCode !== null || c.signalCode !== null) return
      const exited = new Promise((res) => c.once('exit', res))
      c.kill('SIGKILL')
      await withDeadline(exited, READY_MS, () => 'redis-server did not exit after SIGKILL')
      running.delete(c)
    },
  }
  await redis.start()
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return redis
}

/**
 * One Redis for a test file: started before its tests (when they run at
 * all, `redisTests`), killed after them. Read the server through the
 * returned function, once the tests run.
 */
export function useRedis(): () => RedisServer {
  let redis: RedisServer | undefined
  beforeAll(async () => {
    if (redisTests) redis = await startRedis()
  })
  afterAll(async () => {
    await redis?.kill()
  })
  return () => {
    if (!redis) throw new Error('Redis is not started: use it inside a test')
    return redis
  }
}
