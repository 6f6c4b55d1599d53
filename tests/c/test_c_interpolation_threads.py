"""The C reference's tricubic switch-off does not depend on the thread count (simulator/c/README.md).

The original shares its interpolation switch between OpenMP threads, so the first out-of-range
lookup switches interpolation off for whichever pixels other threads have not reached yet. The
reference decides it per pixel in memory order, before rendering, so 1 and 2 threads give the
same bytes, and the same as a serial original would.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data" / "parity"
# N = 2 turns interpolation on; with the beam at pixel (10, 10) the first pixels look up inside the
# small P1 table and the far ones beyond it, so the switch-off happens mid-frame
ARGS = ["-lambda", "1", "-cell", "50", "50", "50", "90", "90", "90", "-N", "2", "-hkl", str(DATA / "p1_small.hkl"),
        "-distance", "100", "-detpixels", "96", "-pixel", "0.1", "-Xbeam", "1", "-Ybeam", "1"]


def _render(nbref, tmp_path, threads: int, *extra: str) -> tuple[np.ndarray, str]:
    out = tmp_path / f"img{threads}{len(extra)}.bin"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    res = subprocess.run([str(nbref), *ARGS, *extra, "-floatfile", str(out)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    return np.fromfile(out, dtype=np.float32), res.stderr


def test_one_and_two_threads_give_the_same_image(nbref, tmp_path):
    one, err1 = _render(nbref, tmp_path, 1)
    two, err2 = _render(nbref, tmp_path, 2)
    assert "out of range for tricubic interpolation" in err1 and "out of range for tricubic interpolation" in err2
    assert one.tobytes() == two.tobytes()
    # the switch really changed the image: neither all-interpolated nor all-nearest
    nearest, _ = _render(nbref, tmp_path, 2, "-nointerpolate")
    assert not np.array_equal(one, nearest)


def test_a_traced_pixel_holds_its_image_value_at_two_threads(nbref, tmp_path):
    """Traced pixels are computed after the frame; they follow the same per-pixel rule."""
    image, _ = _render(nbref, tmp_path, 2)
    out = tmp_path / "traced.bin"
    env = dict(os.environ, OMP_NUM_THREADS="2")
    res = subprocess.run([str(nbref), *ARGS, "-floatfile", str(out), "-trace_pixel", "0", "0",
                          "-trace_pixel", "95", "95", "-trace_pixel", "48", "48"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert np.fromfile(out, dtype=np.float32).tobytes() == image.tobytes()
    stored = [float(ln.split()[2]) for ln in res.stdout.splitlines() if ln.startswith("TRACE_C: floatimage_accumulated")]
    assert [np.float32(v) for v in stored] == [image[0], image[95 * 96 + 95], image[48 * 96 + 48]]
