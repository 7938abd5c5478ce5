// Reading a process's memory and CPU time from /proc, and starting
// processes with the open-files limit raised (Linux only, like the harness).
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** Resident memory of `pid` in bytes, or null once it has exited. */
export function rssBytes(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m)
    return m ? Number(m[1]) * 1024 : null
  } catch {
    return null
  }
}

/** User + system CPU seconds `pid` has used (USER_HZ is 100 on Linux). */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / 100
  } catch {
    return null
  }
}

/**
 * CPU seconds the hypervisor gave to others ("steal"), summed over this
 * machine's CPUs since boot; 0 where the kernel does not report it.
 */
export function stolenSeconds() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/)
    return Number(f[8] ?? 0) / 100
  } catch {
    return 0
  }
}

/**
 * The open-files limit child processes can get: 200,000 if this user may
 * raise it that far, else the hard limit (containers often drop the
 * capability that raising it needs).
 */
export function nofileLimit() {
  const out = execFileSync('bash', ['-c', 'ulimit -n 200000 2>/dev/null && ulimit -n || ulimit -Hn'], {
    encoding: 'utf8',
  })
  const n = out.trim() === 'unlimited' ? 1_048_576 : Number(out.trim())
  return n
}

/** spawn() with RLIMIT_NOFILE raised to `nofile` first; `exec` keeps the pid. */
export function spawnWithNofile(nofile, cmd, args, opts = {}) {
  const script = `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`
  return spawn('bash', ['-c', script, 'bash', cmd, ...args], opts)
}

/** Samples the peak RSS of `pid` every `ms` until stop() is called. */
export function rssSampler(pid, ms = 100) {
  let peak = rssBytes(pid) ?? 0
  const t = setInterval(() => {
    peak = Math.max(peak, rssBytes(pid) ?? 0)
  }, ms)
  return {
    stop() {
      clearInterval(t)
      peak = Math.max(peak, rssBytes(pid) ?? 0)
      return peak
    },
  }
}
