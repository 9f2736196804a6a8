#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what the tests need (Debian 12, as root), builds lockunit, and runs every suite:
# unit, integration (real redis-server, etcd, PostgreSQL started by the tests on loopback),
# docs (man-page lint and coverage), e2e (a real systemd booted in systemd-nspawn) and faults
# (three nspawn nodes per backend under injected faults, checked for overlapping payloads).
# Before the suites: a build with every network backend left out that installs under a private
# prefix (tests/build-minimal.sh), and the Debian packages (tests/package/build-deb.sh, with
# lintian), which e2e's `package` test installs into containers.
# This is the command the README gives and the one .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}

packages() { grep -hv '^#' "$@" | grep -v '^$'; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2046
apt-get install -y -qq --no-install-recommends $(packages tests/deps/build.txt tests/deps/test.txt) >/dev/null

if [ -d "$build" ]; then meson setup --reconfigure "$build" >/dev/null; else meson setup "$build" >/dev/null; fi
ninja -C "$build"

set +e
bash tests/build-minimal.sh
minimal=$?
rm -rf "$build/deb"
bash tests/package/build-deb.sh "$build/deb"
package=$?

# Under CI=true a test whose server or tool is missing fails instead of skipping.
meson test -C "$build" --print-errorlogs --num-processes 2 \
    --suite unit --suite integration --suite docs --suite e2e --suite faults
status=$?
set -e

python3 - "$build/meson-logs/testlog.json" <<'PY'
import json, sys
counts = {"passed": 0, "failed": 0, "skipped": 0}
for line in open(sys.argv[1]):
    result = json.loads(line)["result"]
    key = {"OK": "passed", "EXPECTEDFAIL": "passed", "SKIP": "skipped"}.get(result, "failed")
    counts[key] += 1
print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % counts)
PY
[ $minimal -eq 0 ] || { echo "tests/build-minimal.sh FAILED"; status=1; }
[ $package -eq 0 ] || { echo "tests/package/build-deb.sh FAILED"; status=1; }
exit $status
