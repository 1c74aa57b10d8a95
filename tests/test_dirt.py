#!/usr/bin/env python3
"""SuperDirt's /dirt/play and the sample library, end to end: a real jackd
(dummy backend), the real looperd binary with --library, real OSC packets,
and the recorded JACK output compared sample by sample with SuperDirt's
formulas as docs/protocol.md ("/dirt/play") gives them.

The generated library: banks of 16-bit mono ramps at the JACK rate, each
file its own offset (file f plays f*1500, f*1500 + 1, ...), so the first
frame heard names the file and every later one its position.

The second socket (--dirt-port): every daemon here that has a library is
given a free port for it (or 0, none), never left to the default, so tests
running side by side on this machine never meet on SuperDirt's 57120.  The
tests of the default itself run the daemon inside a network namespace this
test makes and removes (``unshare -n`` with ``lo`` up, as tests/test_link.py
does; needs root, fails with the reason otherwise), where 57120 is the
namespace's own; the JACK server stays outside (its sockets are files)."""
import math
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (Daemon, DaemonCase, JackServer, OscClient,  # noqa: E402
                          ProcessError, Recorder, binary_path, deinterleave, encode_bundle,
                          encode_message, free_udp_port, sound_judge, sounding_span,
                          timetag_from_unix, timetag_in, timetag_indices, write_wav)
from test_link import LoNamespace  # noqa: E402
from test_link_daemon import in_netns  # noqa: E402

RATE = 48000
N = 1200          # frames of every file
TOL = 1e-6
BANKS = {"bd": 3, "hh": 4, "sn": 2}
F32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]  # noqa: E731
DEFAULT = F32(0.4 / math.sqrt(2))  # amp 0.4, Pan2 at the centre


def file_id(bank, i):
    return 1 + sorted(BANKS).index(bank) * 8 + i


def ramp(fid, n=N):
    return [fid * 1500 + k for k in range(n)]


def make_library(root, banks=BANKS):
    for bank, count in banks.items():
        os.makedirs(os.path.join(root, bank), exist_ok=True)
        for i in range(count):
            # Names whose byte order differs from their numeric order.
            write_wav(os.path.join(root, bank, f"{bank}{i:02d}.wav"), ramp(file_id(bank, i)),
                      RATE, 1)
        # Not audio: takes no index.
        with open(os.path.join(root, bank, "README.txt"), "w") as f:
            f.write("not a sample\n")


def wait_loaded(osc, samples, timeout=20.0):
    end = time.monotonic() + timeout
    st = None
    while time.monotonic() < end:
        st = osc.status()
        if st["library_samples"] == samples and st["library_loaded"] == samples:
            return st
        time.sleep(0.05)
    raise AssertionError(f"library not loaded: {st}")


def dirt(*pairs):
    return encode_message("/dirt/play", *pairs)


SUPERDIRT_PORT = 57120


def udp_ports(pid):
    """The local ports of the UDP sockets process `pid` holds, as its own
    network namespace sees them (/proc/PID/fd against /proc/PID/net/udp*)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = []
    for name in ("udp", "udp6"):
        with open(f"/proc/{pid}/net/{name}") as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.append(int(fields[1].split(":")[1], 16))
    return sorted(ports)


class DirtCase(DaemonCase):
    @classmethod
    def setUpClass(cls):
        cls.libdir = tempfile.mkdtemp(prefix="looperd-lib-")
        make_library(cls.libdir)
        cls.dirt_port = free_udp_port()
        cls.daemon_args = ("--library", cls.libdir, "--outputs", "2",
                           "--dirt-port", str(cls.dirt_port))
        super().setUpClass()
        cls.tidal = OscClient(cls.dirt_port)  # sends where Tidal would
        wait_loaded(cls.osc, sum(BANKS.values()))

    @classmethod
    def tearDownClass(cls):
        cls.tidal.close()
        super().tearDownClass()
        shutil.rmtree(cls.libdir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.tidal.drain()

    def record(self, packets, seconds, pair=0, client=None, due=False):
        """Sends `packets` (each raw, or (delay_s, raw) to be bundled with a
        timetag that far ahead) from `client` (default self.osc, to --port)
        and records pair `pair`; retakes a take disturbed where it sounds.
        (left, right), and with due=True the recording indices where JACK's
        clock, as the recorder logged it, puts each timetag: the frames the
        events start on (a spacing on the wall clock can be a few frames
        off on JACK's clock after an xrun)."""
        sources = [f"{self.daemon.name}:out_{2 * pair + 1}", f"{self.daemon.name}:out_{2 * pair + 2}"]
        client = client or self.osc

        def act():
            base = time.time() + 0.3
            tags = []
            for p in packets:
                if isinstance(p, tuple):
                    tags.append(timetag_from_unix(base + p[0]))
                    client.send_raw(encode_bundle(tags[-1], [p[1]]))
                else:
                    client.send_raw(p)
            time.sleep(seconds + 0.3)
            return tags

        left, right, meta, tags, why = self.record_takes(act, seconds + 5, sound_judge,
                                                         sources=sources)
        self.assertIsNone(why, "every take was disturbed where it sounds")
        if not due:
            return left, right
        return left, right, timetag_indices(meta, tags, self.jack.period)

    def onset(self, left, right):
        for i, (a, b) in enumerate(zip(left, right)):
            if a != 0.0 or b != 0.0:
                return i
        self.fail("nothing was played")

    def assert_close(self, got, want, what, tol=TOL):
        self.assertEqual(len(got), len(want), f"{what}: length")
        bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if abs(g - w) > tol]
        self.assertEqual(bad[:3], [], f"{what}: {len(bad)} frames off")

    def heard_file(self, *pairs):
        """The file id a /dirt/play with `pairs` sounds (its first frame)."""
        left, right = self.record([dirt(*pairs)], N / RATE + 0.1)
        on = self.onset(left, right)
        return round(left[on] / DEFAULT * 32768 / 1500)


