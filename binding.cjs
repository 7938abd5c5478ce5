'use strict'

// CommonJS entry of the package. It loads the loader that `napi build`
// generates (`index.js`, never edited by hand) and, when no native binary can
// be loaded, replaces the loader's generic "Cannot find native binding" with
// an error that names this platform and says what to do about it.

let binding
try {
  binding = require('./index.js')
} catch (cause) {
  throw noBinaryError(cause)
}
module.exports = binding

function noBinaryError(cause) {
  const pkg = require('./package.json')
  const platform = currentPlatform()
  const supported = (pkg.napi?.targets ?? []).map(platformOfTriple)
  const override = process.env.NAPI_RS_NATIVE_LIBRARY_PATH

  const lines = [`${pkg.name}: could not load the native binary for ${platform} (Node.js ${process.version}).`]
  if (override) {
    lines.push(`NAPI_RS_NATIVE_LIBRARY_PATH is set to "${override}"; that file could not be loaded.`)
  } else if (supported.includes(platform)) {
    lines.push(
      `This platform is supported: the binary ships in the package "${pkg.name}-${platform}", an optional dependency that npm did not install.`,
      'Reinstall without --omit=optional / --no-optional; if the lockfile was made on another OS, delete node_modules and package-lock.json and run npm install again.',
    )
  } else {
    lines.push(
      `There is no prebuilt binary for this platform. Prebuilt: ${supported.join(', ')}.`,
      'Build one from source (Rust toolchain, `npm run build` in a clone of the repository) and point NAPI_RS_NATIVE_LIBRARY_PATH at the resulting .node file.',
    )
  }
  lines.push('See docs/install.md in the repository. The underlying error is attached as `cause`.')

  const error = new Error(lines.join('\n'))
  error.code = 'ERR_MQTT_SERVER_NO_BINARY'
  error.cause = cause
  return error
}

// Same naming as the platform packages: <platform>-<arch>[-<abi>].
function currentPlatform() {
  let abi = ''
  if (process.platform === 'win32') abi = '-msvc'
  if (process.platform === 'linux') {
    const report = process.report?.getReport?.()
    abi = report?.header?.glibcVersionRuntime ? '-gnu' : '-musl'
    // 32-bit ARM builds are hard-float: linux-arm-gnueabihf, as napi names it.
    if (process.arch === 'arm') abi += 'eabihf'
  }
  return `${process.platform}-${process.arch}${abi}`
}

function platformOfTriple(triple) {
  const [arch, , os, abi] = triple.split('-')
  const nodeArch = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' }[arch] ?? arch
  const nodeOs = { windows: 'win32' }[os] ?? os
  return [nodeOs, nodeArch, abi].filter(Boolean).join('-')
}
