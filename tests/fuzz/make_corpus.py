#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (run once; the output is committed).

  tests/fuzz/make_corpus.py            both corpora
  corpus/packet/: valid OSC messages and bundles for every address
  corpus/decode/: tiny audio files (needs sox with FLAC and Ogg support)
"""
import os
import shutil
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def pad(b):
    return b + b"\0" * (4 - len(b) % 4)


def ostr(s):
    return pad(s.encode() if isinstance(s, str) else s)


def msg(path, *args):
    """args: (tag, value) pairs, tag in i h f d s S T F N."""
    tags = "," + "".join(t for t, _ in args)
    out = ostr(path) + ostr(tags)
    for t, v in args:
        if t == "i":
            out += struct.pack(">i", v)
        elif t == "h":
            out += struct.pack(">q", v)
        elif t == "f":
            out += struct.pack(">f", v)
        elif t == "d":
            out += struct.pack(">d", v)
        elif t in "sS":
            out += ostr(v)
        elif t == "b":
            out += struct.pack(">i", len(v)) + (pad(v) if len(v) % 4 else v)
    return out


def bundle(tt, *elems):
    out = b"#bundle\0" + struct.pack(">Q", tt)
    for e in elems:
        out += struct.pack(">i", len(e)) + e
    return out


IMMEDIATE = 1
FUTURE = (4200000000 << 32)  # far in the future: refused ("too far")


def packets():
    p = {}
    p["ping"] = msg("/ping")
    p["ping_args"] = msg("/ping", ("i", 1))
    p["stop"] = msg("/stop")
    p["stop_id"] = msg("/stop", ("i", 3))
    p["stop_path"] = msg("/stop/3", ("f", 1.0))
    p["stop_path_release"] = msg("/stop/3", ("f", 0.0))
    p["play_i"] = msg("/play", ("i", 0))
    p["play_h"] = msg("/play", ("h", 5))
    p["play_f_vel"] = msg("/play", ("f", 3.0), ("f", 0.5))
    p["play_d_vel"] = msg("/play", ("d", 31.0), ("d", 2.0))
    p["play_bad"] = msg("/play", ("f", 3.5), ("s", "x"))
    p["play_range"] = msg("/play", ("i", 32))
    p["play_touchosc"] = msg("/play/3", ("f", 1.0))
    p["play_touchosc_release"] = msg("/play/3", ("f", 0.0))
    p["play_touchosc_big"] = msg("/play/99999999999999999999")
    p["loop"] = msg("/loop", ("i", 2), ("f", 0.8))
    p["loop_path"] = msg("/loop/7")
    p["load"] = msg("/load", ("i", 1), ("s", "a.wav"))
    p["load_S"] = msg("/load", ("f", 2.0), ("S", "a.wav"))
    p["load_missing"] = msg("/load", ("i", 4), ("s", "/nonexistent/x.wav"))
    p["load_dotdot"] = msg("/load", ("i", 4), ("s", "../../etc/passwd"))
    p["load_empty"] = msg("/load", ("i", 4), ("s", ""))
    p["load_blob"] = msg("/load", ("i", 4), ("b", b"abc"))
    # The keys (params.c), good and bad, on triggers, /set and /get.
    p["play_keys"] = msg("/play", ("i", 0), ("f", 0.7), ("s", "rate"), ("f", -1.5),
                         ("s", "begin"), ("d", 0.25), ("s", "end"), ("i", 1),
                         ("s", "pan"), ("f", -0.5), ("s", "gain"), ("h", 2),
                         ("s", "attack"), ("f", 0.01), ("s", "release"), ("f", 0.2),
                         ("s", "sustain"), ("f", 0.5), ("s", "cut"), ("i", -3),
                         ("s", "out"), ("i", 1))
    p["play_keys_no_vel"] = msg("/play", ("i", 0), ("S", "rate"), ("f", 2.0))
    p["play_key_unknown"] = msg("/play", ("i", 0), ("s", "pitch"), ("f", 2.0))
    p["play_key_missing"] = msg("/play", ("i", 0), ("s", "rate"))
    p["play_key_bad"] = msg("/play", ("i", 0), ("s", "rate"), ("f", 0.0))
    p["play_key_nan"] = msg("/play", ("i", 0), ("s", "pan"), ("f", float("nan")))
    p["play_key_number"] = msg("/play", ("i", 0), ("f", 1.0), ("i", 2))
    p["play_begin_end"] = msg("/play", ("i", 0), ("s", "begin"), ("f", 0.6),
                              ("s", "end"), ("f", 0.5))
    p["loop_keys"] = msg("/loop", ("i", 2), ("s", "cut"), ("i", 7), ("s", "out"), ("i", 2))
    p["play_touchosc_keys"] = msg("/play/3", ("f", 1.0), ("s", "pan"), ("f", 1.0))
    p["set"] = msg("/set", ("i", 0), ("s", "velocity"), ("f", 0.5), ("s", "gain"), ("f", 0.5),
                   ("s", "cut"), ("i", 1))
    p["set_reset"] = msg("/set", ("i", 0))
    p["set_bad"] = msg("/set", ("i", 0), ("s", "cut"), ("f", 1.5))
    p["get"] = msg("/get", ("i", 0))
    p["get_bad"] = msg("/get", ("s", "x"))
    p["unload"] = msg("/unload", ("i", 1))
    p["status"] = msg("/status")
    p["version"] = msg("/version")
    p["quit"] = msg("/quit")
    p["unknown"] = msg("/nope", ("i", 1))
    p["bundle_immediate"] = bundle(IMMEDIATE, msg("/load", ("i", 0), ("s", "a.wav")),
                                   msg("/play", ("i", 0)), msg("/ping"))
    p["bundle_timed"] = bundle((3900000000 << 32) | 0x80000000, msg("/play", ("i", 1)),
                               msg("/stop"))
    p["bundle_future"] = bundle(FUTURE, msg("/play/1"))
    p["bundle_nested"] = bundle(IMMEDIATE,
                                bundle(IMMEDIATE, msg("/play/2", ("f", 1.0)),
                                       bundle(IMMEDIATE, msg("/status"))),
                                msg("/version"))
    deep = msg("/ping")
    for _ in range(8):
        deep = bundle(IMMEDIATE, deep)
    p["bundle_too_deep"] = deep
    p["bundle_empty"] = bundle(IMMEDIATE)
    return p


def write_packets():
    d = os.path.join(HERE, "corpus", "packet")
    os.makedirs(d, exist_ok=True)
    for name, data in packets().items():
        with open(os.path.join(d, name + ".osc"), "wb") as f:
            f.write(data)


def write_decode():
    d = os.path.join(HERE, "corpus", "decode")
    os.makedirs(d, exist_ok=True)
    # (file name, sox output options, channels, rate, seconds)
    files = [
        ("mono16_48k.wav", ["-b", "16"], 1, 48000, 0.01),
        ("stereo16_44k.wav", ["-b", "16"], 2, 44100, 0.005),
        ("mono8_8k.wav", ["-b", "8", "-e", "unsigned-integer"], 1, 8000, 0.05),
        ("mono24_96k.wav", ["-b", "24"], 1, 96000, 0.005),
        ("float32_48k.wav", ["-b", "32", "-e", "floating-point"], 1, 48000, 0.005),
        ("ulaw_8k.wav", ["-e", "u-law"], 1, 8000, 0.05),
        ("mono16_48k.aiff", ["-b", "16"], 1, 48000, 0.01),
        ("stereo16_22k.aiff", ["-b", "16"], 2, 22050, 0.01),
        ("mono16_48k.flac", ["-b", "16"], 1, 48000, 0.02),
        ("stereo16_44k.flac", ["-b", "16"], 2, 44100, 0.01),
        ("mono_48k.ogg", ["-C", "-1"], 1, 48000, 0.02),
        ("three_channels.wav", ["-b", "16"], 3, 48000, 0.002),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, opts, ch, rate, secs in files:
            out = os.path.join(tmp, name)
            subprocess.run(["sox", "-n", "-r", str(rate), "-c", str(ch)] + opts +
                           [out, "synth", str(secs), "sine", "440"], check=True)
            size = os.path.getsize(out)
            if size > 4096:
                raise SystemExit(f"{name} is {size} bytes; keep seeds under 4 KiB")
            shutil.copy(out, os.path.join(d, name))
    with open(os.path.join(d, "not_audio.txt"), "wb") as f:
        f.write(b"this is not an audio file\n")


if __name__ == "__main__":
    write_packets()
    write_decode()
