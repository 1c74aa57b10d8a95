#!/usr/bin/env python3
"""Musical time without Link, end to end (issue 17): a real jackd (dummy
backend), the real looperd, real OSC packets, and the recorded output
placed on JACK's own frame counter, where the grid is exact.

The engine's own timeline is a function of JACK's frame counter
(docs/timing.md): beat(f) = f * tempo / (60 * rate) until the first tempo
change, and after a change applied in the period starting at frame F,
beat(f) = beat(F) + (f - F) * tempo' / (60 * rate).  A launch point's frame
is the first frame at or after its instant: ceil(frame of beat B).  The
recorder's cycle log gives the JACK frame of every recorded frame, so the
test computes each expected frame itself and compares within 1 frame.
Where a tempo change applied (its period) is not known to the test, the
test finds the one period boundary of the recording that explains the
onsets, and asserts that one does."""
import math
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (CycleClock, Daemon, DaemonCase, OscClient, binary_path,  # noqa: E402
                          disturbed_in, encode_message, sounding_span, timetag_in,
                          write_wav)

RATE = 48000
PERIOD = 256
TEMPO = 240  # a beat is 12000 frames, a bar of 4 is 48000 (1 s)
FPB = 60 * RATE / TEMPO
LEVEL = 16384  # the flat sample's 16-bit value: 0.5
FADE = 240     # the declick fade, 5 ms


def onsets(xs):
    """Indices where the signal turns from silence to sound."""
    return [i for i in range(len(xs)) if xs[i] != 0.0 and (i == 0 or xs[i - 1] == 0.0)]


