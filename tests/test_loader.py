#!/usr/bin/env python3
"""The loader under faults (issue 14): a sample-rate change with loads
queued and in flight, unloads that are refused or dropped, a file whose
read() blocks forever, a --sample-dir raced by a symlink swapper, and a
bank larger than the load queue.

A read that blocks is made with fanotify (FAN_ACCESS_PERM): the kernel
holds every read() of the marked file until the listener answers, and
closing the listener lets them all through.  The file is an ordinary
regular file, exactly what a stalled network mount looks like to the
daemon.  fanotify's permission events need CAP_SYS_ADMIN."""
import ctypes
import math
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
                          deinterleave, take_recorder, timetag_in, write_wav)
from test_service import Notify  # noqa: E402

RATE = 48000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                                ctypes.c_char_p]
FAN_CLOEXEC = 0x1
FAN_CLASS_CONTENT = 0x4
FAN_MARK_ADD = 0x1
FAN_ACCESS_PERM = 0x20000
AT_FDCWD = -100
RENAME_EXCHANGE = 2


class ReadGate:
    """Every read() of `path` blocks until close() (fanotify, see above)."""

    def __init__(self, path):
        self.fd = _libc.fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, os.O_RDONLY)
        if self.fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"fanotify_init: {os.strerror(e)} (needs CAP_SYS_ADMIN)")
        if _libc.fanotify_mark(self.fd, FAN_MARK_ADD, FAN_ACCESS_PERM, AT_FDCWD,
                               os.fsencode(path)) < 0:
            e = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(e, f"fanotify_mark: {os.strerror(e)}")

    def close(self):
        """Lets every held read through (the kernel allows the pending
        permission events of a closed group)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def sine(path, freq, seconds=0.5, rate=RATE, amp=12000):
    n = int(seconds * rate)
    write_wav(path, [int(amp * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)],
              rate, 1)


def pitch(samples, rate):
    """Frequency of the sine in `samples` (mono), from its rising zero
    crossings over the part that sounds."""
    loud = [i for i, v in enumerate(samples) if abs(v) > 0.05]
    if len(loud) < rate // 10:
        return None
    a, b = loud[0] + rate // 50, loud[-1] - rate // 50
    ups = [i for i in range(a, b) if samples[i - 1] < 0 <= samples[i]]
    if len(ups) < 3:
        return None
    return (len(ups) - 1) * rate / (ups[-1] - ups[0])


# Runs argv[1:] with openat2() failing ENOSYS, as on a kernel older than
# 5.6: a seccomp filter (x86-64 syscall number 437), no new privileges.
NO_OPENAT2 = r"""
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
def ins(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)
prog = (ins(0x20, 0, 0, 0)                      # ld  [nr]
        + ins(0x15, 0, 1, 437)                  # jeq openat2
        + ins(0x06, 0, 0, 0x00050000 | 38)      # ret ERRNO(ENOSYS)
        + ins(0x06, 0, 0, 0x7fff0000))          # ret ALLOW
