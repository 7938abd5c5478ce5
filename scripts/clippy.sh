#!/usr/bin/env bash
# Clippy with warnings denied on every crate of the workspace and every
# target: the addon, bench/loadgen, __test__/patches and the rmqtt fork.
# crates.io's sources of the fork pass clippy's default lints unchanged, so a
# warning is the patches' to fix; a deliberate exception is an #[allow] at
# its site with a one-line reason.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo clippy --workspace --all-targets -- -D warnings
