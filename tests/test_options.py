#!/usr/bin/env python3
"""The three lists of looperd's options agree: `looperd --help` (generated
from the table in daemon/options.c), the README's options table and the
OPTIONS section of docs/looperd.8.

For every option --help prints, the README and the man page must name it
with the same short letter and argument name, and state the same default
(or none, when --help states none); neither may list an option the binary
does not know.  Conventions the documents follow so this can be read:

* README: a row of the table under "## Options" whose first cell is
  "`-n`, `--name NAME`" (or "`--name NAME`") and whose second cell is the
  default, empty when there is none.
* looperd.8: each option is a .TP paragraph in OPTIONS whose first line
  names it (.B/.BI/.BR, e.g. `.BI \\-n ", " \\-\\-name " NAME"`); the first
  "default X" in the paragraph is its default, and a paragraph of an option
  without a default does not say "default".
"""
import os
import re
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("LOOPERD_BIN", os.path.join(ROOT, "build", "daemon", "looperd"))


def from_help(text):
    """{long: (letter, arg, default)} from --help; every option line parsed."""
    opts = {}
    entry = None
    for line in text.splitlines():
        m = re.match(r"^  (?:-(\w), |    )--([a-z][a-z0-9-]*)(?: ([A-Z]+))?(?:  +(.*))?$", line)
        if m:
            entry = [m.group(1), m.group(3), (m.group(4) or "")]
            opts[m.group(2)] = entry
        elif line.startswith("   ") and entry is not None:
            entry[2] += " " + line.strip()
        elif line.lstrip().startswith("-"):
            raise AssertionError("--help line not understood: %r" % line)
        else:
            entry = None
    result = {}
    for name, (letter, arg, help_text) in opts.items():
        d = re.search(r"\(default ([^)]+)\)$", help_text)
        result[name] = (letter, arg, d.group(1) if d else None)
    return result


def from_readme(text):
    section = re.search(r"^## Options\n(.*?)^## ", text, re.S | re.M)
    assert section, "README has no '## Options' section"
    result = {}
    for line in section.group(1).splitlines():
        if not line.startswith("| `-"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.match(r"^(?:`-(\w)`, )?`--([a-z][a-z0-9-]*)(?: ([A-Z]+))?`$", cells[0])
        assert m, "README options row not understood: %r" % line
        default = cells[1].strip("`") or None
        result[m.group(2)] = (m.group(1), m.group(3), default)
    return result


def roff_text(line):
    """A roff line as plain words: macros, quotes and escapes removed."""
    line = re.sub(r"^\.(?:B|I|BI|BR|IR|RI|IB)\s+", "", line)
    line = line.replace('"', "")
    line = line.replace("\\-", "-").replace("\\~", " ")
    line = re.sub(r"\\f[BIRP]", "", line)
    line = re.sub(r"\\\(\w\w", "", line)
    return line


def from_man(text):
    section = re.search(r"^\.SH OPTIONS\n(.*?)^\.SH ", text, re.S | re.M)
    assert section, "looperd.8 has no OPTIONS section"
    result = {}
    for para in section.group(1).split(".TP\n")[1:]:
        lines = para.splitlines()
        head = roff_text(lines[0])
        m = re.match(r"^(?:-(\w)\s*,\s*)?--([a-z][a-z0-9-]*)(?:\s+([A-Z]+))?\s*$", head)
        assert m, "looperd.8 option line not understood: %r" % lines[0]
        body = " ".join(roff_text(l) for l in lines[1:] if not l.startswith(".\\\""))
        d = re.search(r"\bdefault:?\s+([^\s,;:)]+)", body)
        result[m.group(2)] = (m.group(1), m.group(3), d.group(1) if d else None)
    return result


def compare(test, truth, doc, where):
    test.assertEqual(sorted(set(doc) - set(truth)), [],
                     "%s lists options looperd --help does not know" % where)
    test.assertEqual(sorted(set(truth) - set(doc)), [],
                     "%s lacks options looperd --help lists" % where)
    for name, (letter, arg, default) in truth.items():
        test.assertEqual(doc[name], (letter, arg, default),
                         "%s: --%s (letter, argument, default) differ from --help"
                         % (where, name))


class OptionsAgree(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        cls.help = from_help(out.stdout)
        with open(os.path.join(ROOT, "README.md")) as f:
            cls.readme = from_readme(f.read())
        with open(os.path.join(ROOT, "docs", "looperd.8")) as f:
            cls.man = from_man(f.read())

    def test_help_lists_the_options(self):
        # A parser that read nothing would make the comparisons vacuous.
        for name in ("name", "port", "help", "version", "no-connect"):
            self.assertIn(name, self.help)
        self.assertEqual(self.help["name"], ("n", "NAME", "looperd"))
        self.assertEqual(self.help["no-connect"], (None, None, None))

    def test_readme_agrees_with_help(self):
        compare(self, self.help, self.readme, "README.md options table")

    def test_man_page_agrees_with_help(self):
        compare(self, self.help, self.man, "docs/looperd.8 OPTIONS")

    def test_every_help_option_is_accepted(self):
        # getopt_long's array is made from the same table as --help: every
        # option --help names is known to the parser (a bad value gets the
        # option's own complaint, never "unrecognized option").
        for name, (letter, arg, _) in self.help.items():
            if name in ("help", "version"):
                continue
            args = ["--" + name] + (["-1"] if arg else []) + ["stray"]
            out = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 2, (args, out.stderr))
            self.assertNotIn("unrecognized option", out.stderr, args)


if __name__ == "__main__":
    unittest.main(verbosity=2)
