// What every side-by-side bench script starts with: its command line
// (--rounds, --duration, --no-build | --addon FILE, --out FILE, plus its own
// options), the load generator and the addon under test.
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { buildLoadgen, ensureAddon } from './build.mjs'

export const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..')

export function benchSetup(options = {}) {
  const { values: opt } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      duration: { type: 'string', default: '3' },
      'no-build': { type: 'boolean', default: false },
      addon: { type: 'string' },
      out: { type: 'string' },
      ...options,
    },
  })
  return {
    opt,
    rounds: Number(opt.rounds),
    lg: buildLoadgen(root),
    addon: ensureAddon(root, { addon: opt.addon, build: !opt['no-build'] }),
    logDir: join(root, 'bench/.cache/logs'),
  }
}
