#!/usr/bin/env python3
"""The JACK server going away and coming back, under traffic: a flood of
/status, /ping and timed bundles from several clients while jackd is stopped
gracefully (with the CPU loaded) and killed, again and again; after every
restart the daemon answers and plays the sample it had.  And a stalled
server: plain triggers sent during the stall are stale when it resumes, and
are dropped and counted, not fired in one burst."""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (Daemon, JackServer, OscClient, Recorder,  # noqa: E402
                          _spawn, _terminate, deinterleave, encode_message, take_recorder,
                          encode_bundle, find_onset, timetag_in, write_wav)

RATE = 48000
GRACEFUL_STOPS = 10
KILLS = 10
# Generous bounds that only a hang exceeds (the daemon retries every 250 ms).
BACK_WITHIN_S = 20.0
SIGTERM_WITHIN_S = 15.0


def fixture(n):
    return [((i * 53) % 20000 + 500) * (1 if i % 2 else -1) for i in range(n)]


class Flood:
    """`clients` sockets, each sending /status, /ping and a timed bundle
    (a /ping 20 ms ahead) in turn every 30-100 ms, reading and discarding
    whatever comes back, until stop()."""

    def __init__(self, port, clients=3):
        self.stop_event = threading.Event()
        self.sent = 0
        self.errors = []
        self.threads = []
        for i in range(clients):
            t = threading.Thread(target=self._run, args=(port, i), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, port, i):
        osc = OscClient(port)
        try:
            k = 0
            while not self.stop_event.is_set():
                kind = (k + i) % 3
                if kind == 0:
                    osc.send("/status")
                elif kind == 1:
                    osc.send("/ping")
                else:
                    osc.send_raw(encode_bundle(timetag_in(0.02),
                                               [encode_message("/ping")]))
                self.sent += 1
                k += 1
                osc.drain()
                self.stop_event.wait(0.03 + 0.07 * ((k * 7 + i * 3) % 10) / 10)
        except Exception as e:  # pragma: no cover - reported by stop()
            self.errors.append(repr(e))
        finally:
            osc.close()

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(5)
        return self.errors


