import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

import { afterEach, describe, expect, it } from 'vitest'

import { addon, killChildren, ROOT, spawnTracked } from './helpers'

afterEach(killChildren)

const FIXTURES = join(ROOT, '__test__', 'fixtures', 'modules')
const EXPORTS = ['MqttServer', 'QoS']

async function runFixture(file: string) {
  const run = spawnTracked(process.execPath, [join(FIXTURES, file)])
  const exit = await run.exit(15000)
  expect(exit.stderr).toBe('')
  expect(exit.code).toBe(0)
  return JSON.parse(exit.stdout.trim())
}

describe('module entries', () => {
  it('ESM: a .mjs consumer imports the package by name, gets index.mjs, and it works', async () => {
    const out = await runFixture('esm-entry.mjs')
    // Whichever way it was found, the module under test is the ESM entry.
    expect(['self-reference', 'path']).toContain(out.via)
    expect(out.resolved).toBe(pathToFileURL(join(ROOT, 'index.mjs')).href)
    expect(out.exportNames).toEqual(expect.arrayContaining(EXPORTS))
    expect(out.qos).toEqual({ AtMostOnce: 0, AtLeastOnce: 1, ExactlyOnce: 2 })
    // One native instance for both module systems.
    expect(out.sameClassAsCjs).toBe(true)
    expect(out.defaultIsCjsExports).toBe(true)
    expect(out.message).toEqual({ topic: 'esm', payload: 'from esm', qos: 1 })
  })

  it('CJS: a .cjs consumer requires the package by name and it works', async () => {
    const out = await runFixture('cjs-entry.cjs')
    expect(['self-reference', 'path']).toContain(out.via)
    expect(out.exportNames).toEqual(expect.arrayContaining(EXPORTS))
    expect(out.qos).toEqual({ AtMostOnce: 0, AtLeastOnce: 1, ExactlyOnce: 2 })
    expect(out.message).toEqual({ topic: 'cjs', payload: 'from cjs', qos: 1 })
  })

  it('CJS in this process: require by name gives the same binding as the generated loader', () => {
    const req = createRequire(import.meta.url)
    const byName = req('embedded-mqtt-broker')
    const loader = req(join(ROOT, 'index.js'))
    expect(byName.MqttServer).toBe(loader.MqttServer)
    expect(byName.QoS).toBe(loader.QoS)
    expect(addon.MqttServer).toBe(loader.MqttServer)
    expect(typeof byName.MqttServer.createBasicConfig).toBe('function')
    expect(new byName.MqttServer().running).toBe(false)
  })
})
