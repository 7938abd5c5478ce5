// The figures of a single-run bench (persistence, sessions, restart): a
// Markdown table under a title, printed and, with --out FILE, written there.
import { writeFileSync } from 'node:fs'

/** Prints `rows` ([what, figure] pairs) as a table under `title`; writes it to `out` too when given. */
export function printFigures(title, rows, out, notes = []) {
  const text = [
    `# ${title}`,
    '',
    ...notes.flatMap((n) => [n, '']),
    '| what | figure |',
    '| --- | --- |',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
    '',
  ].join('\n')
  process.stdout.write(text)
  if (out) writeFileSync(out, text)
}
