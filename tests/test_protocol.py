#!/usr/bin/env python3
"""The OSC protocol end to end, against the real looperd and a real jackd
(dummy backend): every message of docs/protocol.md, and every bad input the
daemon must refuse with an exact `/fail` and at no cost.

"At no cost" is checked by `assert_still_healthy()`, which every bad-input
test runs around the bad input itself:

* slot 1 holds a stereo loop whose *right* channel is silent and which has
  been looping (velocity 0.5) since the class started.  The recording made
  while the bad input is sent must show it going on, frame for frame: the
  left channel is the loop fixture, continued across every wrap, without a
  dropped, repeated or changed frame;
* slot 0 holds a one-shot whose *left* channel is silent.  It is played
  after the bad input and must come out of the right channel sample-exact
  (so the sample that was loaded before is still loaded and still plays);
* `/ping` still answers `/pong`.

16-bit fixtures at the JACK rate decode to x/32768 exactly and velocity 0.5
is a power of two, so every recorded float is compared for equality.

One jackd + looperd per class keeps the file fast; options that change the
daemon (--sample-dir, --max-*-mb, --allow, --listen) get their own class."""
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (SO_RCVBUFFORCE, SO_RXQ_OVFL, TAKES,  # noqa: E402
                          Daemon, JackServer, OscClient, Recorder, decode_message,
                          deinterleave, encode_bundle, encode_message, find_onset,
                          pause_before_retake, timetag_in, write_wav)

RATE = 48000
PERIOD = 256
SLOTS = 32
RANGE = f"id out of range (0..{SLOTS - 1})"

LOOP_SLOT, SHOT_SLOT = 1, 0
LOOP_FRAMES = 1001      # not a multiple of the period: wraps fall mid-period
SHOT_FRAMES = 4800      # 0.1 s
VEL = 0.5


def distinct(n, seed=0):
    """n distinct, non-zero 16-bit values (so a shifted frame shows)."""
    out = []
    for i in range(n):
        v = ((i * 37 + seed) % 30000) + 100
        out.append(v if i % 2 else -v)
    return out


LOOP_L = distinct(LOOP_FRAMES)
SHOT_R = distinct(SHOT_FRAMES, seed=11000)


def write_fixtures(d):
    loop = os.path.join(d, "loop.wav")
    shot = os.path.join(d, "shot.wav")
    write_wav(loop, [(v, 0) for v in LOOP_L], RATE, 2)
    write_wav(shot, [(0, v) for v in SHOT_R], RATE, 2)
    return loop, shot


class Client(OscClient):
    """OscClient with a choice of local address and family (for --allow and
    --listen ::1)."""

    def __init__(self, port, host="127.0.0.1", bind="127.0.0.1", family=socket.AF_INET):
        self.target = (host, port)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))
        self.local_port = self.sock.getsockname()[1]
        self.last_from = None
        self._pending = []


class DaemonCase(unittest.TestCase):
    """One jackd + looperd for the class, fixtures loaded, the loop running."""

    EXTRA_ARGS: list = []
    LISTEN_HOST = "127.0.0.1"
    BIND = "127.0.0.1"
    FAMILY = socket.AF_INET
    SAMPLE_DIR = False      # True: pass --sample-dir <the fixture dir>

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="looperd-proto-")
        cls.dir = os.path.realpath(cls.tmp.name)
        cls.loop_path, cls.shot_path = write_fixtures(cls.dir)
        args = list(cls.EXTRA_ARGS)
        if cls.SAMPLE_DIR:
            cls.samples = os.path.join(cls.dir, "samples")
            os.mkdir(cls.samples)
            cls.loop_path, cls.shot_path = write_fixtures(cls.samples)
            args += ["--sample-dir", cls.samples]
        cls.jack = JackServer(rate=RATE, period=PERIOD)
        try:
            cls.daemon = Daemon(cls.jack, extra_args=args)
            cls.osc = Client(cls.daemon.port, cls.LISTEN_HOST, cls.BIND, cls.FAMILY)
            for slot, path, frames in ((LOOP_SLOT, cls.loop_path, LOOP_FRAMES),
                                       (SHOT_SLOT, cls.shot_path, SHOT_FRAMES)):
                r = cls.osc.request("/load", slot, path, expect=("/done", "/fail"), timeout=10)
                assert r == ("/done", ["/load", slot, frames, 2]), r
            cls.osc.send("/loop", LOOP_SLOT, VEL)
            assert cls.osc.request("/ping") == ("/pong", [])
        except BaseException:
            cls._teardown()
            raise

    @classmethod
    def _teardown(cls):
        code, log = None, ""
        if getattr(cls, "osc", None):
            cls.osc.close()
        if getattr(cls, "daemon", None):
            code = cls.daemon.stop()
            log = cls.daemon.log()
            cls.daemon.close()
        cls.jack.close()
        cls.tmp.cleanup()
        return code, log

    @classmethod
    def tearDownClass(cls):
        code, log = cls._teardown()
        assert code == 0, f"looperd exited {code}:\n{log}"

    def setUp(self):
        self.osc.drain()
        self.gaps = 0

    # -- helpers ----------------------------------------------------------

    def status(self, osc=None):
        """/status.reply as a dict."""
        return (osc or self.osc).status()

    def load(self, slot, path, osc=None):
        return (osc or self.osc).request("/load", slot, path, expect=("/done", "/fail"),
                                         timeout=10)

    def record(self, action, settle=0.3):
        """Records both outputs while action() runs and `settle` s after.
        Gaps (JACK cycles the dummy driver skipped under load) are counted
        in self.gaps for retry(), not failed on: the sample-exact checks on
        the data are stricter."""
        rec = Recorder(self.jack, self.daemon.outputs, seconds=30)
        try:
            action()
            time.sleep(settle)
        finally:
            samples, meta = rec.stop()
        self.gaps += meta["gaps"]
        left, right = deinterleave(samples)
        # jack_record's inputs may be disconnected a period or two before it
        # stops recording (it deactivates on SIGTERM): all-zero final
        # periods are the recorder's, not the daemon's.
        for _ in range(4):
            if (len(left) > 2 * PERIOD and not any(left[-PERIOD:])
                    and not any(right[-PERIOD:])):
                left, right = left[:-PERIOD], right[:-PERIOD]
        return left, right

    def retry(self, check, attempts=TAKES):
        """Runs check() (which records and asserts).  If it fails while JACK
        was disturbed (an xrun in /status, or a gap in the recording - the
        machine is loaded, e.g. by parallel builds), it is run again: a
        clean run proves the point.  A failure without a disturbance fails."""
        for attempt in range(attempts):
            self.gaps = 0
            st0 = self.status()
            try:
                return check(attempt)
            except AssertionError:
                st1 = self.status()
                disturbed = (self.gaps or st1["xruns"] != st0["xruns"]
                             or st1["late"] != st0["late"])
                if not disturbed or attempt == attempts - 1:
                    raise
                sys.stderr.write(f"\n  (JACK disturbed: {self.gaps} gaps, xruns "
                                 f"{st0['xruns']}->{st1['xruns']}, late "
                                 f"{st0['late']}->{st1['late']}; recording again) ")
                pause_before_retake(attempt + 1, client=lambda: Client(
                    self.daemon.port, self.LISTEN_HOST, self.BIND, self.FAMILY))

    def assert_loop_continues(self, left, gain=VEL, what="the loop"):
        """left is the loop fixture, continued seamlessly across its wraps."""
        want = [v / 32768.0 * gain for v in LOOP_L]
        where = {v: i for i, v in enumerate(want)}
        self.assertIn(left[0], where, f"{what} is not playing (first frame {left[0]})")
        phase = where[left[0]]
        bad = [k for k in range(len(left)) if left[k] != want[(phase + k) % LOOP_FRAMES]]
        self.assertEqual(bad[:1], [], f"{what} broke: {len(bad)} of {len(left)} frames "
                                      f"differ, first at frame {bad[:1]}: got "
                                      f"{list(left[bad[0]:bad[0] + 4]) if bad else ''}")
        self.assertGreater(len(left), 3 * LOOP_FRAMES, "recording too short to see wraps")

    def assert_shot(self, right, gain=VEL, count=1):
        onset = find_onset(right, 0, channels=1)
        self.assertIsNotNone(onset, "the loaded sample no longer plays")
        want = [v / 32768.0 * gain for v in SHOT_R]
        got = list(right[onset:onset + SHOT_FRAMES])
        bad = [i for i in range(SHOT_FRAMES) if i >= len(got) or got[i] != want[i]]
        self.assertEqual(bad[:1], [], f"{len(bad)} frames of the one-shot differ")
        if count == 1:
            self.assertTrue(all(v == 0.0 for v in right[onset + SHOT_FRAMES:]),
                            "more than one one-shot played")
        return onset

    def assert_still_healthy(self, bad_input=None):
        """Runs bad_input() (which sends the bad input and checks its /fail)
        while recording: the loop must go on, the one-shot loaded at setup
        must still play sample-exact, and /ping must answer.  (The bad input
        is sent once; if JACK was disturbed, only the recording is redone.)"""
        def check(attempt):
            def action():
                time.sleep(0.02)
                if bad_input is not None and attempt == 0:
                    bad_input()
                self.osc.send("/play", SHOT_SLOT, VEL)
            left, right = self.record(action, settle=0.25)
            self.assert_loop_continues(left)
            self.assert_shot(right)
        self.retry(check)
        self.assertEqual(self.osc.request("/ping", expect=("/pong",)), ("/pong", []))

    def get(self, slot):
        return self.osc.request("/get", slot, expect=("/get.reply", "/fail"))

    def assert_unanswered(self, address, *args):
        """A good /set (or trigger) gets no reply: the next reply is /pong."""
        self.osc.send(address, *args)
        self.assertEqual(self.osc.request("/ping"), ("/pong", []))

    def expect_fail(self, address, *args, reply, timeout=2.0):
        """Sends address args; the first reply must be exactly /fail reply."""
        got = self.osc.request(address, *args, timeout=timeout)
        self.assertEqual(got, ("/fail", list(reply)))

    def bad(self, address, *args, reply, timeout=2.0):
        """The standard bad-input test: exact /fail, then still healthy."""
        self.assert_still_healthy(
            lambda: self.expect_fail(address, *args, reply=reply, timeout=timeout))


