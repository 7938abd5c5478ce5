// ES module entry of the package.
//
// The binding is loaded once, by the CommonJS entry, so `import` and `require`
// share one instance and a missing binary fails with the same explanation.
// Named exports are then re-exported from the generated loader, whose
// `module.exports.X = ...` lines Node's CommonJS export detection reads: a new
// export of the Rust addon shows up here without touching this file.
import './binding.cjs'

export * from './index.js'
export { default } from './index.js'
