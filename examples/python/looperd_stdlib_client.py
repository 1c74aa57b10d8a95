#!/usr/bin/env python3
"""A looperd client with nothing but Python's standard library.

    python3 looperd_stdlib_client.py [--host H] [--port N] [--ahead S] ID PATH [VELOCITY]

It does what looperd_client.py does with python-osc, and encodes packets the
way python-osc does (int -> "i", float -> "f", str -> "s", bool -> "T"/"F",
bytes -> "b"; a bundle is "#bundle", an NTP timetag and size-prefixed
elements), so it works where python-osc is not installed:

1. /ping, and waits for /pong;
2. /load ID PATH (PATH made absolute: the daemon reads it), waits for /done
   (or /fail, then exits 1);
3. /play ID VELOCITY at once;
4. a bundle timetagged --ahead seconds (default 0.5) from now, holding
   /play ID VELOCITY: looperd starts it on the exact frame that time maps to.

Every reply is printed as `reply: ADDRESS ARGS` (ARGS as JSON).  Replies come
back to the port a request was sent from, so one socket sends and receives.
"""
import argparse
import json
import math
import os
import socket
import struct
import sys
import time

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
IMMEDIATELY = 1                # the special timetag "now"


def osc_string(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return b + b"\0" * (4 - len(b) % 4)  # NUL-terminated, padded to 4


def message(address, *args):
    """An OSC message, typed the way python-osc's OscMessageBuilder types
    Python values."""
    tags, data = ",", b""
    for a in args:
        if isinstance(a, bool):       # before int: bool is an int subclass
            tags += "T" if a else "F"
        elif isinstance(a, int):
            tags += "i"
            data += struct.pack(">i", a)
        elif isinstance(a, float):
            tags += "f"
            data += struct.pack(">f", a)
        elif isinstance(a, str):
            tags += "s"
            data += osc_string(a)
        elif isinstance(a, (bytes, bytearray)):
            tags += "b"
            data += struct.pack(">i", len(a)) + bytes(a) + b"\0" * (-len(a) % 4)
        else:
            raise TypeError(f"cannot send {a!r} as OSC")
    return osc_string(address) + osc_string(tags) + data


def timetag(unix_time):
    """NTP timetag for a Unix time (what OscBundleBuilder(timestamp) does)."""
    secs = math.floor(unix_time)
    frac = int((unix_time - secs) * (1 << 32)) & 0xFFFFFFFF
    return ((secs + NTP_EPOCH_OFFSET) << 32) | frac


def bundle(when, *elements):
    """An OSC bundle: `when` is a Unix time, or IMMEDIATELY."""
    tt = IMMEDIATELY if when == IMMEDIATELY else timetag(when)
    out = osc_string("#bundle") + struct.pack(">Q", tt)
    for e in elements:
        out += struct.pack(">i", len(e)) + e
    return out


def parse(data):
    """(address, [args]) of a reply message (looperd replies with s, i, h,
    f, d arguments)."""
    def string(pos):
        end = data.index(b"\0", pos)
        return data[pos:end].decode("utf-8", "replace"), (end // 4 + 1) * 4

    address, pos = string(0)
    tags, pos = string(pos)
    args = []
    for t in tags[1:]:
        if t in "sS":
            s, pos = string(pos)
            args.append(s)
        else:
            fmt = {"i": ">i", "h": ">q", "f": ">f", "d": ">d"}[t]
            args.append(struct.unpack_from(fmt, data, pos)[0])
            pos += struct.calcsize(fmt)
    return address, args


class Client:
    """One UDP socket: sends to looperd, receives its replies."""

    def __init__(self, host="127.0.0.1", port=9000, timeout=5.0):
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)

    def send(self, packet):
        self.sock.sendto(packet, self.addr)

    def reply(self):
        data, _ = self.sock.recvfrom(8192)
        address, args = parse(data)
        print("reply:", address, json.dumps(args), flush=True)
        return address, args

    def close(self):
        self.sock.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--ahead", type=float, default=0.5,
                    help="seconds ahead for the timetagged bundle")
    ap.add_argument("id", type=int)
    ap.add_argument("path")
    ap.add_argument("velocity", type=float, nargs="?", default=1.0)
    a = ap.parse_args(argv)

    c = Client(a.host, a.port)
    try:
        c.send(message("/ping"))
        if c.reply()[0] != "/pong":
            return 1
        c.send(message("/load", a.id, os.path.abspath(a.path)))
        if c.reply()[0] != "/done":
            return 1
        c.send(message("/play", a.id, a.velocity))
        c.send(bundle(time.time() + a.ahead, message("/play", a.id, a.velocity)))
        return 0
    except socket.timeout:
        print(f"no reply from {a.host}:{a.port} (is looperd running?)", file=sys.stderr)
        return 1
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