# ===========================================================================
# bad inputs, default daemon

class BadInputs(DaemonCase):
    """Every bad input answered with its exact /fail, at no cost."""

    def test_00_healthy_baseline(self):
        self.assert_still_healthy()

    # -- addresses, argument counts and types ------------------------------

    def test_unknown_address(self):
        self.bad("/nope", 1, reply=("/nope", "unknown address"))

    def test_unknown_address_with_id_like_suffix(self):
        self.bad("/play/x", reply=("/play/x", "unknown address"))

    def test_wrong_argument_count(self):
        def action():
            self.expect_fail("/play", reply=("/play", "expects id [velocity] [key value]..."))
            self.expect_fail("/play", 0, 0.5, 1, reply=("/play", "a key must be a string", 0))
            self.expect_fail("/loop", reply=("/loop", "expects id [velocity] [key value]..."))
            self.expect_fail("/load", 3, reply=("/load", "expects id path"))
            self.expect_fail("/unload", reply=("/unload", "expects id"))
            self.expect_fail("/stop", 1, 2, reply=("/stop", "expects [id]"))
            self.expect_fail("/play/0", 1, 1, reply=("/play/0", "a key must be a string", 0))
            self.expect_fail("/stop/0", 1, 1, reply=("/stop/0", "expects [value]"))
            for a in ("/ping", "/status", "/version", "/quit"):
                self.expect_fail(a, 1, reply=(a, "takes no arguments"))
        self.assert_still_healthy(action)

    def test_wrong_argument_types(self):
        def action():
            self.expect_fail("/play", "x", reply=("/play", "id must be a number"))
            self.expect_fail("/play", True, reply=("/play", "id must be a number"))
            self.expect_fail("/loop", b"\1", reply=("/loop", "id must be a number"))
            # After the id, a string is a key: "loud" is not one.
            self.expect_fail("/play", SHOT_SLOT, "loud", reply=("/play", "unknown key", SHOT_SLOT))
            self.expect_fail("/play", SHOT_SLOT, b"\1",
                             reply=("/play", "velocity must be a number", SHOT_SLOT))
            self.expect_fail("/load", 3, 5, reply=("/load", "path must be a string", 3))
            self.expect_fail("/load", 3, "", reply=("/load", "empty path", 3))
            self.expect_fail("/unload", "x", reply=("/unload", "id must be a number"))
        self.assert_still_healthy(action)

    def test_id_out_of_range(self):
        def action():
            self.expect_fail("/play", SLOTS, reply=("/play", RANGE, SLOTS))
            self.expect_fail("/play", -1, reply=("/play", RANGE, -1))
            self.expect_fail("/loop", ("d", 32.0), reply=("/loop", RANGE, 32))
            self.expect_fail("/load", 99, self.shot_path, reply=("/load", RANGE, 99))
            self.expect_fail("/unload", ("f", 40.0), reply=("/unload", RANGE, 40))
            self.expect_fail("/stop", ("h", 1 << 40), reply=("/stop", RANGE))
            self.expect_fail("/play/32", reply=("/play/32", RANGE))
            self.expect_fail("/loop/99999999999999999999", reply=("/loop/99999999999999999999", RANGE))
        self.assert_still_healthy(action)

    def test_id_not_integral(self):
        def action():
            self.expect_fail("/play", 0.5, reply=("/play", "id must be a whole number"))
            self.expect_fail("/loop", ("d", 1.25), reply=("/loop", "id must be a whole number"))
            self.expect_fail("/load", ("f", math.nan), self.shot_path,
                             reply=("/load", "id must be a whole number"))
            self.expect_fail("/unload", ("d", math.inf), reply=("/unload", "id must be a whole number"))
        self.assert_still_healthy(action)

    def test_velocity_nan(self):
        self.bad("/play", SHOT_SLOT, ("f", math.nan),
                 reply=("/play", "velocity must be finite", SHOT_SLOT))

    def test_velocity_infinite(self):
        def action():
            self.expect_fail("/play", SHOT_SLOT, ("d", math.inf),
                             reply=("/play", "velocity must be finite", SHOT_SLOT))
            self.expect_fail("/loop", LOOP_SLOT, ("f", -math.inf),
                             reply=("/loop", "velocity must be finite", LOOP_SLOT))
            self.expect_fail("/play/0", ("d", math.inf),
                             reply=("/play/0", "velocity must be finite", 0))
        self.assert_still_healthy(action)

    # -- files --------------------------------------------------------------

    def test_missing_file(self):
        self.bad("/load", SHOT_SLOT, os.path.join(self.dir, "nope.wav"),
                 reply=("/load", "no such file", SHOT_SLOT))

    def test_missing_directory_component(self):
        self.bad("/load", SHOT_SLOT, self.shot_path + "/x.wav",
                 reply=("/load", "no such file (a path component is not a directory)",
                        SHOT_SLOT))

    def test_unreadable_file(self):
        path = os.path.join(self.dir, "secret.wav")
        shutil.copy(self.shot_path, path)
        os.chmod(path, 0)
        try:
            with open(path, "rb"):
                readable = True
        except PermissionError:
            readable = False
        if readable:
            # Running as root, which reads a mode-000 file.  A write-only
            # sysctl refuses reading even to root (sysctl permissions ignore
            # CAP_DAC_OVERRIDE); it is only ever opened read-only here.
            path = "/proc/sys/vm/compact_memory"
            try:
                with open(path, "rb"):
                    self.skipTest("no file is unreadable to this user")
            except PermissionError:
                pass
            except OSError as e:
                self.skipTest(f"{path}: {e}")
        self.bad("/load", SHOT_SLOT, path, reply=("/load", "permission denied", SHOT_SLOT))

    def test_directory(self):
        self.bad("/load", SHOT_SLOT, self.dir, reply=("/load", "is a directory", SHOT_SLOT))

    def test_fifo_never_blocks(self):
        fifo = os.path.join(self.dir, "fifo.wav")
        os.mkfifo(fifo)

        def action():
            t0 = time.monotonic()
            self.expect_fail("/load", SHOT_SLOT, fifo,
                             reply=("/load", "not a regular file", SHOT_SLOT), timeout=1.0)
            self.assertLess(time.monotonic() - t0, 0.5)
            # And the loader is not stuck: a good load after it is answered.
            self.assertEqual(self.load(5, self.shot_path), ("/done", ["/load", 5, SHOT_FRAMES, 2]))
        self.assert_still_healthy(action)

    def test_device(self):
        def action():
            for dev in ("/dev/zero", "/dev/null", "/dev/urandom"):
                t0 = time.monotonic()
                self.expect_fail("/load", SHOT_SLOT, dev,
                                 reply=("/load", "not a regular file", SHOT_SLOT), timeout=1.0)
                self.assertLess(time.monotonic() - t0, 0.5)
        self.assert_still_healthy(action)

    def test_not_audio(self):
        path = os.path.join(self.dir, "text.wav")
        with open(path, "w") as f:
            f.write("this is not audio\n" * 100)
        addr, args = self.load(SHOT_SLOT, path)
        self.assertEqual((addr, args[0], args[2]), ("/fail", "/load", SHOT_SLOT))
        self.assertRegex(args[1], r"^not an audio file or unsupported format( \(.+\))?$")
        self.bad("/load", SHOT_SLOT, path, reply=("/load", args[1], SHOT_SLOT))

    def test_corrupt_riff_garbage(self):
        """A RIFF/WAVE header followed by garbage chunks."""
        path = os.path.join(self.dir, "garbage.wav")
        body = b"WAVE" + b"fmt " + struct.pack("<I", 0xFFFFFF00) + os.urandom(64)
        with open(path, "wb") as f:
            f.write(b"RIFF" + struct.pack("<I", len(body)) + body)
        addr, args = self.load(SHOT_SLOT, path)
        self.assertEqual((addr, args[0], args[2]), ("/fail", "/load", SHOT_SLOT), args)
        self.assertRegex(args[1], r"^(not an audio file or unsupported format|corrupt)")
        self.bad("/load", SHOT_SLOT, path, reply=("/load", args[1], SHOT_SLOT))

    def test_truncated_flac(self):
        """A FLAC cut in half: STREAMINFO promises frames the stream does not
        hold; the decoder's error makes it corrupt, not played short."""
        if not shutil.which("sox"):
            self.skipTest("sox is needed to write a FLAC fixture")
        wav = os.path.join(self.dir, "noise.wav")
        flac = os.path.join(self.dir, "truncated.flac")
        rnd = random.Random(1)
        write_wav(wav, [rnd.randint(-32768, 32767) for _ in range(RATE * 2)], RATE, 2)
        subprocess.run(["sox", wav, flac], check=True, timeout=30)
        with open(flac, "r+b") as f:
            f.truncate(os.path.getsize(flac) // 2)
        self.bad("/load", SHOT_SLOT, flac,
                 reply=("/load", "corrupt audio data (flac decoder lost sync)",
                        SHOT_SLOT), timeout=5)

    def test_truncated_flac_converted(self):
        """The same at another rate, long enough to be decoded in two halves
        on two threads (daemon/decode_split.c), cut where the second
        half reads: the second half's decoder error fails the load, with the
        same reason."""
        if not shutil.which("sox"):
            self.skipTest("sox is needed to write a FLAC fixture")
        wav = os.path.join(self.dir, "noise441.wav")
        flac = os.path.join(self.dir, "truncated441.flac")
        rnd = random.Random(2)
        write_wav(wav, [rnd.randint(-32768, 32767) for _ in range(44100 * 7 * 2)], 44100, 2)
        subprocess.run(["sox", wav, flac], check=True, timeout=30)
        with open(flac, "r+b") as f:
            f.truncate(os.path.getsize(flac) * 9 // 10)
        self.bad("/load", SHOT_SLOT, flac,
                 reply=("/load", "corrupt audio data (flac decoder lost sync)",
                        SHOT_SLOT), timeout=5)

    def test_truncated_wav_header_only(self):
        """A WAV whose header promises frames the file does not have at all.
        (libsndfile clamps a WAV's length to the data present, so a WAV cut
        mid-data loads what is there: see docs/protocol.md.)"""
        path = os.path.join(self.dir, "truncated.wav")
        shutil.copy(self.shot_path, path)
        with open(path, "r+b") as f:
            f.truncate(44)          # the 44-byte header only
        self.bad("/load", SHOT_SLOT, path, reply=("/load", "no audio frames", SHOT_SLOT))

    def test_truncated_wav_inside_header(self):
        path = os.path.join(self.dir, "cut-header.wav")
        shutil.copy(self.shot_path, path)
        with open(path, "r+b") as f:
            f.truncate(20)
        addr, args = self.load(SHOT_SLOT, path)
        self.assertEqual((addr, args[0], args[2]), ("/fail", "/load", SHOT_SLOT), args)
        self.assertRegex(args[1], r"^not an audio file or unsupported format")
        self.bad("/load", SHOT_SLOT, path, reply=("/load", args[1], SHOT_SLOT))

    def test_zero_frames(self):
        path = os.path.join(self.dir, "empty.wav")
        write_wav(path, [], RATE, 2)
        self.bad("/load", SHOT_SLOT, path, reply=("/load", "no audio frames", SHOT_SLOT))

    def test_too_many_channels(self):
        path = os.path.join(self.dir, "three.wav")
        write_wav(path, [100] * 300, RATE, 3)
        self.bad("/load", SHOT_SLOT, path,
                 reply=("/load", "too many channels (3; at most 2)", SHOT_SLOT))

    def test_path_too_long(self):
        path = "/" + "a" * 5000
        self.bad("/load", SHOT_SLOT, path, reply=("/load", "path too long", SHOT_SLOT))

    def test_path_component_too_long(self):
        path = os.path.join(self.dir, "b" * 300 + ".wav")
        self.bad("/load", SHOT_SLOT, path, reply=("/load", "path too long", SHOT_SLOT))

    # -- floods ---------------------------------------------------------------

    def test_load_queue_full(self):
        big = os.path.join(self.dir, "big.wav")
        write_wav(big, [1000, -1000] * (RATE * 2), RATE, 2)   # 2 s stereo
        n = 300
        replies = []

        def action():
            for _ in range(n):
                self.osc.send("/load", 5, big)
            deadline = time.monotonic() + 30
            while len(replies) < n and time.monotonic() < deadline:
                m = self.osc.try_recv(1.0)
                if m is not None:
                    replies.append(m)
        self.assert_still_healthy(action)
        busy = [m for m in replies if m == ("/fail", ["/load", "busy: load queue full", 5])]
        done = [m for m in replies if m == ("/done", ["/load", 5, RATE * 2, 2])]
        self.assertEqual(len(replies), n, "every /load is answered")
        self.assertEqual(len(busy) + len(done), n, [m for m in replies
                                                   if m not in busy and m not in done][:3])
        self.assertGreater(len(busy), 0, "the load queue never filled")
        self.assertGreater(len(done), 0)

    def test_control_ring_full(self):
        """Floods /play (of an empty slot: no sound) as fast as possible.
        Every refusal must be answered with /fail and counted in /status.
        If the audio thread keeps up with the flood on this machine (the
        ring never fills), the audio thread is stalled for 0.2 s by stopping
        jackd (SIGSTOP by PID, then SIGCONT) while flooding."""
        flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flood.bind(("127.0.0.1", 0))
        # The reader is Python and may fall behind a flood of replies; the
        # kernel then drops them at this socket, not the daemon.  A large
        # buffer makes that rare (SO_RCVBUFFORCE passes net.core.rmem_max
        # when root), and SO_RXQ_OVFL makes it countable: every datagram
        # the daemon sent either arrives or is in that count.
        try:
            flood.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        except PermissionError:
            flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        flood.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        fails = []
        other = []
        pongs = []
        overflow = [0]
        stop = threading.Event()

        def reader():
            flood.settimeout(0.1)
            while not stop.is_set():
                try:
                    data, anc, _, _ = flood.recvmsg(65536, socket.CMSG_SPACE(4))
                except (TimeoutError, socket.timeout):
                    continue
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL:
                        overflow[0] = struct.unpack("=I", value[:4])[0]
                m = decode_message(data)
                if m == ("/fail", ["/play", "busy: command queue full", 31]):
                    fails.append(m)
                elif m == ("/pong", []):
                    pongs.append(m)
                else:
                    other.append(m)

        pkt = encode_message("/play", 31, 1.0)
        target = ("127.0.0.1", self.daemon.port)
        before = self.status()["refused"]
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        stalled = False
        try:
            for _ in range(20000):
                flood.sendto(pkt, target)
            time.sleep(0.3)
            if self.status()["refused"] == before:
                # The ring never filled: stall the audio thread.
                stalled = True
                os.kill(self.jack.proc.pid, signal.SIGSTOP)
                try:
                    t_end = time.monotonic() + 0.2
                    while time.monotonic() < t_end:
                        for _ in range(200):
                            flood.sendto(pkt, target)
                finally:
                    os.kill(self.jack.proc.pid, signal.SIGCONT)
                time.sleep(0.3)
            delta = self.status()["refused"] - before
            # A /pong on the flood socket comes after every /fail already
            # sent and carries the socket's final overflow count.
            flood.sendto(encode_message("/ping"), target)
            deadline = time.monotonic() + 3
            while ((len(fails) + overflow[0] < delta or not pongs)
                   and time.monotonic() < deadline):
                time.sleep(0.05)
        finally:
            stop.set()
            th.join()
            flood.close()
        self.assertGreater(delta, 0, "no request was refused")
        self.assertEqual(len(pongs), 1)
        self.assertEqual(len(fails) + overflow[0], delta,
                         f"{delta} refusals counted, {len(fails)} /fail replies, "
                         f"{overflow[0]} dropped by this test's socket")
        if overflow[0]:
            sys.stderr.write(f"\n  ({overflow[0]} /fail replies dropped by the test's own "
                             "receive buffer, counted by SO_RXQ_OVFL) ")
        self.assertEqual(other, [])
        if stalled:
            sys.stderr.write("\n  (control ring never filled by a flood alone; "
                             "checked with jackd stalled) ")
        # The stall may cost the loop a period or two; the health check
        # records after it.
        self.assert_still_healthy()

    # -- malformed packets ----------------------------------------------------

    def _logged(self, log_re):
        """Lines matching log_re, written or counted in a "suppressed N
        similar lines like: ..." report (the log's rate limit)."""
        log = self.daemon.log()
        written = len(re.findall(r"^(?!looperd: (?:warning: )?suppressed).*" + log_re, log, re.M))
        return written + sum(int(n) for n in re.findall(
            r"suppressed (\d+) similar lines? like: " + log_re, log))

    def _dropped(self, packets, log_re):
        before = self.status()["refused"]
        log_before = self._logged(log_re)

        def action():
            for p in packets:
                self.osc.send_raw(p)
            self.assertIsNone(self.osc.try_recv(0.1), "a dropped packet was answered")
        self.assert_still_healthy(action)
        self.assertEqual(self.status()["refused"] - before, len(packets))
        deadline = time.monotonic() + 6
        while (self._logged(log_re) - log_before < len(packets)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        self.assertEqual(self._logged(log_re) - log_before, len(packets),
                         self.daemon.log()[-2000:])

    def test_malformed_garbage(self):
        self._dropped([b"hello", os.urandom(64).replace(b"/", b"x").replace(b"#", b"x"),
                       b"\0" * 16, b""], r"dropped a malformed packet")

    def test_malformed_truncated_osc(self):
        full = encode_message("/play", SHOT_SLOT, ("d", 1.0))
        self._dropped([full[:-4], full[:12], b"/play\0\0\0,iff\0\0\0\0\0\0\0"],
                      r"dropped a malformed packet")

    def test_malformed_bundles(self):
        good = encode_message("/play", SHOT_SLOT)
        b = encode_bundle(1, [good])
        self._dropped([
            b[:-4],                                            # element cut short
            b"#bundle\0" + b"\0" * 7 + b"\1" + struct.pack(">i", 9999) + good,  # size too big
            b"#bundle\0",                                      # no timetag
            encode_bundle(1, [b"\0\0\0\0"]),                   # element not OSC
        ], r"dropped a malformed packet")

    def test_malformed_bundle_is_dropped_whole(self):
        """A bundle with a malformed element after good ones: none of its
        messages is handled (not even the /ping and /stop before the bad
        element), the packet is dropped, logged and counted."""
        good = encode_bundle(1, [("/ping", []), ("/stop", [LOOP_SLOT]), ("/ping", [])])
        pkt = good + struct.pack(">i", 8) + b"/x\0\0,q\0\0"   # unknown type tag 'q'
        self._dropped([pkt], r"dropped a malformed packet")

    def test_malformed_bundle_too_deep(self):
        pkt = encode_message("/play", SHOT_SLOT)
        for _ in range(9):
            pkt = encode_bundle(1, [pkt])
        self._dropped([pkt], r"dropped a malformed packet")

    def test_oversized_packet(self):
        pkt = encode_message("/load", SHOT_SLOT, "x" * 9000)
        self.assertGreater(len(pkt), 9000)
        self._dropped([pkt, b"\0" * 8196], r"dropped an oversized packet")

    def test_mutated_packets(self):
        """2000 random mutations of harmless requests (/status, /version,
        /nope with arguments): each one is either answered or dropped and
        counted - none is lost, none crashes anything."""
        rnd = random.Random(7)
        seeds = [encode_message("/status", 1, 2.5, "abc"),
                 encode_message("/version", ("d", 1.0), b"blob", ("h", 5)),
                 encode_message("/nope", "x", 1, [1, "y"])]
        before = self.status()["refused"]
        n, answered, unknown = 2000, 0, 0

        def got(m):
            # An unknown address is answered and counted in `refused`.
            nonlocal answered, unknown
            answered += 1
            unknown += m[0] == "/fail" and m[1][1:2] == ["unknown address"]

        def action():
            for i in range(n):
                seed = bytearray(rnd.choice(seeds))
                fixed = 8                   # keep the address
                for _ in range(rnd.randint(1, 4)):
                    k = rnd.randrange(fixed, len(seed))
                    seed[k] = rnd.randrange(256)
                if rnd.random() < 0.2:
                    seed = seed[:rnd.randrange(fixed, len(seed) + 1)]
                self.osc.send_raw(bytes(seed))
                if i % 50 == 49:
                    while (m := self.osc.try_recv(0.02)) is not None:
                        got(m)
            while (m := self.osc.try_recv(0.3)) is not None:
                got(m)
        self.assert_still_healthy(action)
        dropped = self.status()["refused"] - before - unknown
        self.assertEqual(answered + dropped, n, f"{answered} answered, {dropped} dropped")
        self.assertGreater(dropped, 0)
        self.assertGreater(answered, 0)

    def test_timetag_too_far_ahead(self):
        def action():
            self.osc.send_bundle(timetag_in(7200), [("/play", [SHOT_SLOT])])
            self.assertEqual(self.osc.recv(), ("/fail", [
                "/play", "timetag too far in the future (at most 1 hour)"]))
        self.assert_still_healthy(action)


# ===========================================================================
# messages

class Messages(DaemonCase):
    """Every request of docs/protocol.md does what it says."""

    def test_ping(self):
        self.assertEqual(self.osc.request("/ping"), ("/pong", []))

    def test_version(self):
        addr, args = self.osc.request("/version")
        self.assertEqual(addr, "/version.reply")
        self.assertEqual(len(args), 2)
        self.assertEqual(args[0], "looperd")
        self.assertRegex(args[1], r"^\d+\.\d+")

    def test_status_fields(self):
        self.osc.send("/status")
        raw = self.osc.recv_raw()
        addr, args = decode_message(raw)
        self.assertEqual(addr, "/status.reply")
        tags = raw[raw.index(b",") :].split(b"\0")[0].decode()
        self.assertEqual(tags, ",iiiiiffiihshhfdiiihhh")  # docs/protocol.md
        st = self.status()
        self.assertGreaterEqual(st["voices"], 1)            # the loop
        self.assertGreaterEqual(st["slots"], 2)
        self.assertEqual((st["rate"], st["period"]), (RATE, PERIOD))
        # 16-bit stereo fixtures at the JACK rate: 2 bytes a sample.
        self.assertGreaterEqual(st["bytes"], (LOOP_FRAMES + SHOT_FRAMES) * 2 * 2)
        self.assertTrue(0 <= st["dsp_avg"] <= 100 and 0 <= st["dsp_peak"] <= 100, st)
        for k in ("xruns", "late", "refused", "stolen"):
            self.assertGreaterEqual(st[k], 0)
        self.assertEqual(st["state"], "running")
        self.assertEqual(st["lost"], 0)

    def test_ids_and_velocities_accept_ihfd(self):
        for idt, vt in (("i", "f"), ("h", "d"), ("f", "i"), ("d", "h")):
            with self.subTest(id_type=idt, velocity_type=vt):
                vel = VEL if vt in "fd" else 1

                def check(attempt):
                    left, right = self.record(
                        lambda: self.osc.send("/play", (idt, SHOT_SLOT), (vt, vel)), settle=0.2)
                    self.assert_loop_continues(left)
                    self.assert_shot(right, gain=float(vel))
                self.retry(check)

    def test_play_default_velocity_and_clamp(self):
        def check(attempt):
            left, right = self.record(lambda: self.osc.send("/play", SHOT_SLOT), settle=0.2)
            self.assert_shot(right, gain=1.0)
            left, right = self.record(lambda: self.osc.send("/play", SHOT_SLOT, 7.5), settle=0.2)
            self.assert_shot(right, gain=1.0)
            self.assert_loop_continues(left)
        self.retry(check)

    def test_velocity_zero_does_nothing(self):
        def action():
            self.osc.send("/play", SHOT_SLOT, 0)
            self.osc.send("/play", SHOT_SLOT, -0.5)
            self.osc.send("/play/0", 0.0)
            self.osc.send("/loop", LOOP_SLOT, 0)        # must not restart the loop
            self.osc.send("/loop/1", ("d", 0.0))
            self.osc.send("/stop/1", 0)                  # a pad's release
            self.assertEqual(self.osc.request("/ping"), ("/pong", []))

        def check(attempt):
            left, right = self.record(action, settle=0.2)
            self.assert_loop_continues(left)
            self.assertTrue(all(v == 0.0 for v in right), "velocity 0 started a voice")
        self.retry(check)

    def test_touchosc_play(self):
        def check(attempt):
            left, right = self.record(lambda: self.osc.send("/play/0", VEL), settle=0.2)
            self.assert_loop_continues(left)
            self.assert_shot(right)
            left, right = self.record(lambda: self.osc.send("/play/0"), settle=0.2)
            self.assert_shot(right, gain=1.0)
        self.retry(check)

    def test_loop_wraps_seamlessly(self):
        """The loop started at setup: ~1 s of it, across ~48 wraps, every
        frame where it belongs."""
        def check(attempt):
            left, right = self.record(lambda: None, settle=1.0)
            self.assertGreater(len(left), RATE * 0.9)
            self.assert_loop_continues(left)
            self.assertTrue(all(v == 0.0 for v in right))
        self.retry(check)

    def test_loop_restart_and_stop_id(self):
        """A second /loop of a slot restarts it (one loop voice per slot);
        /stop id and /stop/ID fade only that slot's voices."""
        path = os.path.join(self.dir, "loop2.wav")
        write_wav(path, [(v, 0) for v in LOOP_L], RATE, 2)
        self.assertEqual(self.load(2, path), ("/done", ["/load", 2, LOOP_FRAMES, 2]))
        base = self.status()["voices"]
        self.osc.send("/loop", 2, VEL)
        self.osc.send("/loop", 2, VEL)
        self.osc.send("/loop/2", VEL)
        time.sleep(0.1)        # the restarted ones have faded (5 ms)
        self.assertEqual(self.status()["voices"], base + 1)
        self.osc.send("/stop", 2)
        time.sleep(0.1)
        self.assertEqual(self.status()["voices"], base)
        self.osc.send("/loop/2", ("f", 1.0))
        time.sleep(0.1)
        self.assertEqual(self.status()["voices"], base + 1)

        # /stop/2 while recording: slot 2 fades out; slot 1 loops on.
        def check(attempt):
            if attempt:
                self.osc.send("/loop/2", VEL)

            def action():
                time.sleep(0.1)
                self.osc.send("/stop/2")
            left, right = self.record(action, settle=0.3)
            self.assertEqual(self.status()["voices"], base)
            # The tail of the recording is the setup loop alone, seamless.
            self.assert_loop_continues(left[RATE // 4:])
        self.retry(check)

    def test_loop_restart_is_from_frame_zero(self):
        """/loop of a slot that loops restarts it at its first frame (the old
        voice fades out underneath)."""
        path = os.path.join(self.dir, "loop3.wav")
        write_wav(path, [(0, v) for v in LOOP_L], RATE, 2)    # right channel
        self.assertEqual(self.load(3, path), ("/done", ["/load", 3, LOOP_FRAMES, 2]))

        def check(attempt):
            self.osc.send("/loop", 3, VEL)
            time.sleep(0.05)

            def action():
                time.sleep(0.05)
                self.osc.send("/stop", 3)
                time.sleep(0.05)
                self.osc.send("/loop", 3, VEL)
            left, right = self.record(action, settle=0.3)
            self.osc.send("/stop", 3)
            self.assert_loop_continues(left)
            # After the fade-out silence, the new voice starts at frame 0 and
            # loops seamlessly to the end of the recording.
            zeros = [i for i in range(len(right)) if right[i] == 0.0]
            self.assertTrue(zeros, "no gap between stop and restart")
            start = find_onset(right[zeros[-1]:], 0, channels=1) + zeros[-1]
            tail = right[start:]
            want = [v / 32768.0 * VEL for v in LOOP_L]
            self.assertEqual(tail[0], want[0])
            bad = [k for k in range(len(tail)) if tail[k] != want[k % LOOP_FRAMES]]
            self.assertEqual(bad[:1], [])
            self.assertGreater(len(tail), 3 * LOOP_FRAMES)
        self.retry(check)

    def test_unload_while_playing(self):
        """/unload of a slot whose voices play: /done, the voices fade (no
        click), the memory is returned, the slot is empty after, and nothing
        else is disturbed."""
        def check(attempt):
            if attempt:     # start from an empty slot again
                self.assertEqual(self.osc.request("/unload", 4, expect="/done"),
                                 ("/done", ["/unload", 4]))
                time.sleep(0.2)
            path = os.path.join(self.dir, "dc.wav")
            write_wav(path, [(0, 8000)] * (RATE * 2), RATE, 2)      # 2 s DC, right
            st0 = self.status()
            self.assertEqual(self.load(4, path), ("/done", ["/load", 4, RATE * 2, 2]))
            st1 = self.status()
            self.assertEqual(st1["slots"], st0["slots"] + 1)
            self.assertGreaterEqual(st1["bytes"] - st0["bytes"], RATE * 2 * 2 * 2)
            replies = []

            def action():
                # One future bundle: both voices start on the same frame, so
                # the only steps after the onset are the fade's.
                self.osc.send_bundle(timetag_in(0.05), [("/play", [4, 1.0]), ("/loop", [4, 1.0])])
                time.sleep(0.2)
                replies.append(self.osc.request("/unload", 4, expect=("/done", "/fail")))
            left, right = self.record(action, settle=0.3)
            self.assertEqual(replies, [("/done", ["/unload", 4])])
            self.assert_loop_continues(left)
            onset = find_onset(right, 0, channels=1)
            self.assertIsNotNone(onset)
            last = max(i for i, v in enumerate(right) if v != 0.0)
            self.assertTrue(all(v == 0.0 for v in right[last + 1:]))
            self.assertGreater(len(right) - last, RATE // 5, "not silent after the unload")
            level = 2 * 8000 / 32768.0
            steps = [abs(right[i + 1] - right[i]) for i in range(onset + 1, last + 1)]
            self.assertLessEqual(max(steps), level / 240 * 1.01 + 1e-6, "no fade: a click")
            # Memory back to where it was, slot empty, /play of it silent.
            deadline = time.monotonic() + 3
            while self.status()["bytes"] != st0["bytes"] and time.monotonic() < deadline:
                time.sleep(0.05)
            st2 = self.status()
            self.assertEqual((st2["bytes"], st2["slots"]), (st0["bytes"], st0["slots"]))
            left, right = self.record(lambda: self.osc.send("/play", 4), settle=0.1)
            self.assertTrue(all(v == 0.0 for v in right))
        self.retry(check)
        # Unloading an empty slot is fine too.
        self.assertEqual(self.osc.request("/unload", 4), ("/done", ["/unload", 4]))
        self.assert_still_healthy()

    def wait_status(self, pred, timeout=2.0):
        """Polls /status until pred(status) holds or `timeout` s pass; returns
        the last status either way."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if pred(st) or time.monotonic() > deadline:
                return st
            time.sleep(0.005)

    def test_requests_after_load_done_find_the_sample(self):
        """/done /load is sent as soon as the loader has handed the buffer to
        the audio thread, before a period has taken it.  Whatever the client
        sends next must still find the sample: /status counts the slot at
        once, a /play (plain, or in a timed bundle) or a /loop starts a voice,
        and an /unload empties the slot after the load (a /play after it
        plays nothing).  Many rounds, so that /done falls at every phase of
        the period."""
        slot = 9
        path = os.path.join(self.dir, "long.wav")
        write_wav(path, [(100 + i % 1000, -100 - i % 1000) for i in range(RATE)], RATE, 2)
        time.sleep(0.2)                 # one-shots of earlier tests have ended
        base = self.status()
        actions = ("play", "bundle", "loop", "unload")
        for i in range(48):
            action = actions[i % len(actions)]
            with self.subTest(round=i, action=action):
                self.assertEqual(self.load(slot, path), ("/done", ["/load", slot, RATE, 2]))
                if action == "play":
                    self.osc.send("/play", slot)
                elif action == "bundle":
                    self.osc.send_bundle(timetag_in(0.02), [("/play", [slot, 1.0])])
                elif action == "loop":
                    self.osc.send("/loop", slot)
                else:
                    self.assertEqual(self.osc.request("/unload", slot),
                                     ("/done", ["/unload", slot]))
                    self.assertEqual(self.status()["slots"], base["slots"])
                    self.osc.send("/play", slot)
                    time.sleep(4 * PERIOD / RATE)
                    self.assertEqual(self.status()["voices"], base["voices"],
                                     "a /play after /unload found the sample")
                    continue
                self.assertEqual(self.status()["slots"], base["slots"] + 1,
                                 "/status sent after /done does not count the slot")
                st = self.wait_status(lambda st: st["voices"] == base["voices"] + 1, 1.0)
                self.assertEqual(st["voices"], base["voices"] + 1,
                                 f"the {action} sent after /done found no sample")
                self.assertEqual(self.osc.request("/unload", slot), ("/done", ["/unload", slot]))
                st = self.wait_status(lambda st: (st["voices"], st["slots"])
                                      == (base["voices"], base["slots"]))
                self.assertEqual((st["voices"], st["slots"]), (base["voices"], base["slots"]))
        st = self.wait_status(lambda st: st["bytes"] == base["bytes"])
        self.assertEqual(st["bytes"], base["bytes"])

    def test_unload_racing_a_load(self):
        """/load and /unload of one slot sent back to back: they take effect
        in the order sent.  The load is answered /done (it was ready before
        the unload came; the unload then empties the slot after it) or /fail
        "superseded" (the unload came first, the load changed nothing); the
        unload is answered /done.  Either way the slot ends up empty, its
        memory is given back, and a /play of it plays nothing."""
        slot = 10
        small = os.path.join(self.dir, "small.wav")
        big = os.path.join(self.dir, "big.wav")
        write_wav(small, [(1000, -1000)] * 64, RATE, 2)
        write_wav(big, [(1000, -1000)] * (RATE * 10), RATE, 2)
        time.sleep(0.2)
        base = self.status()
        outcomes = {}
        for path, frames in ((small, 64), (big, RATE * 10)):
            for i in range(10):
                self.osc.send("/load", slot, path)
                self.osc.send("/unload", slot)
                replies = [self.osc.recv(10), self.osc.recv(10)]
                loads = [r for r in replies if r[1][:1] == ["/load"]]
                self.assertEqual(len(loads), 1, replies)
                self.assertIn(loads[0], (("/done", ["/load", slot, frames, 2]),
                                         ("/fail", ["/load", "superseded by a newer load of this"
                                                    " slot", slot])))
                self.assertIn(("/done", ["/unload", slot]), replies)
                outcomes[loads[0][0]] = outcomes.get(loads[0][0], 0) + 1
                self.assertEqual(self.status()["slots"], base["slots"])
        self.osc.send("/play", slot)
        time.sleep(4 * PERIOD / RATE)
        st = self.wait_status(lambda st: st["bytes"] == base["bytes"])
        self.assertEqual((st["slots"], st["voices"], st["bytes"]),
                         (base["slots"], base["voices"], base["bytes"]), outcomes)

    def test_bundle_starts_on_its_frame(self):
        """Two plays in one future bundle start on the same frame (they add
        up to one play at their summed velocity, sample-exact); a late
        bundle is counted in /status."""
        def check(attempt):
            left, right = self.record(
                lambda: self.osc.send_bundle(timetag_in(0.1), [("/play", [SHOT_SLOT, 0.25]),
                                                               ("/play", [SHOT_SLOT, 0.25])]),
                settle=0.3)
            self.assert_shot(right, gain=VEL)     # 0.25 + 0.25 on the same frame
            self.assert_loop_continues(left)
        self.retry(check)   # (if the bundle came late, its plays may part)
        late0 = self.status()["late"]
        self.osc.send_bundle(timetag_in(-1.0), [("/play", [31])])
        self.assertEqual(self.osc.request("/ping"), ("/pong", []))
        deadline = time.monotonic() + 2
        while self.status()["late"] == late0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.status()["late"], late0 + 1)


# ===========================================================================
# keys: /play and /loop keys, /set and /get (issue 16)

KEY_SLOT = 5        # the one-shot again, in a slot of these tests' own
EMPTY_SLOT = 9      # never loaded


class Keys(DaemonCase):
    """The keys of triggers and /set: every bad one refused with its /fail
    and nothing started; /set, /get and what defaults do to a trigger.
    (How each key sounds is the mixer's, tested with it; the velocity and
    what reaches /get are the control side's, tested here.)"""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.osc.request("/load", KEY_SLOT, cls.shot_path, expect=("/done", "/fail"),
                            timeout=10)
        assert r == ("/done", ["/load", KEY_SLOT, SHOT_FRAMES, 2]), r

    def setUp(self):
        super().setUp()
        for slot in (KEY_SLOT, SHOT_SLOT, LOOP_SLOT, EMPTY_SLOT):
            self.osc.send("/set", slot)
        self.assertEqual(self.osc.request("/ping"), ("/pong", []))

    def test_bad_keys_and_values(self):
        P = "/play"
        cases = [
            ((P, SHOT_SLOT, "pitch", 2.0), ("unknown key", SHOT_SLOT)),
            ((P, SHOT_SLOT, 0.5, "Rate", 2.0), ("unknown key", SHOT_SLOT)),
            ((P, SHOT_SLOT, "rate"), ("missing value for rate", SHOT_SLOT)),
            ((P, SHOT_SLOT, "rate", 2.0, "pan"), ("missing value for pan", SHOT_SLOT)),
            ((P, SHOT_SLOT, "rate", "fast"), ("bad value for rate", SHOT_SLOT)),
            ((P, SHOT_SLOT, "rate", b"\1"), ("bad value for rate", SHOT_SLOT)),
            ((P, SHOT_SLOT, 0.5, 1, 2), ("a key must be a string", SHOT_SLOT)),
            ((P, SHOT_SLOT, "gain", 1.0, 3, 4), ("a key must be a string", SHOT_SLOT)),
            ((P, SHOT_SLOT, "rate", 0), ("bad value for rate", SHOT_SLOT)),
            ((P, SHOT_SLOT, "rate", ("d", 1 / 32)), ("bad value for rate", SHOT_SLOT)),
            ((P, SHOT_SLOT, "rate", ("h", 17)), ("bad value for rate", SHOT_SLOT)),
            ((P, SHOT_SLOT, "rate", -17.0), ("bad value for rate", SHOT_SLOT)),
            ((P, SHOT_SLOT, "begin", -0.1), ("bad value for begin", SHOT_SLOT)),
            ((P, SHOT_SLOT, "begin", 1.0), ("begin must be less than end", SHOT_SLOT)),
            ((P, SHOT_SLOT, "end", 1.5), ("bad value for end", SHOT_SLOT)),
            ((P, SHOT_SLOT, "begin", 0.5, "end", 0.25),
             ("begin must be less than end", SHOT_SLOT)),
            ((P, SHOT_SLOT, "pan", 1.5), ("bad value for pan", SHOT_SLOT)),
            ((P, SHOT_SLOT, "pan", ("f", math.nan)), ("bad value for pan", SHOT_SLOT)),
            ((P, SHOT_SLOT, "gain", 4.5), ("bad value for gain", SHOT_SLOT)),
            ((P, SHOT_SLOT, "gain", ("d", math.inf)), ("bad value for gain", SHOT_SLOT)),
            ((P, SHOT_SLOT, "attack", -1.0), ("bad value for attack", SHOT_SLOT)),
            ((P, SHOT_SLOT, "release", 61), ("bad value for release", SHOT_SLOT)),
            ((P, SHOT_SLOT, "sustain", -0.5), ("bad value for sustain", SHOT_SLOT)),
            ((P, SHOT_SLOT, "cut", 1.5), ("bad value for cut", SHOT_SLOT)),
            ((P, SHOT_SLOT, "cut", ("f", math.nan)), ("bad value for cut", SHOT_SLOT)),
            ((P, SHOT_SLOT, "out", 1), ("bad value for out", SHOT_SLOT)),  # 1 pair
            ((P, SHOT_SLOT, "out", -1), ("bad value for out", SHOT_SLOT)),
            ((P, SHOT_SLOT, "velocity", 2.0), ("bad value for velocity", SHOT_SLOT)),
            # A good key before a bad one does not make it half good.
            ((P, SHOT_SLOT, 0.5, "gain", 0.5, "pan", 7.0), ("bad value for pan", SHOT_SLOT)),
            (("/play/0", 0.5, "pitch", 1.0), ("unknown key", 0)),
            (("/play/0", "cut", 0.25), ("bad value for cut", 0)),
            # /loop of the slot that loops: a bad key must not restart it.
            (("/loop", LOOP_SLOT, VEL, "rate", 0.0), ("bad value for rate", LOOP_SLOT)),
            (("/loop/1", VEL, "out", 3), ("bad value for out", LOOP_SLOT)),
            # Velocity 0 with a bad key: still refused, still nothing.
            ((P, SHOT_SLOT, 0, "pitch", 1.0), ("unknown key", SHOT_SLOT)),
        ]

        def action():
            for args, reply in cases:
                with self.subTest(args=args):
                    self.expect_fail(*args, reply=(args[0],) + reply)
            # Only the loop sounds: nothing started, nothing stolen.
            self.assertEqual(self.status()["voices"], 1)
        self.assert_still_healthy(action)

    def test_bad_set_changes_nothing(self):
        self.assert_unanswered("/set", KEY_SLOT, "gain", 0.5, "cut", 3)
        before = self.get(KEY_SLOT)
        self.assertEqual(before, ("/get.reply", [KEY_SLOT, "gain", 0.5, "cut", 3]))
        cases = [
            (("/set", KEY_SLOT, "gain", 0.25, "cut", 1.5), ("bad value for cut", KEY_SLOT)),
            (("/set", KEY_SLOT, "gain", 0.25, "pitch", 1), ("unknown key", KEY_SLOT)),
            (("/set", KEY_SLOT, "gain"), ("missing value for gain", KEY_SLOT)),
            (("/set", KEY_SLOT, "gain", 0.25, 7), ("a key must be a string", KEY_SLOT)),
            (("/set", KEY_SLOT, "velocity", ("f", math.nan)),
             ("bad value for velocity", KEY_SLOT)),
            (("/set", KEY_SLOT, "out", 1), ("bad value for out", KEY_SLOT)),
            # begin < end is checked on what the slot would hold.
            (("/set", KEY_SLOT, "end", 0.5, "begin", 0.75),
             ("begin must be less than end", KEY_SLOT)),
            (("/set",), ("expects id [key value]...",)),
            (("/set", SLOTS, "gain", 1.0), (RANGE, SLOTS)),
            (("/set", "x"), ("id must be a number",)),
            (("/get",), ("expects id",)),
            (("/get", 1, 2), ("expects id",)),
            (("/get", 0.5), ("id must be a whole number",)),
        ]

        def action():
            for args, reply in cases:
                with self.subTest(args=args):
                    self.expect_fail(*args, reply=(args[0],) + reply)
        self.assert_still_healthy(action)
        self.assertEqual(self.get(KEY_SLOT), before)

    def test_set_then_get(self):
        self.assertEqual(self.get(KEY_SLOT), ("/get.reply", [KEY_SLOT]))
        # Every key, as any number type; /get lists them in its order,
        # floats but cut and out as int32.
        self.assert_unanswered("/set", KEY_SLOT, "out", ("f", 0.0), "cut", ("d", -2.0),
                               "sustain", ("h", 2), "release", 0.5, "attack", 0.25,
                               "gain", 2, "pan", -0.5, "end", 0.75, "begin", 0.25,
                               "rate", -1.5, "velocity", 0.5)
        self.osc.send("/get", KEY_SLOT)
        raw = self.osc.recv_raw()
        tags = raw[raw.index(b",", 12):].split(b"\0")[0].decode()
        self.assertEqual(tags, ",i" + "sf" * 9 + "si" * 2)
        self.assertEqual(decode_message(raw), ("/get.reply", [
            KEY_SLOT, "velocity", 0.5, "rate", -1.5, "begin", 0.25, "end", 0.75,
            "pan", -0.5, "gain", 2.0, "attack", 0.25, "release", 0.5, "sustain", 2.0,
            "cut", -2, "out", 0]))
        # A later /set changes what it names and keeps the rest; the last of
        # a key given twice wins.
        self.assert_unanswered("/set", KEY_SLOT, "gain", 0.5, "gain", 0.25)
        self.assertEqual(self.get(KEY_SLOT)[1][11:13], ["gain", 0.25])
        # /set id: no defaults any more.
        self.assert_unanswered("/set", KEY_SLOT)
        self.assertEqual(self.get(KEY_SLOT), ("/get.reply", [KEY_SLOT]))
        # An empty slot has defaults too (they belong to the pad), and a
        # trigger of it still does nothing.
        self.assert_unanswered("/set", EMPTY_SLOT, "velocity", 0.5)
        self.assertEqual(self.get(EMPTY_SLOT), ("/get.reply", [EMPTY_SLOT, "velocity", 0.5]))
        self.assert_unanswered("/play", EMPTY_SLOT, "rate", 2.0)

    def test_default_velocity_and_trigger_override(self):
        """/set's velocity is the trigger's when it gives none; a trigger's
        own velocity (or velocity key) wins; a default of 0 makes a pad's
        plain triggers start nothing."""
        self.assert_unanswered("/set", KEY_SLOT, "velocity", 0.25, "gain", 1.0)

        def check(attempt):
            _, right = self.record(lambda: self.osc.send("/play", KEY_SLOT), settle=0.2)
            self.assert_shot(right, gain=0.25)
            _, right = self.record(lambda: self.osc.send("/play/5"), settle=0.2)
            self.assert_shot(right, gain=0.25)
            _, right = self.record(lambda: self.osc.send("/play", KEY_SLOT, VEL), settle=0.2)
            self.assert_shot(right, gain=VEL)
            _, right = self.record(
                lambda: self.osc.send("/play", KEY_SLOT, "velocity", 0.125), settle=0.2)
            self.assert_shot(right, gain=0.125)
        self.retry(check)
        self.assert_unanswered("/set", KEY_SLOT, "velocity", 0)

        def silent(attempt):
            left, right = self.record(lambda: self.osc.send("/play", KEY_SLOT), settle=0.2)
            self.assert_loop_continues(left)
            self.assertTrue(all(v == 0.0 for v in right), "a default velocity 0 played")
        self.retry(silent)

    def test_default_gain_and_trigger_override_sound(self):
        """A slot's `gain` default scales its voices, and a trigger's own
        `gain` replaces it for that voice (the mixer's gain: velocity times
        gain; powers of two, so the recording is exact)."""
        self.assert_unanswered("/set", KEY_SLOT, "gain", 0.5)

        def check(attempt):
            _, right = self.record(lambda: self.osc.send("/play", KEY_SLOT, VEL), settle=0.2)
            self.assert_shot(right, gain=VEL * 0.5)
            _, right = self.record(lambda: self.osc.send("/play", KEY_SLOT, VEL, "gain", 1),
                                   settle=0.2)
            self.assert_shot(right, gain=VEL)
            _, right = self.record(lambda: self.osc.send("/play", KEY_SLOT, VEL, "gain", 2.0),
                                   settle=0.2)
            self.assert_shot(right, gain=VEL * 2)
        self.retry(check)

    def test_trigger_with_keys_plays(self):
        """Good keys at their defaults' values play the sample as a plain
        trigger does, sample-exact (rate 1, the whole sample, centre, gain
        1, no envelope, no group, the first pair)."""
        def check(attempt):
            _, right = self.record(lambda: self.osc.send(
                "/play", KEY_SLOT, VEL, "rate", 1, "begin", 0.0, "end", ("d", 1.0),
                "pan", 0.0, "gain", ("h", 1), "attack", 0, "release", 0, "cut", 0,
                "out", 0), settle=0.2)
            self.assert_shot(right, gain=VEL)
        self.retry(check)

    def test_load_keeps_defaults_unload_clears_them(self):
        self.assert_unanswered("/set", KEY_SLOT, "velocity", 0.25, "cut", 4)
        want = ("/get.reply", [KEY_SLOT, "velocity", 0.25, "cut", 4])
        self.assertEqual(self.load(KEY_SLOT, self.shot_path),
                         ("/done", ["/load", KEY_SLOT, SHOT_FRAMES, 2]))
        self.assertEqual(self.get(KEY_SLOT), want)

        def check(attempt):
            _, right = self.record(lambda: self.osc.send("/play", KEY_SLOT), settle=0.2)
            self.assert_shot(right, gain=0.25)
        self.retry(check)
        self.assertEqual(self.osc.request("/unload", KEY_SLOT, expect=("/done", "/fail")),
                         ("/done", ["/unload", KEY_SLOT]))
        self.assertEqual(self.get(KEY_SLOT), ("/get.reply", [KEY_SLOT]))
        # A /set right behind an /unload is newer: the unload, applied at
        # the next period, does not clear it.
        self.osc.send("/unload", KEY_SLOT)
        self.osc.send("/set", KEY_SLOT, "gain", 0.5)
        self.assertEqual(self.osc.recv(), ("/done", ["/unload", KEY_SLOT]))
        self.assertEqual(self.get(KEY_SLOT), ("/get.reply", [KEY_SLOT, "gain", 0.5]))
        self.assert_unanswered("/set", KEY_SLOT)
        # A refused /unload (bad id) clears nothing.
        self.assert_unanswered("/set", SHOT_SLOT, "cut", 2)
        self.expect_fail("/unload", SLOTS, reply=("/unload", RANGE, SLOTS))
        self.assertEqual(self.get(SHOT_SLOT), ("/get.reply", [SHOT_SLOT, "cut", 2]))
        self.assertEqual(self.load(KEY_SLOT, self.shot_path),
                         ("/done", ["/load", KEY_SLOT, SHOT_FRAMES, 2]))
        self.assertEqual(self.get(KEY_SLOT), ("/get.reply", [KEY_SLOT]))


class KeysTwoOutputs(DaemonCase):
    """`out` is checked against the daemon's output pairs (--outputs)."""

    EXTRA_ARGS = ["--outputs", "2"]

    def test_out_below_the_number_of_pairs(self):
        self.assert_unanswered("/set", SHOT_SLOT, "out", 1)
        self.assertEqual(self.get(SHOT_SLOT), ("/get.reply", [SHOT_SLOT, "out", 1]))
        self.expect_fail("/set", SHOT_SLOT, "out", 2,
                         reply=("/set", "bad value for out", SHOT_SLOT))
        self.expect_fail("/play", SHOT_SLOT, "out", 2,
                         reply=("/play", "bad value for out", SHOT_SLOT))
        self.assert_unanswered("/set", SHOT_SLOT)


class BankKeys(unittest.TestCase):
    """A bank line's gain and keys are its slot's defaults: they apply at
    start-up, and on SIGHUP a line whose file is unchanged gets its new gain
    and keys without a reload, exactly its line's (a /set since is undone)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="looperd-bankkeys-")
        self.addCleanup(self.tmp.cleanup)
        _, self.shot = write_fixtures(self.tmp.name)
        self.bank = os.path.join(self.tmp.name, "bank.txt")
        self.jack = JackServer(rate=RATE, period=PERIOD)
        self.addCleanup(self.jack.close)

    def write_bank(self, text):
        with open(self.bank, "w") as f:
            f.write(text)

    def get(self, osc, slot):
        return osc.request("/get", slot, expect="/get.reply")[1]

    def play_gain(self, d, osc, slot):
        """The gain the one-shot of `slot` plays at (recorded, exact)."""
        for attempt in range(TAKES):
            rec = Recorder(self.jack, d.outputs, seconds=5)
            try:
                osc.send("/play", slot)
                time.sleep(0.3)
            finally:
                samples, meta = rec.stop()
            _, right = deinterleave(samples)
            onset = find_onset(right, 0, channels=1)
            if onset is not None and onset + SHOT_FRAMES <= len(right) and not meta["gaps"]:
                break
            pause_before_retake(attempt + 1, d.port)
        self.assertIsNotNone(onset, "nothing played")
        got = list(right[onset:onset + SHOT_FRAMES])
        gain = got[0] / (SHOT_R[0] / 32768.0)
        self.assertEqual(got, [v / 32768.0 * gain for v in SHOT_R], "not the sample, scaled")
        return gain

    def test_bank_keys_apply_and_sighup_changes_them_without_a_reload(self):
        self.write_bank("0 shot.wav 0.5 pan=-1 cut=2\n"
                        "1 shot.wav velocity=0.5\n"
                        "2 shot.wav\n"
                        "3 shot.wav pitch=2\n"              # bad: unknown key
                        "4 shot.wav begin=0.5 end=0.5\n")   # bad: begin >= end
        with Daemon(self.jack, extra_args=["--bank", self.bank]) as d, \
                OscClient(d.port) as osc:
            log = d.log()
            self.assertIn("bank.txt:4: unknown key in 'pitch=2'; line skipped", log)
            self.assertIn("bank.txt:5: begin must be less than end; line skipped", log)
            self.assertEqual(osc.request("/status", expect="/status.reply")[1][1], 3)
            self.assertEqual(self.get(osc, 0), [0, "pan", -1.0, "gain", 0.5, "cut", 2])
            self.assertEqual(self.get(osc, 1), [1, "velocity", 0.5])
            self.assertEqual(self.get(osc, 2), [2])
            self.assertEqual(self.get(osc, 3), [3])
            self.assertEqual(self.play_gain(d, osc, 1), 0.5)
            # A /set after the bank was read wins until the next SIGHUP.
            osc.send("/set", 1, "velocity", 0.25)
            osc.send("/set", 2, "gain", 2.0)
            self.assertEqual(self.get(osc, 1), [1, "velocity", 0.25])
            self.assertEqual(self.play_gain(d, osc, 1), 0.25)

            # The same files, other gains and keys; slot 2 leaves the bank.
            self.write_bank("0 shot.wav 0.25\n"
                            "1 shot.wav velocity=0.125\n")
            os.kill(d.proc.pid, signal.SIGHUP)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and d.log().count("slots to load") < 2:
                time.sleep(0.05)
            log = d.log()
            self.assertIn("0 slots to load, 1 to empty", log)
            for slot in (0, 1):
                self.assertEqual(log.count(f"loaded {slot} "), 1, f"slot {slot} loaded again")
            self.assertEqual(self.get(osc, 0), [0, "gain", 0.25])      # pan, cut gone
            self.assertEqual(self.get(osc, 1), [1, "velocity", 0.125])  # the /set undone
            self.assertEqual(self.get(osc, 2), [2])                     # left the bank
            self.assertEqual(osc.request("/status", expect="/status.reply")[1][1], 2)
            self.assertEqual(self.play_gain(d, osc, 1), 0.125)
            self.assertEqual(d.stop(), 0)


class Quit(unittest.TestCase):
    def test_quit(self):
        with JackServer(rate=RATE, period=PERIOD) as jack, Daemon(jack) as d, \
                OscClient(d.port) as osc:
            self.assertEqual(osc.request("/quit"), ("/done", ["/quit"]))
            d.proc.wait(timeout=10)
            self.assertEqual(d.proc.returncode, 0, d.log())


# ===========================================================================
# options

class SampleDir(DaemonCase):
    """--sample-dir: paths outside it are refused, symlinks and .. resolved."""
    SAMPLE_DIR = True

    def test_relative_path_inside_loads(self):
        self.assertEqual(self.load(5, "shot.wav"), ("/done", ["/load", 5, SHOT_FRAMES, 2]))
        self.assert_still_healthy()

    def test_absolute_path_outside(self):
        outside = os.path.join(self.dir, "outside.wav")
        shutil.copy(self.shot_path, outside)
        self.bad("/load", SHOT_SLOT, outside,
                 reply=("/load", "outside the sample directory", SHOT_SLOT))

    def test_dotdot_outside(self):
        outside = os.path.join(self.dir, "outside.wav")
        shutil.copy(self.shot_path, outside)

        def action():
            self.expect_fail("/load", SHOT_SLOT, "../outside.wav",
                             reply=("/load", "outside the sample directory", SHOT_SLOT))
            self.expect_fail("/load", SHOT_SLOT, self.samples + "/../outside.wav",
                             reply=("/load", "outside the sample directory", SHOT_SLOT))
        self.assert_still_healthy(action)

    def test_symlink_outside(self):
        outside = os.path.join(self.dir, "outside.wav")
        shutil.copy(self.shot_path, outside)
        link = os.path.join(self.samples, "link.wav")
        if not os.path.lexists(link):
            os.symlink(outside, link)

        def action():
            self.expect_fail("/load", SHOT_SLOT, "link.wav",
                             reply=("/load", "outside the sample directory", SHOT_SLOT))
            self.expect_fail("/load", SHOT_SLOT, link,
                             reply=("/load", "outside the sample directory", SHOT_SLOT))
        self.assert_still_healthy(action)

    def test_prefix_sibling_outside(self):
        """<dir>-evil/ shares the sample dir's prefix but is outside it."""
        evil = self.samples + "-evil"
        os.makedirs(evil, exist_ok=True)
        shutil.copy(self.shot_path, os.path.join(evil, "x.wav"))
        self.bad("/load", SHOT_SLOT, os.path.join(evil, "x.wav"),
                 reply=("/load", "outside the sample directory", SHOT_SLOT))

    def test_missing_inside(self):
        self.bad("/load", SHOT_SLOT, "nope.wav", reply=("/load", "no such file", SHOT_SLOT))


class Limits(DaemonCase):
    """--max-sample-mb 1 --max-memory-mb 2."""
    EXTRA_ARGS = ["--max-sample-mb", "1", "--max-memory-mb", "2"]

    def test_file_over_max_sample_mb(self):
        path = os.path.join(self.dir, "big.wav")
        write_wav(path, [1, 2] * (RATE * 6), RATE, 2)      # 6 s: 1.1 MiB of 16-bit samples
        self.bad("/load", 5, path,
                 reply=("/load", "file too large (1.1 MiB decoded; limit 1.0 MiB)", 5))

    def test_load_over_max_memory_mb(self):
        path = os.path.join(self.dir, "half.wav")
        frames = RATE * 4                                   # 0.73 MiB of 16-bit samples
        write_wav(path, [1, 2] * frames, RATE, 2)
        st0 = self.status()
        self.assertEqual(self.load(6, path), ("/done", ["/load", 6, frames, 2]))
        one = self.status()["bytes"] - st0["bytes"]
        self.assertEqual(self.load(7, path), ("/done", ["/load", 7, frames, 2]))
        used = self.status()["bytes"]
        self.assertGreater(used + one, 2 << 20)
        why = ("sample memory limit reached (%.1f MiB in use, this sample %.1f MiB, "
               "limit 2 MiB)" % (used / 1048576.0, one / 1048576.0))
        self.bad("/load", 8, path, reply=("/load", why, 8))
        self.assertEqual(self.status()["bytes"], used)
        # Replacing a loaded sample needs room for both while it is swapped.
        # Unloading returns the memory, after which the load fits.
        self.assertEqual(self.osc.request("/unload", 7), ("/done", ["/unload", 7]))
        deadline = time.monotonic() + 3
        while self.status()["bytes"] != used - one and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.load(8, path), ("/done", ["/load", 8, frames, 2]))
        self.assert_still_healthy()


class Allow(DaemonCase):
    """--allow (repeatable): other sources are dropped and counted."""
    EXTRA_ARGS = ["--allow", "127.0.0.2", "--allow", "127.0.0.3/32"]
    BIND = "127.0.0.2"

    def test_other_source_dropped_and_counted(self):
        before = self.status()["refused"]

        def action():
            with Client(self.daemon.port, bind="127.0.0.1") as other:
                for _ in range(5):
                    other.send("/ping")
                other.send("/play", SHOT_SLOT)
                self.assertIsNone(other.try_recv(0.3), "a denied source was answered")
        self.assert_still_healthy(action)
        self.assertEqual(self.status()["refused"] - before, 6)

    def test_second_allowed_source(self):
        with Client(self.daemon.port, bind="127.0.0.3") as third:
            self.assertEqual(third.request("/ping"), ("/pong", []))
        self.assert_still_healthy()


def udp_sockets(port):
    """Local addresses bound to UDP `port`, as 'ADDR:PORT' ('[v6]:PORT'),
    from `ss -uln` (iproute2), else from /proc/net/udp{,6}."""
    out = []
    if shutil.which("ss"):
        r = subprocess.run(["ss", "-H", "-uln", f"sport = :{port}"], capture_output=True,
                           text=True, timeout=10)
        if r.returncode == 0:
            for line in r.stdout.splitlines():
                f = line.split()
                if len(f) >= 4:
                    out.append(f[3])
            return sorted(out)
    for name, v6 in (("/proc/net/udp", False), ("/proc/net/udp6", True)):
        try:
            lines = open(name).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            addr, p = line.split()[1].split(":")
            if int(p, 16) != port:
                continue
            raw = bytes.fromhex(addr)
            if v6:
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                out.append(f"[{socket.inet_ntop(socket.AF_INET6, raw)}]:{port}")
            else:
                out.append(f"{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{port}")
    return sorted(out)


class ListenDefault(unittest.TestCase):
    def test_binds_only_loopback(self):
        with JackServer(rate=RATE, period=PERIOD) as jack, Daemon(jack) as d:
            self.assertEqual(udp_sockets(d.port), [f"127.0.0.1:{d.port}"])


class ListenIPv6(DaemonCase):
    """--listen ::1: bound only to [::1]:PORT, and serves IPv6 clients."""
    EXTRA_ARGS = ["--listen", "::1"]
    LISTEN_HOST = "::1"
    BIND = "::1"
    FAMILY = socket.AF_INET6

    def test_bound_only_to_ipv6_loopback(self):
        self.assertEqual(udp_sockets(self.daemon.port), [f"[::1]:{self.daemon.port}"])

    def test_serves_and_refuses_over_ipv6(self):
        self.bad("/nope", reply=("/nope", "unknown address"))
        st = self.status()
        self.assertEqual((st["rate"], st["period"]), (RATE, PERIOD))


if __name__ == "__main__":
    unittest.main(verbosity=2)
