#!/usr/bin/env bash
# deps.sh - install the Debian 12 packages looperd needs to build and run;
# with --test also those the test suite needs (the real OSC clients it
# drives are big: a performer who only runs the daemon does not get them).
# Idempotent: when everything is installed it only asks dpkg and returns at
# once; otherwise it runs apt-get update + install (as root, or through sudo).
set -euo pipefail

# Every package the project needs, and why.  Keep this the only list.
PACKAGES=(
    build-essential     # gcc, make, libc headers
    pkg-config          # meson finds the libraries below through it
    meson               # build system
    ninja-build         # meson's backend
    python3             # test harness, demo-sample generator
    jackd2              # JACK server (dummy backend for run.sh and the e2e tests)
    libjack-jackd2-dev  # libjack: looperd is a JACK client
    liblo-dev           # liblo: OSC over UDP
    liblo-tools         # oscsend/oscdump: run.sh sends /load and /play with them
    libsndfile1-dev     # decoding WAV, AIFF, FLAC, Ogg Vorbis, Opus, MP3
    libsoxr-dev         # sample-rate conversion to the JACK rate
    libcmocka-dev       # unit-test framework (the meson build always has the tests)
    ableton-link-dev    # Ableton Link (header-only C++): tempo and phase shared with other apps (-Dlink)
    libasio-dev         # standalone Asio, the networking library Link's headers use
)
TEST_PACKAGES=(
    clang               # sanitizer and fuzz builds
    libclang-rt-14-dev  # clang's sanitizer/libFuzzer runtimes (clang 14 on Debian 12)
    systemd             # systemd-analyze, for the unit files' test
    iproute2            # ss, to check what the daemon listens on
    sox                 # makes the truncated-FLAC fixture of tests/test_protocol.py
    puredata-core       # Pd, run headless by tests/test_clients.py (a real client)
    supercollider-language  # sclang, run headless (Qt offscreen) by tests/test_clients.py
    python3-jack-client # the MIDI sender of tests/test_midi.py (run as /usr/bin/python3)
    ableton-link-utils  # LinkHut, a Link peer looperd does not control (tests/test_link.py runs
                        # every Link peer only inside network namespaces: unshare -n, ip netns)
)
if [ "${1:-}" = "--test" ]; then
    PACKAGES+=("${TEST_PACKAGES[@]}")
    # node and npm for the osc.js client test (tests/clients/node).  A node
    # from elsewhere (NodeSource bundles npm, and conflicts with Debian's
    # npm) is used as it is.
    command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
    command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
        *"ok installed"*) ;;
        *) missing+=("$pkg") ;;
    esac
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

echo "deps.sh: installing ${missing[*]}" >&2

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "deps.sh: missing packages (${missing[*]}), and not root and no sudo: install them as root" >&2
        exit 1
    fi
    SUDO=(sudo)
    # Without a terminal a password prompt cannot be answered: fail at once.
    if [ ! -t 0 ]; then
        SUDO+=(-n)
    fi
fi

# jackd2 asks whether to enable realtime limits; answer it beforehand.
echo "jackd2 jackd/tweak_rt_limits boolean false" | "${SUDO[@]}" debconf-set-selections

"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
