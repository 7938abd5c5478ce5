#!/usr/bin/env bash
# A contributor's `npm install` must be quiet and stable: no EBADENGINE
# warning on the oldest supported Node.js (20), and package-lock.json left as
# committed. package.json's `overrides` exist for the first point: they hold
# two of @napi-rs/cli's dependencies (@napi-rs/lzma, content-type) at versions
# whose `engines` still include Node 20; both sit on code paths this project
# never takes (napi's cross-toolchain download, GitHub releases).
set -euo pipefail
cd "$(dirname "$0")/.."

before=$(git hash-object package-lock.json)
log=$(npm install --no-audit --no-fund --prefer-offline 2>&1)
if grep -q EBADENGINE <<<"$log"; then
  echo "$log" >&2
  echo "check-npm-install: npm install on Node $(node --version) warns EBADENGINE" >&2
  exit 1
fi
if [ "$(git hash-object package-lock.json)" != "$before" ]; then
  git diff --stat -- package-lock.json >&2
  echo "check-npm-install: npm install changed package-lock.json; commit the result of npm install" >&2
  exit 1
fi
echo "npm install on Node $(node --version): no EBADENGINE, package-lock.json unchanged"
