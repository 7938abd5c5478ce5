/**
 * Runs the `embedded-mqtt-broker` command (cli.js) as a real child process,
 * for the CLI's test files.
 */
import { join } from 'node:path'

import { ROOT, spawnTracked } from './helpers'

export const CLI = join(ROOT, 'cli.js')
export const EXIT_DEADLINE = 10000
const PROBE = join(ROOT, '__test__', 'fixtures', 'cli-signal-probe.cjs')
const PROBE_LINE = '[cli-signal-probe] handlers installed\n'
// The URL a client connects to, as the CLI prints it (ListenerInfo.url).
const LINE = /^embedded-mqtt-broker listening: (mqtt|mqtts|ws|wss):\/\/(\S+):(\d+)(?:\/mqtt)?$/
const PROTOCOL: Record<string, string> = { mqtt: 'tcp', mqtts: 'tls', ws: 'ws', wss: 'wss' }

export type CliRun = ReturnType<typeof spawnTracked>

/**
 * Runs the CLI with `args`. `signals` preloads a probe that reports when its
 * signal handlers are in place: cli.js prints its "listening" lines just
 * before it installs its SIGINT/SIGTERM handlers, so a signal sent as soon as
 * a line appears can, on a busy machine, kill it before it can stop cleanly.
 * Without it (and without `preloads`), it runs exactly as the bin would.
 */
export function runCli(
  args: string[],
  { signals = false, env, preloads = [] }: { signals?: boolean; env?: NodeJS.ProcessEnv; preloads?: string[] } = {},
): CliRun {
  const pre = [...(signals ? [PROBE] : []), ...preloads].flatMap((p) => ['-r', p])
  return spawnTracked(process.execPath, [...pre, CLI, ...args], { env })
}

/** The CLI's stderr without the probe's marker. */
export const realStderr = (stderr: string) => stderr.replace(PROBE_LINE, '')

/**
 * Waits until the CLI has printed `count` listener lines (and, when run with
 * the probe, installed its signal handlers); returns the listeners parsed.
 */
export async function listening(run: CliRun, count = 1) {
  const re = new RegExp(`^(?:embedded-mqtt-broker listening: .*\\n){${count}}`)
  const [block] = await run.stdoutMatch(re)
  if (run.child.spawnargs.includes(PROBE)) await run.stderrMatch(/\[cli-signal-probe\] handlers installed\n/)
  return block
    .trim()
    .split('\n')
    .map((line) => {
      const m = line.match(LINE)
      if (!m) throw new Error(`unexpected line: ${line}`)
      return { protocol: PROTOCOL[m[1]], address: m[2], port: Number(m[3]) }
    })
}
