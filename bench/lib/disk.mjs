// Disk use of a store directory, for the persistence benches.
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

/** Bytes under `dir`, recursively. */
export function du(dir) {
  let total = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    total += e.isDirectory() ? du(p) : statSync(p).size
  }
  return total
}
