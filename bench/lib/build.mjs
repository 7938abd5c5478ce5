// Making sure the three things the benchmark runs exist: the load
// generator, a release build of the addon, and aedes.
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

/**
 * Builds bench/loadgen (a no-op when up to date). Its own target directory
 * keeps the harness from waiting on, or invalidating, an addon build that is
 * running in the same checkout.
 */
export function buildLoadgen(root) {
  const targetDir = join(root, 'target', 'bench')
  const t = Date.now()
  execFileSync('cargo', ['build', '--release', '-p', 'loadgen', '--target-dir', targetDir], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  return { bin: join(targetDir, 'release', 'loadgen'), seconds: (Date.now() - t) / 1000 }
}

/**
 * Whether an ELF shared object has a .debug_info section (a debug build
 * does; the release profile strips it). The section table is read rather
 * than the bytes searched: the string also occurs in code that reads it.
 */
function hasDebugInfo(file) {
  const b = readFileSync(file)
  if (b.readUInt32BE(0) !== 0x7f454c46) return false
  const shoff = Number(b.readBigUInt64LE(0x28))
  const [size, count, strndx] = [b.readUInt16LE(0x3a), b.readUInt16LE(0x3c), b.readUInt16LE(0x3e)]
  const strtab = Number(b.readBigUInt64LE(shoff + strndx * size + 0x18))
  for (let i = 0; i < count; i++) {
    const name = strtab + b.readUInt32LE(shoff + i * size)
    if (b.toString('latin1', name, name + 12) === '.debug_info\0') return true
  }
  return false
}

function isRunning(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return e.code === 'EPERM'
  }
}

/**
 * A release build of the addon, copied to bench/.cache so that a rebuild in
 * the checkout during the run cannot swap the binary under the broker. With
 * `addon` given, that file is used as is. Otherwise the current sources are
 * built with `cargo build --release` (what `npm run build` runs, minus the
 * copy to the package root, which other work in the checkout may be using);
 * if that fails, the package's own binary is used when it is a release build.
 */
export function ensureAddon(root, { addon, build = true } = {}) {
  if (addon) {
    if (!existsSync(addon)) throw new Error(`--addon ${addon}: no such file`)
    return { path: addon, how: `given (${addon})` }
  }
  const cacheDir = join(root, 'bench', '.cache')
  mkdirSync(cacheDir, { recursive: true })
  // One copy per harness process: overwriting a file a running broker has
  // mapped kills it (SIGBUS), and another harness may build other sources.
  const snapshot = join(cacheDir, `embedded-mqtt-broker-${process.pid}.node`)
  process.on('exit', () => rmSync(snapshot, { force: true }))
  // Copies left by harnesses that were killed.
  for (const f of readdirSync(cacheDir)) {
    const pid = Number(f.match(/^embedded-mqtt-broker-(\d+)\.node$/)?.[1])
    if (pid && !isRunning(pid)) rmSync(join(cacheDir, f), { force: true })
  }
  const built = join(root, 'target', 'release', 'libembedded_mqtt_broker.so')
  const packaged = join(root, 'embedded-mqtt-broker.linux-x64-gnu.node')
  if (build) {
    const t = Date.now()
    try {
      execFileSync('cargo', ['build', '--release', '-p', 'embedded-mqtt-broker'], {
        cwd: root,
        stdio: ['ignore', 'inherit', 'inherit'],
      })
      copyFileSync(built, snapshot)
      return { path: snapshot, how: `cargo build --release (${((Date.now() - t) / 1000).toFixed(0)} s)` }
    } catch (e) {
      console.log(`cargo build --release failed (${e.message.split('\n')[0]}); looking for an existing release build`)
    }
  }
  for (const f of [built, packaged]) {
    if (existsSync(f) && !hasDebugInfo(f)) {
      copyFileSync(f, snapshot)
      return { path: snapshot, how: `existing release build ${relative(root, f)} (${statSync(f).mtime.toISOString()})` }
    }
  }
  throw new Error('no release build of the addon: run `npm run build` (or pass --addon PATH)')
}

/** aedes' version, installing the dev dependencies if it is missing. */
export function ensureAedes(root) {
  const pkg = join(root, 'node_modules', 'aedes', 'package.json')
  if (!existsSync(pkg)) {
    console.log('aedes not installed: running npm install')
    execFileSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' })
  }
  return JSON.parse(readFileSync(pkg, 'utf8')).version
}
