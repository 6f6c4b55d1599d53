"""Bad input to the run side (capture, hunt, compare, maps): one row per case (README.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from badinput.framework import Case, check

SILENT = "#!/bin/sh\nexit 0\n"

# a producer that traces every -trace_pixel and writes a 4x4 image for -floatfile
PRODUCER = """#!{python}
import sys
import numpy as np
args, prefix = sys.argv[1:], "TRACE_C"
if "--prefix" in args:
    prefix = args[args.index("--prefix") + 1]
print(prefix + ":producer=bad-input fake")
for i, a in enumerate(args):
    if a == "-trace_pixel":
        print("TRACE_CONFIG: tracing pixel (spixel=%s, fpixel=%s)" % (args[i + 1], args[i + 2]))
        print(prefix + ": I_pixel_final 1.5")
    if a == "-floatfile":
        np.arange(16, dtype="<f4").tofile(args[i + 1])
"""


def _random_images(size: int):
    def write(path):
        rng = np.random.default_rng(ord(path.name[0]))
        rng.random((size, size)).astype("<f4").tofile(path)
    return write


def _smv(fields: str):
    def write(path):
        head = ("{\n" + fields + "TYPE=unsigned_short;\n}").encode().ljust(512, b" ")
        path.write_bytes(head + b"\0" * 32)
    return write


def _dump(meta):
    def write(path):
        raw = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez(path, roi=np.array([0, 3, 0, 3]), R_distance_meters=np.ones((4, 4)), meta_json=raw)
    return write


CAP = ("capture", "c", "--c-bin", "./producer", "--pixel", "0", "0")
IMAGES = {"a.bin": _random_images(256), "b.bin": _random_images(256)}

CASES = [
    # SMV headers that describe no image
    Case("smv-negative-size1", ("compare", "n.img", "n.img"), 2, "SIZE1=-4 must be >= 1",
         {"n.img": _smv("HEADER_BYTES=512;\nSIZE1=-4;\nSIZE2=4;\n")}),
    Case("smv-negative-header-bytes", ("compare", "n.img", "n.img"), 2, "HEADER_BYTES=-512 must be >= 0",
         {"n.img": _smv("HEADER_BYTES=-512;\nSIZE1=4;\nSIZE2=4;\n")}),
    Case("smv-5000-digit-size", ("compare", "n.img", "n.img"), 2, "is not an integer",
         {"n.img": _smv("HEADER_BYTES=512;\nSIZE1=" + "9" * 5000 + ";\nSIZE2=4;\n")}),
    Case("smv-superscript-size", ("compare", "n.img", "n.img"), 2, "is not an integer",
         {"n.img": _smv("HEADER_BYTES=512;\nSIZE1=\u00b2;\nSIZE2=4;\n")}),
    # detector flags nbtrace reads to know the image's shape
    Case("capture-detpixels-nan", (*CAP, "--", "-detpixels", "nan"), 2, "-detpixels needs a finite number > 0",
         {"producer": PRODUCER}),
    Case("capture-detpixels-inf", (*CAP, "--", "-detpixels", "inf"), 2, "-detpixels needs a finite number > 0",
         {"producer": PRODUCER}),
    Case("capture-pixel-nan", (*CAP, "--", "-pixel", "nan"), 2, "-pixel needs a finite number > 0",
         {"producer": PRODUCER}),
    Case("capture-pixel-1e300", (*CAP, "--", "-pixel", "1e300"), 2, "detector of 0x0 pixels",
         {"producer": PRODUCER}),
    Case("capture-pixel-1e-300", (*CAP, "--", "-pixel", "1e-300"), 2, "= 1.04e+604 pixels, more than the cap",
         {"producer": PRODUCER}),
    Case("capture-detsize-1e300-pixel-1e-300", (*CAP, "--", "-detsize", "1e300", "-pixel", "1e-300"), 2,
         "more pixels than a float can count", {"producer": PRODUCER}),
    Case("capture-py-detpixels-nan", ("capture", "py", "--pixel", "0", "0", "--", "-detpixels", "nan"), 2,
         "-detpixels needs a finite number > 0"),
    Case("hunt-detpixels-nan", ("hunt", "--", "-detpixels", "nan"), 2, "-detpixels needs a finite number > 0"),
    Case("hunt-detpixels-inf", ("hunt", "--", "-detpixels", "inf"), 2, "-detpixels needs a finite number > 0"),
    Case("hunt-pixel-1e300", ("hunt", "--", "-pixel", "1e300"), 2, "detector of 0x0 pixels"),
    Case("compare-shape-args-nan", ("compare", "a.bin", "b.bin", "--", "-detpixels", "nan"), 2,
         "-detpixels needs a finite number > 0", IMAGES),
    Case("capture-pixel-outside-detector", (*CAP[:-2], "9", "0", "--", "-detpixels", "4"), 2,
         "pixel (9, 0) is outside the 4x4 detector", {"producer": PRODUCER}),
    Case("capture-roi-outside-detector", ("capture", "c", "--c-bin", "./producer", "--roi", "0", "9", "0", "1", "--",
                                          "-detpixels", "4"), 2, "roi (0, 9, 0, 1) reaches outside the 4x4 detector",
         {"producer": PRODUCER}),
    # how big a run may be, and the flags that lift the caps
    Case("capture-detector-too-large", (*CAP, "--", "-detpixels", "100000"), 2, "raise the cap with --max-pixels",
         {"producer": PRODUCER}),
    Case("capture-detsize-1e300", (*CAP, "--", "-detsize", "1e300"), 2, "--max-pixels", {"producer": PRODUCER}),
    Case("capture-max-pixels-raised", (*CAP, "--max-pixels", "100000000", "-o", "t.trace", "--",
                                       "-detpixels", "9000"), 0, "done in", {"producer": PRODUCER},
         creates=("t.trace",)),
    Case("capture-oversample-huge", (*CAP, "--", "-oversample", "100000"), 2, "raise the cap with --max-steps",
         {"producer": PRODUCER}),
    Case("capture-phisteps-huge", (*CAP, "--", "-phisteps", "100000000"), 2, "--max-steps",
         {"producer": PRODUCER}),
    Case("capture-steps-nan", (*CAP, "--", "-mosaic_domains", "nan"), 2, "-mosaic_domains needs a finite number",
         {"producer": PRODUCER}),
    Case("capture-max-steps-raised", (*CAP, "--max-steps", "10000000000", "-o", "t.trace", "--",
                                      "-oversample", "100000"), 0, "done in", {"producer": PRODUCER}),
    Case("capture-max-pixels-zero", (*CAP, "--max-pixels", "0", "--", "-x"), 2, "--max-pixels must be",
         {"producer": PRODUCER}),
    Case("hunt-oversample-huge", ("hunt", "--", "-oversample", "100000"), 2, "--max-steps"),
    Case("hunt-detector-too-large", ("hunt", "--", "-detpixels", "10000"), 2, "--max-pixels"),
    # timeouts that would never expire
    Case("capture-timeout-nan", (*CAP, "--timeout", "nan", "--", "-x"), 2, "--timeout", {"producer": PRODUCER}),
    Case("capture-timeout-inf", (*CAP, "--timeout", "inf", "--", "-x"), 2, "--timeout", {"producer": PRODUCER}),
    Case("capture-timeout-negative", (*CAP, "--timeout", "-5", "--", "-x"), 2, "--timeout", {"producer": PRODUCER}),
    Case("capture-both-timeout-nan", ("capture", "both", "--pixel", "0", "0", "--timeout", "nan", "--", "-x"), 2,
         "--timeout"),
    Case("hunt-timeout-nan", ("hunt", "--timeout", "nan"), 2, "--timeout"),
    # producers
    Case("capture-producer-prints-nothing", ("capture", "c", "--c-bin", "./silent", "--pixel", "0", "0", "--", "-x"),
         2, "exited 0 but printed nothing", {"silent": SILENT}),
    Case("capture-both-image-keeps-its-folder",
         ("capture", "both", "--c-bin", "./producer", "--port-cmd", "./producer --prefix TRACE_PY", "--pixel", "0",
          "0", "--image", "sub/x.bin", "--out", "out", "--", "-detpixels", "4"), 0, "agree",
         {"producer": PRODUCER}, creates=("out/sub/c_x.bin", "out/sub/py_x.bin")),
    # images and dumps
    Case("compare-peaks-40000", ("compare", "a.bin", "b.bin", "--shape", "256", "256", "--peaks", "40000"), 1,
         "DIVERGE: the images disagree", IMAGES, timeout=60),
    Case("maps-meta-json-is-a-list", ("maps", "l.npz", "ok.npz"), 2, "meta_json holds a JSON list",
         {"l.npz": _dump([1, 2]), "ok.npz": _dump({})}),
    Case("maps-meta-json-argv-nan", ("maps", "n.npz", "ok.npz"), 0, "region agrees",
         {"n.npz": _dump({"argv": ["-detpixels", "nan"]}), "ok.npz": _dump({})}),
    Case("maps-meta-json-not-json", ("maps", "bad.npz", "ok.npz"), 2, "meta_json is not JSON",
         {"bad.npz": lambda p: np.savez(p, roi=np.array([0, 3, 0, 3]), R_distance_meters=np.ones((4, 4)),
                                         meta_json=np.frombuffer(b"{nope", np.uint8)),
          "ok.npz": _dump({})}),
    # a full disk: say what could not be written, and where
    Case("capture-trace-on-dev-full", (*CAP, "-o", "/dev/full", "--", "-detpixels", "4"), 2,
         "/dev/full: cannot write the trace: No space left on device", {"producer": PRODUCER}),
    Case("compare-stdout-on-dev-full", ("compare", "a.bin", "b.bin", "--shape", "256", "256", "--json"), 2,
         "standard output (/dev/full): cannot write: No space left on device", IMAGES, stdout="/dev/full"),
]


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_run_side_bad_input(case, tmp_path, monkeypatch, capsys):
    check(case, tmp_path, monkeypatch, capsys)
