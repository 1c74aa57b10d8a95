"""SuperCollider SynthDef files (SCgf version 2) written without sclang.

The format (SuperCollider's "Synth Definition File Format" help file), all
numbers big-endian, pstring = one length byte then the bytes:

    int32 'SCgf', int32 version (2), int16 number of defs, then per def:
    pstring name
    int32 K, float32 x K               constants
    int32 P, float32 x P               initial parameter values
    int32 N, (pstring name, int32 index) x N   parameter names
    int32 U, then U unit generators:
        pstring class name, int8 rate (0 scalar, 1 control, 2 audio),
        int32 inputs, int32 outputs, int16 special index,
        (int32 source ugen or -1 for a constant, int32 output or constant
         index) x inputs,
        int8 rate x outputs
    int16 variants (0 here)

Three defs are built, both "play buffer `buf` on outputs 0 and 1":

    looperd_pb:  Control.kr(buf, loop) -> PlayBuf.ar(2, buf, 1, 1, 0, loop, 2)
                 -> Out.ar(0, [l, r])
    looperd_pbo: the same with OffsetOut (sample-accurate start of a
                 timetagged /s_new, scsynth's equivalent of our bundles)
    looperd_pbr: looperd_pb with a third control, `rate`, as PlayBuf's
                 rate (PlayBuf interpolates cubically at a rate other than 1)

PlayBuf's inputs are bufnum, rate, trigger, startPos, loop, doneAction;
doneAction 2 frees the synth at the end of a one-shot (it never fires while
looping).  The rate is a constant 1, not BufRateScale: the benchmark's files
are at the server's rate, except the FLAC load row, which is only loaded.
"""

from __future__ import annotations

import struct

RATE_SCALAR, RATE_CONTROL, RATE_AUDIO = 0, 1, 2


def _pstring(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">B", len(b)) + b


def _def(name: str, out_class: str, with_rate: bool = False) -> bytes:
    consts = [1.0, 0.0, 2.0]
    c = {v: i for i, v in enumerate(consts)}
    params = [0.0, 0.0]  # buf, loop
    names = [("buf", 0), ("loop", 1)]
    K = -1  # "this input is a constant"
    rate_in = (K, c[1.0])
    if with_rate:  # a third control, PlayBuf's rate
        params.append(1.0)
        names.append(("rate", 2))
        rate_in = (0, 2)
    ugens = [
        # class, rate, inputs [(src, idx)], outputs [rate], special
        ("Control", RATE_CONTROL, [], [RATE_CONTROL] * len(params), 0),
        ("PlayBuf", RATE_AUDIO,
         [(0, 0), rate_in, (K, c[1.0]), (K, c[0.0]), (0, 1), (K, c[2.0])],
         [RATE_AUDIO, RATE_AUDIO], 0),
        (out_class, RATE_AUDIO, [(K, c[0.0]), (1, 0), (1, 1)], [], 0),
    ]
    out = [_pstring(name)]
    out.append(struct.pack(">i", len(consts)) + b"".join(struct.pack(">f", v) for v in consts))
    out.append(struct.pack(">i", len(params)) + b"".join(struct.pack(">f", v) for v in params))
    out.append(struct.pack(">i", len(names))
               + b"".join(_pstring(n) + struct.pack(">i", i) for n, i in names))
    out.append(struct.pack(">i", len(ugens)))
    for cls, rate, ins, outs, special in ugens:
        out.append(_pstring(cls) + struct.pack(">biih", rate, len(ins), len(outs), special))
        out.append(b"".join(struct.pack(">ii", s, i) for s, i in ins))
        out.append(b"".join(struct.pack(">b", r) for r in outs))
    out.append(struct.pack(">h", 0))  # no variants
    return b"".join(out)


def synthdefs() -> bytes:
    """An SCgf v2 file holding looperd_pb (Out) and looperd_pbo (OffsetOut),
    ready for /d_recv as a blob."""
    defs = [_def("looperd_pb", "Out"), _def("looperd_pbo", "OffsetOut"),
            _def("looperd_pbr", "Out", with_rate=True)]
    return b"SCgf" + struct.pack(">ih", 2, len(defs)) + b"".join(defs)


if __name__ == "__main__":  # pragma: no cover - write the file for a look
    import sys
    with open(sys.argv[1] if len(sys.argv) > 1 else "looperd.scsyndef", "wb") as f:
        f.write(synthdefs())
