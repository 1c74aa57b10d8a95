#!/usr/bin/env python3
"""End to end: looperd's output pairs (--outputs N: ports out_1..out_2N) and
which of them it connects to the playback ports (the first pair; every pair
with --connect-all), and that the connections of every port come back after
the JACK server restarts.  A real jackd (dummy backend, with as many
playback ports as a test needs) and the real binary; the ports and their
connections are read with jack_lsp."""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import Daemon, JackServer, OscClient, binary_path, status_dict  # noqa: E402

RATE = 48000
# How long the daemon may take to notice the server is gone or back (it
# retries every 250 ms), and to restore its connections after that.
BACK_WITHIN_S = 20


class OutputPairs(unittest.TestCase):
    def jack(self, playback=4, name=None):
        j = JackServer(rate=RATE, driver_args=["-P", str(playback)], name=name)
        self.addCleanup(j.close)
        return j

    def daemon(self, jack, *args, connect=False):
        d = Daemon(jack, extra_args=list(args), connect=connect)
        self.addCleanup(d.close)
        return d

    def stop_cleanly(self, d):
        code = d.stop()
        self.assertEqual(code, 0, f"looperd exited {code}:\n{d.log()[-3000:]}")

    def our_ports(self, jack, d):
        prefix = d.name + ":"
        # The audio outputs; midi_in, always there too, is tests/test_midi.py's.
        return sorted((p[len(prefix):] for p in jack.ports()
                       if p.startswith(prefix) and p != prefix + "midi_in"),
                      key=lambda p: int(p.split("_")[1]))

    def links(self, jack, d, n):
        """{port: connections} of out_1..out_n."""
        return {f"out_{k}": sorted(jack.connections(f"{d.name}:out_{k}"))
                for k in range(1, n + 1)}

    def test_one_pair_by_default_with_its_old_names(self):
        jack = self.jack()
        d = self.daemon(jack, connect=True)
        self.assertEqual(self.our_ports(jack, d), ["out_1", "out_2"])
        self.assertEqual(self.links(jack, d, 2), {"out_1": ["system:playback_1"],
                                                  "out_2": ["system:playback_2"]})
        self.stop_cleanly(d)

    def test_outputs_2_has_four_ports_and_connects_the_first_pair(self):
        jack = self.jack()
        d = self.daemon(jack, "--outputs", "2", connect=True)
        self.assertEqual(self.our_ports(jack, d), ["out_1", "out_2", "out_3", "out_4"])
        self.assertEqual(self.links(jack, d, 4), {"out_1": ["system:playback_1"],
                                                  "out_2": ["system:playback_2"],
                                                  "out_3": [], "out_4": []})
        self.stop_cleanly(d)

    def test_connect_all_connects_pair_k_to_playback_2k_plus_1_and_2(self):
        jack = self.jack(playback=6)
        d = self.daemon(jack, "--outputs", "3", "--connect-all", connect=True)
        self.assertEqual(self.our_ports(jack, d), [f"out_{k}" for k in range(1, 7)])
        self.assertEqual(self.links(jack, d, 6),
                         {f"out_{k}": [f"system:playback_{k}"] for k in range(1, 7)})
        self.stop_cleanly(d)

    def test_connect_all_with_fewer_playback_ports_leaves_the_rest(self):
        jack = self.jack(playback=4)
        d = self.daemon(jack, "--outputs", "3", "--connect-all", connect=True)
        links = self.links(jack, d, 6)
        self.assertEqual(links["out_3"], ["system:playback_3"])
        self.assertEqual(links["out_4"], ["system:playback_4"])
        self.assertEqual(links["out_5"], [])
        self.assertEqual(links["out_6"], [])
        self.assertIn("out_5 to out_6 are not connected", d.log())
        self.stop_cleanly(d)

    def test_no_connect_connects_no_pair(self):
        jack = self.jack()
        d = self.daemon(jack, "--outputs", "2")  # the harness passes --no-connect
        self.assertEqual(self.links(jack, d, 4),
                         {"out_1": [], "out_2": [], "out_3": [], "out_4": []})
        self.stop_cleanly(d)

    def status(self, osc):
        return osc.status(timeout=3.0)

    def wait_for(self, d, what, ok):
        deadline = time.monotonic() + BACK_WITHIN_S
        while time.monotonic() < deadline:
            self.assertTrue(d.running(), f"looperd died {what}:\n{d.log()[-3000:]}")
            try:
                if ok():
                    return
            except TimeoutError:
                pass
            time.sleep(0.05)
        self.fail(f"not {what} within {BACK_WITHIN_S} s:\n{d.log()[-3000:]}")

    def test_connections_of_every_pair_come_back_after_a_jack_restart(self):
        jack = self.jack()
        d = self.daemon(jack, "--outputs", "2")
        osc = OscClient(d.port)
        self.addCleanup(osc.close)
        # Not what any automatic connection would make: only a restore
        # gives these back.
        want = {"out_1": ["system:playback_1"], "out_2": [],
                "out_3": ["system:playback_4"], "out_4": ["system:playback_2",
                                                          "system:playback_3"]}
        for port, dsts in want.items():
            for dst in dsts:
                jack.connect(f"{d.name}:{port}", dst)
        self.assertEqual(self.links(jack, d, 4), want)
        # The daemon notes its connections once a second (main.c); the
        # server goes away only after it has seen them twice.
        time.sleep(2.5)
        name = jack.name
        jack.close()  # SIGTERM by PID, waits for its exit
        self.wait_for(d, "told the server is gone", lambda: self.status(osc)["state"] == "jack-gone")
        jack = self.jack(name=name)  # the same server again
        self.wait_for(d, "running again", lambda: self.status(osc)["state"] == "running")
        self.wait_for(d, "reconnected", lambda: self.links(jack, d, 4) == want)
        self.assertEqual(self.our_ports(jack, d), ["out_1", "out_2", "out_3", "out_4"])
        self.stop_cleanly(d)


class OutputOptions(unittest.TestCase):
    """Refused before anything starts: no JACK server needed."""

    def run_looperd(self, *args):
        return subprocess.run([binary_path("LOOPERD_BIN"), *args], capture_output=True,
                              text=True, timeout=10, stdin=subprocess.DEVNULL)

    def test_outputs_out_of_range_refused(self):
        for bad in ("0", "33", "-1", "two", ""):
            r = self.run_looperd("--outputs", bad)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn("--outputs wants a whole number from 1 to 32", r.stderr, bad)

    def test_connect_all_with_no_connect_refused(self):
        r = self.run_looperd("--connect-all", "--no-connect")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--connect-all and --no-connect", r.stderr)


if __name__ == "__main__":
    unittest.main()
