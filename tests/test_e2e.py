#!/usr/bin/env python3
"""End to end: a real jackd (dummy backend), the real looperd binary, a
recording JACK client on its outputs, and real OSC packets over UDP.

The recording is compared with the fixture sample for sample: a 16-bit WAV at
the JACK rate decodes to x/32768 exactly and the mixer multiplies by the
velocity (0.5, a power of two), so every recorded float must be equal, not
close."""
import math
import os
import subprocess
import sys
import time
import unittest
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (TAKES, fixture_frames, DaemonCase, Recorder,  # noqa: E402
                          binary_path, deinterleave, disturbed_in, find_onset,
                          pause_before_retake, sounding_span, timetag_from_unix, write_wav)

RATE = 48000
PERIOD = 256


class CoreEndToEnd(DaemonCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stereo = os.path.join(cls.tmp.name, "stereo.wav")
        cls.stereo_frames = 12000
        cls.stereo_data = fixture_frames(cls.stereo_frames, 2)
        write_wav(cls.stereo, cls.stereo_data, RATE, 2)

    def load(self, slot, path):
        return self.osc.request("/load", slot, path, expect=("/done", "/fail"), timeout=10)

    def record(self, action, seconds, settle=0.0, part=sounding_span):
        """Records the daemon's outputs while action() runs, then `settle`
        more seconds.  Returns (left, right, meta).

        part(left, right) is the (start, end) of the frames the test will
        compare (None: nothing to compare); by default all that sounds.  A
        gap or xrun on or near them (disturbed_in: the machine's, not
        looperd's) spoils the sample-for-sample comparison, so such a take
        is recorded again (TAKES in all), and the test fails if every take
        is spoilt.  Elsewhere they cost nothing: these tests compare sound,
        not when it came."""
        def act():
            action()
            time.sleep(settle)

        def judge(left, right, meta, _):
            frames = part(left, right)
            return disturbed_in(meta, *frames) if frames else None

        left, right, meta, _, why = self.record_takes(act, seconds + settle + 5, judge)
        self.assertIsNone(why, "every take has a gap or xrun where it is compared")
        return left, right, meta

    def test_ping_pong(self):
        self.assertEqual(self.osc.request("/ping"), ("/pong", []))

    def test_load_play_is_sample_exact(self):
        self.assertEqual(self.load(0, self.stereo), ("/done", ["/load", 0, self.stereo_frames, 2]))
        left, right, _ = self.record(lambda: self.osc.send("/play", 0, 0.5), 0, settle=0.6)
        onset = find_onset(array("f", [abs(a) + abs(b) for a, b in zip(left, right)]), 0, channels=1)
        self.assertIsNotNone(onset, "nothing was played")
        n = self.stereo_frames
        got_l = list(left[onset:onset + n])
        got_r = list(right[onset:onset + n])
        want_l = [v / 32768.0 * 0.5 for v in self.stereo_data[0::2]]
        want_r = [v / 32768.0 * 0.5 for v in self.stereo_data[1::2]]
        bad = [i for i in range(n) if got_l[i] != want_l[i] or got_r[i] != want_r[i]]
        self.assertEqual(bad[:5], [], f"{len(bad)} frames differ, first at {bad[:1]}")
        # And nothing but silence after the sample's end.
        self.assertTrue(all(v == 0.0 for v in left[onset + n:]))
        self.assertTrue(all(v == 0.0 for v in right[onset + n:]))

    def test_mono_sounds_on_both_outputs(self):
        path = os.path.join(self.tmp.name, "mono.wav")
        data = fixture_frames(3000, 1)
        write_wav(path, data, RATE, 1)
        self.assertEqual(self.load(1, path), ("/done", ["/load", 1, 3000, 1]))
        left, right, _ = self.record(lambda: self.osc.send("/play", 1), 0, settle=0.3)
        onset = find_onset(left, 0, channels=1)
        self.assertIsNotNone(onset)
        want = [v / 32768.0 for v in data]
        self.assertEqual(list(left[onset:onset + 3000]), want)
        self.assertEqual(list(right[onset:onset + 3000]), want)

    def test_stop_silences(self):
        path = os.path.join(self.tmp.name, "long.wav")
        write_wav(path, [8000] * (RATE * 4), RATE, 1)  # 4 s of DC
        self.assertEqual(self.load(2, path)[0], "/done")
        stop_reply = []

        def action():
            self.osc.send("/play", 2, 1.0)
            self.osc.send("/play", 2, 1.0)
            time.sleep(0.5)
            stop_reply[:] = [self.osc.request("/stop")]

        left, right, _ = self.record(action, 0.5, settle=0.5)
        self.assertEqual(stop_reply, [("/done", ["/stop"])])
        onset = find_onset(left, 0, channels=1)
        self.assertIsNotNone(onset)
        last = max(i for i, v in enumerate(left) if v != 0.0)
        # Stopped well before the 4 s sample could end, and silent after.
        self.assertLess(last - onset, RATE * 2)
        self.assertTrue(all(v == 0.0 for v in left[last + 1:]))
        self.assertGreater(len(left) - last, RATE // 4, "not enough silence recorded")
        # The fade: no step between neighbouring samples bigger than 2 voices
        # x full level / 5 ms (240 frames at 48 kHz), plus rounding.
        level = 2 * 8000 / 32768.0
        steps = [abs(left[i + 1] - left[i]) for i in range(onset + 1, last + 1)]
        self.assertLessEqual(max(steps), level / 240 * 1.01 + 1e-6)

    def test_resampled_load_has_the_right_length(self):
        path = os.path.join(self.tmp.name, "441.wav")
        write_wav(path, [1000] * 44100, 44100, 1)
        self.assertEqual(self.load(3, path), ("/done", ["/load", 3, 48000, 1]))

    def test_long_resampled_load_is_seamless(self):
        """A file long enough (at least four 65536-frame blocks) to be decoded
        and converted in two halves on two threads (daemon/decode_split.c):
        the exact length, and a 1 kHz sine (left) and cosine (right) that
        play through the seam without a step.  The seam lies at the middle,
        3.0 s into the output, where the sine crosses zero and moves
        fastest, so a frame lost, repeated or out of phase there would at
        least double a step.  (The unit tests compare every frame
        with the sequential conversion; this is the daemon's loader.)"""
        n, f, amp = 6 * 44100, 1000.0, 16000
        w = 2 * math.pi * f / 44100
        path = os.path.join(self.tmp.name, "441-long.wav")
        write_wav(path, [(round(amp * math.sin(w * i)), round(amp * math.cos(w * i)))
                         for i in range(n)], 44100, 2)
        want = (n * RATE + 22050) // 44100
        self.assertEqual(self.load(5, path), ("/done", ["/load", 5, want, 2]))
        # Not heard by the tests after this one.
        self.addCleanup(self.osc.request, "/unload", 5, expect=("/done",), timeout=5)
        seam, span = want // 2, RATE // 10
        # The largest step a sine of this level makes at 48 kHz, plus the
        # converter's ripple and 16-bit rounding.
        limit = amp / 32768.0 * 2 * math.pi * f / RATE * 1.01 + 1e-4

        def around_seam(left, right):
            onset = find_onset(right, 0, channels=1)  # the cosine starts at full level
            return None if onset is None else (onset + seam - span, onset + seam + span)

        left, right, _ = self.record(lambda: self.osc.send("/play", 5, 1.0), 0, settle=3.3,
                                     part=around_seam)
        onset = find_onset(right, 0, channels=1)
        self.assertIsNotNone(onset, "nothing was played")
        self.assertGreater(len(left), onset + seam + span, "the recording ends too early")
        bad = []
        for name, ch in (("left", left), ("right", right)):
            x = ch[onset + seam - span:onset + seam + span]
            steps = [abs(x[i + 1] - x[i]) for i in range(len(x) - 1)]
            worst = max(range(len(steps)), key=steps.__getitem__)
            if steps[worst] > limit:
                bad.append(f"{name}: step {steps[worst]:.5f} (limit {limit:.5f}) at output "
                           f"frame {seam - span + worst} (seam at {seam})")
        self.assertEqual(bad, [])

    def test_missing_file_fails_and_costs_nothing(self):
        self.assertEqual(self.load(4, self.stereo)[0], "/done")
        self.assertEqual(self.load(4, "/nonexistent/x.wav"),
                         ("/fail", ["/load", "no such file", 4]))
        self.assertEqual(self.osc.request("/ping"), ("/pong", []))
        left, _, _ = self.record(lambda: self.osc.send("/play", 4, 0.5), 0, settle=0.5)
        onset = find_onset(left, 0, channels=1)
        self.assertIsNotNone(onset, "the loaded sample no longer plays")
        want = [v / 32768.0 * 0.5 for v in self.stereo_data[0::2]]
        self.assertEqual(list(left[onset:onset + self.stereo_frames]), want)

    def test_too_many_channels(self):
        path = os.path.join(self.tmp.name, "three.wav")
        write_wav(path, [100] * 300, RATE, 3)
        addr, args = self.load(5, path)
        self.assertEqual(addr, "/fail")
        self.assertEqual(args[0], "/load")
        self.assertIn("too many channels", args[1])
        self.assertEqual(args[2], 5)

    def test_play_of_empty_slot_is_ignored(self):
        self.osc.send("/play", 31, 1.0)
        self.assertEqual(self.osc.request("/ping"), ("/pong", []))

    def test_bad_play_arguments(self):
        self.assertEqual(self.osc.request("/play", 32), ("/fail", ["/play", "id out of range (0..31)", 32]))
        self.assertEqual(self.osc.request("/play", "x")[1][:2], ["/play", "id must be a number"])


def thread_stat(pid: int, name: str) -> list[str]:
    """The fields of /proc/PID/task/TID/stat after the command name, for the
    thread of `pid` called `name` (fields[0] is field 3, the state)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
    raise AssertionError(f"no thread called {name} in process {pid}")


def thread_faults(pid: int, name: str) -> tuple[int, int]:
    """(minor, major) page faults so far of the thread called `name`
    (fields 10 and 12)."""
    fields = thread_stat(pid, name)
    return int(fields[7]), int(fields[9])


def thread_nice(pid: int, name: str) -> int:
    return int(thread_stat(pid, name)[16])  # field 19


class Reload(DaemonCase):
    """A daemon of its own, so that the bytes /status counts are this
    test's alone."""

    def test_reload_reuses_the_freed_mapping_and_plays_exactly(self):
        """Reloading a slot: the buffer before the current one, once freed,
        is kept as a spare (common/sample.c) and the next load that fits
        takes it.  Three loads of a slot, A, B, then C (shorter than A, at
        least three quarters of it): C is built in A's mapping, which
        /status shows as the bytes held (C counts A's whole mapping, so the
        total is what it was with B), and it plays exactly C, with silence
        after its end -- nothing of A, whose samples that memory held.
        32-bit PCM, stored as floats (8 bytes a frame), so a few seconds
        pass the 2 MiB from which buffers are mapped; the values are 16-bit
        ones shifted up, which decode exactly."""
        def pcm32(n, mul, add):
            return [(((i * mul + c * 11000 + add) % 30000) + 100) * (1 if (i + c) % 2 else -1)
                    * 65536 for i in range(n) for c in range(2)]

        slot, long_n, short_n = 0, 300000, 270000
        files = {}
        for name, n, mul, add in (("a", long_n, 37, 0), ("b", long_n, 41, 7),
                                  ("c", short_n, 53, 3)):
            files[name] = (os.path.join(self.tmp.name, f"reload-{name}.wav"), pcm32(n, mul, add))
            write_wav(files[name][0], files[name][1], RATE, 2, sampwidth=4)

        def held():
            return self.osc.status()["bytes"]

        def settled(limit):
            """The bytes held once the replaced buffer has been freed."""
            deadline = time.monotonic() + 5
            while held() > limit and time.monotonic() < deadline:
                time.sleep(0.02)
            return held()

        self.assertEqual(held(), 0)
        self.assertEqual(self.osc.request("/load", slot, files["a"][0], expect=("/done", "/fail"),
                                          timeout=10), ("/done", ["/load", slot, long_n, 2]))
        a_bytes = held()
        self.assertGreaterEqual(a_bytes, long_n * 8)
        self.assertEqual(self.osc.request("/load", slot, files["b"][0], expect=("/done", "/fail"),
                                          timeout=10), ("/done", ["/load", slot, long_n, 2]))
        self.assertEqual(settled(a_bytes), a_bytes)  # B alone: A freed, now a spare
        self.assertEqual(self.osc.request("/load", slot, files["c"][0], expect=("/done", "/fail"),
                                          timeout=10), ("/done", ["/load", slot, short_n, 2]))
        # C alone; in a mapping of its own it would count 30000 frames less.
        self.assertEqual(settled(a_bytes), a_bytes, "C did not get A's mapping")

        # Its first quarter second and its last, with the silence after: two
        # short recordings of a play rather than one of 6 s, which on a
        # busy VM would rarely be free of gaps.  A part with a gap or xrun on or
        # near it (or a recording started too late to hold it) is recorded
        # again with the next play; a clean one is kept.
        data = files["c"][1]
        want_l = [v / 2147483648.0 * 0.5 for v in data[0::2]]
        want_r = [v / 2147483648.0 * 0.5 for v in data[1::2]]
        span = RATE // 4
        head = tail = None
        for attempt in range(TAKES):
            rec = Recorder(self.jack, self.daemon.outputs, seconds=6)
            t_play = time.monotonic()
            self.osc.send("/play", slot, 0.5)
            time.sleep(0.45)
            got, meta = rec.stop()
            if head is None:
                left, right = deinterleave(got)
                onset = find_onset(right, 0, channels=1)
                self.assertIsNotNone(onset, "nothing was played")
                if (len(left) - onset >= span + 2 * PERIOD  # the recorder's last periods may be 0
                        and disturbed_in(meta, onset, onset + span) is None):
                    head = (left[onset:onset + span], right[onset:onset + span])
            time.sleep(max(0.0, t_play + short_n / RATE - 0.6 - time.monotonic()))
            rec = Recorder(self.jack, self.daemon.outputs, seconds=6)
            time.sleep(0.9)
            got, meta = rec.stop()
            if tail is None:
                left, right = deinterleave(got)
                last = max((i for i in range(len(left)) if left[i] or right[i]), default=None)
                self.assertIsNotNone(last, "nothing was recorded at the end")
                self.assertGreater(len(left) - last, RATE // 10,
                                   "too little recorded after the end")
                if last + 1 >= span and disturbed_in(meta, last + 1 - span, len(left)) is None:
                    tail = (left[last + 1 - span:], right[last + 1 - span:])
            if head is not None and tail is not None:
                break
            print(f"take {attempt + 1}: a part has a gap or xrun, or started late; again",
                  file=sys.stderr)
            self.osc.request("/stop", expect=("/done",), timeout=5)
            pause_before_retake(attempt + 1, self.daemon.port)
        self.assertIsNotNone(head, "every recording of the start has a gap or xrun")
        self.assertIsNotNone(tail, "every recording of the end has a gap or xrun, or started late")

        bad = [i for i in range(span) if head[0][i] != want_l[i] or head[1][i] != want_r[i]]
        self.assertEqual(bad[:5], [], f"start: {len(bad)} of {span} frames differ")
        # The last frame that sounds must be C's last, the span before it
        # C's last frames, and nothing after it (A's samples went on for
        # 30000 frames more in this memory).
        end = short_n - span
        bad = [i for i in range(span) if tail[0][i] != want_l[end + i] or
               tail[1][i] != want_r[end + i]]
        self.assertEqual(bad[:5], [], f"end: {len(bad)} of the last {span} frames differ")


class ThreadPriorities(DaemonCase):
    def test_loader_yields_to_the_control_threads(self):
        """Decoding must not delay a /play: the loader (and the decoder
        threads it starts, which inherit its nice value) runs ten steps
        nicer than the OSC and reply threads."""
        pid = self.daemon.proc.pid
        osc = thread_nice(pid, "looperd-osc")
        self.assertEqual(thread_nice(pid, "looperd-reply"), osc)
        self.assertEqual(thread_nice(pid, "looperd-loader"), min(osc + 10, 19))


class AudioThreadFaults(DaemonCase):
    """The audio thread takes no page fault while it works: every page it
    touches (code, JACK's segments, the engine's pools, its stack, the
    samples) was touched before its first period, and stays locked
    (daemon/memlock.h).  Four voices, so that the workload also steals."""

    daemon_args = ("--voices", "4")

    def test_no_page_faults_while_playing(self):
        tmp = self.tmp.name
        stereo = os.path.join(tmp, "f-stereo.wav")
        mono = os.path.join(tmp, "f-mono.wav")
        other_rate = os.path.join(tmp, "f-44k.wav")
        write_wav(stereo, fixture_frames(24000, 2), RATE, 2)
        write_wav(mono, fixture_frames(3000, 1), RATE, 1)
        write_wav(other_rate, fixture_frames(22050, 2), 44100, 2)
        for slot, path in ((0, stereo), (1, mono), (2, other_rate)):
            self.assertEqual(self.osc.request("/load", slot, path, expect=("/done", "/fail"),
                                              timeout=10)[0], "/done")
        self.assertEqual(self.osc.request("/ping"), ("/pong", []))
        pid = self.daemon.proc.pid
        before = thread_faults(pid, "looperd-audio")

        # Every path of the process callback: plain and timed starts, a
        # loop, stealing (more voices than four), fades from /stop id,
        # /unload and /stop, a slot reloaded while its old buffer sounds.
        for i in range(12):
            self.osc.send("/play", i % 3, 0.25)
            time.sleep(0.01)
        self.osc.send("/loop", 0)
        now = time.time()
        self.osc.send_bundle(timetag_from_unix(now + 0.05),
                             [("/play", [1, 0.5]), ("/play", [2, 0.5])])
        self.osc.send_bundle(timetag_from_unix(now + 0.1), [("/stop", [2])])
        time.sleep(0.2)
        self.osc.send("/stop", 1)
        self.assertEqual(self.osc.request("/load", 0, other_rate, expect=("/done", "/fail"),
                                          timeout=10)[0], "/done")
        self.osc.send("/unload", 2)
        time.sleep(0.2)
        self.osc.send("/stop")
        time.sleep(0.1)
        self.assertEqual(self.osc.request("/status", expect="/status.reply")[0], "/status.reply")
        self.assertEqual(self.osc.request("/ping"), ("/pong", []))

        after = thread_faults(pid, "looperd-audio")
        self.assertEqual(after, before,
                         f"the audio thread took page faults: (minor, major) {before} -> {after}")


class NoServer(unittest.TestCase):
    def test_exits_with_one_clear_line(self):
        env = dict(os.environ, JACK_DEFAULT_SERVER="looperd-test-no-such-server",
                   JACK_NO_START_SERVER="1")
        p = subprocess.run([binary_path("LOOPERD_BIN", "--looperd-bin"), "--port", "0"],
                           env=env, capture_output=True, text=True, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("no JACK server is running", lines[0])


if __name__ == "__main__":
    unittest.main(verbosity=2)
