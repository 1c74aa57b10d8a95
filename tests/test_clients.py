#!/usr/bin/env python3
"""End to end with real OSC clients: each test drives the real looperd (on a
private dummy-backend jackd) with a real client program, asserts the replies
that client received, and for /play compares the recorded JACK output with
the fixture sample for sample (a 16-bit WAV at the JACK rate decodes to
x/32768 exactly; velocity 0.5 is a power of two, so every float is equal).

Clients:
* oscsend (liblo-tools): /load, /play with i and f arguments, TouchOSC-style
  /play/ID.  oscsend sends from an ephemeral port it does not listen on, so it
  never sees a reply, and oscdump cannot see them either (they go to
  oscsend's port, not oscdump's): the test checks the effects (the recording,
  and /status from a client that does receive) instead.
* Pure Data (puredata-core), headless: tests/clients/pd/looperd_test.pd.
* sclang (supercollider-language), headless with QT_QPA_PLATFORM=offscreen:
  tests/clients/supercollider/looperd_test.scd.
* Node with the `osc` package (osc.js, tests/clients/node, installed with
  npm ci): a timetagged bundle.
* examples/python/looperd_stdlib_client.py: standard library only, packets
  built the way python-osc builds them.
A client that is not installed is skipped, with the reason."""
import json
import os
import shutil
import subprocess
import sys
import time
import unittest
from array import array

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLIENTS = os.path.join(HERE, "clients")
sys.path.insert(0, HERE)
from looperd_test import (fixture_frames, DaemonCase, find_onset,  # noqa: E402
                          free_udp_port, sound_disturbed, write_wav)

RATE = 48000
PERIOD = 256
FRAMES = 12000  # 0.25 s
VELOCITY = 0.5


def run(argv, timeout=60, **kw):
    """Runs a client to its end; (returncode, stdout, stderr)."""
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    return p.returncode, p.stdout, p.stderr


