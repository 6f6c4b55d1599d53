"""Detector images from disk: raw float32, SMV and .npy, and the image shape and ROI that
nanoBragg's own arguments imply.

Images are numpy float64 arrays of shape (spixels, fpixels) — slow rows, fast columns —
holding photons per pixel; the metrics over them are :mod:`nbtrace.engine.images`, which
re-exports every name here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from nbtrace.errors import ImageError, UsageError

SMV_MIN_HEADER = 512
_SMV_TYPES = {
    "unsigned_short": "u2",
    "signed_short": "i2",
    "unsigned_int": "u4",
    "signed_int": "i4",
    "unsigned_long": "u4",
    "signed_long": "i4",
    "float": "f4",
}


# --------------------------------------------------------------------------- shape from args


def _number_after(args: list[str], i: int) -> float:
    if i + 1 >= len(args):
        raise UsageError(f"{args[i]} needs a number", "nanoBragg args", f"write {args[i]} VALUE")
    try:
        value = float(args[i + 1])
    except ValueError:
        raise UsageError(
            f"{args[i]} needs a number, got {args[i + 1][:40]!r}", "nanoBragg args", f"write {args[i]} VALUE"
        ) from None
    # float() takes nan and inf; no detector is NaN or infinitely many pixels wide
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{args[i]} needs a finite number > 0, got {args[i + 1][:40]!r}", "nanoBragg args",
                         f"write {args[i]} VALUE")
    return value


def shape_from_nb_args(args: list[str]) -> tuple[int, int]:
    """(spixels, fpixels) that a nanoBragg run with ``args`` renders (physics.md §5.1).

    Pixel counts win over sizes: ``detsize = pixel · count`` on an axis with a count, then
    ``n = ceil(detsize / pixel − 0.5)``. Defaults: pixel 0.1 mm, detsize 102.4 mm.
    """
    pixel_mm = 0.1
    size = {"f": 102.4, "s": 102.4}
    count: dict[str, float] = {}
    aliases = {
        "-detpixels": "fs", "-detpixels_f": "f", "-detpixels_x": "f", "-detpixels_s": "s", "-detpixels_y": "s",
    }
    size_aliases = {"-detsize": "fs", "-detsize_f": "f", "-detsize_s": "s"}
    for i, tok in enumerate(args):
        if tok in ("-pixel", "-pixel_size"):
            pixel_mm = _number_after(args, i)
        elif tok in aliases:
            for axis in aliases[tok]:
                count[axis] = _number_after(args, i)
        elif tok in size_aliases:
            for axis in size_aliases[tok]:
                size[axis] = _number_after(args, i)
    for axis, n in count.items():
        size[axis] = pixel_mm * n
    # the C rounds this way: a detsize that is not a pixel multiple loses the partial pixel
    ratios = (size["s"] / pixel_mm - 0.5, size["f"] / pixel_mm - 0.5)
    if not all(math.isfinite(r) for r in ratios):  # -detsize 1e300 -pixel 1e-300
        raise UsageError("these detector flags ask for more pixels than a float can count", "nanoBragg args",
                         "check -detpixels, -detsize and -pixel")
    spix, fpix = (math.ceil(r) for r in ratios)
    if spix < 1 or fpix < 1:
        raise UsageError(f"detector of {fpix}x{spix} pixels from these args", "nanoBragg args",
                         "-pixel and -detsize are in mm: check them against -detpixels")
    return spix, fpix


def roi_from_nb_args(args: list[str], shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The pixels a nanoBragg run with ``args`` computes: its ``-roi xmin xmax ymin ymax`` (fast
    min, fast max, slow min, slow max, inclusive; the last one given wins) clipped to the
    (spixels, fpixels) detector, or None without -roi. Pixels outside it are never computed,
    so they cannot be traced."""
    where = [i for i, tok in enumerate(args) if tok == "-roi"]
    if not where:
        return None
    i = where[-1]
    words = args[i + 1: i + 5]
    try:
        xmin, xmax, ymin, ymax = (int(float(w)) for w in words)
    except ValueError:
        raise UsageError(f"-roi needs 4 pixel indices, got {' '.join(words)!r}", "nanoBragg args",
                         "write -roi XMIN XMAX YMIN YMAX (fast min, fast max, slow min, slow max)") from None
    spix, fpix = shape
    box = max(xmin, 0), min(xmax, fpix - 1), max(ymin, 0), min(ymax, spix - 1)
    if box[0] > box[1] or box[2] > box[3]:
        raise UsageError(f"-roi {xmin} {xmax} {ymin} {ymax} selects no pixel of the {spix}x{fpix} detector",
                         "nanoBragg args", f"fast in 0..{fpix - 1}, slow in 0..{spix - 1}, min <= max (inclusive)")
    return box


# --------------------------------------------------------------------------- reading


def _parse_smv_header(head: bytes, path: Path) -> dict[str, str]:
    end = head.find(b"}")
    if not head.startswith(b"{") or end < 0:
        raise ImageError("not an SMV header (no '{ ... }' block)", str(path), "pass a .img SMV file")
    text = head[1:end].decode("ascii", errors="replace")
    fields: dict[str, str] = {}
    # DIALS_ORIGIN has no semicolon in nanoBragg's header: split on newlines as well
    for item in re.split(r"[;\n]", text):
        if "=" in item:
            key, _, value = item.partition("=")
            fields[key.strip().upper()] = value.strip()
    return fields


