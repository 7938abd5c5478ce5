// Running the native load generator and reading its JSON lines.
import { spawnWithNofile } from './proc.mjs'

/**
 * Runs loadgen with `args` and resolves with its last JSON line. `onLine`
 * sees every JSON line as it comes (the idle scenario's `held` line) and may
 * write to the process's stdin. A run past `timeoutMs` is killed.
 */
export function runLoadgen(bin, args, { nofile, timeoutMs, onLine } = {}) {
  return new Promise((resolve) => {
    const p = spawnWithNofile(nofile, bin, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    let last = null
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs)
    p.stdout.setEncoding('utf8')
    p.stdout.on('data', (chunk) => {
      out += chunk
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        const line = out.slice(0, nl).trim()
        out = out.slice(nl + 1)
        if (!line.startsWith('{')) continue
        try {
          last = JSON.parse(line)
        } catch {
          continue
        }
        onLine?.(last, p)
      }
    })
    p.stderr.on('data', (chunk) => {
      err += chunk
    })
    p.stdin.on('error', () => {})
    p.on('close', (code, signal) => {
      clearTimeout(timer)
      if (!last) {
        last = { error: `loadgen exited (${signal ?? code}) without a result: ${err.trim().slice(0, 300)}` }
      } else if (signal) {
        last.error ??= `loadgen killed (${signal}) after ${timeoutMs / 1000} s`
      }
      resolve(last)
    })
  })
}

/**
 * The round trip of a cache line between two cores, in ns (`loadgen
 * core-latency`): on a VM it moves as the host places the vCPUs, and a
 * multi-threaded broker's CPU per message moves with it.
 */
export async function coreLatency(bin) {
  const r = await runLoadgen(bin, ['core-latency'], { timeoutMs: 30_000 })
  return r.round_trip_ns ?? Number.NaN
}
