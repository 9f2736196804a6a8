#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds the Debian packages of this tree (what is committed and what is not yet) with
# `dpkg-buildpackage -us -uc -b` in a scratch copy, so that nothing of the build lands in the
# tree or beside it; copies the .debs to OUT_DIR (default build/deb) and runs lintian, which
# must report no error (the warnings we keep are listed in docs/packaging.md).
#   tests/package/build-deb.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(realpath -m "${1:-build/deb}")
work=$(mktemp -d /tmp/lockunit-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT

version=$(dpkg-parsechangelog -S Version)
src=$work/lockunit-$version
mkdir -p "$src"
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
done | xargs -0 cp --parents -t "$src"

start=$(date +%s)
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -j"$(nproc)") >"$work/build.log" 2>&1; then
    tail -60 "$work/build.log"
    echo "build-deb: dpkg-buildpackage failed" >&2
    exit 1
fi
echo "build-deb: built in $(( $(date +%s) - start )) s"

mkdir -p "$out"
rm -f "$out"/*.deb
cp "$work"/*.deb "$out"/
lintian --fail-on error --tag-display-limit 0 "$work"/*.changes | tee "$out/lintian.txt" || {
    echo "build-deb: lintian reports errors" >&2
    exit 1
}
ls "$out"