buf = ctypes.create_string_buffer(prog)
fprog = struct.pack("HxxxxxxQ", 4, ctypes.addressof(buf))
fbuf = ctypes.create_string_buffer(fprog)
assert libc.prctl(38, 1, 0, 0, 0) == 0          # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.addressof(fbuf), 0, 0) == 0  # SECCOMP_MODE_FILTER
os.execv(sys.argv[1], sys.argv[1:])
"""


class Loader(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="looperd-loader-")
        self.addCleanup(self.tmp.cleanup)
        self.jack = JackServer(rate=RATE)
        self.addCleanup(lambda: self.jack.close())

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def daemon(self, *args, env=()):
        d = Daemon(self.jack, extra_args=list(args), wrapper=["env", *env] if env else ())
        self.addCleanup(d.close)
        osc = OscClient(d.port)
        self.addCleanup(osc.close)
        return d, osc

    def status(self, osc):
        return osc.status()

    def restart_jack(self, rate, osc):
        """Kills jackd and starts one of the same name at `rate`; returns
        once the daemon runs on it."""
        name = self.jack.name
        self.jack.proc.kill()
        self.jack.proc.wait()
        self.jack.close()
        self.jack = JackServer(rate=rate, name=name)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st = self.status(osc)
            if st["state"] == "running" and st["rate"] == rate:
                return
            time.sleep(0.05)
        self.fail("the daemon did not come back on the new server")

    def kill_jack(self, osc):
        self.jack.proc.kill()
        self.jack.proc.wait()
        time.sleep(1.0)  # the daemon notices and lets go of the client
        self.assertEqual(self.status(osc)["state"], "jack-gone")

    def start_jack_again(self, osc):
        name = self.jack.name
        self.jack.close()
        self.jack = JackServer(rate=RATE, name=name)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.status(osc)["state"] != "running":
            time.sleep(0.05)
        self.assertEqual(self.status(osc)["state"], "running")

    def record_slot(self, d, osc, slot, seconds=1.0):
        rec = take_recorder(self.jack, d, seconds + 1, f"slot {slot}")
        osc.send("/play", slot, 1.0)
        time.sleep(seconds)
        samples, meta = rec.stop()
        return deinterleave(samples)[0], meta["rate"]

    def wait_log(self, d, text, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and text not in d.log():
            time.sleep(0.05)
        return text in d.log()

    # -- item 3 ------------------------------------------------------------

    def test_rate_change_with_loads_queued_and_in_flight(self):
        """Slot 0 holds an old sample, slot 1 gets a load whose decode is
        in flight (its read held) across the restart at 44.1 kHz, slot 2 a
        load queued behind it.  Afterwards every slot plays at 44.1 kHz the
        newest file asked for: 200, 300 and 400 Hz, by pitch."""
        old, mid, new = self.path("s200.wav"), self.path("s300.wav"), self.path("s400.wav")
        sine(old, 200)
        sine(mid, 300)
        sine(new, 400)
        d, osc = self.daemon()
        for slot in range(3):
            self.assertEqual(osc.request("/load", slot, old, expect=("/done", "/fail"))[0],
                             "/done")
        self.kill_jack(osc)
        gate = ReadGate(mid)
        self.addCleanup(gate.close)
        osc.send("/load", 1, mid)  # in flight: its first read() is held
        osc.send("/load", 2, new)  # queued behind it
        self.restart_jack(44100, osc)
        gate.close()
        replies = {}
        deadline = time.monotonic() + 10
        while len(replies) < 2 and time.monotonic() < deadline:
            m = osc.try_recv(0.5)
            if m and m[0] in ("/done", "/fail") and m[1][0] == "/load":
                replies[m[1][1] if m[0] == "/done" else m[1][2]] = m
        self.assertEqual(replies.get(1, (None,))[0], "/done", replies)
        self.assertEqual(replies.get(2, (None,))[0], "/done", replies)
        # Slot 0's conversion logged (by an older daemon: its second load).
        deadline = time.monotonic() + 10
        while (time.monotonic() < deadline and "converted 0 " not in d.log()
               and d.log().count("loaded 0 ") < 2):
            time.sleep(0.05)
        time.sleep(0.5)
        for slot, freq in ((0, 200), (1, 300), (2, 400)):
            left, rate = self.record_slot(d, osc, slot)
            self.assertEqual(rate, 44100)
            f = pitch(left, rate)
            self.assertIsNotNone(f, f"slot {slot} did not play")
            self.assertAlmostEqual(f, freq, delta=freq * 0.01,
                                   msg=f"slot {slot} plays {f:.1f} Hz, not {freq} Hz")
        self.assertEqual(self.status(osc)["slots"], 3)
        self.assertEqual(d.stop(), 0)

    # -- item 4 ------------------------------------------------------------

    def test_refused_or_dropped_unload_leaves_the_slot(self):
        path = self.path("s.wav")
        sine(path, 300)
        d, osc = self.daemon()
        self.assertEqual(osc.request("/load", 0, path, expect=("/done", "/fail"))[0], "/done")
        # A timed unload accepted, then dropped at the reconnect.
        osc.send_bundle(timetag_in(3.0), [("/unload", [0])])
        time.sleep(0.2)
        self.kill_jack(osc)
        # A plain unload refused while the server is gone.
        self.assertEqual(osc.request("/unload", 0, expect=("/done", "/fail")),
                         ("/fail", ["/unload", "JACK server is gone; reconnecting", 0]))
        self.assertEqual(self.status(osc)["slots"], 1, "a refused /unload emptied the slot")
        self.start_jack_again(osc)
        time.sleep(3.0)  # past the dropped unload's time
        self.assertEqual(self.status(osc)["slots"], 1, "a dropped timed /unload emptied the slot")
        left, rate = self.record_slot(d, osc, 0)
        self.assertIsNotNone(pitch(left, rate), "slot 0 does not play")
        # And an unload that is applied does empty it.
        self.assertEqual(osc.request("/unload", 0, expect=("/done", "/fail")),
                         ("/done", ["/unload", 0]))
        self.assertEqual(self.status(osc)["slots"], 0)
        self.assertEqual(d.stop(), 0)

    # -- item 7 ------------------------------------------------------------

    def test_a_read_that_blocks_is_abandoned_and_blocks_nobody(self):
        stuck, good = self.path("stuck.wav"), self.path("good.wav")
        sine(stuck, 300)
        sine(good, 400)
        d, osc = self.daemon()
        gate = ReadGate(stuck)
        self.addCleanup(gate.close)
        osc.send("/load", 1, stuck)
        osc.send("/load", 2, good)
        replies = {}
        deadline = time.monotonic() + 20
        while len(replies) < 2 and time.monotonic() < deadline:
            m = osc.try_recv(0.5)
            if m and m[0] in ("/done", "/fail") and m[1][0] == "/load":
                replies[m[1][1] if m[0] == "/done" else m[1][2]] = m
        self.assertEqual(replies.get(1),
                         ("/fail", ["/load", "no progress reading the file for 5 s: abandoned",
                                    1]), replies)
        self.assertEqual(replies.get(2, ("none",))[0], "/done", replies)
        self.assertEqual(osc.request("/ping"), ("/pong", []))
        # The loader goes on while the abandoned read still blocks.
        self.assertEqual(osc.request("/load", 3, good, expect=("/done", "/fail"))[0], "/done")
        gate.close()
        self.assertTrue(self.wait_log(d, "abandoned read returned"))
        time.sleep(0.2)
        self.assertEqual(self.status(osc)["slots"], 2, "the abandoned load was published")
        self.assertEqual(d.stop(), 0)

    # -- item 8 ------------------------------------------------------------

    def test_sample_dir_cannot_be_escaped_by_a_symlink_race(self):
        """samples/sub is swapped, over and over, with samples/link, a
        symlink to a directory outside that has the same tree.  Inside the
        file has 1000 frames, outside 2000: no load may ever answer 2000."""
        samples, outside = self.path("samples"), self.path("outside")
        deep = os.path.join(*["d"] * 16, "x.wav")
        for root, frames in ((os.path.join(samples, "sub"), 1000), (outside, 2000)):
            os.makedirs(os.path.dirname(os.path.join(root, deep)))
            write_wav(os.path.join(root, deep), [100] * frames, RATE, 1)
        link = os.path.join(samples, "link")
        os.symlink(outside, link)
        d, osc = self.daemon("--sample-dir", samples)
        stop = threading.Event()
        a, b = os.fsencode(os.path.join(samples, "sub")), os.fsencode(link)

        def swapper():
            while not stop.is_set():
                _libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)

        t = threading.Thread(target=swapper)
        t.start()
        frames = {}
        try:
            rel = os.path.join("sub", deep)
            for rnd in range(120):
                for slot in range(32):
                    osc.send("/load", slot, rel if slot % 2 else os.path.join(samples, rel))
                got = 0
                while got < 32:
                    m = osc.recv(10)
                    if m[1][0] != "/load":
                        continue
                    got += 1
                    key = m[1][2] if m[0] == "/done" else m[1][1]
                    frames[key] = frames.get(key, 0) + 1
        finally:
            stop.set()
            t.join()
        print(f"\n  sample-dir race: {frames}", file=sys.stderr)
        self.assertNotIn(2000, frames, "a load read the file outside --sample-dir")
        self.assertGreater(frames.get(1000, 0), 0, "no load got through at all")
        self.assertEqual(d.stop(), 0)

    def test_sample_dir_on_a_kernel_without_openat2_is_refused(self):
        samples = self.path("samples")
        os.makedirs(samples)
        binary = os.environ["LOOPERD_BIN"]
        proc = subprocess.Popen(
            [sys.executable, "-c", NO_OPENAT2, binary, "--no-connect", "--port", "0",
             "--name", f"looperd-noat2-{os.getpid()}", "--sample-dir", samples],
            env=self.jack.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            self.fail(f"looperd started with --sample-dir although openat2 fails:\n{err}")
        self.assertNotEqual(proc.returncode, 0, err)
        self.assertIn("--sample-dir needs openat2() (Linux 5.6 or later)", err)

    # -- item 7: the bound -------------------------------------------------

    def test_abandoned_loads_are_bounded(self):
        """Four loads stuck in read() are abandoned one after the other; with
        four pending, the next load is refused at once, and once their reads
        return the loader takes loads again."""
        files = [self.path(f"stuck{i}.wav") for i in range(5)]
        good = self.path("good.wav")
        for f in files + [good]:
            sine(f, 300)
        d, osc = self.daemon()
        gates = [ReadGate(f) for f in files]
        for g in gates:
            self.addCleanup(g.close)
        for slot, f in enumerate(files):
            osc.send("/load", slot, f)
        replies = {}
        deadline = time.monotonic() + 40
        while len(replies) < 5 and time.monotonic() < deadline:
            m = osc.try_recv(0.5)
            if m and m[0] == "/fail" and m[1][0] == "/load":
                replies[m[1][2]] = m[1][1]
        abandon = "no progress reading the file for 5 s: abandoned"
        refuse = "busy: too many loads stalled on files that cannot be read"
        self.assertEqual(replies, {0: abandon, 1: abandon, 2: abandon, 3: abandon, 4: refuse})
        for g in gates:
            g.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and d.log().count("abandoned read returned") < 4:
            time.sleep(0.05)
        self.assertEqual(d.log().count("abandoned read returned"), 4)
        self.assertEqual(osc.request("/load", 6, good, expect=("/done", "/fail"))[0], "/done")
        self.assertEqual(self.status(osc)["slots"], 1)
        self.assertEqual(d.stop(), 0)

    # -- item 12 -----------------------------------------------------------

    def test_bank_of_1024_loads_whole_at_start_and_on_sighup(self):
        a, b = self.path("a.wav"), self.path("b.wav")
        write_wav(a, [1000] * 100, RATE, 1)
        write_wav(b, [2000] * 200, RATE, 1)
        bank = self.path("bank.txt")
        with open(bank, "w") as f:
            f.writelines(f"{i} {a}\n" for i in range(1024))
        notify = Notify(self.tmp.name)
        self.addCleanup(notify.close)
        d, osc = self.daemon("--slots", "1024", "--bank", bank,
                             env=[f"NOTIFY_SOCKET={notify.path}"])
        self.assertIsNotNone(notify.wait_for("READY"), "no READY=1")
        status = self.status(osc)
        self.assertEqual(status["slots"], 1024, "not every bank entry loaded at READY")
        bytes_a = status["bytes"]
        self.assertNotIn("queue full", d.log())
        with open(bank, "w") as f:
            f.writelines(f"{i} {b}\n" for i in range(1024))
        while notify.read(0.1):
            pass
        os.kill(d.proc.pid, signal.SIGHUP)
        self.assertIsNotNone(notify.wait_for("RELOADING"), "no RELOADING=1")
        self.assertIsNotNone(notify.wait_for("READY"), "no READY=1 after the reload")
        # READY=1 after the reload: every entry is the new file by now.  The
        # log's "loaded" lines are rate-limited, so the sample memory says
        # it: 1024 buffers of b's size, b's size being what one unload frees.
        status = self.status(osc)
        self.assertEqual(status["slots"], 1024)
        bytes_b = status["bytes"]
        self.assertIn("1024 slots to load", d.log())
        self.assertEqual(osc.request("/unload", 1023, expect=("/done", "/fail")),
                         ("/done", ["/unload", 1023]))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.status(osc)["bytes"] == bytes_b:
            time.sleep(0.05)
        one_b = bytes_b - self.status(osc)["bytes"]
        self.assertGreater(one_b, bytes_a // 1024, "b's buffer is not larger than a's")
        self.assertEqual(bytes_b, 1024 * one_b,
                         "not every bank entry reloaded before READY=1")
        self.assertEqual(osc.request("/load", 5, a, expect=("/done", "/fail"))[0], "/done")
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
