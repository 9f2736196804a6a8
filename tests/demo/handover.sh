#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A two-minute look at what lockunit does, on the embedded file backend: three instances of
# the same job contend for one lock; exactly one runs at a time, and the lock is handed over
# the moment the holder finishes or is stopped.
set -euo pipefail
LOCKUNIT=${LOCKUNIT:-$(dirname "$0")/../../build/src/lockunit}
dir=$(mktemp -d /tmp/lockunit-demo.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT

say() { printf '%s  %s\n' "$(date +%T.%3N)" "$*"; }
prefix() { while IFS= read -r line; do say "[$1] $line"; done; }
job() { # the payload: a job that knows nothing of the lock
    printf '%s' 'echo "$(date +%T.%3N)  [$NODE] running with the lock (token $LOCKUNIT_TOKEN)"; sleep 2; echo "$(date +%T.%3N)  [$NODE] done"'
}
common=(--backend="file://$dir" --name=report-builder --scope=no)

say "starting node-a, node-b and node-c, all wanting lock 'report-builder'"
for node in node-a node-b node-c; do
    NODE=$node "$LOCKUNIT" "${common[@]}" -- sh -c "$(job)" 2> >(prefix "$node lockunit") &
    sleep 0.2
done

sleep 0.5
say "a fourth instance with --wait=0 (try once):"
set +e
"$LOCKUNIT" "${common[@]}" --wait=0 -- true 2> >(prefix "node-d lockunit")
rc=$?
sleep 0.1
set -e
say "  → exit $rc (75 = lock busy, as Restart= and scripts expect)"

say "lockunit status:"
"$LOCKUNIT" status "${common[@]}" | sed 's/^/    /' || true

wait
say "all three ran, one at a time, each with a higher fencing token."
