#!/usr/bin/env python3
"""looperd's benchmark suite, against SuperCollider's scsynth in the same run.

    python3 bench/run_bench.py [--build build-release] [--quick] [--only onset,latency]

Starts its own named `jackd -d dummy -r 48000 -p 64`, then looperd and
scsynth on it one after the other (never both at once), and prints one table:
our number, scsynth's, the ratio, and the target.  Prints numbers and never
fails on timing; exits non-zero only if the bench itself broke.  --only runs
just the onset rows (timetagged onset error; plain-message latency) for both
servers, about half a minute.

Standard library only; the harness comes from tests/looperd_test.py, the C
pieces from the build (bench_mixer, bench_decode, bench_jack_record,
bench_onsets), the worst-case period rows from bench/engine_ab.sh --burst
(the engine of --burst-base and of HEAD built from git into one process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, HERE)

from looperd_test import (CycleClock, Daemon, JackServer, OscClient, Recorder,  # noqa: E402
                          decode_packet, encode_bundle, encode_message,
                          free_udp_port, timetag_from_unix, write_wav, _spawn,
                          _terminate)
import scsynth as scdef  # noqa: E402

RATE, PERIOD = 48000, 64
QUICK = False


def log(*a):
    print("#", *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# helpers

def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of pid, from /proc/PID/task/*/schedstat
    (nanoseconds; /proc/PID/stat counts 10 ms ticks, far too coarse for
    32 voices at a few ns each).  Threads that ended are not counted, which
    is fine for servers whose threads live as long as they do."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total * 1e-9


def private_bytes(pid: int) -> int:
    """Resident memory private to pid: RSS without shared mappings such as
    JACK's server segment (/dev/shm/jack-*, ~100 MiB mapped into every
    client and counted in each one's RSS) and shared libraries' clean
    pages."""
    tot = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                tot += int(line.split()[1]) * 1024
    return tot


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def udp_rcvbuf_errors() -> int:
    with open("/proc/net/snmp") as f:
        lines = [l.split() for l in f if l.startswith("Udp:")]
    hdr, val = lines[0], lines[1]
    return int(val[hdr.index("RcvbufErrors")])


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def wait_reply(c: OscClient, pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no matching reply")
        m = c.recv(left)
        if pred(m):
            return m


def rtt_series(port: int, msg: bytes, n: int) -> list[float]:
    """n request/reply round trips, ms; the socket receives the reply."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        s.sendto(msg, ("127.0.0.1", port))
        s.recv(65536)
        out.append((time.perf_counter() - t0) * 1e3)
        time.sleep(0.0007 + (i % 7) * 0.0001)  # do not phase-lock to the period
    s.close()
    return out


def python_overhead_ms(n=2000) -> float:
    """Median round trip to an echo server written in Python, in another
    process: what the client and the loopback cost by themselves."""
    port = free_udp_port()
    code = ("import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
            f"s.bind(('127.0.0.1',{port}))\nwhile 1:\n d,a=s.recvfrom(9999);s.sendto(d,a)")
    p = _spawn([sys.executable, "-c", code])
    time.sleep(0.3)
    try:
        return statistics.median(rtt_series(port, b"/x\0\0,\0\0\0", n))
    finally:
        _terminate(p)


FLOOD_CODE = r"""
import socket, sys, time
port, rate, secs, msg = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), bytes.fromhex(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
dst = ("127.0.0.1", port); sent = 0
t0 = time.perf_counter(); end = t0 + secs
while True:
    now = time.perf_counter()
    if now >= end: break
    due = int((now - t0) * rate) - sent
    if due <= 0:
        time.sleep(0.0002); continue
    for _ in range(min(due, 2000)):
        s.sendto(msg, dst)
    sent += min(due, 2000)
print(sent, time.perf_counter() - t0)
"""


def flood(port: int, rate: float, secs: float, msg: bytes):
    """Starts a paced sender process; returns the Popen (stdout: sent secs)."""
    return subprocess.Popen([sys.executable, "-c", FLOOD_CODE, str(port), str(rate),
                             str(secs), msg.hex()], stdout=subprocess.PIPE, text=True)


def flood_result(p) -> tuple[int, float]:
    out, _ = p.communicate(timeout=60)
    n, t = out.split()
    return int(n), float(t)


# --------------------------------------------------------------------------
# the two servers, behind one interface

class Looperd:
    label = "looperd"

    def __init__(self, jack, binary, extra=()):
        self.d = Daemon(jack, binary=binary, extra_args=list(extra), ready_timeout=20)
        self.port = self.d.port
        self.pid = self.d.proc.pid
        self.c = OscClient(self.port)
        self.outputs = self.d.outputs
        self.c.request("/ping", expect="/pong", timeout=5)

    ping = encode_message("/ping")

    def load(self, slot, path, timeout=30):
        t0 = time.perf_counter()
        m = self.c.request("/load", slot, path, expect=("/done", "/fail"), timeout=timeout)
        dt = time.perf_counter() - t0
        if m[0] != "/done":
            raise RuntimeError(f"load failed: {m}")
        return dt

    def unload(self, slot):
        pass

    def loop_all(self, n, rate=None):
        for i in range(n):
            if rate is None:
                self.c.send("/loop", i)
            else:
                self.c.send("/loop", i, 1.0, "rate", float(rate))

    def play_msg(self, slot, timed=False):
        return encode_message("/play", slot)

    def stop_all(self):
        self.c.request("/stop", expect="/done")

    def status(self):
        return self.c.request("/status", expect="/status.reply")[1]

    def close(self):
        self.c.close()
        self.d.close()


