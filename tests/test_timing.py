#!/usr/bin/env python3
"""End to end timing: a real jackd (dummy backend, 48 kHz, 256-frame
periods), the real looperd and the recording client (tests/jack_record.c).

What is measured:

* Timetagged bundles start on their frame (relative spacing and absolute
  placement), with at most one frame of error.  Both are judged against
  JACK's own clock: the dummy backend's frame clock drifts against the wall
  clock (tens to hundreds of ppm under load), so the spacing against the
  nominal round((t_k - t_0) * 48000) is printed, not asserted.  Bundles sent
  seconds ahead are measured separately (their error grows with the
  distance; see test_far_ahead_bundles).
* A timetagged /stop: where its fade starts (measured; it starts at the
  start of the period, up to a period early).
* --latency: plain messages start a fixed time after they arrive, so the
  spread of send-to-onset latency is far below one period (and the control
  run without --latency spreads over about a period).
* /stop, /stop id, /unload id and voice stealing fade (no jump between
  neighbouring output samples bigger than the fade allows).
* The 33rd trigger with 32 voices busy starts on time; the oldest voice
  fades out over ENGINE_FADE_SECONDS instead of being cut.
* The largest pools (--voices 256 --slots 1024) start and take id 1023.
* The schedule's capacity: 4096 timed requests (and 16 /stop) are held,
  the next refused (/fail for /play, counted and logged for /dirt/play);
  4096 pending at once, and 2,000 sent 0.3 s ahead at 1,000 a second, each
  start on their frame.

The absolute reference is JACK's own frame <-> time mapping: jack_record logs
jack_get_cycle_times() for every cycle it records (frame, usecs, next_usecs)
and CLOCK_REALTIME - jack_get_time() at start and end (see its header).  A
wall-clock time W then maps to the fractional JACK frame
    frame_k + (W - off - usecs_k) / (next_usecs_k - usecs_k) * nframes,
k the cycle containing W - off.  looperd does the same: its OSC thread
places the timetag on JACK's clock (reading the wall clock on both sides of
one jack_get_time()), and its process callback turns that time into a frame
with the same cycle times of the period that plays it.

Why one frame of tolerance: looperd rounds to a whole frame, and the two
clients read the wall-clock offset at different moments (a microsecond or
two apart; a frame is 20.8 us), so an onset may round to the neighbouring
frame.

The recording's index of that frame comes from the same log (ClockMap):
cycle k starts at index k * nframes, so a gap (the dummy driver woke late
and JACK's frame clock jumped) does not shift what comes after it.

The machine's disturbances are not looperd's errors.  An onset that a gap
or an xrun came near (looperd_test.disturbed_in) is left out of the
judgement; a take in which fewer than MIN_CLEAR of the onsets are clear,
or a request reached looperd after its frame, is repeated; see
TimingBase.record.  The numbers are printed on stderr (meson test -v).
"""
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (IMMEDIATELY, CycleClock, DaemonCase,  # noqa: E402
                          disturbed_in, encode_bundle, encode_message, sound_disturbed,
                          timetag_from_unix, warnings_logged, write_wav)

RATE = 48000
PERIOD = 256
FADE_FRAMES = round(0.005 * RATE)  # ENGINE_FADE_SECONDS * rate = 240
FULL = 32767                        # full scale in a 16-bit WAV
FULL_F = FULL / 32768.0             # what it decodes to
EPS = 1e-5                          # float rounding in the mixer's ramp
# Takes per measurement (TAKES; see TimingBase.record): a test process,
# jackd or looperd's OSC thread (an ordinary thread) that is not scheduled
# for a few ms makes a message late, or the recording gap, for reasons not
# looperd's.


class ClockMap(CycleClock):
    """Wall-clock time (Unix seconds) -> fractional recording index, from the
    recorder's meta (see the module docstring).  Entry k of the cycle log
    starts at recording index k * PERIOD, so the mapping holds across a gap
    (where JACK's frame clock jumps and the recording does not)."""

    def __init__(self, meta):
        super().__init__(meta["cycles"], meta["wall_minus_jack_us"])

    def index_at(self, wall):
        """Recording index (float) of wall time `wall`."""
        k, _, x = self.locate(wall)
        return (k + x) * PERIOD


# The share of a take's onsets that must be clear of gaps and xruns for the
# take to be judged.  Each of them shadows a few onsets (disturbed_in's
# margins are 140 ms wide around an xrun, the bundles 54 ms apart); an onset
# in its shadow is the machine's, not looperd's, and is left out.
MIN_CLEAR = 0.75


def clear_onsets(meta, *points):
    """The k whose points (onset, expected index, send index...: lists of
    recording indices) no gap or xrun came near (disturbed_in)."""
    return [k for k, pts in enumerate(zip(*points))
            if disturbed_in(meta, math.floor(min(pts)), math.ceil(max(pts)) + 1) is None]


