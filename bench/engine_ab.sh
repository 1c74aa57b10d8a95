#!/usr/bin/env bash
# engine_ab.sh - the engine at two git revisions, paced like JACK, in turns
# in one process (bench/engine_ab.c): how a change to the mixer moves the
# cost of a period, on a machine whose speed drifts more than that.
#
#   bench/engine_ab.sh OLD_REV NEW_REV [ROUNDS]
#
# Runs three pairings: OLD against NEW, NEW against OLD (the same engines,
# their places swapped, to show any bias of the place), and OLD against
# itself (what "no difference" looks like here).  For revisions from
# "engine: 16-bit samples" on (SAMPLE_S16).  Builds with gcc -O3 in a
# temporary directory; prints numbers and never fails on timing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -ge 2 ] || { echo "usage: $0 OLD_REV NEW_REV [ROUNDS]" >&2; exit 2; }
old=$1 new=$2 rounds=${3:-40}
tmp=$(mktemp -d /tmp/looperd-engine-ab.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
CFLAGS=(-O3 -std=c11 -D_GNU_SOURCE -Wall -Werror)

# side REV NAME: NAME.o exporting NAME_init, NAME_period, NAME_active.
side() {
    local src=$tmp/src-$2 obj=$tmp/obj-$2
    mkdir -p "$src" "$obj"
    git archive "$1" common daemon | tar -x -C "$src"
    for f in "$src"/common/*.c "$src"/daemon/engine.c "$src"/daemon/memlock.c; do
        gcc "${CFLAGS[@]}" -I"$src/common" -I"$src/daemon" -c "$f" -o "$obj/$(basename "$f" .c).o"
    done
    gcc "${CFLAGS[@]}" "-DAB(x)=$2_##x" -I"$src/common" -I"$src/daemon" \
        -c bench/engine_ab_core.c -o "$obj/core.o"
    ld -r -o "$tmp/$2.o" "$obj"/*.o
    objcopy --keep-global-symbol="$2_init" --keep-global-symbol="$2_period" \
        --keep-global-symbol="$2_active" "$tmp/$2.o"
}

run() { # OLD_REV NEW_REV LABEL
    side "$1" old
    side "$2" new
    gcc -O2 -std=c11 -D_GNU_SOURCE bench/engine_ab.c "$tmp/old.o" "$tmp/new.o" \
        -lm -lpthread -o "$tmp/ab"
    printf '%-34s ' "$3:"
    "$tmp/ab" "$rounds"
}

run "$old" "$new" "old=$old new=$new"
run "$new" "$old" "swapped: old=$new new=$old"
run "$old" "$old" "the same engine on both sides"
