#!/usr/bin/env python3
"""Runs a command against a private JACK server: with_jackd.py CMD [ARGS...]

Starts `jackd -n UNIQUE -d dummy` (see looperd_test.JackServer), runs CMD with
JACK_DEFAULT_SERVER set to it, stops the server by PID and exits with CMD's
status.  Used by meson for C tests that need a real server."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from looperd_test import JackServer  # noqa: E402


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with JackServer(rate=48000, period=256) as jack:
        return subprocess.run(sys.argv[1:], env=jack.env).returncode


if __name__ == "__main__":
    sys.exit(main())