def frame_of(meta, i):
    """JACK's frame counter at recording index i (the cycle log: entry k is
    the cycle starting at index k * period, even across a gap)."""
    c = meta["cycles"][i // PERIOD]
    return c[0] + i % PERIOD


def boundaries(meta):
    """JACK frames of the recorded periods' first frames."""
    return [c[0] for c in meta["cycles"]]


def disturbed_among(meta, regions):
    """Why one of the recording's index ranges [start, end) cannot be
    trusted (disturbed_in), or None."""
    for start, end in regions:
        why = disturbed_in(meta, start, end)
        if why:
            return why
    return None


def too_few(found, at_least, every):
    """Whether a take lacks some of the sounds it should hold: fewer than
    at_least, or two more than 1.3 x `every` frames apart (one missing in
    between).  Then where it was lost is not known, and the whole take is
    judged: a disturbance anywhere retakes it, a clean one fails."""
    return len(found) < at_least or (every is not None and any(
        b - a > 1.3 * every for a, b in zip(found, found[1:])))


def grid_frame(b, tempo=TEMPO, anchor=(0, 0.0)):
    """The frame of beat b on a timeline anchored at (frame, beat)."""
    f0, b0 = anchor
    return f0 + math.ceil((b - b0) * 60 * RATE / tempo - 1e-6)


def beat_at(f, tempo=TEMPO, anchor=(0, 0.0)):
    f0, b0 = anchor
    return b0 + (f - f0) * tempo / (60 * RATE)


class Musical(DaemonCase):
    rate = RATE
    period = PERIOD
    daemon_args = ("--tempo", str(TEMPO), "--quantum", "4")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.short = os.path.join(cls.tmp.name, "short.wav")  # 4000 frames, well under a beat
        write_wav(cls.short, [LEVEL] * 4000, RATE, 1)
        cls.long = os.path.join(cls.tmp.name, "long.wav")    # 3 s
        write_wav(cls.long, [LEVEL] * (3 * RATE), RATE, 1)
        for slot, path in ((0, cls.short), (1, cls.long)):
            r = cls.osc.request("/load", slot, path, expect=("/done", "/fail"), timeout=10)
            assert r[0] == "/done", r

    def record(self, action, seconds, regions=None, at_least=1, every=None):
        """Records while action() runs (it returns what the judge needs);
        a take disturbed where the test looks is taken again: from the
        start to the first onset (the request's way to it), every onset,
        and the end of the sound, plus regions(left) if given; the whole
        take when onsets are missing (too_few)."""
        def judge(left, right, meta, result):
            on = onsets(left)
            if too_few(on, at_least, every):
                return disturbed_in(meta, 0, len(left))
            span = sounding_span(left, right)
            looked = [(0, on[0] + 1), *((i, i + 1) for i in on),
                      (max(0, span[1] - FADE - 1), span[1])]
            return disturbed_among(meta, looked + (regions(left) if regions else []))
        left, right, meta, result, why = self.record_takes(action, seconds, judge)
        self.assertIsNone(why, "every take was disturbed")
        return left, meta, result

    def send_frame(self, meta, wall):
        """The JACK frame at wall-clock time `wall` (the recorder's cycle
        log and its clock offsets)."""
        clock = CycleClock(meta["cycles"], meta["wall_minus_jack_us"])
        k, c, frac = clock.locate(wall)
        return c[0] + frac * PERIOD

    def quantized_start(self, address, q, keys=True):
        def action():
            t = time.time()
            if keys:
                self.osc.send(address, 0, 1.0, "quant", float(q))
            else:
                self.osc.send(address, 0, 1.0)
            time.sleep(q * 60 / TEMPO + 0.5)
            self.osc.send("/stop", 0)
            time.sleep(0.1)
            return t
        left, meta, sent = self.record(action, 4)
        on = onsets(left)
        self.assertTrue(on, "nothing sounded")
        s = frame_of(meta, on[0])
        b = beat_at(s)
        k = round(b / q)
        self.assertLessEqual(abs(s - grid_frame(k * q)), 1,
                             f"onset at frame {s} (beat {b:.5f}) is not on the grid of {q}")
        # The first point not yet rendered when it was applied: not one
        # step later than the first after the request was sent.
        sf = self.send_frame(meta, sent)
        self.assertGreaterEqual(s, sf - 1)
        self.assertLessEqual(s - sf, q * FPB + 4 * PERIOD, "a whole grid step late")

    def test_play_quant_4_1_half(self):
        for q in (4, 1, 0.5):
            with self.subTest(quant=q):
                self.quantized_start("/play", q)

    def test_loop_quant(self):
        for q in (4, 1, 0.5):
            with self.subTest(quant=q):
                self.quantized_start("/loop", q)

    def test_quant_as_a_slot_default(self):
        self.osc.send("/set", 0, "quant", 1.0)
        try:
            addr, a = self.osc.request("/get", 0, expect="/get.reply")
            self.assertEqual(a, [0, "quant", 1.0])
            self.quantized_start("/play", 1, keys=False)
        finally:
            self.osc.send("/set", 0)

    def test_quant_0_is_now(self):
        def action():
            t = time.time()
            self.osc.send("/play", 0, 1.0, "quant", 0.0)
            time.sleep(0.3)
            return t
        left, meta, sent = self.record(action, 2)
        on = onsets(left)
        self.assertTrue(on)
        s = frame_of(meta, on[0])
        self.assertLess(s - self.send_frame(meta, sent), 3 * PERIOD)

    def test_beats_loop_restarts_every_4_beats(self):
        def action():
            self.osc.send("/loop", 0, 1.0, "quant", 4.0, "beats", 4.0)
            time.sleep(3.6)
            self.osc.send("/stop", 0)
            time.sleep(0.2)
        left, meta, _ = self.record(action, 6, lambda left: [
            (onsets(left)[0], onsets(left)[0] + 48000)], at_least=3, every=4 * FPB)
        on = [frame_of(meta, i) for i in onsets(left)]
        self.assertGreaterEqual(len(on), 3, on)
        b0 = beat_at(on[0])
        self.assertLessEqual(abs(on[0] - grid_frame(round(b0 / 4) * 4)), 1)
        for k, s in enumerate(on):
            self.assertLessEqual(abs(s - grid_frame(round(b0) + 4 * k)), 1, on)
        # The short sample once a cycle, then silence until the restart.
        first = onsets(left)[0]
        self.assertTrue(all(v == 0.5 for v in left[first:first + 4000]))
        self.assertTrue(all(v == 0.0 for v in left[first + 4000:first + 48000 - 1]))

    def test_stop_quant(self):
        def action():
            self.osc.send("/loop", 1, 1.0)
            time.sleep(0.4)
            self.osc.send("/stop", 1, "quant", 1.0)
            time.sleep(0.8)
        left, meta, _ = self.record(action, 3)
        on = onsets(left)
        self.assertTrue(on)
        # The fade starts on the grid: the first frame below full level.
        i = next(j for j in range(on[0], len(left)) if left[j] < 0.5)
        f = frame_of(meta, i)
        b = beat_at(f)
        self.assertLessEqual(abs(f - grid_frame(round(b))), 1, f"fade at beat {b:.5f}")
        self.assertTrue(all(v == 0.0 for v in left[i + FADE + 1:]))

    def test_stop_all_quant_answers_on_the_grid(self):
        self.osc.send("/loop", 1, 1.0)
        time.sleep(0.2)
        r = self.osc.request("/stop", "quant", 1.0, expect=("/done", "/fail"))
        self.assertEqual(r, ("/done", ["/stop"]))

    def test_timetag_then_grid(self):
        def action():
            ahead = 0.6
            t = time.time() + ahead
            self.osc.send_bundle(timetag_in(ahead), [
                encode_message("/play", 0, 1.0, "quant", 1.0)])
            time.sleep(ahead + 0.6)
            return t
        left, meta, due = self.record(action, 3)
        on = onsets(left)
        self.assertTrue(on)
        s = frame_of(meta, on[0])
        tf = self.send_frame(meta, due)
        b = beat_at(s)
        self.assertLessEqual(abs(s - grid_frame(round(b))), 1, "not on the beat")
        self.assertGreaterEqual(s, tf - 2, "before the timetag")
        self.assertLess(s - FPB, tf + 2, "not the first beat at or after the timetag")

    def test_beat_reply_and_status(self):
        addr, a = self.osc.request("/beat", expect="/beat.reply")
        self.assertEqual(len(a), 5, a)
        beat, tempo, quantum, peers, link = a
        self.assertAlmostEqual(tempo, TEMPO, places=3)
        self.assertEqual((quantum, peers, link), (4.0, 0, 0))
        self.assertGreater(beat, 0)
        time.sleep(0.5)
        later = self.osc.request("/beat", expect="/beat.reply")[1][0]
        # Half a second at 4 beats a second, give or take the machine.
        self.assertGreater(later - beat, 1.0)
        self.assertLess(later - beat, 4.0)
        st = self.osc.status()
        self.assertAlmostEqual(st["tempo"], TEMPO, places=3)
        self.assertGreater(st["beat"], later)

    def test_long_quantized_waits_count_as_future(self):
        # quant 64 at 240 BPM waits up to 16 s: a future request, at most 128
        # a client (docs/protocol.md, Limits).  Slot 5 is empty: nothing sounds.
        with OscClient(self.daemon.port) as c:
            for _ in range(128):
                c.send("/play", 5, 1.0, "quant", 64.0)
            r = c.request("/play", 5, 1.0, "quant", 64.0, expect=("/fail", "/pong"))
            self.assertEqual(r[0], "/fail", r)
            self.assertEqual(r[1][:2], ["/play", "busy: too many future requests from this client"])
            # A short wait is not future: still accepted.
            c.send("/play", 5, 1.0, "quant", 0.5)
            self.assertEqual(c.request("/ping", expect=("/pong", "/fail"))[0], "/pong")
            self.assertEqual(c.drain(), [])

    def test_bad_values_fail(self):
        for address, args in (("/tempo", [10.0]), ("/tempo", [1000.0]), ("/tempo", []),
                              ("/tempo", ["x"]), ("/quantum", [0.0]), ("/quantum", [-4.0]),
                              ("/play", [0, 1.0, "quant", -1.0]),
                              ("/play", [0, 1.0, "beats", 0.0]),
                              ("/loop", [0, 1.0, "fit", 2.0]),
                              ("/stop", [0, "rate", 2.0]),
                              ("/stop", ["quant", -1.0]),
                              ("/set", [0, "quant", -0.5])):
            with self.subTest(address=address, args=args):
                r = self.osc.request(address, *args, expect=("/fail",))
                self.assertEqual(r[1][0], address, r)
        # Nothing changed.
        a = self.osc.request("/beat", expect="/beat.reply")[1]
        self.assertAlmostEqual(a[1], TEMPO, places=3)
        self.assertEqual(a[2], 4.0)


class TempoChange(DaemonCase):
    """A /tempo change moves what waits to the new tempo's time for its beat.
    Every take starts a fresh daemon, whose timeline is then exactly
    beat(f) = f * TEMPO / (60 * RATE) until the take's own change."""
    rate = RATE
    period = PERIOD
    daemon_args = ("--tempo", str(TEMPO))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.short = os.path.join(cls.tmp.name, "short.wav")
        write_wav(cls.short, [LEVEL] * 4000, RATE, 1)
        cls.ramp = os.path.join(cls.tmp.name, "ramp.wav")
        write_wav(cls.ramp, [100 + RAMP_STEP * i for i in range(RAMP_FRAMES)], RATE, 1)

    @classmethod
    def fresh_daemon(cls):
        cls.osc.close()
        code = cls.daemon.stop()
        log = cls.daemon.log()
        cls.daemon.close()
        assert code == 0, f"looperd exited {code}:\n{log}"
        cls.daemon = Daemon(cls.jack, extra_args=list(cls.daemon_args))
        cls.osc = OscClient(cls.daemon.port)
        for slot, path in ((0, cls.short), (1, cls.ramp)):
            r = cls.osc.request("/load", slot, path, expect=("/done", "/fail"), timeout=10)
            assert r[0] == "/done", r

    def setUp(self):
        self.fresh_daemon()

    def record(self, action, seconds, points=None, sounds=None, at_least=1, every=None):
        """A take is judged where the test looks: every onset, or the
        indices points(left) gives; the whole take when some of the sounds
        (onsets, or sounds(left)) are missing (too_few)."""
        def judge(left, right, meta, result):
            found = sounds(left) if sounds else onsets(left)
            if too_few(found, at_least, every):
                return disturbed_in(meta, 0, len(left))
            looked = points(left) if points else found
            return disturbed_among(meta, [(i, i + 1) for i in looked])
        left, right, meta, result, why = self.record_takes(action, seconds, judge,
                                                           before_retake=self.fresh_daemon)
        self.assertIsNone(why, "every take was disturbed")
        return left, meta, result

    def wait_bar_start(self):
        """Until just after a bar line (phase < 0.5 beat), by /beat."""
        for _ in range(400):
            b = self.osc.request("/beat", expect="/beat.reply")[1][0]
            if 0.05 < b % 4 < 0.5:
                return b
            time.sleep(0.02)
        self.fail("no bar line seen")

    def explain(self, meta, first, bar, new_tempo, after=0):
        """The anchor (F, beat(F)) of a change from TEMPO to new_tempo at a
        period boundary F (after `after`) that puts beat `bar` on frame
        `first`; or None."""
        for f in boundaries(meta):
            if f > first:
                break
            if f <= after:
                continue
            anchor = (f, beat_at(f))
            if abs(grid_frame(bar, new_tempo, anchor) - first) <= 1:
                return anchor
        return None

    def test_tempo_change_moves_a_waiting_start(self):
        def action():
            self.wait_bar_start()
            self.osc.send("/play", 0, 1.0, "quant", 4.0)
            self.osc.send("/tempo", 120.0)
            time.sleep(3.0)
        left, meta, _ = self.record(action, 5)
        on = onsets(left)
        self.assertTrue(on)
        s = frame_of(meta, on[0])
        # The bar it waited for: the first after the recording began, at
        # the old tempo (the request came within half a beat of a bar).
        bar = math.ceil(beat_at(frame_of(meta, 0)) / 4) * 4
        anchor = None
        for b in (bar, bar + 4, bar + 8):
            anchor = self.explain(meta, s, b, 120)
            if anchor:
                break
        self.assertIsNotNone(anchor, f"onset {s} is not a bar line of the new tempo")
        self.assertGreater(abs(s - grid_frame(b)), RATE // 4,
                           "it started where the old tempo put its bar")
        a = self.osc.request("/beat", expect="/beat.reply")[1]
        self.assertAlmostEqual(a[1], 120, places=3)

    def test_beats_loop_through_a_tempo_change(self):
        def action():
            self.wait_bar_start()
            self.osc.send("/loop", 0, 1.0, "quant", 4.0, "beats", 4.0)
            time.sleep(3.3)
            self.osc.send("/tempo", 200.0)
            time.sleep(3 * 4 * 60 / 200 + 0.5)
            self.osc.send("/stop", 0)
            time.sleep(0.2)
        left, meta, _ = self.record(action, 10, at_least=5, every=4 * 60 * RATE / 200)
        on = [frame_of(meta, i) for i in onsets(left)]
        self.assertGreaterEqual(len(on), 5, on)
        b0 = round(beat_at(on[0]))
        self.assertEqual(b0 % 4, 0, "the loop did not start on a bar")
        # Before the change: every 4 beats at the old tempo.
        k = 0
        while k < len(on) and abs(on[k] - grid_frame(b0 + 4 * k)) <= 1:
            k += 1
        self.assertGreaterEqual(k, 2, on)
        self.assertLess(k, len(on), "no restart after the change")
        # After: one anchor explains every later restart at the new tempo.
        anchor = self.explain(meta, on[k], b0 + 4 * k, 200, after=on[k - 1])
        self.assertIsNotNone(anchor, f"restart {on[k]} is off the new tempo's grid: {on}")
        for j in range(k, len(on)):
            self.assertLessEqual(abs(on[j] - grid_frame(b0 + 4 * j, 200, anchor)), 1, on)

    def test_fit_matches_the_formula_and_follows_the_tempo(self):
        # A ramp of 4000 frames over 2 beats: rate 4000 / (2 * 60 * RATE /
        # tempo).
        def action():
            self.wait_bar_start()
            self.osc.send("/loop", 1, 1.0, "quant", 1.0, "beats", 2.0, "fit", 1)
            time.sleep(1.6)
            self.osc.send("/tempo", 120.0)
            time.sleep(2.6)
            self.osc.send("/stop", 1)
            time.sleep(0.2)
        v0 = 100 / 32768

        def cycle_starts(left):
            # A cycle starts alone (the fitted range ends with its cycle):
            # on the ramp's first value exactly.
            on = onsets(left)
            return [i for i in range(on[0], len(left))
                    if abs(left[i] - v0) < 1e-7 and abs(left[i - 1] - v0) >= 1e-7] if on else []

        def looked(left):
            # The starts, and the two points of each cycle the slope is
            # measured between.
            starts = cycle_starts(left)
            pts = list(starts)
            for a, b in zip(starts, starts[1:]):
                pts += [a + 100, a + 100 + int((b - a) * 0.8)]
            return pts

        left, meta, _ = self.record(action, 6, looked, cycle_starts, at_least=5,
                                    every=2 * 60 * RATE / 120)
        on = onsets(left)
        self.assertTrue(on)
        starts = cycle_starts(left)
        self.assertGreaterEqual(len(starts), 5, starts)
        f0 = frame_of(meta, starts[0])
        self.assertLessEqual(abs(f0 - grid_frame(round(beat_at(f0)))), 1)
        lengths = [frame_of(meta, b) - frame_of(meta, a) for a, b in zip(starts, starts[1:])]
        fast, slow = 2 * 60 * RATE / TEMPO, 2 * 60 * RATE / 120
        self.assertLessEqual(abs(lengths[0] - fast), 1, lengths)
        self.assertLessEqual(abs(lengths[-1] - slow), 1, lengths)
        for a, n in zip(starts, lengths):
            if abs(n - fast) > 1 and abs(n - slow) > 1:
                continue  # the cycle the change fell in
            # The slope inside the cycle is the fitted rate (over JACK's
            # frames: a gap in the recording skips some).
            m = int(n * 0.8)
            frames = frame_of(meta, a + 100 + m) - frame_of(meta, a + 100)
            got = (left[a + 100 + m] - left[a + 100]) * 32768 / (RAMP_STEP * frames)
            self.assertAlmostEqual(got, RAMP_FRAMES / n, delta=1e-4, msg=lengths)


class BadOptions(unittest.TestCase):
    """--tempo, --quantum and --quant out of range: exit status 2 with the
    reason, before anything starts (no JACK server needed)."""

    def test_refused(self):
        binary = binary_path("LOOPERD_BIN", "--looperd-bin")
        for args, why in ((["--tempo", "19"], "--tempo wants a tempo from 20 to 999 BPM"),
                          (["--tempo", "fast"], "--tempo wants"),
                          (["--quantum", "0"], "--quantum wants a positive number"),
                          (["--quant", "-1"], "--quant wants 0 or a positive number")):
            with self.subTest(args=args):
                p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=20)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(why, p.stderr)


RAMP_FRAMES = 4000
RAMP_STEP = 8


if __name__ == "__main__":
    unittest.main()
