#!/usr/bin/env python3
"""Runs a libFuzzer binary on a temporary copy of a seed corpus.

usage: run_fuzzer.py FUZZER CORPUS_DIR [libFuzzer options...]

libFuzzer writes every new interesting input into its first corpus
directory; the copy keeps the committed corpus unchanged.  The exit status
is the fuzzer's: non-zero when it found a crash, a leak or a timeout.
"""
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    fuzzer, corpus, opts = sys.argv[1], sys.argv[2], sys.argv[3:]
    with tempfile.TemporaryDirectory(prefix="looperd-fuzz-") as tmp:
        work = os.path.join(tmp, "corpus")
        shutil.copytree(corpus, work)
        env = dict(os.environ, TMPDIR=tmp)
        return subprocess.call([fuzzer] + opts + [work], env=env)


if __name__ == "__main__":
    sys.exit(main())
