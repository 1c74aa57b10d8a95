#!/usr/bin/env python3
"""End to end for tools/looperctl: a real jackd (dummy backend), the real
looperd, and the looperctl binary run as a user would run it.  Checks the
exit status (0 success, 1 /fail, 2 usage or timeout), what it prints, and
that it sends relative load paths as absolute ones."""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (DaemonCase, Daemon, JackServer, binary_path,  # noqa: E402
                          free_udp_port, write_wav)

RATE = 48000
PERIOD = 256


def looperctl_bin() -> str:
    return binary_path("LOOPERCTL_BIN", "--looperctl-bin")


class LooperctlEndToEnd(DaemonCase):
    rate, period = RATE, PERIOD

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.wav = os.path.join(cls.tmp.name, "tone.wav")
        write_wav(cls.wav, [(1000, -1000)] * 4800, RATE, 2)

    def ctl(self, *args, port=None, timeout=20, cwd=None):
        port = self.daemon.port if port is None else port
        return subprocess.run([looperctl_bin(), "--port", str(port), *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, cwd=cwd)

    def assertExit(self, p, code):
        self.assertEqual(p.returncode, code,
                         f"stdout: {p.stdout!r}\nstderr: {p.stderr!r}")

    def test_ping(self):
        p = self.ctl("ping")
        self.assertExit(p, 0)
        self.assertRegex(p.stdout, r"^pong \(\d+\.\d+ ms\)$")

    def test_load_ok(self):
        p = self.ctl("load", 3, self.wav)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.strip(), "loaded slot 3: 4800 frames, 2 channels")

    def test_load_relative_path_is_made_absolute(self):
        # The daemon's cwd is not the tmp dir: only an absolute path works.
        p = self.ctl("load", 4, "./tone.wav", cwd=self.tmp.name)
        self.assertExit(p, 0)
        self.assertIn("loaded slot 4", p.stdout)

    def test_load_missing_file(self):
        p = self.ctl("load", 5, os.path.join(self.tmp.name, "missing.wav"))
        self.assertExit(p, 1)
        self.assertEqual(p.stderr.strip(), "looperctl: load failed: no such file")
        self.assertEqual(p.stdout, "")

    def test_play_bad_id(self):
        p = self.ctl("play", 99)
        self.assertExit(p, 1)
        self.assertIn("looperctl: play failed: id out of range", p.stderr)

    def test_play_and_stop_ok(self):
        self.assertExit(self.ctl("load", 6, self.wav), 0)
        p = self.ctl("play", 6, 0.5)
        self.assertExit(p, 0)
        self.assertEqual(p.stderr, "")
        self.assertExit(self.ctl("loop", 6), 0)
        self.assertExit(self.ctl("stop", 6), 0)
        self.assertExit(self.ctl("stop"), 0)
        self.assertExit(self.ctl("unload", 6), 0)

    def test_play_with_keys_set_and_get(self):
        self.assertExit(self.ctl("load", 7, self.wav), 0)
        p = self.ctl("play", 7, 0.5, "rate=1", "pan=0", "cut=3")
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.strip(), "slot 7: play sent (velocity 0.5, rate=1 pan=0 cut=3)")
        p = self.ctl("loop", 7, "gain=1")
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.strip(), "slot 7: loop sent (the slot's velocity, gain=1)")
        self.assertExit(self.ctl("stop", 7), 0)
        # set, then get prints the keys as set takes them.
        p = self.ctl("set", 7, "gain=0.5", "cut=-2", "velocity=0.25", "rate=-1.5")
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.strip(), "slot 7: defaults set")
        p = self.ctl("get", 7)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.strip(), "slot 7: velocity=0.25 rate=-1.5 gain=0.5 cut=-2")
        p = self.ctl("set", 7)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.strip(), "slot 7: defaults cleared")
        self.assertEqual(self.ctl("get", 7).stdout.strip(), "slot 7: no defaults")
        self.assertExit(self.ctl("unload", 7), 0)

    def test_bad_keys_exit_1_with_the_daemons_reason(self):
        for args, why in ((("play", 0, "pitch=2"), "play failed: unknown key"),
                          (("play", 0, 0.5, "rate=0"), "play failed: bad value for rate"),
                          (("loop", 0, "cut=1.5"), "loop failed: bad value for cut"),
                          (("set", 0, "out=1"), "set failed: bad value for out"),
                          (("set", 0, "begin=0.5", "end=0.25"),
                           "set failed: begin must be less than end"),
                          (("get", 99), "get failed: id out of range (0..31)")):
            with self.subTest(args=args):
                p = self.ctl(*args)
                self.assertExit(p, 1)
                self.assertEqual(p.stderr.strip(), "looperctl: " + why)
                self.assertEqual(p.stdout, "")
        self.assertEqual(self.ctl("get", 0).stdout.strip(), "slot 0: no defaults")

    def test_status_table(self):
        p = self.ctl("status")
        self.assertExit(p, 0)
        rows = {}
        for line in p.stdout.splitlines():
            label, _, value = line.partition("  ")
            rows[label.strip()] = value.strip()
        self.assertEqual(rows.get("sample rate"), "48000 Hz", p.stdout)
        self.assertTrue(rows.get("period", "").startswith("256 frames"), p.stdout)
        for label in ("voices playing", "slots loaded", "sample memory", "DSP load",
                      "xruns", "refused"):
            self.assertIn(label, rows, p.stdout)
        self.assertEqual(rows.get("lost events"), "0", p.stdout)
        self.assertRegex(rows.get("voices stolen", ""), r"^\d+$", p.stdout)
        # Aligned: every value starts in the same column.
        cols = {len(line) - len(line[16:].lstrip()) for line in p.stdout.splitlines()}
        self.assertEqual(cols, {17}, p.stdout)

    def test_tempo_and_beat(self):
        p = self.ctl("tempo", "150")
        self.assertExit(p, 0)
        p = self.ctl("beat")
        self.assertExit(p, 0)
        rows = {}
        for line in p.stdout.splitlines():
            label, _, value = line.partition("  ")
            rows[label.strip()] = value.strip()
        self.assertEqual(rows.get("tempo"), "150.00 BPM", p.stdout)
        self.assertRegex(rows.get("beat", ""), r"^\d+\.\d{3} \(bar \d+, beat [\d.]+ of 4\)$")
        self.assertEqual(rows.get("link peers"), "0 (Link off)", p.stdout)
        p = self.ctl("status")
        self.assertIn("150.00 BPM", p.stdout)
        p = self.ctl("tempo", "5")
        self.assertExit(p, 1)
        self.assertIn("tempo must be 20 to 999 BPM", p.stderr)
        self.assertExit(self.ctl("tempo", "120"), 0)

    def test_version(self):
        p = self.ctl("version")
        self.assertExit(p, 0)
        self.assertRegex(p.stdout.strip(), r"^looperd \d+\.\d+\.\d+")

    def test_timeout_exits_2(self):
        port = free_udp_port()  # nobody listens here
        t0 = time.monotonic()
        p = subprocess.run([looperctl_bin(), "--port", str(port), "--timeout", "0.5", "ping"],
                           capture_output=True, text=True, timeout=10)
        elapsed = time.monotonic() - t0
        self.assertExit(p, 2)
        self.assertIn("no answer", p.stderr)
        self.assertGreaterEqual(elapsed, 0.45)
        self.assertLess(elapsed, 2.0)

    def test_usage_errors_exit_2(self):
        for args in ([], ["frobnicate"], ["play"], ["play", "x"], ["load", "1"],
                     ["play", "1", "loud"], ["--timeout", "-1", "ping"], ["--port", "0", "ping"],
                     ["play", "1", "0.5", "rate"], ["play", "1", "rate=fast"],
                     ["play", "1", "=2"], ["set", "1", "gain="], ["set"], ["get"],
                     ["get", "1", "2"], ["set", "x", "gain=1"]):
            with self.subTest(args=args):
                p = subprocess.run([looperctl_bin(), *args], capture_output=True, text=True,
                                   timeout=10)
                self.assertExit(p, 2)
                self.assertTrue(p.stderr.startswith("looperctl: "), p.stderr)


class Quit(unittest.TestCase):
    def test_quit_makes_the_daemon_exit_0(self):
        with JackServer(rate=RATE, period=PERIOD) as jack, Daemon(jack) as daemon:
            p = subprocess.run([looperctl_bin(), "--port", str(daemon.port), "quit"],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("shutting down", p.stdout)
            try:
                code = daemon.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.fail("looperd still runs 10 s after quit")
            self.assertEqual(code, 0, daemon.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
