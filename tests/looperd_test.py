"""Helpers for looperd's end-to-end tests (Python 3.11, standard library only).

Pieces:

* ``JackServer``  - a private ``jackd -d dummy`` with a unique server name.
* ``Daemon``      - the real looperd binary, attached to such a server.
* ``OscClient``   - OSC 1.0 over UDP from one socket (replies come back to it).
* ``Recorder``    - the ``jack_record`` helper (tests/jack_record.c): records
                    JACK ports gap-checked into interleaved float32.
* ``encode_message`` / ``encode_bundle`` / ``decode_message`` /
  ``decode_packet`` - the OSC codec, for tests that send raw bytes.
* ``write_wav``, ``find_onset``, ``deinterleave``, ``free_udp_port``.

Every process started here is tracked and killed *by PID* (SIGTERM, then
SIGKILL) when its owner is closed, at interpreter exit, and - through
PR_SET_PDEATHSIG - when the test process dies.  SIGTERM sent to the test
process (meson's timeout) is turned into SystemExit so the cleanups run.
Nothing is ever killed by name.

Binary paths come from the environment (``LOOPERD_BIN``, ``JACK_RECORD_BIN``)
or from ``--looperd-bin=PATH`` / ``--jack-record-bin=PATH`` on the command
line (see ``binary_path``).  Temporary directories are removed on close unless
``LOOPERD_TEST_KEEP_TMP=1``.
"""

from __future__ import annotations

import atexit
import bisect
import glob
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import wave
from array import array

__all__ = [
    "JackServer", "Daemon", "OscClient", "Recorder", "ProcessError",
    "free_udp_port", "binary_path", "encode_message", "encode_bundle",
    "decode_message", "decode_packet", "timetag_from_unix", "timetag_in",
    "unix_from_timetag", "timetag_indices", "warnings_logged",
    "IMMEDIATELY", "write_wav", "find_onset", "deinterleave", "read_raw",
    "DaemonCase", "fixture_frames",
]


class ProcessError(RuntimeError):
    """A helper process failed to start or misbehaved; message has its log."""


# --------------------------------------------------------------------------
# process tracking

_procs_lock = threading.Lock()
_procs: dict[int, subprocess.Popen] = {}
_PARENT_PID = os.getpid()


def _terminate(proc: subprocess.Popen, grace: float = 3.0) -> int | None:
    """SIGTERM proc by PID, SIGKILL after `grace` seconds; reap it."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    with _procs_lock:
        _procs.pop(proc.pid, None)
    return proc.returncode


def _kill_all_tracked() -> None:
    with _procs_lock:
        procs = list(_procs.values())
    # Newest first: clients before the JACK server they use.
    for proc in reversed(procs):
        try:
            _terminate(proc)
        except Exception:  # pragma: no cover - best effort at exit
            pass


def _at_exit() -> None:
    _kill_all_tracked()
    _reclaim_dead_servers(mine_too=True)


atexit.register(_at_exit)


def _sigterm_to_exit(signum, frame):  # pragma: no cover - signal path
    raise SystemExit(128 + signum)


if (threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
    signal.signal(signal.SIGTERM, _sigterm_to_exit)


try:  # loaded here, not in the forked child (no imports after fork)
    import ctypes
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except Exception:  # pragma: no cover
    _prctl = None
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """Runs in the child before exec: die with the test process."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != _PARENT_PID:  # parent already gone
        os._exit(127)


def _spawn(argv, *, env=None, stdout=None, stderr=None, stdin=subprocess.DEVNULL):
    proc = subprocess.Popen([str(a) for a in argv], env=env, stdin=stdin,
                            stdout=stdout, stderr=stderr,
                            preexec_fn=_child_setup, close_fds=True)
    with _procs_lock:
        _procs[proc.pid] = proc
    return proc


def _keep_tmp() -> bool:
    return os.environ.get("LOOPERD_TEST_KEEP_TMP", "") not in ("", "0")


def _read_text(path) -> str:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _unique_suffix() -> str:
    return f"{os.getpid()}-{random.getrandbits(32):08x}"


def binary_path(env_var: str, argv_option: str | None = None,
                default: str | None = None) -> str:
    """Path of a built binary: $env_var, else --argv_option=PATH (or
    '--argv_option PATH') in sys.argv, else default.  Raises if none."""
    val = os.environ.get(env_var)
    if not val and argv_option:
        for i, a in enumerate(sys.argv):
            if a.startswith(argv_option + "="):
                val = a.split("=", 1)[1]
            elif a == argv_option and i + 1 < len(sys.argv):
                val = sys.argv[i + 1]
    val = val or default
    if not val:
        raise ProcessError(f"set {env_var}"
                           + (f" or pass {argv_option}=PATH" if argv_option else ""))
    return os.path.abspath(val)


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _wait_for_line(path, pattern: re.Pattern, proc: subprocess.Popen,
                   timeout: float) -> bool:
    """Poll file `path` until a line matches; False on timeout/exit."""
    deadline = time.monotonic() + timeout
    while True:
        text = _read_text(path)
        if any(pattern.search(line) for line in text.splitlines()):
            return True
        if proc.poll() is not None:
            # One last look: the line may have been written just before exit.
            text = _read_text(path)
            return any(pattern.search(line) for line in text.splitlines())
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


# --------------------------------------------------------------------------
# JACK server