class Library(DirtCase):
    def test_status_counts_banks_and_samples_not_other_files(self):
        st = self.osc.status()
        self.assertEqual(st["library_banks"], len(BANKS))
        self.assertEqual(st["library_samples"], sum(BANKS.values()))
        self.assertEqual(st["slots"], sum(BANKS.values()))  # the numbered ones stay empty
        self.assertIn("library loaded: 3 banks, 9 samples", self.daemon.log())

    def test_numbered_requests_do_not_reach_the_library_slots(self):
        for req in (("/play", 32), ("/load", 32, "/tmp/x.wav"), ("/unload", 32), ("/get", 32)):
            r = self.osc.request(*req, expect="/fail")
            self.assertEqual(r, ("/fail", [req[0], "id out of range (0..31)", 32]), req)
        self.assertEqual(self.osc.request("/play/32", expect="/fail"),
                         ("/fail", ["/play/32", "id out of range (0..31)"]))

    def test_s_and_n_pick_the_file_and_the_index_wraps(self):
        cases = [("hh", 0.0, 0), ("hh", 2.0, 2), ("hh", 5.0, 1), ("hh", -1.0, 3),
                 ("hh", 2.7, 2), ("hh", -1.5, 3), ("bd", 25.0, 1), ("sn", 1.0, 1)]
        for bank, n, want in cases:
            with self.subTest(bank=bank, n=n):
                self.assertEqual(self.heard_file("s", bank, "n", n), file_id(bank, want))

    def test_name_colon_index(self):
        self.assertEqual(self.heard_file("s", "hh:3"), file_id("hh", 3))
        self.assertEqual(self.heard_file("s", "bd:4", "orbit", 0), file_id("bd", 1))

    def test_default_level_is_superdirts(self):
        left, right = self.record([dirt("s", "bd", "n", 1.0)], N / RATE + 0.1)
        on = self.onset(left, right)
        want = [F32(v / 32768.0) * DEFAULT for v in ramp(file_id("bd", 1))]
        self.assert_close(list(left[on:on + N]), want, "left")
        self.assert_close(list(right[on:on + N]), want, "right")
        # Its natural end is not faded: the last frame at full level.
        self.assertAlmostEqual(left[on + N - 1], want[-1], delta=TOL)
        self.assertTrue(all(v == 0.0 for v in left[on + N:]))

    def test_gain_curve(self):
        for gain in (0.5, 1.2, 3.0):
            with self.subTest(gain=gain):
                left, right = self.record([dirt("s", "sn", "gain", gain)], N / RATE + 0.1)
                on = self.onset(left, right)
                g = min(F32(gain), 2.0)
                level = F32(g ** 4 * 0.4 / math.sqrt(2))
                want = [F32(v / 32768.0) * level for v in ramp(file_id("sn", 0))]
                self.assert_close(list(left[on:on + N]), want, f"gain {gain}",
                                  tol=1e-6 * max(1, level))

    def test_amp(self):
        left, right = self.record([dirt("s", "sn", "amp", 0.8)], N / RATE + 0.1)
        on = self.onset(left, right)
        level = F32(F32(0.8) / math.sqrt(2))
        want = [F32(v / 32768.0) * level for v in ramp(file_id("sn", 0))]
        self.assert_close(list(left[on:on + N]), want, "amp 0.8")

    def test_pan(self):
        s = [F32(v / 32768.0) for v in ramp(file_id("sn", 1))]
        for pan in (0.0, 0.25, 1.0):
            with self.subTest(pan=pan):
                left, right = self.record([dirt("s", "sn", "n", 1.0, "pan", pan)],
                                          N / RATE + 0.1)
                on = self.onset(left, right)
                p = pan * 2 - 1
                q = (p + 1) * math.pi / 4
                # Pan2: amp * cos/sin, amp = 0.4.
                self.assert_close(list(left[on:on + N]), [x * 0.4 * math.cos(q) for x in s],
                                  "left", tol=2e-6)
                self.assert_close(list(right[on:on + N]), [x * 0.4 * math.sin(q) for x in s],
                                  "right", tol=2e-6)

    def test_speed(self):
        s = [F32(v / 32768.0) for v in ramp(file_id("hh", 1))]
        for speed, frames in ((2.0, range(0, N, 2)), (-1.0, range(N - 1, -1, -1))):
            with self.subTest(speed=speed):
                left, right = self.record([dirt("s", "hh", "n", 1.0, "speed", speed)],
                                          N / RATE + 0.1)
                on = self.onset(left, right)
                want = [s[f] * DEFAULT for f in frames]
                self.assert_close(list(left[on:on + len(want)]), want, f"speed {speed}")
                self.assertTrue(all(v == 0.0 for v in left[on + len(want):]))

    def test_note_transposes_by_rate(self):
        # note 12: one octave up, speed 2.
        s = [F32(v / 32768.0) for v in ramp(file_id("hh", 2))]
        left, right = self.record([dirt("s", "hh", "n", 2.0, "note", 12.0)], N / RATE + 0.1)
        on = self.onset(left, right)
        want = [s[f] * DEFAULT for f in range(0, N, 2)]
        self.assert_close(list(left[on:on + len(want)]), want, "note 12")
        self.assertTrue(all(v == 0.0 for v in left[on + len(want):]))

    def test_begin_end(self):
        # begin != 0: SuperDirt's fade-in of fadeTime (1 ms, 48 frames).
        s = [F32(v / 32768.0) for v in ramp(file_id("bd", 2))]
        left, right = self.record([dirt("s", "bd", "n", 2.0, "begin", 0.25, "end", 0.5)],
                                  N / RATE + 0.1)
        on = self.onset(left, right)
        b, e = N // 4, N // 2
        # Frame 0 of the attack is silent: the first heard is frame 1.
        on -= 1
        want = [s[f] * DEFAULT * min((f - b) / 48.0, 1.0) for f in range(b, e)]
        self.assert_close(list(left[on:on + len(want)]), want, "begin/end", tol=2e-6)
        self.assertTrue(all(v == 0.0 for v in left[on + len(want):]))

    def test_legato_with_delta(self):
        # sustain = delta * legato = 0.005 s = 240 frames; fadeTime
        # min(0.001, 0.19098 * sustain) = 0.955 ms at its end: the mixer's
        # sustain is the rest (in frames, rounded), its release the fade.
        s = [F32(v / 32768.0) for v in ramp(file_id("hh", 3))]
        left, right = self.record(
            [dirt("s", "hh", "n", 3.0, "delta", 0.01, "legato", 0.5, "cps", 0.5)],
            N / RATE + 0.1)
        on = self.onset(left, right)
        sus = F32(0.01) * F32(0.5)
        fade = min(0.001, sus * 0.19098)
        S, R = round(F32(sus - fade) * RATE), round(F32(fade) * RATE)
        self.assertEqual(S + R, 240)
        want = [s[t] * DEFAULT * min(1.0, (S + R - t) / R) for t in range(S + R)]
        self.assert_close(list(left[on:on + S + R]), want, "legato", tol=2e-6)
        self.assertTrue(all(v == 0.0 for v in left[on + S + R:]))

    def test_sustain_longer_than_the_sample_plays_it_whole(self):
        left, right = self.record([dirt("s", "sn", "sustain", 5.0)], N / RATE + 0.1)
        on = self.onset(left, right)
        want = [F32(v / 32768.0) * DEFAULT for v in ramp(file_id("sn", 0))]
        self.assert_close(list(left[on:on + N]), want, "whole")

    def test_cut_is_scoped_to_the_orbit(self):
        a = [F32(v / 32768.0) * DEFAULT for v in ramp(file_id("bd", 0))]
        b = [F32(v / 32768.0) * DEFAULT for v in ramp(file_id("sn", 0))]
        d = 0.01  # the second event 480 frames after the first
        fade = 240  # the declick fade
        for orbit, cut in ((0, True), (2, False)):  # orbit 2 plays on pair 0 too (2 % 2)
            with self.subTest(orbit=orbit):
                left, right, (at1, at2) = self.record(
                    [(0.0, dirt("s", "bd", "cut", 1, "orbit", 0)),
                     (d, dirt("s", "sn", "cut", 1, "orbit", orbit))], N / RATE + 0.2,
                    due=True)
                on = self.onset(left, right)
                # The second starts where the first stops sounding alone:
                # on its timetag's frame, within a frame.
                k = next(t for t in range(N) if abs(left[on + t] - a[t]) > TOL)
                self.assertLessEqual(abs(on - at1), 1)
                self.assertLessEqual(abs(on + k - at2), 1)
                # After the fade: the second alone when cut, else both.
                got = list(left[on + k + fade:on + N])
                want = [b[t - k] + (0 if cut else a[t]) for t in range(k + fade, N)]
                self.assert_close(got, want, "after the second", tol=2e-6)

    def test_orbit_picks_the_output_pair(self):
        left, right = self.record([dirt("s", "bd", "orbit", 3)], N / RATE + 0.1, pair=1)
        on = self.onset(left, right)
        self.assertAlmostEqual(left[on], F32(file_id("bd", 0) * 1500 / 32768) * DEFAULT,
                               delta=TOL)

    def test_timetags_place_events_on_their_frames(self):
        # 50 ms apart, each on its timetag's frame within one frame (as
        # tests/test_timing.py allows); sent to --port and to --dirt-port
        # alike.
        for name, client in (("--port", self.osc), ("--dirt-port", self.tidal)):
            with self.subTest(socket=name):
                left, right, (at1, at2) = self.record(
                    [(0.0, dirt("s", "bd")), (0.05, dirt("s", "hh", "n", 1.0))], 0.2,
                    client=client, due=True)
                on = self.onset(left, right)
                self.assertLessEqual(abs(on - at1), 1)
                self.assertTrue(all(v == 0.0 for v in left[on + N:round(at2) - 1]))
                second = next(i for i in range(on + N, len(left)) if left[i] != 0.0)
                self.assertLessEqual(abs(second - at2), 1)
                want = F32(file_id("hh", 1) * 1500 / 32768) * DEFAULT
                self.assertAlmostEqual(left[second], want, delta=TOL)

    def test_ignored_keys_change_nothing(self):
        left, right = self.record([dirt("s", "bd", "n", 1.0, "room", 0.3, "lpf", 800.0,
                                        "vowel", "a", "cycle", 12.0, "_id_", "1",
                                        "latency", 0.2, "whatever", 3)], N / RATE + 0.1)
        on = self.onset(left, right)
        want = [F32(v / 32768.0) * DEFAULT for v in ramp(file_id("bd", 1))]
        self.assert_close(list(left[on:on + N]), want, "ignored keys")

    def test_unknown_bank_is_counted_and_silent(self):
        before = self.osc.status()
        left, right = self.record([dirt("s", "nosuch", "n", 1.0), dirt("s", "nosuch"),
                                   dirt("n", 1.0)], 0.2)
        self.assertIsNone(sounding_span(left, right))
        after = self.osc.status()
        self.assertEqual(after["dirt_not_found"] - before["dirt_not_found"], 3)
        self.assertEqual(self.daemon.log().count("no bank named 'nosuch'"), 1)
        self.assertIsNone(self.osc.try_recv(0.2), "a /dirt/play is never answered")

    def test_superdirt_handshake_is_answered(self):
        self.assertEqual(self.osc.request("/dirt/handshake", expect="/dirt/handshake/reply"),
                         ("/dirt/handshake/reply", []))
        self.assertEqual(self.osc.request("/dirt/hello", expect="/dirt/hello/reply"),
                         ("/dirt/hello/reply", []))

    def test_bad_values_are_counted_and_silent(self):
        before = self.osc.status()
        left, right = self.record([dirt("s", "bd", "speed", 0.0), dirt("s", "bd", "n", "x"),
                                   dirt(3, "bd")], 0.2)
        self.assertIsNone(sounding_span(left, right))
        after = self.osc.status()
        self.assertEqual(after["dirt_skipped"] - before["dirt_skipped"], 3)

    def test_accelerate_glides_in_control_blocks(self):
        # SuperDirt: rate = Line.kr(speed, speed * (1 + accelerate), sustain)
        # (synths/core-synths.scd, dirt_sample_*), one value per 64-frame
        # control block from the voice's first frame, block k at speed +
        # k * (endSpeed - speed) / n for k < n, endSpeed after, n =
        # round(sustain * rate / 64); the synth's sustain is the length less
        # fadeTime.  The length: the file at avgSpeed, (|speed| +
        # |endSpeed|) / 2; the gate closes it with a fadeTime release.
        fid = file_id("hh", 1)
        for accel in (1.0, -2.0):  # up an octave; through 0 and back
            with self.subTest(accelerate=accel):
                left, right = self.record(
                    [dirt("s", "hh", "n", 1.0, "accelerate", accel)], N / RATE + 0.1)
                on = self.onset(left, right)
                r0, r1 = 1.0, 1.0 * (1 + F32(accel))
                length = (N / RATE) / ((abs(r0) + abs(r1)) * 0.5)
                fade = min(0.001, length * 0.19098)
                S, R = round(F32(length - fade) * RATE), round(F32(fade) * RATE)
                n = max(1, math.floor(F32(length - fade) * RATE / 64 + 0.5))
                # The positions, as the mixer steps them: the rate's
                # magnitude held in 1/16..16, its sign the direction.
                x, back, dr, xs = 0.0, False, (r1 - r0) / n, []
                for t in range(S + R):
                    if t % 64 == 0:
                        k = t // 64
                        r = r0 + dr * k if k < n else r1
                        back = r < 0 if r != 0 else back
                        mag = min(max(abs(r), 1 / 16), 16)
                    xs.append(x)
                    x += -mag if back else mag
                self.assertTrue(all(1 <= p <= N - 3 for p in xs[64:]))  # a ramp's Hermite is exact
                if accel < 0:
                    self.assertLess(min(xs[S // 2:]), max(xs) - 100)  # it came back
                want = [F32((fid * 1500 + p) / 32768.0) * DEFAULT * min(1.0, (S + R - t) / R)
                        for t, p in enumerate(xs)]
                self.assert_close(list(left[on:on + S + R]), want, f"accelerate {accel}",
                                  tol=2e-6)
                self.assertTrue(all(v == 0.0 for v in left[on + S + R:]))


class BoundClient(OscClient):
    """OscClient sending from a chosen local address (for --allow)."""

    def __init__(self, port, bind):
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))
        self.local_port = self.sock.getsockname()[1]
        self.last_from = None
        self._pending = []


def looperd_fails(*args):
    """looperd run with `args`, which it refuses before JACK: (code, stderr)."""
    r = subprocess.run([binary_path("LOOPERD_BIN"), *args], capture_output=True, text=True,
                       timeout=10)
    return r.returncode, r.stderr


class DirtPort(DirtCase):
    """--dirt-port P: a second socket serving everything the first does."""

    def test_both_sockets_open_and_the_ready_line_names_them(self):
        self.assertEqual(udp_ports(self.daemon.proc.pid),
                         sorted([self.daemon.port, self.dirt_port]))
        self.assertIn(f"OSC on udp 127.0.0.1:{self.daemon.port} and 127.0.0.1:{self.dirt_port} "
                      "(for TidalCycles and Strudel)", self.daemon.log())

    def test_dirt_play_there_sounds_as_superdirt_plays_it(self):
        left, right = self.record([dirt("s", "bd", "n", 1.0)], N / RATE + 0.1, client=self.tidal)
        on = self.onset(left, right)
        want = [F32(v / 32768.0) * DEFAULT for v in ramp(file_id("bd", 1))]
        self.assert_close(list(left[on:on + N]), want, "left")
        self.assert_close(list(right[on:on + N]), want, "right")
        self.assertIsNone(self.tidal.try_recv(0.2), "a /dirt/play is never answered")

    def test_replies_leave_from_the_socket_asked(self):
        for client, port in ((self.osc, self.daemon.port), (self.tidal, self.dirt_port)):
            with self.subTest(port=port):
                for req, reply in (("/dirt/handshake", "/dirt/handshake/reply"),
                                   ("/dirt/hello", "/dirt/hello/reply"),
                                   ("/ping", "/pong"),  # answered by the reply thread
                                   ("/version", "/version.reply"),
                                   ("/status", "/status.reply")):
                    self.assertEqual(client.request(req, expect=reply)[0], reply)
                    self.assertEqual(client.last_from, ("127.0.0.1", port), req)
                self.assertEqual(client.request("/play", 40, expect="/fail"),
                                 ("/fail", ["/play", "id out of range (0..31)", 40]))
                self.assertEqual(client.last_from, ("127.0.0.1", port))

    def test_load_play_unload_there(self):
        path = os.path.join(self.tmp.name, "shot.wav")
        write_wav(path, [(3000 + 7 * k, -2000 - 5 * k) for k in range(600)], RATE, 2)
        # /done /load comes from the loader thread, /done /unload from the
        # reply thread: both through the reply context, from the dirt port.
        self.assertEqual(self.tidal.request("/load", 0, path, expect=("/done", "/fail"),
                                            timeout=10), ("/done", ["/load", 0, 600, 2]))
        self.assertEqual(self.tidal.last_from, ("127.0.0.1", self.dirt_port))
        takes = []
        for client in (self.osc, self.tidal):
            left, right = self.record([encode_message("/play", 0, 0.5)], 0.1, client=client)
            on = self.onset(left, right)
            takes.append((list(left[on:on + 600]), list(right[on:on + 600])))
            self.assertTrue(all(v == 0.0 for v in left[on + 600:]))
        self.assertNotEqual(takes[0][0][100], 0.0)
        self.assertEqual(takes[1], takes[0], "a /play on --dirt-port sounds as on --port")
        self.assertEqual(self.tidal.request("/unload", 0, expect=("/done", "/fail")),
                         ("/done", ["/unload", 0]))
        self.assertEqual(self.tidal.last_from, ("127.0.0.1", self.dirt_port))


class DirtPortOptions(unittest.TestCase):
    def test_bad_values_are_refused(self):
        for v in ("70000", "-1", "x", "", "57120x"):
            with self.subTest(value=v):
                code, err = looperd_fails("--dirt-port", v)
                self.assertEqual(code, 2)
                self.assertIn(f"--dirt-port wants a whole number from 0 to 65535, not '{v}'", err)

    def test_the_same_port_as_port_is_refused(self):
        for args in (("--port", "9100", "--dirt-port", "9100"),
                     ("--dirt-port", "9000", "--library", "/tmp"),  # --port's default
                     ("--port", "57120", "--dirt-port", "57120")):
            with self.subTest(args=args):
                code, err = looperd_fails(*args)
                self.assertEqual(code, 2)
                self.assertRegex(err, r"--dirt-port and --port are both (9100|9000|57120): give "
                                      r"them different ports")


class DirtPortSockets(unittest.TestCase):
    """What is opened, with one JACK server for the class."""

    @classmethod
    def setUpClass(cls):
        cls.lib = tempfile.mkdtemp(prefix="looperd-lib-")
        make_library(cls.lib, {"bd": 2})
        cls.jack = JackServer(rate=RATE)

    @classmethod
    def tearDownClass(cls):
        cls.jack.close()
        shutil.rmtree(cls.lib, ignore_errors=True)

    def test_zero_means_no_second_socket(self):
        with Daemon(self.jack, extra_args=["--library", self.lib, "--dirt-port", "0"]) as d:
            self.assertEqual(udp_ports(d.proc.pid), [d.port])
            self.assertIn(f"OSC on udp 127.0.0.1:{d.port}\n", d.log())
            self.assertEqual(d.stop(), 0)

    def test_without_a_library_none_unless_given(self):
        with Daemon(self.jack) as d:
            self.assertEqual(udp_ports(d.proc.pid), [d.port])
            self.assertEqual(d.stop(), 0)
        port = free_udp_port()
        with Daemon(self.jack, extra_args=["--dirt-port", str(port)]) as d, \
                OscClient(port) as tidal:
            self.assertEqual(udp_ports(d.proc.pid), sorted([d.port, port]))
            self.assertEqual(tidal.request("/dirt/handshake", expect="/dirt/handshake/reply"),
                             ("/dirt/handshake/reply", []))
            self.assertEqual(tidal.last_from, ("127.0.0.1", port))
            self.assertEqual(d.stop(), 0)

    def test_allow_applies_there_too(self):
        port = free_udp_port()
        with Daemon(self.jack, extra_args=["--library", self.lib, "--dirt-port", str(port),
                                           "--allow", "127.0.0.2"]) as d, \
                BoundClient(d.port, "127.0.0.2") as ctl, \
                BoundClient(port, "127.0.0.2") as allowed, \
                BoundClient(port, "127.0.0.1") as other:
            wait_loaded(ctl, 2)
            before = ctl.status()
            other.send_raw(encode_message("/ping"))
            other.send_raw(dirt("s", "bd"))
            other.send_raw(encode_message("/dirt/handshake"))
            self.assertIsNone(other.try_recv(0.3), "a denied source was answered")
            self.assertEqual(allowed.request("/ping"), ("/pong", []))
            self.assertEqual(allowed.last_from, ("127.0.0.1", port))
            after = ctl.status()
            self.assertEqual(after["refused"] - before["refused"], 3)
            self.assertEqual(after["voices"], 0)
            self.assertEqual(d.stop(), 0)

    def test_a_taken_port_asked_for_stops_the_start(self):
        hold = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            hold.bind(("127.0.0.1", 0))
            port = hold.getsockname()[1]
            with self.assertRaises(ProcessError) as cm:
                Daemon(self.jack, extra_args=["--library", self.lib, "--dirt-port", str(port)])
            self.assertIn("exited with 1", str(cm.exception))
            self.assertIn(f"--dirt-port: cannot listen on 127.0.0.1 port {port}: Address already "
                          "in use", str(cm.exception))
        finally:
            hold.close()


class SuperDirtDefault(unittest.TestCase):
    """--library alone opens SuperDirt's 57120: inside a network namespace of
    this test's own (the module docstring says why)."""

    @classmethod
    def setUpClass(cls):
        cls.lib = tempfile.mkdtemp(prefix="looperd-lib-")
        make_library(cls.lib, {"bd": 2})
        cls.jack = JackServer(rate=RATE)
        try:
            cls.ns = LoNamespace()
        except BaseException:
            cls.jack.close()
            raise
        cls.netns = f"/proc/{cls.ns.holder.pid}/ns/net"

    @classmethod
    def tearDownClass(cls):
        cls.ns.close()
        cls.jack.close()
        shutil.rmtree(cls.lib, ignore_errors=True)

    def daemon(self, *args, port=None):
        return Daemon(self.jack, wrapper=self.ns.prefix, port=port,
                      extra_args=["--library", self.lib, *args])

    def client(self, port):
        """An OscClient of the namespace."""
        with in_netns(self.netns):
            return OscClient(port)

    def test_tidal_needs_no_configuration(self):
        with self.daemon() as d, self.client(SUPERDIRT_PORT) as tidal:
            self.assertEqual(udp_ports(d.proc.pid), sorted([d.port, SUPERDIRT_PORT]))
            self.assertIn(f"and 127.0.0.1:{SUPERDIRT_PORT} (for TidalCycles and Strudel)",
                          d.log())
            self.assertEqual(tidal.request("/dirt/handshake", expect="/dirt/handshake/reply"),
                             ("/dirt/handshake/reply", []))
            self.assertEqual(tidal.last_from, ("127.0.0.1", SUPERDIRT_PORT))
            wait_loaded(tidal, 2)
            rec = Recorder(self.jack, d.outputs, seconds=3)
            tidal.send_raw(dirt("s", "bd", "n", 1.0))
            time.sleep(0.3)
            samples, _ = rec.stop()
            left, _ = deinterleave(samples)
            on = next(i for i, v in enumerate(left) if v != 0.0)
            self.assertEqual(round(left[on] / DEFAULT * 32768 / 1500), file_id("bd", 1))
            self.assertEqual(d.stop(), 0)

    def test_a_taken_default_is_reported_and_left_out(self):
        with in_netns(self.netns):
            hold = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            hold.bind(("127.0.0.1", SUPERDIRT_PORT))  # SuperDirt, say
            with self.daemon() as d, self.client(d.port) as osc:
                self.assertEqual(udp_ports(d.proc.pid), [d.port])
                self.assertIn(f"warning: cannot listen on 127.0.0.1 port {SUPERDIRT_PORT}: "
                              "Address already in use (SuperDirt's port: is SuperDirt running?); "
                              f"TidalCycles and Strudel reach looperd only on 127.0.0.1:{d.port}",
                              d.log())
                self.assertEqual(osc.request("/ping"), ("/pong", []))
                self.assertEqual(d.stop(), 0)
            # Asked for, the same port stops the start.
            with self.assertRaises(ProcessError) as cm:
                self.daemon("--dirt-port", str(SUPERDIRT_PORT))
            self.assertIn("exited with 1", str(cm.exception))
            self.assertIn(f"--dirt-port: cannot listen on 127.0.0.1 port {SUPERDIRT_PORT}",
                          str(cm.exception))
        finally:
            hold.close()

    def test_port_57120_is_already_superdirts(self):
        with self.daemon(port=SUPERDIRT_PORT) as d, self.client(SUPERDIRT_PORT) as tidal:
            self.assertEqual(udp_ports(d.proc.pid), [SUPERDIRT_PORT])
            self.assertNotIn("SuperDirt's port", d.log())
            self.assertEqual(tidal.request("/dirt/handshake", expect="/dirt/handshake/reply"),
                             ("/dirt/handshake/reply", []))
            self.assertEqual(d.stop(), 0)


class Options(unittest.TestCase):
    def test_library_must_be_a_directory(self):
        from looperd_test import binary_path
        import subprocess
        for path, why in (("/nonexistent-library", "No such file or directory"),
                          ("/etc/hostname", "not a directory")):
            r = subprocess.run([binary_path("LOOPERD_BIN"), "--library", path],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2)
            self.assertIn(f"--library {path}: {why}", r.stderr)


class Reload(unittest.TestCase):
    def test_reload_adds_changes_and_removes(self):
        lib = tempfile.mkdtemp(prefix="looperd-lib-")
        try:
            make_library(lib, {"bd": 3})
            with JackServer(rate=RATE) as jack, \
                    Daemon(jack, extra_args=["--library", lib, "-v", "--dirt-port", "0"]) as d, \
                    OscClient(d.port) as osc:
                wait_loaded(osc, 3)
                # Add bd03, change bd01 (now file 20), remove bd00, add a bank.
                write_wav(os.path.join(lib, "bd", "bd03.wav"), ramp(7), RATE, 1)
                time.sleep(0.01)
                write_wav(os.path.join(lib, "bd", "bd01.wav"), ramp(20), RATE, 1)
                os.remove(os.path.join(lib, "bd", "bd00.wav"))
                os.makedirs(os.path.join(lib, "cp"))
                write_wav(os.path.join(lib, "cp", "a.wav"), ramp(9), RATE, 1)
                r = osc.request("/library/reload", expect=("/done", "/fail"), timeout=20)
                self.assertEqual(r, ("/done", ["/library/reload", 2, 4]))
                self.assertIn("3 to load, 1 unchanged", d.log())
                st = wait_loaded(osc, 4)
                end = time.monotonic() + 10  # the removed file's slot empties after the reply
                while osc.status()["slots"] != 4 and time.monotonic() < end:
                    time.sleep(0.05)
                self.assertEqual(osc.status()["slots"], 4)
                # bd is now bd01 (changed), bd02, bd03.
                for n, fid in ((0, 20), (1, file_id("bd", 2)), (2, 7)):
                    rec = Recorder(jack, d.outputs, seconds=3)
                    osc.send("/dirt/play", "s", "bd", "n", float(n))
                    time.sleep(0.2)
                    samples, meta = rec.stop()
                    left, _ = deinterleave(samples)
                    on = next(i for i, v in enumerate(left) if v != 0.0)
                    self.assertEqual(round(left[on] / DEFAULT * 32768 / 1500), fid, n)
                # SIGHUP rescans too.
                os.remove(os.path.join(lib, "cp", "a.wav"))
                os.kill(d.proc.pid, 1)
                end = time.monotonic() + 20
                while osc.status()["library_samples"] != 3 and time.monotonic() < end:
                    time.sleep(0.05)
                self.assertEqual(osc.status()["library_samples"], 3)
                self.assertEqual(d.stop(), 0)
        finally:
            shutil.rmtree(lib, ignore_errors=True)

    def test_a_sample_not_loaded_yet_is_skipped_and_counted(self):
        lib = tempfile.mkdtemp(prefix="looperd-lib-")
        try:
            # Long files, 44.1 kHz (converted to 48 kHz): the library takes a
            # while to load, and a play sent between two /status that both
            # show it unloaded must have found it unloaded.
            os.makedirs(os.path.join(lib, "long"))
            frames = [((k * 7) % 2000) + 1 for k in range(44100 * 20)]
            for i in range(6):
                write_wav(os.path.join(lib, "long", f"{i}.wav"), frames, 44100, 1)
            with JackServer(rate=RATE) as jack, \
                    Daemon(jack, extra_args=["--library", lib, "--dirt-port", "0"]) as d, \
                    OscClient(d.port) as osc:
                judged = 0
                while judged == 0:
                    a = osc.status()
                    if a["slots"] == 6:
                        break
                    osc.send("/dirt/play", "s", "long", "n", 5.0)
                    b = osc.status()
                    # `slots` counts what is loaded as library_find sees it
                    # (library_loaded is only a progress report).  The
                    # loader starts the library's files in bank and name
                    # order, at most LOADER_WORKERS (4) at once, so n 5
                    # starts last: once it is loaded every other file has
                    # started and at most 3 are still running, so 3 or more
                    # are loaded.  While at most 2 are loaded after the
                    # play, n 5 was not loaded when the play came.
                    if a["library_samples"] == 6 and b["slots"] <= 2:
                        self.assertEqual(b["dirt_skipped"] - a["dirt_skipped"], 1)
                        self.assertEqual(b["voices"], 0)
                        judged += 1
                self.assertEqual(judged, 1, "the library loaded before it could be asked")
                wait_loaded(osc, 6, timeout=60)
                self.assertIn("a sample asked for before its file was loaded: skipped", d.log())
                self.assertEqual(d.stop(), 0)
        finally:
            shutil.rmtree(lib, ignore_errors=True)

    def test_library_bigger_than_max_memory(self):
        lib = tempfile.mkdtemp(prefix="looperd-lib-")
        try:
            # Each bank 4 files of 0.225 MiB decoded: 0.9 MiB a bank; 3 MiB allowed.
            n = 117965
            for b in ("a", "b", "c", "d", "e"):
                os.makedirs(os.path.join(lib, b))
                for i in range(4):
                    write_wav(os.path.join(lib, b, f"{i}.wav"), [(k % 1000) + 1 for k in range(n)],
                              RATE, 1)
            with JackServer(rate=RATE) as jack, \
                    Daemon(jack, extra_args=["--library", lib, "--max-memory-mb", "3",
                                                     "--dirt-port", "0"]) as d, \
                    OscClient(d.port) as osc:
                st = wait_loaded(osc, 12)
                self.assertEqual(st["library_banks"], 3)
                self.assertTrue(re.search(r"2 banks left out .*: d e", d.log()), d.log())
                self.assertLessEqual(st["bytes"], 3 * 1048576)
                self.assertEqual(d.stop(), 0)
        finally:
            shutil.rmtree(lib, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
