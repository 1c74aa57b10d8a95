#!/usr/bin/env python3
"""A looperd client with python-osc (pip install python-osc).

    python3 looperd_client.py [--host H] [--port N] ID PATH [VELOCITY]

1. /ping, and waits for /pong;
2. /load ID PATH (made absolute: the daemon reads it), waits for /done;
3. /play ID VELOCITY at once;
4. an OscBundleBuilder bundle timetagged 0.5 s from now with /play and keys
   (backwards, panned left), so the sample starts on the exact frame that
   time maps to;
5. /set ID gain 0.5 (the slot's default from now on), then /get ID, whose
   /get.reply lists the slot's defaults.

looperd replies to the address and port a request came from.  python-osc's
SimpleUDPClient sends from a socket it does not read (before python-osc 1.9),
so this example sends the dgrams python-osc builds from one socket of its own
and reads the replies from that socket, which works with every python-osc
version.  Without python-osc, looperd_stdlib_client.py does the same with the
standard library only.
"""
import argparse
import os
import socket
import sys
import time

from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket


def message(address, *args):
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)  # int -> "i", float -> "f", str -> "s"
    return b.build()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("id", type=int)
    ap.add_argument("path")
    ap.add_argument("velocity", type=float, nargs="?", default=1.0)
    a = ap.parse_args()

    looperd = (a.host, a.port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)

    def send(content):
        sock.sendto(content.dgram, looperd)

    def reply():
        data, _ = sock.recvfrom(8192)
        for timed in OscPacket(data).messages:
            print("reply:", timed.message.address, timed.message.params)
            return timed.message.address, timed.message.params

    send(message("/ping"))
    if reply()[0] != "/pong":
        return 1
    send(message("/load", a.id, os.path.abspath(a.path)))
    address, params = reply()  # /done /load ID FRAMES CHANNELS, or /fail
    if address != "/done":
        return 1
    send(message("/play", a.id, a.velocity))

    bundle = OscBundleBuilder(time.time() + 0.5)  # a Unix time; IMMEDIATELY for "now"
    # Keys follow the velocity: a string, then a number.
    bundle.add_content(message("/play", a.id, a.velocity, "rate", -1.0, "pan", -0.5))
    send(bundle.build())

    send(message("/set", a.id, "gain", 0.5))  # no reply unless refused
    send(message("/get", a.id))
    address, params = reply()  # /get.reply ID "gain" 0.5 (or the /fail of the /set)
    return 0 if address == "/get.reply" else 1


if __name__ == "__main__":
    sys.exit(main())
