#!/usr/bin/env python3
"""/load -> /done of the benchmark's 10 s WAV (or a file), for two or more looperd builds.

    python3 bench/load_ab.py [--rounds 8] [--per 10] [--file F] LABEL=LOOPERD ...
    e.g. python3 bench/load_ab.py main=/tmp/main/build-release/daemon/looperd \\
                                  this=build-release/daemon/looperd

One private `jackd -d dummy -r 48000 -p 64`.  The daemons run one at a time,
in turn (the order reversed every other round), `--per` loads each per round
into the same slot, 0.1 s apart, as run_bench.py's m_load does; so the
builds see the same machine, alternating, and the medians compare.  The
reference is bench_decode's libsndfile decode of the same file (median of 7,
before and after).  Prints numbers, never fails on timing.  Standard library
only; the harness is tests/looperd_test.py.  The file is written by the same
code as run_bench.py's (10 s stereo 16-bit noise at 48 kHz); --file loads
another one instead, e.g. the 60 s FLAC of `bench_decode --make-flac F`."""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from looperd_test import Daemon, JackServer, OscClient, write_wav  # noqa: E402

RATE, PERIOD = 48000, 64


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--per", type=int, default=10, help="loads per daemon and round")
    ap.add_argument("--bench-decode", default=os.path.join(ROOT, "build-release", "bench",
                                                           "bench_decode"))
    ap.add_argument("--file", help="load this file instead of the 10 s WAV")
    ap.add_argument("daemons", nargs="+", metavar="LABEL=LOOPERD")
    a = ap.parse_args()
    bins = [d.split("=", 1) for d in a.daemons]
    if any(len(b) != 2 for b in bins):
        ap.error("give each daemon as LABEL=PATH")

    tmp = tempfile.mkdtemp(prefix="looperd-load-ab-")
    try:
        wav = a.file or os.path.join(tmp, "ten.wav")
        if not a.file:
            write_ten(wav)
        run(a, bins, wav)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_ten(wav):
    rnd = random.Random(7)          # the same noise as run_bench.py
    noise = [rnd.randint(-8000, 8000) for _ in range(4096)]
    write_wav(wav, [(noise[i % 4096], noise[(i * 7) % 4096]) for i in range(10 * RATE)],
              RATE, 2)


def run(a, bins, wav):
    def reference():
        out = subprocess.run([a.bench_decode, wav, str(RATE), "7"], capture_output=True,
                             text=True, check=True).stdout
        return json.loads(out)["decode_median_ms"]

    refs = [reference()]
    times = {label: [] for label, _ in bins}
    with JackServer(rate=RATE, period=PERIOD, name=f"looperd-load-ab-{os.getpid()}") as jack:
        time.sleep(0.5)
        for r in range(a.rounds):
            for label, binary in (bins if r % 2 == 0 else bins[::-1]):
                with Daemon(jack, binary=binary, ready_timeout=20) as d, \
                        OscClient(d.port) as c:
                    c.request("/ping", expect="/pong", timeout=5)
                    c.request("/load", 0, wav, expect="/done", timeout=10)   # warm-up
                    time.sleep(0.1)
                    for _ in range(a.per):
                        t0 = time.perf_counter()
                        m = c.request("/load", 0, wav, expect=("/done", "/fail"), timeout=10)
                        dt = (time.perf_counter() - t0) * 1e3
                        if m[0] != "/done":
                            raise RuntimeError(f"{label}: load failed: {m}")
                        times[label].append(dt)
                        time.sleep(0.1)
    refs.append(reference())
    ref = statistics.median(refs)
    print(f"libsndfile decode alone (bench_decode median): {refs[0]:.3f} ms before, "
          f"{refs[1]:.3f} ms after")
    for label, _ in bins:
        xs = sorted(times[label])
        med = statistics.median(xs)
        print(f"{label:12s} n={len(xs)}  median {med:.3f} ms ({med / ref:.2f}x)  "
              f"p25 {xs[len(xs) // 4]:.3f}  p75 {xs[3 * len(xs) // 4]:.3f}  "
              f"min {xs[0]:.3f}  max {xs[-1]:.3f}")


if __name__ == "__main__":
    main()
