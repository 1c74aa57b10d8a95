#!/usr/bin/python3
"""JACK MIDI input end to end (issue 18): a real jackd (dummy backend), the
real looperd, a MIDI sender connected to its midi_in, and the recorded JACK
output compared sample by sample.

The sender is a JACK client of this process (python3-jack-client, so the
file runs as /usr/bin/python3): each period its process callback writes the
events queued for that period at chosen frame offsets and notes the JACK
frame (last_frame_time + offset) each went out at.  It runs before looperd
in JACK's graph (its port feeds midi_in), and the recorder after it (it
reads looperd's outputs), so a note-on at frame F of a period must start
its voice at JACK frame F of the output.  The recording's index of a JACK
frame comes from the recorder's own cycle log (entry k starts at index
k * period: looperd_test.Recorder).

A third-party sender: jack_midiseq (jackd2's example client) playing a
looped sequence into midi_in.  --midi-connect: at start, when the port
appears later, after a jackd restart under the same name.
"""
import collections
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (TAKES, Daemon, DaemonCase, JackServer, OscClient,  # noqa: E402
                          _spawn, _terminate, deinterleave, disturbed_in,
                          pause_before_retake, Recorder, write_wav)

import jack  # noqa: E402  python3-jack-client

RATE = 48000
PERIOD = 256
FADE = 240      # the declick fade, 5 ms at 48 kHz
LEVEL = 0.5     # the fixtures' samples: 16384 / 32768
SHORT = 16      # frames of the short fixture
BACK_WITHIN_S = 20


def note_on(ch, note, vel):
    return bytes([0x90 | (ch - 1), note, vel])


def note_off(ch, note, vel=0):
    return bytes([0x80 | (ch - 1), note, vel])


def cc(ch, num, val):
    return bytes([0xB0 | (ch - 1), num, val])


class MidiSender:
    """A JACK client with one MIDI output `out`.  send(periods) queues a
    list (one entry per period from the next one on) of lists of (offset,
    bytes) and waits until every one has gone out; .sent has (JACK frame,
    bytes) for each event written."""

    def __init__(self, server, name, dest=None):
        self.client = jack.Client(name, servername=server.name, no_start_server=True)
        self.port = self.client.midi_outports.register("out")
        self.queue = collections.deque()
        self.sent = []
        self.client.set_process_callback(self._process)
        self.client.activate()
        if dest:
            self.client.connect(self.port, dest)

    def _process(self, frames):
        self.port.clear_buffer()
        try:
            batch = self.queue.popleft()
        except IndexError:
            return
        base = self.client.last_frame_time
        for off, data in batch:
            self.port.write_midi_event(off, data)
            self.sent.append((base + off, data))

    def send(self, periods, tail=8):
        self.sent = []
        for p in list(periods) + [[]] * tail:
            self.queue.append(p)
        deadline = time.monotonic() + 10
        while self.queue and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not self.queue, "the sender's process callback did not run"
        time.sleep(0.05)
        return list(self.sent)

    def close(self):
        self.client.deactivate()
        self.client.close()


def index_of(meta, frame):
    """The recording's index of JACK frame `frame`, None if not recorded."""
    for k, c in enumerate(meta["cycles"]):
        if c[0] <= frame < c[0] + meta.get("period", PERIOD):
            return k * PERIOD + (frame - c[0])
    return None


def onsets(xs):
    """Indices where the signal leaves silence."""
    return [i for i in range(len(xs)) if xs[i] != 0.0 and (i == 0 or xs[i - 1] == 0.0)]


