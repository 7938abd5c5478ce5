#!/usr/bin/env bash
# Test of scripts/vendor.sh on a copy of the repository's vendor/ (never the
# repository itself): `check` passes on the committed trees, fails on a
# one-byte hand edit naming the file, and `new` turns that edit into the
# next patch, which `check` accepts once its header is filled in.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
fail() {
  echo "test-vendor: FAIL: $*" >&2
  exit 1
}

mkdir -p "$copy/scripts" "$copy/target"
cp "$repo/scripts/vendor.sh" "$copy/scripts/"
cp -a "$repo/vendor" "$copy/"
# The pristine crates the repository already fetched, so the test needs no network twice.
[[ -d $repo/target/vendor-pristine ]] && cp -a "$repo/target/vendor-pristine" "$copy/target/"
vendor() { VENDOR_ROOT=$copy bash "$copy/scripts/vendor.sh" "$@"; }

vendor check >"$copy/out" 2>&1 || fail "check fails on the committed trees: $(cat "$copy/out")"

# One byte changed in an upstream file (a CRLF one: line endings must survive).
file=$copy/vendor/rmqtt-net/src/error.rs
grep -q $'\r$' "$file" || fail "rmqtt-net/src/error.rs is expected to have upstream's CRLF"
sed -i '1s/^/ /' "$file"
if vendor check >"$copy/out" 2>&1; then fail "check passed after a hand edit"; fi
grep -q 'vendor/rmqtt-net differs' "$copy/out" || fail "check did not name the crate: $(cat "$copy/out")"
grep -q 'error.rs' "$copy/out" || fail "check did not name the file: $(cat "$copy/out")"

# `new` captures the edit as the next patch; a header left as TODO fails check.
vendor new hand-edit >"$copy/out" 2>&1 || fail "new failed: $(cat "$copy/out")"
patch=$(compgen -G "$copy/vendor/patches/rmqtt-net/*-hand-edit.patch") || fail "new wrote no patch: $(cat "$copy/out")"
[[ -z $(compgen -G "$copy/vendor/patches/rmqtt/*-hand-edit.patch") ]] || fail "new wrote a patch for an unchanged crate"
if vendor check >"$copy/out" 2>&1; then fail "check passed with a TODO header"; fi
grep -q "header field 'What:'" "$copy/out" || fail "check did not name the TODO field: $(cat "$copy/out")"
sed -i -e 's/^What: TODO.*/What: a test edit/' -e 's/^Why: TODO.*/Why: the test/' \
  -e 's/^Effect: TODO.*/Effect: not measured/' -e 's/^Upstream: TODO.*/Upstream: ours only/' "$patch"
vendor apply >"$copy/out" 2>&1 || fail "apply failed: $(cat "$copy/out")"
vendor check >"$copy/out" 2>&1 || fail "check fails after new + apply: $(cat "$copy/out")"
grep -q 'hand-edit' "$copy/vendor/rmqtt-net/PATCHED.md" || fail "PATCHED.md does not list the new patch"

# A hand edit of the generated PATCHED.md fails too.
echo >>"$copy/vendor/rmqtt-codec/PATCHED.md"
if vendor check >"$copy/out" 2>&1; then fail "check passed after editing PATCHED.md"; fi
echo "test-vendor: ok"
