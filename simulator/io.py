"""Image outputs: raw float32, SMV int image, PGM (physics.md §7.1–7.2)."""

from __future__ import annotations

import math
import sys

import numpy as np

from nbtrace.errors import UsageError
from nbtrace.sim.constants import RTD


def _write(path: str, data: bytes) -> None:
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise UsageError(f"cannot write output file: {exc.strerror}", where=path,
                         hint="check that the folder exists and is writable") from None


def write_float(path: str, image: np.ndarray) -> None:
    """Raw little-endian float32, index = slow·fpixels + fast, no header."""
    _write(path, np.ascontiguousarray(image, dtype="<f4").tobytes())


def roi_mask(shape, roi) -> np.ndarray:
    xmin, xmax, ymin, ymax = roi
    mask = np.zeros(shape, dtype=bool)
    mask[max(ymin, 0):ymax + 1, max(xmin, 0):xmax + 1] = True
    return mask


def int_scale(image: np.ndarray, mask: np.ndarray, scale: float) -> float:
    """-scale if > 0, else 55000/max_I (1 when max_I ≤ 0)."""
    if scale > 0:
        return scale
    max_i = float(image[mask].max()) if mask.any() else 0.0
    return 55000.0 / max_i if max_i > 0 else 1.0


def _g(x: float) -> str:
    return "%g" % x


def smv_header(setup, nbytes: int = 512) -> bytes:
    """The §7.2 header, padded to ``nbytes`` with spaces after '}' and a formfeed."""
    det, cfg = setup.detector, setup.cfg
    px = det.pixel
    Fb, Sb, D = float(det.Fbeam), float(det.Sbeam), float(det.distance)
    pix0 = [float(x) for x in det.pix0]
    dials = (1000 * pix0[2], 1000 * pix0[1], -1000 * pix0[0])
    order = "little_endian" if sys.byteorder == "little" else "big_endian"
    fields = [
        ("HEADER_BYTES", "512"), ("DIM", "2"), ("BYTE_ORDER", order), ("TYPE", "unsigned_short"),
        ("SIZE1", str(det.fpixels)), ("SIZE2", str(det.spixels)), ("PIXEL_SIZE", _g(px * 1000)),
        ("DISTANCE", _g(D * 1000)), ("WAVELENGTH", _g(cfg.lambda0 * 1e10)),
        ("BEAM_CENTER_X", _g(float(det.Xbeam) * 1000)), ("BEAM_CENTER_Y", _g(float(det.Ybeam) * 1000)),
        ("ADXV_CENTER_X", _g(Fb * 1000)), ("ADXV_CENTER_Y", _g(1000 * (det.detsize_s - Sb))),
        ("MOSFLM_CENTER_X", _g(1000 * (Sb - px / 2))), ("MOSFLM_CENTER_Y", _g(1000 * (Fb - px / 2))),
        ("DENZO_X_BEAM", _g(Sb * 1000)), ("DENZO_Y_BEAM", _g(Fb * 1000)),
    ]
    lines = ["{"] + [f"{k}={v};" for k, v in fields]
    lines.append("DIALS_ORIGIN=%g,%g,%g" % dials)
    orgx = float(det.Fclose) / px + 0.5
    orgy = float(det.Sclose) / px + 0.5
    osc = setup.phi.osc or 0.0
    lines += [f"{k}={v};" for k, v in (
        ("XDS_ORGX", _g(orgx)), ("XDS_ORGY", _g(orgy)), ("CLOSE_DISTANCE", _g(float(det.close_distance) * 1000)),
        ("PHI", _g(cfg.phi0 * RTD)), ("OSC_START", _g(cfg.phi0 * RTD)), ("OSC_RANGE", _g(osc * RTD)),
        ("TWOTHETA", _g(cfg.twotheta * RTD)), ("DETECTOR_SN", "000"), ("BEAMLINE", "fake"),
    )]
    text = "\n".join(lines) + "\n}\f"
    raw = text.encode("ascii")
    if len(raw) > nbytes:
        raise UsageError("SMV header longer than 512 bytes", hint="shorten the numbers")
    return raw + b" " * (nbytes - len(raw))


def int_image(image: np.ndarray, mask: np.ndarray, scale: float, adc: float) -> np.ndarray:
    """uint16 of floorf(x + 0.5) with x = float·scale + adc clipped to [0, 65535]; 0 outside the ROI."""
    # the value is formed in double; only x + ½ is rounded to float32 (floorf's argument)
    x = image.astype(np.float32).astype(np.float64) * scale + adc
    x = np.clip(x, 0.0, 65535.0)
    out = np.floor((x + 0.5).astype(np.float32)).astype(np.uint16)
    out[~mask] = 0
    return out


def write_smv(path: str, setup, data: np.ndarray) -> None:
    _write(path, smv_header(setup) + np.ascontiguousarray(data, dtype=np.uint16).tobytes())


def write_pgm(path: str, image: np.ndarray, mask: np.ndarray, scale: float) -> None:
    """P5 byte image of min(255, float·scale) truncated."""
    vals = np.minimum(255.0, image.astype(np.float64) * scale)
    vals = np.where(mask, vals, 0.0)
    data = vals.astype(np.int64).astype(np.uint8)
    s, f = image.shape
    head = f"P5\n{f} {s}\n# pixels scaled by {scale:g}\n255\n".encode("ascii")
    _write(path, head + data.tobytes())


def pgm_scale(image: np.ndarray, mask: np.ndarray, intscale: float, pgmscale: float) -> float:
    """-pgmscale if > 0, else the int scale replaced by 250/(5·rmsd) when rmsd > 0."""
    if pgmscale > 0:
        return pgmscale
    vals = image[mask].astype(np.float64)
    n = vals.size
    if n <= 1:
        return intscale
    rmsd = math.sqrt(float(((vals - vals.mean()) ** 2).sum()) / (n - 1))
    return 250.0 / (5.0 * rmsd) if rmsd > 0 else intscale
