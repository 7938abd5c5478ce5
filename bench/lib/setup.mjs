// What every side-by-side bench script starts with: its command line
// (--rounds, --duration, --no-build | --addon FILE, --out FILE, plus its own
// options), the load generator and the addon under test.
import { createRequire } from 'node:module'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { buildLoadgen, ensureAddon } from './build.mjs'

export const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..')

export function benchSetup(options = {}) {
  const { opt, addon } = addonSetup({ rounds: { type: 'string', default: '5' }, ...options })
  return {
    opt,
    rounds: Number(opt.rounds),
    lg: buildLoadgen(root),
    addon,
    logDir: join(root, 'bench/.cache/logs'),
  }
}

/**
 * The command line (--duration, --no-build | --addon FILE, --out FILE, plus
 * the script's own options) and the addon under test, for scripts that run
 * the broker in their own process (the persistence benches): `MqttServer`
 * is the package's, loading that addon.
 */
export function addonSetup(options = {}) {
  const { values: opt } = parseArgs({
    options: {
      duration: { type: 'string', default: '3' },
      'no-build': { type: 'boolean', default: false },
      addon: { type: 'string' },
      out: { type: 'string' },
      ...options,
    },
  })
  const addon = ensureAddon(root, { addon: opt.addon, build: !opt['no-build'] })
  return {
    opt,
    addon,
    get MqttServer() {
      process.env.NAPI_RS_NATIVE_LIBRARY_PATH = addon.path
      return createRequire(import.meta.url)(join(root, 'index.js')).MqttServer
    },
  }
}
