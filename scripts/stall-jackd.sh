#!/usr/bin/env bash
# stall-jackd.sh - stop the test suite's JACK servers now and then, to see
# how the tests take a machine that stalls (see docs/timing.md).
#
#   scripts/stall-jackd.sh [STALL_MS [MIN_S MAX_S]]    (defaults: 30 3 6)
#
# Every MIN_S..MAX_S seconds (at random) every `jackd -n looperd-test-*`
# (the servers tests/looperd_test.py starts; nothing else) is stopped with
# SIGSTOP for STALL_MS and continued: JACK then reports an xrun and often a
# gap, as when the dummy backend wakes late on a loaded machine.  Run it in
# the background next to `meson test -C build --suite e2e`; Ctrl-C or
# SIGTERM continues the servers and exits.  test_service's watchdog test
# stops jackd itself and fails while this runs.
set -euo pipefail

stall_ms=${1:-30}
min_s=${2:-3}
max_s=${3:-6}

servers() { pgrep -f '^jackd -n looperd-test-' || true; }
resume() { for p in $(servers); do kill -CONT "$p" 2>/dev/null || true; done; }
trap 'resume; exit 0' INT TERM
# A signal's trap runs only once the foreground command ends: sleep in the
# background and wait, which a signal interrupts at once.
nap() { sleep "$1" & wait $!; }

while :; do
    pids=$(servers)
    for p in $pids; do kill -STOP "$p" 2>/dev/null || true; done
    nap "$(awk -v ms="$stall_ms" 'BEGIN { print ms / 1000 }')"
    for p in $pids; do kill -CONT "$p" 2>/dev/null || true; done
    nap "$(awk -v a="$min_s" -v b="$max_s" 'BEGIN { srand(); print a + rand() * (b - a) }')"
done