def unjudgeable(meta, n, got, *points):
    """For record()'s check: why a take of n onsets cannot be judged, or
    None.  A count that is off in a take with a gap or an xrun is retaken
    (two triggers on a skipped stretch sound together); in a clean one it
    is left to the test to fail on."""
    if len(got) != n:
        return (f"{len(got)} onsets for {n} with {meta['gaps']} gaps, {meta['xruns']} xruns"
                if meta["gaps"] or meta["xruns"] else None)
    clear = clear_onsets(meta, got, *points)
    if len(clear) < MIN_CLEAR * n:
        return f"only {len(clear)} of {n} onsets clear of gaps and xruns"
    return None


def onsets(ch, threshold=0.25, min_gap=64):
    """Indices where |ch| rises above threshold after at least min_gap frames
    at or below it."""
    out, last = [], -min_gap - 1
    for i, v in enumerate(ch):
        if abs(v) > threshold:
            if i - last > min_gap:
                out.append(i)
            last = i
    return out


def max_step(ch, start, end):
    """Largest |ch[i+1] - ch[i]| for start <= i < end, and where."""
    best, where = 0.0, None
    for i in range(max(start, 0), min(end, len(ch) - 1)):
        d = abs(ch[i + 1] - ch[i])
        if d > best:
            best, where = d, i
    return best, where


class TimingBase(DaemonCase):
    rate, period = RATE, PERIOD

    def wav(self, name, frames, channels=1):
        path = os.path.join(self.tmp.name, name)
        write_wav(path, frames, RATE, channels)
        return path

    def load(self, slot, path):
        reply = self.osc.request("/load", slot, path, expect=("/done", "/fail"), timeout=10)
        self.assertEqual(reply[0], "/done", reply)
        return reply

    def late_count(self):
        """looperd's count of timed requests whose frame had passed when the
        audio thread got them (/status.reply argument 3)."""
        return self.osc.status(timeout=5)["late"]

    def record(self, action, seconds, check=None, sound_only=False):
        """Records while action() runs; returns (left, right, meta, result).

        Everything here runs as ordinary processes on a possibly shared
        machine.  An attempt is disturbed, printed and repeated (up to TAKES
        times) when a timed request reached looperd after its frame (the
        /status late counter), when a gap or xrun came on or near the sound
        of a `sound_only` test (one of the sound's shape, not of when it
        came: sound_disturbed), or for a reason from check(left, right, meta,
        result): the tests of when things sound judge there which of their
        events a gap or xrun came near (clear_onsets).  The last attempt is
        returned in any case, so the caller's assertions judge it."""
        def act():
            late_before = self.late_count()
            return action(), late_before

        def judge(left, right, meta, acted):
            result, late_before = acted
            why = []
            if sound_only and (reason := sound_disturbed(left, right, meta)):
                why.append(reason)
            if (late := self.late_count() - late_before):
                why.append(f"{late} timed requests late in looperd")
            if check and not why and (reason := check(left, right, meta, result)):
                why.append(reason)
            return "; ".join(why) or None

        left, right, meta, (result, _), _ = self.record_takes(act, seconds + 10, judge)
        if sound_only:
            self.assertIsNone(sound_disturbed(left, right, meta),
                              "a gap or xrun on or near the sound in every take")
        return left, right, meta, result


def sleep_until(wall):
    d = wall - time.time()
    if d > 0:
        time.sleep(d)


def jack_rate(meta):
    """JACK's frame rate measured against its own microsecond clock over the
    recording (frames per second of CLOCK_MONOTONIC)."""
    c = [x for x in meta["cycles"] if x[1]]  # not the cycles whose times were unread
    return (c[-1][0] - c[0][0]) * 1e6 / (c[-1][1] - c[0][1])


def bundle_times(rng, n, start):
    """n onset times from `start`, 53.7 ms +- 4 ms apart (not multiples of
    the 5.33 ms period)."""
    times, t = [], start
    for _ in range(n):
        times.append(t)
        t += 0.0537 + rng.uniform(-0.004, 0.004)
    return times


