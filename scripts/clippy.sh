#!/usr/bin/env bash
# Clippy with warnings denied on every crate of the workspace. The rmqtt fork
# keeps upstream's style: its lib.rs files allow clippy's lints except those
# that catch a lock guard held across an await, which they deny.
set -euo pipefail
cd "$(dirname "$0")/.."

fork=(rmqtt rmqtt-net rmqtt-codec)
cargo clippy --workspace "${fork[@]/#/--exclude=}" --all-targets -- -D warnings
# The fork's own tests and examples are upstream's: its library only.
cargo clippy "${fork[@]/#/--package=}" -- -D warnings
