#!/usr/bin/env python3
"""Issue 14, the control side, end to end against the real looperd and a real
jackd (dummy backend), with real UDP packets:

* one client must not lock the others out (future requests, the stop
  reserve of the schedule and of the command ring, a /quit for later);
* the log cannot be forged and a flood of bad packets is rate limited;
* every unknown address is answered, however long;
* --bank must be a small regular file, at start-up and on SIGHUP;
* --name, --listen :: and --sample-dir say what is wrong, or work;
* /status counts the voices stolen, and no event the audio thread lost.

One jackd serves the whole file; each test starts the daemon it needs."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import (IMMEDIATELY, Daemon, JackServer, OscClient,  # noqa: E402
                          binary_path, decode_message, encode_message, free_udp_port,
                          timetag_in, warnings_logged, write_wav)

RATE = 48000
PERIOD = 256
FUTURE_MAX = 512        # protocol.h PROTOCOL_FUTURE_MAX
PER_SOURCE = 128        # PROTOCOL_FUTURE_PER_SOURCE
BUSY_FUTURE_MINE = "busy: too many future requests from this client"
BUSY_FUTURE_ALL = "busy: too many future requests"


def setUpModule():
    global JACK, TMP, WAV
    TMP = tempfile.TemporaryDirectory(prefix="looperd-control-")
    WAV = os.path.join(TMP.name, "tone.wav")
    write_wav(WAV, [(1000, -1000)] * 4800, RATE, 2)
    JACK = JackServer(rate=RATE, period=PERIOD)


def tearDownModule():
    JACK.close()
    TMP.cleanup()


def replies(client, timeout=0.5):
    """Every message arriving until `timeout` s pass without one."""
    out = []
    while (m := client.try_recv(timeout)) is not None:
        out.append(m)
    return out


def ping_ok(client):
    return client.request("/ping", expect=("/pong", "/fail")) == ("/pong", [])


def status(client):
    return client.status()


class DaemonTest(unittest.TestCase):
    """A fresh daemon per test (its limits are what the test fills)."""

    ARGS: tuple = ()

    def setUp(self):
        self.daemon = Daemon(JACK, extra_args=list(self.ARGS))
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        code = self.daemon.stop()
        log = self.daemon.log()
        self.daemon.close()
        self.assertEqual(code, 0, log[-3000:])

    def client(self):
        c = OscClient(self.daemon.port)
        self.clients.append(c)
        return c


def fill_future(test, clients, address, args, n_each, ahead=600):
    """Each client sends n_each `address` requests in bundles `ahead` s in
    the future; returns the /fail reasons each got."""
    per_bundle = 300
    for c in clients:
        left = n_each
        while left:
            k = min(per_bundle, left)
            c.send_bundle(timetag_in(ahead), [(address, list(args))] * k)
            left -= k
    out = []
    for c in clients:
        got = replies(c, 0.5)
        test.assertTrue(all(m[0] == "/fail" for m in got), got[:5])
        out.append([m[1][1] for m in got])
    return out


class TestLockOut(DaemonTest):
    ARGS = ("--latency", "10")

    def test_future_pings_leave_room_for_the_others(self):
        """Pings ten minutes ahead from five clients: each holds at most its
        share, all together at most the future share, and another client's
        /ping, /load, /stop, /unload are all served."""
        greedy = [self.client() for _ in range(5)]
        fails = fill_future(self, greedy, "/ping", [], 400)
        # Each source: refused beyond its own share (or the total one).
        held = [400 - len(f) for f in fails]
        for f in fails:
            self.assertTrue(set(f) <= {BUSY_FUTURE_MINE, BUSY_FUTURE_ALL}, set(f))
        self.assertTrue(all(h <= PER_SOURCE for h in held), held)
        self.assertEqual(sum(held), min(FUTURE_MAX, 5 * PER_SOURCE), held)
        other = self.client()
        self.assertTrue(ping_ok(other))
        self.assertEqual(other.request("/load", 3, WAV, expect=("/done", "/fail"), timeout=10),
                         ("/done", ["/load", 3, 4800, 2]))
        self.assertEqual(other.request("/stop", expect=("/done", "/fail")), ("/done", ["/stop"]))
        self.assertEqual(other.request("/unload", 3, expect=("/done", "/fail")),
                         ("/done", ["/unload", 3]))
        # And a burst of present pings from it fits beside the future ones.
        for _ in range(300):
            other.send("/ping")
        got = replies(other, 0.5)
        self.assertEqual(got, [("/pong", [])] * 300)

    def test_future_plays_do_not_fill_the_schedule(self):
        """With --latency 10 every request is timed; 1,280 /plays for later
        cannot take the schedule: a /stop and new /plays still go in."""
        other = self.client()
        self.assertEqual(other.request("/load", 2, WAV, expect=("/done", "/fail"), timeout=10)[0],
                         "/done")
        greedy = [self.client() for _ in range(5)]
        fails = fill_future(self, greedy, "/play", [2], 256)
        self.assertEqual(sum(256 - len(f) for f in fails), FUTURE_MAX)
        for _ in range(200):
            other.send("/play", 2, 0.1)
        self.assertEqual(replies(other, 0.3), [], "a present /play was refused")
        self.assertEqual(other.request("/stop", expect=("/done", "/fail")), ("/done", ["/stop"]))
        self.assertTrue(ping_ok(other))

    def test_stop_gets_through_a_full_command_ring(self):
        """The audio thread stalled (jackd stopped) while one client floods
        /play: the ring fills for it, but a /stop from another still goes in
        and is done once the audio thread runs again."""
        other = self.client()
        self.assertEqual(other.request("/load", 2, WAV, expect=("/done", "/fail"), timeout=10)[0],
                         "/done")
        flood = self.client()
        self.assertTrue(ping_ok(flood))
        os.kill(JACK.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(0.05)
            pkt = encode_message("/play", 2, 0.1)
            # More than the schedule's 4096 places (--latency makes them
            # timed) and the ring's 1024 for untimed requests (without it).
            for _ in range(4300):
                flood.send_raw(pkt)
            got = replies(flood, 0.3)
            self.assertGreater(len(got), 0, "the command ring never filled")
            self.assertTrue(all(m == ("/fail", ["/play", "busy: command queue full", 2])
                                or m == ("/fail", ["/play", "busy: schedule full", 2])
                                for m in got), got[:3])
            other.send("/stop")
            self.assertIsNone(other.try_recv(0.2), "/stop refused while the ring is full")
        finally:
            os.kill(JACK.proc.pid, signal.SIGCONT)
        self.assertEqual(other.recv(5), ("/done", ["/stop"]))
        self.assertTrue(ping_ok(other))

    def test_quit_in_a_future_bundle_is_refused(self):
        c = self.client()
        c.send_bundle(timetag_in(30), [("/quit", [])])
        m = c.recv(2)
        self.assertEqual(m[0], "/fail", m)
        self.assertEqual(m[1][0], "/quit")
        self.assertIn("cannot be scheduled", m[1][1])
        time.sleep(0.2)
        self.assertTrue(self.daemon.running(), "a /quit for later quit at once")
        self.assertTrue(ping_ok(c))
        # A plain /quit (even with --latency) quits now.
        self.assertEqual(c.request("/quit", expect=("/done", "/fail")), ("/done", ["/quit"]))
        self.daemon.proc.wait(10)


class TestLockOutPlain(DaemonTest):
    """Without --latency plain requests are not timed: the command ring is
    the only queue a flood of /play fills."""
    test_stop_gets_through_a_full_command_ring = \
        TestLockOut.test_stop_gets_through_a_full_command_ring


class TestLogAndReplies(DaemonTest):

    def test_log_cannot_be_forged(self):
        c = self.client()
        forged = "/x\nlooperd: error: FORGED\r\x1b[2K"
        r = c.request("/load", 0, forged, expect=("/done", "/fail"), timeout=10)
        self.assertEqual(r[0], "/fail")
        deadline = time.monotonic() + 3
        while "FORGED" not in self.daemon.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = self.daemon.log()
        self.assertIn("FORGED", log)
        for line in log.splitlines():
            self.assertFalse(line.startswith("looperd: error: FORGED"), line)
            self.assertNotIn("\x1b", line)
        self.assertIn("/x\\nlooperd: error: FORGED\\r\\x1b[2K", log)

    def test_flood_of_bad_packets_is_rate_limited(self):
        c = self.client()
        before = status(c)["refused"]
        n = 3000
        t0 = time.monotonic()
        for i in range(n):
            c.send_raw(b"junk" * (1 + i % 3))
        # Every packet was counted (the status request comes after them).
        self.assertEqual(status(c)["refused"] - before, n)
        elapsed = time.monotonic() - t0
        # The report of what was left out comes by itself, no further line
        # needed.
        written, suppressed, log = warnings_logged(self.daemon, "dropped a malformed packet", n)
        self.assertEqual(written + suppressed, n, log[-2000:])
        # At most 5 a second (per started second of the flood, plus one).
        self.assertLessEqual(written, 5 * (int(elapsed) + 2), log[-2000:])
        self.assertLess(len(log), 20000)

    def test_long_unknown_addresses_are_answered_and_counted(self):
        c = self.client()
        before = status(c)["refused"]
        for size in (100, 996, 1200, 4000, 8000):
            addr = "/" + "é" * 10 + "x" * (size - 21)
            c.send(addr)
            m = c.recv(2)
            raw = addr.encode()
            self.assertEqual(m[0], "/fail")
            self.assertEqual(m[1][1], "unknown address")
            echoed = m[1][0].encode()
            self.assertLessEqual(len(echoed), 200)
            self.assertTrue(raw.startswith(echoed))
            self.assertEqual(len(echoed), min(len(raw), 200))
        self.assertEqual(status(c)["refused"] - before, 5)
        # The other /fail that echoes a client's address: /play/ID out of range.
        c.send("/play/" + "9" * 5000)
        m = c.recv(2)
        self.assertEqual(m[0], "/fail")
        self.assertEqual(m[1][1], "id out of range (0..31)")
        self.assertEqual(m[1][0], ("/play/" + "9" * 5000)[:200])


def run_daemon(args, timeout=10):
    """looperd expected to exit by itself: (status, stderr)."""
    argv = [binary_path("LOOPERD_BIN", "--looperd-bin"), "--no-connect",
            "--port", str(free_udp_port()), *args]
    p = subprocess.Popen(argv, env=JACK.env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        return None, err.decode(errors="replace")
    return p.returncode, err.decode(errors="replace")


class TestStatusCounters(DaemonTest):
    ARGS = ("--voices", "4")

    def test_stolen_voices_are_counted_and_nothing_is_lost(self):
        """Ten triggers of a 5 s sample at once on 4 voices: each of the last
        six finds every voice busy and steals one; nothing is lost."""
        c = self.client()
        wav = os.path.join(TMP.name, "long.wav")
        write_wav(wav, [(1000, -1000)] * (5 * RATE), RATE, 2)
        self.assertEqual(c.request("/load", 0, wav, expect=("/done", "/fail"), timeout=10)[0],
                         "/done")
        st = c.status()
        self.assertEqual((st["stolen"], st["lost"]), (0, 0), st)
        c.send_bundle(IMMEDIATELY, [("/play", [0, 0.1])] * 10)
        self.assertTrue(ping_ok(c))  # the triggers are applied before the /pong
        st = c.status()
        self.assertEqual(st["stolen"], 6, st)
        self.assertEqual(st["lost"], 0, st)
        c.send_bundle(IMMEDIATELY, [("/play", [0, 0.1])] * 3)
        self.assertTrue(ping_ok(c))
        st = c.status()
        self.assertEqual((st["stolen"], st["lost"]), (9, 0), st)


class TestOptions(unittest.TestCase):

    def bad_bank_cases(self, d):
        fifo = os.path.join(d, "fifo")
        os.mkfifo(fifo)
        big = os.path.join(d, "big.txt")
        with open(big, "w") as f:
            f.write(("# comment\n" * 120000))
        return [(os.path.join(d, "missing.txt"), "No such file"),
                (d, "is a directory"),
                (fifo, "not a regular file"),
                ("/dev/zero", "not a regular file"),
                (big, "larger than 1 MiB")]

    def test_bad_bank_at_start_up(self):
        with tempfile.TemporaryDirectory() as d:
            for path, why in self.bad_bank_cases(d):
                code, err = run_daemon(["--bank", path])
                self.assertIsNotNone(code, f"--bank {path}: still running after 10 s")
                self.assertNotEqual(code, 0, f"--bank {path}: {err}")
                self.assertIn(why, err, path)
                self.assertNotIn("ready", err)

    def test_bad_bank_on_sighup_keeps_the_old_one(self):
        def make_missing(bank):
            pass

        def make_dir(bank):
            os.mkdir(bank)

        def make_fifo(bank):
            os.mkfifo(bank)

        def make_device(bank):
            os.symlink("/dev/zero", bank)

        def make_big(bank):
            with open(bank, "w") as f:
                f.write("# comment\n" * 120000)

        cases = [(make_missing, "No such file"), (make_dir, "is a directory"),
                 (make_fifo, "not a regular file"), (make_device, "not a regular file"),
                 (make_big, "larger than 1 MiB")]
        with tempfile.TemporaryDirectory() as d:
            bank = os.path.join(d, "bank.txt")
            with open(bank, "w") as f:
                f.write(f"0 {WAV}\n")
            with Daemon(JACK, extra_args=["--bank", bank]) as daemon, \
                    OscClient(daemon.port) as c:
                self.assertEqual(status(c)["slots"], 1)
                for make, why in cases:
                    if os.path.isdir(bank) and not os.path.islink(bank):
                        os.rmdir(bank)
                    elif os.path.lexists(bank):
                        os.remove(bank)
                    make(bank)
                    n = daemon.log().count("refused")
                    os.kill(daemon.proc.pid, signal.SIGHUP)
                    deadline = time.monotonic() + 5
                    while daemon.log().count("refused") == n and time.monotonic() < deadline:
                        time.sleep(0.05)
                    log = daemon.log()
                    self.assertGreater(log.count("refused"), n, f"{why}: {log[-1500:]}")
                    line = [x for x in log.splitlines() if "refused" in x][-1]
                    self.assertIn(why, line)
                    self.assertIn("the bank loaded before stays", line)
                    self.assertTrue(ping_ok(c))
                    self.assertEqual(status(c)["slots"], 1)
                self.assertEqual(daemon.stop(), 0, daemon.log())

    def test_name_too_long(self):
        # 64: JACK2's jack_client_name_size() allows it, its server does not.
        for n in (400, 64):
            code, err = run_daemon(["--name", "n" * n])
            self.assertEqual(code, 2, err)
            self.assertIn("--name must be 1 to 63 characters", err)
            self.assertNotIn("no JACK server", err)

    def test_name_of_63_characters(self):
        name = "n" * 63
        d = Daemon(JACK, name=name)
        try:
            with OscClient(d.port) as c:
                self.assertTrue(ping_ok(c))
            for port in d.outputs:
                self.assertIn(port, JACK.ports())
        finally:
            d.close()

    def test_sample_dir_must_be_a_directory(self):
        with tempfile.TemporaryDirectory() as d:
            for path, why in ((WAV, "not a directory"),
                              (os.path.join(d, "missing"), "No such file")):
                code, err = run_daemon(["--sample-dir", path])
                self.assertEqual(code, 2, err)
                self.assertIn("--sample-dir", err)
                self.assertIn(why, err)

    def test_listen_any_is_dual_stack(self):
        """--listen :: --allow 127.0.0.1/32: an IPv4 client is served (its
        replies reach it); an IPv6 one is not allowed."""
        with Daemon(JACK, extra_args=["--listen", "::", "--allow", "127.0.0.1/32"]) as daemon:
            with OscClient(daemon.port, "127.0.0.1") as v4:
                self.assertTrue(ping_ok(v4))
                self.assertEqual(v4.last_from[0], "127.0.0.1")
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            try:
                v6.bind(("::1", 0))
                v6.settimeout(0.5)
                v6.sendto(encode_message("/ping"), ("::1", daemon.port))
                with self.assertRaises(TimeoutError):
                    v6.recvfrom(1024)
            finally:
                v6.close()
            self.assertEqual(daemon.stop(), 0, daemon.log())
        with Daemon(JACK, extra_args=["--listen", "::"]) as daemon:
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            try:
                v6.bind(("::1", 0))
                v6.settimeout(2)
                v6.sendto(encode_message("/ping"), ("::1", daemon.port))
                self.assertEqual(decode_message(v6.recvfrom(1024)[0]), ("/pong", []))
            finally:
                v6.close()
            with OscClient(daemon.port, "127.0.0.1") as v4:
                self.assertTrue(ping_ok(v4))
            self.assertEqual(daemon.stop(), 0, daemon.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
