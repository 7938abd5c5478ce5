/**
 * The no-compiler promise, proven the way a user meets it: pack the main
 * package and this platform's binary package, install both into a brand-new
 * project whose PATH has no Rust toolchain, and use them from CommonJS, ESM
 * and TypeScript. Also checks that npm/ is exactly what `napi create-npm-dirs`
 * writes and that the main tarball ships only what users need.
 *
 * Needs the release (or debug) binary at the repo root: `npm run build` first.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import { readNapiConfig } from '@napi-rs/cli'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { LEGAL_FILES, stageRelease } from '../scripts/stage-release.mjs'

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..')
const FIXTURE = join(ROOT, '__test__', 'fixtures', 'consumer')
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
const napi = await readNapiConfig(join(ROOT, 'package.json'))

// The napi target this machine runs, if the package ships one for it.
const hostAbi =
  process.platform === 'win32'
    ? 'msvc'
    : process.platform === 'linux'
      ? (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime
        ? 'gnu'
        : 'musl'
      : null
const host = napi.targets.find(
  (t) => t.platform === process.platform && t.arch === process.arch && (t.abi ?? null) === hostAbi,
)

// npm is run as `node npm-cli.js`, so neither step depends on what PATH holds.
const NPM_CLI = [
  process.env.npm_execpath,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  join(dirname(process.execPath), 'node_modules', 'npm', 'bin', 'npm-cli.js'),
].find((p): p is string => !!p && /npm-cli\.js$/.test(p) && existsSync(p))

function run(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, args, { cwd, env, encoding: 'utf8', timeout: 120_000 })
}

/** Runs node with `args`; returns stdout, or throws with stderr. */
function node(args: string[], cwd: string, env?: NodeJS.ProcessEnv): string {
  const r = run(args, cwd, env)
  if (r.status !== 0) {
    throw new Error(`node ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`)
  }
  return r.stdout
}

function npm(args: string[], cwd: string, env?: NodeJS.ProcessEnv): string {
  if (!NPM_CLI) throw new Error('cannot find npm-cli.js next to this Node.js')
  return node([NPM_CLI, ...args], cwd, env)
}

/** `npm pack` a directory into `dest`; returns the tarball path. */
function pack(dir: string, dest: string): string {
  const [result] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', dest], dir))
  return join(dest, result.filename)
}

/** The files of an npm/ folder, manifests parsed and without `version`. */
function readNpmDirs(dir: string): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    // Binaries are build output (`napi artifacts` puts them here), not metadata.
    if (!entry.isFile() || entry.name.endsWith('.node')) continue
    const file = join(entry.parentPath, entry.name)
    const text = readFileSync(file, 'utf8')
    // `napi pre-publish` publishes every platform package at the main
    // package's version, so a stale version here is harmless.
    const content = entry.name === 'package.json' ? { ...JSON.parse(text), version: undefined } : text
    out[file.slice(dir.length + 1).replaceAll('\\', '/')] = content
  }
  return out
}

// What `npm publish` would upload for the main package.
const dryRun: { files: { path: string }[] } = JSON.parse(
  npm(['pack', '--dry-run', '--json', '--ignore-scripts'], ROOT),
)[0]
const packedFiles = dryRun.files.map((f) => f.path).sort()

