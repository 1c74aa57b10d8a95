#!/usr/bin/env bash
# bench.sh - build a release build in build-release and run the benchmarks.
# They print numbers and never fail on timing; run on a quiet machine.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
BUILD_DIR=build-release scripts/build.sh -Dbuildtype=release -Dbench=true -Dtests=false
meson test -C build-release --benchmark --verbose
