/**
 * A server started and stopped many times (with a client, hooks and a
 * retained message) must not keep what each run allocated. rmqtt's context
 * references itself, so nothing of a stopped broker would ever be freed; the
 * teardown breaks the cycles that hold sessions, routes and retained
 * messages. Measured with this fixture: ~90 KiB kept per cycle without that
 * teardown, 41-52 KiB with it (the context itself is still held by hook
 * registrations rmqtt keeps; see the README's notes).
 */
import { join } from 'node:path'

import { afterEach, expect, it } from 'vitest'

import { ROOT, killChildren, spawnTracked } from './helpers'

afterEach(killChildren)

it('does not grow with start/stop cycles', async () => {
  // Its own process, with --expose-gc, so the figure is the addon's memory.
  const run = spawnTracked(process.execPath, ['--expose-gc', join(ROOT, '__test__/fixtures/cycles.cjs'), '50', '300'])
  const exit = await run.exit(60_000)
  expect(exit.code, exit.stderr).toBe(0)
  const { perCycleBytes } = JSON.parse(exit.stdout)
  expect(perCycleBytes).toBeLessThan(68 * 1024)
}, 70_000)
