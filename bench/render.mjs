// Renders the Markdown report again from a run's raw figures, e.g. after
// a change to the report's format:
//
//   node bench/render.mjs bench/results/<date>.json [--replace OTHER.json] [--out FILE]
//
// `--replace` takes the scenarios measured in another run (e.g. one section
// measured again) in place of the same scenarios of the first; the report
// says so. Prints it, and writes it to FILE when given.
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

import { portable, renderMarkdown } from './lib/report.mjs'

const { values: opt, positionals } = parseArgs({
  options: { out: { type: 'string' }, replace: { type: 'string' } },
  allowPositionals: true,
})
if (positionals.length !== 1) {
  console.error('usage: node bench/render.mjs RESULTS.json [--out FILE]')
  process.exit(2)
}
const res = JSON.parse(readFileSync(positionals[0], 'utf8'))
if (opt.replace) {
  const other = JSON.parse(readFileSync(opt.replace, 'utf8'))
  const ids = new Set(other.variants.map((v) => v.id))
  res.variants = [...res.variants.filter((v) => !ids.has(v.id)), ...other.variants]
  const o = other.machine
  res.notes = [
    ...(res.notes ?? []),
    `${[...ids].join(', ')}: from a separate run (${o.date}, \`npm run bench -- ${portable(other.settings.argv.join(' '))}\`, embedded-mqtt-broker at ${o.commit}${o.dirty ? ' with uncommitted changes' : ''}, load average ${o.loadavgStart.join(' / ')} at start), replacing this run's.`,
  ]
}
const md = renderMarkdown(res)
if (opt.out) writeFileSync(opt.out, md)
process.stdout.write(md)
