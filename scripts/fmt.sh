#!/usr/bin/env bash
# rustfmt on every crate of the workspace; `scripts/fmt.sh --check` is what
# CI runs. The rmqtt fork is formatted in upstream's style
# (vendor/rustfmt.toml; crates.io's sources pass it unchanged), so only what
# the patches add can fail the check. A change to the fork then still
# belongs in a patch (scripts/vendor.sh new NAME).
set -euo pipefail
cd "$(dirname "$0")/.."
fork=(rmqtt rmqtt-net rmqtt-codec)
if [[ ${1:-} == --check ]]; then
  cargo fmt --all -- --check
  exit
fi
# rustfmt writes LF whatever a file had; upstream's CRLF files keep CRLF.
mapfile -t crlf < <(grep -rlI --include='*.rs' $'\r$' "${fork[@]/#/vendor/}" || true)
cargo fmt --all -- "$@"
for f in "${crlf[@]}"; do
  sed -i 's/\r$//; s/$/\r/' "$f"
done