class Scsynth:
    label = "scsynth"

    def __init__(self, jack, name="SuperCollider"):
        self.port = free_udp_port()
        env = dict(jack.env)
        self.tmp = tempfile.mkdtemp(prefix="bench-sc-")
        self.logf = open(os.path.join(self.tmp, "scsynth.log"), "wb")
        self.proc = _spawn(["scsynth", "-u", str(self.port), "-i", "0", "-o", "2",
                            "-R", "0", "-b", "1024", "-m", "65536"],
                           env=env, stdout=self.logf, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.c = OscClient(self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.c.request("/status", expect="/status.reply", timeout=0.2)
                break
            except TimeoutError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("scsynth did not start: "
                                       + open(self.logf.name).read())
        self.outputs = [f"{name}:out_1", f"{name}:out_2"]
        self.c.send("/d_recv", scdef.synthdefs())
        wait_reply(self.c, lambda m: m[0] == "/done" and m[1][:1] == ["/d_recv"]
                   or m[0] == "/fail", 5)
        self.node = 1000

    ping = encode_message("/sync", 1)

    def load(self, buf, path, timeout=30):
        t0 = time.perf_counter()
        self.c.send("/b_allocRead", buf, path)
        wait_reply(self.c, lambda m: m[0] == "/done" and m[1][:1] == ["/b_allocRead"]
                   or m[0] == "/fail", timeout)
        return time.perf_counter() - t0

    def unload(self, buf):
        self.c.send("/b_free", buf)
        wait_reply(self.c, lambda m: m[0] == "/done" and m[1][:1] == ["/b_free"], 5)

    def loop_all(self, n, rate=None):
        for i in range(n):
            self.node += 1
            if rate is None:
                self.c.send("/s_new", "looperd_pb", self.node, 0, 0, "buf", i, "loop", 1)
            else:
                self.c.send("/s_new", "looperd_pbr", self.node, 0, 0, "buf", i, "loop", 1,
                            "rate", float(rate))

    def stop_all(self):
        self.c.send("/g_freeAll", 0)
        self.c.request("/sync", 9, expect="/synced")

    def play_msg(self, buf, timed=False):
        return encode_message("/s_new", "looperd_pbo" if timed else "looperd_pb", -1, 0, 0,
                              "buf", buf)

    def close(self):
        self.c.close()
        _terminate(self.proc)
        self.logf.close()


# --------------------------------------------------------------------------
# measurements

def m_rtt(srv, n):
    r = rtt_series(srv.port, srv.ping, n)
    return statistics.median(r), pct(r, 99)


def m_load(srv, slot, path, reps):
    ts = []
    for _ in range(reps):
        ts.append(srv.load(slot, path) * 1e3)
        srv.unload(slot)
        time.sleep(0.1)
    return statistics.median(ts), min(ts), max(ts)


def m_cpu(srv, secs, nvoices=32, rounds=4, rate=None):
    """CPU time above idle per voice and output frame, ns.  Samples already
    loaded in slots 0..nvoices-1.  Idle and busy (nvoices looping voices)
    alternate in `rounds` pairs of `secs` seconds each, so drift in the
    machine's background load hits both alike; the result is the median of
    the per-round differences.  An idle JACK client already costs about 1-2 %
    of a core on these VMs (750 wake-ups a second), and 32 voices at 1.5 ns
    add only 0.23 %, so single runs are noisy: compare the mixer row.
    `rate`: the voices play at that speed (interpolating), else at 1."""
    diffs, idles, busies = [], [], []
    for _ in range(rounds):
        srv.stop_all()
        time.sleep(0.3)
        c0, t0 = cpu_seconds(srv.pid), time.monotonic()
        time.sleep(secs)
        idle = (cpu_seconds(srv.pid) - c0) / (time.monotonic() - t0)
        srv.loop_all(nvoices, rate)
        time.sleep(0.3)
        c0, t0 = cpu_seconds(srv.pid), time.monotonic()
        time.sleep(secs)
        busy = (cpu_seconds(srv.pid) - c0) / (time.monotonic() - t0)
        diffs.append((busy - idle) / (nvoices * RATE) * 1e9)
        idles.append(idle)
        busies.append(busy)
    srv.stop_all()
    return statistics.median(diffs), statistics.median(idles), statistics.median(busies), diffs


def m_onset(jack, onset_bin, srv, slot, n, timed, spacing=0.1):
    """Timetagged bundles (timed) or plain messages, n of them `spacing` s
    apart; returns onset_errors() of the recording: onset - timetag (timed)
    or onset - send time (plain; only the spread counts), in frames.
    Onsets and both clock references come from bench_onsets."""
    import random
    tmpd = tempfile.mkdtemp(prefix="bench-onsets-")
    outp = os.path.join(tmpd, "onsets.json")
    so = open(os.path.join(tmpd, "stdout"), "wb")
    p = _spawn([onset_bin, "--name", f"onsets{os.getpid()}", "--connect", srv.outputs[0],
                "--seconds", str(n * spacing + 5), "--out", outp], env=jack.env, stdout=so)
    deadline = time.monotonic() + 10
    while b"ready" not in open(so.name, "rb").read():
        if time.monotonic() > deadline or p.poll() is not None:
            raise RuntimeError("bench_onsets did not start")
        time.sleep(0.02)
    time.sleep(0.3)
    s = srv.c.sock
    walls = []
    base = time.time() + 0.3
    rnd = random.Random(1)
    for k in range(n):
        if timed:
            t_ev = base + k * spacing
            # sent 40..60 ms ahead, like a sequencer with look-ahead
            while time.time() < t_ev - 0.05 + rnd.uniform(-0.01, 0.01):
                time.sleep(0.0005)
            s.sendto(encode_bundle(timetag_from_unix(t_ev), [srv.play_msg(slot, True)]),
                     srv.c.target)
            walls.append(t_ev)
        else:
            t_ev = base + k * spacing + rnd.uniform(0, 0.02)
            while time.time() < t_ev:
                time.sleep(0.0003)
            w = time.time()
            s.sendto(srv.play_msg(slot), srv.c.target)
            walls.append(w)
    time.sleep(0.5)
    _terminate(p, grace=10)
    so.close()
    with open(outp) as f:
        meta = json.load(f)
    import shutil
    shutil.rmtree(tmpd, ignore_errors=True)
    return onset_errors(meta, walls)


QUANT_TEMPO = 240  # a beat of 12000 frames at 48 kHz


def m_quant_onset(jack, onset_bin, srv, slot, n, quant=0.5):
    """Plain /play ... quant Q, n of them one grid step and a bit apart, to
    a looperd started with --tempo QUANT_TEMPO (its own timeline: beat(f) =
    f * tempo / (60 * rate), docs/timing.md); returns {"err": onset minus
    the grid point's frame, ceil(B * 60 * rate / tempo), for the launch
    point B nearest each onset, "n": n, "xruns": X}."""
    import math
    tmpd = tempfile.mkdtemp(prefix="bench-quant-")
    outp = os.path.join(tmpd, "onsets.json")
    so = open(os.path.join(tmpd, "stdout"), "wb")
    step = quant * 60 / QUANT_TEMPO
    p = _spawn([onset_bin, "--name", f"quant{os.getpid()}", "--connect", srv.outputs[0],
                "--seconds", str(n * (step + 0.05) + 5), "--out", outp], env=jack.env, stdout=so)
    deadline = time.monotonic() + 10
    while b"ready" not in open(so.name, "rb").read():
        if time.monotonic() > deadline or p.poll() is not None:
            raise RuntimeError("bench_onsets did not start")
        time.sleep(0.02)
    time.sleep(0.3)
    for _ in range(n):
        srv.c.send("/play", slot, 1.0, "quant", float(quant))
        time.sleep(step + 0.05)
    time.sleep(0.5)
    _terminate(p, grace=10)
    so.close()
    with open(outp) as f:
        meta = json.load(f)
    import shutil
    shutil.rmtree(tmpd, ignore_errors=True)
    fpb = 60 * meta.get("rate", RATE) / QUANT_TEMPO
    err = []
    for o in meta["onsets"]:
        b = round(o / (fpb * quant)) * quant
        err.append(o - math.ceil(b * fpb - 1e-6))
    return {"err": err, "n": n, "xruns": meta.get("xruns", 0)}


class JackClock(CycleClock):
    """Wall-clock time (Unix seconds) -> fractional JACK frame through JACK's
    own mapping of the cycles bench_onsets logged (CycleClock, as
    tests/test_timing.py's ClockMap does for a recording index): W maps to
        frame_k + (W - off - usecs_k) / (next_usecs_k - usecs_k) * period.
    Frames are unwrapped from 32 bits relative to the first cycle
    (unwrap())."""

    def __init__(self, meta):
        super().__init__(meta["jcycles"], meta["wall_minus_jack_us"])
        self.period = meta["period"]
        self.first = self.cycles[0][0]

    def unwrap(self, frame):
        """JACK's 32-bit frame counter, continued past 2^32 (monotonic from
        the first cycle on)."""
        return self.first + ((frame - self.first) & 0xFFFFFFFF)

    def frame_at(self, wall):
        _, (frame, _, _), x = self.locate(wall)
        return self.unwrap(frame) + x * self.period


def callback_start_frame(meta, unwrap, cw, w):
    """The secondary reference: wall time w -> frame through the lower
    envelope of (callback start wall time - frame / rate) over the cycles
    within 0.25 s (a callback never starts before its period is due, but
    often after).  cw: the callback start times in seconds.  None if fewer
    than 10 cycles are near."""
    import bisect
    cyc, rate = meta["cycles"], meta["rate"]
    i0 = bisect.bisect_left(cw, w - 0.25)
    i1 = bisect.bisect_right(cw, w + 0.25)
    if i1 - i0 < 10:
        return None
    env = min(cw[i] - unwrap(cyc[i][0]) / rate for i in range(i0, i1))
    return (w - env) * rate


def onset_errors(meta, walls):
    """Onset minus the frame of each wall-clock time in walls, against both
    references (see bench_onsets.c).  The onset of event k is the first one
    from 500 frames before to 2500 after its frame by JACK's mapping (by
    the callback-start one if the cycle log has no JACK times), and the same
    onset is used for both errors.  Returns
    {"jack": [...], "callback": [...], "n": events, "unmatched": events
     without an onset, "xruns": X, "offset_drift_us": end - start of
     CLOCK_REALTIME - jack_get_time(), "skipped_cycles": see JackClock}."""
    import bisect
    jc = JackClock(meta) if meta.get("jcycles") else None
    first = jc.first if jc else (meta["cycles"][0][0] if meta["cycles"] else 0)

    def unwrap(f):
        return first + ((f - first) & 0xFFFFFFFF)

    ons = sorted(unwrap(o) for o in meta["onsets"])
    cw = [c[1] * 1e-9 for c in meta["cycles"]]
    ej, ec, unmatched = [], [], 0
    for w in walls:
        fj = jc.frame_at(w) if jc else None
        fc = callback_start_frame(meta, unwrap, cw, w)
        e = fj if fj is not None else fc
        if e is None:
            unmatched += 1
            continue
        j = bisect.bisect_left(ons, e - 500)
        if not (j < len(ons) and ons[j] < e + 2500):
            unmatched += 1
            continue
        if fj is not None:
            ej.append(ons[j] - fj)
        if fc is not None:
            ec.append(ons[j] - fc)
    return {"jack": ej, "callback": ec, "n": len(walls), "unmatched": unmatched,
            "xruns": meta.get("xruns", 0),
            "offset_drift_us": jc.drift_us if jc else None,
            "skipped_cycles": jc.skipped if jc else None}


# The MIDI sender of m_midi, run as /usr/bin/python3 (python3-jack-client;
# this file itself stays standard library only): n note-ons of note 36,
# each at a random frame of a period, about `spacing` s apart; prints the
# JACK frame of each as JSON.
MIDI_SENDER = r"""
import json, random, sys, time, jack
dest, n, spacing = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = jack.Client("bench_midi", no_start_server=True)
port = c.midi_outports.register("out")
todo, sent, rnd = [], [], random.Random(3)
@c.set_process_callback
def process(frames):
    port.clear_buffer()
    if todo:
        off = todo.pop()
        port.write_midi_event(off, (0x90, 36, 127))
        sent.append(c.last_frame_time + off)
c.activate()
c.connect(port, dest)
time.sleep(0.2)
for k in range(n):
    todo.append(rnd.randrange(c.blocksize))
    time.sleep(spacing)
time.sleep(0.2)
c.deactivate()
print(json.dumps(sent))
"""


def m_midi(jack, rec_bin, looperd_bin, click, n, spacing=0.1):
    """MIDI-to-output latency: each note-on's onset minus the JACK frame
    the sender placed it at, in frames (0: on its own frame).  Returns the
    list of latencies of the events whose onset was recorded, or None when
    /usr/bin/python3 has no python3-jack-client."""
    have = subprocess.run(["/usr/bin/python3", "-c", "import jack"], capture_output=True)
    if have.returncode != 0:
        log("MIDI row: /usr/bin/python3 has no python3-jack-client; skipped")
        return None
    srv = Looperd(jack, looperd_bin)
    try:
        srv.load(0, click)
        rec = Recorder(jack, srv.outputs, seconds=n * spacing + 3, binary=rec_bin)
        try:
            out = subprocess.run(["/usr/bin/python3", "-c", MIDI_SENDER, srv.d.name + ":midi_in",
                                  str(n), str(spacing)], env=jack.env, capture_output=True,
                                 text=True, timeout=n * spacing + 30)
        finally:
            samples, meta = rec.stop()
    finally:
        srv.close()
    sent = json.loads(out.stdout or "[]")
    left = samples[0::2]
    start = {c[0]: k * PERIOD for k, c in enumerate(meta["cycles"])}
    lat = []
    for f in sent:
        cyc = next((c for c in start if c <= f < c + PERIOD), None)
        if cyc is None:
            continue
        i = start[cyc] + (f - cyc)
        j = next((k for k in range(i - PERIOD, min(len(left), i + 4 * PERIOD))
                  if k >= 0 and left[k] != 0.0 and (k == 0 or left[k - 1] == 0.0)), None)
        if j is not None:
            lat.append(j - i)
    return lat


def m_xruns(jack, rec_bin, secs):
    rec = Recorder(jack, [], seconds=secs + 5, binary=rec_bin)
    time.sleep(secs)
    _, meta = rec.stop()
    return meta["xruns"]


def m_sampler_xruns(jack, rec_bin, looperd_bin, secs, turns):
    """256 voices at rate 1.5 with pan and envelopes, period 64, against the
    idle server, in windows side by side (as m_stress_turns, for the same
    reason).  A fresh looperd with 256 slots of a 1 s sample; in its window
    every slot loops at rate 1.5, panned across, with a 2 s attack (the
    envelope runs through most of the window), and is stopped with a 0.5 s
    release before the window ends.  Returns [(idle, sampler) xruns]."""
    tmp = tempfile.mkdtemp(prefix="bench-sampler-")
    path = os.path.join(tmp, "one.wav")
    import random
    rnd = random.Random(3)
    write_wav(path, [(rnd.randint(-8000, 8000), rnd.randint(-8000, 8000))
                     for _ in range(RATE)], RATE, 2)
    out = []
    try:
        for turn in range(turns):
            got = {}
            for part in (["idle", "sampler"] if turn % 2 == 0 else ["sampler", "idle"]):
                if part == "idle":
                    got[part] = m_xruns(jack, rec_bin, secs)
                    continue
                srv = Looperd(jack, looperd_bin, ["--slots", "256", "--voices", "256"])
                try:
                    for i in range(256):
                        srv.load(i, path)
                    rec = Recorder(jack, srv.outputs, seconds=secs + 5, binary=rec_bin)
                    for i in range(256):
                        srv.c.send("/loop", i, 0.1, "rate", 1.5, "pan", i / 127.5 - 1,
                                   "attack", 2.0, "release", 0.5)
                    time.sleep(secs - 1)
                    srv.c.send("/stop")
                    time.sleep(1)
                    _, meta = rec.stop()
                    got[part] = meta["xruns"]
                finally:
                    srv.close()
            out.append((got["idle"], got["sampler"]))
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def m_stress(jack, rec_bin, srv, flac, secs):
    """32 looping voices, 10,000 /play per second, a load running; the DSP
    peak polled every 10 ms through /status (each read resets it), and xruns
    counted by a passive recorder.  Returns (peaks in us, xruns, loads,
    /play sent)."""
    srv.loop_all(32)
    rec = Recorder(jack, srv.outputs, seconds=secs + 5, binary=rec_bin)
    stop = threading.Event()
    loads = [0]

    def loader():
        c = OscClient(srv.port)
        while not stop.is_set():
            try:
                c.request("/load", 31, flac, expect=("/done", "/fail"), timeout=10)
                loads[0] += 1
            except TimeoutError:
                pass
        c.close()

    th = threading.Thread(target=loader, daemon=True)
    th.start()
    fl = flood(srv.port, 10000, secs, encode_message("/play", 3))
    peaks = []
    c = OscClient(srv.port)
    c.request("/status", expect="/status.reply")  # reset the peak
    t_end = time.monotonic() + secs
    while time.monotonic() < t_end:
        time.sleep(0.01)
        st = c.request("/status", expect="/status.reply")[1]
        peaks.append(st[6] / 100 * PERIOD / RATE * 1e6)  # % of period -> us
    sent, _ = flood_result(fl)
    stop.set()
    th.join(15)
    _, meta = rec.stop()
    c.close()
    return peaks, meta["xruns"], loads[0], sent


BUSY_LOOP = "while :; do :; done"


def m_stress_turns(jack, rec_bin, looperd_bin, wav, flac, secs, turns):
    """Three windows of `secs` side by side, `turns` times, their order
    rotated every turn: the stress (m_stress, a fresh looperd with the 32
    WAVs); the idle server (no looperd, only the passive recorder); and
    the control, the idle server while two busy loops (shell, nice 10, no
    looperd) keep both CPUs as busy as the stress does.  This VM's xrun
    rate moves by 10x within seconds, so a baseline taken once, before or
    after, says little about the stress window; windows side by side do.
    On these VMs a busy guest alone costs xruns (the busy loops added
    +1.1/s to an idle 0.25/s, one loop +0.14/s), and the control shows how
    much of the stress window's count that explains.
    Returns (peaks in us, [(idle, busy, stress) xruns], loads, sent)."""
    peaks, turns_got, loads, sent = [], [], 0, 0
    parts = ["idle", "busy", "stress"]
    for turn in range(turns):
        got = {}
        for part in parts[turn % 3:] + parts[:turn % 3]:
            if part != "stress":
                hogs = [subprocess.Popen(["nice", "-n", "10", "sh", "-c", BUSY_LOOP])
                        for _ in range(2 if part == "busy" else 0)]
                try:
                    got[part] = m_xruns(jack, rec_bin, secs)
                finally:
                    for h in hogs:
                        h.kill()
                        h.wait()
                continue
            srv = Looperd(jack, looperd_bin)
            try:
                for i in range(32):
                    srv.load(i, wav)
                p, got[part], n, s = m_stress(jack, rec_bin, srv, flac, secs)
            finally:
                srv.close()
            peaks += p
            loads += n
            sent += s
        turns_got.append((got["idle"], got["busy"], got["stress"]))
    return peaks, turns_got, loads, sent


def m_accept(srv, rates, secs):
    """Highest paced /play rate with no refusal counted in /status and no
    datagram dropped by the kernel (UDP RcvbufErrors)."""
    best, rows = 0, []
    msg = encode_message("/play", 3)
    for r in rates:
        st0 = srv.status()[4]
        e0 = udp_rcvbuf_errors()
        p = flood(srv.port, r, secs, msg)
        sent, t = flood_result(p)
        time.sleep(0.3)
        refused = srv.status()[4] - st0
        dropped = udp_rcvbuf_errors() - e0
        achieved = sent / t
        rows.append((r, achieved, refused, dropped))
        log(f"accept: asked {r}/s, sent {achieved:.0f}/s, refused {refused}, dropped {dropped}")
        if refused or dropped:
            break
        best = achieved
        if achieved < 0.95 * r:
            break  # the sender is the limit
    return best, rows


def time_to_first_reply(jack, argv_of_port, request, reply, reps, limit, pause):
    """Median ms from spawning argv_of_port(port) to the first `reply` to
    `request`, sent every millisecond from one socket."""
    ts = []
    for _ in range(reps):
        port = free_udp_port()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.001)
        t0 = time.perf_counter()
        p = _spawn(argv_of_port(port), env=jack.env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = None
        while time.perf_counter() - t0 < limit:
            s.sendto(request, ("127.0.0.1", port))
            try:
                if s.recv(999).startswith(reply):
                    dt = time.perf_counter() - t0
                    break
            except (TimeoutError, ConnectionRefusedError, OSError):
                pass
        _terminate(p)
        s.close()
        if dt is not None:
            ts.append(dt * 1e3)
        time.sleep(pause)
    return statistics.median(ts) if ts else float("nan")


def m_startup_looperd(jack, binary, reps):
    return time_to_first_reply(
        jack, lambda port: [binary, "--no-connect", "--port", str(port), "--name",
                            f"lpstart{port}", "-q"],
        b"/ping\0\0\0,\0\0\0", b"/pong", reps, limit=10, pause=0.3)


def m_startup_scsynth(jack, reps):
    return time_to_first_reply(
        jack, lambda port: ["scsynth", "-u", str(port), "-i", "0", "-o", "2", "-R", "0"],
        encode_message("/sync", 7), b"/synced", reps, limit=15, pause=0.5)


def run_mixer(build):
    out = subprocess.run([os.path.join(build, "bench", "bench_mixer")], capture_output=True,
                         text=True, timeout=300).stdout
    m = re.search(r"^mixer:\s+([\d.]+)", out, re.M)
    f = re.search(r"^memory floor:\s+([\d.]+)", out, re.M)
    pc = re.search(r"^mixer, paced:\s+([\d.]+)", out, re.M)
    # The same run's float planar buffers (16-bit / float: same-run ratios).
    fm = re.search(r"^\s+float mixer:\s+[\d.]+ ns per voice-frame; 16-bit / float ([\d.]+)",
                   out, re.M)
    fp = re.search(r"^\s+float mixer, paced:\s+([\d.]+) ns per voice-frame; 16-bit / float "
                   r"([\d.]+)", out, re.M)
    # The same 16-bit buffers at rate 1.5 (the interpolating path), same run.
    fr = re.search(r"^mixer, rate 1\.5:\s+([\d.]+) ns per voice-frame back to back, ([\d.]+) paced",
                   out, re.M)
    ab = (float(fm.group(1)) if fm else None,
          (float(fp.group(1)), float(fp.group(2))) if fp else None,
          (float(fr.group(1)), float(fr.group(2))) if fr else None)
    return float(m.group(1)), float(f.group(1)), float(pc.group(1)) if pc else None, ab, out


# The engine before one period's work was bounded (every request walked the
# voice pool): the "before" side of the worst-case period rows.
BURST_BASE = "86ff194"


def run_burst(base, rounds):
    """bench/engine_ab.sh --burst: the worst period of `base` and HEAD in one
    process.  Returns {kind: (old_us, new_us, new/old)} and the output, or
    (None, why) when it cannot run (no git checkout, `base` unknown)."""
    try:
        out = subprocess.run([os.path.join(HERE, "engine_ab.sh"), "--burst", "--once", base,
                              "HEAD", str(rounds)], capture_output=True, text=True,
                             timeout=600, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    if out.returncode != 0:
        return None, (out.stderr or out.stdout).strip()
    rows = {}
    for m in re.finditer(r"^worst-case period, \d+ x (\S+(?: id)?), .*: old ([\d.]+) us  new "
                         r"([\d.]+) us  new/old ([\d.]+)", out.stdout, re.M):
        rows[m.group(1)] = (float(m.group(2)), float(m.group(3)), float(m.group(4)))
    return rows, out.stdout


def run_decode(build, path, reps=7):
    out = subprocess.run([os.path.join(build, "bench", "bench_decode"), path, str(RATE),
                          str(reps)], capture_output=True, text=True, check=True,
                         timeout=300).stdout
    return json.loads(out)


# --------------------------------------------------------------------------

def fmt(x, unit="", nd=2):
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:.{nd}f}{unit}"


def ratio(a, b):
    try:
        return f"{a / b:.2f}x" if a and b else "-"
    except TypeError:
        return "-"


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs, {model}, Linux {platform.release()}"


ONLY_CHOICES = ("onset", "latency", "sampler", "quant", "link", "midi")


def main():
    global QUICK
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--only", metavar="ROWS",
                    help="run only these rows, comma-separated: onset (timetagged onset"
                    " error), latency (plain-message latency, --latency 5 and none),"
                    " sampler (CPU per voice-frame at rate 1 and 1.5, xruns of 256"
                    " interpolating voices); looperd and scsynth each; quant (quantized"
                    " onset error, looperd); link (Ableton Link, looperd only); midi"
                    " (MIDI-to-output latency, looperd)")
    ap.add_argument("--burst-base", default=BURST_BASE, metavar="REV",
                    help="the engine the worst-case period rows compare HEAD with"
                    f" (default {BURST_BASE}, the last one whose requests walked the pool)")
    args = ap.parse_args()
    QUICK = args.quick
    only = set(args.only.split(",")) if args.only else set()
    if only - set(ONLY_CHOICES):
        ap.error(f"--only: unknown {sorted(only - set(ONLY_CHOICES))};"
                 f" choose from {', '.join(ONLY_CHOICES)}")
    full = not only

    def want(rows):
        return full or rows in only

    build = os.path.abspath(args.build)
    looperd_bin = os.path.join(build, "daemon", "looperd")
    rec_bin = os.path.join(build, "bench", "bench_jack_record")
    onset_bin = os.path.join(build, "bench", "bench_onsets")
    have_sc = subprocess.run(["sh", "-c", "command -v scsynth"],
                             capture_output=True).returncode == 0
    n_rtt = 500 if QUICK else 3000
    reps = 3 if QUICK else 7
    cpu_secs = 2 if QUICK else 4
    n_onsets = 20 if QUICK else 50
    R = {}

    tmp = tempfile.mkdtemp(prefix="looperd-bench-")
    wav = os.path.join(tmp, "ten.wav")
    flac = os.path.join(tmp, "sixty.flac")
    click = os.path.join(tmp, "click.wav")
    import random
    rnd = random.Random(7)
    if full or want("sampler"):
        noise = [rnd.randint(-8000, 8000) for _ in range(4096)]
        write_wav(wav, [(noise[i % 4096], noise[(i * 7) % 4096]) for i in range(10 * RATE)],
                  RATE, 2)
    if full:
        subprocess.run([os.path.join(build, "bench", "bench_decode"), "--make-flac", flac,
                        "60", "44100"], check=True)
    write_wav(click, [(30000, 30000)] + [(0, 0)] * 4799, RATE, 2)

    R["loadavg0"] = os.getloadavg()[0]
    log("machine:", machine(), "load average", R["loadavg0"])
    if full:
        log("mixer (in-process) ...")
        R["mixer"], R["floor"], R["mixer_paced"], R["mixer_ab"], mix_out = run_mixer(build)
        log(mix_out.strip().replace("\n", "\n# "))
        log(f"worst-case period, {args.burst_base} against HEAD (in-process) ...")
        R["burst"], burst_out = run_burst(args.burst_base, 10 if QUICK else 30)
        R["burst_base"] = args.burst_base
        log(burst_out.strip().replace("\n", "\n# "))
        log("decode references ...")
        R["dec_wav"] = run_decode(build, wav, reps)
        R["dec_flac"] = run_decode(build, flac, reps)
        R["py_rtt"] = python_overhead_ms(1000 if QUICK else 3000)

    with JackServer(rate=RATE, period=PERIOD, name=f"looperd-bench-{os.getpid()}") as jack:
        log("jack server", jack.name)
        time.sleep(1)
        if full:
            log("looperd: start-up ...")
            R["start_l"] = m_startup_looperd(jack, looperd_bin, reps)

        if want("latency"):
            log("looperd --latency 5 ...")
            srv = Looperd(jack, looperd_bin, ["--latency", "5"])
            try:
                srv.load(0, click)
                R["plain_lat"] = m_onset(jack, onset_bin, srv, 0, n_onsets, False, 0.1)
            finally:
                srv.close()

        if want("quant"):
            log(f"looperd --tempo {QUANT_TEMPO}: quantized onsets ...")
            srv = Looperd(jack, looperd_bin, ["--tempo", str(QUANT_TEMPO)])
            try:
                srv.load(0, click)
                R["quant_l"] = m_quant_onset(jack, onset_bin, srv, 0, n_onsets)
                log(f"quantized onset errors {R['quant_l']['err']}")
            finally:
                srv.close()
        if want("midi"):
            log("looperd: MIDI note-ons into midi_in ...")
            R["midi_lat"] = m_midi(jack, rec_bin, looperd_bin, click, n_onsets)

        def common_rows(srv, tag):
            """The rows both servers get, in the same order: R[name_tag]."""
            if full:
                R["rtt_" + tag] = m_rtt(srv, n_rtt)
                R["load_wav_" + tag] = m_load(srv, 0, wav, reps)
                R["load_flac_" + tag] = m_load(srv, 0, flac, reps)
            srv.load(0, click)
            if want("onset"):
                R["onset_" + tag] = m_onset(jack, onset_bin, srv, 0, n_onsets, True)
                log_onset(srv.label, R["onset_" + tag])
            if want("latency"):
                R["plain_" + tag] = m_onset(jack, onset_bin, srv, 0, n_onsets, False, 0.1)
            if want("sampler"):
                for i in range(32):
                    srv.load(i, wav)

        log("looperd ...")
        srv = Looperd(jack, looperd_bin)
        try:
            common_rows(srv, "l")
            if full:
                # looperd keeps the WAV's 16-bit integers: 2 bytes a sample.
                R["rss_l_after_loads"] = private_bytes(srv.pid) - 32 * 10 * RATE * 2 * 2
            if want("sampler"):
                R["cpu_l"] = m_cpu(srv, cpu_secs)
                R["cpu15_l"] = m_cpu(srv, cpu_secs, rate=1.5)
            if full:
                R["accept_l"] = m_accept(srv, [5000, 10000, 20000, 40000, 80000, 160000],
                                         1 if QUICK else 2)
        finally:
            srv.close()

        if full:
            st_secs, st_turns = (3, 2) if QUICK else (6, 4)
            log(f"stress, idle server and busy loops in turns, {st_turns} x 3 x {st_secs} s ...")
            R["stress_l"] = m_stress_turns(jack, rec_bin, looperd_bin, wav, flac, st_secs,
                                           st_turns) + (st_secs,)

        if want("sampler"):
            sx_secs, sx_turns = (4, 2) if QUICK else (6, 4)
            log(f"sampler: 256 voices at rate 1.5 against the idle server, {sx_turns} x 2 x"
                f" {sx_secs} s ...")
            R["sampler_xruns"] = (m_sampler_xruns(jack, rec_bin, looperd_bin, sx_secs, sx_turns),
                                  sx_secs)

        if full:
            log("looperd: resident memory, fresh daemon ...")
            srv = Looperd(jack, looperd_bin)
            try:
                rss0 = private_bytes(srv.pid)
                R["rss_l0_full"] = rss_bytes(srv.pid)
                for i in range(32):
                    srv.load(i, wav)
                time.sleep(0.3)
                # The raw audio, as for scsynth below: not /status's byte
                # count, which is what the buffers allocate (their rounding
                # is memory above the samples, and counts here).  16-bit PCM
                # at the JACK rate is kept as 16-bit integers (2 bytes).
                raw = 32 * 10 * RATE * 2 * 2
                R["rss_l"] = (private_bytes(srv.pid) - raw, raw)
                R["rss_l_full"] = rss_bytes(srv.pid) - raw
                R["rss_l0"] = rss0
                with open(f"/proc/{srv.pid}/status") as f:
                    R["status_l"] = {k: v.strip() for k, v in (l.split(":", 1) for l in f)
                                     if k in ("VmRSS", "VmLck", "Threads", "VmSize")}
            finally:
                srv.close()

        if have_sc:
            if full:
                log("scsynth: start-up ...")
                R["start_s"] = m_startup_scsynth(jack, 3)
                sc = Scsynth(jack)
                try:
                    R["rss_s0"] = private_bytes(sc.pid)
                    for i in range(32):
                        sc.load(i, wav)
                    time.sleep(0.3)
                    raw = 32 * 10 * RATE * 2 * 4  # scsynth keeps float32 frames
                    R["rss_s"] = (private_bytes(sc.pid) - raw, raw)
                    R["rss_s_full"] = rss_bytes(sc.pid) - raw
                finally:
                    sc.close()
            log("scsynth ...")
            sc = Scsynth(jack)
            try:
                common_rows(sc, "s")
                if want("sampler"):
                    R["cpu_s"] = m_cpu(sc, cpu_secs)
                    R["cpu15_s"] = m_cpu(sc, cpu_secs, rate=1.5)
            finally:
                sc.close()
        else:
            log("scsynth not installed: its column stays empty")

    if want("link") and os.path.exists(os.path.join(build, "bench", "bench_link")):
        log("Ableton Link, in network namespaces of its own ...")
        R["link"] = m_link(build, looperd_bin, rec_bin, tmp, 8 if QUICK else 24)

    print_table(R)
    with open(os.path.join(tmp, "..", f"looperd-bench-{os.getpid()}.json"), "w") as f:
        json.dump(R, f, indent=1, default=str)
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def m_link(build, looperd_bin, rec_bin, tmp, rounds):
    """Ableton Link rows.  Every Link peer runs only inside a network
    namespace made here (unshare -n, lo up), never in the machine's own:
    Link multicasts on every interface.  bench_link (Link's cost per period
    on the audio thread), then two looperd --link on two dummy jackd (the
    main server is stopped by now: at most two run), each sent `/play 1 1
    quant 1` `rounds` times at other moments: their onsets against each
    other and against the test peer's beat (tests/test_link_daemon.py)."""
    import test_link
    import test_link_daemon as tld
    out = {}
    r = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0"',
                        os.path.join(build, "bench", "bench_link"), "20000"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode == 0:
        out["cost"] = json.loads(r.stdout)
        log("link cost per period:", r.stdout.strip())
    else:
        log("bench_link failed:", r.stderr.strip())
    os.environ.setdefault("LINK_PROBE_BIN", os.path.join(build, "tests", "link_probe"))
    test_link.PROBE = os.environ["LINK_PROBE_BIN"]
    os.environ["LOOPERD_BIN"], os.environ["JACK_RECORD_BIN"] = looperd_bin, rec_bin
    if not os.access(test_link.PROBE, os.X_OK):
        log("no tests/link_probe in the build (-Dtests=true): two-daemon rows left out")
        return out
    made = []
    try:
        ns = test_link.LoNamespace()
        made.append(ns)
        path = f"/proc/{ns.holder.pid}/ns/net"
        got = tld.two_daemon_onsets(lambda o: made.append(o) or o, [ns.prefix, ns.prefix],
                                    [path, path], tmp, ("/play", 1, 1.0, "quant", 1.0),
                                    quantum=1.0, rounds=rounds)
        out["gaps_us"] = got["phase_gaps"]
        out["errs_us"] = [e for _, e, _ in got["onset_minus_bar"]]
    except Exception as e:  # a bench never fails on what it measures
        log("two-daemon Link run failed:", e)
    finally:
        for o in reversed(made):
            o.close()
    return out


def log_onset(who, o):
    """One line per timetagged run on stderr: both references, all errors."""
    for ref in ("jack", "callback"):
        e = o[ref]
        if e:
            log(f"{who} timetagged onsets vs {ref}: median {statistics.median(e):+.2f},"
                f" {min(e):+.2f}..{max(e):+.2f} frames, {len(e)}/{o['n']} measured")
    log(f"{who}: {o['xruns']} xruns, {o['unmatched']} events without an onset,"
        f" {o['skipped_cycles']} broken JACK cycle times skipped,"
        f" wall - JACK clock offset moved {o['offset_drift_us'] or 0:+.1f} us;"
        f" errors vs JACK {[round(x, 2) for x in o['jack']]}")


def jitter(errs, slip=100):
    """Spread of a latency that JACK's dummy clock shifts in steps.

    The dummy backend has no hardware clock: each xrun (about one a second
    on these VMs) leaves its frame counter a few hundred frames behind wall
    time from then on, so the wall-clock -> frame mapping of a recording
    shifts by a constant, and a whole run's stdev measures those steps, not
    the server.  Consecutive events lie on the same side of a step almost
    always, so the stdev of one event's latency is estimated from the
    differences of consecutive events (stdev(diff) / sqrt 2), leaving out the
    pairs that straddle a step (|diff| > slip frames; counted).
    Returns (stdev, slips) or None."""
    if not errs or len(errs) < 3:
        return None
    d = [b - a for a, b in zip(errs, errs[1:])]
    keep = [x for x in d if abs(x) <= slip]
    if len(keep) < 2:
        return None
    return (sum(x * x for x in keep) / len(keep)) ** 0.5 / 2 ** 0.5, len(d) - len(keep)


def print_table(R):
    g = R.get
    rows = []

    # Each row belongs to the measurement (a key of R) it shows; rows of
    # measurements that did not run (--only) are left out.
    section = ["rtt_l"]

    def row(name, ours, theirs, rat, target):
        if any(k in R for k in section):
            rows.append((name, ours, theirs, rat, target))

    rl, rs = g("rtt_l"), g("rtt_s")
    row("control round trip median (ms)", fmt(rl and rl[0], nd=3), fmt(rs and rs[0], nd=3),
        ratio(rl and rl[0], rs and rs[0]), "<= 0.8")
    row("control round trip p99 (ms)", fmt(rl and rl[1], nd=3), fmt(rs and rs[1], nd=3),
        ratio(rl and rl[1], rs and rs[1]), "<= 1.6")
    row("  (Python client + loopback alone, median ms)", fmt(g("py_rtt"), nd=3), "", "", "")
    dw = g("dec_wav", {})
    lw, sw = g("load_wav_l"), g("load_wav_s")
    row("load 10 s 48k WAV, median (min-max) ms",
        lw and f"{lw[0]:.1f} ({lw[1]:.1f}-{lw[2]:.1f})",
        sw and f"{sw[0]:.1f} ({sw[1]:.1f}-{sw[2]:.1f})" or "-",
        ratio(lw and lw[0], sw and sw[0]), "<= 3x decode")
    row("  libsndfile decode alone (ms); ours / it",
        fmt(dw.get("decode_median_ms")), "", ratio(lw and lw[0], dw.get("decode_median_ms")),
        "<= 3.00x")
    row("  daemon's decode_file() alone (ms); ours / it",
        fmt(dw.get("daemon_decode_median_ms")), "",
        ratio(lw and lw[0], dw.get("daemon_decode_median_ms")), "")
    df = g("dec_flac", {})
    lf, sf = g("load_flac_l"), g("load_flac_s")
    row("load 60 s 44.1k FLAC, median (min-max) ms",
        lf and f"{lf[0]:.1f} ({lf[1]:.1f}-{lf[2]:.1f})",
        sf and f"{sf[0]:.1f} ({sf[1]:.1f}-{sf[2]:.1f})" or "-",
        ratio(lf and lf[0], sf and sf[0]), "< scsynth")
    row("  decode + soxr HQ alone (ms); ours / it",
        fmt(df.get("decode_convert_median_ms")), "(no SRC)",
        ratio(lf and lf[0], df.get("decode_convert_median_ms")), "<= 1.30x")
    row("  daemon's decode_file() alone (ms); ours / it",
        fmt(df.get("daemon_decode_median_ms")), "",
        ratio(lf and lf[0], df.get("daemon_decode_median_ms")), "")
    section[:] = ["cpu_l", "cpu_s"]
    cl, cs = g("cpu_l"), g("cpu_s")
    row("CPU per voice-frame, 32 looping voices (ns)", fmt(cl and cl[0], nd=3),
        fmt(cs and cs[0], nd=3), ratio(cl and cl[0], cs and cs[0]), "<= 1.5")
    cl, cs = g("cpu15_l"), g("cpu15_s")
    row("CPU per voice-frame, 32 looping voices at rate 1.5 (ns; PlayBuf cubic)",
        fmt(cl and cl[0], nd=3), fmt(cs and cs[0], nd=3), ratio(cl and cl[0], cs and cs[0]),
        "<= 0.2")
    sx = g("sampler_xruns")
    if sx:
        turns, secs = sx
        idle = sum(t[0] for t in turns)
        busy = sum(t[1] for t in turns)
        row(f"xruns, 256 voices at rate 1.5 + pan + envelopes, {len(turns)} x {secs} s:"
            " sampler - idle server", f"{busy} - {idle} = {busy - idle:+d}", "", "",
            "<= 0 (none added)")
    section[:] = ["onset_l", "onset_s"]
    ol, os_ = g("onset_l"), g("onset_s")

    def errs(o, ref):
        return o[ref] if o else []

    def d(o, ref):
        e = errs(o, ref)
        if not e:
            return "-"
        extra = [f"{o['unmatched']} without onset"] if o["unmatched"] else []
        extra += [f"{o['xruns']} xruns"] if o["xruns"] else []
        return (f"{statistics.median(e):+.1f}, {min(e):+.1f}..{max(e):+.1f},"
                f" {sum(abs(x) <= 1 for x in e)}/{o['n']} within 1"
                + (f" ({', '.join(extra)})" if extra else ""))

    def every_within_1(o):
        e = errs(o, "jack")
        return bool(o) and len(e) == o["n"] and all(abs(x) <= 1 for x in e)
    row("timetagged onset error vs JACK's clock (frames): median, range, within 1 frame / n",
        d(ol, "jack"), d(os_, "jack"), "",
        "every event within 1 frame " + ("met" if every_within_1(ol) else "**missed**")
        if ol else "every event within 1 frame")
    row("  secondary: vs the wall clock at callback start (earliest wake-up near each)",
        d(ol, "callback"), d(os_, "callback"), "", "")
    section[:] = ["quant_l"]
    q = g("quant_l")
    qe = q["err"] if q else []
    row("quantized onset error vs the frame counter's grid, quant 0.5 (frames): median,"
        " range, within 1 / n",
        (f"{statistics.median(qe):+.1f}, {min(qe):+.0f}..{max(qe):+.0f},"
         f" {sum(abs(x) <= 1 for x in qe)}/{q['n']} within 1"
         + (f" ({q['xruns']} xruns)" if q["xruns"] else "")) if qe else "-", "", "",
        "every onset within 1 frame")

    # The plain-message rows: against JACK's clock too, like the timetag
    # rows (--latency schedules on it; the callback-start reference adds the
    # DLL's wandering against the wake-ups to looperd's spread), with the
    # callback-start numbers as a secondary row.  See docs/performance.md.
    section[:] = ["plain_l", "plain_lat", "plain_s"]
    pl, pla, ps = (errs(g(k), "jack") for k in ("plain_l", "plain_lat", "plain_s"))
    plc, plac, psc = (errs(g(k), "callback") for k in ("plain_l", "plain_lat", "plain_s"))

    def sd(o):
        return f"{statistics.pstdev(o):.1f} (n={len(o)})" if o and len(o) > 1 else "-"

    def jit(o):
        j = jitter(o)
        return j[0] if j else None

    def sdj(o):
        j = jitter(o)
        return f"{j[0]:.1f} ({j[1]} slips)" if j else "-"
    row("plain-message latency stdev vs JACK's clock (frames), --latency 5", sdj(pla),
        sdj(ps), ratio(jit(pla), jit(ps)), "<= 2")
    row("  same, without --latency", sdj(pl), "", "", "")
    row("  whole-run stdev incl. steps at xruns, --latency 5 / none",
        sd(pla) + " / " + sd(pl), sd(ps), "", "")
    row("  secondary: stdev vs the wall clock at callback start, --latency 5 / none",
        sdj(plac) + " / " + sdj(plc), sdj(psc), "", "")
    section[:] = ["midi_lat"]
    ml = g("midi_lat")
    row("MIDI-to-output latency (frames): median, stdev, range / n",
        f"{statistics.median(ml):+.0f}, {statistics.pstdev(ml):.2f}, {min(ml):+d}..{max(ml):+d}"
        f" / {len(ml)}" if ml else "-", "", "", "0, 0")
    section[:] = ["rtt_l"]
    row("mixer alone, 32 voices > LLC (ns/voice-frame)", fmt(g("mixer"), nd=3), "", "", "")
    row("  memory-read floor (ns/voice-frame); mixer / floor", fmt(g("floor"), nd=3), "",
        ratio(g("mixer"), g("floor")), "")
    row("  mixer paced like JACK, 1 period / 1.33 ms (ns/voice-frame)", fmt(g("mixer_paced"), nd=3),
        "", "", "")
    ab = g("mixer_ab")
    if ab and ab[1]:
        row("  the same with float planar buffers, same run (ns/voice-frame); 16-bit / float",
            fmt(ab[1][0], nd=3), "", fmt(ab[1][1]) + "x", "")
    if ab and ab[0]:
        row("  back to back, 16-bit / float buffers, same run", "", "", fmt(ab[0]) + "x", "")
    if ab and len(ab) > 2 and ab[2]:
        row("  rate 1.5 (cubic), 32 loops, same run: paced (ns/voice-frame); / rate 1 paced",
            fmt(ab[2][1], nd=3), "", ratio(ab[2][1], g("mixer_paced")), "")
        row("  rate 1.5 (cubic), back to back (ns/voice-frame)", fmt(ab[2][0], nd=3), "", "", "")
    burst = g("burst")
    for kind in ("/play", "/loop", "/stop id"):
        if burst and kind in burst:
            old, new, rat = burst[kind]
            row(f"worst period: 1,024 {kind} on 256 voices, 64 frames (us): {g('burst_base')}"
                " / HEAD, same run", f"{old:.0f} / {new:.0f}", "", f"{rat:.3f}x", "")
    stl = g("stress_l")
    if stl:
        peaks, turns, loads, sent, secs = stl
        span = secs * len(turns)
        # Medians over the turns: one stormy turn (170 xruns in an idle
        # window has been seen) would otherwise decide a sum.
        idle, busy, stress = (statistics.median(t[k] for t in turns) / secs for k in range(3))
        each = " ".join("/".join(str(x) for x in t) for t in turns)
        row("process callback worst (us, of 1333)", fmt(max(peaks), nd=0), "", "", "")
        row("  p99 of 10 ms-window peaks (us)", fmt(pct(peaks, 99), nd=0), "", "", "")
        row(f"  xruns/s, median of {len(turns)} turns: stress - idle server",
            f"{stress:.2f} - {idle:.2f} = {stress - idle:+.2f}", "", "",
            f"none added ({loads} loads, {sent / span:.0f} /play/s)")
        row("  the same: two busy loops, no looperd - idle server (control)",
            f"{busy:.2f} - {idle:.2f} = {busy - idle:+.2f}", "", "",
            f"xruns per {secs:g} s, turn by turn, idle/busy/stress: {each}")
    al = g("accept_l")
    row("requests/s accepted, nothing lost", fmt(al and al[0], nd=0), "", "",
        "" if not al else ("refusals reached" if al[1] and (al[1][-1][2] or al[1][-1][3])
                           else "sender-limited"))
    rl_, rs_ = g("rss_l"), g("rss_s")
    row("private RSS above raw sample data (MiB)", fmt(rl_ and rl_[0] / 1048576, nd=1),
        fmt(rs_ and rs_[0] / 1048576, nd=1), ratio(rl_ and rl_[0], rs_ and rs_[0]), "< 8")
    row("  private RSS of a fresh daemon, before any load (MiB)", fmt(g("rss_l0") and g("rss_l0") / 1048576, nd=1),
        fmt(g("rss_s0") and g("rss_s0") / 1048576, nd=1), "", "")
    row("  full RSS above raw sample data (MiB; incl. JACK shm)",
        fmt(g("rss_l_full") and g("rss_l_full") / 1048576, nd=1),
        fmt(g("rss_s_full") and g("rss_s_full") / 1048576, nd=1), "", "")
    row("start-up to first reply (ms)", fmt(g("start_l"), nd=1), fmt(g("start_s"), nd=1),
        ratio(g("start_l"), g("start_s")), "")

    section[:] = ["link"]
    lk = g("link") or {}
    cost, gaps, errs = lk.get("cost"), lk.get("gaps_us"), lk.get("errs_us")
    row("Ableton Link per period on the audio thread (us): mean, p99, max",
        cost and f"{cost['mean_us']:.2f}, {cost['p99_us']:.2f}, {cost['max_us']:.1f}",
        "", "", "")
    row("two looperd --link, quantized onsets apart (us): median, max / n",
        gaps and f"{statistics.median(gaps):.1f}, {max(gaps):.1f} / {len(gaps)}", "", "",
        "within 1000")
    row("  quantized onset - the session's beat (us): median, range (frames: / 20.8)",
        errs and f"{statistics.median(errs):+.1f}, {min(errs):+.1f}..{max(errs):+.1f}", "", "",
        "within 1000")

    w = [max(len(str(r[i])) for r in rows + [("measure", "looperd", "scsynth", "ratio",
                                                "target")]) for i in range(5)]
    print(f"machine: {machine()}; jackd -d dummy -r {RATE} -p {PERIOD}; "
          f"load average at start {R.get('loadavg0', 0):.2f}, at end {os.getloadavg()[0]:.2f}")
    hdr = ("measure", "looperd", "scsynth", "ratio", "target")
    print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |")
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
