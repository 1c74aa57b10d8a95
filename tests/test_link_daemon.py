"""looperd in an Ableton Link session: --link, /link, quantized onsets on
the session's bar lines, on one machine and across two (network namespaces).

Network rule: Link multicasts on every interface it finds, so every Link
peer here (looperd with --link, tests/link_probe) runs only inside network
namespaces this test makes and removes: ``unshare -n`` with ``lo`` up (one
machine: the peers find each other over lo alone), or two ``ip netns``
joined by a veth pair with link-local addresses (two machines).  No Link
peer ever runs in the machine's own namespace.  The JACK servers run outside
(their sockets are files, which a client in a network namespace still
reaches); the test talks OSC to a daemon from a socket made inside the
daemon's namespace (setns).  A namespace that cannot be made fails the test
with the reason (needs root); nothing is skipped.

Onsets are judged on host time (CLOCK_MONOTONIC_RAW, Link's clock): the
recorder on each JACK server logs every cycle's jack_get_cycle_times(), the
frame-to-time mapping of that server, which places a recorded frame on
JACK's clock; the playback latency JACK reports for looperd's outputs (they
are connected to the dummy backend's playback ports as well as to the
recorder) is added, and JACK's clock is moved to CLOCK_MONOTONIC_RAW by
the offset the recorder measured (raw_minus_jack_us).  The bar's time is
what the test peer's Link session state gives (link_probe "beat").

Known Link behaviour respected: only the phase within the quantum is
shared, not the beat count; tempo travels as whole microseconds per beat.

Run with /usr/bin/python3; LOOPERD_BIN, JACK_RECORD_BIN and LINK_PROBE_BIN
name the binaries.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (Daemon, JackServer, OscClient, Recorder,  # noqa: E402
                          write_wav)
from test_link import (PROBE, LinkHut, LoNamespace, Probe, VethPair,  # noqa: E402
                       wait_for, wire_tempo)

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
ONE_MS = 1000.0  # us


@contextlib.contextmanager
def in_netns(path: str):
    """This thread in the network namespace at `path` (sockets made inside
    belong to it), back in its own afterwards."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise AssertionError(f"setns {path}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise AssertionError("cannot return to the test's own network namespace")
    finally:
        os.close(own)
        os.close(target)


def playback_latency(jack: JackServer, port: str) -> int:
    """The maximum of `port`'s playback latency range (frames), as JACK
    reports it (jack_lsp -l)."""
    out = subprocess.run(["jack_lsp", "-l", port], env=jack.env, capture_output=True,
                         text=True, timeout=10).stdout
    m = re.search(r"port playback latency = \[ *(\d+) +(\d+) *\]", out)
    if not m:
        raise AssertionError(f"no playback latency for {port} in: {out!r}")
    return int(m.group(2))


def onset_jack_us(meta: dict, index: int, period: int) -> float:
    """JACK time (us) of recorded frame `index`: cycle k = index // period
    starts at index k * period (jack_record), at that cycle's usecs."""
    k = index // period
    frame, usecs, next_usecs = meta["cycles"][k]
    if next_usecs <= usecs:
        raise AssertionError(f"cycle {k} of the recording has no clock reading")
    return usecs + (index - k * period) * (next_usecs - usecs) / period


def click_onsets(samples, channels: int = 2) -> list[int]:
    """The frames where a click starts (left channel over 0.1 after at
    least 100 quiet frames)."""
    out, quiet = [], 100
    for i, v in enumerate(samples[0::channels]):
        if abs(v) > 0.1:
            if quiet >= 100:
                out.append(i)
            quiet = 0
        else:
            quiet += 1
    return out


