// Lays out the npm packages of a release in a scratch directory, exactly as
// they get published: `<out>/main/` (the files package.json lists, with one
// optional dependency per napi target) and `<out>/<platform>/` (npm/<platform>/
// plus its binary, LICENSE and THIRD_PARTY_NOTICES.md), every manifest at the
// main package's version. The repository itself is left untouched.
// Used by scripts/publish.mjs and by __test__/pack.test.ts, so the test packs
// what the release publishes.
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import { readNapiConfig } from '@napi-rs/cli'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
/** Shipped in every package, main and platform alike. */
export const LEGAL_FILES = ['LICENSE', 'THIRD_PARTY_NOTICES.md']

const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'))
const writeJson = (file, value) => writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`)

/** Every `*.node` file under `dir`, by file name. */
function findBinaries(dir) {
  const found = new Map()
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.node')) found.set(entry.name, join(entry.parentPath, entry.name))
  }
  return found
}

/**
 * @param {object} options
 * @param {string} options.out scratch directory to create the packages in
 * @param {string} options.binaries directory searched (recursively) for the
 *   `<binaryName>.<platform>.node` files, e.g. downloaded CI artifacts
 * @param {string[]} [options.platforms] platforms to stage (default: every
 *   napi target); each must have its binary
 * @param {string} [options.repository] repository URL (`https://host/owner/name`)
 *   to write into every manifest in place of package.json's placeholder
 * @returns {Promise<{ main: string, platforms: Record<string, string> }>} package directories
 */
export async function stageRelease({ out, binaries, platforms, repository }) {
  const pkg = readJson(join(ROOT, 'package.json'))
  const napi = await readNapiConfig(join(ROOT, 'package.json'))
  const targets = napi.targets.filter((t) => !platforms || platforms.includes(t.platformArchABI))
  const links = repository
    ? {
        repository: { type: 'git', url: `git+${repository}.git` },
        homepage: `${repository}#readme`,
        bugs: { url: `${repository}/issues` },
      }
    : {}

  for (const file of LEGAL_FILES) {
    if (!existsSync(join(ROOT, file))) throw new Error(`${file} is missing at the repository root`)
  }
  const found = findBinaries(binaries)
  const missing = targets.map((t) => `${napi.binaryName}.${t.platformArchABI}.node`).filter((name) => !found.has(name))
  if (missing.length) throw new Error(`no binary in ${binaries} for: ${missing.join(', ')}`)

  const staged = { main: join(out, 'main'), platforms: {} }
  for (const target of targets) {
    const dir = join(out, target.platformArchABI)
    const binary = `${napi.binaryName}.${target.platformArchABI}.node`
    cpSync(join(ROOT, 'npm', target.platformArchABI), dir, { recursive: true })
    copyFileSync(found.get(binary), join(dir, binary))
    for (const file of LEGAL_FILES) copyFileSync(join(ROOT, file), join(dir, file))
    const manifest = readJson(join(dir, 'package.json'))
    writeJson(join(dir, 'package.json'), {
      ...manifest,
      ...links,
      version: pkg.version,
      files: [...new Set([...manifest.files, ...LEGAL_FILES])],
    })
    staged.platforms[target.platformArchABI] = dir
  }

  // Every target, staged or not: users on each platform resolve their own.
  const optionalDependencies = Object.fromEntries(
    napi.targets.map((t) => [`${napi.packageName}-${t.platformArchABI}`, pkg.version]),
  )
  mkdirSync(staged.main, { recursive: true })
  for (const file of pkg.files) cpSync(join(ROOT, file), join(staged.main, file))
  writeJson(join(staged.main, 'package.json'), { ...pkg, ...links, optionalDependencies })
  return staged
}