class TimetagAccuracy(TimingBase):
    def test_timetagged_bundles_land_on_their_frame(self):
        """Each bundle leaves LEAD before its timetag, as a sequencer with a
        look-ahead sends it.  LEAD is short (40 ms, a few periods) because
        looperd maps the timetag when the bundle arrives, extrapolating JACK's
        DLL from the running cycle; see test_far_ahead_bundles."""
        self.load(0, self.wav("click.wav", [FULL, FULL // 2, 0, 0]))
        n, lead = 50, 0.04
        rng = random.Random(1234)

        def action():
            time.sleep(0.2)
            times = bundle_times(rng, n, time.time() + 0.3)
            slow = 0
            for tk in times:
                sleep_until(tk - lead)
                self.osc.send_bundle(timetag_from_unix(tk), [("/play", [0])])
                slow += time.time() > tk - lead / 2
            sleep_until(times[-1] + 0.3)
            return times, slow

        def check(left, right, meta, result):
            return unjudgeable(meta, n, onsets(left),
                               [ClockMap(meta).index_at(tk) for tk in result[0]])

        # A bundle the test sent late is fine as long as looperd got it
        # before its frame (record() counts the late ones as disturbed).
        left, right, meta, (times, slow) = self.record(action, 4.0, check)
        got = onsets(left)
        cm = ClockMap(meta)
        self.assertEqual(len(got), n, f"{len(got)} onsets, expected {n}")
        self.assertEqual(onsets(right), got)

        exp = [cm.index_at(tk) for tk in times]
        clear = clear_onsets(meta, got, exp)
        self.assertGreaterEqual(len(clear), MIN_CLEAR * n, "too few onsets clear of gaps/xruns")
        # Absolute: onset minus JACK's own mapping of the timetag (the ideal
        # is |error| <= 0.5: looperd rounds to the nearest frame).
        abs_err = [got[k] - exp[k] for k in clear]
        # Relative, in JACK's frames: spacing from the first (clear) onset
        # minus the spacing of the timetags as JACK maps them.
        k0 = clear[0]
        rel_err = [(got[k] - got[k0]) - round(exp[k] - exp[k0]) for k in clear]
        # Relative against the nominal rate, round((t_k - t_0) * 48000): only
        # printed.  The dummy backend's frame clock is not locked to the wall
        # clock: under load it runs up to hundreds of ppm slow or fast
        # (printed as "JACK clock"), and then over 2.7 s the nominal spacing
        # is off by several frames whatever looperd does.
        nom_err = [(got[k] - got[k0]) - round((times[k] - times[k0]) * RATE) for k in clear]
        print(f"\ntimetags (lead {lead * 1000:.0f} ms, {len(clear)} of {n} onsets clear of"
              f" gaps/xruns): absolute error vs JACK mapping"
              f" min {min(abs_err):+.3f} max {max(abs_err):+.3f}"
              f" stdev {statistics.pstdev(abs_err):.3f};"
              f" relative error min {min(rel_err)} max {max(rel_err)};"
              f" vs nominal 48000/s: min {min(nom_err)} max {max(nom_err)}"
              f" (JACK clock {jack_rate(meta):.2f} frames/s;"
              f" wall-jack offset drift {cm.drift_us:+.1f} us; {slow} bundles left"
              f" less than {lead * 500:.0f} ms ahead)", file=sys.stderr)
        # The expected frame is JACK's mapping rounded to a whole frame.
        self.assertLessEqual(max(abs(e) for e in rel_err), 1, rel_err)
        self.assertLessEqual(max(abs(got[k] - round(exp[k])) for k in clear), 1,
                             [round(e, 2) for e in abs_err])

    def test_far_ahead_bundles(self):
        """All 50 bundles sent at once, up to ~3 s ahead.  looperd keeps each
        as a time on JACK's microsecond clock and the audio thread turns it
        into a frame with the clock reading of the period that plays it, so
        being far ahead costs no accuracy: within a frame, like the rest."""
        self.load(1, self.wav("click1.wav", [FULL, FULL // 2, 0, 0]))
        rng = random.Random(99)
        n = 50

        def action():
            time.sleep(0.2)
            times = bundle_times(rng, n, time.time() + 0.3)
            for tk in times:
                self.osc.send_bundle(timetag_from_unix(tk), [("/play", [1])])
            sleep_until(times[-1] + 0.3)
            return times

        def check(left, right, meta, times):
            return unjudgeable(meta, n, onsets(left),
                               [ClockMap(meta).index_at(tk) for tk in times])

        left, _, meta, times = self.record(action, 4.0, check)
        cm = ClockMap(meta)
        got = onsets(left)
        self.assertEqual(len(got), n)
        exp = [cm.index_at(tk) for tk in times]
        clear = clear_onsets(meta, got, exp)
        self.assertGreaterEqual(len(clear), MIN_CLEAR * n, "too few onsets clear of gaps/xruns")
        abs_err = [got[k] - exp[k] for k in clear]
        first, last = [e for k, e in zip(clear, abs_err) if k < 10], \
            [e for k, e in zip(clear, abs_err) if k >= n - 10]
        print(f"\nfar-ahead timetags (0.3..3 s ahead; {len(clear)} of {n} onsets clear of"
              f" gaps/xruns): absolute error vs JACK mapping"
              f" min {min(abs_err):+.3f} max {max(abs_err):+.3f}"
              f" (first 10: {min(first, default=0):+.2f}..{max(first, default=0):+.2f},"
              f" last 10: {min(last, default=0):+.2f}..{max(last, default=0):+.2f});"
              f" JACK clock {jack_rate(meta):.2f} frames/s", file=sys.stderr)
        self.assertLessEqual(max(abs(e) for e in abs_err), 1.5, abs_err)


# A send whose clock readings before and after are further apart than this
# may have been descheduled before the kernel stamped it (on loopback the
# stamp is taken inside the send call, before the receiver is woken): its
# due time is not known to a few frames, so --latency's steadiness is
# judged without it (the onset still has to be there).
SEND_EXACT_S = 0.0002


def send_at_random_moments(osc, slot, n, rng):
    """n plain /play messages at random moments.  Returns the send times
    (read just before the send call, the message encoded beforehand) and
    the indices of the sends that took longer than SEND_EXACT_S."""
    sends, slow = [], set()
    data = encode_message("/play", slot)
    time.sleep(0.2)
    for k in range(n):
        time.sleep(0.04 + rng.uniform(0, 0.03))
        t1 = time.time()
        osc.send_raw(data)
        t2 = time.time()
        sends.append(t1)
        if t2 - t1 > SEND_EXACT_S:
            slow.add(k)
    time.sleep(0.3)
    return sends, slow


def latency_numbers(left, meta, sends, latency_s, min_clear=MIN_CLEAR, inexact=()):
    """((send-to-onset latencies in frames, their stdev, max - min), None),
    or (None, why).  A send at wall time t with latency L is due at t + L
    on JACK's clock: the recorder's cycle log maps that instant to the index
    where the cycle that plays it puts it, as looperd maps it (the DLL's
    mapping of that one cycle, so a misjudged period after an xrun moves
    both alike); a latency is L in frames plus the onset's distance from
    there.  Judged over the sends whose onset and due index no gap or xrun
    came near (at least min_clear of them) and that are not in `inexact`
    (indices of sends whose own time stamp is unreliable)."""
    cm = ClockMap(meta)
    got = onsets(left, min_gap=32)
    n = len(sends)
    if len(got) != n:
        # Two messages held up together (their onsets merge) or one lost.
        return None, f"{len(got)} onsets for {n} sends"
    due = [cm.index_at(t + latency_s) for t in sends]
    clear = clear_onsets(meta, got, due)
    if len(clear) < min_clear * n:
        return None, f"only {len(clear)} of {n} sends clear of gaps and xruns"
    lat = [latency_s * meta["rate"] + got[k] - due[k] for k in clear if k not in inexact]
    if len(lat) < min_clear * n:
        return None, f"only {len(lat)} of {n} sends clear and timed exactly"
    return (lat, statistics.pstdev(lat), max(lat) - min(lat)), None


class WithLatency(TimingBase):
    daemon_args = ["--latency", "20"]

    def test_latency_is_steady(self):
        """The spread is far below a period.  An attempt with a large spread
        is repeated (see TAKES): looperd stamps a message when its OSC
        thread - an ordinary thread - reads it, so a scheduling delay of that
        thread shows as a late outlier; every attempt is printed."""
        self.load(0, self.wav("click.wav", [FULL, 0, 0]))
        rng = random.Random(7)
        numbers = []

        def check(left, right, meta, result):
            sends, slow = result
            res, why = latency_numbers(left, meta, sends, 0.020, inexact=slow)
            if why:
                return why
            lat, sd, spread = res
            med = statistics.median(lat)
            outliers = sorted(round(v - med, 1) for v in lat if abs(v - med) > 4)
            print(f"\n--latency 20 ({len(lat)} of 50 sends clear of gaps/xruns and"
                  f" timed exactly):"
                  f" send-to-onset mean {statistics.mean(lat):.1f}"
                  f" median {med:.1f} frames (20 ms = {0.02 * RATE:.0f}), stdev {sd:.2f},"
                  f" max-min {spread:.2f}; slow sends {len(slow)} left out; outliers vs median"
                  f" {outliers}", file=sys.stderr)
            numbers[:] = [lat, sd, spread]
            if sd > 2.0 or spread > 8.0:
                return "spread above the bounds"
            return None

        self.record(lambda: send_at_random_moments(self.osc, 0, 50, rng), 4.5, check)
        self.assertTrue(numbers, "no usable attempt (see the log above)")
        lat, sd, spread = numbers
        # Never sooner than asked: the kernel stamps arrival inside the send
        # call, after the time the test noted; the onset is a whole frame.
        self.assertGreaterEqual(min(lat), 0.02 * RATE - 1, lat)
        self.assertLessEqual(sd, 2.0, lat)
        self.assertLessEqual(spread, 8.0, lat)


class WithoutLatency(TimingBase):
    def test_control_run_spreads_over_a_period(self):
        self.load(0, self.wav("click.wav", [FULL, 0, 0]))
        rng = random.Random(8)
        # Ten clear sends show a spread over the period (arrival phases are
        # random).
        left, _, meta, (sends, _) = self.record(
            lambda: send_at_random_moments(self.osc, 0, 50, rng), 4.5,
            lambda left, right, meta, result: latency_numbers(left, meta, result[0], 0.0, 0.2)[1])
        res, why = latency_numbers(left, meta, sends, 0.0, 0.2)
        self.assertIsNone(why)
        lat, sd, spread = res
        print(f"\nno --latency (control; {len(lat)} of 50 sends clear of gaps/xruns):"
              f" send-to-onset mean {statistics.mean(lat):.1f},"
              f" stdev {sd:.2f}, max-min {spread:.2f} frames (period {PERIOD})",
              file=sys.stderr)
        # Plain messages start at the next period: the phase of the arrival in
        # the period is random, so the spread is most of a period; far above
        # the --latency bounds.
        self.assertGreater(spread, 8.0)


class Fades(TimingBase):
    daemon_args = ["--voices", "2"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dc = os.path.join(cls.tmp.name, "dc.wav")
        write_wav(cls.dc, [FULL] * (RATE * 3), RATE, 1)        # 3 s of DC 1.0
        # A full-scale 50 Hz sine starting at phase 0: its largest step
        # between neighbouring samples is 2 pi 50 / 48000 of full scale.
        cls.sine_hz = 50
        cls.sine = os.path.join(cls.tmp.name, "sine.wav")
        write_wav(cls.sine, [round(FULL * math.sin(2 * math.pi * cls.sine_hz * i / RATE))
                             for i in range(RATE * 3)], RATE, 1)
        cls.sine_slope = 2 * math.pi * cls.sine_hz / RATE * FULL_F

    def check_fade(self, slot, stop_msg, expect_reply=None, voices=1):
        """Plays DC in `slot` on `voices` voices, then sends stop_msg; the
        output must ramp down, never step by more than level / fade_frames."""
        replies = []

        def action():
            self.load(slot, self.dc)   # again on a retry: /unload empties it
            replies.clear()
            time.sleep(0.2)
            # One packet, so all voices start in the same period.
            self.osc.send_bundle(IMMEDIATELY, [("/play", [slot])] * voices)
            time.sleep(0.4)
            if expect_reply:
                replies.append(self.osc.request(*stop_msg, expect=expect_reply, timeout=5))
            else:
                self.osc.send(*stop_msg)
            time.sleep(0.4)

        left, right, _, _ = self.record(action, 1.5, sound_only=True)
        start = onsets(left)[0]
        last = max(i for i, v in enumerate(left) if v != 0.0)
        level = voices * FULL_F
        bound = level / FADE_FRAMES + EPS
        step, where = max_step(left, start, last + 1)  # includes the step to 0
        ramp = sum(1 for v in left[start:last + 1] if 0 < v < level - EPS)
        print(f"\n{' '.join(map(str, stop_msg))}: max step {step:.6f} at +{where - start}"
              f" (bound {bound:.6f} = {level:.5f}/{FADE_FRAMES}), ramp {ramp} frames",
              file=sys.stderr)
        self.assertLess(last - start, RATE, "did not stop")
        self.assertLessEqual(step, bound)
        self.assertGreaterEqual(ramp, FADE_FRAMES - 2)
        self.assertLessEqual(ramp, FADE_FRAMES + 1)
        self.assertEqual(list(right), list(left))
        return replies

    def test_stop_all_fades(self):
        self.assertEqual(self.check_fade(0, ("/stop",), "/done", voices=2),
                         [("/done", ["/stop"])])

    def test_stop_id_fades(self):
        self.check_fade(1, ("/stop", 1))

    def test_unload_fades(self):
        replies = self.check_fade(2, ("/unload", 2), ("/done", "/fail"))
        self.assertEqual(replies[0][0], "/done", replies)

    def test_timed_stop_fade_start(self):
        """A timetagged /stop id: its fade starts on the frame the timetag
        maps to (the audio thread gives a fade a start offset inside the
        period, as it does a trigger), within a frame."""
        def action():
            self.load(5, self.dc)
            time.sleep(0.2)
            self.osc.send("/play", 5)
            time.sleep(0.3)
            t = time.time() + 0.0407
            self.osc.send_bundle(timetag_from_unix(t), [("/stop", [5])])
            time.sleep(0.3)
            return t

        def measure(left, meta, t):
            """(expected index, fade's first frame, first silent frame)."""
            exp = ClockMap(meta).index_at(t)
            start = onsets(left)[0]
            fade = next(i for i in range(start, len(left)) if left[i] < FULL_F - EPS)
            end = next(i for i in range(fade, len(left)) if left[i] == 0.0)
            return exp, fade, end

        def check(left, right, meta, t):
            try:
                exp, fade, end = measure(left, meta, t)
            except (IndexError, StopIteration):
                return None  # nothing to judge: the assertions below fail
            return disturbed_in(meta, math.floor(min(exp, fade)), end + 1)

        left, _, meta, t = self.record(action, 1.0, check)
        exp, fade, end = measure(left, meta, t)
        self.assertIsNone(check(left, None, meta, t), "a gap or xrun near the fade in every take")
        print(f"\ntimed /stop 5: fade starts {fade - exp:+.2f} frames from the timetag's"
              f" frame (at offset {fade % PERIOD} of its period; the recording starts"
              f" on a period), lasts {end - fade} frames", file=sys.stderr)
        self.assertLessEqual(abs(fade - exp), 1.5)
        self.assertIn(end - fade, range(FADE_FRAMES - 2, FADE_FRAMES + 2))

    def test_stealing_fades(self):
        """--voices 2: a third trigger steals the oldest voice, which fades."""
        self.load(3, self.dc)
        self.load(4, self.sine)

        def action():
            time.sleep(0.2)
            self.osc.send("/play", 3)
            time.sleep(0.1)
            self.osc.send("/play", 3)
            time.sleep(0.3)
            self.osc.send("/play", 4)
            time.sleep(0.3)
            self.osc.request("/stop", expect="/done")
            time.sleep(0.3)

        left, _, _, _ = self.record(action, 1.6, sound_only=True)
        first = onsets(left)[0]
        second = next(i for i in range(first, len(left)) if left[i] > 1.5)
        # Where the stolen voice starts to fade: the first frame after the
        # second onset that drops below two voices' level.
        steal = next(i for i in range(second + 1, len(left)) if left[i] < 2 * FULL_F - 0.05)
        bound = FULL_F / FADE_FRAMES + self.sine_slope + EPS
        step, where = max_step(left, steal - 2, steal + 2 * FADE_FRAMES)
        print(f"\nstealing: max step {step:.6f} at +{where - steal} from the steal"
              f" (bound {bound:.6f} = {FULL_F:.5f}/{FADE_FRAMES} + sine slope"
              f" {self.sine_slope:.6f})", file=sys.stderr)
        self.assertLessEqual(step, bound)
        # After the fade one DC voice and the sine (|sine| <= 1) remain.
        after = steal + FADE_FRAMES + 300
        self.assertLessEqual(abs(left[after] - FULL_F), FULL_F + EPS)


class ThirtyThird(TimingBase):
    """Default 32 voices; a 33rd, timetagged, starts on its frame and the
    oldest voice ramps out."""

    def test_33rd_trigger(self):
        # Slot 0: the oldest voice, DC 1.0 on the right only.
        self.load(0, self.wav("right.wav", [(0, FULL)] * (RATE * 3), channels=2))
        # Slot 1: 31 busy voices of silence (they play; they just add 0).
        self.load(1, self.wav("silence.wav", [(0, 0)] * (RATE * 3), channels=2))
        # Slot 2: the 33rd, a click on the left only.
        self.load(2, self.wav("click.wav", [(FULL, 0), (FULL // 2, 0), (0, 0)], channels=2))

        def action():
            time.sleep(0.2)
            self.osc.send("/play", 0)
            time.sleep(0.05)
            for _ in range(31):
                self.osc.send("/play", 1)
            time.sleep(0.3)
            st = self.osc.request("/status", timeout=5)
            t = time.time() + 0.0407  # a short look-ahead, as in TimetagAccuracy
            self.osc.send_bundle(timetag_from_unix(t), [("/play", [2])])
            time.sleep(0.5)
            self.osc.request("/stop", expect="/done")
            time.sleep(0.2)
            return t, st

        def measure(left, right, meta, t):
            """(33rd's onsets, its expected index, the oldest voice's
            onset, fade's first frame and first silent frame)."""
            got = onsets(left)
            exp = ClockMap(meta).index_at(t)
            r_on = onsets(right)[0]
            fade_start = next(i for i in range(r_on, len(right)) if right[i] < FULL_F - EPS)
            fade_end = next(i for i in range(fade_start, len(right)) if right[i] == 0.0)
            return got, exp, r_on, fade_start, fade_end

        def check(left, right, meta, result):
            try:
                got, exp, _, fade_start, fade_end = measure(left, right, meta, result[0])
            except (IndexError, StopIteration):
                return None  # nothing to judge: the assertions below fail
            return disturbed_in(meta, math.floor(min(got + [exp, fade_start])), fade_end + 1)

        # On a loaded machine (under ASan, say) a rare onset can be several
        # frames off while every other timing test stays within a frame;
        # record again then, and judge the last take.
        for take in range(3):
            left, right, meta, (t, status) = self.record(action, 1.5, check)
            got, exp, r_on, fade_start, fade_end = measure(left, right, meta, t)
            self.assertEqual(len(got), 1, got)
            self.assertIsNone(check(left, right, meta, (t, status)),
                              "a gap or xrun near the 33rd trigger in every take")
            if abs(got[0] - round(exp)) <= 1:
                break
            print(f"\n33rd trigger: take {take + 1} onset error {got[0] - exp:+.3f} frames;"
                  " again", file=sys.stderr)
        # The oldest voice: from full to zero in about FADE_FRAMES.
        step, _ = max_step(right, r_on + 1, fade_end + 1)
        print(f"\n33rd trigger: onset error {got[0] - exp:+.3f} frames;"
              f" oldest voice fades over {fade_end - fade_start} frames starting"
              f" {got[0] - fade_start} frames before the 33rd's onset,"
              f" max step {step:.6f}; /status {status}", file=sys.stderr)
        self.assertLessEqual(abs(got[0] - round(exp)), 1)
        self.assertLessEqual(step, FULL_F / FADE_FRAMES + EPS)
        self.assertIn(fade_end - fade_start, range(FADE_FRAMES - 2, FADE_FRAMES + 2))
        self.assertTrue(all(v == 0.0 for v in right[fade_end:]), "the oldest voice came back")
        # The oldest voice starts fading on the 33rd's own frame.
        self.assertLessEqual(abs(got[0] - fade_start), 1)


class ScheduleFull(TimingBase):
    """The audio side keeps timed requests in a fixed-capacity queue
    (ENGINE_SCHED = 4112, of which 16 are kept for /stop: 4096 for anything
    else); past that, a timed request is refused with /fail, and counted,
    instead of being dropped or allocated for.  The requests are due within
    2 s, so the limits on requests for later (docs/protocol.md, Limits) do
    not apply to them."""

    SCHED = 4112
    STOP_RESERVE = 16

    def test_schedule_full_is_refused(self):
        held = self.SCHED - self.STOP_RESERVE
        n = held + 100
        refused = self.osc.status()["refused"]
        t = time.time() + 1.5  # none falls due while they are sent
        for i in range(n):
            self.osc.send_bundle(timetag_from_unix(t + i * 0.00005), [("/play", [0])])
            if i % 500 == 499:
                time.sleep(0.002)
        # Sent while full: a timed /ping is refused like the /plays (the
        # places kept are for /stop only), a timed /stop due within 2 s takes
        # one of them, and a plain /stop goes through at once.
        self.osc.send_bundle(timetag_from_unix(t - 0.5), [("/ping", [])])
        self.osc.send_bundle(timetag_from_unix(t - 0.5), [("/stop", [])])
        self.osc.send("/stop")
        self.assertLess(time.time(), t - 0.5, "the requests took too long to send")
        sleep_until(t - 0.3)  # the timed /stop is done by then
        replies = []
        while (m := self.osc.try_recv(0.3)) is not None:
            replies.append(m)
        self.assertEqual(replies,
                         [("/fail", ["/play", "busy: schedule full", 0])] * (n - held)
                         + [("/fail", ["/ping", "busy: schedule full"]), ("/done", ["/stop"]),
                            ("/done", ["/stop"])])
        status = self.osc.status()
        self.assertEqual(status["refused"] - refused, n - held + 1)  # counted, each once
        # Once they are due their places are free again.
        sleep_until(t + n * 0.00005 + 0.2)
        self.osc.send_bundle(timetag_from_unix(time.time() + 0.1), [("/ping", [])])
        self.assertEqual(self.osc.recv(2.0), ("/pong", []))


class DirtScheduleFull(TimingBase):
    """Past the schedule's 4096 places a /dirt/play is refused too, but
    Tidal reads no replies: nothing is answered, each one is counted in
    /status `refused`, and the log says so, rate-limited (at most 5 lines a
    second, the rest counted in a "suppressed" line)."""

    @classmethod
    def setUpClass(cls):
        cls.libdir = tempfile.mkdtemp(prefix="looperd-lib-")
        os.makedirs(os.path.join(cls.libdir, "bd"))
        write_wav(os.path.join(cls.libdir, "bd", "bd0.wav"), [1000] * 480, RATE, 1)
        cls.daemon_args = ("--library", cls.libdir)
        super().setUpClass()
        end = time.monotonic() + 20
        while cls.osc.status()["library_loaded"] != 1:
            if time.monotonic() > end:
                raise AssertionError("library not loaded")
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.libdir, ignore_errors=True)

    def test_refused_dirt_play_is_counted_and_logged(self):
        held, over = 4096, 150
        refused = self.osc.status()["refused"]
        t = time.time() + 1.5
        msg = encode_message("/dirt/play", "s", "bd", "orbit", 0, "cps", 0.5, "cycle", 1.0)
        for i in range(held + over):
            self.osc.send_raw(encode_bundle(timetag_from_unix(t + i * 0.00005), [msg]))
        st = self.osc.status()
        self.assertLess(time.time(), t, "the events took too long to send")
        self.assertEqual(st["refused"] - refused, over)
        self.assertEqual(st["dirt_not_found"] + st["dirt_skipped"], 0)
        self.assertEqual(self.osc.drain(), [])  # not answered
        written, suppressed, log = warnings_logged(
            self.daemon, "/dirt/play refused: busy: schedule full", over,
            like="/dirt/play refused")
        self.assertEqual(written + suppressed, over, log[-2000:])
        self.assertLessEqual(written, 10, log[-2000:])  # 5 a second, the flood took < 1.5 s
        # The accepted ones are played (none late, the places come back).
        sleep_until(t + (held + over) * 0.00005 + 0.3)
        self.assertEqual(self.osc.status()["late"], 0)
        self.osc.send_bundle(timetag_from_unix(time.time() + 0.1), [("/ping", [])])
        self.assertEqual(self.osc.recv(2.0), ("/pong", []))


class DenseBurst(TimingBase):
    """4096 timetagged /play, all pending at once: sent in one burst (in a
    shuffled order, as fast as the test can send) before the first is due,
    due over 1.3 s on 4 slots (a dense pattern: 3,150 a second), each a
    one-frame click.  Every one sounds, on its own frame: the onsets are
    compared with the timetags mapped through the recorder's cycle log
    (ClockMap), within one frame, as the other timing tests are."""

    daemon_args = ["--voices", "64"]
    N = 4096
    SLOTS = 4

    def test_4096_pending_each_on_its_frame(self):
        for k in range(self.SLOTS):
            self.load(k, self.wav(f"click{k}.wav", [FULL, 0, 0, 0]))
        rng = random.Random(4096)
        gaps = [rng.randint(12, 19) for _ in range(self.N)]  # frames between clicks
        offsets = [sum(gaps[:k]) / RATE for k in range(self.N)]
        order = list(range(self.N))
        rng.shuffle(order)

        def action():
            time.sleep(0.2)
            start = time.time() + 0.4
            times = [start + o for o in offsets]
            for k in order:
                self.osc.send_bundle(timetag_from_unix(times[k]), [("/play", [k % self.SLOTS])])
            sent = time.time()
            sleep_until(times[-1] + 0.3)
            return times, sent

        def check(left, right, meta, result):
            times, sent = result
            if sent > times[0]:
                return f"the burst took until {sent - times[0]:+.3f} s after the first was due"
            return unjudgeable(meta, self.N, onsets(left, min_gap=4),
                               [ClockMap(meta).index_at(tk) for tk in times])

        left, right, meta, (times, sent) = self.record(action, 2.5, check)
        got = onsets(left, min_gap=4)
        self.assertLess(sent, times[0], "not all pending at once")
        self.assertEqual(self.osc.drain(), [])  # none refused
        self.assertEqual(len(got), self.N, f"{len(got)} onsets, expected {self.N}")
        self.assertEqual(onsets(right, min_gap=4), got)
        # Each click is one frame at full level: nothing summed, nothing lost.
        self.assertEqual(sum(1 for v in left if abs(v) > 0.25), self.N)
        cm = ClockMap(meta)
        exp = [cm.index_at(tk) for tk in times]
        clear = clear_onsets(meta, got, exp)
        self.assertGreaterEqual(len(clear), MIN_CLEAR * self.N, "too few onsets clear of gaps/xruns")
        err = [got[k] - round(exp[k]) for k in clear]
        print(f"\n4096 pending at once (sent in {sent - times[0] + 0.4:.3f} s, the first due"
              f" {times[0] - sent:.3f} s after the last was sent): {len(clear)} onsets clear of"
              f" gaps/xruns, error vs JACK mapping min {min(err)} max {max(err)};"
              f" /status {self.osc.status()}", file=sys.stderr)
        self.assertLessEqual(max(abs(e) for e in err), 1, err)

    def test_1000_a_second_sent_ahead_each_on_its_frame(self):
        """As Tidal sends a dense pattern: 2,000 events at about 1,000 a
        second, each sent 0.3 s before its time (about 300 pending at any
        moment), one-frame clicks on 4 slots; every one on its frame."""
        n = 2000
        for k in range(self.SLOTS):
            self.load(k, self.wav(f"tick{k}.wav", [FULL, 0, 0, 0]))
        rng = random.Random(1000)
        gaps = [rng.randint(40, 56) for _ in range(n)]  # frames: about 1 ms
        offsets = [sum(gaps[:k]) / RATE for k in range(n)]

        def action():
            time.sleep(0.2)
            start = time.time() + 0.4
            times = [start + o for o in offsets]
            early = []
            for k, tk in enumerate(times):
                sleep_until(tk - 0.3)
                early.append(tk - time.time())
                self.osc.send_bundle(timetag_from_unix(tk), [("/play", [k % self.SLOTS])])
            sleep_until(times[-1] + 0.3)
            return times, early

        def check(left, right, meta, result):
            return unjudgeable(meta, n, onsets(left, min_gap=4),
                               [ClockMap(meta).index_at(tk) for tk in result[0]])

        left, right, meta, (times, early) = self.record(action, 3.0, check)
        got = onsets(left, min_gap=4)
        self.assertEqual(len(got), n, f"{len(got)} onsets, expected {n}")
        self.assertEqual(self.osc.drain(), [])  # none refused
        cm = ClockMap(meta)
        exp = [cm.index_at(tk) for tk in times]
        clear = clear_onsets(meta, got, exp)
        self.assertGreaterEqual(len(clear), MIN_CLEAR * n, "too few onsets clear of gaps/xruns")
        err = [got[k] - round(exp[k]) for k in clear]
        print(f"\n1000/s sent 0.3 s ahead ({min(early):.3f}..{max(early):.3f} s ahead as sent):"
              f" {len(clear)} of {n} onsets clear of gaps/xruns, error vs JACK mapping"
              f" min {min(err)} max {max(err)}", file=sys.stderr)
        self.assertLessEqual(max(abs(e) for e in err), 1, err)


class BigPools(TimingBase):
    daemon_args = ["--voices", "256", "--slots", "1024"]

    def test_last_slot(self):
        path = self.wav("click.wav", [(FULL, FULL), (0, 0)], channels=2)
        self.assertEqual(self.osc.request("/load", 1023, path, expect=("/done", "/fail"),
                                          timeout=10), ("/done", ["/load", 1023, 2, 2]))

        def action():
            time.sleep(0.2)
            self.osc.send("/play", 1023)
            time.sleep(0.3)

        left, _, _, _ = self.record(action, 0.6, sound_only=True)
        self.assertEqual(len(onsets(left)), 1)
        self.assertEqual(self.osc.request("/play", 1024),
                         ("/fail", ["/play", "id out of range (0..1023)", 1024]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