class BusyLoops:
    """Two processes that spin, loading both cores, and a third that keeps
    JACK clients coming and going (jack_lsp, as a patchbay polls): each one
    sends the daemon's client a notification that libjack handles under a
    process-wide lock, so the server's shutdown finds that thread busy."""

    def __init__(self, env, n=2):
        self.procs = [_spawn([sys.executable, "-c", "while True: pass"])
                      for _ in range(n)]
        self.stop_event = threading.Event()
        self.churn = threading.Thread(target=self._churn, args=(env,), daemon=True)
        self.churn.start()

    def _churn(self, env):
        # Each jack_lsp is waited for (and killed if it hangs), so none
        # outlives the test.
        while not self.stop_event.is_set():
            try:
                subprocess.run(["jack_lsp"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=2)
            except subprocess.TimeoutExpired:
                pass

    def close(self):
        self.stop_event.set()
        for p in self.procs:
            _terminate(p, grace=1)
        self.procs = []
        self.churn.join(5)


class JackFaults(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="looperd-faults-")
        self.addCleanup(self.tmp.cleanup)
        self.jack = JackServer(rate=RATE)
        self.addCleanup(lambda: self.jack.close())
        self.path = os.path.join(self.tmp.name, "s.wav")
        self.data = fixture(3000)
        write_wav(self.path, self.data, RATE, 1)

    def daemon(self, *args):
        d = Daemon(self.jack, extra_args=list(args))
        self.addCleanup(d.close)
        osc = OscClient(d.port)
        self.addCleanup(osc.close)
        self.assertEqual(osc.request("/load", 0, self.path, expect=("/done", "/fail"))[0],
                         "/done")
        return d, osc

    def status(self, osc):
        return osc.status(timeout=3.0)

    def wait_state(self, d, osc, state, what):
        deadline = time.monotonic() + BACK_WITHIN_S
        last = None
        while time.monotonic() < deadline:
            self.assertTrue(d.running(), f"looperd died {what}:\n{d.log()}")
            try:
                last = self.status(osc)["state"]
            except TimeoutError:
                last = "no reply"
            if last == state:
                return
            time.sleep(0.05)
        self.fail(f"{what}: /status still says {last!r}, not {state!r}:\n{d.log()[-3000:]}")

    def recorder(self, d, what):
        return take_recorder(self.jack, d, 5, what)

    def assert_plays(self, d, osc, what):
        rec = self.recorder(d, what)
        try:
            osc.send("/play", 0, 1.0)
            time.sleep(0.3)
            samples, _ = rec.stop()
        finally:
            rec.close()
        left, _ = deinterleave(samples)
        onset = find_onset(left, 0, channels=1)
        self.assertIsNotNone(onset, f"nothing played {what}")
        want = [v / 32768.0 for v in self.data]
        self.assertEqual(list(left[onset:onset + len(want)]), want, what)

    def restart_jack(self, name):
        self.jack = JackServer(rate=RATE, name=name)

    def test_flood_while_jackd_stops_and_dies(self):
        d, osc = self.daemon()
        flood = Flood(d.port)
        self.addCleanup(flood.stop)
        name = self.jack.name
        for n in range(GRACEFUL_STOPS + KILLS):
            graceful = n < GRACEFUL_STOPS
            what = f"after {'graceful stop' if graceful else 'kill'} {n + 1}"
            busy = BusyLoops(self.jack.env) if graceful else None
            try:
                time.sleep(0.2)
                if graceful:
                    self.jack.close()  # SIGTERM by PID, waits for its exit
                else:
                    self.jack.proc.kill()  # SIGKILL: keeps its slot until restarted
                    self.jack.proc.wait()
                    self.jack.close()
                # Alive and answering with the server gone.
                self.wait_state(d, osc, "jack-gone", what)
                self.assertEqual(osc.request("/ping", timeout=3.0), ("/pong", []), what)
                time.sleep(0.1)
            finally:
                if busy:
                    busy.close()
            self.restart_jack(name)
            self.wait_state(d, osc, "running", what)
            osc.drain()
            self.assertEqual(osc.request("/ping", timeout=3.0), ("/pong", []), what)
            status = self.status(osc)
            self.assertEqual(status["slots"], 1, f"{what}: the sample is no longer loaded")
            self.assertEqual(status["rate"], RATE, what)
            self.assertEqual(status["period"], 256, what)
            self.assert_plays(d, osc, what)
        self.assertEqual(flood.stop(), [])
        self.assertGreater(flood.sent, 100)
        d.proc.send_signal(signal.SIGTERM)
        try:
            code = d.proc.wait(timeout=SIGTERM_WITHIN_S)
        except subprocess.TimeoutExpired:
            self.fail(f"SIGTERM not honoured within {SIGTERM_WITHIN_S} s:\n{d.log()[-3000:]}")
        self.assertEqual(code, 0, d.log()[-3000:])
        self.assertNotIn("Segmentation", d.log())

    def test_quit_while_the_server_is_gone(self):
        d, osc = self.daemon()
        name = self.jack.name
        self.jack.proc.kill()
        self.jack.proc.wait()
        self.jack.close()
        self.wait_state(d, osc, "jack-gone", "after a kill")
        self.assertEqual(osc.request("/quit", expect="/done", timeout=3.0), ("/done", ["/quit"]))
        try:
            code = d.proc.wait(timeout=SIGTERM_WITHIN_S)
        except subprocess.TimeoutExpired:
            self.fail(f"/quit not honoured within {SIGTERM_WITHIN_S} s:\n{d.log()[-3000:]}")
        self.assertEqual(code, 0, d.log()[-3000:])
        self.restart_jack(name)  # a killed server's slot is freed by its successor

    def test_stalled_server_drops_stale_plain_triggers(self):
        d, osc = self.daemon()
        late0 = self.status(osc)["late"]
        rec = Recorder(self.jack, d.outputs, seconds=30)
        try:
            time.sleep(0.2)
            os.kill(self.jack.proc.pid, signal.SIGSTOP)
            try:
                time.sleep(0.2)
                for _ in range(50):
                    osc.send("/play", 0, 1.0)
                    osc.send("/loop", 0)
                time.sleep(2.5)
            finally:
                os.kill(self.jack.proc.pid, signal.SIGCONT)
            time.sleep(0.5)
            status = self.status(osc)
            samples, meta = rec.stop()
        finally:
            rec.close()
        left, right = deinterleave(samples)
        self.assertIsNone(find_onset(left, 0, channels=1),
                          "a trigger sent during the stall sounded after it")
        self.assertEqual(status["late"] - late0, 100, "stale triggers not counted as late")
        self.assertEqual(status["voices"], 0, "voices sound after the stall")
        # Fresh triggers still play.
        self.assert_plays(d, osc, "after the stall")
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
