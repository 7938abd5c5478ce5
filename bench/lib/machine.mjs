// What the benchmark ran on, for the report: figures only compare within
// one machine and one run.
import { execFileSync } from 'node:child_process'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

function sh(cmd, args, cwd) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd, stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown'
  }
}

export function machineInfo(root) {
  const model = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)?.[1] ?? cpus()[0]?.model
  const lock = readFileSync(join(root, 'Cargo.lock'), 'utf8')
  return {
    cpuModel: model,
    nproc: Number(sh('nproc', [])),
    memGiB: +(totalmem() / 2 ** 30).toFixed(1),
    kernel: release(),
    node: process.version,
    rmqtt: lock.match(/name = "rmqtt"\nversion = "([^"]+)"/)?.[1] ?? 'unknown',
    commit: sh('git', ['rev-parse', '--short', 'HEAD'], root),
    dirty: sh('git', ['status', '--porcelain', '--', 'src', 'Cargo.toml'], root) !== '',
    loadavgStart: loadavg().map((x) => +x.toFixed(2)),
    date: new Date().toISOString(),
  }
}

export const loadNow = () => loadavg().map((x) => +x.toFixed(2))

/** The listener limits' defaults of the addon measured, as its typings document them. */
export function addonDefaults(root) {
  let dts = ''
  try {
    dts = readFileSync(join(root, 'index.d.ts'), 'utf8')
  } catch {}
  const out = {}
  for (const key of ['maxInflight', 'maxMqueueLen']) {
    const m = dts.match(new RegExp(`Default ([\\w.,]+)\\.\\s*\\*/\\s*${key}\\?:`))
    if (m) out[key] = m[1]
  }
  return out
}