class MidiCase(DaemonCase):
    rate = RATE
    period = PERIOD

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tmp = cls.tmp.name
        cls.short = os.path.join(tmp, "short.wav")
        cls.long = os.path.join(tmp, "long.wav")
        write_wav(cls.short, [(16384, 16384)] * SHORT, RATE, 2)
        write_wav(cls.long, [(16384, 16384)] * (2 * RATE), RATE, 2)
        cls.sender = MidiSender(cls.jack, "midisend", f"{cls.daemon.name}:midi_in")
        loads = {0: cls.short, 1: cls.short, 2: cls.long, 3: cls.long, 4: cls.long,
                 5: cls.short, 6: cls.short, 7: cls.short, 8: cls.short, 9: cls.long}
        for slot, path in loads.items():
            r = cls.osc.request("/load", slot, path, expect=("/done", "/fail"), timeout=10)
            assert r[0] == "/done", r
        sets = {1: ("velcurve", 2.0),
                2: ("noteoff", "release", "release", 0.05),
                3: ("mode", "loop", "noteoff", "toggle"),
                4: ("release", 0.5),
                5: ("note", 100, "channel", 2),
                6: ("note", 110),
                7: ("note", 110, "gain", 0.5),
                9: ("note", 90, "mode", "loop", "noteoff", "release", "channel", 3)}
        for slot, keys in sets.items():
            cls.osc.send("/set", slot, *keys)
        # /set is unanswered; a /get after it sees it applied on the control
        # side, and the engine's copy follows within a period.
        for slot in sets:
            cls.osc.request("/get", slot, expect="/get.reply")
        time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        cls.sender.close()
        super().tearDownClass()

    def ignored(self):
        return self.osc.status()["midi_ignored"]

    def play(self, periods, seconds=1.5):
        """Sends `periods` while recording; a take whose sound a gap or an
        xrun came near is taken again.  Returns (left, right, meta, sent)."""
        for attempt in range(1, TAKES + 1):
            self.silence()
            rec = Recorder(self.jack, self.daemon.outputs, seconds=seconds)
            try:
                time.sleep(0.05)
                sent = self.sender.send(periods, tail=int(0.4 * RATE / PERIOD))
            finally:
                samples, meta = rec.stop()
            left, right = deinterleave(samples)
            loud = [i for i, x in enumerate(left) if x != 0.0]
            first = index_of(meta, sent[0][0]) if sent else None
            why = "an event before the recording" if sent and first is None else None
            if not why and loud:
                why = disturbed_in(meta, min(loud + [first or 0]), loud[-1] + 1)
            if not why:
                return left, right, meta, sent
            print(f"\n  [{self.id().split('.')[-1]}] take {attempt} disturbed: {why}",
                  file=sys.stderr)
            pause_before_retake(attempt, self.daemon.port)
        self.fail(f"every take disturbed: {why}")

    def silence(self):
        """No voice left from before: CC 120 on every channel, then until
        /status counts no voice."""
        self.sender.send([[(0, cc(ch, 120, 0)) for ch in range(1, 17)]], tail=2)
        deadline = time.monotonic() + 3
        while self.osc.status()["voices"] and time.monotonic() < deadline:
            time.sleep(0.02)

    def flat(self, xs, a, b, value):
        """xs[a:b] is `value` throughout (the first frame that is not, if any)."""
        self.assertLess(a, b)
        bad = next((i for i in range(a, b) if xs[i] != value), None)
        self.assertIsNone(bad, f"frame {bad} of [{a}, {b}) is "
                               f"{xs[bad] if bad is not None else None}, not {value}")

    def at(self, meta, sent, k):
        i = index_of(meta, sent[k][0])
        self.assertIsNotNone(i)
        return i