def two_daemon_onsets(keep, prefixes: list[list[str]], ns_paths: list[str], tmp: str,
                      trigger: tuple, quantum: float, rounds: int) -> dict:
    """Two looperd --link, each on its own dummy jackd, in the namespaces
    `prefixes` / `ns_paths`, with a test peer (link_probe) in the first:
    `rounds` times, `trigger` (a /play or /loop of slot 1 with a quant)
    is sent to the first and, a non-whole number of grid steps later, to
    the second.  Each recorded click onset is placed on host time (JACK's
    frame-to-time mapping of its server, plus the outputs' playback
    latency, moved to CLOCK_MONOTONIC_RAW) and compared with the nearest
    grid point (quantum `quantum` beats) the test peer's session gives.
    Returns onset_minus_bar [(daemon, us, latency frames)], bars [[us]...]
    per daemon, phase_gaps (us, |first - second| modulo a grid step, per
    round), and the daemons and OSC clients (still running).  Every object
    made goes to keep() for the caller to close."""
    rate, period = 48000, 256
    jacks = [keep(JackServer(rate=rate, period=period)) for _ in range(2)]
    wav = os.path.join(tmp, "click.wav")
    # A one-frame click, then silence: the onset is the click's frame.
    write_wav(wav, [(16384, 16384)] + [(0, 0)] * 4799, rate, 2)
    daemons, oscs = [], []
    for jack, prefix, path in zip(jacks, prefixes, ns_paths):
        d = keep(Daemon(jack, wrapper=prefix, extra_args=["--link"]))
        with in_netns(path):
            osc = keep(OscClient(d.port))
        daemons.append(d)
        oscs.append(osc)
    probe = keep(Probe(prefixes[0], 120, "test peer"))
    wait_for("the test peer sees both looperd", lambda: probe.ask("peers")["peers"] >= 2)
    for d, osc, jack in zip(daemons, oscs, jacks):
        msg = osc.request("/load", 1, wav, expect=("/done", "/fail"), timeout=10)
        if msg[0] != "/done":
            raise AssertionError(f"/load: {msg}")
        # Output latency: the outputs also feed the backend's playback ports.
        for src, dst in zip(d.outputs, ("system:playback_1", "system:playback_2")):
            jack.connect(src, dst)
    tempo = probe.ask("tempo")["tempo"]
    step_us = quantum * 60e6 / tempo
    recs = [keep(Recorder(j, d.outputs, seconds=5 + rounds * 3 * step_us * 1e-6))
            for j, d in zip(jacks, daemons)]
    latency = [wait_for("JACK reports the outputs' playback latency",
                        lambda j=j, d=d: playback_latency(j, d.outputs[0]))
               for j, d in zip(jacks, daemons)]
    sends = []  # CLOCK_MONOTONIC_RAW, us: what a failure message shows
    for _ in range(rounds):
        sends.append(time.clock_gettime(time.CLOCK_MONOTONIC_RAW) * 1e6)
        oscs[0].send(*trigger)
        time.sleep(step_us * 1.37e-6)
        sends.append(time.clock_gettime(time.CLOCK_MONOTONIC_RAW) * 1e6)
        oscs[1].send(*trigger)
        time.sleep(step_us * 1.5e-6)
    hosts, bars, errs = [], [], []
    for rec, lat, d in zip(recs, latency, daemons):
        samples, meta = rec.stop()
        onsets = click_onsets(samples)
        if len(onsets) < rounds:
            raise AssertionError(f"{d.name}: {len(onsets)} onsets recorded, {rounds} sent")
        # JACK's clock to CLOCK_MONOTONIC_RAW, as the recorder measured it.
        r_j = sum(meta["raw_minus_jack_us"]) / 2
        hs, bs = [], []
        for i in onsets[:rounds] if trigger[0] == "/play" else onsets[:1]:
            raw = onset_jack_us(meta, i, period) + lat * 1e6 / rate + r_j
            # The grid point nearest the onset, from the test peer's session.
            bar = probe.ask(f"beat {quantum} {int(raw - step_us / 2)}")["next_bar_us"]
            hs.append(raw)
            bs.append(bar)
            errs.append((d.name, raw - bar, lat))
            print(f"{d.name}: onset - grid {raw - bar:+.1f} us (latency {lat} frames)",
                  file=sys.stderr)
        hosts.append(hs)
        bars.append(bs)
    gaps = []
    for a, b in zip(*hosts):
        g = (b - a) % step_us
        gaps.append(min(g, step_us - g))
    print(f"two looperd: onsets {', '.join(f'{g:.1f}' for g in gaps)} us apart modulo "
          f"{quantum:g} beats", file=sys.stderr)
    return {"onset_minus_bar": errs, "bars": bars, "phase_gaps": gaps,
            "daemons": daemons, "oscs": oscs, "sends": sends, "hosts": hosts}


