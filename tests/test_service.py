#!/usr/bin/env python3
"""Running as a service: systemd's notify protocol (we play systemd's part
with our own NOTIFY_SOCKET), the watchdog, surviving a JACK restart, banks
and SIGHUP, and clean exits on SIGINT/SIGTERM."""
import os
import re
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (Daemon, JackServer, OscClient, Recorder,  # noqa: E402
                          deinterleave, find_onset, write_wav)

RATE = 48000


def fixture(n):
    return [((i * 53) % 20000 + 500) * (1 if i % 2 else -1) for i in range(n)]


class Notify:
    """A NOTIFY_SOCKET like systemd's: a datagram socket we read."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []  # (monotonic time, {key: value})

    def read(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096).decode()
        except socket.timeout:
            return None
        fields = dict(line.split("=", 1) for line in data.split("\n") if "=" in line)
        self.messages.append((time.monotonic(), fields))
        return fields

    def wait_for(self, key, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.read(deadline - time.monotonic())
            if m and key in m:
                return m
        return None

    def close(self):
        self.sock.close()


class Service(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="looperd-svc-")
        self.jack = JackServer(rate=RATE)
        self.addCleanup(self.tmp.cleanup)
        self.addCleanup(lambda: self.jack.close())

    def wav(self, name, n=4000, channels=1, rate=RATE):
        path = os.path.join(self.tmp.name, name)
        data = fixture(n * channels)
        write_wav(path, data, rate, channels)
        return path, data

    def daemon(self, *args, env=()):
        d = Daemon(self.jack, extra_args=list(args),
                   wrapper=["env", *env] if env else ())
        self.addCleanup(d.close)
        osc = OscClient(d.port)
        self.addCleanup(osc.close)
        return d, osc

    def assert_plays(self, d, osc, slot, data, gain=1.0):
        rec = Recorder(self.jack, d.outputs, seconds=5)
        osc.send("/play", slot, 1.0)
        time.sleep(0.3)
        samples, meta = rec.stop()
        left, _ = deinterleave(samples)
        onset = find_onset(left, 0, channels=1)
        self.assertIsNotNone(onset, "nothing played")
        want = [v / 32768.0 * gain for v in data]
        self.assertEqual(list(left[onset:onset + len(data)]), want)

    def test_ready_only_when_served_and_watchdog_pings(self):
        notify = Notify(self.tmp.name)
        self.addCleanup(notify.close)
        big, _ = self.wav("big.wav", n=RATE * 20, channels=2)  # a bank that takes a while
        bank = os.path.join(self.tmp.name, "bank.txt")
        with open(bank, "w") as f:
            f.write(f"0 {big}\n")
        d, osc = self.daemon("--bank", bank, env=[f"NOTIFY_SOCKET={notify.path}",
                                                  "WATCHDOG_USEC=400000"])
        ready = notify.wait_for("READY")
        self.assertIsNotNone(ready, "no READY=1")
        # The moment READY=1 is out, the OSC service answers and the bank's
        # sample is in place.
        self.assertEqual(osc.request("/ping", timeout=1.0), ("/pong", []))
        status = osc.status()
        self.assertEqual(status["slots"], 1, "bank sample not loaded at READY")
        statuses = [m["STATUS"] for _, m in notify.messages if "STATUS" in m]
        self.assertTrue(any("Loading the bank" in s for s in statuses), statuses)
        # Watchdog: WATCHDOG=1 at about twice the rate asked for.
        t0 = time.monotonic()
        pings = 0
        while time.monotonic() - t0 < 1.5:
            m = notify.read(0.5)
            pings += bool(m and m.get("WATCHDOG") == "1")
        self.assertGreaterEqual(pings, 4, "too few watchdog pings")
        # A stuck audio thread stops them: freeze jackd (and so the audio
        # thread's periods) and the pings stop.
        os.kill(self.jack.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(0.5)  # pings already due may still come
            while notify.read(0.05):
                pass
            t0 = time.monotonic()
            stuck_pings = 0
            while time.monotonic() - t0 < 1.2:
                m = notify.read(0.3)
                stuck_pings += bool(m and m.get("WATCHDOG") == "1")
        finally:
            os.kill(self.jack.proc.pid, signal.SIGCONT)
        self.assertEqual(stuck_pings, 0, "watchdog pinged while the audio thread was stuck")
        self.assertEqual(d.stop(), 0)
        while notify.read(0.2):
            pass
        self.assertTrue(any("STOPPING" in m for _, m in notify.messages))

    def test_survives_a_jack_restart_without_reloading(self):
        path, data = self.wav("s.wav")
        d, osc = self.daemon()
        self.assertEqual(osc.request("/load", 0, path, expect=("/done", "/fail"))[0], "/done")
        # Connections made by hand (a patchbay) must come back with the server.
        self.jack.connect(d.outputs[0], "system:playback_2")
        self.jack.connect(d.outputs[1], "system:playback_1")
        time.sleep(1.3)  # looperd notes its connections once a second
        name = self.jack.name
        self.jack.proc.kill()  # by PID: the server dies hard
        self.jack.proc.wait()
        self.jack.close()
        time.sleep(1.0)
        self.assertEqual(osc.request("/ping"), ("/pong", []))
        self.assertEqual(osc.status()["state"], "jack-gone")
        self.assertEqual(osc.request("/play", 0, expect="/fail"),
                         ("/fail", ["/play", "JACK server is gone; reconnecting", 0]))
        self.jack = JackServer(rate=RATE, name=name)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            if osc.status()["state"] == "running":
                break
            time.sleep(0.05)
        self.assertLess(time.monotonic() - t0, 2.0, "not back within two seconds")
        self.assertEqual(d.outputs[0] in self.jack.ports(), True)
        self.assertEqual(self.jack.connections(d.outputs[0]), ["system:playback_2"])
        self.assertEqual(self.jack.connections(d.outputs[1]), ["system:playback_1"])
        self.assert_plays(d, osc, 0, data)  # the sample loaded before, no reload
        self.assertNotIn("loaded 0", d.log().split("went away")[1])
        self.assertEqual(d.stop(), 0)

    def test_bank_loads_reports_bad_lines_and_reloads_on_sighup(self):
        a, da = self.wav("a.wav", n=3000)
        b, db = self.wav("b.wav", n=2000)
        bank = os.path.join(self.tmp.name, "bank.txt")
        with open(bank, "w") as f:
            f.write("# drums\n"
                    "0 a.wav 0.5\n"          # relative to the bank's directory
                    f"1 {b}\n"
                    "2 missing.wav\n"         # line 4: no such file
                    "99 a.wav\n"              # line 5: id out of range
                    "3 a.wav loud\n")         # line 6: bad gain
        d, osc = self.daemon("--bank", bank)
        log = d.log()
        self.assertIn("bank.txt:4:", log)
        self.assertIn("bank.txt:5:", log)
        self.assertIn("bank.txt:6:", log)
        self.assertEqual(osc.status()["slots"], 2)
        self.assert_plays(d, osc, 0, da, gain=0.5)
        self.assert_plays(d, osc, 1, db)
        # Change slot 1 only, drop slot 0: SIGHUP loads slot 1 again and
        # empties slot 0, and nothing else.
        with open(bank, "w") as f:
            f.write(f"1 {a}\n")
        os.kill(d.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and d.log().count("loaded 1 ") < 2:
            time.sleep(0.05)
        self.assertIn("1 slot to load, 1 to empty", d.log())
        time.sleep(0.2)
        self.assertEqual(osc.status()["slots"], 1)
        self.assert_plays(d, osc, 1, da)
        self.assertEqual(d.stop(), 0)

    def test_new_sample_rate_converts_every_sample_again(self):
        path, data = self.wav("r.wav", n=48000)
        d, osc = self.daemon()
        self.assertEqual(osc.request("/load", 0, path, expect=("/done", "/fail")),
                         ("/done", ["/load", 0, 48000, 1]))
        name = self.jack.name
        self.jack.proc.kill()
        self.jack.proc.wait()
        self.jack.close()
        self.jack = JackServer(rate=44100, name=name)
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            status = osc.status()
            # rate 44100, and the sample at 44100 Hz: 44100 frames of floats
            # (at 48 kHz it was 48000 frames of 16-bit integers, half that).
            if status["rate"] == 44100 and 44100 * 4 <= status["bytes"] < 48000 * 4:
                break
            time.sleep(0.05)
        self.assertEqual(status["rate"], 44100)
        self.assertEqual(status["slots"], 1)
        self.assertIn("converting every sample again", d.log())
        self.assertLess(status["bytes"], 48000 * 4, "the sample was not converted to 44.1 kHz")
        self.assertGreaterEqual(status["bytes"], 44100 * 4)
        self.assertEqual(d.stop(), 0)

    def test_journald_priority_prefixes(self):
        # Under systemd, JOURNAL_STREAM is set and lines carry "<N>".
        d, osc = self.daemon(env=["JOURNAL_STREAM=8:12345"])
        self.assertEqual(osc.request("/load", 0, "/nonexistent.wav", expect="/fail")[0], "/fail")
        self.assertEqual(d.stop(), 0)
        lines = [line for line in d.log().splitlines() if line]
        self.assertTrue(lines and all(re.match(r"^<[0-7]>", line) for line in lines), lines)
        self.assertTrue(any(line.startswith("<5>ready:") for line in lines), lines)
        self.assertTrue(any(line.startswith("<6>load 0 /nonexistent.wav failed") for line in lines),
                        lines)

    def test_sigint_exits_cleanly(self):
        d, osc = self.daemon()
        self.assertEqual(osc.request("/ping"), ("/pong", []))
        self.assertEqual(d.stop(signal.SIGINT), 0)
        self.assertIn("shutting down (Interrupt)", d.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
