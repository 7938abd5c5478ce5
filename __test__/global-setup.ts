import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * One temp root per test run. Test files make their dirs (certificates,
 * stores, Redis data) with `os.tmpdir()`; with TMPDIR pointing here, they all
 * go under this root, which is removed when the run ends. A file's own
 * `process.on('exit')` cleanup does not run when vitest ends its fork, and
 * test keys were left in /tmp.
 */
export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'mqtt-server-tests-'))
  // Enterable by other users, as /tmp is: a test runs a process as `nobody`
  // on files of its own dir (node-conventions.test.ts). Each dir in it is
  // still made 0700 by mkdtemp.
  chmodSync(root, 0o755)
  process.env.TMPDIR = root
  return () => rmSync(root, { recursive: true, force: true })
}
