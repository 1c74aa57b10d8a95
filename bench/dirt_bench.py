#!/usr/bin/env python3
"""The sample library and /dirt/play against scsynth, in one run.

    python3 bench/dirt_bench.py [--build build-release] [--quick]

Starts its own `jackd -d dummy -r 48000 -p 256`, writes a library of 200
banks of 10 short 44.1 kHz 16-bit WAVs (2,000 files, the size of the usual
Dirt-Samples collection; --quick: 50 banks), then:

 - library load: looperd --library, from spawning the process to the
   `library loaded` log line (it converts every file to 48 kHz), against
   scsynth loading the same files with /b_allocRead (all sent at once, as
   SuperDirt's loadSoundFiles does, timed from the first request to the
   last /done; scsynth's own start-up not counted);
 - dense pattern: 1,000 /dirt/play a second, each in a bundle 0.3 s ahead
   as Tidal sends them, for 30 s (--quick: 5 s), `sustain` 0.032 s so that
   about 32 voices sound: CPU of the daemon per event and per voice-frame,
   the voices sounding (/status, once a second), and /status's late,
   refused, not-found, skipped and stolen counts.  Every event started on
   its frame and none was lost when late (applied after its frame), refused,
   not found and skipped stay 0 and the kernel dropped no datagram (UDP
   RcvbufErrors): an event the audio thread has before its period starts
   on its frame (tests/test_timing.py records that).  The same pattern
   against scsynth in the same run: /s_new of PlayBuf (OffsetOut) in
   bundles 0.3 s ahead, on 10 stereo files of 0.032 s (so about 32 synths
   sound), its CPU per event and per voice-frame and its "late" lines.

Prints numbers; never fails on timing.  Standard library only; the harness
is tests/looperd_test.py.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, HERE)

from looperd_test import (JackServer, OscClient, encode_bundle, encode_message,  # noqa: E402
                          free_udp_port, status_dict, timetag_from_unix, write_wav, _spawn,
                          _terminate)
from run_bench import cpu_seconds  # noqa: E402

RATE, PERIOD = 48000, 256


def log(*a):
    print("#", *a, file=sys.stderr, flush=True)


def make_library(root, banks, per_bank, seconds=0.25):
    n = int(44100 * seconds)
    for b in range(banks):
        d = os.path.join(root, f"bank{b:03d}")
        os.makedirs(d)
        for i in range(per_bank):
            v = 1000 + 37 * b + i
            write_wav(os.path.join(d, f"{i:02d}.wav"), [((k * v) % 20000) - 10000
                                                        for k in range(n)], 44100, 1)
    return [os.path.join(root, f"bank{b:03d}", f"{i:02d}.wav")
            for b in range(banks) for i in range(per_bank)]


def looperd_load(jack, binary, lib, extra=()):
    port = free_udp_port()
    tmp = tempfile.mkdtemp(prefix="dirt-bench-")
    errp = os.path.join(tmp, "stderr")
    t0 = time.perf_counter()
    with open(errp, "wb") as err:
        proc = _spawn([binary, "--no-connect", "--port", str(port), "--library", lib,
                       *extra], env=jack.env, stderr=err, stdout=subprocess.DEVNULL)
    text = ""
    while proc.poll() is None:
        text = open(errp, errors="replace").read()
        m = re.search(r"library loaded: (\d+) banks?, (\d+) samples? in ([0-9.]+) s", text)
        if m:
            return proc, port, time.perf_counter() - t0, m, tmp
        time.sleep(0.005)
    raise RuntimeError("looperd exited:\n" + text)


def scsynth_load(jack, files):
    port = free_udp_port()
    tmp = tempfile.mkdtemp(prefix="dirt-bench-sc-")
    logf = open(os.path.join(tmp, "log"), "wb")
    proc = _spawn(["scsynth", "-u", str(port), "-i", "0", "-o", "2", "-R", "0",
                   "-b", str(len(files) + 16), "-m", "65536"],
                  env=jack.env, stdout=logf, stderr=subprocess.STDOUT)
    c = OscClient(port)
    try:
        end = time.monotonic() + 20
        while True:
            try:
                c.request("/status", expect="/status.reply", timeout=0.2)
                break
            except TimeoutError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise RuntimeError("scsynth did not start")
        t0 = time.perf_counter()
        for i, f in enumerate(files):
            c.send("/b_allocRead", i, f)
        done = 0
        while done < len(files):
            m = c.recv(30)
            if m[0] == "/done" and m[1][:1] == ["/b_allocRead"]:
                done += 1
            elif m[0] == "/fail":
                raise RuntimeError(f"scsynth: {m}")
        return time.perf_counter() - t0
    finally:
        c.close()
        _terminate(proc)
        logf.close()
        shutil.rmtree(tmp, ignore_errors=True)


def udp_rcvbuf_errors():
    """The kernel's count of UDP datagrams dropped for a full socket buffer."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def pace(c, secs, per_s, make, poll):
    """Sends make(k) for k = 0, 1, ... at per_s a second for secs, each in a
    bundle 0.3 s ahead; poll() once a second.  Returns how many were sent."""
    t0 = time.time()
    sent, next_poll = 0, 1.0
    while True:
        now = time.time()
        if now - t0 >= secs:
            break
        due = int((now - t0) * per_s) + 1
        while sent < due:
            c.send_raw(encode_bundle(timetag_from_unix(t0 + sent / per_s + 0.3), [make(sent)]))
            sent += 1
        if now - t0 >= next_poll:
            poll()
            next_poll += 1.0
        time.sleep(0.0005)
    time.sleep(0.6)
    return sent