class FrameExact(MidiCase):
    def test_note_ons_start_on_their_frames(self):
        """Offsets 0, 17, 255 of one period and 100 of the next: each voice
        (slot 0, default note 36, a 16-frame sample) starts at exactly that
        output frame, at full level for velocity 127."""
        periods = [[(0, note_on(1, 36, 127)), (17, note_on(1, 36, 127)),
                    (255, note_on(1, 36, 127))], [(100, note_on(1, 36, 127))]]
        left, right, meta, sent = self.play(periods)
        self.assertEqual(len(sent), 4)
        want = [self.at(meta, sent, k) for k in range(4)]
        self.assertEqual(onsets(left), want)
        self.assertEqual(onsets(right), want)
        for i in want:
            self.flat(left, i, i + SHORT, LEVEL)
            self.assertEqual(left[i + SHORT], 0.0)
        # The sender's own order of frames: 0, 17, 255, then a period on.
        frames = [f for f, _ in sent]
        self.assertEqual([f - frames[0] for f in frames], [0, 17, 255, PERIOD + 100])

    def test_velocity_64_through_the_curve(self):
        """Linear (slot 0) gives 64/127, velcurve 2 (slot 1) (64/127)^2."""
        left, _, meta, sent = self.play([[(10, note_on(1, 36, 64))], [],
                                         [(10, note_on(1, 37, 64))]])
        a, b = self.at(meta, sent, 0), self.at(meta, sent, 1)
        lin, sq = LEVEL * 64 / 127, LEVEL * (64 / 127) ** 2
        for k in range(SHORT):
            self.assertAlmostEqual(left[a + k], lin, delta=1e-6)
            self.assertAlmostEqual(left[b + k], sq, delta=1e-6)
        self.assertEqual(left[a - 1], 0.0)
        self.assertEqual(left[b - 1], 0.0)


