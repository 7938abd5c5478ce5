// Renders the Markdown report again from a run's raw figures, e.g. after
// a change to the report's format:
//
//   node bench/render.mjs bench/results/<date>.json [--out FILE]
//
// Prints it, and writes it to FILE when given.
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

import { renderMarkdown } from './lib/report.mjs'

const { values: opt, positionals } = parseArgs({ options: { out: { type: 'string' } }, allowPositionals: true })
if (positionals.length !== 1) {
  console.error('usage: node bench/render.mjs RESULTS.json [--out FILE]')
  process.exit(2)
}
const md = renderMarkdown(JSON.parse(readFileSync(positionals[0], 'utf8')))
if (opt.out) writeFileSync(opt.out, md)
process.stdout.write(md)
