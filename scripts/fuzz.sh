#!/usr/bin/env bash
# fuzz.sh - build the libFuzzer harnesses with clang in build-fuzz and run
# each for a while on a working copy of its seed corpus.
#
#   scripts/fuzz.sh                     both fuzzers, 60 s each
#   FUZZ_SECONDS=3600 scripts/fuzz.sh   an hour each
#   scripts/fuzz.sh packet              only fuzz_packet (or: decode)
#
# FUZZ_JOBS=N runs N fuzzing processes in parallel per harness (libFuzzer's
# -fork mode).  The working corpus lives in build-fuzz/fuzz-corpus/NAME and
# grows across runs; crash, leak and timeout inputs are written to
# build-fuzz/fuzz-artifacts/.  Reproduce one with
#   build-fuzz/tests/fuzz/fuzz_NAME build-fuzz/fuzz-artifacts/crash-...
# Exits non-zero when a fuzzer found something.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=build-fuzz
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}

if [ ! -d "$dir" ]; then
    CC=clang CXX=clang++ meson setup "$dir" -Dfuzz=true -Db_lundef=false -Dbench=false
fi
meson compile -C "$dir" tests/fuzz/fuzz_packet tests/fuzz/fuzz_decode

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(packet decode)

# The harnesses keep their temp files under TMPDIR; libFuzzer does not
# always run exit handlers (fork mode kills its workers), so clean up here.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TMPDIR=$tmp

status=0
mkdir -p "$dir/fuzz-artifacts"
for name in "${targets[@]}"; do
    case $name in
    packet) max_len=4096 ;;
    decode) max_len=16384 ;;
    *) echo "fuzz.sh: unknown fuzzer '$name' (packet or decode)" >&2; exit 2 ;;
    esac
    work="$dir/fuzz-corpus/$name"
    mkdir -p "$work"
    # New seeds from the source tree join the working corpus; nothing is
    # ever written back to tests/fuzz/corpus.
    cp -n tests/fuzz/corpus/"$name"/* "$work"/
    fork=()
    [ "$jobs" -gt 1 ] && fork=(-fork="$jobs" -ignore_crashes=0)
    echo "== fuzz_$name for ${seconds}s"
    if ! "$dir/tests/fuzz/fuzz_$name" -max_total_time="$seconds" -max_len="$max_len" \
        -artifact_prefix="$dir/fuzz-artifacts/$name-" -print_final_stats=1 "${fork[@]}" \
        "$work"; then
        echo "fuzz.sh: fuzz_$name found a problem; see $dir/fuzz-artifacts/" >&2
        status=1
    fi
done
exit $status
