#!/usr/bin/env bash
# bench.sh - build a release build in build-release and run the benchmark
# suite (bench/run_bench.py): looperd against SuperCollider's scsynth on a
# private `jackd -d dummy -r 48000 -p 64`.  It prints numbers and never fails
# on timing; it exits non-zero only if the bench itself broke.  Run it on a
# quiet machine: it takes about four minutes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
# scsynth is the reference the suite measures against; only the bench needs
# it, so it is installed here and not in deps.sh.
if ! command -v scsynth >/dev/null 2>&1; then
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        supercollider-server
fi
BUILD_DIR=build-release scripts/build.sh -Dbuildtype=release -Dbench=true -Dtests=false
exec python3 bench/run_bench.py --build build-release "$@"
