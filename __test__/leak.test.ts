/**
 * A server started and stopped many times (with a client, hooks and a
 * retained message) must not keep what each run allocated. rmqtt's context
 * references itself, so nothing of a stopped broker would ever be freed; the
 * teardown breaks the cycles that hold sessions, routes and retained
 * messages (~90 KiB kept per cycle without it). heaptrack over 100 cycles now
 * shows no native heap growth at all; what RSS still gains per cycle is V8
 * growing its own heap, which the fixture subtracts. Measured with this
 * fixture: 7-9 KiB per cycle (glibc arenas and Node internals).
 */
import { join } from 'node:path'

import { afterEach, expect, it } from 'vitest'

import { ROOT, killChildren, spawnTracked } from './helpers'

afterEach(killChildren)

it('does not grow with start/stop cycles', async () => {
  // Its own process, with --expose-gc, so the figure is the addon's memory.
  const run = spawnTracked(process.execPath, [
    '--expose-gc',
    '--max-semi-space-size=1',
    join(ROOT, '__test__/fixtures/cycles.cjs'),
    '50',
    '300',
  ])
  const exit = await run.exit(60_000)
  expect(exit.code, exit.stderr).toBe(0)
  const { perCycleBytes } = JSON.parse(exit.stdout)
  expect(perCycleBytes).toBeLessThan(24 * 1024)
}, 70_000)

// Off glibc the broker cannot ask the allocator to give pages back.
const glibc = Boolean(
  (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime,
)

it.runIf(glibc)(
  'gives the memory of its connections back when it stops',
  async () => {
    // The clients live in a child process of the fixture, so only the broker's
    // memory is in these figures. Measured: 30-36 MiB held for 3,000
    // connections, within 1.5 MiB of the baseline after stop (without the trim
    // at stop, 97% stayed).
    const { base, held, after } = await memoryRelease('stop')
    expect(held - base).toBeGreaterThan(10) // MiB: the connections were really there
    expect(after - base).toBeLessThan((held - base) / 4)
  },
  70_000,
)

it.runIf(glibc)(
  'gives the memory of clients that leave back while it keeps running',
  async () => {
    // The broker notices the connection count has halved since its peak and
    // has each worker thread collect its own allocator heap when it next goes
    // idle (mimalloc keeps a thread's free pages with that thread). Measured:
    // 27-40 MiB held for 3,000 connections, back within 3.3-7.4 MiB of the
    // baseline 0.2-1.2 s after the clients left. These clients come and go
    // within one of the broker's 1 s looks at the count: when the peak was
    // sampled at those looks it was never seen and nothing came back in 20 s.
    const { base, held, after } = await memoryRelease('leave')
    expect(held - base).toBeGreaterThan(10)
    expect(after - base).toBeLessThan((held - base) / 4)
  },
  70_000,
)

async function memoryRelease(mode: 'stop' | 'leave', conns = 3000, subs = 0) {
  const run = spawnTracked(process.execPath, [
    join(ROOT, '__test__/fixtures/memory-release.cjs'),
    String(conns),
    mode,
    String(subs),
  ])
  const exit = await run.exit(60_000)
  expect(exit.code, exit.stderr).toBe(0)
  return JSON.parse(exit.stdout) as { base: number; held: number; after: number; waitedMs?: number }
}

it.runIf(glibc)(
  'gives the memory of one client with 100,000 subscriptions back after it leaves, while it keeps running',
  async () => {
    // One client leaving does not halve the connection count; the broker also
    // watches the number of subscriptions. Before it did, ~2 KB per
    // subscription stayed until other clients left or the broker stopped.
    const r = await memoryRelease('leave', 1, 100_000)
    const { base, held, after } = r
    expect(held - base).toBeGreaterThan(50) // MiB: the subscriptions were really there
    // Failed once in a full CI-like run (93 of 132 MiB still held after the
    // 20 s wait), never alone or under CPU burners: the figures, with how long
    // it waited, go into the message.
    expect(after - base, JSON.stringify(r)).toBeLessThan((held - base) / 4)
  },
  70_000,
)
