#!/usr/bin/env python3
"""The sampler's keys end to end: a real jackd (dummy backend), the real
looperd binary, real OSC packets, and the recorded JACK output compared
sample by sample with the formulas docs/protocol.md and docs/sound.md give.

Where the mixer's result is exact (rate +-1, begin/end, a plain gain of a
power of two) the comparison is for equality; where it computes in float
(interpolation, pan, envelopes) within 1e-6 of the formula evaluated in
double precision."""
import math
import os
import struct
import sys
import time
import unittest
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (TAKES, DaemonCase, Recorder, deinterleave,  # noqa: E402
                          disturbed_in, fixture_frames, pause_before_retake,
                          sound_judge, sounding_span, timetag_in, timetag_indices,
                          write_wav)

RATE = 48000
FADE = 240  # the declick fade: 5 ms at 48 kHz (ENGINE_FADE_SECONDS)
TOL = 1e-6


def cubic(x, y0, y1, y2, y3):
    """The 4-point, 3rd-order Hermite of SuperCollider's PlayBuf."""
    c0 = y1
    c1 = 0.5 * (y2 - y0)
    c2 = y0 - 2.5 * y1 + 2.0 * y2 - 0.5 * y3
    c3 = 0.5 * (y3 - y0) + 1.5 * (y1 - y2)
    return ((c3 * x + c2) * x + c1) * x + c0


def resampled(s, rate, b, e):
    """[(k, value or None)] of a one-shot at `rate` over frames [b, e) of s:
    output frame k reads position b + k*rate (forwards) or e-1 - k*|rate|
    (backwards), for k*|rate| < e - b.  The value is None where a
    neighbour of the interpolation lies outside [b, e) (docs/sound.md says
    what is read there; these tests compare only the inside)."""
    out = []
    k = 0
    while k * abs(rate) < e - b:  # T = ceil(L / |rate|) frames (docs/sound.md)
        p = b + k * rate if rate > 0 else (e - 1) + k * rate
        i = math.floor(p)
        x = p - i
        if i - 1 >= b and i + 2 < e:
            out.append((k, cubic(x, s[i - 1], s[i], s[i + 1], s[i + 2])))
        else:
            out.append((k, None))
        k += 1
    return out


def signal(n):
    """A smooth 16-bit mono signal, non-zero on frame 0."""
    return [int(round(13000 * math.sin(2 * math.pi * 440 * i / RATE + 0.3)
                      + 6500 * math.sin(2 * math.pi * 1234 * i / RATE + 1.1)))
            for i in range(n)]


def first_nonzero(xs, start=0):
    for i in range(start, len(xs)):
        if xs[i] != 0.0:
            return i
    return None


class SamplerCase(DaemonCase):
    def load(self, slot, path):
        r = self.osc.request("/load", slot, path, expect=("/done", "/fail"), timeout=10)
        self.assertEqual(r[0], "/done", r)
        return r

    def record(self, action, seconds, sources=None):
        """Records `sources` (default: the first pair) while action() runs,
        then `seconds` more; a take disturbed where it sounds is taken again.
        Returns (left, right)."""
        def act():
            action()
            time.sleep(seconds)

        left, right, _, _, why = self.record_takes(act, seconds + 5, sound_judge,
                                                   sources=sources)
        self.assertIsNone(why, "every take was disturbed where it sounds")
        return left, right

    def assert_close(self, got, want, what, tol=TOL):
        bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want))
               if w is not None and abs(g - w) > tol]
        self.assertEqual(len(got), len(want), f"{what}: length")
        self.assertEqual(bad[:3], [], f"{what}: {len(bad)} frames off")


