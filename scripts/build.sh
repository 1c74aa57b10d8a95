#!/usr/bin/env bash
# build.sh - configure (only when needed) and compile looperd.
#
#   scripts/build.sh [MESON_OPTION...]      e.g. scripts/build.sh -Dbench=false
#
# -Dlink=enabled unless an option -Dlink=... is given.
# The build directory is `build` unless BUILD_DIR says otherwise (test.sh and
# bench.sh use build-asan and build-release).  A new directory is set up with
# the given options; an existing one is reconfigured only when an option
# given here differs from its current value, so repeated runs are fast.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=${BUILD_DIR:-build}

# The scripts build with Ableton Link (see README: the binary is then
# GPL-2.0-or-later) unless told -Dlink=... themselves.
case " $* " in
    *" -Dlink="*) ;;
    *) set -- -Dlink=enabled "$@" ;;
esac

# True when every -Dkey=value / --key=value argument already holds in $dir.
options_match() {
    [ "$#" -eq 0 ] && return 0
    meson introspect --buildoptions "$dir" 2>/dev/null | python3 -c '
import json, sys
current = {}
for o in json.load(sys.stdin):
    v = o["value"]
    if isinstance(v, bool):
        v = "true" if v else "false"
    elif isinstance(v, list):
        v = ",".join(str(x) for x in v)
    current[o["name"]] = str(v)
for arg in sys.argv[1:]:
    if arg.startswith("-D"):
        arg = arg[2:]
    elif arg.startswith("--") and "=" in arg:
        arg = arg[2:]
    else:
        sys.exit(1)  # not an option we can compare: reconfigure
    key, _, value = arg.partition("=")
    if value.lower() in ("true", "false"):
        value = value.lower()
    if current.get(key) != value:
        sys.exit(1)
' "$@"
}

if [ -f "$dir/meson-private/coredata.dat" ] && [ -f "$dir/build.ninja" ]; then
    if ! options_match "$@"; then
        # --reconfigure reads meson_options.txt again, so an option added
        # since this directory was set up (-Dlink) is known.
        meson setup --reconfigure "$dir" "$@"
    fi
elif [ -f "$dir/meson-private/coredata.dat" ]; then
    # A set-up that failed half way: start it again from scratch.
    meson setup --wipe "$dir" "$@"
else
    meson setup "$dir" "$@"
fi

meson compile -C "$dir"
