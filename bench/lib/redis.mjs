// A redis-server of the bench's own (Debian's package), for the persistence
// benches' `--redis`: a free 127.0.0.1 port, memory only (nothing saved),
// killed when the bench exits.
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'

/** Starts redis-server; resolves with its `redis://127.0.0.1:port` URL. */
export async function startRedis() {
  const probe = createServer()
  await new Promise((res) => probe.listen(0, '127.0.0.1', res))
  const { port } = probe.address()
  await new Promise((res) => probe.close(res))
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'inherit'] })
  process.on('exit', () => child.kill('SIGKILL'))
  let out = ''
  await new Promise((res, rej) => {
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d
      if (out.includes('Ready to accept connections')) res()
    })
    child.on('error', (e) => rej(new Error(`cannot run redis-server (${e.message}): install Debian's redis-server`)))
    child.on('exit', (code) => rej(new Error(`redis-server exited (${code}): ${out}`)))
  })
  child.stdout.resume()
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid }
}
