#!/usr/bin/env bash
# `npm run build:linux-all`: every Linux binary we publish, built and proven
# on this machine (docs/install.md, "Building every Linux binary"):
#   1. scripts/build-target.sh for each of the five Linux targets, one at a
#      time, into OUT_DIR (default target/linux-all);
#   2. scripts/check-binary.sh on each: CPU, glibc floor for gnu, no glibc at
#      all for musl;
#   3. scripts/smoke/run.mjs on each binary this machine can run: the x86_64
#      one natively, aarch64 and armv7 under qemu-user with Debian's Node.js.
#      The musl binaries need a musl Node.js, which no registry reachable
#      here ships: the release workflow runs them in Alpine containers.
# Ends with a table of size, glibc floor and build time per target, also
# written to OUT_DIR/summary.md. Needs qemu-user-static and
# debian-archive-keyring (Debian/Ubuntu packages) for step 3.
# Release profile (LTO) by default; extra arguments go to every `napi build`.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT_DIR=${OUT_DIR:-target/linux-all}
export OUT_DIR
mkdir -p "$OUT_DIR"
targets=(
  x86_64-unknown-linux-gnu
  aarch64-unknown-linux-gnu
  armv7-unknown-linux-gnueabihf
  x86_64-unknown-linux-musl
  aarch64-unknown-linux-musl
)
host=$(uname -m)

summary=("| target | size (bytes) | glibc needed | build (s) | run here |" "| --- | --- | --- | --- | --- |")
for triple in "${targets[@]}"; do
  echo "== $triple" >&2
  start=$SECONDS
  file=$(bash scripts/build-target.sh "$triple" "$@" | tail -n1)
  took=$((SECONDS - start))
  checked=$(bash scripts/check-binary.sh "$triple" "$file")
  echo "$checked"
  glibc=$(sed -n 's/.*needs glibc \([0-9.]*\).*/\1/p' <<<"$checked")
  if [[ "$triple" == *-linux-gnu* ]]; then
    node scripts/smoke/run.mjs "$triple" "$file"
    ran=$([[ "$triple" == "$host"-* ]] && echo "smoke, native" || echo "smoke, qemu")
  else
    ran="readelf only"
  fi
  summary+=("| $triple | $(wc -c <"$file") | ${glibc:-none (musl)} | $took | $ran |")
done

printf '%s\n' "${summary[@]}" | tee "$OUT_DIR/summary.md"