class Sampler(SamplerCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.n = 12000
        cls.mono16 = signal(cls.n)
        cls.mono16_path = os.path.join(cls.tmp.name, "mono16.wav")
        write_wav(cls.mono16_path, cls.mono16, RATE, 1)
        # 24-bit values that 16 bits cannot hold: stored as floats (F32).
        cls.mono24 = [v * 256 + (i % 7) - 3 for i, v in enumerate(cls.mono16)]
        cls.mono24_path = os.path.join(cls.tmp.name, "mono24.wav")
        write_wav(cls.mono24_path, cls.mono24, RATE, 1, sampwidth=3)
        cls.stereo = fixture_frames(cls.n, 2)
        cls.stereo_path = os.path.join(cls.tmp.name, "stereo.wav")
        write_wav(cls.stereo_path, cls.stereo, RATE, 2)

    def play_rate(self, slot, values, rate, extra=()):
        self.load(slot, self.mono16_path if values is self.mono16 else self.mono24_path)
        scale = 32768.0 if values is self.mono16 else 8388608.0
        s = [v / scale for v in values]
        left, right = self.record(
            lambda: self.osc.send("/play", slot, 0.5, "rate", float(rate), *extra),
            len(s) / RATE / min(1.0, abs(rate)) + 0.3)
        on = first_nonzero(left)
        self.assertIsNotNone(on, "nothing was played")
        # The rate travels as an OSC float (32 bits): that is the rate played.
        rate32 = struct.unpack("f", struct.pack("f", rate))[0]
        want = resampled(s, rate32, 0, len(s))
        got = list(left[on:on + len(want)])
        self.assert_close(got, [None if v is None else 0.5 * v for _, v in want],
                          f"rate {rate}")
        self.assertEqual(list(left[on:on + len(want)]), list(right[on:on + len(want)]),
                         "a mono sample sounds the same on both sides")
        # Nothing after the last position inside the sample.
        self.assertTrue(all(v == 0.0 for v in left[on + len(want):]),
                        f"rate {rate}: sound after the end")
        return on

    def test_rate_2_16bit(self):
        self.play_rate(0, self.mono16, 2.0)

    def test_rate_half_16bit(self):
        self.play_rate(0, self.mono16, 0.5)

    def test_rate_not_a_power_of_two_float(self):
        # 0.73: the fractions go all round the unit interval.
        self.play_rate(1, self.mono24, 0.73)

    def test_rate_reverse_interpolated_float(self):
        self.play_rate(1, self.mono24, -1.37)

    def test_rate_minus_one_is_the_sample_reversed(self):
        self.load(2, self.stereo_path)
        left, right = self.record(lambda: self.osc.send("/play", 2, 0.5, "rate", -1.0),
                                  self.n / RATE + 0.3)
        on = first_nonzero([abs(a) + abs(b) for a, b in zip(left, right)])
        self.assertIsNotNone(on)
        want_l = [v / 32768.0 * 0.5 for v in reversed(self.stereo[0::2])]
        want_r = [v / 32768.0 * 0.5 for v in reversed(self.stereo[1::2])]
        self.assertEqual(list(left[on:on + self.n]), want_l)
        self.assertEqual(list(right[on:on + self.n]), want_r)
        self.assertTrue(all(v == 0.0 for v in left[on + self.n:]))

    def test_begin_end_exact_frames(self):
        self.load(2, self.stereo_path)
        b, e = self.n // 4, self.n // 2  # begin 0.25 end 0.5
        for rate in (1.0, -1.0):
            left, right = self.record(
                lambda: self.osc.send("/play", 2, 0.5, "begin", 0.25, "end", 0.5,
                                      "rate", rate), 0.6)
            on = first_nonzero([abs(x) + abs(y) for x, y in zip(left, right)])
            self.assertIsNotNone(on)
            frames = list(range(b, e)) if rate > 0 else list(range(e - 1, b - 1, -1))
            self.assertEqual(list(left[on:on + len(frames)]),
                             [self.stereo[2 * f] / 32768.0 * 0.5 for f in frames], rate)
            self.assertEqual(list(right[on:on + len(frames)]),
                             [self.stereo[2 * f + 1] / 32768.0 * 0.5 for f in frames], rate)
            self.assertTrue(all(v == 0.0 for v in left[on + len(frames):]), rate)

    def test_loop_between_begin_and_end(self):
        self.load(2, self.stereo_path)
        b, e = self.n // 4, self.n // 2

        def act():
            self.osc.send("/loop", 2, 0.5, "begin", 0.25, "end", 0.5)
            time.sleep(0.6)  # 4 rounds of 0.125 s
            self.osc.send("/stop", 2)

        left, right = self.record(act, 0.2)
        on = first_nonzero([abs(x) + abs(y) for x, y in zip(left, right)])
        self.assertIsNotNone(on)
        frames = list(range(b, e)) * 4
        self.assertEqual(list(left[on:on + len(frames)]),
                         [self.stereo[2 * f] / 32768.0 * 0.5 for f in frames])

    def test_pan_law(self):
        self.load(0, self.mono16_path)
        s = [v / 32768.0 for v in self.mono16]
        for pan in (-1.0, 0.0, 1.0, 0.5):
            gl = math.sqrt(2) * math.cos((pan + 1) * math.pi / 4)
            gr = math.sqrt(2) * math.sin((pan + 1) * math.pi / 4)
            left, right = self.record(lambda: self.osc.send("/play", 0, 0.5, "pan", pan),
                                      self.n / RATE + 0.3)
            on = first_nonzero([abs(x) + abs(y) for x, y in zip(left, right)])
            self.assertIsNotNone(on)
            self.assert_close(list(left[on:on + self.n]), [0.5 * gl * v for v in s],
                              f"pan {pan} left")
            self.assert_close(list(right[on:on + self.n]), [0.5 * gr * v for v in s],
                              f"pan {pan} right")
            if pan == 0.0:  # today's level, exactly
                self.assertEqual(list(left[on:on + self.n]), [0.5 * v for v in s])

    def test_pan_on_a_stereo_sample_is_a_balance(self):
        self.load(2, self.stereo_path)
        pan = -0.5
        gl = math.sqrt(2) * math.cos((pan + 1) * math.pi / 4)
        gr = math.sqrt(2) * math.sin((pan + 1) * math.pi / 4)
        left, right = self.record(lambda: self.osc.send("/play", 2, 0.5, "pan", pan), 0.6)
        on = first_nonzero([abs(x) + abs(y) for x, y in zip(left, right)])
        self.assert_close(list(left[on:on + self.n]),
                          [0.5 * gl * v / 32768.0 for v in self.stereo[0::2]], "left")
        self.assert_close(list(right[on:on + self.n]),
                          [0.5 * gr * v / 32768.0 for v in self.stereo[1::2]], "right")

    def test_gain_on_top_of_velocity(self):
        self.load(2, self.stereo_path)
        left, right = self.record(lambda: self.osc.send("/play", 2, 0.5, "gain", 0.5), 0.6)
        on = first_nonzero([abs(x) + abs(y) for x, y in zip(left, right)])
        self.assertEqual(list(left[on:on + self.n]),
                         [v / 32768.0 * 0.25 for v in self.stereo[0::2]])


class CutGroups(SamplerCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Two long constant samples, told apart by their level.
        cls.a = os.path.join(cls.tmp.name, "a.wav")
        cls.b = os.path.join(cls.tmp.name, "b.wav")
        write_wav(cls.a, [16384] * RATE, RATE, 1)  # 0.5
        write_wav(cls.b, [8192] * RATE, RATE, 1)  # 0.25

    def setUp(self):
        super().setUp()
        self.load(0, self.a)
        self.load(1, self.b)

    def two_timed(self, first, second, gap_frames=4800, meta_too=False):
        """Sends `first` and `second` (argument lists of /play) as bundles
        gap_frames apart; returns the left channel (and, with meta_too, the
        recording indices where JACK's clock, as the recorder logged it,
        puts the two timetags: the frames they start on)."""
        def act():
            t = timetag_in(0.3)
            self.osc.send_bundle(t, [("/play", list(first))])
            t2 = t + (gap_frames << 32) // RATE
            self.osc.send_bundle(t2, [("/play", list(second))])
            time.sleep(1.7)
            return t, t2

        def judge(left, right, meta, tags):
            # What the tests compare: the first onset, the change the second
            # voice makes, and 2400 frames after it (the fade, the sum).
            on = first_nonzero(left)
            if on is None:
                return None
            change = next((i for i in range(on, len(left)) if left[i] != left[on]), on)
            return disturbed_in(meta, on, change + 2400)

        left, right, meta, tags, why = self.record_takes(act, 3.0, judge)
        self.assertIsNone(why, "every take was disturbed where it sounds")
        if not meta_too:
            return left
        return left, timetag_indices(meta, tags, self.jack.period)

    def test_positive_group_cuts_any_slot(self):
        left, (at1, at2) = self.two_timed((0, 1.0, "cut", 1), (1, 1.0, "cut", 1),
                                          meta_too=True)
        on = first_nonzero(left)
        self.assertIsNotNone(on)
        self.assertEqual(left[on], 0.5)
        second = next(i for i in range(on, len(left)) if left[i] != 0.5)
        # On the frames of their timetags, as JACK maps them (4800 frames
        # apart on the wall clock; JACK's clock, after an xrun seconds
        # before, can disagree by a few frames over 100 ms).
        self.assertLessEqual(abs(on - at1), 1, "the first voice starts on time")
        self.assertLessEqual(abs(second - at2), 1, "the later voice starts on time")
        # The earlier voice fades over the declick fade from that frame.
        want = [0.25 + 0.5 * max(0.0, 1 - (i + 1) / FADE) for i in range(FADE + 100)]
        self.assert_close(list(left[second:second + len(want)]), want, "cut fade")

    def test_other_group_and_no_group_untouched(self):
        left = self.two_timed((0, 1.0, "cut", 1), (1, 1.0, "cut", 2))
        on = first_nonzero(left)
        second = next(i for i in range(on, len(left)) if left[i] != 0.5)
        self.assertTrue(all(v == 0.75 for v in left[second:second + 2000]))

    def test_negative_group_is_per_slot(self):
        left = self.two_timed((0, 1.0, "cut", -1), (1, 1.0, "cut", -1))
        on = first_nonzero(left)
        second = next(i for i in range(on, len(left)) if left[i] != 0.5)
        self.assertTrue(all(v == 0.75 for v in left[second:second + 2000]),
                        "another slot's -1 is another group")
        left = self.two_timed((0, 0.5, "cut", -1), (0, 1.0, "cut", -1))
        on = first_nonzero(left)
        second = next(i for i in range(on, len(left)) if left[i] != 0.25)
        want = [0.5 + 0.25 * max(0.0, 1 - (i + 1) / FADE) for i in range(FADE + 100)]
        self.assert_close(list(left[second:second + len(want)]), want, "same slot cut")


class OutputPairs(SamplerCase):
    daemon_args = ("--outputs", "2")

    def test_out_1_sounds_only_on_out_3_and_4(self):
        path = os.path.join(self.tmp.name, "s.wav")
        data = fixture_frames(6000, 2)
        write_wav(path, data, RATE, 2)
        self.load(0, path)
        ports = self.jack.ports(f"{self.daemon.name}:")
        for k in range(1, 5):
            self.assertIn(f"{self.daemon.name}:out_{k}", ports)
        for attempt in range(1, TAKES + 1):
            first = Recorder(self.jack, self.daemon.outputs, seconds=5)
            second = Recorder(self.jack, [f"{self.daemon.name}:out_3",
                                          f"{self.daemon.name}:out_4"], seconds=5)
            try:
                self.osc.send("/play", 0, 0.5, "out", 1)
                time.sleep(0.5)
            finally:
                s1, m1 = first.stop()
                s2, m2 = second.stop()
            l1, r1 = deinterleave(s1)
            l2, r2 = deinterleave(s2)
            span = sounding_span(l2, r2)
            why = disturbed_in(m2, *span) if span else None
            if why is None:
                break
            pause_before_retake(attempt, self.daemon.port)
        self.assertTrue(all(v == 0.0 for v in l1) and all(v == 0.0 for v in r1),
                        "out_1/out_2 are silent")
        on = first_nonzero([abs(a) + abs(b) for a, b in zip(l2, r2)])
        self.assertIsNotNone(on, "nothing on out_3/out_4")
        self.assertEqual(list(l2[on:on + 6000]), [v / 32768.0 * 0.5 for v in data[0::2]])
        self.assertEqual(list(r2[on:on + 6000]), [v / 32768.0 * 0.5 for v in data[1::2]])

    def test_out_beyond_the_pairs_is_refused(self):
        path = os.path.join(self.tmp.name, "s.wav")
        write_wav(path, fixture_frames(600, 2), RATE, 2)
        self.load(0, path)
        r = self.osc.request("/play", 0, 0.5, "out", 2, expect=("/fail",))
        self.assertEqual(r, ("/fail", ["/play", "bad value for out", 0]))


class Envelopes(SamplerCase):
    """attack, release, sustain and /stop's release on a constant sample, so
    the recording is the envelope itself (times 0.5)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.n = 12000
        cls.dc = os.path.join(cls.tmp.name, "dc.wav")
        write_wav(cls.dc, [16384] * cls.n, RATE, 1)  # 0.5

    def setUp(self):
        super().setUp()
        self.load(0, self.dc)

    def play(self, *keys, seconds=0.6):
        left, _ = self.record(lambda: self.osc.send("/play", 0, 1.0, *keys), seconds)
        return left

    def test_attack_ramps_up_from_silence(self):
        left = self.play("attack", 0.01)  # A = 480 frames
        on = first_nonzero(left) - 1  # frame 0 of the voice is silent
        want = [0.5 * min(t / 480, 1.0) for t in range(self.n)]
        self.assert_close(list(left[on:on + self.n]), want, "attack")
        self.assertTrue(all(v == 0.0 for v in left[on + self.n:]))

    def test_release_ends_on_the_last_frame(self):
        left = self.play("release", 0.02)  # R = 960, E = N - 1
        on = first_nonzero(left)
        want = [0.5 * min(1.0, (self.n - 1 - t) / 960) for t in range(self.n)]
        self.assert_close(list(left[on:on + self.n]), want, "release")
        self.assertTrue(all(v == 0.0 for v in left[on + self.n - 1:]))

    def test_sustain_then_release(self):
        left = self.play("sustain", 0.05, "release", 0.02)  # S = 2400, E = 3360
        on = first_nonzero(left)
        want = [0.5 * max(0.0, min(1.0, (3360 - t) / 960)) for t in range(3400)]
        self.assert_close(list(left[on:on + 3400]), want, "sustain + release")
        self.assertTrue(all(v == 0.0 for v in left[on + 3360:]))

    def test_sustain_alone_ends_with_the_declick_fade(self):
        left = self.play("sustain", 0.05)  # S = 2400, E = S + 240
        on = first_nonzero(left)
        want = [0.5 * max(0.0, min(1.0, (2640 - t) / FADE)) for t in range(2700)]
        self.assert_close(list(left[on:on + 2700]), want, "sustain")
        self.assertTrue(all(v == 0.0 for v in left[on + 2640:]))

    def test_stop_of_a_loop_takes_its_release(self):
        def act():
            self.osc.send("/loop", 0, 1.0, "release", 0.1)  # 4800 frames
            time.sleep(0.3)
            self.osc.send("/stop", 0)
        left, _ = self.record(act, 0.4)
        on = first_nonzero(left)
        fade = next(i for i in range(on, len(left)) if left[i] != 0.5)
        want = [0.5 * max(0.0, 1 - (i + 1) / 4800) for i in range(4900)]
        self.assert_close(list(left[fade:fade + 4900]), want, "/stop over the release")
        self.assertTrue(all(v == 0.0 for v in left[fade + 4800:]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