class NoteOffs(MidiCase):
    def test_release_fades_from_the_note_off(self):
        """Slot 2 (noteoff release, release 0.05 s): full level up to the
        note-off's frame, then a fall to silence over 2400 frames."""
        rel = round(0.05 * RATE)
        left, _, meta, sent = self.play([[(30, note_on(1, 38, 127))], [], [],
                                         [(77, note_off(1, 38))]])
        on, off = self.at(meta, sent, 0), self.at(meta, sent, 1)
        self.assertEqual(onsets(left), [on])
        self.flat(left, on, off, LEVEL)
        tail = left[off:off + rel + 2].tolist()
        self.assertTrue(all(x >= y for x, y in zip(tail, tail[1:])), "not falling")
        self.assertAlmostEqual(left[off + rel // 2], LEVEL / 2, delta=LEVEL * 0.01)
        self.assertEqual(max(left[off + rel + 1:]), 0.0)

    def test_velocity_0_is_a_note_off(self):
        rel = round(0.05 * RATE)
        left, _, meta, sent = self.play([[(5, note_on(1, 38, 127))], [],
                                         [(200, note_on(1, 38, 0))]])
        on, off = self.at(meta, sent, 0), self.at(meta, sent, 1)
        self.flat(left, on, off, LEVEL)
        self.assertLess(left[off + rel // 2], LEVEL * 0.6)
        self.assertEqual(max(left[off + rel + 1:]), 0.0)

    def test_ignore_keeps_playing(self):
        """Slot 4 (noteoff ignore, the default): a note-off changes nothing
        (its 2 s sample is level up to its last 0.5 s, its `release`)."""
        left, _, meta, sent = self.play([[(0, note_on(1, 40, 127))],
                                         [(0, note_off(1, 40))]], seconds=1.2)
        on = self.at(meta, sent, 0)
        n = min(len(left), on + RATE) - on
        self.flat(left, on, on + n, LEVEL)

    def test_toggle_starts_and_stops_a_loop(self):
        """Slot 3 (mode loop, noteoff toggle): the first note-on starts the
        loop (which plays on over its 2 s sample's end), a note-off does
        nothing, the next note-on fades it out with the declick fade."""
        gap = int(2.3 * RATE / PERIOD)
        periods = [[(3, note_on(1, 39, 127))], [(3, note_off(1, 39))]] + [[]] * gap + \
            [[(50, note_on(1, 39, 127))]]
        left, _, meta, sent = self.play(periods, seconds=3.5)
        on, stop = self.at(meta, sent, 0), self.at(meta, sent, 2)
        self.assertEqual(onsets(left), [on])
        self.flat(left, on, stop, LEVEL)
        self.assertEqual(max(left[stop + FADE + 1:]), 0.0)

    def test_gated_loop_plays_while_held(self):
        """Slot 9 (note 90, channel 3, mode loop, noteoff release)."""
        left, _, meta, sent = self.play([[(9, note_on(3, 90, 127))], [], [],
                                         [(9, note_off(3, 90))]])
        on, off = self.at(meta, sent, 0), self.at(meta, sent, 1)
        self.flat(left, on, off, LEVEL)
        self.assertEqual(max(left[off + FADE + 1:]), 0.0)


class Controllers(MidiCase):
    def test_cc_120_silences_within_the_fade(self):
        """Slot 4 (release 0.5 s): CC 120 fades it with the declick fade,
        not its release."""
        left, _, meta, sent = self.play([[(0, note_on(1, 40, 127))], [],
                                         [(128, cc(1, 120, 0))]])
        on, cut = self.at(meta, sent, 0), self.at(meta, sent, 1)
        self.flat(left, on, cut, LEVEL)
        self.assertGreater(left[cut + FADE // 2], 0.0)
        self.assertEqual(max(left[cut + FADE + 1:]), 0.0)

    def test_cc_123_releases_held_notes(self):
        """CC 123 is a note-off for the held note of slot 2 (release)."""
        rel = round(0.05 * RATE)
        left, _, meta, sent = self.play([[(0, note_on(1, 38, 127))], [],
                                         [(64, cc(1, 123, 0))]])
        on, off = self.at(meta, sent, 0), self.at(meta, sent, 1)
        self.flat(left, on, off, LEVEL)
        self.assertEqual(max(left[off + rel + 1:]), 0.0)

    def test_other_controllers_are_counted(self):
        before = self.ignored()
        left, _, _, _ = self.play([[(0, cc(1, 7, 100)), (1, cc(1, 64, 127)),
                                    (2, bytes([0xC0, 5])), (3, bytes([0xE0, 0, 64]))]])
        self.assertEqual(max(left), 0.0)
        self.assertEqual(self.ignored() - before, 4)


class Mapping(MidiCase):
    def test_channel_filtering(self):
        """Slot 5 hears note 100 on channel 2 only; nothing else claims
        note 100, so the note-on on channel 1 is counted."""
        before = self.ignored()
        left, _, meta, sent = self.play([[(0, note_on(1, 100, 127))], [],
                                         [(40, note_on(2, 100, 127))]])
        self.assertEqual(onsets(left), [self.at(meta, sent, 1)])
        self.assertEqual(self.ignored() - before, 1)

    def test_default_map(self):
        """Slot 8 names no note: 36 + 8 = 44 plays it.  Slot 5 names note
        100, so its default note 41 is nobody's: counted."""
        before = self.ignored()
        left, _, meta, sent = self.play([[(20, note_on(1, 44, 127))], [],
                                         [(20, note_on(1, 41, 127))]])
        self.assertEqual(onsets(left), [self.at(meta, sent, 0)])
        self.assertEqual(self.ignored() - before, 1)

    def test_a_shared_note_plays_every_slot(self):
        """Slots 6 and 7 both claim 110 (gain 1 and 0.5)."""
        left, _, meta, sent = self.play([[(90, note_on(5, 110, 127))]])
        on = self.at(meta, sent, 0)
        self.assertEqual(onsets(left), [on])
        self.flat(left, on, on + SHORT, LEVEL * 1.5)

    def test_an_unmapped_note_is_counted(self):
        before = self.ignored()
        left, _, _, _ = self.play([[(0, note_on(1, 20, 127))]])
        self.assertEqual(max(left), 0.0)
        self.assertEqual(self.ignored() - before, 1)

    def test_get_and_refusals(self):
        r = self.osc.request("/get", 3, expect="/get.reply")
        got = dict(zip(r[1][1::2], r[1][2::2]))
        self.assertEqual(got["mode"], "loop")
        self.assertEqual(got["noteoff"], "toggle")
        for bad in (("note", 128), ("channel", 17), ("velcurve", 0), ("noteoff", "gate"),
                    ("mode", 1), ("note", 1.5)):
            r = self.osc.request("/set", 12, *bad, expect="/fail")
            self.assertIn(f"bad value for {bad[0]}", r[1][1])
        r = self.osc.request("/play", 0, "note", 40, expect="/fail")
        self.assertIn("/set", r[1][1])


class Stream(MidiCase):
    """The parser: one byte stream over JACK's events."""

    def test_running_status(self):
        """90 24 7f, then an event of data bytes only: note 44 on."""
        left, _, meta, sent = self.play([[(0, note_on(1, 36, 127))],
                                         [(60, bytes([44, 127]))]])
        self.assertEqual(onsets(left), [self.at(meta, sent, 0), self.at(meta, sent, 1)])

    def test_a_message_split_over_events(self):
        """The status in one event, its data in the next: it plays at the
        frame of its last byte."""
        left, _, meta, sent = self.play([[(7, bytes([0x90])), (90, bytes([36, 127]))]])
        self.assertEqual(onsets(left), [self.at(meta, sent, 1)])

    def test_realtime_bytes_inside_a_message(self):
        before = self.ignored()
        left, _, meta, sent = self.play([[(0, bytes([0xF8])), (5, bytes([0x90, 0xF8, 36, 0xFE,
                                                                         127]))]])
        self.assertEqual(onsets(left), [self.at(meta, sent, 1)])
        self.assertEqual(self.ignored() - before, 3)

    def test_sysex_in_the_middle(self):
        """A SysEx whose data would read as notes 36 and 44, split over
        two events, with a note before and after: only the two real notes
        sound; the data bytes after its end have no running status."""
        before = self.ignored()
        periods = [[(0, note_on(1, 36, 127)), (50, bytes([0xF0, 0x7E, 36, 127])),
                    (80, bytes([44, 127, 0xF7, 44, 127])), (150, note_on(1, 44, 127))]]
        left, _, meta, sent = self.play(periods)
        self.assertEqual(onsets(left), [self.at(meta, sent, 0), self.at(meta, sent, 3)])
        # The SysEx, and the two data bytes without a status.
        self.assertEqual(self.ignored() - before, 3)

    def test_garbage_never_starts_a_voice(self):
        before = self.ignored()
        # 0xf6 first: no running status left by another test.
        left, _, _, _ = self.play([[(0, bytes([0xF6, 0x24, 0x7F])), (1, bytes([0xF7])),
                                    (2, bytes([0xF3, 1])), (3, bytes([0x90, 0x24])),
                                    (4, bytes([0xF6, 0x24, 0x7F]))]])
        self.assertEqual(max(left), 0.0)
        self.assertGreater(self.ignored() - before, 0)
        self.assertTrue(self.daemon.running())


class MidiSeq(MidiCase):
    def test_jack_midiseq_every_note_on_its_interval(self):
        """jack_midiseq loops 4800 frames: note 36 at 0, note 44 at 1000
        (slots 0 and 8, the 16-frame sample).  Every onset is there, the
        gaps alternate 1000 and 3800 frames exactly."""
        seq = _spawn(["jack_midiseq", "midiseq", "4800", "0", "36", "500", "1000", "44", "500"],
                     env=self.jack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            dest = f"{self.daemon.name}:midi_in"
            for _ in range(100):
                if any(p.startswith("midiseq:") for p in self.jack.ports()):
                    break
                time.sleep(0.05)
            src = [p for p in self.jack.ports() if p.startswith("midiseq:")][0]
            self.jack.connect(src, dest)
            for attempt in range(1, TAKES + 1):
                rec = Recorder(self.jack, self.daemon.outputs, seconds=1.0)
                time.sleep(1.2)  # it stops by itself once full
                samples, meta = rec.stop()
                left, _ = deinterleave(samples)
                got = onsets(left)
                why = disturbed_in(meta, 0, len(left)) if got else "silent"
                if not why:
                    break
                pause_before_retake(attempt, self.daemon.port)
            self.assertIsNone(why)
            self.assertGreaterEqual(len(got), 2 * (len(left) // 4800) - 1)
            gaps = [b - a for a, b in zip(got, got[1:])]
            self.assertEqual(sorted(set(gaps)), [1000, 3800], gaps)
            self.assertTrue(all(g1 + g2 == 4800 for g1, g2 in zip(gaps, gaps[1:])))
        finally:
            _terminate(seq)


class Quantized(MidiCase):
    """A slot with `quant` (issue 17): its MIDI trigger waits for the launch
    grid like an OSC one.  At 240 BPM a beat is 12000 frames, and the own
    timeline is beat = JACK frame / 12000 (docs/timing.md), so the voice of
    a note-on at frame F starts on frame ceil(F / 12000) * 12000."""

    daemon_args = ("--tempo", "240")

    def test_a_quantized_slot_starts_on_the_next_beat(self):
        self.osc.send("/set", 0, "quant", 1)
        self.osc.request("/get", 0, expect="/get.reply")
        time.sleep(0.1)
        left, _, meta, sent = self.play([[(10, note_on(1, 36, 127))]], seconds=1.0)
        self.assertEqual(len(sent), 1)
        want = -(-sent[0][0] // 12000) * 12000  # ceil
        i = index_of(meta, want)
        self.assertIsNotNone(i, "the launch point is not in the recording")
        self.assertEqual(onsets(left), [i])
        self.flat(left, i, i + SHORT, LEVEL)


class MidiConnect(unittest.TestCase):
    """--midi-connect at start, when the port appears later, after a jackd
    restart under the same name (jack_midiseq as the port)."""

    def seq(self, jack):
        p = _spawn(["jack_midiseq", "ctlseq", "48000", "0", "36", "100"], env=jack.env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(_terminate, p)
        return p

    def wait_connected(self, jack, d, want, what):
        deadline = time.monotonic() + BACK_WITHIN_S
        while time.monotonic() < deadline:
            try:
                if jack.connections(f"{d.name}:midi_in") == want:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.1)
        self.fail(f"midi_in not {want} {what}: {jack.connections(d.name + ':midi_in')}\n"
                  f"{d.log()[-2000:]}")

    def status(self, osc):
        try:
            return osc.status(timeout=1)["state"]
        except TimeoutError:
            return None

    def test_connects_at_start_later_and_after_a_restart(self):
        jack = JackServer(rate=RATE, period=PERIOD)
        self.addCleanup(jack.close)
        first = self.seq(jack)
        for _ in range(100):
            if "ctlseq:out" in jack.ports():
                break
            time.sleep(0.05)
        d = Daemon(jack, extra_args=["--midi-connect", "ctlseq:out",
                                     "--midi-connect", "nosuch:port"])
        self.addCleanup(d.close)
        osc = OscClient(d.port)
        self.addCleanup(osc.close)
        self.wait_connected(jack, d, ["ctlseq:out"], "at start")
        # The port goes and comes back: connected again.
        _terminate(first)
        self.wait_connected(jack, d, [], "once the port went")
        self.seq(jack)
        self.wait_connected(jack, d, ["ctlseq:out"], "when it appeared again")
        # jackd restarts under the same name; the port comes back with it.
        name = jack.name
        jack.close()
        deadline = time.monotonic() + BACK_WITHIN_S
        while self.status(osc) != "jack-gone" and time.monotonic() < deadline:
            time.sleep(0.1)
        jack = JackServer(rate=RATE, period=PERIOD, name=name)
        self.addCleanup(jack.close)
        while self.status(osc) != "running" and time.monotonic() < deadline + BACK_WITHIN_S:
            time.sleep(0.1)
        self.seq(jack)
        self.wait_connected(jack, d, ["ctlseq:out"], "after the restart")
        self.assertEqual(d.stop(), 0, d.log()[-2000:])


if __name__ == "__main__":
    unittest.main()
