#!/usr/bin/env bash
# test.sh - install what is missing, build, and run the whole test suite.
#
#   scripts/test.sh
#
# Three builds: `build` (the normal one: every suite), `build-asan`
# (AddressSanitizer + UndefinedBehaviorSanitizer: the e2e suite) and
# `build-fuzz` (clang: the libFuzzer harnesses, a fixed number of runs).  Ends with
# one line `tests: N passed, N failed[, N skipped]` counted from both runs,
# and exits non-zero if a test failed, a run failed, or no test ran at all.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh --test

BUILD_DIR=build scripts/build.sh -Dtests=true
BUILD_DIR=build-asan scripts/build.sh -Dtests=true -Dbench=false \
    -Db_sanitize=address,undefined -Db_lundef=false
# The libFuzzer harnesses need clang; a short fixed number of runs each.
CC=clang CXX=clang++ BUILD_DIR=build-fuzz scripts/build.sh -Dtests=true -Dbench=false -Dfuzz=true \
    -Db_lundef=false

failed_runs=0
logs=()

# meson test writes no log when it finds no test to run, so an old log must
# never be mistaken for this run's.
rm -f build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
    build-fuzz/meson-logs/testlog.json

echo "== meson test -C build" >&2
if ! meson test -C build --print-errorlogs; then
    failed_runs=$((failed_runs + 1))
fi
logs+=(build/meson-logs/testlog.json)

# A suite with no test yet is not a failure (meson would only print "No
# suitable tests defined."); ask meson whether there is one instead of
# reading that message.
has_suite() {
    meson introspect --tests "$1" | python3 -c '
import json, sys
suite = sys.argv[1]
tests = json.load(sys.stdin)
sys.exit(0 if any(suite in t["suite"] or any(s.endswith(":" + suite) for s in t["suite"])
                  for t in tests) else 1)
' "$2"
}

if has_suite build-asan e2e; then
    echo "== meson test -C build-asan --suite e2e (ASan + UBSan)" >&2
    if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        meson test -C build-asan --print-errorlogs --suite e2e; then
        failed_runs=$((failed_runs + 1))
    fi
    logs+=(build-asan/meson-logs/testlog.json)
else
    echo "== build-asan: no test in suite e2e yet, nothing to run there" >&2
fi

echo "== meson test -C build-fuzz --suite fuzz (libFuzzer, fixed runs)" >&2
if ! meson test -C build-fuzz --print-errorlogs --suite fuzz; then
    failed_runs=$((failed_runs + 1))
fi
logs+=(build-fuzz/meson-logs/testlog.json)

# Count meson's results.  A run that failed without a failed test in its log
# (a build error during meson test, a crash of meson itself) still counts
# against the exit status.
summary_status=0
python3 - "$failed_runs" "${logs[@]}" <<'PY' || summary_status=$?
import json, os, sys

failed_runs = int(sys.argv[1])
passed = failed = skipped = 0
for path in sys.argv[2:]:
    if not os.path.exists(path):
        continue
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            result = json.loads(line).get("result")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:  # FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS, anything new
                failed += 1
line = f"tests: {passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
if failed_runs and not failed:
    print(f"test.sh: {failed_runs} meson test run(s) failed without a failed test in the log",
          file=sys.stderr)
if passed + failed == 0:
    print("test.sh: no test ran", file=sys.stderr)
print(line)
sys.exit(1 if failed or failed_runs or passed + failed == 0 else 0)
PY
exit "$summary_status"