def dense(proc, port, secs, per_s, banks):
    c = OscClient(port)
    try:
        before = status_dict(c.request("/status", expect="/status.reply")[1])
        voices = []
        drops = udp_rcvbuf_errors()
        cpu0 = cpu_seconds(proc.pid)

        def make(k):
            return encode_message("/dirt/play", "s", f"bank{k % banks:03d}", "n",
                                  float(k % 10), "sustain", 0.032, "orbit", k % 8, "cps",
                                  0.5625, "delta", 0.111, "cycle", float(k))

        def poll():
            voices.append(status_dict(c.request("/status", expect="/status.reply")[1])["voices"])

        sent = pace(c, secs, per_s, make, poll)
        cpu = cpu_seconds(proc.pid) - cpu0
        after = status_dict(c.request("/status", expect="/status.reply")[1])
        return sent, cpu, before, after, voices, udp_rcvbuf_errors() - drops
    finally:
        c.close()


def scsynth_dense(jack, secs, per_s):
    """The dense pattern on scsynth: /s_new looperd_pbo (PlayBuf, OffsetOut)
    on 10 stereo files of 0.032 s.  Returns (sent, cpu, synths once a
    second, late lines in its log, RcvbufErrors)."""
    import scsynth as scdef
    port = free_udp_port()
    tmp = tempfile.mkdtemp(prefix="dirt-bench-scd-")
    logf = open(os.path.join(tmp, "log"), "wb")
    proc = _spawn(["scsynth", "-u", str(port), "-i", "0", "-o", "2", "-R", "0",
                   "-b", "64", "-m", "65536"],
                  env=jack.env, stdout=logf, stderr=subprocess.STDOUT)
    c = OscClient(port)
    try:
        end = time.monotonic() + 20
        while True:
            try:
                c.request("/status", expect="/status.reply", timeout=0.2)
                break
            except TimeoutError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise RuntimeError("scsynth did not start")
        c.send("/d_recv", scdef.synthdefs())
        while not ((m := c.recv(10))[0] == "/done" and m[1][:1] == ["/d_recv"]):
            pass
        n = int(RATE * 0.032)
        for i in range(10):
            f = os.path.join(tmp, f"{i}.wav")
            write_wav(f, [(((k * (1000 + i)) % 20000) - 10000,) * 2 for k in range(n)], RATE, 2)
            c.send("/b_allocRead", i, f)
            while not ((m := c.recv(10))[0] == "/done" and m[1][:1] == ["/b_allocRead"]):
                pass
        synths = []
        drops = udp_rcvbuf_errors()
        cpu0 = cpu_seconds(proc.pid)

        def make(k):
            return encode_message("/s_new", "looperd_pbo", -1, 0, 0, "buf", k % 10, "loop", 0)

        def poll():
            synths.append(c.request("/status", expect="/status.reply")[1][2])

        sent = pace(c, secs, per_s, make, poll)
        cpu = cpu_seconds(proc.pid) - cpu0
        drops = udp_rcvbuf_errors() - drops
        logf.flush()
        with open(os.path.join(tmp, "log"), "rb") as f:
            late = sum(1 for line in f if b"late" in line)
        return sent, cpu, synths, late, drops
    finally:
        c.close()
        _terminate(proc)
        logf.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--quick", action="store_true", help="50 banks, 5 s of dense pattern")
    ap.add_argument("--runs", type=int, default=1,
                    help="load the library this many times each (looperd and scsynth "
                         "alternating) and print every run and the medians")
    ap.add_argument("--load-only", action="store_true", help="skip the dense pattern")
    args = ap.parse_args()
    binary = os.path.join(os.path.abspath(args.build), "daemon", "looperd")
    banks = 50 if args.quick else 200
    secs = 5 if args.quick else 30
    root = tempfile.mkdtemp(prefix="dirt-bench-lib-")
    try:
        log(f"writing {banks} banks of 10 files ...")
        files = make_library(root, banks, 10)
        with JackServer(rate=RATE, period=PERIOD) as jack:
            walls, logs, scs = [], [], []
            have_sc = shutil.which("scsynth") is not None
            for run in range(max(1, args.runs)):
                last = run == max(1, args.runs) - 1
                proc, port, wall, m, tmp = looperd_load(jack, binary, root, ["--voices", "64"])
                try:
                    log(f"looperd: {m.group(0)}; {wall:.3f} s from spawn")
                    walls.append(wall)
                    logs.append(float(m.group(3)))
                    if last and not args.load_only:
                        sent, cpu, b, a, voices, drops = dense(proc, port, secs, 1000, banks)
                finally:
                    _terminate(proc)
                    shutil.rmtree(tmp, ignore_errors=True)
                if have_sc:
                    scs.append(scsynth_load(jack, files))
                    log(f"scsynth: {scs[-1]:.3f} s")
            scd = scsynth_dense(jack, secs, 1000) if have_sc and not args.load_only else None
        wall, logged = statistics.median(walls), statistics.median(logs)
        sc = statistics.median(scs) if scs else None
        if len(walls) > 1:
            print("| run | looperd from spawn, s | looperd log, s | scsynth, s | ratio |")
            print("|---|---|---|---|---|")
            for i, w in enumerate(walls):
                s_ = f"{scs[i]:.3f} | {scs[i] / w:.2f}x" if scs else "- | -"
                print(f"| {i + 1} | {w:.3f} | {logs[i]:.3f} | {s_} |")
            print()
        print("| row | looperd | scsynth | ratio |")
        print("|---|---|---|---|")
        med = " (median)" if len(walls) > 1 else ""
        print(f"| load {len(files)} files (44.1 kHz 16-bit, looperd converts to 48 kHz){med}, s | "
              f"{wall:.3f} (log: {logged:.3f}) | {sc:.3f} | "
              f"{sc / wall:.2f}x |" if sc else f"| load, s | {wall:.3f} | - | - |")
        if not args.load_only:
            d = {k: a[k] - b[k] for k in ("late", "refused", "dirt_not_found", "dirt_skipped",
                                          "stolen", "xruns")}
            sv = sum(voices) / max(len(voices), 1)
            if scd:
                ssent, scpu, synths, slate, sdrops = scd
                ss = sum(synths) / max(len(synths), 1)
                per_ev = f"{scpu / ssent * 1e6:.1f} | {(cpu / sent) / (scpu / ssent):.2f}x"
                per_vf = (f"{scpu / (ss * RATE * secs) * 1e9:.1f} | "
                          f"{(cpu / (sv * RATE * secs)) / (scpu / (ss * RATE * secs)):.2f}x")
                sounding = f"{ss:.1f} ({min(synths)}..{max(synths)})"
                lost = f"late lines {slate}, RcvbufErrors {sdrops}"
            else:
                per_ev = per_vf = sounding = lost = "- | -"
            ok = (d["late"] == 0 and d["refused"] == 0 and d["dirt_not_found"] == 0
                  and d["dirt_skipped"] == 0 and drops == 0)
            print(f"| dense: {sent} events in {secs} s, CPU per event (all threads), us | "
                  f"{cpu / sent * 1e6:.1f} | {per_ev} |")
            print(f"| dense: voices sounding, mean of 1 s samples (min..max) | "
                  f"{sv:.1f} ({min(voices)}..{max(voices)}) | {sounding} | |")
            print(f"| dense: CPU per voice-frame (the mean sounding), ns | "
                  f"{cpu / (sv * RATE * secs) * 1e9:.1f} | {per_vf} |")
            print(f"| dense: late / refused / not found / skipped / stolen; RcvbufErrors | "
                  f"{d['late']} / {d['refused']} / {d['dirt_not_found']} / {d['dirt_skipped']} / "
                  f"{d['stolen']}; {drops} | {lost} | |")
            print(f"| dense: every event on its frame, none lost (JACK xruns in the run) | "
                  f"{'yes' if ok else 'NO'} ({d['xruns']}) | | |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
