#!/usr/bin/env bash
# rustfmt on our crates only; the rmqtt fork keeps upstream's formatting.
# `scripts/fmt.sh --check` is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --package embedded-mqtt-broker --package loadgen --package patch-tests -- "$@"