class Clients(DaemonCase):
    rate, period = RATE, PERIOD

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.wav = os.path.join(cls.tmp.name, "stereo.wav")
        cls.data = fixture_frames(FRAMES, 2)
        write_wav(cls.wav, cls.data, RATE, 2)

    def setUp(self):
        super().setUp()
        # Every test starts from silence.
        self.assertEqual(self.osc.request("/stop", timeout=5), ("/done", ["/stop"]))

    # -- helpers -----------------------------------------------------------

    def record(self, action, settle):
        """Records the daemon's outputs while action() runs plus `settle`
        seconds; returns (left, right, action's result).  A take in which
        the machine disturbed JACK (a gap or an xrun: the VM's, nothing
        looperd does) on or near the sound cannot be compared sample by
        sample, so it is printed and taken again from silence, up to TAKES
        times; the last take is asserted on in any case.  Elsewhere a
        disturbance costs nothing: these tests compare sound, not when it
        came (sclang's start-up alone, seconds of work on this 2-CPU VM,
        rarely let a whole recording through in a noisy stretch)."""
        def act():
            result = action()
            time.sleep(settle)
            return result

        left, right, _, result, why = self.record_takes(
            act, settle + 60, lambda left, right, meta, _: sound_disturbed(left, right, meta),
            before_retake=lambda: self.assertEqual(self.osc.request("/stop", timeout=5),
                                                   ("/done", ["/stop"])))
        self.assertIsNone(why, "the sound was recorded with a gap or xrun near it")
        return left, right, result

    def assert_plays(self, left, right, copies=1, velocity=VELOCITY):
        """The recording holds `copies` non-overlapping, sample-exact copies
        of the fixture x velocity, and silence around them.  Returns the
        onsets."""
        mix = array("f", [abs(a) + abs(b) for a, b in zip(left, right)])
        want_l = [v / 32768.0 * velocity for v in self.data[0::2]]
        want_r = [v / 32768.0 * velocity for v in self.data[1::2]]
        onsets, start = [], 0
        for k in range(copies):
            onset = find_onset(mix[start:], 0, channels=1)
            self.assertIsNotNone(onset, f"copy {k + 1} of {copies} was not played")
            onset += start
            got_l = list(left[onset:onset + FRAMES])
            got_r = list(right[onset:onset + FRAMES])
            bad = [i for i in range(FRAMES)
                   if i >= len(got_l) or got_l[i] != want_l[i] or got_r[i] != want_r[i]]
            self.assertEqual(bad[:5], [], f"copy {k + 1}: {len(bad)} frames differ")
            onsets.append(onset)
            start = onset + FRAMES
        self.assertTrue(all(v == 0.0 for v in mix[start:]), "sound after the last copy")
        return onsets

    def slots_loaded(self):
        addr, args = self.osc.request("/status", timeout=5)
        self.assertEqual(addr, "/status.reply")
        return args[1]

    def need(self, program, package):
        if shutil.which(program) is None:
            self.skipTest(f"{program} is not installed (Debian package {package})")

    # -- clients -----------------------------------------------------------

    def test_oscsend(self):
        """oscsend /load (i s), /play (i f), /play/ID (f) as TouchOSC sends it,
        and /play/ID 0 (a pad's release) which must do nothing."""
        self.need("oscsend", "liblo-tools")
        port = str(self.daemon.port)
        self.osc.request("/unload", 6, timeout=5)
        before = self.slots_loaded()
        rc, out, err = run(["oscsend", "localhost", port, "/load", "is", 6, self.wav])
        self.assertEqual((rc, err), (0, ""))
        deadline = time.monotonic() + 10
        while self.slots_loaded() != before + 1:  # no reply reaches oscsend
            self.assertLess(time.monotonic(), deadline, "oscsend's /load did not load")
            time.sleep(0.05)

        left, right, _ = self.record(
            lambda: run(["oscsend", "localhost", port, "/play", "if", 6, VELOCITY]), 0.6)
        self.assert_plays(left, right)

        def touchosc():
            run(["oscsend", "localhost", port, "/play/6", "f", VELOCITY])
            run(["oscsend", "localhost", port, "/play/6", "f", 0])  # release: ignored
        left, right, _ = self.record(touchosc, 0.6)
        self.assert_plays(left, right)

        # oscsend never sees the replies: a bad request is answered to its
        # ephemeral port and lost; oscsend itself only reports success.
        rc, out, err = run(["oscsend", "localhost", port, "/play", "i", 99])
        self.assertEqual((rc, out), (0, ""))
        self.assertEqual(self.osc.request("/ping"), ("/pong", []))

    def test_puredata(self):
        """Pd 0.51+ headless: [oscformat] -> [netsend -u -b] -> [oscparse];
        every number (id, velocity) is sent as a float."""
        self.need("pd", "puredata-core")
        patch = os.path.join(CLIENTS, "pd", "looperd_test.pd")
        left, right, (rc, out, err) = self.record(lambda: run(
            ["pd", "-nogui", "-nosound", "-nrt", "-stderr", "-send",
             f"looperd-test {self.daemon.port} 7 {self.wav} {VELOCITY}",
             "-open", patch], timeout=60), 0.1)
        self.assertEqual(rc, 0, err)
        replies = [l[len("reply: "):] for l in err.splitlines() if l.startswith("reply: ")]
        # Pd prints a symbol with spaces escaped.
        self.assertEqual(replies, ["pong", f"done /load 7 {FRAMES} 2",
                                   r"fail /load no\ such\ file 7", "done /stop"], err)
        self.assert_plays(left, right)

    def test_sclang(self):
        """SuperCollider's language, no server: NetAddr, OSCdef, and /play in a
        timetagged bundle (sendBundle)."""
        self.need("sclang", "supercollider-language")
        env = dict(os.environ,
                   # No display: Qt's offscreen platform instead of xcb.
                   QT_QPA_PLATFORM="offscreen",
                   # sclang starts QtWebEngine, whose Chromium refuses to run
                   # as root with its sandbox on.
                   QTWEBENGINE_DISABLE_SANDBOX="1",
                   XDG_RUNTIME_DIR=self.tmp.name)
        script = os.path.join(CLIENTS, "supercollider", "looperd_test.scd")
        left, right, (rc, out, err) = self.record(lambda: run(
            ["sclang", "-u", free_udp_port(), script, self.daemon.port, 8, self.wav, VELOCITY],
            timeout=90, env=env), 0.1)
        if rc != 0 and "reply:" not in out and "Welcome to SuperCollider" not in out:
            self.skipTest(f"sclang does not start headless here (exit {rc}): "
                          + (err.strip().splitlines() or ["no output"])[-1])
        self.assertEqual(rc, 0, out + err)
        replies = [l[len("reply: "):] for l in out.splitlines() if l.startswith("reply: ")]
        self.assertEqual(replies, ["/pong", f"/done /load 8 {FRAMES} 2",
                                   "/fail /load no such file 8", "/done /stop"], out)
        self.assert_plays(left, right)

    def test_node_osc(self):
        """Node's `osc` package (osc.js): a second, independent OSC
        implementation; /play in a bundle timetagged 0.2 s ahead."""
        self.need("node", "nodejs")
        self.need("npm", "npm")
        pkg = os.path.join(CLIENTS, "node")
        if not os.path.exists(os.path.join(pkg, "node_modules", "osc", "package.json")):
            rc, out, err = run(["npm", "ci", "--omit=optional", "--no-audit", "--no-fund",
                                "--prefix", pkg], timeout=240)
            if rc != 0:
                self.skipTest("npm ci could not install the osc package (no registry?): "
                              + (err.strip().splitlines() or ["?"])[-1])
        left, right, (rc, out, err) = self.record(lambda: run(
            ["node", os.path.join(pkg, "looperd_test.js"), self.daemon.port, 9, self.wav,
             VELOCITY]), 0.1)
        self.assertEqual(rc, 0, err)
        replies = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        self.assertEqual(replies, [
            {"address": "/pong", "args": []},
            {"address": "/done", "args": ["/load", 9, FRAMES, 2]},
            {"address": "/fail", "args": ["/load", "no such file", 9]},
            {"address": "/done", "args": ["/stop"]},
        ])
        self.assert_plays(left, right)

    def test_python_stdlib_client(self):
        """examples/python/looperd_stdlib_client.py as a user runs it: /play at
        once, then a bundle timetagged 0.5 s ahead: two copies 0.5 s apart."""
        client = os.path.join(ROOT, "examples", "python", "looperd_stdlib_client.py")
        left, right, (rc, out, err) = self.record(lambda: run(
            [sys.executable, client, "--port", self.daemon.port, "--ahead", "0.5",
             10, self.wav, VELOCITY], env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1")), 1.0)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.splitlines(), ["reply: /pong []",
                                            f'reply: /done ["/load", 10, {FRAMES}, 2]'])
        first, second = self.assert_plays(left, right, copies=2)
        # The bundle started on the frame its timetag maps to: 0.5 s after
        # the plain /play (which starts at the next period), give or take
        # that period and the time between the two sends.
        self.assertLess(abs((second - first) - RATE // 2), RATE // 20,
                        f"copies {second - first} frames apart")


if __name__ == "__main__":
    unittest.main(verbosity=2)
