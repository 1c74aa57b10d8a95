#!/usr/bin/env python3
"""make-demo.py - write the demo sample run.sh loads: a 1 s stereo 440 Hz
tone with a quick attack and an exponential decay, 16-bit WAV at 48 kHz.

    python3 scripts/make-demo.py build/demo.wav
"""
import math
import struct
import sys
import wave

RATE = 48000
SECONDS = 1.0
FREQ = 440.0
PEAK = 0.5  # -6 dBFS: leaves room when several voices sound together


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: make-demo.py OUTPUT.wav", file=sys.stderr)
        return 2
    frames = int(RATE * SECONDS)
    attack = int(RATE * 0.005)  # 5 ms fade-in: no click at the start
    data = bytearray()
    for n in range(frames):
        t = n / RATE
        env = PEAK * math.exp(-5.0 * t) * min(1.0, n / attack)
        env *= 1.0 - n / frames  # reach exactly zero at the end: no click
        # A hint of width: the right channel carries a little of the octave.
        left = env * math.sin(2 * math.pi * FREQ * t)
        right = env * (0.9 * math.sin(2 * math.pi * FREQ * t) + 0.1 * math.sin(4 * math.pi * FREQ * t))
        data += struct.pack("<hh", round(left * 32767), round(right * 32767))
    with wave.open(sys.argv[1], "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
