#!/usr/bin/env bash
# Checks what a Linux binary from scripts/build-target.sh links against:
# `scripts/check-binary.sh <triple> <file.node>`. Fails when
#   - the ELF machine is not the triple's CPU (armv7: also hard-float ABI);
#   - a gnu binary needs a glibc symbol version above GLIBC_FLOOR (the same
#     floor build-target.sh links against);
#   - a musl binary needs glibc at all (a glibc library or symbol version).
# Reads the headers with readelf, which handles every architecture.
set -euo pipefail
cd "$(dirname "$0")/.."

GLIBC_FLOOR=$(bash scripts/build-target.sh --glibc-floor)
triple=${1:?usage: scripts/check-binary.sh <triple> <file.node>}
file=${2:?usage: scripts/check-binary.sh <triple> <file.node>}

fail() { echo "check-binary: $file ($triple): $*" >&2; exit 1; }

header=$(readelf -h "$file")
machine=$(sed -n 's/^ *Machine: *//p' <<<"$header")
case "$triple" in
  x86_64-*) want='Advanced Micro Devices X86-64' ;;
  aarch64-*) want='AArch64' ;;
  armv7-*) want='ARM' ;;
  *) fail "no expectation for this triple" ;;
esac
[ "$machine" = "$want" ] || fail "ELF machine is '$machine', expected '$want'"
if [[ "$triple" == *eabihf ]]; then
  grep -q 'hard-float ABI' <<<"$header" || fail "not built for the hard-float ABI"
fi

needed=$(readelf -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
# Highest GLIBC_x.y[.z] symbol version the binary asks for.
glibc=$(readelf -V "$file" | { grep -o 'GLIBC_[0-9][0-9.]*' || true; } | sed 's/GLIBC_//' | sort -uV | tail -n1)

case "$triple" in
  *-linux-gnu*)
    [ -n "$glibc" ] || fail "no GLIBC symbol versions at all: is this a glibc build?"
    highest=$(printf '%s\n%s\n' "$glibc" "$GLIBC_FLOOR" | sort -V | tail -n1)
    [ "$highest" = "$GLIBC_FLOOR" ] || fail "needs GLIBC_$glibc, above the floor $GLIBC_FLOOR"
    echo "$file: $machine, needs glibc $glibc (floor $GLIBC_FLOOR); NEEDED: $needed"
    ;;
  *-linux-musl*)
    [ -z "$glibc" ] || fail "musl build needs GLIBC_$glibc"
    if grep -Eq 'libc\.so\.6|ld-linux|libm\.so\.6|libpthread|libdl|libgcc_s' <<<"$needed"; then
      fail "musl build needs glibc libraries: $needed"
    fi
    echo "$file: $machine, no glibc dependency; NEEDED: $needed"
    ;;
  *) fail "not a Linux triple" ;;
esac
