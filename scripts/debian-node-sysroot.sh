#!/usr/bin/env bash
# Unpacks Debian's Node.js for another CPU, with every shared library it needs,
# into a sysroot that qemu-user runs it from:
#   scripts/debian-node-sysroot.sh <arm64|armhf>   # prints the sysroot path
#   qemu-aarch64 -L <sysroot> <sysroot>/usr/bin/node ...
# Debian trixie's nodejs (20.x) meets the package's engines (>= 20.3). apt runs
# as a private instance (own sources, state and cache under the sysroot's
# parent), so the host's package database is neither read nor changed, and no
# root is needed. The result is cached: delete the directory to refresh.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:?usage: scripts/debian-node-sysroot.sh <arm64|armhf>}
SUITE=trixie
base="$PWD/node_modules/.cache/debian-node-$arch"
sysroot="$base/sysroot"
if [ -x "$sysroot/usr/bin/node" ]; then echo "$sysroot"; exit 0; fi

rm -rf "$base"
mkdir -p "$base/apt/parts" "$base/apt/lists/partial" "$base/apt/archives/partial" "$base/debs" "$sysroot"
: >"$base/apt/status"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || { echo "debian-node-sysroot: $keyring missing (apt-get install debian-archive-keyring)" >&2; exit 1; }
cat >"$base/apt/sources.list" <<EOF
deb [arch=$arch signed-by=$keyring] http://deb.debian.org/debian $SUITE main
deb [arch=$arch signed-by=$keyring] http://deb.debian.org/debian-security $SUITE-security main
EOF
apt_opts=(
  -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
  -o "Dir::State=$base/apt" -o "Dir::State::status=$base/apt/status"
  -o "Dir::Cache=$base/apt" -o "Dir::Etc::SourceList=$base/apt/sources.list"
  -o "Dir::Etc::SourceParts=$base/apt/parts" -o "Dir::Etc::Preferences=/dev/null"
  -o "Dir::Etc::PreferencesParts=$base/apt/parts" -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=$(id -un)"
)
apt-get "${apt_opts[@]}" -qq update >&2
# nodejs and everything it depends on, recursively; virtual packages (listed
# in <angle brackets>) resolve to the real ones further down the list.
mapfile -t packages < <(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances nodejs | grep -E '^[a-z0-9]' | sort -u)
(cd "$base/debs" && apt-get "${apt_opts[@]}" -qq download "${packages[@]}" >&2)
for deb in "$base"/debs/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
# Debian's usrmerge: /lib is a link into /usr/lib, where the loader lives.
[ -e "$sysroot/lib" ] || ln -s usr/lib "$sysroot/lib"
[ -x "$sysroot/usr/bin/node" ] || { echo "debian-node-sysroot: no usr/bin/node after unpacking" >&2; exit 1; }
echo "$sysroot"
