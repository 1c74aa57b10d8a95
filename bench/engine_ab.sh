#!/usr/bin/env bash
# engine_ab.sh - the engine at two git revisions, paced like JACK, in turns
# in one process: how a change to the engine moves the cost of a period, on
# a machine whose speed drifts more than that.
#
#   bench/engine_ab.sh [--burst] [--once] [--rate R] OLD_REV NEW_REV [ROUNDS]
#
# Without --burst: the mixer (bench/engine_ab.c), 32 voices of 16-bit
# samples, one-shots at rate 1, or with --rate R loops at rate R (the other
# path, for revisions with the `rate` key).  With --burst: the worst period
# (bench/engine_burst.c), a period's most untimed /play, /loop and /stop
# id on 256 voices (512 structs), and a full schedule of timed /play coming
# due in one period.  Runs three pairings: OLD against
# NEW, NEW against OLD (the same engines, their places swapped, to show any
# bias of the place), and OLD against itself (what "no difference" looks
# like here); --once runs the first only.  For revisions from "engine:
# 16-bit samples" on (SAMPLE_S16).  Builds with gcc -O3 in a temporary
# directory; prints numbers and never fails on timing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
core=bench/engine_ab_core.c driver=bench/engine_ab.c syms=(init period active) once= rate_def=()
while [ $# -gt 0 ]; do
    case $1 in
    --burst) core=bench/engine_burst_core.c driver=bench/engine_burst.c syms=(init push push_timed run active) ;;
    --once) once=1 ;;
    --rate) shift; rate_def=("-DAB_RATE=$1") ;;
    *) break ;;
    esac
    shift
done
[ $# -ge 2 ] || { echo "usage: $0 [--burst] [--once] [--rate R] OLD_REV NEW_REV [ROUNDS]" >&2; exit 2; }
old=$1 new=$2 rounds=${3:-}
tmp=$(mktemp -d /tmp/looperd-engine-ab.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
CFLAGS=(-O3 -std=c11 -D_GNU_SOURCE -Wall -Werror)

# side REV NAME: NAME.o exporting NAME_ plus each of ${syms[@]}.
side() {
    local src=$tmp/src-$2 obj=$tmp/obj-$2
    rm -rf "$src" "$obj"
    mkdir -p "$src" "$obj"
    git archive "$1" common daemon | tar -x -C "$src"
    # The engine's files, whatever the revision's layout: every engine*.c it
    # has, and the modules the engine calls (beat.c and midi.c from musical
    # time and MIDI input on).
    local f doors=-DAB_RINGS
    [ -e "$src/daemon/engine_doors.c" ] && doors=
    for f in "$src"/common/*.c "$src"/daemon/engine*.c "$src"/daemon/mixer*.c \
        "$src"/daemon/schedule.c "$src"/daemon/memlock.c "$src"/daemon/sample_alloc.c \
        "$src"/daemon/beat.c "$src"/daemon/midi.c; do
        [ -e "$f" ] || continue
        gcc "${CFLAGS[@]}" -I"$src/common" -I"$src/daemon" -c "$f" -o "$obj/$(basename "$f" .c).o"
    done
    gcc "${CFLAGS[@]}" "-DAB(x)=$2_##x" $doors ${rate_def[@]+"${rate_def[@]}"} -Ibench \
        -I"$src/common" -I"$src/daemon" -c "$core" -o "$obj/core.o"
    ld -r -o "$tmp/$2.o" "$obj"/*.o
    local keep=()
    for s in "${syms[@]}"; do keep+=(--keep-global-symbol="$2_$s"); done
    objcopy "${keep[@]}" "$tmp/$2.o"
}

run() { # OLD_REV NEW_REV LABEL
    side "$1" old
    side "$2" new
    gcc -O2 -std=c11 -D_GNU_SOURCE -Icommon -Idaemon "$driver" "$tmp/old.o" "$tmp/new.o" \
        -lm -lpthread -o "$tmp/ab"
    if [ "$driver" = bench/engine_burst.c ]; then
        echo "$3:"
        "$tmp/ab" $rounds
    else
        printf '%-34s ' "$3:"
        "$tmp/ab" ${rounds:-40}
    fi
}

run "$old" "$new" "old=$old new=$new"
[ -n "$once" ] && exit 0
run "$new" "$old" "swapped: old=$new new=$old"
run "$old" "$old" "the same engine on both sides"
