#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Two build-system promises, checked on one small build (run by tests/run-all.sh):
# - -Dredis=disabled -Detcd=disabled -Dpostgres=disabled -Dzookeeper=disabled builds lockunit with the file backend
#   alone, and the unit tests hold there (the registry holds exactly the backends meson enabled);
# - `meson install` under a prefix that is not the system's writes nothing outside it, also as
#   root: the unit and catalog follow the prefix, and /etc/lockunit becomes PREFIX/etc/lockunit.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/lockunit-minimal.XXXXXX)
trap 'rm -rf "$work"' EXIT
build=${MINIMAL_BUILD_DIR:-build-minimal}
prefix=$work/prefix

fail() { echo "build-minimal: FAIL: $*" >&2; exit 1; }

setup=(--prefix="$prefix" -Dredis=disabled -Detcd=disabled -Dpostgres=disabled -Dzookeeper=disabled)
if [ -d "$build" ]; then setup+=(--reconfigure); fi
meson setup "$build" "${setup[@]}" >"$work/setup.log" || { cat "$work/setup.log"; fail "meson setup"; }
ninja -C "$build" >"$work/ninja.log" || { tail -50 "$work/ninja.log"; fail "build"; }
"$build/tests/unit/lockunit-unit-tests" --gtest_brief=1 || fail "unit tests of the minimal build"

for lib in libhiredis libpq libnghttp2 libprotobuf-lite libssl libcrypto; do
    if find "$build/src" -name '*.so' -o -name lockunit -type f | xargs ldd 2>/dev/null \
            | grep -q "$lib"; then
        fail "the minimal build links $lib"
    fi
done

# Where a prefix-ignoring install would write (systemd.pc's dirs, the system's /etc and doc dir):
# nothing there may change. The install log lists every file meson wrote.
system_paths=(/lib/systemd/system/lockunit@.service /usr/lib/systemd/system/lockunit@.service
              /usr/lib/systemd/catalog/lockunit.catalog /etc/lockunit /usr/share/doc/lockunit
              /usr/local/share/doc/lockunit)
snapshot() { stat -c '%n %Y %Z' "${system_paths[@]}" 2>/dev/null || true; }
before=$(snapshot)
meson install -C "$build" --no-rebuild >"$work/install.log" || { cat "$work/install.log"; fail "install"; }
[ "$before" = "$(snapshot)" ] || fail "meson install changed the system: $(snapshot)"
outside=$(grep -v '^#' "$build/meson-logs/install-log.txt" |
          awk -v p="$prefix" '$0 != p && index($0, p "/") != 1')
[ -z "$outside" ] || fail "installed outside $prefix: $outside"

for f in bin/lockunit lib/systemd/system/lockunit@.service lib/systemd/catalog/lockunit.catalog \
         share/doc/lockunit/README.md share/doc/lockunit/COPYING \
         share/doc/lockunit/docs/guarantees.md share/doc/lockunit/examples/reports.toml \
         share/man/man1/lockunit.1 share/man/man5/lockunit.toml.5; do
    [ -f "$prefix/$f" ] || fail "$prefix/$f was not installed"
done
[ -d "$prefix/etc/lockunit" ] || fail "$prefix/etc/lockunit was not created"
grep -q "^ExecStart=$prefix/bin/lockunit " "$prefix/lib/systemd/system/lockunit@.service" \
    || fail "the unit does not run $prefix/bin/lockunit"
find "$prefix" -name 'lockunit-scope.so' | grep -q . || fail "no scope module installed"
if find "$prefix" -name 'lockunit-redis.so' -o -name 'lockunit-etcd*.so' \
        -o -name 'lockunit-postgres.so' -o -name 'lockunit-zookeeper.so' | grep -q .; then
    fail "a disabled backend's module was installed"
fi

# The installed program knows only the file backend: another scheme is a usage error (64; it
# would be 78 in a config file) that lists what there is.
set +e
out=$("$prefix/bin/lockunit" --backend=redis://127.0.0.1:1/0 --name=x -- /bin/true 2>&1)
code=$?
set -e
[ $code -eq 64 ] || fail "redis:// in the minimal build exited $code, not 64: $out"
case $out in *"unknown backend 'redis'"*"available: file"*) ;; *) fail "unexpected error: $out" ;; esac
echo "build-minimal: OK (file backend only; installed only under $prefix)"