class _Closer:
    def __init__(self, fn):
        self.close = fn


class LinkDaemonCase(unittest.TestCase):
    def setUp(self):
        if not PROBE or not os.access(PROBE, os.X_OK):
            self.fail("LINK_PROBE_BIN does not name the link_probe binary")
        self.cleanups: list = []
        self.tmp = tempfile.mkdtemp(prefix="looperd-link-")
        self.keep(_Closer(lambda: subprocess.run(["rm", "-rf", self.tmp])))

    def tearDown(self):
        for c in reversed(self.cleanups):
            c.close()

    def keep(self, obj):
        self.cleanups.append(obj)
        return obj

    def daemon(self, jack, prefix, ns_path, *args):
        d = self.keep(Daemon(jack, wrapper=prefix, extra_args=["--link", *args]))
        with in_netns(ns_path):
            osc = self.keep(OscClient(d.port))
        return d, osc

    def beat_reply(self, osc) -> list:
        return osc.request("/beat", expect="/beat.reply")[1]

    # ---- one machine: a peer looperd does not control ---------------------

    def test_probe_sees_looperd_and_its_tempo_reaches_beat_reply(self):
        jack = self.keep(JackServer())
        ns = self.keep(LoNamespace())
        ns_path = f"/proc/{ns.holder.pid}/ns/net"
        d, osc = self.daemon(jack, ns.prefix, ns_path)
        probe = self.keep(Probe(ns.prefix, 100, "probe"))
        wait_for("the probe sees looperd", lambda: probe.ask("peers")["peers"] >= 1)
        # The probe's tempo, proposed after joining, becomes looperd's.
        probe.ask("tempo 133")

        def tempo_133():
            beat, tempo, quantum, peers, link = self.beat_reply(osc)
            return (abs(tempo - wire_tempo(133)) < 1e-3 and peers >= 1 and link == 1
                    and (beat, tempo, quantum, peers, link))
        beat, tempo, quantum, peers, link = wait_for("133 BPM in /beat.reply", tempo_133)
        self.assertAlmostEqual(tempo, wire_tempo(133), delta=1e-3)
        self.assertEqual(quantum, 4.0)
        # /tempo with Link proposes the tempo to the session: the probe gets it.
        osc.send("/tempo", 97.0)
        wait_for("looperd's /tempo 97 reaches the probe",
                 lambda: abs(probe.ask("tempo")["tempo"] - wire_tempo(97)) < 1e-3)
        # /link 0 leaves the session (unanswered), /link 1 joins again.
        osc.send("/link", 0)
        wait_for("the probe no longer sees looperd", lambda: probe.ask("peers")["peers"] == 0)
        self.assertEqual(self.beat_reply(osc)[3:], [0, 0])
        osc.send("/link", 1)
        wait_for("the probe sees looperd again", lambda: probe.ask("peers")["peers"] >= 1)
        wait_for("/beat.reply says Link is on", lambda: self.beat_reply(osc)[4] == 1)
        self.assertIsNone(osc.try_recv(0.3), "a good /link was answered")
        for bad in ((2,), (), ("on",), (1, 1)):
            msg = osc.request("/link", *bad, expect="/fail")
            self.assertEqual(msg[1][0], "/link", msg)
        # A clean exit with Link on (under ASan: no leak report either).
        self.assertEqual(d.stop(), 0, d.log())

    def test_linkhut_sees_looperd_and_its_tempo_reaches_beat_reply(self):
        jack = self.keep(JackServer())
        ns = self.keep(LoNamespace())
        d, osc = self.daemon(jack, ns.prefix, f"/proc/{ns.holder.pid}/ns/net")
        hut = self.keep(LinkHut(ns.prefix, jack.env))
        wait_for("LinkHut sees looperd", lambda: hut.state()[1] >= 1)
        wait_for("looperd sees LinkHut", lambda: self.beat_reply(osc)[3] >= 1)
        # LinkHut's 'e' is one BPM up: its tempo becomes looperd's.
        before = hut.state()[2]
        hut.key(b"e")
        wait_for("LinkHut's tempo in /beat.reply",
                 lambda: abs(self.beat_reply(osc)[1] - (before + 1)) < 1e-3)
        # And looperd's /tempo shows in LinkHut.
        osc.send("/tempo", 111.0)
        wait_for("LinkHut shows looperd's 111",
                 lambda: abs(hut.state()[2] - wire_tempo(111)) < 1e-3)
        hut.quit()
        self.assertTrue(d.running())

    def test_link_start_stop_holds_quantized_launches(self):
        """--link-start-stop: a quantized /play waits while the session is
        stopped (a new Link session starts stopped) and starts on a beat
        once a peer starts it."""
        rate, period = 48000, 256
        jack = self.keep(JackServer(rate=rate, period=period))
        ns = self.keep(LoNamespace())
        ns_path = f"/proc/{ns.holder.pid}/ns/net"
        d, osc = self.daemon(jack, ns.prefix, ns_path, "--link-start-stop")
        probe = self.keep(Probe(ns.prefix, 120, "probe"))
        probe.ask("sync 1")
        wait_for("the probe sees looperd", lambda: probe.ask("peers")["peers"] >= 1)
        wav = os.path.join(self.tmp, "click.wav")
        write_wav(wav, [(16384, 16384)] + [(0, 0)] * 4799, rate, 2)
        msg = osc.request("/load", 1, wav, expect=("/done", "/fail"), timeout=10)
        self.assertEqual(msg[0], "/done", msg)
        self.assertFalse(probe.ask("beat 1")["playing"], "a new session is stopped")
        rec = self.keep(Recorder(jack, d.outputs, seconds=10))
        beat_us = 60e6 / probe.ask("tempo")["tempo"]
        osc.send("/play", 1, 1.0, "quant", 1.0)
        time.sleep(beat_us * 2.5e-6)  # two and a half beats of a stopped session
        play_at = probe.ask("clock")["clock"]
        probe.ask("play 1")
        time.sleep(beat_us * 2e-6)
        samples, meta = rec.stop()
        onsets = click_onsets(samples)
        self.assertEqual(len(onsets), 1, f"onsets at {onsets}")
        r_j = sum(meta["raw_minus_jack_us"]) / 2
        host = onset_jack_us(meta, onsets[0], period) + r_j  # only the recorder: latency 0
        self.assertEqual(playback_latency(jack, d.outputs[0]), 0)
        self.assertGreater(host, play_at, "the launch did not wait for the session to play")
        beat = probe.ask(f"beat 1 {int(host - beat_us / 2)}")["next_bar_us"]
        self.assertLess(abs(host - beat), ONE_MS, f"onset {host - beat:+.1f} us from the beat")

    # ---- two looperd, each told /loop ... quant 4 at another moment -------

    def two_daemons_on_bars(self, prefixes: list[list[str]], ns_paths: list[str]):
        r = two_daemon_onsets(self.keep, prefixes, ns_paths, self.tmp,
                              ("/loop", 1, 1.0, "quant", 4.0), quantum=4.0, rounds=1)
        for name, err, lat in r["onset_minus_bar"]:
            self.assertLess(abs(err), ONE_MS, f"{name}: onset {err:+.1f} us from the session's "
                            f"bar line (latency {lat} frames)")
        self.assertNotEqual(r["bars"][0][0], r["bars"][1][0],
                            f"both started on the same bar: sent at {r['sends']}, onsets at "
                            f"{r['hosts']}, bars {r['bars']} (us, CLOCK_MONOTONIC_RAW)")
        for gap in r["phase_gaps"]:
            self.assertLess(gap, ONE_MS, f"the two onsets are {gap:.0f} us apart modulo a bar")
        for osc in r["oscs"]:
            self.assertEqual(osc.drain(), [], "a quantized /loop was answered")
        for d in r["daemons"]:
            self.assertEqual(d.stop(), 0, d.log())

    def test_two_daemons_one_machine(self):
        ns = self.keep(LoNamespace())
        path = f"/proc/{ns.holder.pid}/ns/net"
        self.two_daemons_on_bars([ns.prefix, ns.prefix], [path, path])

    def test_two_daemons_two_namespaces_veth(self):
        pair = self.keep(VethPair())
        self.two_daemons_on_bars(pair.prefixes, [f"/run/netns/{n}" for n in pair.ns])


if __name__ == "__main__":
    unittest.main(verbosity=2)
