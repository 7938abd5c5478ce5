#!/usr/bin/env bash
# Builds the addon for one napi target: `scripts/build-target.sh <triple>`.
# The one build path for every binary we publish: the release workflow runs
# it on each target, `npm run build:linux-all` runs it here (docs/install.md).
# Writes embedded-mqtt-broker.<platform>.node at the repository root (or in
# OUT_DIR if set) and prints its path last.
#
# Linux targets cross-build with cargo-zigbuild, zig as C compiler and
# linker, whatever the host (Linux or macOS): the gnu targets link against
# zig's glibc stubs of GLIBC_FLOOR, so the binary loads on any distribution
# with that glibc or newer (scripts/check-binary.sh proves it). zig and cargo-zigbuild come from PyPI into a private virtualenv
# under node_modules/.cache. macOS and Windows targets build natively there.
#
# Any extra arguments go to `napi build` (e.g. `--profile dev`).
set -euo pipefail
cd "$(dirname "$0")/.."

# The lowest glibc the gnu builds target (docs/install.md, "glibc floor").
GLIBC_FLOOR=${GLIBC_FLOOR:-2.17}

# scripts/check-binary.sh asks for the floor this way.
if [ "${1:-}" = --glibc-floor ]; then echo "$GLIBC_FLOOR"; exit 0; fi

triple=${1:?usage: scripts/build-target.sh <rust target triple> [napi build args...]}
shift

case "$triple" in
  *-linux-gnu*) napi_target="$triple.$GLIBC_FLOOR"; zig=1 ;;
  *-linux-musl*) napi_target="$triple"; zig=1 ;;
  *-apple-darwin)
    # zig links a plain darwin cdylib, but this one needs the CoreFoundation
    # and Security frameworks (quinn's rustls-platform-verifier), which only
    # the macOS SDK has: docs/install.md.
    [ "$(uname -s)" = Darwin ] || { echo "build-target.sh: $triple builds on macOS only (needs the macOS SDK's frameworks)" >&2; exit 2; }
    napi_target="$triple"; zig=0 ;;
  *-windows-msvc) napi_target="$triple"; zig=0 ;;
  *) echo "build-target.sh: no recipe for $triple" >&2; exit 2 ;;
esac

# No-op where the target is already installed (rustup downloads it otherwise).
if command -v rustup >/dev/null; then rustup target add "$triple" >/dev/null; fi

args=(build --platform --release --no-const-enum --target "$napi_target")
if [ "$zig" = 1 ]; then
  venv=node_modules/.cache/zig-toolchain
  stamp="$venv/installed-v1"
  if [ ! -f "$stamp" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'cargo-zigbuild==0.24.0' 'ziglang==0.14.1'
    touch "$stamp"
  fi
  # cargo finds `cargo-zigbuild` on PATH, which finds zig as `python3 -m ziglang`.
  PATH="$PWD/$venv/bin:$PATH"
  export PATH
  args+=(--cross-compile)
fi
if [ -n "${OUT_DIR:-}" ]; then args+=(--output-dir "$OUT_DIR"); fi

start=$SECONDS
npx napi "${args[@]}" "$@" >&2
platform=$(node -e '
  const { parseTriple } = require("@napi-rs/cli")
  console.log(parseTriple(process.argv[1]).platformArchABI)' "$triple")
out="${OUT_DIR:-.}/embedded-mqtt-broker.$platform.node"
test -f "$out"
echo "built $triple in $((SECONDS - start)) s: $out ($(wc -c <"$out") bytes)" >&2
echo "$out"
