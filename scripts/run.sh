#!/usr/bin/env bash
# run.sh - install what is missing, build, and run looperd with a demo sample.
#
#   scripts/run.sh [LOOPERD_OPTION...]     e.g. scripts/run.sh --no-connect
#
# Starts a JACK server with the dummy backend when none answers (and stops
# exactly that one again on exit), starts build/daemon/looperd on UDP port
# ${LOOPERD_PORT:-9000}, loads build/demo.wav into slot 0 and plays it once.
# Ctrl-C (or SIGTERM) stops the daemon first, then the JACK server it started.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
port=${LOOPERD_PORT:-9000}

scripts/deps.sh
scripts/build.sh

demo=$root/build/demo.wav
if [ ! -s "$demo" ] || [ scripts/make-demo.py -nt "$demo" ]; then
    python3 scripts/make-demo.py "$demo"
fi

# Where to send the demo's /load and /play: follow --port/--listen if the
# caller gave them (the daemon takes the last one, so do we).
host=localhost
set -- --port "$port" "$@"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    a=${args[i]}
    next=${args[i + 1]:-}
    case "$a" in
        --port | -p) port=$next ;;
        --port=*) port=${a#--port=} ;;
        -p?*) port=${a#-p} ;;
        --listen | -l) host=$next ;;
        --listen=*) host=${a#--listen=} ;;
        -l?*) host=${a#-l} ;;
    esac
done
case "$host" in
    0.0.0.0 | :: | "") host=localhost ;;
esac

jackd_pid=
daemon_pid=
# Stops one child of ours by PID: SIGTERM, then SIGKILL after $2 tenths of a
# second, then reaps it.
# shellcheck disable=SC2317  # called from the traps below
stop_pid() {
    local pid=$1 tenths=$2
    kill -TERM "$pid" 2>/dev/null || true
    for ((t = 0; t < tenths; t++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "run.sh: PID $pid did not stop; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317
cleanup() {
    trap - INT TERM HUP EXIT
    if [ -n "$daemon_pid" ]; then
        stop_pid "$daemon_pid" 100
    fi
    if [ -n "$jackd_pid" ]; then
        stop_pid "$jackd_pid" 50
        echo "run.sh: stopped the JACK server it had started" >&2
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM HUP

# Never let a JACK client here start a server behind our back.
export JACK_NO_START_SERVER=1

if ! jack_lsp >/dev/null 2>&1; then
    echo "run.sh: no JACK server answers; starting jackd with the dummy backend (log: build/jackd.log)" >&2
    # setsid: its own process group, so a Ctrl-C in the terminal reaches the
    # daemon and this script but not jackd, which must outlive the daemon.
    JACK_NO_AUDIO_RESERVATION=1 setsid jackd -d dummy -r 48000 -p 256 \
        >build/jackd.log 2>&1 </dev/null &
    jackd_pid=$!
    for _ in $(seq 100); do
        jack_lsp >/dev/null 2>&1 && break
        if ! kill -0 "$jackd_pid" 2>/dev/null; then
            echo "run.sh: jackd exited; its log:" >&2
            cat build/jackd.log >&2
            jackd_pid=
            exit 1
        fi
        sleep 0.1
    done
    if ! jack_lsp >/dev/null 2>&1; then
        echo "run.sh: jackd does not answer after 10 s; see build/jackd.log" >&2
        exit 1
    fi
fi

# The daemon's log goes to the terminal and to build/looperd.log, which is
# watched for its "ready:" line.  tee ignores the signals that stop us and
# ends when the daemon closes its stderr, so the daemon's last lines still
# get through.
log=build/looperd.log
: >"$log"
build/daemon/looperd "$@" 2> >(trap '' INT TERM HUP; exec tee -a "$log" >&2) &
daemon_pid=$!

ready=
for _ in $(seq 200); do
    if grep -qE '(^|[ >])ready:' "$log"; then
        ready=1
        break
    fi
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.05
done

# /load is asynchronous and /play of a slot still empty is ignored, so the
# load is sent from a socket that waits for its /done (oscsend cannot
# receive replies); /play then goes out with oscsend like any user's would.
load_demo() {
    python3 - "$host" "$port" "$demo" <<'PY'
import socket, struct, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def pad(b):
    return b + b"\0" * (4 - len(b) % 4)
msg = pad(b"/load") + pad(b",is") + struct.pack(">i", 0) + pad(path.encode())
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(msg, (host, port))
try:
    reply = s.recv(8192)
except socket.timeout:
    sys.exit("run.sh: no reply to /load within 10 s")
if not reply.startswith(b"/done\0"):
    sys.exit("run.sh: /load failed: " + reply.replace(b"\0", b" ").decode(errors="replace").strip())
PY
}

if [ -n "$ready" ]; then
    if load_demo; then
        oscsend "$host" "$port" /play if 0 0.8 || echo "run.sh: oscsend failed (it speaks IPv4 only)" >&2
        echo "run.sh: build/demo.wav is loaded in slot 0; play it again with: oscsend $host $port /play i 0   (Ctrl-C stops)" >&2
    else
        echo "run.sh: looperd runs, but the demo sample is not loaded" >&2
    fi
elif kill -0 "$daemon_pid" 2>/dev/null; then
    echo "run.sh: looperd did not say it was ready within 10 s; not loading the demo" >&2
fi

status=0
wait "$daemon_pid" || status=$?
daemon_pid=
exit "$status"