describe('packaging', () => {
  it('npm/ holds one package per napi target, exactly as `napi create-npm-dirs` writes them', () => {
    // Generate afresh from a copy of package.json and compare: if this fails,
    // run `npx napi create-npm-dirs` and commit npm/.
    const scratch = mkdtempSync(join(tmpdir(), 'embedded-mqtt-broker-npm-dirs-'))
    try {
      copyFileSync(join(ROOT, 'package.json'), join(scratch, 'package.json'))
      node([join(ROOT, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js'), 'create-npm-dirs', '--cwd', scratch], ROOT)
      expect(readNpmDirs(join(ROOT, 'npm'))).toEqual(readNpmDirs(join(scratch, 'npm')))
    } finally {
      rmSync(scratch, { recursive: true, force: true })
    }

    for (const target of napi.targets) {
      const dir = join(ROOT, 'npm', target.platformArchABI)
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
      const binary = `${napi.binaryName}.${target.platformArchABI}.node`
      expect(manifest).toMatchObject({
        name: `${napi.packageName}-${target.platformArchABI}`,
        os: [target.platform],
        cpu: [target.arch],
        main: binary,
        files: [binary],
      })
      if (target.abi === 'gnu') expect(manifest.libc).toEqual(['glibc'])
      if (target.abi === 'musl') expect(manifest.libc).toEqual(['musl'])
      expect(existsSync(join(dir, 'README.md'))).toBe(true)
    }
  })

  it('the main tarball holds the JS entries, types, CLI, docs and licenses, and nothing else', () => {
    const entries = [
      'package.json',
      'index.js',
      'index.mjs',
      'binding.cjs',
      'index.d.ts',
      'cli.js',
      'config.schema.json',
      'cli-passwd.js',
      'README.md',
    ]
    expect(packedFiles).toEqual([...entries, ...LEGAL_FILES].sort())

    // Belt and braces against a loosened `files` list.
    for (const file of packedFiles) {
      expect(file).not.toMatch(/^(target|src|npm|bench|examples|__test__|\.github)\/|\.(rs|node|toml|lock)$/)
    }
    // Every path the exports map points at is in the tarball.
    const exportTargets = Object.values(pkg.exports['.']).concat(pkg.exports['./package.json'])
    for (const target of exportTargets as string[]) {
      expect(packedFiles).toContain(target.replace(/^\.\//, ''))
    }
  })

  it('the manifest leads resolvers that ignore `exports` to the entry with the helpful error', () => {
    expect(pkg.main).toBe(pkg.exports['.'].require.replace(/^\.\//, ''))
    expect(pkg.main).toBe('binding.cjs')
    expect(pkg.repository.url).toMatch(/^git\+https:\/\/.+\.git$/)
    expect(pkg.homepage).toMatch(/^https:\/\//)
    expect(pkg.bugs.url).toMatch(/^https:\/\//)
  })

  it('THIRD_PARTY_NOTICES.md lists the statically linked crates with their license texts', () => {
    const notices = readFileSync(join(ROOT, 'THIRD_PARTY_NOTICES.md'), 'utf8')
    for (const crate of ['rmqtt', 'tokio', 'rustls', 'aws-lc-sys', 'libmimalloc-sys', 'napi']) {
      expect(notices).toMatch(new RegExp(`^- ${crate} \\d`, 'm'))
    }
    expect(notices).toContain('Permission is hereby granted, free of charge')
    expect(notices).toContain('Apache License')
  })
})

describe.skipIf(!host)(`install with no compiler (${host?.platformArchABI ?? 'no target for this host'})`, () => {
  let tmp = ''
  let consumer = ''
  let staged: Awaited<ReturnType<typeof stageRelease>>
  const platformPackage = `${napi.packageName}-${host?.platformArchABI}`
  const binaryFile = `${napi.binaryName}.${host?.platformArchABI}.node`

  // A user's environment: no Rust toolchain on PATH, nothing inherited from
  // the `npm test` run or from napi-rs overrides.
  const hasRust = (dir: string) =>
    ['cargo', 'rustc', 'cargo.exe', 'rustc.exe'].some((bin) => existsSync(join(dir, bin)))
  const userEnv: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(npm_|napi_rs_|cargo|rustup|vitest)/i.test(key)),
  )
  const path = (process.env.PATH ?? '').split(delimiter).filter((dir) => dir && !hasRust(dir))
  // Windows spells it `Path`; keep a single entry whatever its case.
  for (const key of Object.keys(userEnv)) if (key.toUpperCase() === 'PATH') delete userEnv[key]
  userEnv.PATH = path.join(delimiter)
  /** Rust tools the user environment can still run (should be none). */
  const rustTools = () => ['cargo', 'rustc'].filter((tool) => !spawnSync(tool, ['--version'], { env: userEnv }).error)

  beforeAll(async () => {
    // Real path: macOS's tmpdir is behind a symlink, and Node reports real paths.
    // Checked before anything is installed, so no step can lean on Rust.
    if (rustTools().length > 0) throw new Error(`still on PATH: ${rustTools().join(', ')}`)
    tmp = realpathSync.native(mkdtempSync(join(tmpdir(), 'embedded-mqtt-broker-pack-')))
    consumer = join(tmp, 'consumer')
    const binary = join(ROOT, binaryFile)
    if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`npm run build\` first`)

    // The main package and this platform's package exactly as
    // scripts/publish.mjs stages them for the release.
    mkdirSync(join(tmp, 'bin'))
    copyFileSync(binary, join(tmp, 'bin', binaryFile))
    staged = await stageRelease({
      out: join(tmp, 'stage'),
      binaries: join(tmp, 'bin'),
      platforms: [host!.platformArchABI],
    })
    const platformStage = staged.platforms[host!.platformArchABI]
    const tarballs = [pack(staged.main, tmp), pack(platformStage, tmp)]

    cpSync(FIXTURE, consumer, { recursive: true })
    // Tools the user project brings along, at the repo's versions so npm's
    // cache from `npm ci` usually serves them.
    const devTools = ['mqtt', 'typescript', '@types/node'].map(
      (name) => `${name}@${JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version}`,
    )
    npm(['install', '--no-audit', '--no-fund', '--prefer-offline', ...devTools], consumer, userEnv)
    // Offline: the other targets' packages are not published anywhere, and
    // npm must skip them as failed optional dependencies, as users' npm skips
    // the ones for other platforms.
    npm(['install', '--no-audit', '--no-fund', '--offline', ...tarballs], consumer, userEnv)
  }, 240_000)

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true })
  })

  it('the platform tarball holds the binary, its manifest, README and licenses, and nothing else', () => {
    const [dryRun] = JSON.parse(
      npm(['pack', '--dry-run', '--json', '--ignore-scripts'], staged.platforms[host!.platformArchABI]),
    )
    const files = dryRun.files.map((f: { path: string }) => f.path).sort()
    expect(files).toEqual([binaryFile, 'package.json', 'README.md', ...LEGAL_FILES].sort())
  })

  it('runs with no cargo or rustc on PATH', () => {
    expect(rustTools()).toEqual([])
  })

  it('require() resolves the installed package and loads the platform package binary', () => {
    const { entry, binary } = JSON.parse(node(['require.cjs'], consumer, userEnv))
    expect(entry).toBe(join(consumer, 'node_modules', napi.packageName, 'binding.cjs'))
    expect(binary).toBe(join(consumer, 'node_modules', platformPackage, binaryFile))
  })

  it('import works and the broker delivers messages to an mqtt.js client, then stops', () => {
    const result = JSON.parse(node(['smoke.mjs'], consumer, userEnv))
    expect(result.port).toBeGreaterThan(0)
    expect(result.received).toEqual(['pack/client=from mqtt.js', 'pack/server=from the broker'])
  }, 60_000)

  it('a TypeScript project type-checks against the shipped index.d.ts', () => {
    node([join('node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], consumer, userEnv)
  }, 60_000)

  it('with no binary for the platform, require and import explain what to do', () => {
    const installed = join(consumer, 'node_modules', platformPackage)
    const moved = join(tmp, 'moved-platform-package')
    renameSync(installed, moved)
    try {
      const name = JSON.stringify(napi.packageName)
      for (const args of [
        ['-e', `require(${name})`],
        ['--input-type=module', '-e', `import ${name}`],
      ]) {
        const r = run(args, consumer, userEnv)
        expect(r.status).not.toBe(0)
        expect(r.stderr).toContain('ERR_MQTT_SERVER_NO_BINARY')
        expect(r.stderr).toContain(`native binary for ${host!.platformArchABI}`)
        expect(r.stderr).toContain(`"${platformPackage}"`)
        expect(r.stderr).not.toMatch(/^Error: Cannot find module/m)
      }

      // NAPI_RS_NATIVE_LIBRARY_PATH points the loader at a binary anywhere.
      const override = join(moved, binaryFile)
      const { binary } = JSON.parse(
        node(['require.cjs'], consumer, { ...userEnv, NAPI_RS_NATIVE_LIBRARY_PATH: override }),
      )
      expect(binary).toBe(override)
    } finally {
      renameSync(moved, installed)
    }
  }, 60_000)
})
