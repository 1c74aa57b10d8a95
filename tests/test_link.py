"""Ableton Link through daemon/link.h: tests/link_probe peers and LinkHut.

Network rule: Link multicasts on every interface it finds, so every Link
peer here runs only inside a network namespace this test makes and removes:
``unshare -n`` with ``lo`` up (peers discover each other over lo alone), or
two ``ip netns`` joined by a veth pair with link-local addresses (two
"machines").  No Link peer ever runs in the machine's own namespace.  A
namespace that cannot be made fails the test with the reason (needs root).

Known Link behaviour the assertions respect: only the phase within the
quantum is shared (not the beat count); tempo travels as whole microseconds
per beat (133 arrives as 60e6 / round(60e6 / 133)).

Run with /usr/bin/python3; LINK_PROBE_BIN names the probe binary.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import JackServer, _spawn  # noqa: E402
from looperd_test import _terminate as _terminate_pid  # noqa: E402


def _terminate(proc: subprocess.Popen) -> None:
    """Stop proc by PID (SIGTERM, then SIGKILL) and close its pipes."""
    _terminate_pid(proc)
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            f.close()

PROBE = os.environ.get("LINK_PROBE_BIN", "")
WAIT = 10.0        # bound on every wait for the network (seconds)
POLL = 0.05


def wire_tempo(bpm: float) -> float:
    """The tempo a peer receives: Link sends whole microseconds per beat."""
    return 60e6 / round(60e6 / bpm)


def phase_gap(a: float, b: float, quantum: float) -> float:
    d = abs(a - b) % quantum
    return min(d, quantum - d)


def run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}): "
                             f"{r.stderr.strip()}")


class LineReader:
    """Bounded line reads from a child's stdout (a pipe)."""

    def __init__(self, proc: subprocess.Popen, name: str):
        self.proc, self.name, self.buf = proc, name, b""

    def chunk(self, timeout: float) -> bytes:
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            return b""
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            raise AssertionError(f"{self.name} closed its output "
                                 f"(exit {self.proc.poll()})")
        return data

    def line(self, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no line in {timeout} s")
            self.buf += self.chunk(left)
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()


class Probe:
    """tests/link_probe, started through PREFIX (nsenter / ip netns exec)."""

    def __init__(self, prefix: list[str], bpm: float, name: str):
        self.name = name
        self.proc = _spawn([*prefix, PROBE, str(bpm)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = LineReader(self.proc, name)
        first = json.loads(self.out.line())
        assert first.get("ready"), first

    def ask(self, line: str) -> dict:
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        reply = json.loads(self.out.line())
        if "error" in reply:
            raise AssertionError(f"{self.name}: {line!r} -> {reply}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask("quit")
                self.proc.wait(timeout=3)
            except Exception:
                pass
        _terminate(self.proc)


class LoNamespace:
    """A network namespace with only lo (up), held by a sleeping process."""

    def __init__(self):
        self.holder = _spawn(["unshare", "-n", "sh", "-c",
                              "ip link set lo up && echo up && exec sleep 600"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            LineReader(self.holder, "unshare -n").line(WAIT)
        except AssertionError:
            err = self.holder.stderr.read().decode() if self.holder.poll() is not None else ""
            _terminate(self.holder)
            raise AssertionError(f"cannot make a network namespace (unshare -n, "
                                 f"needs root or CAP_SYS_ADMIN): {err.strip()}")
        self.prefix = ["nsenter", "-t", str(self.holder.pid), "-n", "--"]

    def close(self) -> None:
        _terminate(self.holder)


class VethPair:
    """Two named namespaces joined by a veth pair, 169.254.x.y/16 each."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}"
        self.ns = [f"lkt{tag}a", f"lkt{tag}b"]
        self.made: list[str] = []
        dev = [f"lkv{tag}a", f"lkv{tag}b"]
        addr = ["169.254.77.1/16", "169.254.77.2/16"]
        try:
            for ns in self.ns:
                run(["ip", "netns", "add", ns])
                self.made.append(ns)
            run(["ip", "link", "add", dev[0], "netns", self.ns[0], "type", "veth",
                 "peer", "name", dev[1], "netns", self.ns[1]])
            for ns, d, a in zip(self.ns, dev, addr):
                # lo too: a looperd in there takes OSC on 127.0.0.1.
                run(["ip", "-n", ns, "link", "set", "lo", "up"])
                run(["ip", "-n", ns, "addr", "add", a, "dev", d])
                run(["ip", "-n", ns, "link", "set", d, "up"])
        except BaseException as e:
            self.close()
            raise AssertionError(f"cannot make the veth namespaces (needs root): {e}")
        self.prefixes = [["ip", "netns", "exec", ns] for ns in self.ns]

    def close(self) -> None:
        for ns in self.made:  # removing a namespace removes its veth end
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        self.made = []


def wait_for(what: str, cond, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(POLL)


def tempo_near(probe: Probe, bpm: float) -> float | None:
    t = probe.ask("tempo")["tempo"]
    return t if abs(t - bpm) < 1e-3 else None


class LinkCase(unittest.TestCase):
    def setUp(self):
        if not PROBE or not os.access(PROBE, os.X_OK):
            self.fail("LINK_PROBE_BIN does not name the link_probe binary")
        self.cleanups: list = []

    def tearDown(self):
        for c in reversed(self.cleanups):
            c.close()

    def keep(self, obj):
        self.cleanups.append(obj)
        return obj

    def check_pair(self, a: Probe, b: Probe) -> None:
        wait_for("both probes see a peer",
                 lambda: a.ask("peers")["peers"] >= 1 and b.ask("peers")["peers"] >= 1)
        # Proposed after joining, so it is not replaced by the session's.
        a.ask("tempo 133")
        expect = wire_tempo(133)
        got = wait_for("133 BPM reaches the other probe",
                       lambda: tempo_near(b, 133))
        self.assertAlmostEqual(got, expect, delta=1e-9)
        # The same host time asked of both (one clock on one machine).
        for q in (4.0, 3.0):
            t = a.ask("clock")["clock"] + 100_000
            pa, pb = a.ask(f"beat {q} {t}"), b.ask(f"beat {q} {t}")
            one_ms = pa["tempo"] / 60.0 * 1e-3
            self.assertLess(phase_gap(pa["phase"], pb["phase"], q), one_ms,
                            f"quantum {q}: phases {pa['phase']} vs {pb['phase']}")
            # The next bar line is a phase-0 point for both.
            self.assertLess(abs(pa["next_bar_us"] - pb["next_bar_us"]), 1000)
        # An audio-side commit travels too.
        b.ask("audio_tempo 97")
        got = wait_for("97 BPM (audio commit) reaches the first probe",
                       lambda: tempo_near(a, 97))
        self.assertAlmostEqual(got, wire_tempo(97), delta=1e-9)

    def test_two_probes_one_namespace(self):
        ns = self.keep(LoNamespace())
        a = self.keep(Probe(ns.prefix, 120, "probe A"))
        b = self.keep(Probe(ns.prefix, 100, "probe B"))
        self.check_pair(a, b)

    def test_two_namespaces_veth(self):
        pair = self.keep(VethPair())
        a = self.keep(Probe(pair.prefixes[0], 120, "probe A (ns a)"))
        b = self.keep(Probe(pair.prefixes[1], 100, "probe B (ns b)"))
        self.check_pair(a, b)

    def test_linkhut_sees_probe(self):
        jack = self.keep(JackServer())
        ns = self.keep(LoNamespace())
        hut = self.keep(LinkHut(ns.prefix, jack.env))
        probe = self.keep(Probe(ns.prefix, 100, "probe"))
        wait_for("probe sees LinkHut", lambda: probe.ask("peers")["peers"] >= 1)
        wait_for("LinkHut sees the probe", lambda: hut.state()[1] >= 1)
        # A tempo from the probe shows in LinkHut ...
        probe.ask("tempo 133")
        wait_for("LinkHut shows 133", lambda: abs(hut.state()[2] - wire_tempo(133)) < 1e-3)
        # ... and LinkHut's 'e' (one BPM up) reaches the probe.
        hut.key(b"e")
        wait_for("probe gets LinkHut's 134",
                 lambda: abs(probe.ask("tempo")["tempo"] - 134) < 1e-3)
        hut.quit()


class LinkHut:
    """Debian's LinkHut (ableton-link-utils, a JACK client) through PREFIX,
    driven by its keys on stdin, read from its status line; enabled."""

    # Its status line, rewritten every 10 ms after a '\r':
    # enabled | num peers | quantum | start stop sync | tempo | beats | metro
    ROW = re.compile(rb"(yes|no)\s*\|\s*(\d+)\s*\|\s*[\d.]+\s*\|[^|]*\|\s*([\d.]+)\s*\|")

    def __init__(self, prefix: list[str], env: dict):
        self.proc = _spawn([*prefix, "LinkHut"], env={**env, "TERM": "dumb"},
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        self.reader = LineReader(self.proc, "LinkHut")
        try:
            wait_for("LinkHut running", lambda: self.state() is not None)
            self.key(b"a")  # LinkHut starts with Link off; 'a' enables it
            wait_for("LinkHut enabled", lambda: self.state()[0])
        except BaseException:
            self.close()
            raise

    def state(self) -> tuple[bool, int, float]:
        """(enabled, peers, tempo) from its latest status line."""
        deadline = time.monotonic() + 1.0
        data = b""
        while time.monotonic() < deadline:
            data += self.reader.chunk(0.1)
            rows = self.ROW.findall(data)
            if rows:
                on, peers, tempo = rows[-1]
                return on == b"yes", int(peers), float(tempo)
        raise AssertionError(f"no LinkHut status line: {data[-300:]!r}")

    def key(self, k: bytes) -> None:
        self.proc.stdin.write(k)
        self.proc.stdin.flush()

    def quit(self) -> None:
        self.key(b"q")
        self.proc.wait(timeout=WAIT)

    def close(self) -> None:
        _terminate(self.proc)


if __name__ == "__main__":
    unittest.main(verbosity=2)
