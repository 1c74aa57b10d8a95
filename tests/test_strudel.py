#!/usr/bin/env python3
"""Strudel's own OSC bridge plays looperd: the npm packages @strudel/core,
@strudel/mini and @strudel/osc (pinned in tests/strudel/package-lock.json,
installed there with `npm ci` when missing), a Node script (events.mjs)
that queries s("bd*4, hh*8").n("<0 1 2>") for two cycles and sends each
event through the bridge (server.js) with @strudel/osc's oscTrigger, as the
REPL's .osc() does; a real jackd, the real looperd with --library, and the
recorded output.  The bridge sends to looperd's --dirt-port, the socket
TidalCycles and Strudel find on SuperDirt's 57120 by default: here a free
port given explicitly, so tests side by side never meet on 57120
(tests/test_dirt.py checks the default in a namespace of its own).

Between the bridge and looperd a UDP relay in this test keeps a copy of
every bundle (its timetag and its /dirt/play), so each event is checked
against what Strudel really sent: it sounds on the frame of its timetag
(JACK's own frame <-> time mapping, as tests/test_timing.py maps it), with
the file its s and n name."""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (TAKES, CycleClock, Daemon, JackServer, OscClient,  # noqa: E402
                          Recorder, decode_message, deinterleave, disturbed_in, free_udp_port,
                          pause_before_retake, write_wav, _spawn, _terminate)

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "strudel")
RATE, PERIOD = 48000, 256
N = 100  # frames of each file: each event ends long before the next
FILES = {"bd": 3, "hh": 3}
CPS = 2.0
LEAD = 0.6  # s between the script's start and the first event
F32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]  # noqa: E731
DEFAULT = F32(0.4 / 2 ** 0.5)


def fid(bank, i):
    return 1 + 8 * sorted(FILES).index(bank) + i


def ensure_packages():
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@strudel", "osc")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       stdout=subprocess.DEVNULL)


class Relay:
    """UDP 127.0.0.1:port -> the daemon, keeping (timetag, message) of
    every bundle."""

    def __init__(self, target_port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.target = ("127.0.0.1", target_port)
        self.got = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            self.sock.sendto(data, self.target)
            if data.startswith(b"#bundle\0"):
                tt = struct.unpack(">Q", data[8:16])[0]
                size = struct.unpack(">i", data[16:20])[0]
                self.got.append((tt, decode_message(data[20:20 + size])))

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


class Strudel(unittest.TestCase):
    def test_strudel_osc_bridge_events_sound_on_their_frames(self):
        ensure_packages()
        lib = tempfile.mkdtemp(prefix="looperd-lib-")
        for bank, count in FILES.items():
            os.makedirs(os.path.join(lib, bank))
            for i in range(count):
                write_wav(os.path.join(lib, bank, f"{i}.wav"),
                          [fid(bank, i) * 1500 + k for k in range(N)], RATE, 1)
        bridge = None
        dirt_port = free_udp_port()
        try:
            with JackServer(rate=RATE, period=PERIOD) as jack, \
                    Daemon(jack, extra_args=["--library", lib,
                                             "--dirt-port", str(dirt_port)]) as d, \
                    OscClient(d.port) as osc:
                end = time.monotonic() + 20
                while osc.status()["library_loaded"] < 6 and time.monotonic() < end:
                    time.sleep(0.05)
                bridge = _spawn(["node", os.path.join(NODE_DIR, "node_modules", "@strudel",
                                                       "osc", "server.js")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                line = bridge.stdout.readline().decode()  # "[Sending OSC] ..."
                line += bridge.stdout.readline().decode()  # "[Listening WS] ..."
                self.assertIn("Listening WS", line)
                for attempt in range(1, TAKES + 1):
                    relay = Relay(dirt_port)
                    rec = Recorder(jack, d.outputs, seconds=2 / CPS + LEAD + 6)
                    try:
                        out = subprocess.run(
                            ["node", "--experimental-websocket", "--import",
                             "./loader-hook.mjs", "events.mjs", str(relay.port), str(CPS),
                             str(LEAD)], cwd=NODE_DIR, capture_output=True, timeout=60,
                            check=True).stdout.decode()
                        time.sleep(2 / CPS + LEAD + 0.5)
                    finally:
                        samples, meta = rec.stop()
                        relay.close()
                    why = self.judge(deinterleave(samples)[0], meta, relay.got, out)
                    if why is None:
                        break
                    print(f"\n  take {attempt} disturbed: {why}", file=sys.stderr)
                    pause_before_retake(attempt, d.port)
                else:
                    self.fail("every take was disturbed")
                self.assertEqual(osc.status()["dirt_not_found"], 0)
                self.assertEqual(d.stop(), 0)
        finally:
            if bridge is not None:
                _terminate(bridge)
                bridge.stdout.close()
            shutil.rmtree(lib, ignore_errors=True)

    def judge(self, left, meta, got, out):
        """Asserts what Strudel sent and how it sounds; returns why a take
        cannot be judged (the machine disturbed it), or None."""
        sent = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        self.assertEqual(len(sent), 24)  # 8 bd and 16 hh in two cycles
        self.assertEqual(len(got), 24, "bundles through the bridge")
        clock = CycleClock(meta["cycles"], meta["wall_minus_jack_us"])
        events = []  # (recording index of the timetag, first frame's value)
        for tt, (addr, args) in got:
            self.assertEqual(addr, "/dirt/play")
            keys = dict(zip(args[0::2], args[1::2]))
            i = int(keys["n"]) % FILES[keys["s"]]
            wall = (tt >> 32) - 2208988800 + (tt & 0xffffffff) / 2 ** 32
            k, _, x = clock.locate(wall)
            events.append(((k + x) * PERIOD, F32(fid(keys["s"], i) * 1500 / 32768) * DEFAULT))
        events.sort()
        # Events of one time (bd and hh together) sound as one onset.
        # looperd starts an event on the frame nearest its timetag, so two
        # timetags a hair apart can straddle a half frame and start on
        # neighbouring frames: then the onset is the first frame's events
        # (the next frame's add on to it).
        groups = []  # [index of the first event's timetag, frame, sum of its frame's values]
        for at, v in events:
            if groups and round(at) == groups[-1][1]:
                groups[-1][2] += v
            elif groups and round(at) - groups[-1][1] < N:
                continue  # sounds on top of the onset before
            else:
                groups.append([at, round(at), v])
        why = disturbed_in(meta, int(groups[0][0]) - 2, int(groups[-1][0]) + N + 2)
        if why:
            return why
        heard = [i for i in range(1, len(left)) if left[i] != 0.0 and left[i - 1] == 0.0]
        self.assertEqual(len(heard), len(groups), "one onset for each time Strudel sent")
        for on, (at, _, v) in zip(heard, groups):
            self.assertLessEqual(abs(on - at), 1.0, f"onset {on}, timetag at {at:.2f}")
            self.assertAlmostEqual(left[on], v, delta=1e-6, msg=f"the file at {on}")
        return None


if __name__ == "__main__":
    unittest.main()