class JackServer:
    """A private dummy-driver jackd.  Use as a context manager.

    .name   server name (looperd-test-<pid>-<random>)
    .env    os.environ copy with JACK_DEFAULT_SERVER=name (and
            JACK_NO_START_SERVER=1, JACK_NO_AUDIO_RESERVATION=1)
    .rate, .period, .log_path, .log()
    extra_args go to jackd, driver_args to the dummy driver (e.g. -P 6:
    six playback ports).
    """

    def __init__(self, rate: int = 48000, period: int = 256,
                 extra_args: list[str] | None = None, timeout: float = 10.0,
                 jackd: str = "jackd", name: str | None = None,
                 driver_args: list[str] | None = None):
        self.rate = rate
        self.period = period
        # A given name restarts "the same" server (tests of JACK restarts).
        self.name = name or f"looperd-test-{_unique_suffix()}"
        self.tmpdir = tempfile.mkdtemp(prefix="looperd-jack-")
        self.log_path = os.path.join(self.tmpdir, "jackd.log")
        self.env = dict(os.environ)
        self.env["JACK_DEFAULT_SERVER"] = self.name
        self.env["JACK_NO_START_SERVER"] = "1"
        self.env["JACK_NO_AUDIO_RESERVATION"] = "1"
        self.proc: subprocess.Popen | None = None
        self._log_cache = ""
        argv = [jackd, "-n", self.name, *(extra_args or []),
                "-d", "dummy", "-r", str(rate), "-p", str(period),
                *(driver_args or [])]
        try:
            with open(self.log_path, "wb") as log:
                self.proc = _spawn(argv, env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT)
            self._wait_ready(timeout)
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ProcessError(
                    f"jackd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                out = subprocess.run(["jack_lsp"], env=self.env,
                                     capture_output=True, text=True,
                                     timeout=max(1.0, deadline - time.monotonic())
                                     ).stdout
            except subprocess.TimeoutExpired:
                out = ""
            if "system:" in out:
                return
            if time.monotonic() >= deadline:
                raise ProcessError(f"jackd '{self.name}' not ready after "
                                   f"{timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return _read_text(self.log_path) or self._log_cache

    def ports(self, *args: str) -> list[str]:
        """jack_lsp [args] output lines (port names unless args say more)."""
        r = subprocess.run(["jack_lsp", *args], env=self.env,
                           capture_output=True, text=True, timeout=10)
        return [line for line in r.stdout.splitlines() if line.strip()]

    def connections(self, port: str) -> list[str]:
        """Ports connected to `port` (parsed from jack_lsp -c)."""
        out, cur = [], None
        for line in self.ports("-c"):
            if line.startswith((" ", "\t")):
                if cur == port:
                    out.append(line.strip())
            else:
                cur = line.strip()
        return out

    def connect(self, src: str, dst: str) -> None:
        subprocess.run(["jack_connect", src, dst], env=self.env, check=True,
                       capture_output=True, timeout=10)

    def close(self) -> int | None:
        rc = None
        if self.proc is not None:
            rc = _terminate(self.proc)
            # Semaphores/sockets that clients dying with the server can leave
            # behind; the name is unique to this object, so they are ours.
            for leftover in (glob.glob(f"/dev/shm/jack_sem.*_{self.name}_*")
                             + glob.glob(f"/dev/shm/jack_{self.name}_*")):
                try:
                    os.unlink(leftover)
                except OSError:
                    pass
        if os.path.isdir(self.tmpdir):
            self._log_cache = _read_text(self.log_path)
            if not _keep_tmp():
                shutil.rmtree(self.tmpdir, ignore_errors=True)
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# A jackd that dies without unregistering (SIGKILL, a crash) keeps its entry
# in JACK2's server registry (/dev/shm/jack-shm-registry, 8 entries per
# machine), and only a server registering under the same name reclaims it.
# Test servers have unique names, so a few kills would soon make every new
# jackd fail with "Too many servers already active".  The registry's layout
# is jack2's shm.h: a 24-byte header, then 8 x {pid_t pid; char name[257]}
# padded to 264 bytes, each name "jack-UID:SERVER:".  Entries of our own
# servers whose jackd is gone are reclaimed by starting a jackd of that name
# and stopping it cleanly - once the test process that named it (its pid is
# in the name) has ended, so a server a test killed to restart it under the
# same name is never raced; at exit, this process's own too.
_REGISTRY = "/dev/shm/jack-shm-registry"
_SERVERS, _SERVER_BYTES, _HEADER_BYTES = 8, 264, 24
_OUR_NAME = re.compile(r"^looperd-test-(\d+)-[0-9a-f]{8}$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _dead_registry_entries() -> list[str]:
    """Names of our test servers registered by a jackd that is gone."""
    try:
        with open(_REGISTRY, "rb") as f:
            data = f.read(_HEADER_BYTES + _SERVERS * _SERVER_BYTES)
    except OSError:
        return []
    if len(data) < _HEADER_BYTES + _SERVERS * _SERVER_BYTES:
        return []
    if struct.unpack_from("<i", data, 16)[0] != _HEADER_BYTES + _SERVERS * _SERVER_BYTES:
        return []  # not the layout this was written for: leave it alone
    prefix = f"jack-{os.getuid()}:"
    names = []
    for k in range(_SERVERS):
        off = _HEADER_BYTES + k * _SERVER_BYTES
        pid = struct.unpack_from("<i", data, off)[0]
        raw = data[off + 4:off + _SERVER_BYTES].split(b"\0", 1)[0].decode("ascii", "replace")
        if pid <= 0 or not raw.startswith(prefix) or not raw.endswith(":"):
            continue
        if not _pid_alive(pid):
            names.append(raw[len(prefix):-1])
    return names


def _reclaim_dead_servers(mine_too: bool = False) -> None:
    for name in _dead_registry_entries():
        m = _OUR_NAME.match(name)
        if not m:
            continue
        creator = int(m.group(1))
        if creator == os.getpid() and not mine_too:
            continue
        if creator != os.getpid() and _pid_alive(creator):
            continue
        try:
            JackServer(name=name).close()
        except Exception:  # pragma: no cover - best effort
            pass


_reclaim_dead_servers()


# --------------------------------------------------------------------------
# looperd

_READY_RE = re.compile(r"(?:^|:\s|^<\d>)ready\b")  # <N>: journald prefix


class Daemon:
    """The real looperd, started with --no-connect --port P --name NAME
    (connect=True: without --no-connect).

    .port, .name, .proc, .log_path; .stop() -> exit code; .log() -> stderr.
    Context manager: stops (by PID) on exit.
    """

    def __init__(self, jack: JackServer, binary: str | None = None,
                 port: int | None = None, extra_args: list[str] = (),
                 name: str | None = None, wrapper: list[str] = (),
                 ready_timeout: float = 10.0, stop_timeout: float = 10.0,
                 connect: bool = False):
        self.jack = jack
        self.binary = binary or binary_path("LOOPERD_BIN", "--looperd-bin")
        self.port = port if port is not None else free_udp_port()
        self.name = name or f"looperd-{random.getrandbits(32):08x}"
        self.stop_timeout = stop_timeout
        self.tmpdir = tempfile.mkdtemp(prefix="looperd-daemon-")
        self.log_path = os.path.join(self.tmpdir, "looperd.stderr")
        self.stdout_path = os.path.join(self.tmpdir, "looperd.stdout")
        self.returncode: int | None = None
        self._log_cache = ""
        self.argv = [*wrapper, self.binary, *([] if connect else ["--no-connect"]),
                     "--port", str(self.port), "--name", self.name,
                     *extra_args]
        self.proc: subprocess.Popen | None = None
        try:
            with open(self.log_path, "wb") as err, \
                    open(self.stdout_path, "wb") as out:
                self.proc = _spawn(self.argv, env=jack.env, stdout=out,
                                   stderr=err)
            if not _wait_for_line(self.log_path, _READY_RE, self.proc,
                                  ready_timeout):
                state = ("exited with %s" % self.proc.returncode
                         if self.proc.poll() is not None
                         else f"not ready after {ready_timeout} s")
                raise ProcessError(f"looperd {state}: {' '.join(self.argv)}\n"
                                   f"--- stderr ---\n{self.log()}")
        except BaseException:
            self.close()
            raise

    @property
    def outputs(self) -> list[str]:
        return [f"{self.name}:out_1", f"{self.name}:out_2"]

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> int:
        """Send `sig` by PID, wait up to `timeout` (default 10 s); on timeout
        SIGKILL (the return code is then -9).  Returns the exit code."""
        if self.proc is None:
            return self.returncode
        timeout = self.stop_timeout if timeout is None else timeout
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _terminate(self.proc, grace=0)
        with _procs_lock:
            _procs.pop(self.proc.pid, None)
        self.returncode = self.proc.returncode
        return self.returncode

    def log(self) -> str:
        return _read_text(self.log_path) or self._log_cache

    def close(self) -> None:
        if self.proc is not None:
            _terminate(self.proc)
            self.returncode = self.proc.returncode
        if os.path.isdir(self.tmpdir):
            self._log_cache = _read_text(self.log_path)
            if not _keep_tmp():
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# --------------------------------------------------------------------------
# OSC 1.0 codec

IMMEDIATELY = 1

# Linux socket options Python's socket module does not name
# (asm-generic/socket.h).
SO_RCVBUFFORCE = 33
SO_RXQ_OVFL = 40

_NTP_EPOCH_OFFSET = 2208988800  # 1900-01-01 -> 1970-01-01


def timetag_from_unix(t: float) -> int:
    """NTP 64-bit timetag for Unix time t."""
    secs = math.floor(t)
    frac = int((t - secs) * (1 << 32)) & 0xFFFFFFFF
    return ((secs + _NTP_EPOCH_OFFSET) << 32) | frac


def unix_from_timetag(tag: int) -> float:
    """Unix time of an NTP 64-bit timetag."""
    return (tag >> 32) - _NTP_EPOCH_OFFSET + (tag & 0xFFFFFFFF) / (1 << 32)


def timetag_in(seconds: float) -> int:
    """Timetag `seconds` from now."""
    return timetag_from_unix(time.time() + seconds)


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (4 - len(b) % 4)        # always at least one NUL


def _pad_blob(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _osc_string(s: str | bytes) -> bytes:
    if isinstance(s, str):
        s = s.encode("utf-8")
    return _pad(s)


def _encode_arg(arg, tags: list[str], data: list[bytes]) -> None:
    if isinstance(arg, tuple):               # explicit type: ('h', 5) ...
        if not arg or not isinstance(arg[0], str) or len(arg[0]) != 1:
            raise TypeError(f"typed argument must be ('t', value): {arg!r}")
        t = arg[0]
        v = arg[1] if len(arg) > 1 else None
        if t in "TFNI":
            tags.append(t)
        elif t == "i":
            tags.append(t); data.append(struct.pack(">i", v))
        elif t == "h":
            tags.append(t); data.append(struct.pack(">q", v))
        elif t == "t":
            tags.append(t); data.append(struct.pack(">Q", v))
        elif t == "f":
            tags.append(t); data.append(struct.pack(">f", v))
        elif t == "d":
            tags.append(t); data.append(struct.pack(">d", v))
        elif t in "sS":
            tags.append(t); data.append(_osc_string(v))
        elif t == "b":
            v = bytes(v)
            tags.append(t); data.append(struct.pack(">i", len(v)) + _pad_blob(v))
        elif t == "c":
            tags.append(t); data.append(struct.pack(">I", ord(v) if isinstance(v, str) else v))
        elif t in "rm":
            tags.append(t)
            data.append(struct.pack(">I", v) if isinstance(v, int) else bytes(v)[:4].ljust(4, b"\0"))
        else:
            raise TypeError(f"unsupported OSC type tag {t!r}")
    elif arg is True:
        tags.append("T")
    elif arg is False:
        tags.append("F")
    elif arg is None:
        tags.append("N")
    elif isinstance(arg, int):
        if -2**31 <= arg < 2**31:
            tags.append("i"); data.append(struct.pack(">i", arg))
        else:
            tags.append("h"); data.append(struct.pack(">q", arg))
    elif isinstance(arg, float):
        tags.append("f"); data.append(struct.pack(">f", arg))
    elif isinstance(arg, str):
        tags.append("s"); data.append(_osc_string(arg))
    elif isinstance(arg, (bytes, bytearray, memoryview)):
        b = bytes(arg)
        tags.append("b"); data.append(struct.pack(">i", len(b)) + _pad_blob(b))
    elif isinstance(arg, list):
        tags.append("[")
        for a in arg:
            _encode_arg(a, tags, data)
        tags.append("]")
    else:
        raise TypeError(f"cannot encode {type(arg).__name__} as OSC: {arg!r}")


def encode_message(address: str | bytes, *args) -> bytes:
    """OSC 1.0 message.  int -> i (h if it does not fit 32 bits), float -> f,
    str -> s, bytes -> b, True/False/None -> T/F/N, list -> [..] array,
    ('h', 5) / ('d', 1.0) / ('i', x) / ('f', x) / ('s', x) / ('S', x) /
    ('b', x) / ('t', tt) / ('c', ch) / ('m', x) / ('r', x) / ('T',) /
    ('F',) / ('N',) / ('I',) force a type.  The address is not validated,
    so bad addresses can be sent on purpose."""
    tags: list[str] = []
    data: list[bytes] = []
    for a in args:
        _encode_arg(a, tags, data)
    return _osc_string(address) + _osc_string("," + "".join(tags)) + b"".join(data)


def encode_bundle(timetag: int, elements) -> bytes:
    """OSC bundle.  elements: (address, [args]) pairs, or bytes (an encoded
    message or bundle, for nesting)."""
    out = [b"#bundle\0", struct.pack(">Q", timetag)]
    for el in elements:
        if isinstance(el, (bytes, bytearray)):
            pkt = bytes(el)
        else:
            address, args = el
            pkt = encode_message(address, *args)
        out.append(struct.pack(">i", len(pkt)) + pkt)
    return b"".join(out)


class OSCDecodeError(ValueError):
    pass


def _read_string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.find(b"\0", pos)
    if end < 0:
        raise OSCDecodeError("unterminated string")
    s = data[pos:end].decode("utf-8", errors="surrogateescape")
    return s, (end + 4) & ~3


def _need(data: bytes, pos: int, n: int) -> None:
    if pos + n > len(data):
        raise OSCDecodeError("truncated argument")


def decode_message(data: bytes) -> tuple[str, list]:
    """(address, [args]) of one OSC message.  i/h/t/c -> int, f/d -> float,
    s/S -> str, b/m/r -> bytes, T/F -> True/False, N -> None, I -> math.inf,
    [..] -> list."""
    data = bytes(data)
    address, pos = _read_string(data, 0)
    if pos >= len(data):                     # no type tag string: old style
        return address, []
    if data[pos:pos + 1] != b",":
        raise OSCDecodeError("type tag string does not start with ','")
    tagstr, pos = _read_string(data, pos)
    args: list = []
    stack: list[list] = [args]
    for t in tagstr[1:]:
        cur = stack[-1]
        if t in "ic":
            _need(data, pos, 4); cur.append(struct.unpack_from(">i", data, pos)[0]); pos += 4
        elif t == "f":
            _need(data, pos, 4); cur.append(struct.unpack_from(">f", data, pos)[0]); pos += 4
        elif t in "ht":
            _need(data, pos, 8)
            cur.append(struct.unpack_from(">q" if t == "h" else ">Q", data, pos)[0]); pos += 8
        elif t == "d":
            _need(data, pos, 8); cur.append(struct.unpack_from(">d", data, pos)[0]); pos += 8
        elif t in "sS":
            s, pos = _read_string(data, pos); cur.append(s)
        elif t == "b":
            _need(data, pos, 4)
            n = struct.unpack_from(">i", data, pos)[0]; pos += 4
            if n < 0:
                raise OSCDecodeError("negative blob size")
            _need(data, pos, n)
            cur.append(data[pos:pos + n]); pos += (n + 3) & ~3
        elif t in "mr":
            _need(data, pos, 4); cur.append(data[pos:pos + 4]); pos += 4
        elif t == "T":
            cur.append(True)
        elif t == "F":
            cur.append(False)
        elif t == "N":
            cur.append(None)
        elif t == "I":
            cur.append(math.inf)
        elif t == "[":
            new: list = []
            cur.append(new); stack.append(new)
        elif t == "]":
            if len(stack) == 1:
                raise OSCDecodeError("unbalanced ']'")
            stack.pop()
        else:
            raise OSCDecodeError(f"unknown type tag {t!r}")
    if len(stack) != 1:
        raise OSCDecodeError("unbalanced '['")
    return address, args


def decode_packet(data: bytes) -> list[tuple[str, list]]:
    """All messages in a packet (bundles flattened, in order)."""
    data = bytes(data)
    if not data.startswith(b"#bundle\0"):
        return [decode_message(data)]
    if len(data) < 16:
        raise OSCDecodeError("truncated bundle")
    out = []
    pos = 16
    while pos < len(data):
        _need(data, pos, 4)
        n = struct.unpack_from(">i", data, pos)[0]; pos += 4
        if n < 0:
            raise OSCDecodeError("negative bundle element size")
        _need(data, pos, n)
        out.extend(decode_packet(data[pos:pos + n])); pos += n
    return out


# --------------------------------------------------------------------------
# OSC client

# /status.reply's fields in their order (docs/protocol.md, "/status.reply").
STATUS_FIELDS = ("voices", "slots", "xruns", "late", "refused", "dsp_avg", "dsp_peak", "rate",
                 "period", "bytes", "state", "stolen", "lost", "tempo", "beat",
                 "library_banks", "library_samples", "library_loaded", "dirt_not_found",
                 "dirt_skipped", "midi_ignored")


def status_dict(args) -> dict:
    """A /status.reply's arguments by their documented names.  Fields appended
    after the documented ones are left out; a missing one is an error."""
    if len(args) < len(STATUS_FIELDS):
        raise ValueError(f"/status.reply has {len(args)} fields, {len(STATUS_FIELDS)} "
                         f"documented: {args!r}")
    return dict(zip(STATUS_FIELDS, args))


class OscClient:
    """Sends to host:port from one socket bound to 127.0.0.1:0 and receives
    the replies on it.  .last_from is the (host, port) of the last packet
    received; .local_port is the socket's own port."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.target = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Tests send hundreds of requests before reading the replies; the
        # default 208 KiB holds only a few hundred small datagrams, and a
        # reply the kernel drops here looks like one the daemon never sent.
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.local_port = self.sock.getsockname()[1]
        self.last_from: tuple[str, int] | None = None
        self._pending: list[tuple[str, list]] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def send(self, address: str, *args) -> None:
        self.send_raw(encode_message(address, *args))

    def send_bundle(self, timetag: int, elements) -> None:
        self.send_raw(encode_bundle(timetag, elements))

    def recv_raw(self, timeout: float = 2.0) -> bytes:
        """One datagram; raises TimeoutError."""
        self.sock.settimeout(max(timeout, 0.0) or 1e-6)
        data, self.last_from = self.sock.recvfrom(65536)
        return data

    def recv(self, timeout: float = 2.0) -> tuple[str, list]:
        """Next message (address, [args]); raises TimeoutError."""
        if not self._pending:
            self._pending.extend(decode_packet(self.recv_raw(timeout)))
        return self._pending.pop(0)

    def try_recv(self, timeout: float = 0.2) -> tuple[str, list] | None:
        """Like recv, but None on timeout (to assert that nothing came)."""
        try:
            return self.recv(timeout)
        except TimeoutError:
            return None

    def drain(self) -> list[tuple[str, list]]:
        """Everything already received, without waiting."""
        out = list(self._pending)
        self._pending.clear()
        while (m := self.try_recv(0)) is not None:
            out.append(m)
        return out

    def request(self, address: str, *args, expect=None,
                timeout: float = 2.0) -> tuple[str, list]:
        """Send, return the first reply (whose address is `expect`, a str or a
        tuple of str, if given; others are skipped).  Raises TimeoutError."""
        if isinstance(expect, str):
            expect = (expect,)
        self.send(address, *args)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                msg = self.recv(left)
            except TimeoutError:
                raise TimeoutError(
                    f"no reply to {address} {list(args)!r} within {timeout} s"
                    + (f" (expected {' or '.join(expect)})" if expect else "")
                ) from None
            if expect is None or msg[0] in expect:
                return msg

    def status(self, timeout: float = 2.0) -> dict:
        """/status, its reply by field name (status_dict)."""
        return status_dict(self.request("/status", expect="/status.reply", timeout=timeout)[1])

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# --------------------------------------------------------------------------
# recorder

def read_raw(path) -> array:
    """Raw little-endian float32 file -> array('f')."""
    a = array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder == "big":
        a.byteswap()
    return a


# A recording the machine disturbed (a gap or an xrun: the dummy backend
# skips cycles now and then on a busy VM, idle clients too) cannot be
# compared sample by sample, so the tests take it again, up to TAKES times,
# and assert on the last take whatever it holds.  A machine's noisy stretches
# can last from seconds to a minute or more, so a new take waits until the storm
# has passed: until the daemon's xrun count has stood still for QUIET_S,
# for at most STORM_WAIT_S: takes back to back would all land in one
# stretch.  On a quiet machine none of this waits.
TAKES = 5
QUIET_S = 2.0
STORM_WAIT_S = 30.0


def pause_before_retake(disturbed: int, port: int | None = None, client=None) -> None:
    """Call after the `disturbed`-th disturbed take (1, 2, ...), with the
    daemon's OSC port: waits a little, then until its /status xrun count
    has not moved for QUIET_S (a client of its own, so no reply the test
    waits for is taken).  `client`, if given, makes that client instead: a
    daemon that serves only some addresses (--allow, --listen ::1) must be
    asked from one of them."""
    time.sleep(min(0.4 * disturbed, 1.5))
    if port is None and client is None:
        return
    with (client() if client else OscClient(port)) as osc:
        deadline = time.monotonic() + STORM_WAIT_S
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            xruns = osc.status(timeout=5)["xruns"]
            now = time.monotonic()
            if xruns != last:
                last, since = xruns, now
            elif now - since >= QUIET_S:
                return
            time.sleep(0.25)


# Where a disturbance spoils a recording.  A gap is a jump in JACK's frame
# clock (the dummy driver woke late): every client still ran every cycle,
# so the sound on either side is whole, but an xrun may mean a client
# overran and the recorder copied a stale or half-written period.  So the
# periods around either are suspect, NEAR_S each side, and an xrun is noted
# only when its notification arrives, up to XRUN_LAG_S after its cycle.  A
# test that compares content only (not when it sounds against JACK's clock)
# needs just the frames it compares to be clean: in a noisy stretch of a
# busy VM a second-long recording often has a gap somewhere, while the
# sounding part of it is a fraction of that.
NEAR_S = 0.02
XRUN_LAG_S = 0.1


def disturbed_in(meta, start: int, end: int) -> str | None:
    """Why the recording's frames [start, end) cannot be trusted (a gap or
    an xrun on or near them, or more of them than jack_record placed), or
    None when they can."""
    near, lag = round(NEAR_S * meta["rate"]), round(XRUN_LAG_S * meta["rate"])
    why = []
    for kind, count, marks, after in (("gap", meta["gaps"], meta["gap_at"], near),
                                      ("xrun", meta["xruns"], meta["xrun_at"], near + lag)):
        if count > len(marks):
            why.append(f"{count} {kind}s, only {len(marks)} placed")
            continue
        hits = [i for i in marks if start - near <= i < end + after]
        if hits:
            why.append(f"{kind} at {', '.join(map(str, hits))}")
    return "; ".join(why) or None


def sounding_span(left, right) -> tuple[int, int] | None:
    """(first, last + 1) of the frames where either channel is not silent,
    or None for a silent recording."""
    loud = [i for i, (a, b) in enumerate(zip(left, right)) if a != 0.0 or b != 0.0]
    return (loud[0], loud[-1] + 1) if loud else None


def sound_judge(left, right, meta, _):
    """record_takes()'s judge: a take is spoilt by a gap or xrun near where
    it sounds."""
    span = sounding_span(left, right)
    return disturbed_in(meta, *span) if span else None


def sound_disturbed(left, right, meta) -> str | None:
    """disturbed_in() over the sounding part of the recording: the test for
    content-only comparisons (a silent stretch stays silent whatever a
    disturbance does to it, but a trigger it delays moves the sound, which
    is then judged where it lands)."""
    span = sounding_span(left, right)
    return disturbed_in(meta, *span) if span else None


def warnings_logged(daemon, text: str, want: int, like: str | None = None,
                    timeout: float = 6.0):
    """(written, suppressed, log): how many warning lines starting `text`
    the daemon's log holds, and how many its rate limit left out ("suppressed
    N similar lines like: " `like`, default `text`), once they add up to
    `want` or after `timeout` s."""
    pat = re.compile(r"^looperd: warning: " + re.escape(text), re.M)
    sup = re.compile(r"^looperd: warning: suppressed (\d+) similar lines? like: "
                     + re.escape(like or text), re.M)
    deadline = time.monotonic() + timeout
    while True:
        log = daemon.log()
        written, suppressed = len(pat.findall(log)), sum(int(x) for x in sup.findall(log))
        if written + suppressed >= want or time.monotonic() >= deadline:
            return written, suppressed, log
        time.sleep(0.1)


class CycleClock:
    """Wall-clock time (Unix seconds) -> a place in a log of JACK cycles, as
    jack_record (and bench_onsets) write it: [frame, usecs, next_usecs] per
    cycle from jack_get_cycle_times(), JACK's own frame <-> microsecond
    mapping, and CLOCK_REALTIME - jack_get_time() read at start and end
    (their mean is used; `drift_us` is end - start).  Wall time W is in the
    cycle k whose [usecs, next_usecs) holds W - offset, a fraction
    (W - offset - usecs_k) / (next_usecs_k - usecs_k) of the way in.

    Entries whose times do not move forward are left out (counted in
    `skipped`): a cycle whose times were unread ([frame, 0, 0]), and the
    one JACK2 logs at an xrun, its next_usecs (the DLL's next estimate)
    before its usecs, which would break the bisection."""

    def __init__(self, cycles, wall_minus_jack_us):
        self.at, self.cycles = [], []  # each kept entry and its place in the log
        for k, c in enumerate(cycles):
            if c[2] > c[1] and (not self.cycles or c[1] > self.cycles[-1][1]):
                self.at.append(k)
                self.cycles.append(c)
        assert self.cycles, "no usable cycle in the log"
        self.skipped = len(cycles) - len(self.cycles)
        self.off = (wall_minus_jack_us[0] + wall_minus_jack_us[1]) / 2
        self.drift_us = wall_minus_jack_us[1] - wall_minus_jack_us[0]
        self.usecs = [c[1] for c in self.cycles]

    def locate(self, wall):
        """(k, entry, fraction): the log's cycle holding `wall` (the last
        before it, past the end), and how far into it (may exceed 1)."""
        j = wall * 1e6 - self.off
        i = max(0, bisect.bisect_right(self.usecs, j) - 1)
        c = self.cycles[i]
        return self.at[i], c, (j - c[1]) / (c[2] - c[1])


def timetag_indices(meta, tags, period: int) -> list[float]:
    """The recording indices where JACK's clock, as the recorder logged it
    (meta's cycle log), puts each NTP timetag in `tags`: the frames looperd
    starts them on (it maps each through the cycle that plays it)."""
    clock = CycleClock(meta["cycles"], meta["wall_minus_jack_us"])
    at = []
    for tag in tags:
        k, _, x = clock.locate(unix_from_timetag(tag))
        at.append((k + x) * period)
    return at


class Recorder:
    """jack_record connected to `sources` (one or two port names, -> in_1,
    in_2).  Waits for 'ready'; .stop() -> (array('f') interleaved L,R, meta)
    where meta has rate, frames, channels, first_frame_time, gaps, xruns,
    gap_at, xrun_at (see disturbed_in)."""

    def __init__(self, jack: JackServer, sources, seconds: float = 30,
                 binary: str | None = None, name: str | None = None,
                 ready_timeout: float = 10.0):
        self.jack = jack
        self.binary = binary or binary_path("JACK_RECORD_BIN", "--jack-record-bin")
        self.name = name or f"rec-{random.getrandbits(32):08x}"
        self.tmpdir = tempfile.mkdtemp(prefix="looperd-rec-")
        self.out_path = os.path.join(self.tmpdir, "rec.f32")
        self.stdout_path = os.path.join(self.tmpdir, "stdout")
        self.stderr_path = os.path.join(self.tmpdir, "stderr")
        argv = [self.binary, "--name", self.name, "--out", self.out_path,
                "--seconds", repr(float(seconds))]
        for s in sources or ():
            argv += ["--connect", s]
        self.argv = argv
        self.proc = None
        try:
            with open(self.stdout_path, "wb") as out, \
                    open(self.stderr_path, "wb") as err:
                self.proc = _spawn(argv, env=jack.env, stdout=out, stderr=err)
            if not _wait_for_line(self.stdout_path, re.compile(r"^ready\b"),
                                  self.proc, ready_timeout):
                raise ProcessError(f"jack_record not ready "
                                   f"(rc={self.proc.poll()}): {' '.join(argv)}\n"
                                   f"{self.log()}")
        except BaseException:
            self.close()
            raise

    @property
    def inputs(self) -> list[str]:
        return [f"{self.name}:in_1", f"{self.name}:in_2"]

    def log(self) -> str:
        return _read_text(self.stderr_path)

    def stop(self, timeout: float = 10.0) -> tuple[array, dict]:
        try:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _terminate(self.proc, grace=0)
                raise ProcessError(f"jack_record did not exit:\n{self.log()}")
            with _procs_lock:
                _procs.pop(self.proc.pid, None)
            if rc != 0:
                raise ProcessError(f"jack_record exited {rc}:\n{self.log()}")
            with open(self.out_path + ".json", "r", encoding="utf-8") as f:
                meta = json.load(f)
            samples = read_raw(self.out_path)
            ch = meta.get("channels", 2)
            if len(samples) != meta["frames"] * ch:
                raise ProcessError(f"jack_record wrote {len(samples)} samples, "
                                   f"meta says {meta['frames']} frames")
            return samples, meta
        finally:
            self.close()

    def close(self) -> None:
        if self.proc is not None:
            _terminate(self.proc)
        if os.path.isdir(self.tmpdir) and not _keep_tmp():
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# --------------------------------------------------------------------------
# audio helpers


def take_recorder(jack: "JackServer", daemon: "Daemon", seconds: float,
                  what: str = "recorder") -> "Recorder":
    """A Recorder of the daemon's outputs, for use after the daemon
    reconnected to a restarted JACK server.  One whose process callback is
    never run is taken again, once, with a new client: libjack (jack2
    issue 721) skips a client's kRemoveClient notification that comes while
    that client is still inside jack_client_open(), so a client that came
    and went then (a jack_lsp polling the new server while looperd
    reconnects) leaves its synchro connected in looperd's table, and the
    next client to get its refnum is signalled on the old one and never
    runs.  The refnum after it is clean."""
    try:
        return Recorder(jack, daemon.outputs, seconds=seconds)
    except Exception as e:
        print(f"{what}: recorder taken again: {str(e)[:200]}", file=sys.stderr)
        first = e
    try:
        return Recorder(jack, daemon.outputs, seconds=seconds)
    except Exception as e:
        raise AssertionError(f"{what}: {first}\nthen {e}\n--- looperd ---\n"
                             f"{daemon.log()[-2000:]}\n--- jackd ---\n"
                             f"{jack.log()[-1500:]}") from None


def write_wav(path, frames, rate: int, channels: int, sampwidth: int = 2) -> None:
    """Write a PCM WAV from integer sample values.  `frames` is a flat
    interleaved sequence of ints, or a sequence of per-frame tuples/lists.
    sampwidth 1 takes signed values -128..127 (stored unsigned, as WAV
    wants), 2/3/4 take signed 16/24/32-bit values.  Out-of-range values
    raise OverflowError."""
    flat = []
    for f in frames:
        if isinstance(f, (tuple, list)):
            if len(f) != channels:
                raise ValueError(f"frame {f!r} does not have {channels} channels")
            flat.extend(f)
        else:
            flat.append(f)
    if len(flat) % channels:
        raise ValueError("sample count is not a multiple of channels")
    if sampwidth == 1:
        raw = array("B", (int(v) + 128 for v in flat)).tobytes()
    elif sampwidth == 2:
        a = array("h", (int(v) for v in flat))
        if sys.byteorder == "big":
            a.byteswap()
        raw = a.tobytes()
    elif sampwidth == 3:
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in flat)
    elif sampwidth == 4:
        a = array("i" if array("i").itemsize == 4 else "l", (int(v) for v in flat))
        if sys.byteorder == "big":
            a.byteswap()
        raw = a.tobytes()
    else:
        raise ValueError("sampwidth must be 1, 2, 3 or 4")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(sampwidth)
        w.setframerate(rate)
        w.writeframes(raw)


def fixture_frames(n: int, channels: int) -> list[int]:
    """n frames of distinct, non-zero 16-bit values, interleaved, so that a
    shifted, dropped or repeated frame shows in a sample-for-sample
    comparison."""
    out = []
    for i in range(n):
        for c in range(channels):
            v = ((i * 37 + c * 11000) % 30000) + 100
            out.append(v if (i + c) % 2 else -v)
    return out


def deinterleave(samples, channels: int = 2) -> list:
    """[channel0, channel1, ...] each an array/sequence of that channel."""
    return [samples[c::channels] for c in range(channels)]


def find_onset(samples, channel: int, threshold: float = 0,
               channels: int = 2) -> int | None:
    """Frame index of the first frame whose |sample| on `channel` exceeds
    `threshold` (0: first non-zero), in interleaved `samples`; None if none."""
    ch = samples[channel::channels]
    if threshold == 0:
        for i, v in enumerate(ch):
            if v:
                return i
        return None
    for i, v in enumerate(ch):
        if abs(v) > threshold:
            return i
    return None


# --------------------------------------------------------------------------
# a test class with its own server and daemon

class DaemonCase(unittest.TestCase):
    """One private jackd, one looperd (``daemon_args``) and one OscClient per
    test class, in ``cls.jack``, ``cls.daemon``, ``cls.osc``, with a temporary
    directory ``cls.tmp``.  tearDownClass asserts that the daemon exits 0 on
    SIGTERM: a clean shutdown, and under AddressSanitizer no leak report
    (which would make the status non-zero).  Each test starts with no
    replies pending."""

    rate = 48000
    period = 256
    daemon_args: tuple = ()

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="looperd-test-")
        cls.jack = JackServer(rate=cls.rate, period=cls.period)
        try:
            cls.daemon = Daemon(cls.jack, extra_args=list(cls.daemon_args))
        except BaseException:
            cls.jack.close()
            cls.tmp.cleanup()
            raise
        cls.osc = OscClient(cls.daemon.port)

    @classmethod
    def tearDownClass(cls):
        cls.osc.close()
        code = cls.daemon.stop()
        log = cls.daemon.log()
        cls.daemon.close()
        cls.jack.close()
        cls.tmp.cleanup()
        assert code == 0, f"looperd exited {code}:\n{log}"

    def setUp(self):
        self.osc.drain()

    def record_takes(self, action, seconds, judge, before_retake=None, sources=None):
        """Records `sources` (default: the daemon's first pair; room for
        `seconds`) while action()
        runs, up to TAKES times: while judge(left, right, meta, result)
        gives a reason the take cannot be judged (the machine disturbed what
        the test compares: disturbed_in), it is printed, before_retake() is
        called if given, and the take is made again after
        pause_before_retake().  Returns (left, right, meta, result, reason)
        of the last take; the caller asserts on it."""
        for attempt in range(1, TAKES + 1):
            rec = Recorder(self.jack, sources or self.daemon.outputs, seconds=seconds)
            try:
                result = action()
            finally:
                samples, meta = rec.stop()
            left, right = deinterleave(samples)
            why = judge(left, right, meta, result)
            if why is None:
                break
            print(f"\n  [{self.id().split('.')[-1]}] take {attempt} disturbed: {why}"
                  f" ({meta['gaps']} gaps, {meta['xruns']} xruns in all)", file=sys.stderr)
            if before_retake:
                before_retake()
            pause_before_retake(attempt, self.daemon.port)
        return left, right, meta, result, why
