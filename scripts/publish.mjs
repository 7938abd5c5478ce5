// Publishes a release: `node scripts/publish.mjs <binaries dir> [--dry-run]`.
// Stages every package with scripts/stage-release.mjs (the binaries of all
// napi targets must be under <binaries dir>), then:
//   1. `npm publish --dry-run` of every platform package and the main package:
//      any failure (a missing binary, a bad manifest) stops the release here,
//      before anything is uploaded;
//   2. publishes the platform packages, then the main package last, so no
//      user can install a version whose binaries are not all on the registry.
// npm has no multi-package transaction. If step 2 dies part way (network,
// registry outage), re-running the same release resumes it: packages already
// on the registry at this version are skipped, the rest are published.
// RELEASE_REPOSITORY_URL replaces package.json's placeholder repository URL in
// every manifest (npm checks provenance against it). npm reads the dist-tag,
// provenance and token from the environment (NPM_CONFIG_TAG, ...).
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

import { stageRelease } from './stage-release.mjs'

const args = process.argv.slice(2)
const dryRunOnly = args.includes('--dry-run')
const binaries = args.find((a) => !a.startsWith('--'))
if (!binaries) throw new Error('usage: node scripts/publish.mjs <binaries dir> [--dry-run]')

function npm(npmArgs, cwd) {
  const r = spawnSync('npm', npmArgs, { cwd, encoding: 'utf8', shell: process.platform === 'win32' })
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` }
}

/** Whether name@version is on the registry already (a resumed release). */
function published(name, version) {
  const r = npm(['view', `${name}@${version}`, 'version', '--json'], process.cwd())
  if (r.ok) return r.out.trim() !== ''
  if (/E404/.test(r.out)) return false
  throw new Error(`cannot tell whether ${name}@${version} is published:\n${r.out}`)
}

const out = mkdtempSync(join(tmpdir(), 'embedded-mqtt-broker-release-'))
const staged = await stageRelease({
  out,
  binaries: resolve(binaries),
  repository: process.env.RELEASE_REPOSITORY_URL || undefined,
})
// Main package last: it is what users install, and it names all the others.
const dirs = [...Object.values(staged.platforms), staged.main]
const packages = dirs.map((dir) => {
  const { name, version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  return { dir, name, version }
})

let failed = false
for (const p of packages) {
  // Provenance is signed at upload only; a dry run has nothing to sign.
  const r = npm(['publish', '--dry-run', '--provenance=false'], p.dir)
  console.log(`dry run ${p.name}@${p.version}: ${r.ok ? 'ok' : 'FAILED'}`)
  if (!r.ok) {
    console.error(r.out)
    failed = true
  }
}
if (failed) {
  console.error('publish: a dry run failed; nothing was published')
  process.exit(1)
}
if (dryRunOnly) {
  console.log(`publish: dry run of ${packages.length} packages passed (staged in ${out})`)
  process.exit(0)
}

for (const p of packages) {
  if (published(p.name, p.version)) {
    console.log(`${p.name}@${p.version}: already on the registry (resumed release), skipped`)
    continue
  }
  const r = npm(['publish'], p.dir)
  if (!r.ok) {
    console.error(r.out)
    console.error(`publish: ${p.name}@${p.version} failed; re-run the release job to publish the rest`)
    process.exit(1)
  }
  console.log(`${p.name}@${p.version}: published`)
}