def _smv_int(fields: dict[str, str], key: str, path: Path, minimum: int) -> int:
    if key not in fields:
        raise ImageError(f"SMV header has no {key}", str(path), "is this file truncated or not SMV?")
    text = fields[key]
    # ASCII digits only, and few of them: int() also takes '1_000', superscripts and 5,000-digit numbers
    if not re.fullmatch(r"[+-]?[0-9]{1,18}", text):
        raise ImageError(f"SMV header {key}={text[:40]!r} is not an integer", str(path),
                         "is this file damaged or not SMV?")
    value = int(text)
    if value < minimum:
        raise ImageError(f"SMV header {key}={value} must be >= {minimum}", str(path), "is this file damaged?")
    return value


def read_smv(path: Path) -> np.ndarray:
    """An SMV (.img) image as float64 (spixels, fpixels) in stored units (ADUs)."""
    data = path.read_bytes()
    fields = _parse_smv_header(data[:8192], path)
    header_bytes = _smv_int(fields, "HEADER_BYTES", path, 0)
    fpix = _smv_int(fields, "SIZE1", path, 1)
    spix = _smv_int(fields, "SIZE2", path, 1)
    order = fields.get("BYTE_ORDER", "little_endian").lower()
    kind = fields.get("TYPE", "unsigned_short").lower()
    if kind not in _SMV_TYPES:
        raise ImageError(f"SMV TYPE={kind} is not supported", str(path), f"one of {', '.join(_SMV_TYPES)}")
    endian = ">" if order.startswith("big") else "<"
    dtype = np.dtype(endian + _SMV_TYPES[kind])
    need = header_bytes + fpix * spix * dtype.itemsize
    if len(data) < need:
        raise ImageError(
            f"SMV file holds {len(data)} bytes, header says {need} ({fpix}x{spix} {kind} + {header_bytes})",
            str(path), "the file is truncated",
        )
    arr = np.frombuffer(data, dtype=dtype, count=fpix * spix, offset=header_bytes)
    return arr.reshape(spix, fpix).astype(np.float64)


def read_raw(path: Path, shape: tuple[int, int] | None) -> np.ndarray:
    """A raw little-endian float32 file (nanoBragg -floatfile) as float64 (spixels, fpixels)."""
    size = path.stat().st_size
    if shape is None:
        raise ImageError(
            f"raw float32 file of {size} bytes needs a shape", str(path),
            "give --shape SLOW FAST or the nanoBragg args after --",
        )
    spix, fpix = shape
    if size != 4 * spix * fpix:
        got = f"{size // 4} float32 values" if size % 4 == 0 else f"{size} bytes (not a multiple of 4)"
        side = math.isqrt(size // 4) if size % 4 == 0 else 0
        hint = f"it would be {side}x{side} if square" if side * side * 4 == size else "check the shape"
        raise ImageError(
            f"holds {got}, shape {spix}x{fpix} needs {spix * fpix}", str(path), hint,
        )
    return np.fromfile(path, dtype="<f4").reshape(spix, fpix).astype(np.float64)


def read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # numpy raises EOFError on a short file
        raise ImageError(f"not a readable .npy file ({exc})", str(path)) from None
    if not isinstance(arr, np.ndarray):  # a .npz archive: several arrays, which one is the image?
        arr.close()
        raise ImageError("this is a .npz archive, not one .npy image", str(path),
                         "save the image alone with numpy.save (region dumps go to nbtrace maps)")
    if arr.ndim != 2:
        raise ImageError(f".npy array has shape {arr.shape}, expected 2-D (slow, fast)", str(path))
    if not np.issubdtype(arr.dtype, np.number):
        raise ImageError(f".npy dtype {arr.dtype} is not numeric", str(path))
    if np.issubdtype(arr.dtype, np.complexfloating):  # the imaginary part would be dropped silently
        raise ImageError(f".npy dtype {arr.dtype} is complex; an image holds real photon counts", str(path),
                         "save abs(x)**2 or the real part explicitly")
    return arr.astype(np.float64)


def sniff_format(path: Path) -> str:
    """'npy', 'smv' or 'raw', from the magic bytes first and the extension second."""
    with path.open("rb") as fh:
        head = fh.read(1024)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"{") and b"HEADER_BYTES" in head:
        return "smv"
    # a .npz is a zip of arrays: read as raw float32 it would be garbage of the right size by chance
    if path.suffix.lower() in (".npy", ".npz"):
        return "npy"
    if path.suffix.lower() in (".img", ".smv"):
        return "smv"
    return "raw"


def read_image(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Any supported image as float64 (spixels, fpixels); raises ImageError on bad input."""
    p = Path(path)
    if not p.exists():
        raise ImageError("no such file", str(p), "check the path")
    if not p.is_file():
        raise ImageError("not a regular file", str(p))
    if p.stat().st_size == 0:
        raise ImageError("file is empty", str(p), "did the producer fail?")
    fmt = sniff_format(p)
    try:
        arr = {"npy": read_npy, "smv": read_smv}.get(fmt, lambda q: read_raw(q, shape))(p)
    except PermissionError:
        raise ImageError("permission denied", str(p)) from None
    if fmt != "raw" and shape is not None and arr.shape != tuple(shape):
        raise ImageError(f"{fmt} image is {arr.shape[0]}x{arr.shape[1]}, --shape says {shape[0]}x{shape[1]}", str(p))
    if not np.isfinite(arr).any():
        raise ImageError("image holds no finite value (all NaN/inf)", str(p), "the producer failed")
    return arr

