#!/usr/bin/env python3
"""The systemd units as meson generated them: `systemd-analyze verify` finds
no problem, and `systemd-analyze security --offline=true` rates the system
unit's exposure at 2.0 or below (printed for every unit).

verify checks that ExecStart's binary exists, so the units are checked with
the built binary's path put in place of the install path."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD_UNITS = os.environ.get("UNIT_DIR", "")
LOOPERD = os.environ.get("LOOPERD_BIN", "")
UNITS = {"looperd.service": "looperd.service",
         "looperd-jackd.service": "looperd-jackd.service",
         "looperd.user.service": "looperd-user.service"}


@unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
class Units(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="looperd-units-")
        cls.paths = {}
        for built, name in UNITS.items():
            with open(os.path.join(BUILD_UNITS, built)) as f:
                text = f.read()
            text = re.sub(r"^ExecStart=\S*/looperd", f"ExecStart={LOOPERD}", text, flags=re.M)
            path = os.path.join(cls.tmp.name, name)
            with open(path, "w") as f:
                f.write(text)
            cls.paths[name] = path

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def analyze(self, *args):
        # --user looks up the user's runtime directory; give it one.
        env = dict(os.environ, XDG_RUNTIME_DIR=self.tmp.name)
        return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True,
                              timeout=60, env=env)

    def test_verify(self):
        for name in ("looperd.service", "looperd-jackd.service"):
            r = self.analyze("verify", "--man=no", self.paths[name])
            print(f"verify {name}: exit {r.returncode} {r.stderr.strip()}")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr.strip(), "", f"{name}: {r.stderr}")
        r = self.analyze("verify", "--user", "--man=no", self.paths["looperd-user.service"])
        print(f"verify --user looperd-user.service: exit {r.returncode} {r.stderr.strip()}")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_security_exposure(self):
        levels = {}
        for name in self.paths:
            r = self.analyze("security", "--offline=true", "--no-pager", self.paths[name])
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
            self.assertIsNotNone(m, r.stdout + r.stderr)
            levels[name] = float(m.group(1))
            print(f"systemd-analyze security {name}: exposure {levels[name]}")
        self.assertLessEqual(levels["looperd.service"], 2.0)


if __name__ == "__main__":
    if not BUILD_UNITS or not LOOPERD:
        sys.exit("UNIT_DIR and LOOPERD_BIN must be set (meson does)")
    unittest.main(verbosity=2)
